/* The lease manager on the local store: docs/compat.md §3 acquisition, renewal, loss, watch. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/ev.h"
#include "subnet/config.h"
#include "subnet/lease.h"
#include "subnet/leasemgr.h"
#include "subnet/store.h"
#include "tests/support/store_local_test.h"
#include "subnet/subnetfile.h"
#include "leasemgr_testutil.h"

#define UNIT 10 /* ms per TTL second */

static char dir[64], path[PATH_MAX], sfpath[PATH_MAX];
static struct store *st;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/twill-lm-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.json", dir);
	snprintf(sfpath, sizeof(sfpath), "%s/subnet.env", dir);
	loop = ev_loop_new();
	st = store_local_new(loop, path);
	cr_assert_not_null(st);
	store_local_set_time_unit(st, UNIT);
	/* Listings in pages of 2, so the lease manager's paged path (production's) runs here. */
	cr_assert_eq(store_local_set_page_size(st, 2), 0);
}

static void teardown(void)
{
	char cmd[128];

	/* Let zombie requests finish, then free. */
	ev_loop_run_once(loop, 0);
	ev_loop_run_once(loop, 0);
	store_free(st);
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

#include "lib/log.h"
static void dbg(void)
{
	setup();
	if (getenv("LM_DEBUG"))
		log_init("t", LOG_LVL_DEBUG);
}
TestSuite(leasemgr, .init = dbg, .fini = teardown, .timeout = 30);

/* ---- store helpers ---- */

static struct res sput(const char *key, const char *value, int64_t ttl)
{
	return lm_put(st, key, value, ttl);
}

static struct res sget(const char *key)
{
	return lm_get(st, key);
}

static void sdel(const char *key)
{
	lm_del(st, key);
}

static struct leasemgr *start_mgr(struct consumer *c, const char *cfgjson, const char *ip,
                                  struct fixed_rnd *rnd, const char *subnet_file)
{
	struct leasemgr_opts o = {
		.prefix = PFX,
		.lease_ttl_s = 30,
		.renew_margin_s = 15,
		.retry_ms = 40,
		.acquire_retry_ms = 10,
		.time_unit_ms = UNIT,
		.subnet_file = subnet_file,
		.rnd = rnd ? fixed : NULL,
		.rnd_ctx = rnd,
	};

	return lm_start(st, &o, c, cfgjson, ip);
}

Test(leasemgr, acquire_writes_flannel_lease)
{
	struct consumer c = { 0 };
	struct leasemgr *m = start_mgr(&c, NET16, MYIP, NULL, NULL);
	const struct lease *own;
	struct res r;

	wait_ready(&c);
	own = leasemgr_own(m);
	cr_assert_not_null(own);
	cr_assert_eq(own->subnet.len, 24);
	cr_assert_neq(own->store_lease_id, 0);
	cr_assert_gt(own->expires_at, 0);
	r = sget(key_of(c.own));
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.value[0], lease_json(MYIP));
	cr_assert_eq(r.lease[0], own->store_lease_id);
	cr_assert_neq(strcmp(c.own, "198.18.0.0/24"), 0, "the first subnet is skipped");
	cr_assert_eq(c.n, 0);
	leasemgr_free(m);
}

Test(leasemgr, renews_before_expiry)
{
	struct consumer c = { 0 };
	struct leasemgr *m = start_mgr(&c, NET16, MYIP, NULL, NULL);

	wait_ready(&c);
	run_for(60 * UNIT); /* two TTLs */
	cr_assert_eq(c.lost, 0, "lease lost: %s", c.last_msg);
	cr_assert_eq(c.acquired, 1);
	cr_assert_eq(sget(key_of(c.own)).n, 1);
	leasemgr_free(m);
}

Test(leasemgr, renewal_failure_retried)
{
	struct consumer c = { 0 };
	struct leasemgr *m = start_mgr(&c, NET16, MYIP, NULL, NULL);

	wait_ready(&c);
	store_local_fail_next(st, -ECONNREFUSED, 1);
	run_for(22 * UNIT);
	cr_assert_geq(c.errors, 1);
	cr_assert_eq(c.last_err, -ECONNREFUSED);
	cr_assert(strstr(c.last_msg, "renewing lease"), "%s", c.last_msg);
	cr_assert_eq(c.lost, 0);
	cr_assert_eq(sget(key_of(c.own)).n, 1);
	leasemgr_free(m);
}

Test(leasemgr, restart_reuses_same_subnet)
{
	struct consumer c1 = { 0 }, c2 = { 0 };
	struct leasemgr *m = start_mgr(&c1, NET16, MYIP, NULL, NULL);
	struct res before, after;

	wait_ready(&c1);
	before = sget(key_of(c1.own));
	leasemgr_free(m);
	m = start_mgr(&c2, NET16, MYIP, NULL, NULL);
	wait_ready(&c2);
	cr_assert_str_eq(c2.own, c1.own);
	after = sget(key_of(c2.own));
	cr_assert_gt(after.mod_rev[0], before.mod_rev[0], "rewritten with current attributes");
	cr_assert_neq(after.lease[0], 0);
	cr_assert_eq(c2.n, 0, "own lease never reported as remote");
	leasemgr_free(m);
}

Test(leasemgr, subnet_file_reused)
{
	struct consumer c = { 0 };
	struct subnetfile sf = { 0 };
	struct leasemgr *m;

	sf.has_subnet = true;
	cr_assert_eq(ipam_prefix_parse("198.18.77.1/24", &sf.subnet), 0);
	sf.has_network = true;
	cr_assert_eq(ipam_prefix_parse("198.18.0.0/16", &sf.network), 0);
	cr_assert_eq(subnetfile_write(sfpath, &sf), 0);
	m = start_mgr(&c, NET16, MYIP, NULL, sfpath);
	wait_ready(&c);
	cr_assert_str_eq(c.own, "198.18.77.0/24");
	leasemgr_free(m);
}

Test(leasemgr, subnet_file_ignored_when_taken)
{
	struct consumer c = { 0 };
	struct subnetfile sf = { 0 };
	struct leasemgr *m;

	sf.has_subnet = true;
	cr_assert_eq(ipam_prefix_parse("198.18.77.1/24", &sf.subnet), 0);
	cr_assert_eq(subnetfile_write(sfpath, &sf), 0);
	sput(SUBS "198.18.77.0-24", lease_json(OTHER), 0);
	m = start_mgr(&c, NET16, MYIP, NULL, sfpath);
	wait_ready(&c);
	cr_assert_neq(strcmp(c.own, "198.18.77.0/24"), 0);
	cr_assert_eq(c.n, 1);
	cr_assert_str_eq(c.set[0].subnet, "198.18.77.0/24");
	leasemgr_free(m);
}

#define NET_5_6                                                                         \
	"{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,\"SubnetMin\":\"198.18.5.0\"," \
	"\"SubnetMax\":\"198.18.6.0\",\"Backend\":{\"Type\":\"vxlan\"}}"

Test(leasemgr, reservation_honoured_and_programmed)
{
	struct consumer c = { 0 };
	struct fixed_rnd rnd = { .value = 0 };
	struct leasemgr *m;

	sput(SUBS "198.18.5.0-24", lease_json(OTHER), 0); /* reservation: no lease */
	m = start_mgr(&c, NET_5_6, MYIP, &rnd, NULL);
	wait_ready(&c);
	cr_assert_str_eq(c.own, "198.18.6.0/24");
	cr_assert_eq(c.n, 1);
	cr_assert_str_eq(c.set[0].subnet, "198.18.5.0/24");
	cr_assert_str_eq(c.set[0].ip, OTHER);
	cr_assert_eq(sget(SUBS "198.18.5.0-24").lease[0], 0, "reservation untouched");
	leasemgr_free(m);
}

Test(leasemgr, own_reservation_stays_reservation)
{
	struct consumer c = { 0 };
	struct leasemgr *m;
	const char *old =
		"{\"PublicIP\":\"192.0.2.1\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\","
		"\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"16:95:20:8d:5a:00\"}}";
	struct res r;

	sput(SUBS "198.18.9.0-24", old, 0);
	m = start_mgr(&c, NET16, MYIP, NULL, NULL);
	wait_ready(&c);
	cr_assert_str_eq(c.own, "198.18.9.0/24");
	cr_assert_eq(c.own_lease, 0);
	r = sget(SUBS "198.18.9.0-24");
	cr_assert_eq(r.lease[0], 0, "still a reservation");
	cr_assert_str_eq(r.value[0], lease_json(MYIP), "rewritten with the current VtepMAC");
	run_for(40 * UNIT);
	cr_assert_eq(c.lost, 0);
	cr_assert_eq(sget(SUBS "198.18.9.0-24").n, 1);
	leasemgr_free(m);
}

#define NET_3_3                                                                         \
	"{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,\"SubnetMin\":\"198.18.3.0\"," \
	"\"SubnetMax\":\"198.18.3.0\",\"Backend\":{\"Type\":\"vxlan\"}}"

static bool has_error(void *p)
{
	return ((struct consumer *)p)->errors > 0;
}

Test(leasemgr, exhaustion_reported_then_recovers)
{
	struct consumer c = { 0 };
	struct leasemgr *m;

	sput(SUBS "198.18.3.0-24", lease_json(OTHER), 100);
	m = start_mgr(&c, NET_3_3, MYIP, NULL, NULL);
	cr_assert(wait_for(has_error, &c, 2000));
	cr_assert_eq(c.last_err, -ENOSPC);
	cr_assert_eq(strncmp(c.last_msg,
	                     "out of subnets: all 1 subnets of 198.18.0.0/16 between 198.18.3.0/24 "
	                     "and 198.18.3.0/24 are taken",
	                     strlen("out of subnets: all 1 subnets of 198.18.0.0/16 between "
	                            "198.18.3.0/24 and 198.18.3.0/24 are taken")),
	             0, "%s", c.last_msg);
	cr_assert_null(leasemgr_own(m));
	sdel(SUBS "198.18.3.0-24");
	wait_ready(&c);
	cr_assert_str_eq(c.own, "198.18.3.0/24");
	leasemgr_free(m);
}

Test(leasemgr, lost_race_picks_again)
{
	struct consumer c = { 0 };
	struct fixed_rnd rnd = { .value = 0, .store = st, .precreate = SUBS "198.18.1.0-24" };
	struct leasemgr *m = start_mgr(&c, NET16, MYIP, &rnd, NULL);

	wait_ready(&c);
	cr_assert_geq(rnd.calls, 2, "picked again after losing the race");
	cr_assert_str_eq(c.own, "198.18.2.0/24");
	cr_assert_eq(c.n, 1);
	cr_assert_str_eq(c.set[0].subnet, "198.18.1.0/24");
	cr_assert_str_eq(sget(SUBS "198.18.1.0-24").value[0], lease_json(OTHER));
	cr_assert_eq(c.dup, 0);
	leasemgr_free(m);
}

Test(leasemgr, own_key_deleted_reacquired_same_subnet)
{
	struct consumer c = { 0 };
	struct leasemgr *m = start_mgr(&c, NET16, MYIP, NULL, NULL);
	char first[64];

	wait_ready(&c);
	strcpy(first, c.own);
	sdel(key_of(first));
	cr_assert(wait_for(reacquired, &c, 3000), "not re-acquired: %s", c.last_msg);
	cr_assert_str_eq(c.own, first);
	cr_assert_eq(sget(key_of(first)).n, 1);
	cr_assert_eq(c.n, 0);
	leasemgr_free(m);
}

static bool lost_and_moved(void *p)
{
	struct consumer *c = p;

	return c->lost == 1 && c->acquired == 2 && c->own[0] && c->n == 1;
}

Test(leasemgr, own_key_taken_by_another_node)
{
	struct consumer c = { 0 };
	struct fixed_rnd rnd = { .value = 0 };
	struct leasemgr *m = start_mgr(&c, NET16, MYIP, &rnd, NULL);

	wait_ready(&c);
	cr_assert_str_eq(c.own, "198.18.1.0/24");
	sput(SUBS "198.18.1.0-24", lease_json(OTHER), 0);
	cr_assert(wait_for(lost_and_moved, &c, 3000), "lost %d acquired %d own %s remote %zu",
	          c.lost, c.acquired, c.own, c.n);
	cr_assert_str_eq(c.own, "198.18.2.0/24");
	cr_assert_str_eq(c.set[0].subnet, "198.18.1.0/24");
	cr_assert_str_eq(c.set[0].ip, OTHER);
	leasemgr_free(m);
}

Test(leasemgr, own_lease_expired_reacquired)
{
	struct consumer c = { 0 };
	struct leasemgr *m = start_mgr(&c, NET16, MYIP, NULL, NULL);
	char first[64];

	wait_ready(&c);
	strcpy(first, c.own);
	cr_assert_eq(store_local_expire(st, c.own_lease), 0);
	cr_assert(wait_for(reacquired, &c, 3000), "not re-acquired: %s", c.last_msg);
	cr_assert_str_eq(c.own, first);
	run_for(5 * UNIT);
	cr_assert_eq(c.lost, 1, "one loss reported once");
	cr_assert_eq(c.acquired, 2);
	leasemgr_free(m);
}

/* Verifies the consumer's set equals the store's leases other than ours. */
struct compact_ctx {
	int left;
};

static void compact_after(void *ctx, const struct store_result *r)
{
	struct compact_ctx *cc = ctx;

	cr_assert_eq(r->err, 0);
	if (--cc->left == 0)
		cr_assert_eq(store_local_compact(st, 0), 0);
}

static bool set_has(void *p)
{
	struct consumer *c = p;

	return c->n == 4 && c_find(c, "198.18.50.0/24") >= 0;
}

Test(leasemgr, compaction_while_watching_exact_set)
{
	struct consumer c = { 0 };
	struct fixed_rnd rnd = { .value = 0 };
	struct compact_ctx cc = { .left = 4 };
	struct leasemgr *m;
	const char *a = lease_json("192.0.2.10");
	const char *b = lease_json("192.0.2.20");
	const char *b2 = lease_json("192.0.2.21");
	const char *d = lease_json("192.0.2.40");
	const struct expect want[] = { { "198.18.20.0/24", "192.0.2.21" },
		                       { "198.18.30.0/24", "192.0.2.30" },
		                       { "198.18.40.0/24", "192.0.2.40" } };

	sput(SUBS "198.18.10.0-24", a, 0);
	sput(SUBS "198.18.20.0-24", b, 0);
	sput(SUBS "198.18.30.0-24", lease_json("192.0.2.30"), 0);
	m = start_mgr(&c, NET16, MYIP, &rnd, NULL);
	wait_ready(&c);
	cr_assert_eq(c.n, 3);
	/* Four changes, then a compaction before the watch could deliver them. */
	cr_assert_eq(st->ops->del(st, SUBS "198.18.10.0-24", 0, compact_after, &cc), 0);
	cr_assert_eq(st->ops->put(st, SUBS "198.18.20.0-24", b2, strlen(b2), 0, compact_after, &cc),
	             0);
	cr_assert_eq(st->ops->put(st, SUBS "198.18.40.0-24", d, strlen(d), 0, compact_after, &cc),
	             0);
	cr_assert_eq(st->ops->put(st, SUBS "198.18.50.0-24", d, strlen(d), 0, compact_after, &cc),
	             0);
	if (!wait_for(set_has, &c, 3000)) {
		for (size_t i = 0; i < c.n; i++)
			fprintf(stderr, "have %s %s\n", c.set[i].subnet, c.set[i].ip);
		cr_assert_fail("consumer set incomplete after compaction: %zu leases, own %s, "
		               "dup %d, unknown removed %d",
		               c.n, c.own, c.dup, c.unknown_removed);
	}
	run_for(50);
	/* The 50.0 lease was added with 40.0's IP, so it is a lease of its own: 4 leases. */
	{
		const struct expect want4[] = {
			want[0], want[1], want[2], { "198.18.50.0/24", "192.0.2.40" }
		};

		assert_set(&c, m, want4, 4);
	}
	cr_assert_eq(c.resyncs, 1, "differences, not a second resync");
	leasemgr_free(m);
}

static bool two_each(void *arg)
{
	const struct consumer *c = arg;

	return c->added >= 2 && c->removed >= 2;
}

Test(leasemgr, broken_watch_resumes_without_loss)
{
	struct consumer c = { 0 };
	struct leasemgr *m = start_mgr(&c, NET16, MYIP, NULL, NULL);
	const struct expect want[] = { { "198.18.60.0/24", "192.0.2.60" } };

	wait_ready(&c);
	store_local_break_watches(st, -EPIPE);
	sput(SUBS "198.18.60.0-24", lease_json("192.0.2.60"), 0);
	wait_set(&c, m, want, 1, 20);
	/* The set ends as it was: only the events prove that the resumed watch saw the changes. */
	c.added = c.removed = 0;
	sput(SUBS "198.18.61.0-24", lease_json("192.0.2.61"), 0);
	sdel(SUBS "198.18.61.0-24");
	sput(SUBS "198.18.62.0-24", lease_json("192.0.2.62"), 0);
	sdel(SUBS "198.18.62.0-24");
	cr_assert(wait_for(two_each, &c, LM_WAIT_MS), "events after the break: %d added, %d removed",
	          c.added, c.removed);
	wait_set(&c, m, want, 1, 20);
	cr_assert_eq(c.unknown_removed, 0);
	leasemgr_free(m);
}

#define NET_50_51                                                                        \
	"{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,\"SubnetMin\":\"198.18.50.0\"," \
	"\"SubnetMax\":\"198.18.51.0\",\"Backend\":{\"Type\":\"vxlan\"}}"

Test(leasemgr, malformed_keys_and_values_skipped)
{
	struct consumer c = { 0 };
	struct fixed_rnd rnd = { .value = 0 };
	struct leasemgr *m;
	const struct expect want[] = { { "198.18.70.0/24", "192.0.2.70" } };

	sput(SUBS "garbage", lease_json(OTHER), 0);
	sput(SUBS "198.18.50.0-24", "not json", 0);
	sput(SUBS "198.18.70.0-24", lease_json("192.0.2.70"), 0);
	m = start_mgr(&c, NET_50_51, MYIP, &rnd, NULL);
	wait_ready(&c);
	cr_assert_str_eq(c.own, "198.18.51.0/24", "a key with a bad value still holds its subnet");
	assert_set(&c, m, want, 1);
	cr_assert_geq(leasemgr_skipped(m), 2);
	cr_assert_geq(c.skipped, 2);
	/* While watching: a bad value, a bad key, then a good lease. */
	sput(SUBS "198.18.70.0-24", "{\"PublicIP\":42}", 0);
	sput(SUBS "198.18.80.1-24", lease_json(OTHER), 0);
	sput(SUBS "198.18.90.0-24", lease_json("192.0.2.90"), 0);
	{
		const struct expect want2[] = { { "198.18.90.0/24", "192.0.2.90" } };

		wait_set(&c, m, want2, 1, 20);
	}
	cr_assert_eq(c.lost, 0);
	leasemgr_free(m);
}

/* Dual stack: a key with either subnet outside its Network is skipped, never a remote lease. */
Test(leasemgr, dual_stack_outside_network_skipped)
{
	static const char cfg[] = "{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,"
				  "\"EnableIPv6\":true,\"IPv6Network\":\"fd00:0:0:100::/56\","
				  "\"Backend\":{\"Type\":\"vxlan\"}}";
	const struct expect want[] = { { "198.18.70.0/24,fd00:0:0:170::/64", "192.0.2.70" } };
	struct consumer c = { 0 };
	struct leasemgr *m;

	sput(SUBS "198.18.70.0-24&fd00:0:0:170::-64", lease_json("192.0.2.70"), 0);
	sput(SUBS "198.18.71.0-24&fd00:0:0:5::-64", lease_json("192.0.2.71"), 0);
	sput(SUBS "198.19.1.0-24&fd00:0:0:171::-64", lease_json("192.0.2.72"), 0);
	m = start_mgr(&c, cfg, MYIP, NULL, NULL);
	wait_ready(&c);
	assert_set(&c, m, want, 1);
	cr_assert(c_skipped_key(&c, SUBS "198.18.71.0-24&fd00:0:0:5::-64"));
	cr_assert(c_skipped_key(&c, SUBS "198.19.1.0-24&fd00:0:0:171::-64"));
	/* While watching. */
	sput(SUBS "198.18.72.0-24&fd00:0:1::-64", lease_json("192.0.2.73"), 0);
	run_for(100);
	cr_assert(c_skipped_key(&c, SUBS "198.18.72.0-24&fd00:0:1::-64"));
	cr_assert_str_eq(c.last_skip_reason,
	                 "fd00:0:1::/64 is outside the IPv6 network fd00:0:0:100::/56");
	assert_set(&c, m, want, 1);
	cr_assert_eq((uint64_t)c.skipped, leasemgr_skipped(m));
	leasemgr_free(m);
}

static bool all_see_seven(void *p)
{
	struct consumer *c = p;

	for (int i = 0; i < 8; i++)
		if (c[i].n != 7)
			return false;
	return true;
}

Test(leasemgr, several_managers_distinct_subnets)
{
	struct consumer c[8] = { 0 };
	struct leasemgr *m[8];
	char ip[32];

	for (int i = 0; i < 8; i++) {
		snprintf(ip, sizeof(ip), "192.0.2.%d", 100 + i);
		m[i] = start_mgr(&c[i], NET16, ip, NULL, NULL);
	}
	for (int i = 0; i < 8; i++)
		wait_ready(&c[i]);
	cr_assert(wait_for(all_see_seven, c, 3000));
	run_for(20);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(c[i].n, 7, "manager %d sees %zu remote leases", i, c[i].n);
		for (int j = 0; j < i; j++)
			cr_assert_neq(strcmp(c[i].own, c[j].own), 0);
	}
	for (int i = 0; i < 8; i++)
		leasemgr_free(m[i]);
}
