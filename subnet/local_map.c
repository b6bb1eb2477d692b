/* The local store's versioned map (see local_map.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "subnet/local_map.h"

void lkv_clear(struct lkv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

int lkv_copy(struct lkv *dst, const struct lkv *src)
{
	*dst = *src;
	dst->key = NULL;
	dst->value = NULL;
	if (src->key && !(dst->key = strdup(src->key)))
		goto fail;
	dst->value = malloc(src->len + 1);
	if (!dst->value)
		goto fail;
	if (src->value)
		memcpy(dst->value, src->value, src->len);
	dst->value[src->len] = '\0';
	return 0;
fail:
	lkv_clear(dst);
	return -ENOMEM;
}

/* Binary search; index of @key, or -(insertion point) - 1. */
ssize_t lmap_find(const struct local_map *m, const char *key)
{
	size_t lo = 0, hi = m->n_kvs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(m->kvs[mid].key, key);

		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(ssize_t)lo - 1;
}

struct llease *lmap_lease_find(struct local_map *m, int64_t id)
{
	for (size_t i = 0; i < m->n_leases; i++)
		if (m->leases[i].id == id)
			return &m->leases[i];
	return NULL;
}

void lmap_log_trim(struct local_map *m, int64_t upto)
{
	size_t drop = 0;

	while (drop < m->n_log && m->log[drop].rev <= upto)
		drop++;
	for (size_t i = 0; i < drop; i++) {
		lkv_clear(&m->log[i].kv);
		lkv_clear(&m->log[i].prev);
	}
	if (drop) {
		memmove(m->log, m->log + drop, (m->n_log - drop) * sizeof(*m->log));
		m->n_log -= drop;
	}
	if (upto > m->compact_rev)
		m->compact_rev = upto;
}

int lmap_log_append(struct local_map *m, int64_t rev, enum store_event_type type,
                    const struct lkv *kv, const struct lkv *prev)
{
	struct levent *e;

	if (m->n_log >= LMAP_LOG_MAX) {
		/* Drop whole revisions, the oldest half. */
		lmap_log_trim(m, m->log[m->n_log / 2].rev);
	}
	if (m->n_log == m->cap_log) {
		size_t cap = m->cap_log ? m->cap_log * 2 : 64;
		struct levent *n = realloc(m->log, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		m->log = n;
		m->cap_log = cap;
	}
	e = &m->log[m->n_log];
	memset(e, 0, sizeof(*e));
	e->rev = rev;
	e->type = type;
	if (type == STORE_EV_DELETE) {
		if (!(e->kv.key = strdup(kv->key)))
			return -ENOMEM;
		e->kv.mod_rev = rev;
	} else if (lkv_copy(&e->kv, kv) < 0) {
		return -ENOMEM;
	}
	if (prev && lkv_copy(&e->prev, prev) < 0) {
		lkv_clear(&e->kv);
		return -ENOMEM;
	}
	m->n_log++;
	return 0;
}

/* Put @key at revision @rev (the caller bumps m->rev once per request). */
int lmap_put(struct local_map *m, const char *key, const char *value, size_t len, int64_t lease,
             int64_t rev)
{
	ssize_t i = lmap_find(m, key);
	struct lkv nkv = { 0 }, *kv;
	char *v = malloc(len + 1);

	if (!v)
		return -ENOMEM;
	memcpy(v, value, len);
	v[len] = '\0';
	if (i >= 0) {
		struct lkv prev;

		kv = &m->kvs[i];
		if (lkv_copy(&prev, kv) < 0) {
			free(v);
			return -ENOMEM;
		}
		free(kv->value);
		kv->value = v;
		kv->len = len;
		kv->mod_rev = rev;
		kv->version++;
		kv->lease = lease;
		lmap_log_append(m, rev, STORE_EV_PUT, kv, &prev);
		lkv_clear(&prev);
	} else {
		size_t at = (size_t)(-i - 1);

		if (m->n_kvs == m->cap_kvs) {
			size_t cap = m->cap_kvs ? m->cap_kvs * 2 : 16;
			struct lkv *n = realloc(m->kvs, cap * sizeof(*n));

			if (!n) {
				free(v);
				return -ENOMEM;
			}
			m->kvs = n;
			m->cap_kvs = cap;
		}
		nkv.key = strdup(key);
		if (!nkv.key) {
			free(v);
			return -ENOMEM;
		}
		nkv.value = v;
		nkv.len = len;
		nkv.create_rev = nkv.mod_rev = rev;
		nkv.version = 1;
		nkv.lease = lease;
		memmove(m->kvs + at + 1, m->kvs + at, (m->n_kvs - at) * sizeof(*m->kvs));
		m->kvs[at] = nkv;
		m->n_kvs++;
		lmap_log_append(m, rev, STORE_EV_PUT, &m->kvs[at], NULL);
	}
	m->dirty = true;
	return 0;
}

void lmap_delete_at(struct local_map *m, size_t i, int64_t rev)
{
	lmap_log_append(m, rev, STORE_EV_DELETE, &m->kvs[i], &m->kvs[i]);
	lkv_clear(&m->kvs[i]);
	memmove(m->kvs + i, m->kvs + i + 1, (m->n_kvs - i - 1) * sizeof(*m->kvs));
	m->n_kvs--;
	m->dirty = true;
}

void lmap_lease_remove(struct local_map *m, int64_t id)
{
	for (size_t i = 0; i < m->n_leases; i++) {
		if (m->leases[i].id == id) {
			m->leases[i] = m->leases[--m->n_leases];
			m->dirty = true;
			return;
		}
	}
}

/* Delete every key attached to @id in one revision, and the lease. */
void lmap_lease_drop(struct local_map *m, int64_t id)
{
	bool any = false;

	for (size_t i = 0; i < m->n_kvs;) {
		if (m->kvs[i].lease == id) {
			if (!any)
				m->rev++;
			any = true;
			lmap_delete_at(m, i, m->rev);
		} else {
			i++;
		}
	}
	lmap_lease_remove(m, id);
}

void lmap_expire_due(struct local_map *m, int64_t now)
{

	for (size_t i = 0; i < m->n_leases;) {
		if (m->leases[i].expires_ms <= now)
			lmap_lease_drop(m, m->leases[i].id); /* swaps the last one into i */
		else
			i++;
	}
}

struct llease *lmap_lease_grant(struct local_map *m, int64_t ttl, int64_t now)
{
	struct llease *l;

	if (m->n_leases == m->cap_leases) {
		size_t cap = m->cap_leases ? m->cap_leases * 2 : 16;
		struct llease *n = realloc(m->leases, cap * sizeof(*n));

		if (!n)
			return NULL;
		m->leases = n;
		m->cap_leases = cap;
	}
	if (ttl < 2)
		ttl = 2; /* etcd's minimum */
	l = &m->leases[m->n_leases++];
	l->id = m->next_lease++;
	l->ttl = ttl;
	l->expires_ms = now + ttl * m->unit_ms;
	m->dirty = true;
	return l;
}

void lmap_init(struct local_map *m)
{
	memset(m, 0, sizeof(*m));
	m->rev = 1;
	m->next_lease = LMAP_FIRST_LEASE;
	m->unit_ms = 1000;
}

void lmap_clear(struct local_map *m)
{
	for (size_t i = 0; i < m->n_kvs; i++)
		lkv_clear(&m->kvs[i]);
	free(m->kvs);
	free(m->leases);
	lmap_log_trim(m, INT64_MAX);
	free(m->log);
	m->kvs = NULL;
	m->leases = NULL;
	m->log = NULL;
	m->n_kvs = m->cap_kvs = m->n_leases = m->cap_leases = m->n_log = m->cap_log = 0;
}

void lmap_replace(struct local_map *m, struct lkv *kvs, size_t n_kvs, struct llease *leases,
                  size_t n_leases)
{
	for (size_t i = 0; i < m->n_kvs; i++)
		lkv_clear(&m->kvs[i]);
	free(m->kvs);
	free(m->leases);
	m->kvs = n_kvs ? kvs : NULL;
	m->n_kvs = m->cap_kvs = n_kvs;
	m->leases = n_leases ? leases : NULL;
	m->n_leases = m->cap_leases = n_leases;
	if (!n_kvs)
		free(kvs);
	if (!n_leases)
		free(leases);
}

void lmap_prefix_range(const struct local_map *m, const char *prefix, size_t *ret_from,
                       size_t *ret_to)
{
	size_t plen = strlen(prefix);
	ssize_t at = lmap_find(m, prefix);
	size_t from = at >= 0 ? (size_t)at : (size_t)(-at - 1), to = from;

	while (to < m->n_kvs && strncmp(m->kvs[to].key, prefix, plen) == 0)
		to++;
	*ret_from = from;
	*ret_to = to;
}

bool lmap_any_due(const struct local_map *m, int64_t now)
{
	for (size_t i = 0; i < m->n_leases; i++)
		if (m->leases[i].expires_ms <= now)
			return true;
	return false;
}

void lmap_lease_refresh(struct local_map *m, struct llease *l, int64_t now)
{
	l->expires_ms = now + l->ttl * m->unit_ms;
	m->dirty = true;
}

int64_t lmap_lease_left_s(const struct local_map *m, const struct llease *l, int64_t now)
{
	int64_t left = l->expires_ms - now;

	return left <= 0 ? 0 : left / m->unit_ms;
}
