/*
 * Dual-stack create races, shared by test_subnet_leasemgr_race.c (local store) and
 * test_subnet_leasemgr_race_etcd.c (real etcd): store create_guarded, a manager whose
 * chosen IPv4 or IPv6 subnet is taken just before its create, and many managers started
 * at once on a tiny network. Header-only, included after leasemgr_testutil.h.
 *
 * The including file provides `st` (the managers' store, on `loop`) and
 * race_other_store(l): a new client of the same store on loop @l, for writes made by
 * "another node" that must be complete before the call returns.
 */
#ifndef TWILL_TESTS_LEASEMGR_RACE_H
#define TWILL_TESTS_LEASEMGR_RACE_H

#include "subnet/store_util.h"

static struct store *st;
static struct store *race_other_store(struct ev_loop *l);

/* 198.18.0.0/16 and 2001:db8:100::/56 with /24 and /64 subnets, from .1 / :1:: on. */
#define DS_NET                                                                              \
	"{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,\"EnableIPv6\":true,"              \
	"\"IPv6Network\":\"2001:db8:100::/56\",\"IPv6SubnetLen\":64,\"Backend\":{\"Type\":" \
	"\"vxlan\"}}"
/* Only 12 subnets of each family: 8 managers at once collide often. */
#define DS_TINY                                                                              \
	"{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,\"SubnetMin\":\"198.18.1.0\","      \
	"\"SubnetMax\":\"198.18.12.0\",\"EnableIPv6\":true,\"IPv6Network\":"                 \
	"\"2001:db8:100::/56\",\"IPv6SubnetLen\":64,\"IPv6SubnetMin\":\"2001:db8:100:1::\"," \
	"\"IPv6SubnetMax\":\"2001:db8:100:c::\",\"Backend\":{\"Type\":\"vxlan\"}}"

/* ---- store level ---- */

struct gres {
	bool done;
	int err;
	bool succeeded;
	int64_t lease_id;
	size_t n;
	char key[4][128];
};

static void gres_cb(void *ctx, const struct store_result *r)
{
	struct gres *o = ctx;

	o->done = true;
	o->err = r->err;
	o->succeeded = r->succeeded;
	o->lease_id = r->lease_id;
	o->n = r->n_kvs;
	for (size_t i = 0; i < r->n_kvs && i < 4; i++)
		snprintf(o->key[i], sizeof(o->key[i]), "%s", r->kvs[i].key);
}

static struct gres guarded(const char *key, const char *guard)
{
	struct gres o = { 0 };
	const char *v = lease_json(OTHER);

	cr_assert_eq(st->ops->create_guarded(st, key, guard, v, strlen(v), 30, gres_cb, &o), 0);
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 10000), 0, "create %s: no answer", key);
	cr_assert_eq(o.err, 0, "create %s: %s", key, strerror(-o.err));
	return o;
}

#define G74 SUBS "198.18.74.0-24"

LM_UNUSED static void race_store_guarded(void)
{
	struct gres a = guarded(G74 "&2001:db8:100:a::-64", G74), b, c;
	const char *v = "x";

	cr_assert(a.succeeded);
	cr_assert_gt(a.lease_id, 0);
	/* same IPv4 subnet, other IPv6 subnet: a plain create-if-absent let this through */
	b = guarded(G74 "&2001:db8:100:f::-64", G74);
	cr_assert_not(b.succeeded, "a second key for 198.18.74.0/24 was created");
	cr_assert_eq(b.lease_id, 0);
	cr_assert_eq(b.n, 1);
	cr_assert_str_eq(b.key[0], G74 "&2001:db8:100:a::-64");
	cr_assert_not(guarded(G74, G74).succeeded, "IPv4-only key next to a dual-stack one");
	cr_assert_eq(lm_get(st, G74 "&2001:db8:100:f::-64").n, 0);
	cr_assert_eq(lm_get(st, G74).n, 0);
	/* 198.18.7.0-24 sorts right before 198.18.74...: outside its guard */
	cr_assert(
		guarded(SUBS "198.18.7.0-24&2001:db8:100:a::-64", SUBS "198.18.7.0-24").succeeded);
	cr_assert_eq(st->ops->create_guarded(st, SUBS "198.18.8.0-24", G74, v, 1, 0, gres_cb, &c),
	             -EINVAL, "a key outside its guard");
	/* two at once: exactly one */
	struct gres x = { 0 }, y = { 0 };

	cr_assert_eq(st->ops->create_guarded(st, SUBS "198.18.9.0-24&2001:db8:100:1::-64",
	                                     SUBS "198.18.9.0-24", v, 1, 30, gres_cb, &x),
	             0);
	cr_assert_eq(st->ops->create_guarded(st, SUBS "198.18.9.0-24&2001:db8:100:2::-64",
	                                     SUBS "198.18.9.0-24", v, 1, 30, gres_cb, &y),
	             0);
	cr_assert_eq(ev_loop_run_until(loop, &x.done, 10000), 0);
	cr_assert_eq(ev_loop_run_until(loop, &y.done, 10000), 0);
	cr_assert_eq(x.err + y.err, 0);
	cr_assert_eq((int)x.succeeded + (int)y.succeeded, 1, "both or neither created");
}

/* ---- a manager losing one half ---- */

/* Written and answered on another loop before this returns: "another node" got there first. */
static void other_put(const char *key, const char *value)
{
	struct ev_loop *l = ev_loop_new();
	struct store *s;
	struct res o = { 0 };

	cr_assert_not_null(l);
	s = race_other_store(l);
	cr_assert_eq(s->ops->put(s, key, value, strlen(value), 0, res_cb, &o), 0);
	cr_assert_eq(ev_loop_run_until(l, &o.done, 10000), 0, "put %s: no answer", key);
	cr_assert_eq(o.err, 0, "put %s: %s", key, strerror(-o.err));
	store_free(s);
	ev_loop_free(l);
}

/* Always the first free subnet; on the first call (the IPv4 pick) another node takes @key. */
struct race_rnd {
	int calls;
	const char *key;
};

static uint64_t race_first(void *ctx, uint64_t bound)
{
	struct race_rnd *r = ctx;

	(void)bound;
	if (r->calls++ == 0 && r->key)
		other_put(r->key, lease_json(OTHER));
	return 0;
}

static struct leasemgr *race_mgr(struct consumer *c, const char *cfg, const char *prefix,
                                 const char *ip, struct race_rnd *rnd)
{
	struct leasemgr_opts o = {
		.prefix = prefix,
		.lease_ttl_s = 600,
		.acquire_retry_ms = 10,
		.rnd = rnd ? race_first : NULL,
		.rnd_ctx = rnd,
	};

	return lm_start(st, &o, c, cfg, ip);
}

static bool one_remote(void *p)
{
	return ((struct consumer *)p)->n == 1;
}

/* The manager's first choice is 198.18.1.0/24 + 2001:db8:100:1::/64; @other holds one half. */
static void race_one_half(const char *other)
{
	struct consumer c = { 0 };
	struct race_rnd rnd = { .key = other };
	struct leasemgr *m = race_mgr(&c, DS_NET, PFX, MYIP, &rnd);

	wait_ready(&c);
	cr_assert_geq(rnd.calls, 4, "picked only once");
	cr_assert_str_eq(c.own, "198.18.2.0/24,2001:db8:100:2::/64");
	cr_assert_eq(c.acquired, 1, "the contested lease was reported acquired");
	cr_assert_eq(c.lost, 0);
	/* the contested key is not in the store (given back, or never created) */
	cr_assert_eq(lm_get(st, SUBS "198.18.1.0-24&2001:db8:100:1::-64").n, 0);
	cr_assert_eq(lm_get(st, SUBS "198.18.2.0-24&2001:db8:100:2::-64").n, 1);
	cr_assert_str_eq(lm_get(st, other).value[0], lease_json(OTHER));
	/* the other node's lease arrives by the watch (it was put after the listing) */
	cr_assert(wait_for(one_remote, &c, LM_WAIT_MS), "the other node's lease is not remote");
	leasemgr_free(m);
}

LM_UNUSED static void race_same_ipv4(void)
{
	race_one_half(SUBS "198.18.1.0-24&2001:db8:100:9::-64");
}

LM_UNUSED static void race_same_ipv6(void)
{
	race_one_half(SUBS "198.18.9.0-24&2001:db8:100:1::-64");
}

/* ---- many at once ---- */

#define RACE_N 8

struct race_all {
	struct consumer *c;
	int n;
};

static bool all_ready(void *p)
{
	const struct race_all *a = p;

	for (int i = 0; i < a->n; i++)
		if (!a->c[i].acquired || !a->c[i].own[0])
			return false;
	return true;
}

struct listing {
	bool done;
	int err;
	size_t n;
	char key[RACE_N * 2][128];
};

static void listing_cb(void *ctx, const struct store_result *r)
{
	struct listing *o = ctx;

	o->done = true;
	o->err = r->err;
	o->n = r->n_kvs;
	for (size_t i = 0; i < r->n_kvs && i < RACE_N * 2; i++)
		snprintf(o->key[i], sizeof(o->key[i]), "%s", r->kvs[i].key);
}

/* @rounds times: RACE_N managers started at once; the store must end with distinct halves. */
LM_UNUSED static void race_many(int rounds)
{
	static struct consumer c[RACE_N];
	struct leasemgr *m[RACE_N];

	for (int round = 0; round < rounds; round++) {
		char prefix[64], subs[80], ip[32];
		struct race_all all = { c, RACE_N };
		struct listing l = { 0 };

		snprintf(prefix, sizeof(prefix), "/race%d/network", round);
		snprintf(subs, sizeof(subs), "%s/subnets/", prefix);
		memset(c, 0, sizeof(c));
		for (int i = 0; i < RACE_N; i++) {
			snprintf(ip, sizeof(ip), "192.0.2.%d", 10 + i);
			m[i] = race_mgr(&c[i], DS_TINY, prefix, ip, NULL);
		}
		cr_assert(wait_for(all_ready, &all, LM_WAIT_MS), "round %d: not all acquired",
		          round);
		run_for(50); /* a give-back in flight would show as an extra key or a loss */
		cr_assert_eq(st->ops->list(st, subs, listing_cb, &l), 0);
		cr_assert_eq(ev_loop_run_until(loop, &l.done, 10000), 0);
		cr_assert_eq(l.err, 0);
		cr_assert_eq(l.n, RACE_N, "round %d: %zu keys for %d nodes", round, l.n, RACE_N);
		for (size_t i = 0; i < l.n; i++) {
			struct lease a, b;

			cr_assert_eq(lease_key_parse(l.key[i] + strlen(subs), &a), 0);
			for (size_t j = i + 1; j < l.n; j++) {
				cr_assert_eq(lease_key_parse(l.key[j] + strlen(subs), &b), 0);
				cr_assert_neq(ipam_prefix_cmp(&a.subnet, &b.subnet), 0,
				              "round %d: one IPv4 subnet twice: %s %s", round,
				              l.key[i], l.key[j]);
				cr_assert_neq(ipam_prefix_cmp(&a.ipv6_subnet, &b.ipv6_subnet), 0,
				              "round %d: one IPv6 subnet twice: %s %s", round,
				              l.key[i], l.key[j]);
			}
		}
		for (int i = 0; i < RACE_N; i++) {
			cr_assert_eq(c[i].lost, 0, "round %d: node %d lost its lease", round, i);
			cr_assert_eq(c[i].acquired, 1);
			leasemgr_free(m[i]);
		}
	}
}

#endif
