/*
 * The local file store: etcd v3 semantics (revisions, create-if-absent, cas on
 * mod_revision, leases with TTL that expire and delete their keys, watches from
 * a revision with a bounded history) kept in memory and persisted to one JSON
 * file, rewritten atomically (temp file, fsync, rename) after every write.
 *
 * Several processes may share the file (twilld and twillctl): every request
 * runs under an flock() of "<path>.lock", first re-reading the file when
 * another process replaced it; the differences become watch events. inotify on
 * the directory plus a periodic check notice changes made while idle, and the
 * same periodic check expires leases (stored as wall-clock deadlines).
 *
 * Requests are queued and executed on the loop (a zero timer), so callbacks
 * never run from inside the call that queued them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "lib/ev.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "subnet/store.h"
#include "subnet/store_local.h"

#define LOG_MAX     2048 /* events kept for watches; older ones are compacted away */
#define TICK_MS     250  /* lease expiry and file change check */
#define FIRST_LEASE 0x7a11000000000001LL

struct lkv {
	char *key;
	char *value;
	size_t len;
	int64_t create_rev, mod_rev, version, lease;
};

struct llease {
	int64_t id;
	int64_t ttl;
	int64_t expires_ms; /* CLOCK_REALTIME */
};

struct levent {
	int64_t rev;
	enum store_event_type type;
	struct lkv kv;
	struct lkv prev; /* key NULL when none */
};

enum op_kind {
	OP_GET,
	OP_LIST,
	OP_CREATE,
	OP_CAS,
	OP_PUT,
	OP_DEL,
	OP_GRANT,
	OP_KEEPALIVE,
	OP_REVOKE,
	OP_TIMETOLIVE
};

struct op {
	enum op_kind kind;
	char *key;
	char *value;
	size_t len;
	int64_t ttl, expect, lease;
	store_cb cb;
	void *ctx;
	struct op *next;
};

struct store_watch {
	struct local_store *s;
	char *prefix;
	int64_t next_rev;
	int err; /* pending error to deliver */
	bool dead;
	store_watch_cb cb;
	void *ctx;
	struct store_watch *next;
};

struct local_store {
	struct store base;
	char *path, *lockpath, *dir, *base_name;
	char endpoint[PATH_MAX + 8];
	int lockfd;
	int inofd;
	struct ev_io *ino_io;
	struct ev_timer *kick, *tick;

	struct lkv *kvs; /* sorted by key */
	size_t n_kvs, cap_kvs;
	struct llease *leases;
	size_t n_leases, cap_leases;
	int64_t rev, compact_rev, next_lease;

	struct levent *log; /* oldest first */
	size_t n_log, cap_log;

	struct op *q_head, *q_tail;
	struct store_watch *watches;

	/* identity of the file as last read or written */
	bool have_id;
	dev_t f_dev;
	ino_t f_ino;
	struct timespec f_mtime;
	off_t f_size;

	int64_t unit_ms;
	int fail_err, fail_count;
	bool dirty;      /* in-memory state differs from the file */
	int dispatching; /* depth of user callbacks on the stack */
	bool free_pending;
};

static const struct store_ops local_ops;

static struct local_store *LS(struct store *s)
{
	return (struct local_store *)s;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- kv helpers ---- */

static void lkv_clear(struct lkv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

static int lkv_copy(struct lkv *dst, const struct lkv *src)
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
static ssize_t kv_find(const struct local_store *s, const char *key)
{
	size_t lo = 0, hi = s->n_kvs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->kvs[mid].key, key);

		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(ssize_t)lo - 1;
}

static struct llease *lease_find(struct local_store *s, int64_t id)
{
	for (size_t i = 0; i < s->n_leases; i++)
		if (s->leases[i].id == id)
			return &s->leases[i];
	return NULL;
}

static void log_trim(struct local_store *s, int64_t upto)
{
	size_t drop = 0;

	while (drop < s->n_log && s->log[drop].rev <= upto)
		drop++;
	for (size_t i = 0; i < drop; i++) {
		lkv_clear(&s->log[i].kv);
		lkv_clear(&s->log[i].prev);
	}
	if (drop) {
		memmove(s->log, s->log + drop, (s->n_log - drop) * sizeof(*s->log));
		s->n_log -= drop;
	}
	if (upto > s->compact_rev)
		s->compact_rev = upto;
}

static int log_append(struct local_store *s, int64_t rev, enum store_event_type type,
                      const struct lkv *kv, const struct lkv *prev)
{
	struct levent *e;

	if (s->n_log >= LOG_MAX) {
		/* Drop whole revisions, the oldest half. */
		log_trim(s, s->log[s->n_log / 2].rev);
	}
	if (s->n_log == s->cap_log) {
		size_t cap = s->cap_log ? s->cap_log * 2 : 64;
		struct levent *n = realloc(s->log, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->log = n;
		s->cap_log = cap;
	}
	e = &s->log[s->n_log];
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
	s->n_log++;
	return 0;
}

/* Put @key at revision @rev (the caller bumps s->rev once per request). */
static int kv_put(struct local_store *s, const char *key, const char *value, size_t len,
                  int64_t lease, int64_t rev)
{
	ssize_t i = kv_find(s, key);
	struct lkv nkv = { 0 }, *kv;
	char *v = malloc(len + 1);

	if (!v)
		return -ENOMEM;
	memcpy(v, value, len);
	v[len] = '\0';
	if (i >= 0) {
		struct lkv prev;

		kv = &s->kvs[i];
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
		log_append(s, rev, STORE_EV_PUT, kv, &prev);
		lkv_clear(&prev);
	} else {
		size_t at = (size_t)(-i - 1);

		if (s->n_kvs == s->cap_kvs) {
			size_t cap = s->cap_kvs ? s->cap_kvs * 2 : 16;
			struct lkv *n = realloc(s->kvs, cap * sizeof(*n));

			if (!n) {
				free(v);
				return -ENOMEM;
			}
			s->kvs = n;
			s->cap_kvs = cap;
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
		memmove(s->kvs + at + 1, s->kvs + at, (s->n_kvs - at) * sizeof(*s->kvs));
		s->kvs[at] = nkv;
		s->n_kvs++;
		log_append(s, rev, STORE_EV_PUT, &s->kvs[at], NULL);
	}
	s->dirty = true;
	return 0;
}

static void kv_delete_at(struct local_store *s, size_t i, int64_t rev)
{
	log_append(s, rev, STORE_EV_DELETE, &s->kvs[i], &s->kvs[i]);
	lkv_clear(&s->kvs[i]);
	memmove(s->kvs + i, s->kvs + i + 1, (s->n_kvs - i - 1) * sizeof(*s->kvs));
	s->n_kvs--;
	s->dirty = true;
}

static void lease_remove(struct local_store *s, int64_t id)
{
	for (size_t i = 0; i < s->n_leases; i++) {
		if (s->leases[i].id == id) {
			s->leases[i] = s->leases[--s->n_leases];
			s->dirty = true;
			return;
		}
	}
}

/* Delete every key attached to @id in one revision, and the lease. */
static void lease_drop(struct local_store *s, int64_t id)
{
	bool any = false;

	for (size_t i = 0; i < s->n_kvs;) {
		if (s->kvs[i].lease == id) {
			if (!any)
				s->rev++;
			any = true;
			kv_delete_at(s, i, s->rev);
		} else {
			i++;
		}
	}
	lease_remove(s, id);
}

static void expire_due(struct local_store *s)
{
	int64_t now = wall_ms();

	for (size_t i = 0; i < s->n_leases;) {
		if (s->leases[i].expires_ms <= now)
			lease_drop(s, s->leases[i].id); /* swaps the last one into i */
		else
			i++;
	}
}

static struct llease *lease_grant(struct local_store *s, int64_t ttl)
{
	struct llease *l;

	if (s->n_leases == s->cap_leases) {
		size_t cap = s->cap_leases ? s->cap_leases * 2 : 16;
		struct llease *n = realloc(s->leases, cap * sizeof(*n));

		if (!n)
			return NULL;
		s->leases = n;
		s->cap_leases = cap;
	}
	if (ttl < 2)
		ttl = 2; /* etcd's minimum */
	l = &s->leases[s->n_leases++];
	l->id = s->next_lease++;
	l->ttl = ttl;
	l->expires_ms = wall_ms() + ttl * s->unit_ms;
	s->dirty = true;
	return l;
}

/* ---- persistence ---- */

static json_t *value_json(const struct lkv *kv, const char **ret_field)
{
	json_t *j = json_stringn(kv->value ? kv->value : "", kv->len);
	char *hex;

	*ret_field = "value";
	if (j)
		return j;
	/* Not UTF-8: keep the bytes in hex. */
	hex = malloc(kv->len * 2 + 1);
	if (!hex)
		return NULL;
	for (size_t i = 0; i < kv->len; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)kv->value[i]);
	hex[kv->len * 2] = '\0';
	j = json_string(hex);
	free(hex);
	*ret_field = "value_hex";
	return j;
}

/* Remember which file @st describes, so file_changed() can tell when someone replaces it. */
static void note_file(struct local_store *s, const struct stat *st)
{
	s->have_id = true;
	s->f_dev = st->st_dev;
	s->f_ino = st->st_ino;
	s->f_mtime = st->st_mtim;
	s->f_size = st->st_size;
}

static int save(struct local_store *s)
{
	json_t *root = NULL, *kvs, *leases;
	struct stat st;
	int ret = -ENOMEM;
	char *text = NULL, *line;
	size_t tlen;

	root = json_pack("{s:I,s:I}", "revision", (json_int_t)s->rev, "next_lease_id",
	                 (json_int_t)s->next_lease);
	kvs = json_array();
	leases = json_array();
	if (!root || !kvs || !leases) {
		json_decref(kvs);
		json_decref(leases);
		goto out;
	}
	json_object_set_new(root, "kvs", kvs);
	json_object_set_new(root, "leases", leases);
	for (size_t i = 0; i < s->n_kvs; i++) {
		const struct lkv *kv = &s->kvs[i];
		const char *field;
		json_t *v = value_json(kv, &field);
		json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I}", "key", kv->key, "create_revision",
		                      (json_int_t)kv->create_rev, "mod_revision",
		                      (json_int_t)kv->mod_rev, "version", (json_int_t)kv->version,
		                      "lease", (json_int_t)kv->lease);

		if (!v || !o) {
			json_decref(v);
			json_decref(o);
			goto out;
		}
		json_object_set_new(o, field, v);
		json_array_append_new(kvs, o);
	}
	for (size_t i = 0; i < s->n_leases; i++) {
		json_t *o = json_pack("{s:I,s:I,s:I}", "ID", (json_int_t)s->leases[i].id, "TTL",
		                      (json_int_t)s->leases[i].ttl, "expires_at_ms",
		                      (json_int_t)s->leases[i].expires_ms);

		if (!o)
			goto out;
		json_array_append_new(leases, o);
	}
	text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	if (!text)
		goto out;
	tlen = strlen(text);
	line = realloc(text, tlen + 2);
	if (!line)
		goto out;
	text = line;
	memcpy(text + tlen, "\n", 2);
	ret = file_write_atomic(s->path, text, tlen + 1, 0600, 0, NULL, 0);
	if (ret < 0)
		goto out;
	if (stat(s->path, &st) == 0)
		note_file(s, &st);
	s->dirty = false;
	ret = 0;
out:
	free(text);
	json_decref(root);
	return ret;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

struct loaded {
	struct lkv *kvs;
	size_t n_kvs;
	struct llease *leases;
	size_t n_leases;
	int64_t rev, next_lease;
};

static void loaded_clear(struct loaded *l)
{
	for (size_t i = 0; l->kvs && i < l->n_kvs; i++)
		lkv_clear(&l->kvs[i]);
	free(l->kvs);
	free(l->leases);
	memset(l, 0, sizeof(*l));
}

static int cmp_lkv(const void *a, const void *b)
{
	return strcmp(((const struct lkv *)a)->key, ((const struct lkv *)b)->key);
}

/* Parse the store file; -ENOENT when absent, -EINVAL when malformed. */
static int load_file(const char *path, struct loaded *ret, struct stat *ret_st)
{
	struct loaded l = { 0 };
	json_error_t jerr;
	json_t *root, *kvs, *leases, *o;
	size_t i;
	int ret_err = -EINVAL;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	if (fstat(fileno(f), ret_st) < 0) {
		ret_err = -errno;
		fclose(f);
		return ret_err;
	}
	root = json_loadf(f, JSON_ALLOW_NUL, &jerr);
	fclose(f);
	if (!root)
		return -EINVAL;
	l.rev = json_integer_value(json_object_get(root, "revision"));
	l.next_lease = json_integer_value(json_object_get(root, "next_lease_id"));
	kvs = json_object_get(root, "kvs");
	leases = json_object_get(root, "leases");
	if (l.rev < 1 || !json_is_array(kvs) || !json_is_array(leases))
		goto out;
	l.kvs = calloc(json_array_size(kvs) + 1, sizeof(*l.kvs));
	l.leases = calloc(json_array_size(leases) + 1, sizeof(*l.leases));
	if (!l.kvs || !l.leases) {
		ret_err = -ENOMEM;
		goto out;
	}
	json_array_foreach(kvs, i, o) {
		struct lkv *kv = &l.kvs[l.n_kvs];
		const char *key = json_string_value(json_object_get(o, "key"));
		json_t *v = json_object_get(o, "value");
		json_t *hex = json_object_get(o, "value_hex");

		if (!key)
			goto out;
		kv->key = strdup(key);
		if (json_is_string(v)) {
			kv->len = json_string_length(v);
			kv->value = malloc(kv->len + 1);
			if (kv->value) {
				memcpy(kv->value, json_string_value(v), kv->len);
				kv->value[kv->len] = '\0';
			}
		} else if (json_is_string(hex) && json_string_length(hex) % 2 == 0) {
			const char *h = json_string_value(hex);

			kv->len = json_string_length(hex) / 2;
			kv->value = malloc(kv->len + 1);
			for (size_t k = 0; kv->value && k < kv->len; k++) {
				int hi = hexval(h[2 * k]), lo = hexval(h[2 * k + 1]);

				if (hi < 0 || lo < 0) {
					l.n_kvs++;
					goto out;
				}
				kv->value[k] = (char)(hi << 4 | lo);
			}
			if (kv->value)
				kv->value[kv->len] = '\0';
		} else {
			l.n_kvs++;
			goto out;
		}
		l.n_kvs++;
		if (!kv->key || !kv->value) {
			ret_err = -ENOMEM;
			goto out;
		}
		kv->create_rev = json_integer_value(json_object_get(o, "create_revision"));
		kv->mod_rev = json_integer_value(json_object_get(o, "mod_revision"));
		kv->version = json_integer_value(json_object_get(o, "version"));
		kv->lease = json_integer_value(json_object_get(o, "lease"));
	}
	qsort(l.kvs, l.n_kvs, sizeof(*l.kvs), cmp_lkv);
	for (i = 1; i < l.n_kvs; i++)
		if (strcmp(l.kvs[i - 1].key, l.kvs[i].key) == 0)
			goto out;
	json_array_foreach(leases, i, o) {
		struct llease *ll = &l.leases[l.n_leases++];

		ll->id = json_integer_value(json_object_get(o, "ID"));
		ll->ttl = json_integer_value(json_object_get(o, "TTL"));
		ll->expires_ms = json_integer_value(json_object_get(o, "expires_at_ms"));
	}
	if (l.next_lease <= 0)
		l.next_lease = FIRST_LEASE;
	*ret = l;
	json_decref(root);
	return 0;
out:
	json_decref(root);
	loaded_clear(&l);
	return ret_err;
}

static bool file_changed(struct local_store *s)
{
	struct stat st;

	if (stat(s->path, &st) < 0)
		return s->have_id; /* deleted under us: rewrite it */
	return !s->have_id || st.st_dev != s->f_dev || st.st_ino != s->f_ino ||
	       st.st_size != s->f_size || st.st_mtim.tv_sec != s->f_mtime.tv_sec ||
	       st.st_mtim.tv_nsec != s->f_mtime.tv_nsec;
}

/* Replace the in-memory state by the file's; the differences become events. */
static int reload(struct local_store *s)
{
	struct loaded l;
	struct stat st;
	int64_t rev;
	size_t i = 0, j = 0;
	int r = load_file(s->path, &l, &st);

	if (r == -ENOENT) {
		s->dirty = true; /* recreate it from memory */
		return 0;
	}
	if (r < 0)
		return r;
	rev = l.rev > s->rev ? l.rev : s->rev + 1;
	while (i < s->n_kvs || j < l.n_kvs) {
		int c = i == s->n_kvs ? 1 : j == l.n_kvs ? -1 : strcmp(s->kvs[i].key, l.kvs[j].key);

		if (c < 0) {
			log_append(s, rev, STORE_EV_DELETE, &s->kvs[i], &s->kvs[i]);
			i++;
		} else if (c > 0) {
			log_append(s, rev, STORE_EV_PUT, &l.kvs[j], NULL);
			j++;
		} else {
			if (s->kvs[i].mod_rev != l.kvs[j].mod_rev ||
			    s->kvs[i].len != l.kvs[j].len ||
			    memcmp(s->kvs[i].value, l.kvs[j].value, l.kvs[j].len) != 0)
				log_append(s, rev, STORE_EV_PUT, &l.kvs[j], &s->kvs[i]);
			i++;
			j++;
		}
	}
	for (i = 0; i < s->n_kvs; i++)
		lkv_clear(&s->kvs[i]);
	free(s->kvs);
	free(s->leases);
	s->kvs = l.kvs;
	s->n_kvs = s->cap_kvs = l.n_kvs;
	s->leases = l.leases;
	s->n_leases = s->cap_leases = l.n_leases;
	if (s->cap_kvs == 0) {
		free(s->kvs);
		s->kvs = NULL;
	}
	if (s->cap_leases == 0) {
		free(s->leases);
		s->leases = NULL;
	}
	s->rev = rev;
	if (l.next_lease > s->next_lease)
		s->next_lease = l.next_lease;
	note_file(s, &st);
	s->dirty = rev != l.rev;
	return 0;
}

/* Start of every access: lock, catch up with the file, expire leases. */
static void txn_begin(struct local_store *s)
{
	while (flock(s->lockfd, LOCK_EX) < 0 && errno == EINTR)
		;
	if (file_changed(s))
		reload(s); /* a malformed file is kept out and rewritten by our next save */
	expire_due(s);
}

static int txn_end(struct local_store *s)
{
	int r = 0;

	if (s->dirty)
		r = save(s);
	flock(s->lockfd, LOCK_UN);
	return r;
}

/* ---- request execution ---- */

static int kvs_result(struct store_result *res, const struct lkv *src, size_t n)
{
	res->kvs = calloc(n ? n : 1, sizeof(*res->kvs));
	if (!res->kvs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct lkv c;

		if (lkv_copy(&c, &src[i]) < 0)
			return -ENOMEM;
		res->kvs[i] = (struct store_kv){ .key = c.key,
			                         .value = c.value,
			                         .value_len = c.len,
			                         .create_revision = c.create_rev,
			                         .mod_revision = c.mod_rev,
			                         .version = c.version,
			                         .lease = c.lease };
		res->n_kvs++;
	}
	return 0;
}

static void result_clear(struct store_result *res)
{
	for (size_t i = 0; i < res->n_kvs; i++) {
		free(res->kvs[i].key);
		free(res->kvs[i].value);
	}
	free(res->kvs);
}

static void current_kv(struct local_store *s, const char *key, struct store_result *res)
{
	ssize_t i = kv_find(s, key);

	if (i >= 0)
		kvs_result(res, &s->kvs[i], 1);
}

static void exec_op(struct local_store *s, struct op *op, struct store_result *res)
{
	ssize_t i;

	txn_begin(s);
	switch (op->kind) {
	case OP_GET:
		current_kv(s, op->key, res);
		break;
	case OP_LIST: {
		size_t plen = strlen(op->key);
		ssize_t at = kv_find(s, op->key);
		size_t from = at >= 0 ? (size_t)at : (size_t)(-at - 1), to = from;

		while (to < s->n_kvs && strncmp(s->kvs[to].key, op->key, plen) == 0)
			to++;
		if (kvs_result(res, to > from ? s->kvs + from : NULL, to - from) < 0)
			res->err = -ENOMEM;
		break;
	}
	case OP_CREATE: {
		struct llease *l = NULL;

		i = kv_find(s, op->key);
		if (i >= 0) {
			current_kv(s, op->key, res);
			break;
		}
		if (op->ttl > 0) {
			l = lease_grant(s, op->ttl);
			if (!l) {
				res->err = -ENOMEM;
				break;
			}
			res->lease_id = l->id;
			res->ttl = l->ttl;
		}
		s->rev++;
		res->err = kv_put(s, op->key, op->value, op->len, l ? l->id : 0, s->rev);
		res->succeeded = res->err == 0;
		break;
	}
	case OP_CAS:
	case OP_PUT:
		i = kv_find(s, op->key);
		if (op->kind == OP_CAS &&
		    (op->expect == 0 ? i >= 0 : i < 0 || s->kvs[i].mod_rev != op->expect)) {
			current_kv(s, op->key, res);
			break;
		}
		if (op->lease && !lease_find(s, op->lease)) {
			res->err = -ENOENT;
			res->errmsg = "etcdserver: requested lease not found";
			break;
		}
		s->rev++;
		res->err = kv_put(s, op->key, op->value, op->len, op->lease, s->rev);
		res->succeeded = res->err == 0;
		res->lease_id = op->lease;
		break;
	case OP_DEL:
		i = kv_find(s, op->key);
		if (i < 0)
			break;
		if (op->expect && s->kvs[i].mod_rev != op->expect) {
			current_kv(s, op->key, res);
			break;
		}
		s->rev++;
		kv_delete_at(s, (size_t)i, s->rev);
		res->succeeded = true;
		break;
	case OP_GRANT: {
		struct llease *l = lease_grant(s, op->ttl);

		if (!l) {
			res->err = -ENOMEM;
			break;
		}
		res->lease_id = l->id;
		res->ttl = l->ttl;
		break;
	}
	case OP_KEEPALIVE: {
		struct llease *l = lease_find(s, op->lease);

		res->lease_id = op->lease;
		if (l) {
			l->expires_ms = wall_ms() + l->ttl * s->unit_ms;
			res->ttl = l->ttl;
			s->dirty = true;
		}
		break;
	}
	case OP_TIMETOLIVE: {
		struct llease *l = lease_find(s, op->lease);
		int64_t left = l ? l->expires_ms - wall_ms() : 0;

		res->lease_id = op->lease;
		res->ttl = left <= 0 ? 0 : left / s->unit_ms; /* rounded down, as etcd */
		break;
	}
	case OP_REVOKE:
		if (!lease_find(s, op->lease)) {
			res->err = -ENOENT;
			res->errmsg = "etcdserver: requested lease not found";
			break;
		}
		lease_drop(s, op->lease);
		res->succeeded = true;
		break;
	}
	if (txn_end(s) < 0 && res->err == 0) {
		res->err = -EIO;
		res->errmsg = "cannot write the store file";
	}
	res->revision = s->rev;
}

static void op_free(struct op *op)
{
	if (!op)
		return;
	free(op->key);
	free(op->value);
	free(op);
}

static void really_free(struct local_store *s);

static char empty_value[1];

static void deliver_watches(struct local_store *s)
{
	for (struct store_watch *w = s->watches; w && !s->free_pending; w = w->next) {
		size_t i = 0;

		if (w->dead)
			continue;
		if (!w->err && w->next_rev <= s->compact_rev)
			w->err = -ESTALE;
		if (w->err) {
			int err = w->err;

			w->dead = true; /* a broken watch reports once */
			w->cb(w->ctx, err, NULL, 0, s->rev);
			continue;
		}
		while (i < s->n_log && s->log[i].rev < w->next_rev)
			i++;
		while (i < s->n_log && !w->dead && !s->free_pending) {
			int64_t rev = s->log[i].rev;
			struct store_event evs[64];
			size_t n = 0, plen = strlen(w->prefix);

			for (; i < s->n_log && s->log[i].rev == rev; i++) {
				const struct levent *e = &s->log[i];

				if (strncmp(e->kv.key, w->prefix, plen) != 0)
					continue;
				evs[n].type = e->type;
				evs[n].kv = (struct store_kv){ .key = e->kv.key,
					                       .value = e->kv.value ? e->kv.value
					                                            : empty_value,
					                       .value_len = e->kv.len,
					                       .create_revision = e->kv.create_rev,
					                       .mod_revision = e->kv.mod_rev,
					                       .version = e->kv.version,
					                       .lease = e->kv.lease };
				evs[n].prev_kv =
					(struct store_kv){ .key = e->prev.key,
					                   .value = e->prev.value,
					                   .value_len = e->prev.len,
					                   .create_revision = e->prev.create_rev,
					                   .mod_revision = e->prev.mod_rev,
					                   .version = e->prev.version,
					                   .lease = e->prev.lease };
				if (++n == sizeof(evs) / sizeof(evs[0])) {
					w->cb(w->ctx, 0, evs, n, rev);
					n = 0;
					if (w->dead || s->free_pending)
						break;
				}
			}
			w->next_rev = rev + 1;
			if (n && !w->dead && !s->free_pending)
				w->cb(w->ctx, 0, evs, n, rev);
		}
		if (w->next_rev <= s->rev)
			w->next_rev = s->rev + 1;
	}
}

static void reap_watches(struct local_store *s)
{
	struct store_watch **pp = &s->watches;

	while (*pp) {
		struct store_watch *w = *pp;

		if (w->dead && !w->cb) {
			*pp = w->next;
			free(w->prefix);
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

static void kick_cb(struct ev_timer *t, void *ctx)
{
	struct local_store *s = ctx;
	struct op *q = s->q_head;

	(void)t;
	s->q_head = s->q_tail = NULL;
	s->dispatching++;
	while (q) {
		struct op *op = q;
		struct store_result res = { 0 };

		q = q->next;
		if (!s->free_pending) {
			if (s->fail_count > 0) {
				s->fail_count--;
				res.err = s->fail_err;
				res.errmsg = "injected failure";
				res.revision = s->rev;
			} else {
				exec_op(s, op, &res);
			}
			op->cb(op->ctx, &res);
			result_clear(&res);
		}
		op_free(op);
	}
	if (!s->free_pending)
		deliver_watches(s);
	s->dispatching--;
	if (s->free_pending) {
		if (!s->dispatching)
			really_free(s);
		return;
	}
	reap_watches(s);
	if (s->q_head)
		ev_timer_start(s->kick, 0, 0);
}

/* Catch up with the file and expire leases; events go out on the next kick. */
static void refresh(struct local_store *s, bool force)
{
	int64_t rev = s->rev;
	int64_t now = wall_ms();
	bool due = false;

	for (size_t i = 0; i < s->n_leases; i++)
		if (s->leases[i].expires_ms <= now)
			due = true;
	if (!force && !due && !file_changed(s))
		return;
	txn_begin(s);
	txn_end(s);
	if (s->rev != rev)
		ev_timer_start(s->kick, 0, 0);
}

static void tick_cb(struct ev_timer *t, void *ctx)
{
	(void)t;
	refresh(ctx, false);
}

static void ino_cb(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	(void)io;
	(void)revents;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	refresh(ctx, false);
}

static int enqueue(struct store *st, enum op_kind kind, const char *key, const char *value,
                   size_t len, int64_t ttl, int64_t expect, int64_t lease, store_cb cb, void *ctx)
{
	struct local_store *s = LS(st);
	struct op *op;

	if (!cb || s->free_pending)
		return -EINVAL;
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->kind = kind;
	op->ttl = ttl;
	op->expect = expect;
	op->lease = lease;
	op->cb = cb;
	op->ctx = ctx;
	if (key && !(op->key = strdup(key)))
		goto fail;
	if (value || len) {
		op->value = malloc(len + 1);
		if (!op->value)
			goto fail;
		memcpy(op->value, value, len);
		op->value[len] = '\0';
		op->len = len;
	}
	if (s->q_tail)
		s->q_tail->next = op;
	else
		s->q_head = op;
	s->q_tail = op;
	ev_timer_start(s->kick, 0, 0); /* cannot fail for a valid timerfd */
	return 0;
fail:
	op_free(op);
	return -ENOMEM;
}

static int l_get(struct store *s, const char *key, store_cb cb, void *ctx)
{
	if (!key)
		return -EINVAL;
	return enqueue(s, OP_GET, key, NULL, 0, 0, 0, 0, cb, ctx);
}

static int l_list(struct store *s, const char *prefix, store_cb cb, void *ctx)
{
	if (!prefix)
		return -EINVAL;
	return enqueue(s, OP_LIST, prefix, NULL, 0, 0, 0, 0, cb, ctx);
}

static int l_create(struct store *s, const char *key, const char *value, size_t len, int64_t ttl_s,
                    store_cb cb, void *ctx)
{
	if (!key || !*key || ttl_s < 0)
		return -EINVAL;
	return enqueue(s, OP_CREATE, key, value, len, ttl_s, 0, 0, cb, ctx);
}

static int l_cas(struct store *s, const char *key, const char *value, size_t len, int64_t expect,
                 int64_t lease_id, store_cb cb, void *ctx)
{
	if (!key || !*key)
		return -EINVAL;
	return enqueue(s, OP_CAS, key, value, len, 0, expect, lease_id, cb, ctx);
}

static int l_put(struct store *s, const char *key, const char *value, size_t len, int64_t lease_id,
                 store_cb cb, void *ctx)
{
	if (!key || !*key)
		return -EINVAL;
	return enqueue(s, OP_PUT, key, value, len, 0, 0, lease_id, cb, ctx);
}

static int l_del(struct store *s, const char *key, int64_t expect, store_cb cb, void *ctx)
{
	if (!key || !*key)
		return -EINVAL;
	return enqueue(s, OP_DEL, key, NULL, 0, 0, expect, 0, cb, ctx);
}

static int l_grant(struct store *s, int64_t ttl_s, store_cb cb, void *ctx)
{
	return enqueue(s, OP_GRANT, NULL, NULL, 0, ttl_s, 0, 0, cb, ctx);
}

static int l_keepalive(struct store *s, int64_t lease_id, store_cb cb, void *ctx)
{
	return enqueue(s, OP_KEEPALIVE, NULL, NULL, 0, 0, 0, lease_id, cb, ctx);
}

static int l_revoke(struct store *s, int64_t lease_id, store_cb cb, void *ctx)
{
	return enqueue(s, OP_REVOKE, NULL, NULL, 0, 0, 0, lease_id, cb, ctx);
}

static int l_timetolive(struct store *s, int64_t lease_id, store_cb cb, void *ctx)
{
	if (lease_id <= 0)
		return -EINVAL;
	return enqueue(s, OP_TIMETOLIVE, NULL, NULL, 0, 0, 0, lease_id, cb, ctx);
}

static struct store_watch *l_watch(struct store *st, const char *prefix, int64_t from_rev,
                                   store_watch_cb cb, void *ctx)
{
	struct local_store *s = LS(st);
	struct store_watch *w, **pp;

	if (!prefix || !cb || from_rev < 0 || s->free_pending) {
		errno = EINVAL;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w || !(w->prefix = strdup(prefix))) {
		free(w);
		errno = ENOMEM;
		return NULL;
	}
	refresh(s, false);
	w->s = s;
	w->next_rev = from_rev ? from_rev : s->rev + 1;
	w->cb = cb;
	w->ctx = ctx;
	for (pp = &s->watches; *pp; pp = &(*pp)->next)
		;
	*pp = w;
	ev_timer_start(s->kick, 0, 0);
	return w;
}

static void l_watch_free(struct store_watch *w)
{
	if (!w)
		return;
	w->dead = true;
	w->cb = NULL; /* marks it reapable */
	if (!w->s->dispatching)
		reap_watches(w->s);
}

static void really_free(struct local_store *s)
{
	while (s->q_head) {
		struct op *op = s->q_head;

		s->q_head = op->next;
		op_free(op);
	}
	while (s->watches) {
		struct store_watch *w = s->watches;

		s->watches = w->next;
		free(w->prefix);
		free(w);
	}
	for (size_t i = 0; i < s->n_kvs; i++)
		lkv_clear(&s->kvs[i]);
	free(s->kvs);
	free(s->leases);
	log_trim(s, INT64_MAX);
	free(s->log);
	ev_timer_free(s->kick);
	ev_timer_free(s->tick);
	ev_io_free(s->ino_io);
	if (s->inofd >= 0)
		close(s->inofd);
	if (s->lockfd >= 0)
		close(s->lockfd);
	free(s->path);
	free(s->lockpath);
	free(s->dir);
	free(s->base_name);
	free(s);
}

static void l_free(struct store *st)
{
	struct local_store *s;

	if (!st)
		return;
	s = LS(st);
	if (s->dispatching) {
		s->free_pending = true;
		return;
	}
	really_free(s);
}

static const char *l_endpoint(struct store *st)
{
	return LS(st)->endpoint;
}

static const struct store_ops local_ops = {
	.name = "local",
	.get = l_get,
	.list = l_list,
	.create = l_create,
	.cas = l_cas,
	.put = l_put,
	.del = l_del,
	.grant = l_grant,
	.keepalive = l_keepalive,
	.revoke = l_revoke,
	.watch = l_watch,
	.watch_free = l_watch_free,
	.free = l_free,
	.endpoint = l_endpoint,
	.timetolive = l_timetolive,
};

struct store *store_local_new(struct ev_loop *loop, const char *path)
{
	struct local_store *s;
	struct loaded l;
	struct stat st;
	char *slash;
	int err = ENOMEM, r;

	if (!loop || !path || !*path || strlen(path) >= PATH_MAX) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base.ops = &local_ops;
	s->base.loop = loop;
	s->lockfd = s->inofd = -1;
	s->unit_ms = 1000;
	s->rev = 1;
	s->next_lease = FIRST_LEASE;
	snprintf(s->endpoint, sizeof(s->endpoint), "file://%s", path);
	s->path = strdup(path);
	s->lockpath = malloc(strlen(path) + sizeof(".lock"));
	if (!s->path || !s->lockpath)
		goto fail;
	sprintf(s->lockpath, "%s.lock", path);
	s->dir = strdup(path);
	if (!s->dir)
		goto fail;
	slash = strrchr(s->dir, '/');
	if (slash == s->dir) {
		s->base_name = strdup(slash + 1);
		s->dir[1] = '\0';
	} else if (slash) {
		s->base_name = strdup(slash + 1);
		*slash = '\0';
	} else {
		s->base_name = strdup(path);
		strcpy(s->dir, ".");
	}
	if (!s->base_name)
		goto fail;
	err = -file_mkdir_p(s->dir, 0755);
	if (err)
		goto fail;
	s->lockfd = open(s->lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lockfd < 0) {
		err = errno;
		goto fail;
	}
	s->kick = ev_timer_new(loop, kick_cb, s);
	s->tick = ev_timer_new(loop, tick_cb, s);
	if (!s->kick || !s->tick) {
		err = errno;
		goto fail;
	}
	flock(s->lockfd, LOCK_EX);
	r = load_file(path, &l, &st);
	if (r == 0) {
		s->kvs = l.kvs;
		s->n_kvs = s->cap_kvs = l.n_kvs;
		s->leases = l.leases;
		s->n_leases = s->cap_leases = l.n_leases;
		s->rev = l.rev;
		s->next_lease = l.next_lease;
		note_file(s, &st);
	} else if (r == -ENOENT) {
		s->dirty = true;
	} else {
		flock(s->lockfd, LOCK_UN);
		err = -r;
		log_debug("store %s: cannot read it (%s)", path, strerror(err));
		goto fail;
	}
	s->compact_rev = s->rev; /* history is not persisted */
	expire_due(s);
	log_trim(s, s->rev); /* expiries at load time are history too */
	r = txn_end(s);
	if (r < 0) {
		err = -r;
		goto fail;
	}
	s->inofd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->inofd >= 0) {
		if (inotify_add_watch(s->inofd, s->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE) <
		            0 ||
		    !(s->ino_io = ev_io_new(loop, s->inofd, EPOLLIN, ino_cb, s))) {
			close(s->inofd);
			s->inofd = -1;
		}
	}
	ev_timer_start(s->tick, TICK_MS, TICK_MS);
	return &s->base;
fail:
	really_free(s);
	errno = err;
	return NULL;
}

/* ---- test hooks ---- */

bool store_is_local(const struct store *s)
{
	return s && s->ops == &local_ops;
}

int64_t store_local_revision(struct store *st)
{
	if (!store_is_local(st))
		return -EINVAL;
	refresh(LS(st), false);
	return LS(st)->rev;
}

int store_local_compact(struct store *st, int64_t rev)
{
	struct local_store *s;

	if (!store_is_local(st))
		return -EINVAL;
	s = LS(st);
	refresh(s, false);
	if (rev == 0)
		rev = s->rev;
	if (rev > s->rev || rev < 0)
		return -EINVAL;
	log_trim(s, rev);
	ev_timer_start(s->kick, 0, 0);
	return 0;
}

int store_local_expire(struct store *st, int64_t lease_id)
{
	struct local_store *s;
	struct llease *l;
	int r = 0;

	if (!store_is_local(st))
		return -EINVAL;
	s = LS(st);
	txn_begin(s);
	l = lease_find(s, lease_id);
	if (l)
		l->expires_ms = 0;
	else
		r = -ENOENT;
	expire_due(s);
	txn_end(s);
	ev_timer_start(s->kick, 0, 0);
	return r;
}

int store_local_break_watches(struct store *st, int err)
{
	struct local_store *s;

	if (!store_is_local(st) || err >= 0)
		return -EINVAL;
	s = LS(st);
	for (struct store_watch *w = s->watches; w; w = w->next)
		if (!w->dead)
			w->err = err;
	ev_timer_start(s->kick, 0, 0);
	return 0;
}

int store_local_set_time_unit(struct store *st, int64_t ms)
{
	int64_t tick;

	if (!store_is_local(st) || ms <= 0)
		return -EINVAL;
	LS(st)->unit_ms = ms;
	/* Expire at a quarter of a unit at most, as etcd checks every 0.5 s. */
	tick = ms / 4 < TICK_MS ? (ms / 4 > 2 ? ms / 4 : 2) : TICK_MS;
	ev_timer_start(LS(st)->tick, (uint64_t)tick, (uint64_t)tick);
	return 0;
}

int store_local_fail_next(struct store *st, int err, int count)
{
	if (!store_is_local(st) || err >= 0 || count < 0)
		return -EINVAL;
	LS(st)->fail_err = err;
	LS(st)->fail_count = count;
	return 0;
}

int store_local_lease_ttl(struct store *st, int64_t lease_id, int64_t *ret_ttl_s)
{
	struct local_store *s;
	struct llease *l;
	int64_t left;

	if (!store_is_local(st))
		return -EINVAL;
	s = LS(st);
	txn_begin(s);
	l = lease_find(s, lease_id);
	if (l) {
		left = l->expires_ms - wall_ms();
		*ret_ttl_s = left <= 0 ? 0 : left / s->unit_ms;
	}
	txn_end(s);
	ev_timer_start(s->kick, 0, 0); /* deliver what the re-read found */
	return l ? 0 : -ENOENT;
}
