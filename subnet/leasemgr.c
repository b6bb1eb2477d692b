/*
 * The lease manager (see leasemgr.h). Two state machines on one loop:
 * acquisition (list, choose per docs/compat.md §3, create or rewrite, renew) and the
 * remote set (list, resync, watch, relist on a broken watch). Every valid lease
 * seen is in exactly one of two sorted arrays: `vis`, the set the consumer was
 * told about, or `hid`, the few hidden ones (own key, key being created, own
 * PublicIP); each lease is held once. set_put()/set_del() apply one event and
 * refresh_key() moves one key across when its hiddenness changed, emitting
 * exactly the difference. Listings arrive in pages (store list_pages) and are
 * turned into leases page by page, so a listing is never held whole as kvs.
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

#define RACES_BEFORE_RELIST 16

struct leasemgr {
	struct ev_loop *loop;
	struct store *store;
	struct leasemgr_events ev;
	void *ctx;
	char *subnets_prefix; /* "<prefix>/subnets/" */
	int64_t ttl_s, margin_s, retry_ms, acq_retry_ms, backoff_max_ms, unit_ms;
	char *subnet_file;
	ipam_rand_fn rnd;
	void *rnd_ctx;

	bool started;
	struct subnet_config cfg;
	struct lease_attrs own_attrs;
	char *own_value;

	/* acquisition */
	bool have_own;
	struct lease own;
	char own_key[LEASE_KEY_MAX];
	bool have_prev;
	struct lease prev; /* subnets of the lost own lease, preferred when re-acquiring */
	bool have_pending;
	struct lease pending; /* candidate being created or rewritten */
	char pending_key[LEASE_KEY_MAX];
	int64_t pending_mod_rev; /* rewrite: the mod_revision to compare */
	int64_t old_store_lease; /* rewrite: the previous store lease, revoked after */
	struct ipam_taken *taken4, *taken6;
	int races;
	/* after a create holding an IPv6 subnet: the check of lease_race.h */
	struct lease_race race;
	bool race_fresh;        /* the next page starts the check's listing */
	bool giveback;          /* the check lost: the key is being given back */
	int64_t race_lease;     /* the created key's store lease (0: none) */
	int64_t race_rev;       /* the create's revision */
	int64_t acq_backoff_ms;
	struct ev_timer *acq_timer, *renew_timer;
	int64_t renew_lease; /* lease id of the keepalive in flight */

	/* remote set */
	bool watching_started;
	bool resynced;
	struct store_watch *watch, *dead_watch;
	struct ev_timer *relist_timer;
	int64_t w_backoff_ms;
	struct lease *vis, *hid;
	size_t n_vis, cap_vis, n_hid, cap_hid;
	/* The first acquisition listing, kept to seed the remote set: one listing at start-up. */
	bool have_seed;
	struct lease *seed;
	size_t n_seed, cap_seed;
	int64_t seed_rev;
	/* listings in progress (pages so far) */
	bool acq_fresh, w_fresh; /* the next page starts a listing */
	bool acq_keep;           /* the acquisition listing becomes the seed */
	bool have_mine;
	struct lease mine; /* acquisition: the valid lease with our PublicIP, if any */
	struct lease *wl;  /* relisting: the leases so far */
	size_t n_wl, cap_wl;
	bool wl_oom;

	uint64_t skipped;
	/* leasemgr_renewals(), leasemgr_changes() */
	uint64_t renewals, changes;
	int outstanding; /* store requests in flight with this manager as ctx */
	bool zombie;     /* freed while requests were in flight */
};

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

static int64_t realtime_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static int lease_cmp(const struct lease *a, const struct lease *b)
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
static ssize_t lfind(const struct lease *arr, size_t n, const struct lease *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = lease_cmp(&arr[mid], key);

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
static int larr_insert_move(struct lease **arr, size_t *n, size_t *cap, size_t at, struct lease *l)
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
static void larr_remove(struct lease *arr, size_t *n, size_t at, struct lease *ret)
{
	if (ret)
		*ret = arr[at];
	else
		lease_clear(&arr[at]);
	memmove(arr + at, arr + at + 1, (*n - at - 1) * sizeof(*arr));
	(*n)--;
}

static void larr_free(struct lease *arr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lease_clear(&arr[i]);
	free(arr);
}

/* Appends *l, taking over its references (*l is zeroed); on ENOMEM *l is left as it was. */
static int larr_push(struct lease **arr, size_t *n, size_t *cap, struct lease *l)
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
	return lease_cmp(a, b);
}

/* Sorts by subnet, drops duplicate subnets and gives back the unused capacity. */
static void larr_sort(struct lease **arr, size_t *n, size_t *cap)
{
	size_t w = 0;

	if (*n > 1)
		qsort(*arr, *n, sizeof(**arr), lease_qcmp);
	for (size_t i = 0; i < *n; i++) {
		if (w > 0 && lease_cmp(&(*arr)[w - 1], &(*arr)[i]) == 0) {
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

static void report(struct leasemgr *m, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct leasemgr *m, int err, const char *fmt, ...)
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

static const char *errtext(const struct store_result *res, char *buf, size_t len)
{
	if (res->errmsg && *res->errmsg)
		return res->errmsg;
	snprintf(buf, len, "%s", strerror(-res->err));
	return buf;
}

static bool is_own_ip(const struct leasemgr *m, const struct lease_attrs *a)
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
static bool fits(const struct leasemgr *m, const struct lease *l)
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

static bool is_taken(const struct leasemgr *m, const struct lease *l)
{
	return (l->has_ipv4 && ipam_taken_overlaps(m->taken4, &l->subnet)) ||
	       (l->has_ipv6 && ipam_taken_overlaps(m->taken6, &l->ipv6_subnet));
}

static void taken_add(struct leasemgr *m, const struct lease *l)
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
static int parse_kv(struct leasemgr *m, const struct store_kv *kv, bool want_value,
                    struct lease *ret)
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

/* ---- the remote set ---- */

static bool hidden(const struct leasemgr *m, const struct lease *l)
{
	if (m->have_own && lease_cmp(l, &m->own) == 0)
		return true;
	if (m->have_pending && lease_cmp(l, &m->pending) == 0)
		return true;
	return is_own_ip(m, &l->attrs);
}

/*
 * The hiddenness of the key of @k may have changed (own, pending): move it between vis and
 * hid, emitting the difference.
 */
static void refresh_key(struct leasemgr *m, const struct lease *k)
{
	ssize_t vi, hi;
	struct lease l;

	if (!m->resynced)
		return;
	vi = lfind(m->vis, m->n_vis, k);
	if (vi >= 0 && hidden(m, &m->vis[vi])) {
		larr_remove(m->vis, &m->n_vis, (size_t)vi, &l);
		if (m->ev.removed)
			m->ev.removed(m->ctx, &l);
		hi = lfind(m->hid, m->n_hid, &l);
		if (hi >= 0 ||
		    larr_insert_move(&m->hid, &m->n_hid, &m->cap_hid, (size_t)(-hi - 1), &l) < 0)
			lease_clear(&l);
		return;
	}
	hi = lfind(m->hid, m->n_hid, k);
	if (hi >= 0 && !hidden(m, &m->hid[hi])) {
		larr_remove(m->hid, &m->n_hid, (size_t)hi, &l);
		vi = lfind(m->vis, m->n_vis, &l);
		if (vi >= 0) {
			lease_clear(&l); /* cannot happen: a key is in one of the two */
			return;
		}
		vi = -vi - 1;
		if (larr_insert_move(&m->vis, &m->n_vis, &m->cap_vis, (size_t)vi, &l) < 0) {
			lease_clear(&l);
			return;
		}
		if (m->ev.added)
			m->ev.added(m->ctx, &m->vis[vi]);
	}
}

/* A lease was put (*l taken over, zeroed): store it in vis or hid, emitting the difference. */
static void set_put(struct leasemgr *m, struct lease *l)
{
	ssize_t vi = lfind(m->vis, m->n_vis, l), hi = lfind(m->hid, m->n_hid, l);

	if (hidden(m, l)) {
		if (vi >= 0) {
			struct lease gone;

			larr_remove(m->vis, &m->n_vis, (size_t)vi, &gone);
			if (m->ev.removed)
				m->ev.removed(m->ctx, &gone);
			lease_clear(&gone);
		}
		if (hi >= 0) {
			lease_clear(&m->hid[hi]);
			m->hid[hi] = *l;
			memset(l, 0, sizeof(*l));
		} else if (larr_insert_move(&m->hid, &m->n_hid, &m->cap_hid, (size_t)(-hi - 1), l) <
		           0) {
			lease_clear(l);
		}
		return;
	}
	if (hi >= 0)
		larr_remove(m->hid, &m->n_hid, (size_t)hi, NULL);
	if (vi >= 0) {
		struct lease *v = &m->vis[vi];
		bool changed = !lease_attrs_equal(&v->attrs, &l->attrs);

		lease_clear(v);
		*v = *l;
		memset(l, 0, sizeof(*l));
		m->changes += changed;
		if (changed && m->ev.added)
			m->ev.added(m->ctx, v);
		return;
	}
	vi = -vi - 1;
	if (larr_insert_move(&m->vis, &m->n_vis, &m->cap_vis, (size_t)vi, l) < 0) {
		lease_clear(l);
		return;
	}
	if (m->ev.added)
		m->ev.added(m->ctx, &m->vis[vi]);
}

/* The key of @k is gone (deleted, or its value no longer parses). */
static void set_del(struct leasemgr *m, const struct lease *k)
{
	ssize_t vi = lfind(m->vis, m->n_vis, k), hi = lfind(m->hid, m->n_hid, k);

	if (hi >= 0)
		larr_remove(m->hid, &m->n_hid, (size_t)hi, NULL);
	if (vi >= 0) {
		struct lease gone;

		larr_remove(m->vis, &m->n_vis, (size_t)vi, &gone);
		if (m->ev.removed)
			m->ev.removed(m->ctx, &gone);
		lease_clear(&gone);
	}
}

/* The lease held for the key of @k, visible or hidden; NULL when none. */
static const struct lease *set_find(const struct leasemgr *m, const struct lease *k)
{
	ssize_t i = lfind(m->vis, m->n_vis, k);

	if (i >= 0)
		return &m->vis[i];
	i = lfind(m->hid, m->n_hid, k);
	return i >= 0 ? &m->hid[i] : NULL;
}

/* ---- acquisition ---- */

static void acq_begin(struct leasemgr *m);
static void own_lost(struct leasemgr *m);
static void w_list(struct leasemgr *m);
static void w_apply(struct leasemgr *m, struct lease *nall, size_t n, size_t cap, int64_t revision);

static void seed_drop(struct leasemgr *m)
{
	larr_free(m->seed, m->n_seed);
	m->seed = NULL;
	m->n_seed = m->cap_seed = 0;
	m->have_seed = false;
}

static void acq_retry(struct leasemgr *m)
{
	ev_timer_start(m->acq_timer, (uint64_t)m->acq_backoff_ms, 0);
	m->acq_backoff_ms *= 2;
	if (m->acq_backoff_ms > m->backoff_max_ms)
		m->acq_backoff_ms = m->backoff_max_ms;
}

static void clear_pending(struct leasemgr *m)
{
	struct lease k;

	if (!m->have_pending)
		return;
	k = m->pending;
	memset(&k.attrs, 0, sizeof(k.attrs));
	m->have_pending = false;
	lease_clear(&m->pending);
	m->pending_key[0] = '\0';
	refresh_key(m, &k);
}

static void set_pending(struct leasemgr *m, const struct lease *l)
{
	clear_pending(m);
	lease_copy(&m->pending, l);
	m->have_pending = true;
	lease_key_format(l, m->pending_key);
	refresh_key(m, l);
}

static void schedule_renew(struct leasemgr *m, int64_t after_ms)
{
	ev_timer_start(m->renew_timer, (uint64_t)after_ms, 0);
}

static int64_t renew_interval_ms(const struct leasemgr *m)
{
	int64_t units = m->ttl_s - m->margin_s;

	if (units <= 0)
		units = m->ttl_s / 2 > 0 ? m->ttl_s / 2 : 1;
	return units * m->unit_ms;
}

static void acquired(struct leasemgr *m, int64_t store_lease, int64_t revision)
{
	struct lease k;

	lease_clear(&m->own);
	lease_copy(&m->own, &m->pending);
	lease_attrs_clear(&m->own.attrs);
	lease_attrs_copy(&m->own.attrs, &m->own_attrs);
	m->own.store_lease_id = store_lease;
	m->own.mod_revision = revision;
	m->own.expires_at = store_lease ? realtime_s() + m->ttl_s * m->unit_ms / 1000 : 0;
	memcpy(m->own_key, m->pending_key, sizeof(m->own_key));
	m->have_own = true;
	k = m->pending;
	m->have_pending = false;
	lease_clear(&m->pending);
	m->pending_key[0] = '\0';
	ipam_taken_free(m->taken4);
	ipam_taken_free(m->taken6);
	m->taken4 = m->taken6 = NULL;
	m->races = 0;
	m->acq_backoff_ms = m->acq_retry_ms;
	if (store_lease)
		schedule_renew(m, renew_interval_ms(m));
	if (m->ev.own_acquired)
		m->ev.own_acquired(m->ctx, &m->own);
	memset(&k.attrs, 0, sizeof(k.attrs));
	refresh_key(m, &k);
	if (!m->watching_started) {
		m->watching_started = true;
		if (m->have_seed) {
			/* The remote set from the acquisition listing; the watch from its revision
			 * + 1 brings everything since, this acquisition included. */
			struct lease *seed = m->seed;
			size_t n = m->n_seed, cap = m->cap_seed;
			int64_t rev = m->seed_rev;

			m->seed = NULL;
			m->n_seed = m->cap_seed = 0;
			m->have_seed = false;
			w_apply(m, seed, n, cap, rev);
		} else {
			w_list(m);
		}
	}
}

/* Managers freed with requests in flight, not yet released (leasemgr_zombies). */
static int zombies;

int leasemgr_zombies(void)
{
	return zombies;
}

static bool req_done(struct leasemgr *m)
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

static void revoke_cb(void *ctx, const struct store_result *res)
{
	(void)res;
	req_done(ctx);
}

static void create_cb(void *ctx, const struct store_result *res);
static int list_leases(struct leasemgr *m, store_cb cb);
static void rewrite_cb(void *ctx, const struct store_result *res);

static const char *full_key(const struct leasemgr *m, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", m->subnets_prefix, suffix);
	return buf;
}

static void try_create(struct leasemgr *m, const struct lease *cand)
{
	char key[PATH_MAX], guard[PATH_MAX], v4key[LEASE_KEY_MAX];
	struct lease v4 = { .has_ipv4 = true, .subnet = cand->subnet };
	struct store *st = m->store;
	int r;

	set_pending(m, cand);
	full_key(m, m->pending_key, key, sizeof(key));
	if (cand->has_ipv4 && st->ops->create_guarded) {
		/* Atomic for the IPv4 half: fails when any key holds this IPv4 subnet, whatever
		 * its IPv6 part (a plain create-if-absent only sees this exact key). */
		full_key(m, lease_key_format(&v4, v4key), guard, sizeof(guard));
		r = st->ops->create_guarded(st, key, guard, m->own_value, strlen(m->own_value),
		                            m->ttl_s, create_cb, m);
	} else {
		r = st->ops->create(st, key, m->own_value, strlen(m->own_value), m->ttl_s,
		                    create_cb, m);
	}
	if (r < 0) {
		clear_pending(m);
		report(m, r, "creating lease %s: %s; retrying in %" PRId64 " ms", m->pending_key,
		       strerror(-r), m->acq_backoff_ms);
		acq_retry(m);
		return;
	}
	m->outstanding++;
}

static void pick_and_create(struct leasemgr *m)
{
	struct lease cand = { 0 };
	const struct subnet_config *c = &m->cfg;
	int r;

	if (c->enable_ipv4) {
		r = ipam_pick(&c->subnet_min, &c->subnet_max, c->subnet_len, m->taken4, m->rnd,
		              m->rnd_ctx, &cand.subnet);
		if (r < 0)
			goto fail4;
		cand.has_ipv4 = true;
	}
	if (c->enable_ipv6) {
		r = ipam_pick(&c->ipv6_subnet_min, &c->ipv6_subnet_max, c->ipv6_subnet_len,
		              m->taken6, m->rnd, m->rnd_ctx, &cand.ipv6_subnet);
		if (r < 0)
			goto fail6;
		cand.has_ipv6 = true;
	}
	try_create(m, &cand);
	return;
fail4:
fail6:;
	{
		bool v6 = c->enable_ipv6 && (!c->enable_ipv4 || cand.has_ipv4);
		const struct ipam_prefix *net = v6 ? &c->ipv6_network : &c->network;
		const struct ipam_prefix *min = v6 ? &c->ipv6_subnet_min : &c->subnet_min;
		const struct ipam_prefix *max = v6 ? &c->ipv6_subnet_max : &c->subnet_max;
		char a[IPAM_PREFIX_STRLEN], b[IPAM_PREFIX_STRLEN], d[IPAM_PREFIX_STRLEN];
		uint64_t count =
			ipam_prefix_count(min, max, v6 ? c->ipv6_subnet_len : c->subnet_len);

		if (r == -ENOSPC)
			report(m, -ENOSPC,
			       "out of subnets: all %" PRIu64
			       " subnets of %s between %s and %s are taken; retrying in %" PRId64
			       " ms",
			       count, ipam_prefix_format(net, a), ipam_prefix_format(min, b),
			       ipam_prefix_format(max, d), m->acq_backoff_ms);
		else
			report(m, r, "choosing a subnet of %s: %s; retrying in %" PRId64 " ms",
			       ipam_prefix_format(net, a), strerror(-r), m->acq_backoff_ms);
		acq_retry(m);
	}
}

/* The pending key is someone else's (or given back): pick again among the rest. */
static void lost_race(struct leasemgr *m)
{
	taken_add(m, &m->pending);
	clear_pending(m);
	if (++m->races >= RACES_BEFORE_RELIST) {
		m->races = 0;
		acq_begin(m);
	} else {
		pick_and_create(m);
	}
}

static void giveback_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	char eb[128];

	if (req_done(m))
		return;
	if (res->err && res->err != -ENOENT) { /* -ENOENT: the lease is gone already */
		report(m, res->err, "giving lease %s back: %s; retrying in %" PRId64 " ms",
		       m->pending_key, errtext(res, eb, sizeof(eb)), m->acq_backoff_ms);
		acq_retry(m); /* acq_timer_cb gives it back first */
		return;
	}
	m->giveback = false;
	lost_race(m);
}

/* Give the pending key back (revoking its store lease deletes it), then pick again. */
static void giveback(struct leasemgr *m)
{
	char key[PATH_MAX];
	int r;

	m->giveback = true;
	if (m->race_lease)
		r = m->store->ops->revoke(m->store, m->race_lease, giveback_cb, m);
	else
		r = m->store->ops->del(m->store, full_key(m, m->pending_key, key, sizeof(key)),
		                       m->race_rev, giveback_cb, m);
	if (r < 0) {
		report(m, r, "giving lease %s back: %s; retrying in %" PRId64 " ms",
		       m->pending_key, strerror(-r), m->acq_backoff_ms);
		acq_retry(m);
		return;
	}
	m->outstanding++;
}

static void race_page(struct leasemgr *m, const struct store_result *res)
{
	if (m->race_fresh || res->first_page) {
		m->race_fresh = false;
		lease_race_init(&m->race, m->subnets_prefix, m->pending_key,
		                &m->pending.ipv6_subnet);
	}
	lease_race_page(&m->race, res->kvs, res->n_kvs);
}

static void race_list_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	char eb[128];

	if (!res->err && res->more) {
		if (!m->zombie)
			race_page(m, res);
		return;
	}
	if (req_done(m))
		return;
	if (res->err) {
		report(m, res->err, "checking lease %s against the others: %s; giving it back",
		       m->pending_key, errtext(res, eb, sizeof(eb)));
		giveback(m);
		return;
	}
	race_page(m, res);
	if (lease_race_won(&m->race)) {
		acquired(m, m->race_lease, m->race_rev);
		return;
	}
	log_debug("leasemgr: %s lost its IPv6 subnet to %s (created first); giving it back",
	          m->pending_key, m->race.older[0] ? m->race.older : "nobody (key gone)");
	giveback(m);
}

/*
 * A create holding an IPv6 subnet succeeded. Its IPv6 half was not guarded (lease_race.h:
 * the IPv6 part is the key's suffix, no etcd range covers it), so another node may hold
 * the same IPv6 subnet under another IPv4 subnet. Check that with one listing BEFORE the
 * lease counts as acquired: until then nothing has written the subnet file or programmed
 * a route, so losing costs one more create, while two nodes with one IPv6 subnet would
 * break the network.
 */
static void race_check(struct leasemgr *m, int64_t store_lease, int64_t revision)
{
	int r;

	m->race_lease = store_lease;
	m->race_rev = revision;
	m->race_fresh = true;
	r = list_leases(m, race_list_cb);
	if (r < 0) {
		report(m, r, "checking lease %s against the others: %s; giving it back",
		       m->pending_key, strerror(-r));
		giveback(m);
		return;
	}
	m->outstanding++;
}

static void create_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	char eb[128];

	if (req_done(m))
		return;
	if (res->err) {
		report(m, res->err, "creating lease %s: %s; retrying in %" PRId64 " ms",
		       m->pending_key, errtext(res, eb, sizeof(eb)), m->acq_backoff_ms);
		clear_pending(m);
		acq_retry(m);
		return;
	}
	if (!res->succeeded) {
		lost_race(m); /* someone holds it now */
		return;
	}
	if (m->pending.has_ipv6) {
		race_check(m, res->lease_id, res->revision);
		return;
	}
	acquired(m, res->lease_id, res->revision);
}

static void rewrite_cas(struct leasemgr *m, int64_t lease_id)
{
	char key[PATH_MAX];
	int r = m->store->ops->cas(m->store, full_key(m, m->pending_key, key, sizeof(key)),
	                           m->own_value, strlen(m->own_value), m->pending_mod_rev, lease_id,
	                           rewrite_cb, m);

	if (r < 0) {
		report(m, r, "rewriting lease %s: %s; retrying in %" PRId64 " ms", m->pending_key,
		       strerror(-r), m->acq_backoff_ms);
		clear_pending(m);
		acq_retry(m);
		return;
	}
	m->pending.store_lease_id = lease_id;
	m->outstanding++;
}

static void grant_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	char eb[128];

	if (req_done(m))
		return;
	if (res->err) {
		report(m, res->err,
		       "granting a lease of %" PRId64 " s: %s; retrying in %" PRId64 " ms",
		       m->ttl_s, errtext(res, eb, sizeof(eb)), m->acq_backoff_ms);
		clear_pending(m);
		acq_retry(m);
		return;
	}
	rewrite_cas(m, res->lease_id);
}

static void rewrite_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	int64_t old = m->old_store_lease;
	char eb[128];

	if (req_done(m))
		return;
	if (res->err) {
		report(m, res->err, "rewriting lease %s: %s; retrying in %" PRId64 " ms",
		       m->pending_key, errtext(res, eb, sizeof(eb)), m->acq_backoff_ms);
		clear_pending(m);
		acq_retry(m);
		return;
	}
	if (!res->succeeded) {
		/* Changed meanwhile (expired, rewritten): look again. */
		if (m->pending.store_lease_id &&
		    m->store->ops->revoke(m->store, m->pending.store_lease_id, revoke_cb, m) == 0)
			m->outstanding++;
		clear_pending(m);
		acq_begin(m);
		return;
	}
	acquired(m, m->pending.store_lease_id, res->revision);
	if (old && old != m->own.store_lease_id &&
	    m->store->ops->revoke(m->store, old, revoke_cb, m) == 0)
		m->outstanding++;
}

/* Step 1 of docs/compat.md §3: re-use the lease with our PublicIP. */
static void rewrite(struct leasemgr *m, const struct lease *mine)
{
	set_pending(m, mine);
	m->pending_mod_rev = mine->mod_revision;
	m->old_store_lease = mine->store_lease_id;
	if (mine->store_lease_id == 0) {
		/* A reservation stays a reservation (flannel turns it into a lease). */
		if (lease_attrs_equal(&mine->attrs, &m->own_attrs)) {
			acquired(m, 0, mine->mod_revision);
			return;
		}
		rewrite_cas(m, 0);
		return;
	}
	if (m->store->ops->grant(m->store, m->ttl_s, grant_cb, m) < 0) {
		clear_pending(m);
		report(m, -EIO,
		       "granting a lease: cannot queue the request; retrying in %" PRId64 " ms",
		       m->acq_backoff_ms);
		acq_retry(m);
		return;
	}
	m->outstanding++;
}

static void del_cb(void *ctx, const struct store_result *res)
{
	(void)res;
	req_done(ctx);
}

static bool try_preferred(struct leasemgr *m, const struct lease *cand)
{
	if (!fits(m, cand) || is_taken(m, cand))
		return false;
	try_create(m, cand);
	return true;
}

/* Forget an acquisition listing in progress. */
static void acq_list_drop(struct leasemgr *m)
{
	seed_drop(m);
	lease_clear(&m->mine);
	m->have_mine = false;
}

/* One page of the acquisition listing: taken subnets, the lease with our PublicIP, the seed. */
static void acq_page(struct leasemgr *m, const struct store_result *res)
{
	if (m->acq_fresh || res->first_page) {
		m->acq_fresh = false;
		acq_list_drop(m);
		m->acq_keep = !m->watching_started;
		ipam_taken_free(m->taken4);
		ipam_taken_free(m->taken6);
		m->taken4 = ipam_taken_new();
		m->taken6 = ipam_taken_new();
	}
	if (!m->taken4 || !m->taken6)
		return; /* out of memory: reported at the end */
	for (size_t i = 0; i < res->n_kvs; i++) {
		struct lease l;
		int r = parse_kv(m, &res->kvs[i], true, &l);

		if (r < 0)
			continue;
		taken_add(m, &l); /* a key with a bad value still holds its subnet */
		if (r == 1 && is_own_ip(m, &l.attrs)) {
			if (!m->have_mine && fits(m, &l)) {
				lease_copy(&m->mine, &l);
				m->have_mine = true;
			} else if (!fits(m, &l) && l.store_lease_id != 0 &&
			           m->store->ops->del(m->store, res->kvs[i].key, l.mod_revision,
			                              del_cb, m) == 0) {
				m->outstanding++;
			}
		}
		/* Before the first acquisition: keep the listing as the remote set's seed. */
		if (m->acq_keep && r == 1 &&
		    larr_push(&m->seed, &m->n_seed, &m->cap_seed, &l) < 0) {
			m->acq_keep = false;
			seed_drop(m);
		}
		lease_clear(&l);
	}
}

static void acq_list_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	char eb[128];

	if (!res->err && res->more) {
		if (!m->zombie)
			acq_page(m, res);
		return;
	}
	if (req_done(m))
		return;
	if (!res->err)
		acq_page(m, res);
	if (res->err || !m->taken4 || !m->taken6) {
		acq_list_drop(m);
		if (res->err)
			report(m, res->err,
			       "listing leases under %s: %s; retrying in %" PRId64 " ms",
			       m->subnets_prefix, errtext(res, eb, sizeof(eb)), m->acq_backoff_ms);
		else
			report(m, -ENOMEM, "out of memory; retrying in %" PRId64 " ms",
			       m->acq_backoff_ms);
		acq_retry(m);
		return;
	}
	if (m->acq_keep) {
		larr_sort(&m->seed, &m->n_seed, &m->cap_seed);
		m->seed_rev = res->revision;
		m->have_seed = true;
	} else {
		seed_drop(m);
	}
	if (m->have_mine) {
		struct lease mine = m->mine;

		memset(&m->mine, 0, sizeof(m->mine));
		m->have_mine = false;
		rewrite(m, &mine);
		lease_clear(&mine);
		return;
	}
	if (m->have_prev && try_preferred(m, &m->prev))
		return;
	if (m->subnet_file) {
		struct subnetfile sf;
		char err[256];

		if (subnetfile_read(m->subnet_file, &sf, err, sizeof(err)) == 0) {
			struct lease cand = { 0 };

			if (sf.has_subnet) {
				cand.has_ipv4 = true;
				cand.subnet = ipam_prefix_network(&sf.subnet);
			}
			if (sf.has_ipv6_subnet) {
				cand.has_ipv6 = true;
				cand.ipv6_subnet = ipam_prefix_network(&sf.ipv6_subnet);
			}
			if ((cand.has_ipv4 || cand.has_ipv6) && try_preferred(m, &cand))
				return;
		}
	}
	pick_and_create(m);
}

/* Lists the leases for @cb, in pages when the store can. */
static int list_leases(struct leasemgr *m, store_cb cb)
{
	struct store *st = m->store;

	if (st->ops->list_pages)
		return st->ops->list_pages(st, m->subnets_prefix, cb, m);
	return st->ops->list(st, m->subnets_prefix, cb, m);
}

static void acq_begin(struct leasemgr *m)
{
	int r;

	m->acq_fresh = true;
	r = list_leases(m, acq_list_cb);

	if (r < 0) {
		report(m, r, "listing leases under %s: %s; retrying in %" PRId64 " ms",
		       m->subnets_prefix, strerror(-r), m->acq_backoff_ms);
		acq_retry(m);
		return;
	}
	m->outstanding++;
}

static void acq_timer_cb(struct ev_timer *t, void *ctx)
{
	struct leasemgr *m = ctx;

	(void)t;
	if (m->giveback)
		giveback(m);
	else
		acq_begin(m);
}

static void own_lost(struct leasemgr *m)
{
	struct lease old;

	if (!m->have_own)
		return;
	old = m->own;
	m->have_own = false;
	memset(&m->own, 0, sizeof(m->own));
	m->own_key[0] = '\0';
	ev_timer_stop(m->renew_timer);
	lease_clear(&m->prev);
	lease_copy(&m->prev, &old);
	m->have_prev = true;
	if (m->ev.own_lost)
		m->ev.own_lost(m->ctx, &old);
	refresh_key(m, &old);
	lease_clear(&old);
	m->acq_backoff_ms = m->acq_retry_ms;
	acq_begin(m);
}

static void keepalive_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	char eb[128], sb[2 * IPAM_PREFIX_STRLEN];

	if (req_done(m))
		return;
	if (!m->have_own || m->own.store_lease_id != m->renew_lease)
		return; /* about a lease we no longer hold */
	if (res->err) {
		report(m, res->err, "renewing lease %s: %s; retrying in %" PRId64 " ms",
		       leasemgr_subnets_str(&m->own, sb), errtext(res, eb, sizeof(eb)),
		       m->retry_ms);
		schedule_renew(m, m->retry_ms);
		return;
	}
	if (res->ttl <= 0) {
		own_lost(m);
		return;
	}
	m->own.expires_at = realtime_s() + res->ttl * m->unit_ms / 1000;
	m->renewals++;
	schedule_renew(m, renew_interval_ms(m));
}

static void renew_timer_cb(struct ev_timer *t, void *ctx)
{
	struct leasemgr *m = ctx;
	int r;

	(void)t;
	if (!m->have_own || !m->own.store_lease_id)
		return;
	m->renew_lease = m->own.store_lease_id;
	r = m->store->ops->keepalive(m->store, m->renew_lease, keepalive_cb, m);
	if (r < 0) {
		schedule_renew(m, m->retry_ms);
		return;
	}
	m->outstanding++;
}

/* ---- the remote set: list, resync, watch ---- */

static void w_retry(struct leasemgr *m)
{
	ev_timer_start(m->relist_timer, (uint64_t)m->w_backoff_ms, 0);
	m->w_backoff_ms *= 2;
	if (m->w_backoff_ms > m->backoff_max_ms)
		m->w_backoff_ms = m->backoff_max_ms;
}

static void handle_event(struct leasemgr *m, const struct store_event *e)
{
	struct lease l;
	int r = parse_kv(m, &e->kv, e->type == STORE_EV_PUT, &l);
	bool lost = false;

	if (r < 0)
		return;
	if (r == 1 && e->type == STORE_EV_PUT) {
		if (m->have_own && lease_cmp(&l, &m->own) == 0) {
			if (is_own_ip(m, &l.attrs)) {
				if (l.mod_revision > m->own.mod_revision)
					m->own.mod_revision = l.mod_revision;
			} else if (l.mod_revision > m->own.mod_revision) {
				lost = true; /* someone else wrote our key */
			}
		}
		set_put(m, &l); /* takes @l over */
	} else {
		set_del(m, &l);
		lost = m->have_own && lease_cmp(&l, &m->own) == 0 &&
		       e->kv.mod_revision > m->own.mod_revision;
	}
	if (lost)
		own_lost(m); /* shows the key's new holder, if any */
	lease_clear(&l);
}

static void w_event_cb(void *ctx, int err, const struct store_event *evs, size_t n,
                       int64_t revision)
{
	struct leasemgr *m = ctx;

	(void)revision;
	if (err) {
		log_debug("leasemgr: watch of %s ended (%s), listing again", m->subnets_prefix,
		          strerror(-err));
		m->dead_watch = m->watch;
		m->watch = NULL;
		ev_timer_start(m->relist_timer, 0, 0);
		return;
	}
	for (size_t i = 0; i < n; i++)
		handle_event(m, &evs[i]);
}

static void wl_drop(struct leasemgr *m)
{
	larr_free(m->wl, m->n_wl);
	m->wl = NULL;
	m->n_wl = m->cap_wl = 0;
	m->wl_oom = false;
}

/* One page of a relisting: its valid leases. */
static void w_page(struct leasemgr *m, const struct store_result *res)
{
	if (m->w_fresh || res->first_page) {
		m->w_fresh = false;
		wl_drop(m);
	}
	for (size_t i = 0; i < res->n_kvs && !m->wl_oom; i++) {
		struct lease l;

		if (parse_kv(m, &res->kvs[i], true, &l) == 1 &&
		    larr_push(&m->wl, &m->n_wl, &m->cap_wl, &l) < 0)
			m->wl_oom = true;
		lease_clear(&l);
	}
}

static void w_list_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	struct lease *nall;
	size_t n, cap;
	char eb[128];

	if (!res->err && res->more) {
		if (!m->zombie)
			w_page(m, res);
		return;
	}
	if (req_done(m))
		return;
	if (!res->err)
		w_page(m, res);
	if (res->err || m->wl_oom) {
		wl_drop(m);
		if (res->err)
			report(m, res->err,
			       "listing leases under %s: %s; retrying in %" PRId64 " ms",
			       m->subnets_prefix, errtext(res, eb, sizeof(eb)), m->w_backoff_ms);
		else
			report(m, -ENOMEM,
			       "listing leases under %s: out of memory; retrying in %" PRId64 " ms",
			       m->subnets_prefix, m->w_backoff_ms);
		w_retry(m);
		return;
	}
	nall = m->wl;
	n = m->n_wl;
	cap = m->cap_wl;
	m->wl = NULL;
	m->n_wl = m->cap_wl = 0;
	larr_sort(&nall, &n, &cap);
	w_apply(m, nall, n, cap, res->revision);
}

/*
 * Take @nall (sorted, owned) as the set of every lease at @revision, and watch from there.
 * The hidden few move to hid; the rest, in place, becomes vis (no copy).
 */
static void w_apply(struct leasemgr *m, struct lease *nall, size_t n, size_t cap, int64_t revision)
{
	struct lease *nhid = NULL;
	size_t n_hid = 0, cap_hid = 0, w = 0;

	for (size_t i = 0; i < n; i++) {
		if (hidden(m, &nall[i])) {
			if (larr_push(&nhid, &n_hid, &cap_hid, &nall[i]) < 0)
				lease_clear(&nall[i]);
			continue;
		}
		if (w != i)
			nall[w] = nall[i];
		w++;
	}
	n = w;
	if (n == 0) {
		free(nall);
		nall = NULL;
		cap = 0;
	} else if (cap > n) {
		/* exactly sized: at 10,000 leases the slack is most of a MB */
		struct lease *na = realloc(nall, n * sizeof(*na));

		if (na) {
			nall = na;
			cap = n;
		}
	}
	larr_free(m->hid, m->n_hid);
	m->hid = nhid;
	m->n_hid = n_hid;
	m->cap_hid = cap_hid;
	if (!m->resynced) {
		larr_free(m->vis, m->n_vis);
		m->vis = nall;
		m->n_vis = n;
		m->cap_vis = cap;
		m->resynced = true;
		if (m->ev.resync)
			m->ev.resync(m->ctx, m->vis, m->n_vis);
	} else {
		struct lease *old = m->vis;
		size_t n_old = m->n_vis, i = 0, j = 0;

		m->vis = nall;
		m->n_vis = n;
		m->cap_vis = cap;
		/* Every key in either set: report the difference. */
		while (i < n_old || j < n) {
			int c = i == n_old ? 1 : j == n ? -1 : lease_cmp(&old[i], &nall[j]);

			if (c < 0) {
				if (m->ev.removed)
					m->ev.removed(m->ctx, &old[i]);
				i++;
			} else if (c > 0) {
				if (m->ev.added)
					m->ev.added(m->ctx, &nall[j]);
				j++;
			} else {
				if (!lease_attrs_equal(&old[i].attrs, &nall[j].attrs)) {
					m->changes++;
					if (m->ev.added)
						m->ev.added(m->ctx, &nall[j]);
				}
				i++;
				j++;
			}
		}
		larr_free(old, n_old);
		/* The own lease vanished, or another node took the key, while the watch was down. */
		if (m->have_own) {
			const struct lease *at = set_find(m, &m->own);

			if (!at ? revision > m->own.mod_revision
			        : !is_own_ip(m, &at->attrs) &&
			                    at->mod_revision > m->own.mod_revision)
				own_lost(m);
			else if (!at && m->own.store_lease_id)
				/* Gone at a revision below ours: the store went backwards (wiped or
				 * restored). A keepalive now tells whether the lease still exists. */
				schedule_renew(m, 0);
		}
	}
	m->w_backoff_ms = m->acq_retry_ms;
	m->watch = m->store->ops->watch(m->store, m->subnets_prefix, revision + 1, w_event_cb, m);
	if (!m->watch) {
		report(m, -errno, "watching %s: %s; retrying in %" PRId64 " ms", m->subnets_prefix,
		       strerror(errno), m->w_backoff_ms);
		w_retry(m);
	}
}

static void w_list(struct leasemgr *m)
{
	int r;

	m->w_fresh = true;
	r = list_leases(m, w_list_cb);

	if (r < 0) {
		report(m, r, "listing leases under %s: %s; retrying in %" PRId64 " ms",
		       m->subnets_prefix, strerror(-r), m->w_backoff_ms);
		w_retry(m);
		return;
	}
	m->outstanding++;
}

static void relist_timer_cb(struct ev_timer *t, void *ctx)
{
	struct leasemgr *m = ctx;

	(void)t;
	if (m->dead_watch) {
		m->store->ops->watch_free(m->dead_watch);
		m->dead_watch = NULL;
	}
	if (!m->watch)
		w_list(m);
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
	m->acq_timer = ev_timer_new(loop, acq_timer_cb, m);
	m->renew_timer = ev_timer_new(loop, renew_timer_cb, m);
	m->relist_timer = ev_timer_new(loop, relist_timer_cb, m);
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
	acq_begin(m);
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
	larr_free(m->hid, m->n_hid);
	larr_free(m->vis, m->n_vis);
	larr_free(m->seed, m->n_seed);
	larr_free(m->wl, m->n_wl);
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
