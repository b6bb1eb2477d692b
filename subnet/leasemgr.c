/*
 * The lease manager (see leasemgr.h). Two state machines on one loop:
 * acquisition (list, choose per docs/compat.md §3, create or rewrite, renew) and the
 * remote set (list, resync, watch, relist on a broken watch). Every valid lease
 * seen is in exactly one of two sorted arrays: `vis`, the set the consumer was
 * told about, or `hid`, the few hidden ones (own key, key being created, own
 * PublicIP); each lease is held once. lm_set_put()/lm_set_del() apply one event and
 * lm_refresh_key() moves one key across when its hiddenness changed, emitting
 * exactly the difference. Listings arrive in pages (store list_pages) and are
 * turned into leases page by page, so a listing is never held whole as kvs.
 *
 * This file: life cycle, public API and the helpers both machines share; acquisition is in
 * leasemgr_acquire.c, the remote set in leasemgr_watch.c, struct leasemgr in leasemgr_int.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/ev.h"
#include "lib/log.h"
#include "subnet/lease_race.h"
#include "subnet/leasemgr.h"
#include "subnet/subnetfile.h"
#include "subnet/leasemgr_int.h"

/* ---- small helpers ---- */

static uint64_t default_rnd(void *ctx, uint64_t bound)
{
	uint64_t v, limit;

	(void)ctx;
	if (bound <= 1)
		return 0;
	limit = UINT64_MAX - UINT64_MAX % bound;
	do {
		if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			v = (uint64_t)ts.tv_nsec * 6364136223846793005ULL + (uint64_t)ts.tv_sec;
		}
	} while (v >= limit);
	return v % bound;
}

int64_t lm_realtime_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

int lm_lease_cmp(const struct lease *a, const struct lease *b)
{
	int c;

	if (a->has_ipv4 != b->has_ipv4)
		return a->has_ipv4 ? 1 : -1;
	if (a->has_ipv4 && (c = ipam_prefix_cmp(&a->subnet, &b->subnet)) != 0)
		return c;
	if (a->has_ipv6 != b->has_ipv6)
		return a->has_ipv6 ? 1 : -1;
	if (a->has_ipv6)
		return ipam_prefix_cmp(&a->ipv6_subnet, &b->ipv6_subnet);
	return 0;
}

/* Binary search in a sorted lease array: index, or -(insertion point) - 1. */
ssize_t lm_lfind(const struct lease *arr, size_t n, const struct lease *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = lm_lease_cmp(&arr[mid], key);

		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(ssize_t)lo - 1;
}

/* Inserts *l at @at, taking over its references (*l is zeroed); on ENOMEM *l is left. */
int lm_larr_insert_move(struct lease **arr, size_t *n, size_t *cap, size_t at, struct lease *l)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap + *cap / 2 + 16 : 16;
		struct lease *na = realloc(*arr, ncap * sizeof(*na));

		if (!na)
			return -ENOMEM;
		*arr = na;
		*cap = ncap;
	}
	memmove(*arr + at + 1, *arr + at, (*n - at) * sizeof(**arr));
	(*arr)[at] = *l;
	memset(l, 0, sizeof(*l));
	(*n)++;
	return 0;
}

/* Removes element @at; its owned references go to *ret (or are dropped when NULL). */
void lm_larr_remove(struct lease *arr, size_t *n, size_t at, struct lease *ret)
{
	if (ret)
		*ret = arr[at];
	else
		lease_clear(&arr[at]);
	memmove(arr + at, arr + at + 1, (*n - at - 1) * sizeof(*arr));
	(*n)--;
}

void lm_larr_free(struct lease *arr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lease_clear(&arr[i]);
	free(arr);
}

/* Appends *l, taking over its references (*l is zeroed); on ENOMEM *l is left as it was. */
int lm_larr_push(struct lease **arr, size_t *n, size_t *cap, struct lease *l)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap + *cap / 2 + 16 : 16; /* 1.5x: less slack at the peak */
		struct lease *na = realloc(*arr, ncap * sizeof(*na));

		if (!na)
			return -ENOMEM;
		*arr = na;
		*cap = ncap;
	}
	(*arr)[(*n)++] = *l;
	memset(l, 0, sizeof(*l));
	return 0;
}

static int lease_qcmp(const void *a, const void *b)
{
	return lm_lease_cmp(a, b);
}

/* Sorts by subnet, drops duplicate subnets and gives back the unused capacity. */
void lm_larr_sort(struct lease **arr, size_t *n, size_t *cap)
{
	size_t w = 0;

	if (*n > 1)
		qsort(*arr, *n, sizeof(**arr), lease_qcmp);
	for (size_t i = 0; i < *n; i++) {
		if (w > 0 && lm_lease_cmp(&(*arr)[w - 1], &(*arr)[i]) == 0) {
			lease_clear(&(*arr)[i]);
			continue;
		}
		(*arr)[w++] = (*arr)[i];
	}
	*n = w;
	if (w == 0) {
		free(*arr);
		*arr = NULL;
		*cap = 0;
	} else if (*cap > w) {
		struct lease *na = realloc(*arr, w * sizeof(*na));

		if (na) {
			*arr = na;
			*cap = w;
		}
	}
}

char *leasemgr_subnets_str(const struct lease *l, char *buf)
{
	char a[IPAM_PREFIX_STRLEN], b[IPAM_PREFIX_STRLEN];
	struct ipam_prefix p4 = ipam_prefix_network(&l->subnet);
	struct ipam_prefix p6 = ipam_prefix_network(&l->ipv6_subnet);

	if (l->has_ipv4 && l->has_ipv6)
		snprintf(buf, 2 * IPAM_PREFIX_STRLEN, "%s,%s", ipam_prefix_format(&p4, a),
		         ipam_prefix_format(&p6, b));
	else if (l->has_ipv4)
		snprintf(buf, 2 * IPAM_PREFIX_STRLEN, "%s", ipam_prefix_format(&p4, a));
	else if (l->has_ipv6)
		snprintf(buf, 2 * IPAM_PREFIX_STRLEN, "%s", ipam_prefix_format(&p6, b));
	else
		snprintf(buf, 2 * IPAM_PREFIX_STRLEN, "(none)");
	return buf;
}

void lm_report(struct leasemgr *m, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_debug("leasemgr: %s", msg);
	if (m->ev.error)
		m->ev.error(m->ctx, err, msg);
}

static void skip(struct leasemgr *m, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void skip(struct leasemgr *m, const char *key, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	m->skipped++;
	log_debug("leasemgr: skipping %s: %s", key, msg);
	if (m->ev.skipped)
		m->ev.skipped(m->ctx, key, msg);
}

const char *lm_errtext(const struct store_result *res, char *buf, size_t len)
{
	if (res->errmsg && *res->errmsg)
		return res->errmsg;
	snprintf(buf, len, "%s", strerror(-res->err));
	return buf;
}

bool lm_is_own_ip(const struct leasemgr *m, const struct lease_attrs *a)
{
	if (m->own_attrs.public_ip.family)
		return ipam_addr_equal(&a->public_ip, &m->own_attrs.public_ip);
	return m->own_attrs.has_public_ipv6 && a->has_public_ipv6 &&
	       ipam_addr_equal(&a->public_ipv6, &m->own_attrs.public_ipv6);
}

static bool in_range(const struct ipam_prefix *p, uint8_t len, const struct ipam_prefix *min,
                     const struct ipam_prefix *max)
{
	return p->len == len && p->addr.family == min->addr.family &&
	       ipam_addr_cmp(&p->addr, &min->addr) >= 0 && ipam_addr_cmp(&p->addr, &max->addr) <= 0;
}

/* The lease's subnets agree with the config (docs/compat.md §3). */
bool lm_fits(const struct leasemgr *m, const struct lease *l)
{
	const struct subnet_config *c = &m->cfg;

	if (l->has_ipv4 != c->enable_ipv4 || l->has_ipv6 != c->enable_ipv6)
		return false;
	if (c->enable_ipv4 && !in_range(&l->subnet, c->subnet_len, &c->subnet_min, &c->subnet_max))
		return false;
	if (c->enable_ipv6 && !in_range(&l->ipv6_subnet, c->ipv6_subnet_len, &c->ipv6_subnet_min,
	                                &c->ipv6_subnet_max))
		return false;
	return true;
}

bool lm_is_taken(const struct leasemgr *m, const struct lease *l)
{
	return (l->has_ipv4 && ipam_taken_overlaps(m->taken4, &l->subnet)) ||
	       (l->has_ipv6 && ipam_taken_overlaps(m->taken6, &l->ipv6_subnet));
}

void lm_taken_add(struct leasemgr *m, const struct lease *l)
{
	if (l->has_ipv4)
		ipam_taken_add(m->taken4, &l->subnet);
	if (l->has_ipv6)
		ipam_taken_add(m->taken6, &l->ipv6_subnet);
}

/*
 * A subnet of @l outside the config's Network (or IPv6Network when IPv6 is enabled): true
 * with the reason in @buf. Such a key is neither a remote lease nor taken for allocation.
 */
static bool outside_network(const struct leasemgr *m, const struct lease *l, char *buf, size_t len)
{
	const struct subnet_config *c = &m->cfg;
	char a[IPAM_PREFIX_STRLEN], b[IPAM_PREFIX_STRLEN];

	if (c->enable_ipv4 && l->has_ipv4 && !ipam_prefix_contains(&c->network, &l->subnet)) {
		snprintf(buf, len, "%s is outside the network %s",
		         ipam_prefix_format(&l->subnet, a), ipam_prefix_format(&c->network, b));
		return true;
	}
	if (c->enable_ipv6 && l->has_ipv6 &&
	    !ipam_prefix_contains(&c->ipv6_network, &l->ipv6_subnet)) {
		snprintf(buf, len, "%s is outside the IPv6 network %s",
		         ipam_prefix_format(&l->ipv6_subnet, a),
		         ipam_prefix_format(&c->ipv6_network, b));
		return true;
	}
	return false;
}

/*
 * Parse a store kv under the subnets prefix into @ret (key, value, lease id,
 * mod_revision). 1 = valid, 0 = key valid but value not (subnets filled),
 * -1 = key invalid or outside the Network (ignored entirely). Problems are reported through skip().
 */
int lm_parse_kv(struct leasemgr *m, const struct store_kv *kv, bool want_value, struct lease *ret)
{
	size_t plen = strlen(m->subnets_prefix);
	char canon[LEASE_KEY_MAX], err[256];
	const char *suffix;

	memset(ret, 0, sizeof(*ret));
	if (!kv->key || strncmp(kv->key, m->subnets_prefix, plen) != 0)
		return -1;
	suffix = kv->key + plen;
	/* A dual-stack key with a bad IPv6 part keeps its IPv4 half (the backends warn). */
	if (lease_key_parse_lenient6(suffix, ret) < 0) {
		skip(m, kv->key, "not a subnet key (expected e.g. 10.5.34.0-24)");
		return -1;
	}
	lease_key_format(ret, canon);
	if (ret->ipv6_key_bad ? strncmp(canon, suffix, strlen(canon)) != 0
	                      : strcmp(canon, suffix) != 0) {
		skip(m, kv->key, "not in canonical form (expected %s)", canon);
		return -1;
	}
	if (outside_network(m, ret, err, sizeof(err))) {
		skip(m, kv->key, "%s", err);
		memset(ret, 0, sizeof(*ret));
		return -1;
	}
	ret->store_lease_id = kv->lease;
	ret->mod_revision = kv->mod_revision;
	if (!want_value)
		return 1;
	if (lease_attrs_parse_lenient6(kv->value ? kv->value : "", kv->value_len, &ret->attrs, err,
	                               sizeof(err)) < 0) {
		skip(m, kv->key, "bad lease value: %s", err);
		return 0;
	}
	return 1;
}

/* Managers freed with requests in flight, not yet released (leasemgr_zombies). */
static int zombies;

int leasemgr_zombies(void)
{
	return zombies;
}

bool lm_req_done(struct leasemgr *m)
{
	m->outstanding--;
	if (m->zombie) {
		if (m->outstanding == 0) {
			free(m);
			zombies--;
		}
		return true;
	}
	return false;
}

void lm_revoke_cb(void *ctx, const struct store_result *res)
{
	(void)res;
	lm_req_done(ctx);
}
/* ---- public ---- */

struct leasemgr *leasemgr_new(struct ev_loop *loop, struct store *store,
                              const struct leasemgr_opts *opts, const struct leasemgr_events *ev,
                              void *ctx)
{
	struct leasemgr *m;
	const char *prefix = opts && opts->prefix ? opts->prefix : "/coreos.com/network";
	size_t plen = strlen(prefix);

	if (!loop || !store || !ev) {
		errno = EINVAL;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->loop = loop;
	m->store = store;
	m->ev = *ev;
	m->ctx = ctx;
	while (plen > 1 && prefix[plen - 1] == '/')
		plen--;
	m->subnets_prefix = malloc(plen + sizeof("/subnets/"));
	if (!m->subnets_prefix)
		goto fail;
	memcpy(m->subnets_prefix, prefix, plen);
	strcpy(m->subnets_prefix + plen, "/subnets/");
	m->ttl_s = opts && opts->lease_ttl_s > 0 ? opts->lease_ttl_s : 86400;
	m->margin_s = opts && opts->renew_margin_s > 0 ? opts->renew_margin_s : 3600;
	m->retry_ms = opts && opts->retry_ms > 0 ? opts->retry_ms : 60000;
	m->acq_retry_ms = opts && opts->acquire_retry_ms > 0 ? opts->acquire_retry_ms : 1000;
	m->backoff_max_ms = opts && opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 2000;
	if (m->acq_retry_ms > m->backoff_max_ms)
		m->acq_retry_ms = m->backoff_max_ms;
	m->unit_ms = opts && opts->time_unit_ms > 0 ? opts->time_unit_ms : 1000;
	m->rnd = opts && opts->rnd ? opts->rnd : default_rnd;
	m->rnd_ctx = opts && opts->rnd ? opts->rnd_ctx : NULL;
	if (opts && opts->subnet_file && !(m->subnet_file = strdup(opts->subnet_file)))
		goto fail;
	m->acq_backoff_ms = m->w_backoff_ms = m->acq_retry_ms;
	m->acq_timer = ev_timer_new(loop, lm_acq_timer_cb, m);
	m->renew_timer = ev_timer_new(loop, lm_renew_timer_cb, m);
	m->relist_timer = ev_timer_new(loop, lm_relist_timer_cb, m);
	if (!m->acq_timer || !m->renew_timer || !m->relist_timer)
		goto fail;
	return m;
fail:
	leasemgr_free(m);
	errno = ENOMEM;
	return NULL;
}

int leasemgr_start(struct leasemgr *m, const struct subnet_config *cfg,
                   const struct lease_attrs *own_attrs)
{
	if (!m || !cfg || !own_attrs)
		return -EINVAL;
	if (m->started)
		return -EALREADY;
	if (!cfg->enable_ipv4 && !cfg->enable_ipv6)
		return -EINVAL;
	m->cfg = *cfg;
	json_incref(m->cfg.backend);
	lease_attrs_copy(&m->own_attrs, own_attrs);
	m->own_value = lease_attrs_format(&m->own_attrs);
	if (!m->own_value)
		return -ENOMEM;
	m->started = true;
	lm_acq_begin(m);
	return 0;
}

const struct lease *leasemgr_own(const struct leasemgr *m)
{
	return m && m->have_own ? &m->own : NULL;
}

const struct lease *leasemgr_remote(const struct leasemgr *m, size_t *ret_n)
{
	if (!m) {
		*ret_n = 0;
		return NULL;
	}
	*ret_n = m->n_vis;
	return m->vis;
}

uint64_t leasemgr_skipped(const struct leasemgr *m)
{
	return m ? m->skipped : 0;
}

uint64_t leasemgr_renewals(const struct leasemgr *m)
{
	return m ? m->renewals : 0;
}

uint64_t leasemgr_changes(const struct leasemgr *m)
{
	return m ? m->changes : 0;
}

void leasemgr_free(struct leasemgr *m)
{
	if (!m)
		return;
	if (m->watch)
		m->store->ops->watch_free(m->watch);
	if (m->dead_watch)
		m->store->ops->watch_free(m->dead_watch);
	ev_timer_free(m->acq_timer);
	ev_timer_free(m->renew_timer);
	ev_timer_free(m->relist_timer);
	ipam_taken_free(m->taken4);
	ipam_taken_free(m->taken6);
	lm_larr_free(m->hid, m->n_hid);
	lm_larr_free(m->vis, m->n_vis);
	lm_larr_free(m->seed, m->n_seed);
	lm_larr_free(m->wl, m->n_wl);
	lease_clear(&m->mine);
	lease_clear(&m->own);
	lease_clear(&m->prev);
	lease_clear(&m->pending);
	lease_attrs_clear(&m->own_attrs);
	if (m->started)
		json_decref(m->cfg.backend);
	free(m->own_value);
	free(m->subnets_prefix);
	free(m->subnet_file);
	if (m->outstanding > 0) {
		/* The store still holds requests with @m as ctx: the last one releases it. */
		int outstanding = m->outstanding;

		memset(m, 0, sizeof(*m));
		m->zombie = true;
		zombies++;
		m->outstanding = outstanding;
		return;
	}
	free(m);
}
