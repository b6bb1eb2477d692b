/* The lease manager against a real etcd (tests/support/etcd_fixture.h), one etcd per test. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ev.h"
#include "subnet/config.h"
#include "subnet/lease.h"
#include "subnet/leasemgr.h"
#include "subnet/store.h"
#include "subnet/subnetfile.h"
#include "tests/support/etcd_fixture.h"

#define LM_WAIT_MS 10000
#include "leasemgr_testutil.h"

#define NMAX 50
/* A /28 cut into /30s: SubnetMin..SubnetMax = .4, .8, .12 (the first subnet is skipped). */
#define NET28 "{\"Network\":\"198.18.0.0/28\",\"SubnetLen\":30,\"Backend\":{\"Type\":\"vxlan\"}}"
#define NET_5_6                                                                         \
	"{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,\"SubnetMin\":\"198.18.5.0\"," \
	"\"SubnetMax\":\"198.18.6.0\",\"Backend\":{\"Type\":\"vxlan\"}}"
#define NET_50_53                                                                        \
	"{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,\"SubnetMin\":\"198.18.50.0\"," \
	"\"SubnetMax\":\"198.18.53.0\",\"Backend\":{\"Type\":\"vxlan\"}}"

static struct etcd_fixture *fx;
static struct store *st;   /* the managers' client */
static struct store *tool; /* a second client, as another node or an admin */
static char dir[64];

static struct store *client(void)
{
	struct store_opts o = { .endpoints = fx->endpoints, .request_timeout_ms = 5000 };
	struct store *s = store_etcd_new(loop, &o);

	cr_assert_not_null(s);
	return s;
}

static void setup(void)
{
	dir[0] = '\0';
	fx = etcd_fixture_start(&(struct etcd_fixture_opts){ .members = 1 });
	cr_assert_not_null(fx, "etcd did not start");
	loop = ev_loop_new();
	st = client();
	tool = client();
}

static void teardown(void)
{
	uint64_t deadline = ev_now_ms() + 10000;

	/* Requests of freed managers land first: freeing the store would cancel them. */
	for (int i = 0; i < 5 || (leasemgr_zombies() > 0 && ev_now_ms() < deadline); i++)
		ev_loop_run_once(loop, 10);
	cr_assert_eq(leasemgr_zombies(), 0, "requests of a freed lease manager never completed");
	store_free(st);
	store_free(tool);
	ev_loop_free(loop);
	etcd_fixture_stop(fx);
	if (dir[0]) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		cr_assert_eq(system(cmd), 0);
	}
}

TestSuite(leasemgr_etcd, .init = setup, .fini = teardown, .timeout = 90);

/* ---- the second client ---- */

static struct res tput(const char *key, const char *value)
{
	return lm_put(tool, key, value, 0);
}

/* Another node's lease: @key created under a fresh etcd lease of @ttl_s (res.lease_id). */
static struct res tlease(const char *key, const char *value, int64_t ttl_s)
{
	struct res r = lm_put(tool, key, value, ttl_s);

	cr_assert_neq(r.lease_id, 0);
	return r;
}

static struct res tdel(const char *key)
{
	return lm_del(tool, key);
}

static struct res tget(const char *key)
{
	return lm_get(tool, key);
}

static void trevoke(int64_t lease_id)
{
	struct res o = { 0 };

	cr_assert_eq(tool->ops->revoke(tool, lease_id, res_cb, &o), 0);
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 10000), 0);
	cr_assert_eq(o.err, 0);
}

static void b64(const char *in, char *out, size_t outlen)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(in), o = 0;

	cr_assert_lt((n + 2) / 3 * 4, outlen);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)(unsigned char)in[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)in[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = '\0';
}

/*
 * The raw etcd range reply for @key, read past the store layer: asserts the key exists
 * and returns whether its kv carries a "lease" member (etcd leaves it out for lease 0).
 */
static bool raw_has_lease(const char *key)
{
	char k64[256], req[300], *body = NULL;
	json_t *root, *kvs, *kv;
	bool has;

	b64(key, k64, sizeof(k64));
	snprintf(req, sizeof(req), "{\"key\":\"%s\"}", k64);
	cr_assert_eq(etcd_fixture_post(fx, "/v3/kv/range", req, &body), 200);
	root = json_loads(body, 0, NULL);
	cr_assert_not_null(root, "range reply: %s", body);
	kvs = json_object_get(root, "kvs");
	cr_assert(json_is_array(kvs) && json_array_size(kvs) == 1, "%s: not found: %s", key, body);
	kv = json_array_get(kvs, 0);
	cr_assert_not_null(json_object_get(kv, "mod_revision"), "%s", body);
	has = json_object_get(kv, "lease") != NULL;
	json_decref(root);
	free(body);
	return has;
}

/* ---- managers ---- */

static struct leasemgr *start_mgr_x(struct consumer *c, const char *cfgjson, const char *ip,
                                    int64_t ttl, int64_t margin, struct fixed_rnd *rnd,
                                    const char *subnet_file)
{
	struct leasemgr_opts o = {
		.prefix = PFX,
		.lease_ttl_s = ttl,
		.renew_margin_s = margin,
		.retry_ms = 500,
		.acquire_retry_ms = 100,
		.subnet_file = subnet_file,
		.rnd = rnd ? fixed : NULL,
		.rnd_ctx = rnd,
	};

	return lm_start(st, &o, c, cfgjson, ip);
}

static struct leasemgr *start_mgr(struct consumer *c, const char *ip, int64_t ttl, int64_t margin)
{
	return start_mgr_x(c, NET16, ip, ttl, margin, NULL, NULL);
}

Test(leasemgr_etcd, acquire_renew_restart_same_subnet)
{
	struct consumer c1 = { 0 }, c2 = { 0 };
	struct leasemgr *m = start_mgr(&c1, MYIP, 3, 2); /* renew every second */
	struct res r;

	cr_assert(wait_for(ready, &c1, 10000), "not acquired: %s", c1.last_msg);
	r = tget(key_of(c1.own));
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.value[0], lease_json(MYIP), "flannel's exact JSON");
	cr_assert_neq(r.lease[0], 0);
	run_for(4500); /* longer than the TTL of 3 s: only renewals keep it */
	cr_assert_eq(c1.lost, 0, "%s", c1.last_msg);
	cr_assert_eq(tget(key_of(c1.own)).n, 1, "lease renewed");
	leasemgr_free(m);
	m = start_mgr(&c2, MYIP, 3, 2);
	cr_assert(wait_for(ready, &c2, 10000), "not acquired: %s", c2.last_msg);
	cr_assert_str_eq(c2.own, c1.own, "restart keeps the subnet");
	cr_assert_eq(c2.n, 0);
	leasemgr_free(m);
}

Test(leasemgr_etcd, own_key_deleted_reacquired)
{
	struct consumer c = { 0 };
	struct leasemgr *m = start_mgr(&c, MYIP, 60, 30);
	char first[64];

	cr_assert(wait_for(ready, &c, 10000), "not acquired: %s", c.last_msg);
	strcpy(first, c.own);
	tdel(key_of(first));
	cr_assert(wait_for(reacquired, &c, 10000), "not re-acquired: %s", c.last_msg);
	cr_assert_str_eq(c.own, first);
	cr_assert_eq(tget(key_of(first)).n, 1);
	leasemgr_free(m);
}

struct many {
	struct consumer c[NMAX];
	int n;
};

static bool all_ready(void *p)
{
	struct many *mm = p;

	for (int i = 0; i < mm->n; i++)
		if (!ready(&mm->c[i]) || mm->c[i].n != (size_t)mm->n - 1)
			return false;
	return true;
}

Test(leasemgr_etcd, fifty_concurrent_acquirers)
{
	static struct many mm;
	struct leasemgr *m[NMAX];
	char ip[32];

	memset(&mm, 0, sizeof(mm));
	mm.n = NMAX;
	for (int i = 0; i < NMAX; i++) {
		snprintf(ip, sizeof(ip), "192.0.2.%d", 100 + i);
		m[i] = start_mgr(&mm.c[i], ip, 60, 30);
	}
	cr_assert(wait_for(all_ready, &mm, 40000), "not all 50 acquired and synced");
	for (int i = 0; i < NMAX; i++) {
		struct ipam_prefix pi;

		cr_assert_eq(ipam_prefix_parse(mm.c[i].own, &pi), 0);
		for (int j = 0; j < i; j++) {
			struct ipam_prefix pj;

			cr_assert_eq(ipam_prefix_parse(mm.c[j].own, &pj), 0);
			cr_assert_not(ipam_prefix_overlaps(&pi, &pj), "%s and %s overlap",
			              mm.c[i].own, mm.c[j].own);
		}
		cr_assert_eq(mm.c[i].dup, 0);
		cr_assert_eq(mm.c[i].unknown_removed, 0);
	}
	for (int i = 0; i < NMAX; i++)
		leasemgr_free(m[i]);
}

Test(leasemgr_etcd, compaction_while_watching_exact_set)
{
	struct consumer c = { 0 };
	struct leasemgr *m;
	static const struct expect want[] = { { "198.18.20.0/24", "192.0.2.21" },
		                              { "198.18.30.0/24", "192.0.2.30" },
		                              { "198.18.40.0/24", "192.0.2.40" } };
	struct set_want x = { &c, want, 3 };
	int64_t rev;

	tput(SUBS "198.18.10.0-24", lease_json("192.0.2.10"));
	tput(SUBS "198.18.20.0-24", lease_json("192.0.2.20"));
	m = start_mgr(&c, MYIP, 60, 30);
	cr_assert(wait_for(ready, &c, 10000), "not acquired: %s", c.last_msg);
	tdel(SUBS "198.18.10.0-24");
	tput(SUBS "198.18.20.0-24", lease_json("192.0.2.21"));
	tput(SUBS "198.18.30.0-24", lease_json("192.0.2.30"));
	tput(SUBS "198.18.35.0-24", lease_json("192.0.2.35"));
	rev = tdel(SUBS "198.18.35.0-24").revision;
	tput(SUBS "198.18.40.0-24", lease_json("192.0.2.40"));
	cr_assert_eq(etcd_fixture_compact(fx, rev), 0);
	cr_assert(wait_for(set_matches, &x, 10000), "consumer has %zu leases", c.n);
	run_for(300);
	cr_assert(set_matches(&x));
	cr_assert_eq(c.dup, 0);
	cr_assert_eq(c.unknown_removed, 0);
	leasemgr_free(m);
}

/* ---- exhaustion ---- */

static bool two_enospc(void *p)
{
	return ((struct consumer *)p)->enospc >= 2;
}

Test(leasemgr_etcd, exhaustion_reported_then_recovers)
{
	static const char want_msg[] = "out of subnets: all 3 subnets of 198.18.0.0/28 between "
				       "198.18.0.4/30 and 198.18.0.12/30 are taken; retrying in ";
	const struct expect rest[] = { { "198.18.0.4/30", "192.0.2.4" },
		                       { "198.18.0.8/30", "192.0.2.8" } };
	struct consumer c = { 0 };
	struct leasemgr *m;
	int64_t held;
	int errors;

	/* Every subnet taken: two other nodes' leases and a reservation. */
	tlease(SUBS "198.18.0.4-30", lease_json("192.0.2.4"), 60);
	tput(SUBS "198.18.0.8-30", lease_json("192.0.2.8"));
	held = tlease(SUBS "198.18.0.12-30", lease_json("192.0.2.12"), 60).lease_id;
	m = start_mgr_x(&c, NET28, MYIP, 60, 30, NULL, NULL);
	cr_assert(wait_for(two_enospc, &c, 10000), "no repeated -ENOSPC: %d errors, last %d: %s",
	          c.errors, c.last_err, c.last_msg);
	cr_assert_eq(strncmp(c.enospc_msg, want_msg, strlen(want_msg)), 0, "%s", c.enospc_msg);
	cr_assert(strstr(c.enospc_msg, " ms"), "%s", c.enospc_msg);
	cr_assert_eq(c.errors, c.enospc, "only -ENOSPC, got %d: %s", c.last_err, c.last_msg);
	cr_assert_eq(c.acquired, 0);
	cr_assert_null(leasemgr_own(m));
	cr_assert_eq(tget(SUBS "198.18.0.4-30").value[0][0], '{', "others' leases untouched");
	cr_assert_str_eq(tget(SUBS "198.18.0.8-30").value[0], lease_json("192.0.2.8"));
	cr_assert_str_eq(tget(SUBS "198.18.0.12-30").value[0], lease_json("192.0.2.12"));

	/* One lease released (its etcd lease revoked): the manager, still retrying, takes it. */
	errors = c.errors;
	trevoke(held);
	cr_assert_eq(tget(SUBS "198.18.0.12-30").n, 0);
	cr_assert(wait_for(ready, &c, 10000), "not acquired after the release: %s", c.last_msg);
	cr_assert_str_eq(c.own, "198.18.0.12/30");
	cr_assert_neq(c.own_lease, 0);
	cr_assert_not_null(leasemgr_own(m));
	{
		struct res r = tget(SUBS "198.18.0.12-30");

		cr_assert_eq(r.n, 1);
		cr_assert_str_eq(r.value[0], lease_json(MYIP));
		cr_assert_eq(r.lease[0], c.own_lease);
		cr_assert_neq(r.lease[0], held);
		cr_assert(raw_has_lease(SUBS "198.18.0.12-30"), "a real etcd lease");
	}
	wait_set(&c, m, rest, 2, 200);
	cr_assert_eq(c.errors, errors, "no error once acquired: %s", c.last_msg);
	leasemgr_free(m);
}

/* ---- reservations ---- */

Test(leasemgr_etcd, reservation_never_allocated_reported_remote)
{
	struct consumer c = { 0 };
	struct fixed_rnd rnd = { .value = 0 }; /* picks the first free subnet: 5.0 if allowed */
	struct leasemgr *m;
	const struct expect want[] = { { "198.18.5.0/24", OTHER } };
	const struct expect want2[] = { { "198.18.5.0/24", OTHER },
		                        { "198.18.7.0/24", "192.0.2.7" } };
	const struct lease *r;
	struct res before;
	size_t n;

	before = tput(SUBS "198.18.5.0-24", lease_json(OTHER)); /* a reservation: no lease */
	m = start_mgr_x(&c, NET_5_6, MYIP, 60, 30, &rnd, NULL);
	cr_assert(wait_for(ready, &c, 10000), "not acquired: %s", c.last_msg);
	cr_assert_geq(rnd.calls, 1, "the random source was asked");
	cr_assert_str_eq(c.own, "198.18.6.0/24", "the reserved 198.18.5.0/24 is never ours");
	cr_assert_neq(c.own_lease, 0);
	wait_set(&c, m, want, 1, 100);
	r = leasemgr_remote(m, &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(r[0].store_lease_id, 0, "reported as a reservation");
	cr_assert_eq(r[0].expires_at, 0);
	cr_assert_str_eq(c.set[0].type, "vxlan");
	{
		struct res now = tget(SUBS "198.18.5.0-24");

		cr_assert_str_eq(now.value[0], lease_json(OTHER), "reservation untouched");
		cr_assert_eq(now.lease[0], 0);
		cr_assert_eq(now.mod_rev[0], before.revision, "never rewritten");
	}
	cr_assert_not(raw_has_lease(SUBS "198.18.5.0-24"));

	/* A reservation made while watching arrives as an added remote lease. */
	tput(SUBS "198.18.7.0-24", lease_json("192.0.2.7"));
	wait_set(&c, m, want2, 2, 100);
	r = leasemgr_remote(m, &n);
	cr_assert_eq(n, 2);
	cr_assert_eq(r[1].store_lease_id, 0);
	cr_assert_eq(c.lost, 0);
	cr_assert_eq(c.errors, 0, "%s", c.last_msg);
	leasemgr_free(m);
}

Test(leasemgr_etcd, own_reservation_stays_reservation)
{
	struct consumer c = { 0 }, c2 = { 0 };
	struct leasemgr *m;
	const char *old =
		"{\"PublicIP\":\"192.0.2.1\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\","
		"\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"16:95:20:8d:5a:00\"}}";
	const struct lease *own;
	struct res r, after;

	tput(SUBS "198.18.9.0-24", old);
	cr_assert_not(raw_has_lease(SUBS "198.18.9.0-24"));
	/* TTL 2 s, renewal every second: a lease would be renewed twice in the run below. */
	m = start_mgr_x(&c, NET16, MYIP, 2, 1, NULL, NULL);
	cr_assert(wait_for(ready, &c, 10000), "not acquired: %s", c.last_msg);
	cr_assert_str_eq(c.own, "198.18.9.0/24", "our reservation is used");
	cr_assert_eq(c.own_lease, 0);
	own = leasemgr_own(m);
	cr_assert_not_null(own);
	cr_assert_eq(own->store_lease_id, 0);
	cr_assert_eq(own->expires_at, 0, "a reservation never expires");
	r = tget(SUBS "198.18.9.0-24");
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.lease[0], 0, "still a reservation");
	cr_assert_str_eq(r.value[0], lease_json(MYIP), "rewritten with the current VtepMAC");
	cr_assert_not(raw_has_lease(SUBS "198.18.9.0-24"), "no etcd lease attached");
	cr_assert_eq(c.n, 0, "our reservation is not a remote lease");

	run_for(2500); /* past the TTL, through the renewal instants */
	cr_assert_eq(c.lost, 0, "%s", c.last_msg);
	cr_assert_eq(c.acquired, 1);
	cr_assert_eq(c.errors, 0, "%s", c.last_msg);
	after = tget(SUBS "198.18.9.0-24");
	cr_assert_eq(after.n, 1, "the reservation survives");
	cr_assert_eq(after.lease[0], 0);
	cr_assert_eq(after.mod_rev[0], r.mod_rev[0], "nothing rewrote it");
	cr_assert_not(raw_has_lease(SUBS "198.18.9.0-24"));
	leasemgr_free(m);

	/* Restart: the value is current now; still used as is, still without a lease. */
	m = start_mgr_x(&c2, NET16, MYIP, 2, 1, NULL, NULL);
	cr_assert(wait_for(ready, &c2, 10000), "not acquired: %s", c2.last_msg);
	cr_assert_str_eq(c2.own, "198.18.9.0/24");
	cr_assert_eq(c2.own_lease, 0);
	after = tget(SUBS "198.18.9.0-24");
	cr_assert_eq(after.lease[0], 0);
	cr_assert_not(raw_has_lease(SUBS "198.18.9.0-24"));
	leasemgr_free(m);
}

/* ---- subnet file ---- */

static void write_subnet_file(const char *path, const char *subnet)
{
	struct subnetfile sf = { 0 };

	sf.has_network = true;
	cr_assert_eq(ipam_prefix_parse("198.18.0.0/16", &sf.network), 0);
	sf.has_subnet = true;
	cr_assert_eq(ipam_prefix_parse(subnet, &sf.subnet), 0);
	sf.has_mtu = true;
	sf.mtu = 1450;
	sf.has_ipmasq = true;
	cr_assert_eq(subnetfile_write(path, &sf), 0);
}

Test(leasemgr_etcd, subnet_file_reused_when_free_random_when_held)
{
	struct consumer a = { 0 }, a2 = { 0 }, b = { 0 };
	struct fixed_rnd ra = { .value = 5 }, rb = { .value = 5 };
	struct leasemgr *ma, *mb;
	char sf[PATH_MAX];
	struct res r;

	snprintf(dir, sizeof(dir), "/tmp/twill-lme-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sf, sizeof(sf), "%s/subnet.env", dir);
	write_subnet_file(sf, "198.18.77.1/24");

	/* Node A, no lease of its own in etcd: the subnet file's subnet is free, take it. */
	ma = start_mgr_x(&a, NET16, MYIP, 60, 30, &ra, sf);
	cr_assert(wait_for(ready, &a, 10000), "not acquired: %s", a.last_msg);
	cr_assert_str_eq(a.own, "198.18.77.0/24", "the subnet file's subnet");
	cr_assert_eq(ra.calls, 0, "no random pick");
	r = tget(SUBS "198.18.77.0-24");
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.value[0], lease_json(MYIP));
	cr_assert_neq(r.lease[0], 0, "a real lease");
	cr_assert_eq(r.lease[0], a.own_lease);
	cr_assert(raw_has_lease(SUBS "198.18.77.0-24"));

	/* Node B with the same (stale) subnet file: A holds that subnet, so a random one. */
	mb = start_mgr_x(&b, NET16, OTHER, 60, 30, &rb, sf);
	cr_assert(wait_for(ready, &b, 10000), "not acquired: %s", b.last_msg);
	cr_assert_geq(rb.calls, 1, "picked at random");
	/* Free candidates from SubnetMin 198.18.1.0 up: index 5 is 198.18.6.0. */
	cr_assert_str_eq(b.own, "198.18.6.0/24");
	{
		const struct expect wb[] = { { "198.18.77.0/24", MYIP } };
		const struct expect wa[] = { { "198.18.6.0/24", OTHER } };

		wait_set(&b, mb, wb, 1, 50);
		wait_set(&a, ma, wa, 1, 50);
	}
	cr_assert_str_eq(tget(SUBS "198.18.77.0-24").value[0], lease_json(MYIP), "A's untouched");
	cr_assert_eq(a.lost, 0);
	leasemgr_free(mb);

	/* A restarts with a subnet file naming another subnet: its own lease comes first. */
	leasemgr_free(ma);
	write_subnet_file(sf, "198.18.78.1/24");
	ma = start_mgr_x(&a2, NET16, MYIP, 60, 30, &ra, sf);
	cr_assert(wait_for(ready, &a2, 10000), "not acquired: %s", a2.last_msg);
	cr_assert_str_eq(a2.own, "198.18.77.0/24", "the lease with our PublicIP wins");
	cr_assert_eq(tget(SUBS "198.18.78.0-24").n, 0);
	leasemgr_free(ma);
}

/* ---- malformed keys and values ---- */

Test(leasemgr_etcd, malformed_keys_and_values_skipped)
{
	static const char *const bad_keys[] = {
		SUBS "198.18.50.0-24", SUBS "198.18.51.0-24",   SUBS "198.18.52.0-24",
		SUBS "198.18.60.0-24", SUBS "198.18.61.0-24",   SUBS "garbage",
		SUBS "198.18.80.1-24", SUBS "198.18.62.0-24/x",
	};
	static const char *const watch_bad_keys[] = {
		SUBS "198.18.70.0-24",
		SUBS "junk-key",
		SUBS "198.18.71.0-24",
		SUBS "198.18.72.0-24",
	};
	struct consumer c = { 0 };
	struct fixed_rnd rnd = { .value = 0 };
	struct leasemgr *m;
	const struct expect want[] = { { "198.18.70.0/24", "192.0.2.70" } };
	/* A bad PublicIPv6 costs only the IPv6 half: the lease stays (its backends warn). */
	const struct expect want2[] = { { "198.18.73.0/24", "192.0.2.73" },
		                        { "198.18.90.0/24", "192.0.2.90" } };
	int s0;

	/* Bad values inside SubnetMin..SubnetMax: they still hold their subnets. */
	tput(SUBS "198.18.50.0-24", "not json");
	tput(SUBS "198.18.51.0-24", ""); /* the gateway leaves "value" out */
	tput(SUBS "198.18.52.0-24", "{\"PublicIP\":42}");
	/* Wrong types, keys that do not parse. */
	tput(SUBS "198.18.60.0-24", "[1,2]");
	tput(SUBS "198.18.61.0-24", "{\"PublicIP\":\"192.0.2.61\",\"BackendType\":7}");
	tput(SUBS "garbage", lease_json(OTHER));
	tput(SUBS "198.18.80.1-24", lease_json(OTHER)); /* host bits set */
	tput(SUBS "198.18.62.0-24/x", lease_json(OTHER));
	tput(SUBS "198.18.70.0-24", lease_json("192.0.2.70"));
	m = start_mgr_x(&c, NET_50_53, MYIP, 60, 30, &rnd, NULL);
	cr_assert(wait_for(ready, &c, 10000), "not acquired: %s", c.last_msg);
	cr_assert_str_eq(c.own, "198.18.53.0/24", "keys with bad values still hold their subnets");
	wait_set(&c, m, want, 1, 100);
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
		cr_assert(c_skipped_key(&c, bad_keys[i]), "%s not reported skipped", bad_keys[i]);
	cr_assert_geq(leasemgr_skipped(m), sizeof(bad_keys) / sizeof(bad_keys[0]));
	cr_assert_eq((uint64_t)c.skipped, leasemgr_skipped(m));
	cr_assert_eq(c.errors, 0, "%s", c.last_msg);

	/* While watching: a good lease turned bad, a bad key, bad values, then a good lease. */
	s0 = c.skipped;
	tput(SUBS "198.18.70.0-24", "{\"PublicIP\":\"192.0.2.70\",\"BackendType\":5}");
	tput(SUBS "198.18.73.0-24", "{\"PublicIP\":\"192.0.2.73\",\"PublicIPv6\":5}");
	tput(SUBS "junk-key", lease_json(OTHER));
	tput(SUBS "198.18.71.0-24", "{");
	tput(SUBS "198.18.72.0-24", "{\"PublicIP\":\"not-an-ip\"}");
	tput(SUBS "198.18.90.0-24", lease_json("192.0.2.90"));
	wait_set(&c, m, want2, 2, 100);
	for (size_t i = 0; i < sizeof(watch_bad_keys) / sizeof(watch_bad_keys[0]); i++)
		cr_assert(c_skipped_key(&c, watch_bad_keys[i]), "%s not reported skipped",
		          watch_bad_keys[i]);
	cr_assert_geq(c.skipped - s0, (int)(sizeof(watch_bad_keys) / sizeof(watch_bad_keys[0])));
	cr_assert_eq((uint64_t)c.skipped, leasemgr_skipped(m));
	cr_assert_eq(c.lost, 0);
	cr_assert_str_eq(c.own, "198.18.53.0/24");
	cr_assert_eq(c.errors, 0, "%s", c.last_msg);
	leasemgr_free(m);
}

/*
 * A lease for a subnet outside the Network is logged and skipped (counted, reported with the
 * reason), never reaches the consumer, and the daemon keeps serving.
 */
Test(leasemgr_etcd, lease_outside_network_skipped)
{
	struct consumer c = { 0 };
	struct leasemgr *m;
	const struct expect want[] = { { "198.18.70.0/24", "192.0.2.70" } };
	const struct expect want2[] = { { "198.18.70.0/24", "192.0.2.70" },
		                        { "198.18.90.0/24", "192.0.2.90" } };

	/* 198.19.x is outside the Network 198.18.0.0/16. */
	tput(SUBS "198.19.5.0-24", lease_json("192.0.2.95"));
	tput(SUBS "198.18.70.0-24", lease_json("192.0.2.70"));
	m = start_mgr(&c, MYIP, 60, 30);
	cr_assert(wait_for(ready, &c, 10000), "not acquired: %s", c.last_msg);
	wait_set(&c, m, want, 1, 100);
	cr_assert(c_skipped_key(&c, SUBS "198.19.5.0-24"), "not reported skipped");
	cr_assert_str_eq(c.last_skip_reason, "198.19.5.0/24 is outside the network 198.18.0.0/16");
	tput(SUBS "198.19.6.0-24", lease_json("192.0.2.96"));
	tput(SUBS "198.18.90.0-24", lease_json("192.0.2.90"));
	wait_set(&c, m, want2, 2, 100);
	cr_assert(c_skipped_key(&c, SUBS "198.19.6.0-24"), "not reported skipped");
	cr_assert_eq((uint64_t)c.skipped, leasemgr_skipped(m));
	leasemgr_free(m);
}

/* A key for 0.0.0.0/0 (outside every Network) must not hold the whole range for allocation. */
Test(leasemgr_etcd, lease_outside_network_not_taken)
{
	const struct expect rest[] = { { "198.18.0.4/30", "192.0.2.4" },
		                       { "198.18.0.8/30", "192.0.2.8" } };
	struct consumer c = { 0 };
	struct leasemgr *m;

	tput(SUBS "0.0.0.0-0", lease_json("192.0.2.99"));
	tput(SUBS "198.18.0.4-30", lease_json("192.0.2.4"));
	tput(SUBS "198.18.0.8-30", lease_json("192.0.2.8"));
	m = start_mgr_x(&c, NET28, MYIP, 60, 30, NULL, NULL);
	cr_assert(wait_for(ready, &c, 10000), "not acquired: %d errors, last %d: %s", c.errors,
	          c.last_err, c.last_msg);
	cr_assert_str_eq(c.own, "198.18.0.12/30", "the one free subnet");
	cr_assert_eq(c.errors, 0, "%s", c.last_msg);
	wait_set(&c, m, rest, 2, 100);
	cr_assert(c_skipped_key(&c, SUBS "0.0.0.0-0"), "not reported skipped");
	cr_assert_str_eq(c.last_skip_reason, "0.0.0.0/0 is outside the network 198.18.0.0/28");
	tdel(SUBS "0.0.0.0-0");
	run_for(200);
	cr_assert_eq(c.unknown_removed, 0, "no removal of a lease never reported");
	cr_assert_eq(c.n, 2);
	cr_assert_eq((uint64_t)c.skipped, leasemgr_skipped(m));
	leasemgr_free(m);
}

/* ---- listings larger than one page (store_etcd lists in pages of 500 keys) ---- */

#define NBIG     1234
#define NET15_29 "{\"Network\":\"198.18.0.0/15\",\"SubnetLen\":29,\"Backend\":{\"Type\":\"vxlan\"}}"

/* Lease @i (from 0) of the big set: 198.18.0.8 on in /29 steps, PublicIP 198.51.100.1 + i % 200. */
static void big_key(unsigned i, char *buf, size_t len)
{
	unsigned a = (i + 1) * 8;

	snprintf(buf, len, SUBS "198.%u.%u.%u-29", 18 + a / 65536, a / 256 % 256, a % 256);
}

/* NBIG leases of other nodes, put in transactions of 100 (etcd's default limit is 128). */
static void put_big_set(void)
{
	char *txn = malloc(100 * 600 + 64), k64[256], v64[512], key[128];

	cr_assert_not_null(txn);
	for (unsigned i = 0; i < NBIG;) {
		size_t o = (size_t)sprintf(txn, "{\"success\":[");

		for (unsigned j = 0; j < 100 && i < NBIG; j++, i++) {
			char ip[32];

			big_key(i, key, sizeof(key));
			snprintf(ip, sizeof(ip), "198.51.100.%u", 1 + i % 200);
			b64(key, k64, sizeof(k64));
			b64(lease_json(ip), v64, sizeof(v64));
			o += (size_t)sprintf(
				txn + o, "%s{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}",
				j ? "," : "", k64, v64);
		}
		sprintf(txn + o, "]}");
		cr_assert_eq(etcd_fixture_post(fx, "/v3/kv/txn", txn, NULL), 200);
	}
	free(txn);
}

struct pages {
	bool done;
	int err, calls, firsts;
	size_t n;
	int64_t rev;
	bool same_rev, sorted;
	char last[128];
};

static void pages_cb(void *ctx, const struct store_result *res)
{
	struct pages *p = ctx;

	p->calls++;
	if (res->err) {
		p->err = res->err;
		p->done = true;
		return;
	}
	if (res->first_page) {
		p->firsts++;
		p->rev = res->revision;
	}
	p->same_rev = p->same_rev && res->revision == p->rev;
	for (size_t i = 0; i < res->n_kvs; i++) {
		p->sorted = p->sorted && strcmp(p->last, res->kvs[i].key) < 0;
		snprintf(p->last, sizeof(p->last), "%s", res->kvs[i].key);
	}
	p->n += res->n_kvs;
	if (!res->more)
		p->done = true;
}

Test(leasemgr_etcd, big_listing_in_pages)
{
	struct pages p = { .same_rev = true, .sorted = true };
	struct consumer c = { 0 };
	struct leasemgr *m;
	const struct lease *r;
	size_t n;

	put_big_set();
	/* The store: three pages (500, 500, 234) at one revision, in key order. */
	cr_assert_not_null(st->ops->list_pages);
	cr_assert_eq(st->ops->list_pages(st, SUBS, pages_cb, &p), 0);
	cr_assert_eq(ev_loop_run_until(loop, &p.done, 10000), 0);
	cr_assert_eq(p.err, 0);
	cr_assert_eq(p.calls, 3);
	cr_assert_eq(p.firsts, 1);
	cr_assert_eq(p.n, NBIG);
	cr_assert(p.same_rev && p.sorted);

	/* The manager: every lease, one resync, then events as usual. */
	m = start_mgr_x(&c, NET15_29, MYIP, 60, 30, NULL, NULL);
	cr_assert(wait_for(ready, &c, 10000), "not acquired: %s", c.last_msg);
	cr_assert_eq(c.resyncs, 1);
	r = leasemgr_remote(m, &n);
	cr_assert_eq(n, NBIG);
	for (size_t i = 1; i < n; i++)
		cr_assert_lt(ipam_prefix_cmp(&r[i - 1].subnet, &r[i].subnet), 0);
	for (size_t i = 0; i < n; i++) {
		cr_assert(r[i].attrs.has_vxlan);
		cr_assert_str_eq(r[i].attrs.backend_data,
		                 "{\"VNI\":1,\"VtepMAC\":\"16:95:20:8d:5a:7b\"}");
	}
	cr_assert_eq(c.errors, 0, "%s", c.last_msg);
	tdel(SUBS "198.18.0.8-29");
	tput(SUBS "198.18.0.8-29", lease_json("192.0.2.250"));
	tdel(SUBS "198.18.0.16-29");
	run_for(300);
	r = leasemgr_remote(m, &n);
	cr_assert_eq(n, NBIG - 1);
	cr_assert_eq(r[0].attrs.public_ip.bytes[3], 250);
	leasemgr_free(m);
}
