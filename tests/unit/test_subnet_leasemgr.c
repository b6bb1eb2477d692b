/* The lease manager on the local store: COMPAT §3 acquisition, renewal, loss, watch. */
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
#include "subnet/store_local.h"
#include "subnet/subnetfile.h"

#define PFX   "/coreos.com/network"
#define SUBS  PFX "/subnets/"
#define UNIT  10 /* ms per TTL second */
#define MYIP  "192.0.2.1"
#define OTHER "192.0.2.2"

static char dir[64], path[PATH_MAX], sfpath[PATH_MAX];
static struct ev_loop *loop;
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

struct res {
	bool done;
	int err;
	bool succeeded;
	size_t n;
	int64_t lease[4], mod_rev[4];
	char value[4][512];
};

static void res_cb(void *ctx, const struct store_result *r)
{
	struct res *o = ctx;

	o->done = true;
	o->err = r->err;
	o->succeeded = r->succeeded;
	o->n = r->n_kvs;
	for (size_t i = 0; i < r->n_kvs && i < 4; i++) {
		o->lease[i] = r->kvs[i].lease;
		o->mod_rev[i] = r->kvs[i].mod_revision;
		snprintf(o->value[i], sizeof(o->value[i]), "%s", r->kvs[i].value);
	}
}

static struct res sput(const char *key, const char *value, int64_t ttl)
{
	struct res o = { 0 };

	if (ttl)
		cr_assert_eq(st->ops->create(st, key, value, strlen(value), ttl, res_cb, &o), 0);
	else
		cr_assert_eq(st->ops->put(st, key, value, strlen(value), 0, res_cb, &o), 0);
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 2000), 0);
	cr_assert_eq(o.err, 0);
	return o;
}

static struct res sget(const char *key)
{
	struct res o = { 0 };

	cr_assert_eq(st->ops->get(st, key, res_cb, &o), 0);
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 2000), 0);
	return o;
}

static void sdel(const char *key)
{
	struct res o = { 0 };

	cr_assert_eq(st->ops->del(st, key, 0, res_cb, &o), 0);
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 2000), 0);
}

static const char *lease_json(const char *ip)
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

/* ---- consumer model ---- */

struct entry {
	char subnet[64];
	char ip[64];
	char type[32];
};

struct consumer {
	int acquired, lost, resyncs, errors, dup, unknown_removed, skipped;
	int last_err;
	char last_msg[512];
	char own[64];
	int64_t own_lease;
	struct entry set[128];
	size_t n;
};

static void fmt_entry(const struct lease *l, struct entry *e)
{
	char sb[2 * IPAM_PREFIX_STRLEN];

	snprintf(e->subnet, sizeof(e->subnet), "%s", leasemgr_subnets_str(l, sb));
	ipam_addr_format(&l->attrs.public_ip, e->ip);
	snprintf(e->type, sizeof(e->type), "%s", l->attrs.backend_type);
}

static ssize_t c_find(struct consumer *c, const char *subnet)
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
	for (size_t i = 0; i < n; i++)
		fmt_entry(&l[i], &c->set[c->n++]);
}

static void on_added(void *ctx, const struct lease *l)
{
	struct consumer *c = ctx;
	struct entry e;
	ssize_t i;

	fmt_entry(l, &e);
	i = c_find(c, e.subnet);
	if (i >= 0) {
		if (memcmp(&c->set[i], &e, sizeof(e)) == 0)
			c->dup++;
		c->set[i] = e;
	} else {
		c->set[c->n++] = e;
	}
}

static void on_removed(void *ctx, const struct lease *l)
{
	struct consumer *c = ctx;
	struct entry e;
	ssize_t i;

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
}

static void on_skipped(void *ctx, const char *key, const char *reason)
{
	struct consumer *c = ctx;

	(void)key;
	(void)reason;
	c->skipped++;
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

/* Deterministic random source: always @value (clamped). */
struct fixed_rnd {
	uint64_t value;
	int calls;
	const char *precreate; /* on the first call, create this key for OTHER first */
};

static void ignore_cb(void *ctx, const struct store_result *r)
{
	(void)ctx;
	cr_assert_eq(r->err, 0);
}

static uint64_t fixed(void *ctx, uint64_t bound)
{
	struct fixed_rnd *r = ctx;

	/* Queued before the manager's create, so the create loses the race. */
	if (r->calls++ == 0 && r->precreate)
		cr_assert_eq(st->ops->put(st, r->precreate, lease_json(OTHER),
		                          strlen(lease_json(OTHER)), 0, ignore_cb, NULL),
		             0);
	return r->value < bound ? r->value : bound - 1;
}

static struct subnet_config *config(const char *json)
{
	char err[SUBNET_ERR_MAX];
	struct subnet_config *cfg = subnet_config_parse(json, strlen(json), err, sizeof(err));

	cr_assert_not_null(cfg, "config: %s", err);
	return cfg;
}

static void attrs(struct lease_attrs *a, const char *ip, uint8_t macbyte)
{
	uint8_t mac[6] = { 0x16, 0x95, 0x20, 0x8d, 0x5a, macbyte };

	memset(a, 0, sizeof(*a));
	cr_assert_eq(ipam_addr_parse(ip, &a->public_ip), 0);
	strcpy(a->backend_type, "vxlan");
	a->backend_data = lease_vxlan_data_new(1, mac);
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
	struct subnet_config *cfg = config(cfgjson);
	struct lease_attrs a;
	struct leasemgr *m = leasemgr_new(loop, st, &o, &events, c);

	cr_assert_not_null(m);
	attrs(&a, ip, 0x7b);
	cr_assert_eq(leasemgr_start(m, cfg, &a), 0);
	lease_attrs_clear(&a);
	subnet_config_free(cfg);
	return m;
}

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

static bool has_acquired_and_synced(void *p)
{
	struct consumer *c = p;

	return c->acquired > 0 && c->resyncs > 0 && c->own[0];
}

static void wait_ready(struct consumer *c)
{
	cr_assert(wait_for(has_acquired_and_synced, c, 3000), "no lease acquired (last error: %s)",
	          c->last_msg);
}

/* The key of a subnet string like 198.18.3.0/24. */
static const char *key_of(const char *subnet)
{
	static char buf[128];
	char *slash;

	snprintf(buf, sizeof(buf), SUBS "%s", subnet);
	slash = strrchr(buf, '/');
	*slash = '-';
	return buf;
}

#define NET16 "{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,\"Backend\":{\"Type\":\"vxlan\"}}"

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
	struct fixed_rnd rnd = { .value = 0, .precreate = SUBS "198.18.1.0-24" };
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

static bool reacquired(void *p)
{
	struct consumer *c = p;

	return c->lost >= 1 && c->acquired >= 2 && c->own[0];
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
struct expect {
	const char *subnet;
	const char *ip;
};

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

/* Waits (3 s at most) until the consumer's set is @e, then checks it exactly. */
static void wait_set(struct consumer *c, struct leasemgr *m, const struct expect *e, size_t n)
{
	struct set_want w = { c, e, n };

	wait_for(set_matches, &w, 3000);
	run_for(20); /* nothing more may arrive */
	assert_set(c, m, e, n);
}

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

Test(leasemgr, broken_watch_resumes_without_loss)
{
	struct consumer c = { 0 };
	struct leasemgr *m = start_mgr(&c, NET16, MYIP, NULL, NULL);
	const struct expect want[] = { { "198.18.60.0/24", "192.0.2.60" } };

	wait_ready(&c);
	store_local_break_watches(st, -EPIPE);
	sput(SUBS "198.18.60.0-24", lease_json("192.0.2.60"), 0);
	wait_set(&c, m, want, 1);
	sput(SUBS "198.18.61.0-24", lease_json("192.0.2.61"), 0);
	sdel(SUBS "198.18.61.0-24");
	sput(SUBS "198.18.62.0-24", lease_json("192.0.2.62"), 0);
	sdel(SUBS "198.18.62.0-24");
	wait_set(&c, m, want, 1);
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

		wait_set(&c, m, want2, 1);
	}
	cr_assert_eq(c.lost, 0);
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
