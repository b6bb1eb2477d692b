/* The lease manager against a real etcd (tests/support/etcd_fixture.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ev.h"
#include "subnet/config.h"
#include "subnet/lease.h"
#include "subnet/leasemgr.h"
#include "subnet/store.h"
#include "tests/support/etcd_fixture.h"

#define PFX   "/coreos.com/network"
#define SUBS  PFX "/subnets/"
#define NET16 "{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,\"Backend\":{\"Type\":\"vxlan\"}}"
#define NMAX  50

static struct etcd_fixture *fx;
static struct ev_loop *loop;
static struct store *st;   /* the managers' client */
static struct store *tool; /* a second client, as another node or an admin */

static struct store *client(void)
{
	struct store_opts o = { .endpoints = fx->endpoints, .request_timeout_ms = 5000 };
	struct store *s = store_etcd_new(loop, &o);

	cr_assert_not_null(s);
	return s;
}

static void setup(void)
{
	fx = etcd_fixture_start(&(struct etcd_fixture_opts){ .members = 1 });
	cr_assert_not_null(fx, "etcd did not start");
	loop = ev_loop_new();
	st = client();
	tool = client();
}

static void teardown(void)
{
	for (int i = 0; i < 5; i++)
		ev_loop_run_once(loop, 10);
	store_free(st);
	store_free(tool);
	ev_loop_free(loop);
	etcd_fixture_stop(fx);
}

TestSuite(leasemgr_etcd, .init = setup, .fini = teardown, .timeout = 90);

struct res {
	bool done;
	int err;
	size_t n;
	int64_t lease, revision;
	char value[512];
};

static void res_cb(void *ctx, const struct store_result *r)
{
	struct res *o = ctx;

	o->done = true;
	o->err = r->err;
	o->n = r->n_kvs;
	o->revision = r->revision;
	if (r->n_kvs) {
		o->lease = r->kvs[0].lease;
		snprintf(o->value, sizeof(o->value), "%s", r->kvs[0].value);
	}
}

static struct res tput(const char *key, const char *value)
{
	struct res o = { 0 };

	cr_assert_eq(tool->ops->put(tool, key, value, strlen(value), 0, res_cb, &o), 0);
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 10000), 0);
	cr_assert_eq(o.err, 0);
	return o;
}

static struct res tdel(const char *key)
{
	struct res o = { 0 };

	cr_assert_eq(tool->ops->del(tool, key, 0, res_cb, &o), 0);
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 10000), 0);
	cr_assert_eq(o.err, 0);
	return o;
}

static struct res tget(const char *key)
{
	struct res o = { 0 };

	cr_assert_eq(tool->ops->get(tool, key, res_cb, &o), 0);
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 10000), 0);
	cr_assert_eq(o.err, 0);
	return o;
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

/* ---- consumer ---- */

struct consumer {
	int acquired, lost, resyncs, dup, unknown_removed, errors;
	char own[64];
	struct lease own_lease;
	char set[256][64]; /* "SUBNET IP" */
	size_t n;
	char last_msg[512];
};

static void entry(const struct lease *l, char *buf)
{
	char sb[2 * IPAM_PREFIX_STRLEN], ip[IPAM_ADDR_STRLEN];

	snprintf(buf, 64, "%s %s", leasemgr_subnets_str(l, sb),
	         ipam_addr_format(&l->attrs.public_ip, ip));
}

static ssize_t c_find_subnet(struct consumer *c, const char *e)
{
	size_t sl = strcspn(e, " ");

	for (size_t i = 0; i < c->n; i++)
		if (strncmp(c->set[i], e, sl) == 0 && c->set[i][sl] == ' ')
			return (ssize_t)i;
	return -1;
}

static void on_acquired(void *ctx, const struct lease *own)
{
	struct consumer *c = ctx;
	char sb[2 * IPAM_PREFIX_STRLEN];

	c->acquired++;
	snprintf(c->own, sizeof(c->own), "%s", leasemgr_subnets_str(own, sb));
	c->own_lease = *own;
	memset(&c->own_lease.attrs, 0, sizeof(c->own_lease.attrs));
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
	for (size_t i = 0; i < n && c->n < 256; i++)
		entry(&l[i], c->set[c->n++]);
}

static void on_added(void *ctx, const struct lease *l)
{
	struct consumer *c = ctx;
	char e[64];
	ssize_t i;

	entry(l, e);
	i = c_find_subnet(c, e);
	if (i >= 0) {
		if (strcmp(c->set[i], e) == 0)
			c->dup++;
		strcpy(c->set[i], e);
	} else if (c->n < 256) {
		strcpy(c->set[c->n++], e);
	}
}

static void on_removed(void *ctx, const struct lease *l)
{
	struct consumer *c = ctx;
	char e[64];
	ssize_t i;

	entry(l, e);
	i = c_find_subnet(c, e);
	if (i < 0) {
		c->unknown_removed++;
		return;
	}
	if ((size_t)i != --c->n)
		memcpy(c->set[i], c->set[c->n], sizeof(c->set[i]));
}

static void on_error(void *ctx, int err, const char *msg)
{
	struct consumer *c = ctx;

	(void)err;
	c->errors++;
	snprintf(c->last_msg, sizeof(c->last_msg), "%s", msg);
}

static const struct leasemgr_events events = {
	.own_acquired = on_acquired,
	.own_lost = on_lost,
	.resync = on_resync,
	.added = on_added,
	.removed = on_removed,
	.error = on_error,
};

static struct leasemgr *start_mgr(struct consumer *c, const char *ip, int64_t ttl, int64_t margin)
{
	struct leasemgr_opts o = {
		.prefix = PFX,
		.lease_ttl_s = ttl,
		.renew_margin_s = margin,
		.retry_ms = 500,
		.acquire_retry_ms = 100,
	};
	char err[SUBNET_ERR_MAX];
	struct subnet_config *cfg = subnet_config_parse(NET16, strlen(NET16), err, sizeof(err));
	struct lease_attrs a = { 0 };
	uint8_t mac[6] = { 0x16, 0x95, 0x20, 0x8d, 0x5a, 0x7b };
	struct leasemgr *m = leasemgr_new(loop, st, &o, &events, c);

	cr_assert_not_null(cfg, "%s", err);
	cr_assert_not_null(m);
	cr_assert_eq(ipam_addr_parse(ip, &a.public_ip), 0);
	strcpy(a.backend_type, "vxlan");
	a.backend_data = lease_vxlan_data_new(1, mac);
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
		ev_loop_run_once(loop, 20);
	}
	return true;
}

static void run_for(int ms)
{
	uint64_t end = ev_now_ms() + (uint64_t)ms;

	while (ev_now_ms() < end)
		ev_loop_run_once(loop, 20);
}

static bool ready(void *p)
{
	struct consumer *c = p;

	return c->acquired > 0 && c->resyncs > 0 && c->own[0];
}

static const char *key_of(const char *subnet)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), SUBS "%s", subnet);
	*strrchr(buf, '/') = '-';
	return buf;
}

Test(leasemgr_etcd, acquire_renew_restart_same_subnet)
{
	struct consumer c1 = { 0 }, c2 = { 0 };
	struct leasemgr *m = start_mgr(&c1, "192.0.2.1", 3, 2); /* renew every second */
	struct res r;

	cr_assert(wait_for(ready, &c1, 10000), "not acquired: %s", c1.last_msg);
	r = tget(key_of(c1.own));
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.value, lease_json("192.0.2.1"), "flannel's exact JSON");
	cr_assert_neq(r.lease, 0);
	run_for(4500); /* longer than the TTL of 3 s: only renewals keep it */
	cr_assert_eq(c1.lost, 0, "%s", c1.last_msg);
	cr_assert_eq(tget(key_of(c1.own)).n, 1, "lease renewed");
	leasemgr_free(m);
	m = start_mgr(&c2, "192.0.2.1", 3, 2);
	cr_assert(wait_for(ready, &c2, 10000), "not acquired: %s", c2.last_msg);
	cr_assert_str_eq(c2.own, c1.own, "restart keeps the subnet");
	cr_assert_eq(c2.n, 0);
	leasemgr_free(m);
}

static bool reacquired(void *p)
{
	struct consumer *c = p;

	return c->lost >= 1 && c->acquired >= 2 && c->own[0];
}

Test(leasemgr_etcd, own_key_deleted_reacquired)
{
	struct consumer c = { 0 };
	struct leasemgr *m = start_mgr(&c, "192.0.2.1", 60, 30);
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

struct exact {
	struct consumer *c;
	const char *const *want;
	size_t n;
};

static bool set_is(void *p)
{
	struct exact *x = p;

	if (x->c->n != x->n)
		return false;
	for (size_t i = 0; i < x->n; i++) {
		bool found = false;

		for (size_t j = 0; j < x->c->n; j++)
			found |= strcmp(x->c->set[j], x->want[i]) == 0;
		if (!found)
			return false;
	}
	return true;
}

Test(leasemgr_etcd, compaction_while_watching_exact_set)
{
	struct consumer c = { 0 };
	struct leasemgr *m;
	static const char *const want[] = { "198.18.20.0/24 192.0.2.21",
		                            "198.18.30.0/24 192.0.2.30",
		                            "198.18.40.0/24 192.0.2.40" };
	struct exact x = { &c, want, 3 };
	int64_t rev;

	tput(SUBS "198.18.10.0-24", lease_json("192.0.2.10"));
	tput(SUBS "198.18.20.0-24", lease_json("192.0.2.20"));
	m = start_mgr(&c, "192.0.2.1", 60, 30);
	cr_assert(wait_for(ready, &c, 10000), "not acquired: %s", c.last_msg);
	tdel(SUBS "198.18.10.0-24");
	tput(SUBS "198.18.20.0-24", lease_json("192.0.2.21"));
	tput(SUBS "198.18.30.0-24", lease_json("192.0.2.30"));
	tput(SUBS "198.18.35.0-24", lease_json("192.0.2.35"));
	rev = tdel(SUBS "198.18.35.0-24").revision;
	tput(SUBS "198.18.40.0-24", lease_json("192.0.2.40"));
	cr_assert_eq(etcd_fixture_compact(fx, rev), 0);
	cr_assert(wait_for(set_is, &x, 10000), "consumer has %zu leases", c.n);
	run_for(300);
	cr_assert(set_is(&x));
	cr_assert_eq(c.dup, 0);
	cr_assert_eq(c.unknown_removed, 0);
	leasemgr_free(m);
}
