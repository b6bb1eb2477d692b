/*
 * Scaffolding shared by the lease manager tests (test_subnet_leasemgr.c on the local
 * store, test_subnet_leasemgr_etcd.c on a real etcd): blocking store helpers, a consumer
 * that mirrors the remote set from the callbacks and counts anomalies (duplicate events,
 * removals of unknown leases, skipped keys, errors), a deterministic random source, and
 * polling with deadlines.
 *
 * Header-only: every function is static (and may be unused by one of the files). The
 * including file sets `loop` in its suite setup; LM_WAIT_MS (default 3000) may be defined
 * before the include to set the deadline of wait_ready() and wait_set().
 */
#ifndef TWILL_TESTS_LEASEMGR_TESTUTIL_H
#define TWILL_TESTS_LEASEMGR_TESTUTIL_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "lib/ev.h"
#include "subnet/config.h"
#include "subnet/lease.h"
#include "subnet/leasemgr.h"
#include "subnet/store.h"

#ifndef LM_WAIT_MS
#define LM_WAIT_MS 3000
#endif

#define LM_UNUSED __attribute__((unused))

#define PFX   "/coreos.com/network"
#define SUBS  PFX "/subnets/"
#define MYIP  "192.0.2.1"
#define OTHER "192.0.2.2"
#define NET16 "{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,\"Backend\":{\"Type\":\"vxlan\"}}"

#define LM_SET_MAX  128
#define LM_SKIP_MAX 16

static struct ev_loop *loop;

/* ---- store helpers ---- */

struct res {
	bool done;
	int err;
	bool succeeded;
	size_t n;
	int64_t revision, lease_id;
	int64_t lease[4], mod_rev[4];
	char value[4][512];
};

LM_UNUSED static void res_cb(void *ctx, const struct store_result *r)
{
	struct res *o = ctx;

	o->done = true;
	o->err = r->err;
	o->succeeded = r->succeeded;
	o->n = r->n_kvs;
	o->revision = r->revision;
	o->lease_id = r->lease_id;
	for (size_t i = 0; i < r->n_kvs && i < 4; i++) {
		o->lease[i] = r->kvs[i].lease;
		o->mod_rev[i] = r->kvs[i].mod_revision;
		snprintf(o->value[i], sizeof(o->value[i]), "%s", r->kvs[i].value);
	}
}

/* Put @key on @s: with @ttl_s > 0 created under a new store lease (res.lease_id), else a plain put. */
LM_UNUSED static struct res lm_put(struct store *s, const char *key, const char *value,
                                   int64_t ttl_s)
{
	struct res o = { 0 };

	if (ttl_s)
		cr_assert_eq(s->ops->create(s, key, value, strlen(value), ttl_s, res_cb, &o), 0);
	else
		cr_assert_eq(s->ops->put(s, key, value, strlen(value), 0, res_cb, &o), 0);
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 10000), 0, "put %s: no answer", key);
	cr_assert_eq(o.err, 0, "put %s: %s", key, strerror(-o.err));
	if (ttl_s)
		cr_assert(o.succeeded, "create %s: the key exists", key);
	return o;
}

LM_UNUSED static struct res lm_get(struct store *s, const char *key)
{
	struct res o = { 0 };

	cr_assert_eq(s->ops->get(s, key, res_cb, &o), 0);
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 10000), 0, "get %s: no answer", key);
	cr_assert_eq(o.err, 0, "get %s: %s", key, strerror(-o.err));
	return o;
}

LM_UNUSED static struct res lm_del(struct store *s, const char *key)
{
	struct res o = { 0 };

	cr_assert_eq(s->ops->del(s, key, 0, res_cb, &o), 0);
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 10000), 0, "del %s: no answer", key);
	cr_assert_eq(o.err, 0, "del %s: %s", key, strerror(-o.err));
	return o;
}

/* flannel's exact vxlan lease JSON for @ip (eight rotating buffers). */
LM_UNUSED static const char *lease_json(const char *ip)
{
	static char bufs[8][256];
	static unsigned next;
	char *buf = bufs[next++ % 8];

	snprintf(buf, sizeof(bufs[0]),
	         "{\"PublicIP\":\"%s\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\","
	         "\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"16:95:20:8d:5a:7b\"}}",
	         ip);
	return buf;
}

/* The key of a subnet string like 198.18.3.0/24. */
LM_UNUSED static const char *key_of(const char *subnet)
{
	static char buf[128];
	char *slash;

	snprintf(buf, sizeof(buf), SUBS "%s", subnet);
	slash = strrchr(buf, '/');
	cr_assert_not_null(slash, "not a subnet: %s", subnet);
	*slash = '-';
	return buf;
}

/* ---- consumer model ---- */

struct entry {
	char subnet[64];
	char ip[64];
	char type[32];
};

struct consumer {
	int acquired, lost, resyncs, errors, dup, unknown_removed, skipped, overflow;
	int added, removed; /* lease_added / lease_removed events received */
	int last_err;
	char last_msg[512];
	int enospc;           /* errors with -ENOSPC */
	char enospc_msg[512]; /* the last of them */
	char own[64];
	int64_t own_lease; /* store lease id of the own lease (0: a reservation) */
	struct entry set[LM_SET_MAX];
	size_t n;
	char skipped_keys[LM_SKIP_MAX][128]; /* distinct keys reported skipped */
	size_t n_skipped_keys;
	char last_skip_reason[512];
};

static void fmt_entry(const struct lease *l, struct entry *e)
{
	char sb[2 * IPAM_PREFIX_STRLEN];

	snprintf(e->subnet, sizeof(e->subnet), "%s", leasemgr_subnets_str(l, sb));
	ipam_addr_format(&l->attrs.public_ip, e->ip);
	snprintf(e->type, sizeof(e->type), "%s", l->attrs.backend_type);
}

static ssize_t c_find(const struct consumer *c, const char *subnet)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->set[i].subnet, subnet) == 0)
			return (ssize_t)i;
	return -1;
}

static void on_acquired(void *ctx, const struct lease *own)
{
	struct consumer *c = ctx;
	char sb[2 * IPAM_PREFIX_STRLEN];

	c->acquired++;
	snprintf(c->own, sizeof(c->own), "%s", leasemgr_subnets_str(own, sb));
	c->own_lease = own->store_lease_id;
}

static void on_lost(void *ctx, const struct lease *old)
{
	struct consumer *c = ctx;

	(void)old;
	c->lost++;
	c->own[0] = '\0';
}

static void on_resync(void *ctx, const struct lease *l, size_t n)
{
	struct consumer *c = ctx;

	c->resyncs++;
	c->n = 0;
	for (size_t i = 0; i < n; i++) {
		if (c->n == LM_SET_MAX) {
			c->overflow++;
			break;
		}
		fmt_entry(&l[i], &c->set[c->n++]);
	}
}

static void on_added(void *ctx, const struct lease *l)
{
	struct consumer *c = ctx;
	struct entry e;
	ssize_t i;

	c->added++;
	fmt_entry(l, &e);
	i = c_find(c, e.subnet);
	if (i >= 0) {
		if (memcmp(&c->set[i], &e, sizeof(e)) == 0)
			c->dup++;
		c->set[i] = e;
	} else if (c->n < LM_SET_MAX) {
		c->set[c->n++] = e;
	} else {
		c->overflow++;
	}
}

static void on_removed(void *ctx, const struct lease *l)
{
	struct consumer *c = ctx;
	struct entry e;
	ssize_t i;

	c->removed++;
	fmt_entry(l, &e);
	i = c_find(c, e.subnet);
	if (i < 0) {
		c->unknown_removed++;
		return;
	}
	c->set[i] = c->set[--c->n];
}

static void on_error(void *ctx, int err, const char *msg)
{
	struct consumer *c = ctx;

	c->errors++;
	c->last_err = err;
	snprintf(c->last_msg, sizeof(c->last_msg), "%s", msg);
	if (err == -ENOSPC) {
		c->enospc++;
		snprintf(c->enospc_msg, sizeof(c->enospc_msg), "%s", msg);
	}
}

static void on_skipped(void *ctx, const char *key, const char *reason)
{
	struct consumer *c = ctx;

	c->skipped++;
	snprintf(c->last_skip_reason, sizeof(c->last_skip_reason), "%s", reason);
	for (size_t i = 0; i < c->n_skipped_keys; i++)
		if (strcmp(c->skipped_keys[i], key) == 0)
			return;
	if (c->n_skipped_keys < LM_SKIP_MAX)
		snprintf(c->skipped_keys[c->n_skipped_keys++], sizeof(c->skipped_keys[0]), "%s",
		         key);
}

/* @key was reported through the skipped callback at least once. */
LM_UNUSED static bool c_skipped_key(const struct consumer *c, const char *key)
{
	for (size_t i = 0; i < c->n_skipped_keys; i++)
		if (strcmp(c->skipped_keys[i], key) == 0)
			return true;
	return false;
}

static const struct leasemgr_events events = {
	.own_acquired = on_acquired,
	.own_lost = on_lost,
	.resync = on_resync,
	.added = on_added,
	.removed = on_removed,
	.error = on_error,
	.skipped = on_skipped,
};

/* ---- deterministic random source: always @value (clamped below the bound) ---- */

struct fixed_rnd {
	uint64_t value;
	int calls;
	struct store *store;   /* for precreate */
	const char *precreate; /* on the first call, put this key for OTHER first (on store) */
};

static void ignore_cb(void *ctx, const struct store_result *r)
{
	(void)ctx;
	cr_assert_eq(r->err, 0);
}

LM_UNUSED static uint64_t fixed(void *ctx, uint64_t bound)
{
	struct fixed_rnd *r = ctx;

	/* Queued before the manager's create, so the create loses the race. */
	if (r->calls++ == 0 && r->precreate) {
		const char *v = lease_json(OTHER);

		cr_assert_not_null(r->store);
		cr_assert_eq(r->store->ops->put(r->store, r->precreate, v, strlen(v), 0, ignore_cb,
		                                NULL),
		             0);
	}
	return r->value < bound ? r->value : bound - 1;
}

/* ---- starting a manager ---- */

static struct subnet_config *config(const char *json)
{
	char err[SUBNET_ERR_MAX];
	struct subnet_config *cfg = subnet_config_parse(json, strlen(json), err, sizeof(err));

	cr_assert_not_null(cfg, "config: %s", err);
	return cfg;
}

/* vxlan attributes (VNI 1, VtepMAC 16:95:20:8d:5a:@macbyte) for @ip. */
static void attrs(struct lease_attrs *a, const char *ip, uint8_t macbyte)
{
	uint8_t mac[6] = { 0x16, 0x95, 0x20, 0x8d, 0x5a, macbyte };

	memset(a, 0, sizeof(*a));
	cr_assert_eq(ipam_addr_parse(ip, &a->public_ip), 0);
	strcpy(a->backend_type, "vxlan");
	cr_assert_eq(lease_attrs_set_vxlan(a, 1, mac), 0);
}

/* A manager on @s with @o, reporting to @c, started with @cfgjson and lease_json(@ip)'s attributes. */
LM_UNUSED static struct leasemgr *lm_start(struct store *s, const struct leasemgr_opts *o,
                                           struct consumer *c, const char *cfgjson, const char *ip)
{
	struct subnet_config *cfg = config(cfgjson);
	struct lease_attrs a;
	struct leasemgr *m = leasemgr_new(loop, s, o, &events, c);

	cr_assert_not_null(m);
	attrs(&a, ip, 0x7b);
	cr_assert_eq(leasemgr_start(m, cfg, &a), 0);
	lease_attrs_clear(&a);
	subnet_config_free(cfg);
	return m;
}

/* ---- polling ---- */

static bool wait_for(bool (*pred)(void *), void *arg, int ms)
{
	uint64_t end = ev_now_ms() + (uint64_t)ms;

	while (!pred(arg)) {
		if (ev_now_ms() >= end)
			return false;
		ev_loop_run_once(loop, 5);
	}
	return true;
}

static void run_for(int ms)
{
	uint64_t end = ev_now_ms() + (uint64_t)ms;

	while (ev_now_ms() < end)
		ev_loop_run_once(loop, 5);
}

/* Own lease acquired and the remote set reported. */
static bool ready(void *p)
{
	struct consumer *c = p;

	return c->acquired > 0 && c->resyncs > 0 && c->own[0];
}

LM_UNUSED static void wait_ready(struct consumer *c)
{
	cr_assert(wait_for(ready, c, LM_WAIT_MS), "no lease acquired (last error: %s)",
	          c->last_msg);
}

/* Lost once at least, and acquired again. */
LM_UNUSED static bool reacquired(void *p)
{
	struct consumer *c = p;

	return c->lost >= 1 && c->acquired >= 2 && c->own[0];
}

/* ---- the consumer's set against an expectation ---- */

struct expect {
	const char *subnet;
	const char *ip;
};

/* Checks the consumer's set (and the manager's) is exactly @e, sorted, without anomalies. */
static void assert_set(struct consumer *c, struct leasemgr *m, const struct expect *e, size_t n)
{
	size_t rn;
	const struct lease *r = leasemgr_remote(m, &rn);

	cr_assert_eq(c->n, n, "consumer has %zu leases, want %zu", c->n, n);
	cr_assert_eq(rn, n);
	for (size_t i = 0; i < n; i++) {
		ssize_t at = c_find(c, e[i].subnet);

		cr_assert_geq(at, 0, "missing %s", e[i].subnet);
		cr_assert_str_eq(c->set[at].ip, e[i].ip, "%s", e[i].subnet);
	}
	for (size_t i = 1; i < rn; i++)
		cr_assert_lt(ipam_prefix_cmp(&r[i - 1].subnet, &r[i].subnet), 0, "sorted");
	cr_assert_eq(c->dup, 0, "duplicate events");
	cr_assert_eq(c->unknown_removed, 0, "removal of an unknown lease");
	cr_assert_eq(c->overflow, 0, "more than %d remote leases", LM_SET_MAX);
}

struct set_want {
	struct consumer *c;
	const struct expect *e;
	size_t n;
};

static bool set_matches(void *p)
{
	const struct set_want *w = p;

	if (w->c->n != w->n)
		return false;
	for (size_t i = 0; i < w->n; i++) {
		ssize_t at = c_find(w->c, w->e[i].subnet);

		if (at < 0 || strcmp(w->c->set[at].ip, w->e[i].ip) != 0)
			return false;
	}
	return true;
}

/* Waits (LM_WAIT_MS at most) until the consumer's set is @e, lets @settle_ms pass, checks it exactly. */
LM_UNUSED static void wait_set(struct consumer *c, struct leasemgr *m, const struct expect *e,
                               size_t n, int settle_ms)
{
	struct set_want w = { c, e, n };

	if (!wait_for(set_matches, &w, LM_WAIT_MS))
		for (size_t i = 0; i < c->n; i++)
			fprintf(stderr, "have %s %s\n", c->set[i].subnet, c->set[i].ip);
	run_for(settle_ms); /* nothing more may arrive */
	assert_set(c, m, e, n);
}

#endif
