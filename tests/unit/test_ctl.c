/* twillctl commands against the local file store. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "ctl/ctl.h"
#include "lib/ev.h"
#include "subnet/store.h"
#include "tests/support/store_local_test.h"

#define SUBS "/coreos.com/network/subnets/"
#define CFG  "{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,\"Backend\":{\"Type\":\"vxlan\"}}"
#define VX                                                                           \
	"{\"PublicIP\":\"192.0.2.3\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\"," \
	"\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"16:95:20:8d:5a:7b\"}}"

static char dir[64], path[PATH_MAX], url[PATH_MAX + 32];
static struct ctl c;
static char *obuf, *ebuf;
static size_t olen, elen;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/twill-ctl-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.json", dir);
	snprintf(url, sizeof(url), "--etcd-endpoints=file://%s", path);
	memset(&c, 0, sizeof(c));
	c.loop = ev_loop_new();
	c.store = store_local_new(c.loop, path);
	cr_assert_not_null(c.store);
	strcpy(c.prefix, "/coreos.com/network");
	c.endpoints = "file://test";
	c.out = open_memstream(&obuf, &olen);
	c.err = open_memstream(&ebuf, &elen);
}

static void teardown(void)
{
	char cmd[128];

	fclose(c.out);
	fclose(c.err);
	free(obuf);
	free(ebuf);
	store_free(c.store);
	ev_loop_free(c.loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(ctl, .init = setup, .fini = teardown, .timeout = 20);

/* The output so far, and reset. */
static const char *out(void)
{
	static char buf[8192];

	fflush(c.out);
	snprintf(buf, sizeof(buf), "%s", obuf ? obuf : "");
	rewind(c.out);
	fflush(c.out);
	if (obuf)
		obuf[0] = '\0';
	return buf;
}

static const char *errs(void)
{
	static char buf[8192];

	fflush(c.err);
	snprintf(buf, sizeof(buf), "%s", ebuf ? ebuf : "");
	rewind(c.err);
	fflush(c.err);
	if (ebuf)
		ebuf[0] = '\0';
	return buf;
}

struct done {
	bool done;
	int err;
	int64_t lease;
};

static void done_cb(void *ctx, const struct store_result *r)
{
	struct done *d = ctx;

	d->done = true;
	d->err = r->err;
	d->lease = r->lease_id;
}

static int64_t put(const char *key, const char *value, int64_t ttl)
{
	struct done d = { 0 };

	if (ttl)
		cr_assert_eq(
			c.store->ops->create(c.store, key, value, strlen(value), ttl, done_cb, &d),
			0);
	else
		cr_assert_eq(c.store->ops->put(c.store, key, value, strlen(value), 0, done_cb, &d),
		             0);
	cr_assert_eq(ev_loop_run_until(c.loop, &d.done, 2000), 0);
	cr_assert_eq(d.err, 0);
	return d.lease;
}

Test(ctl, config_round_trip)
{
	const char *bad = "{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":33}";

	cr_assert_eq(ctl_config_get(&c), 1);
	cr_assert(strstr(errs(), "no network config at /coreos.com/network/config: write one with "
	                         "`twillctl config set FILE`"));
	cr_assert_eq(ctl_config_set(&c, bad, strlen(bad), "bad.json"), 1);
	cr_assert(strstr(errs(), "bad.json: invalid network config, not written: SubnetLen 33"));
	cr_assert_eq(ctl_config_get(&c), 1, "nothing written");
	errs();
	cr_assert_eq(ctl_config_set(&c, CFG, strlen(CFG), "cfg.json"), 0);
	cr_assert(strstr(out(), "wrote /coreos.com/network/config"));
	cr_assert_eq(ctl_config_get(&c), 0);
	cr_assert_str_eq(out(), CFG "\n");
	cr_assert_eq(ctl_config_validate(&c, CFG, strlen(CFG), "cfg.json"), 0);
	cr_assert(strstr(out(), "198.18.1.0/24 .. 198.18.255.0/24 (255)"));
	cr_assert_eq(ctl_config_validate(&c, "{}", 2, "empty.json"), 1);
	cr_assert(strstr(errs(), "empty.json: invalid network config"));
}

Test(ctl, reserve_list_show_release)
{
	int64_t lease;

	put("/coreos.com/network/config", CFG, 0);
	cr_assert_eq(ctl_reserve(&c, "198.18.5.0/24", "192.0.2.5"), 0);
	cr_assert_str_eq(out(), "reserved 198.18.5.0/24 for 192.0.2.5 "
	                        "(/coreos.com/network/subnets/198.18.5.0-24)\n");
	/* 86399: shown as 23h59m whether or not a second passes before the read */
	lease = put(SUBS "198.18.3.0-24", VX, 86399);
	cr_assert_neq(lease, 0);
	put(SUBS "bogus", VX, 0);
	cr_assert_eq(ctl_leases(&c, false), 0);
	cr_assert_str_eq(
		out(),
		"SUBNET               PUBLIC IP        BACKEND  VTEP MAC           EXPIRES IN\n"
		"198.18.3.0/24        192.0.2.3        vxlan    16:95:20:8d:5a:7b  23h59m\n"
		"198.18.5.0/24        192.0.2.5        -        -                  reserved\n");
	cr_assert(strstr(errs(), "skipping /coreos.com/network/subnets/bogus"));
	cr_assert_eq(ctl_leases(&c, true), 0);
	{
		json_t *j = json_loads(out(), 0, NULL);
		json_t *o;

		cr_assert(json_is_array(j));
		cr_assert_eq(json_array_size(j), 2);
		o = json_array_get(j, 0);
		cr_assert_str_eq(json_string_value(json_object_get(o, "subnet")), "198.18.3.0/24");
		cr_assert_str_eq(json_string_value(json_object_get(o, "vtep_mac")),
		                 "16:95:20:8d:5a:7b");
		cr_assert_eq(json_is_false(json_object_get(o, "reserved")), true);
		cr_assert_gt(json_integer_value(json_object_get(o, "expires_in_s")), 86000);
		cr_assert_str_eq(
			json_string_value(json_object_get(
				json_object_get(json_object_get(o, "attrs"), "BackendData"),
				"VtepMAC")),
			"16:95:20:8d:5a:7b");
		o = json_array_get(j, 1);
		cr_assert(json_is_true(json_object_get(o, "reserved")));
		cr_assert(json_is_null(json_object_get(o, "expires_in_s")));
		json_decref(j);
	}
	errs();
	cr_assert_eq(ctl_lease_show(&c, "198.18.3.0-24", false), 0);
	cr_assert(strstr(out(), "VtepMAC:      16:95:20:8d:5a:7b\n"));
	/* Refusals. */
	cr_assert_eq(ctl_reserve(&c, "198.18.3.0/24", "192.0.2.9"), 1);
	cr_assert(strstr(errs(), "is held by 192.0.2.3 (a lease); release it first"));
	cr_assert_eq(ctl_reserve(&c, "198.18.0.0/23", "192.0.2.9"), 1);
	cr_assert(strstr(errs(), "not a /24 subnet inside the network 198.18.0.0/16"));
	cr_assert_eq(ctl_reserve(&c, "10.0.0.0/24", "192.0.2.9"), 1);
	cr_assert(strstr(errs(), "not a /24 subnet inside the network"));
	cr_assert_eq(ctl_reserve(&c, "198.18.7.9/24", "192.0.2.9"), 1);
	cr_assert(strstr(errs(), "host bits set, did you mean 198.18.7.0/24?"));
	cr_assert_eq(ctl_reserve(&c, "198.18.7.0/24", "not-an-ip"), 1);
	cr_assert(strstr(errs(), "--public-ip needs an IPv4 address"));
	/* The holder's own lease becomes a reservation, attributes kept. */
	cr_assert_eq(ctl_reserve(&c, "198.18.3.0/24", "192.0.2.3"), 0);
	out();
	cr_assert_eq(ctl_lease_show(&c, "198.18.3.0/24", false), 0);
	{
		const char *o = out();

		cr_assert(strstr(o, "Lease:        none (a reservation)"), "%s", o);
		cr_assert(strstr(o, "Backend:      vxlan"), "%s", o);
	}
	cr_assert_eq(ctl_release(&c, "198.18.5.0/24"), 0);
	cr_assert_eq(ctl_release(&c, "198.18.5.0/24"), 1);
	cr_assert(strstr(errs(), "no lease for 198.18.5.0/24"));
	cr_assert_eq(ctl_lease_show(&c, "198.18.5.0/24", false), 1);
	cr_assert_eq(ctl_lease_show(&c, "198.18.5/24", false), 1);
	cr_assert(strstr(errs(), "bad subnet \"198.18.5/24\""));
}

Test(ctl, reserve_needs_config)
{
	cr_assert_eq(ctl_reserve(&c, "198.18.5.0/24", "192.0.2.5"), 1);
	cr_assert(strstr(errs(), "no network config at /coreos.com/network/config"));
}

struct feeder {
	int step;
};

static void feed(struct ev_timer *t, void *ctx)
{
	struct feeder *f = ctx;
	static struct done d;

	switch (f->step++) {
	case 0:
		c.store->ops->put(c.store, SUBS "198.18.3.0-24", VX, strlen(VX), 0, done_cb, &d);
		break;
	case 1:
		c.store->ops->put(c.store, SUBS "198.18.3.0-24", VX, strlen(VX), 0, done_cb, &d);
		break;
	case 2:
		c.store->ops->del(c.store, SUBS "198.18.3.0-24", 0, done_cb, &d);
		ev_timer_stop(t);
		break;
	}
}

Test(ctl, watch_prints_changes)
{
	struct feeder f = { 0 };
	struct ev_timer *t = ev_timer_new(c.loop, feed, &f);

	put(SUBS "198.18.9.0-24", VX, 0); /* before the watch: not printed */
	ev_timer_start(t, 30, 30);
	cr_assert_eq(ctl_watch(&c, 3, NULL), 0);
	cr_assert_str_eq(out(), "added 198.18.3.0/24 192.0.2.3 vxlan 16:95:20:8d:5a:7b\n"
	                        "changed 198.18.3.0/24 192.0.2.3 vxlan 16:95:20:8d:5a:7b\n"
	                        "removed 198.18.3.0/24 192.0.2.3\n");
	ev_timer_free(t);
}

Test(ctl, durations)
{
	char b[32];

	cr_assert_str_eq(ctl_format_duration(86399, b), "23h59m");
	cr_assert_str_eq(ctl_format_duration(3599, b), "59m59s");
	cr_assert_str_eq(ctl_format_duration(42, b), "42s");
	cr_assert_str_eq(ctl_format_duration(90000, b), "1d1h");
	cr_assert_str_eq(ctl_format_duration(-5, b), "0s");
}

static int run(const char *a1, const char *a2, const char *a3, const char *a4, const char *a5)
{
	char *argv[8] = { (char *)(uintptr_t) "twillctl" };
	const char *in[5] = { a1, a2, a3, a4, a5 };
	int argc = 1;

	for (int i = 0; i < 5 && in[i]; i++)
		argv[argc++] = (char *)(uintptr_t)in[i];
	return ctl_main(argc, argv, c.out, c.err);
}

Test(ctl, command_line)
{
	char cfgpath[PATH_MAX];
	FILE *f;

	snprintf(cfgpath, sizeof(cfgpath), "%s/cfg.json", dir);
	f = fopen(cfgpath, "w");
	fputs(CFG, f);
	fclose(f);
	cr_assert_eq(run("bogus", NULL, NULL, NULL, NULL), 2);
	cr_assert(strstr(errs(), "unknown command \"bogus\""));
	cr_assert_eq(run(NULL, NULL, NULL, NULL, NULL), 2);
	cr_assert(strstr(errs(), "usage: twillctl"));
	cr_assert_eq(run("leases", "--help", NULL, NULL, NULL), 0);
	cr_assert(strstr(out(), "usage: twillctl leases [--json]"));
	cr_assert_eq(run("config", "set", url, cfgpath, NULL), 0);
	cr_assert(strstr(out(), "wrote /coreos.com/network/config"));
	cr_assert_eq(run(url, "reserve", "198.18.4.0/24", NULL, NULL), 2);
	cr_assert(strstr(errs(), "--public-ip IP is required"));
	cr_assert_eq(run(url, "reserve", "198.18.4.0/24", "--public-ip", "192.0.2.4"), 0);
	cr_assert(strstr(out(), "reserved 198.18.4.0/24 for 192.0.2.4"));
	cr_assert_eq(run("leases", url, "--json", NULL, NULL), 0);
	cr_assert(strstr(out(), "\"public_ip\": \"192.0.2.4\""));
	cr_assert_eq(run("config", "get", "--json", url, NULL), 2);
	cr_assert(strstr(errs(), "--json is not valid here"));
	cr_assert_eq(run("release", url, NULL, NULL, NULL), 2);
	cr_assert(strstr(errs(), "expected 1 argument, got 0"));
	cr_assert_eq(run("config", "validate", cfgpath, NULL, NULL), 0);
	cr_assert_eq(run("--etcd-prefix=/other/net", url, "config", "get", NULL), 1);
	cr_assert(strstr(errs(), "no network config at /other/net/config"));
	setenv("FLANNELD_ETCD_PREFIX", "/other/net/", 1);
	cr_assert_eq(run(url, "config", "get", NULL, NULL), 1);
	cr_assert(strstr(errs(), "no network config at /other/net/config"));
	unsetenv("FLANNELD_ETCD_PREFIX");
}

/* ---- lease times: one timetolive per distinct lease, a bounded number in flight ---- */

static const struct store_ops *real_ops;
static struct store_ops spy_ops;
static int ttl_calls, ttl_inflight, ttl_max_inflight;
static bool ttl_fail;

struct spy {
	store_cb cb;
	void *ctx;
};

static void spy_cb(void *ctx, const struct store_result *r)
{
	struct spy *sp = ctx;
	struct store_result copy = *r;

	ttl_inflight--;
	if (ttl_fail) {
		copy.err = -EIO;
		copy.errmsg = "spy: injected";
		copy.ttl = 0;
	}
	sp->cb(sp->ctx, &copy);
	free(sp);
}

static int spy_timetolive(struct store *s, int64_t id, store_cb cb, void *ctx)
{
	struct spy *sp = calloc(1, sizeof(*sp));
	int r;

	cr_assert_not_null(sp);
	sp->cb = cb;
	sp->ctx = ctx;
	r = real_ops->timetolive(s, id, spy_cb, sp);
	cr_assert_eq(r, 0);
	ttl_calls++;
	if (++ttl_inflight > ttl_max_inflight)
		ttl_max_inflight = ttl_inflight;
	return r;
}

static void spy_on(void)
{
	real_ops = c.store->ops;
	spy_ops = *real_ops;
	spy_ops.timetolive = spy_timetolive;
	c.store->ops = &spy_ops;
	ttl_calls = ttl_inflight = ttl_max_inflight = 0;
	ttl_fail = false;
}

static void spy_off(void)
{
	c.store->ops = real_ops;
}

/* A table row of ctl_leases (the expiry column may be a prefix). */
static bool has_row(const char *o, const char *sub, const char *ip, const char *be, const char *ex)
{
	char line[256];

	snprintf(line, sizeof(line), "\n%-20s %-16s %-8s %-18s %s", sub, ip, be, "-", ex);
	return strstr(o, line) != NULL;
}

Test(ctl, lease_times_one_request_per_lease)
{
	char key[128], val[128];
	int64_t shared;
	struct done d = { 0 };
	const char *o;

	put("/coreos.com/network/config", CFG, 0);
	for (int i = 10; i < 50; i++) {
		snprintf(key, sizeof(key), SUBS "198.18.%d.0-24", i);
		snprintf(val, sizeof(val), "{\"PublicIP\":\"192.0.2.%d\",\"PublicIPv6\":null}", i);
		put(key, val, 3600);
	}
	shared = put(SUBS "198.18.60.0-24", "{\"PublicIP\":\"192.0.2.60\"}", 7200);
	cr_assert_eq(
		c.store->ops->put(c.store, SUBS "198.18.61.0-24", "{\"PublicIP\":\"192.0.2.61\"}",
	                          strlen("{\"PublicIP\":\"192.0.2.61\"}"), shared, done_cb, &d),
		0);
	cr_assert_eq(ev_loop_run_until(c.loop, &d.done, 2000), 0);
	cr_assert_eq(d.err, 0);
	put(SUBS "198.18.70.0-24", "{\"PublicIP\":\"192.0.2.70\"}", 0);

	spy_on();
	cr_assert_eq(ctl_leases(&c, false), 0);
	spy_off();
	cr_assert_eq(ttl_calls, 41, "one timetolive per distinct lease");
	cr_assert_gt(ttl_max_inflight, 1, "requests were not issued in parallel");
	cr_assert_leq(ttl_max_inflight, 32);
	o = out();
	cr_assert(has_row(o, "198.18.10.0/24", "192.0.2.10", "udp", "59m5"), "%s", o);
	cr_assert(has_row(o, "198.18.60.0/24", "192.0.2.60", "udp", "1h59m"), "%s", o);
	cr_assert(has_row(o, "198.18.61.0/24", "192.0.2.61", "udp", "1h59m"), "%s", o);
	cr_assert(has_row(o, "198.18.70.0/24", "192.0.2.70", "-", "reserved"), "%s", o);
	cr_assert_str_eq(errs(), "");

	/* the store cannot say: "leased" and null, one warning */
	spy_on();
	ttl_fail = true;
	cr_assert_eq(ctl_leases(&c, true), 0);
	spy_off();
	{
		json_t *j;
		size_t i;
		json_t *e;

		fflush(c.out); /* more than out() keeps */
		j = json_loads(obuf, 0, NULL);
		out();
		cr_assert(json_is_array(j));
		cr_assert_eq(json_array_size(j), 43);
		json_array_foreach(j, i, e)
			cr_assert(json_is_null(json_object_get(e, "expires_in_s")));
		json_decref(j);
	}
	o = errs();
	cr_assert(strstr(o, "cannot read the time left of lease"), "%s", o);
	cr_assert(strstr(o, "spy: injected"), "%s", o);
	cr_assert_eq(strchr(o, '\n'), o + strlen(o) - 1, "one warning only: %s", o);

	spy_on();
	ttl_fail = true;
	cr_assert_eq(ctl_lease_show(&c, "198.18.60.0/24", false), 0);
	spy_off();
	cr_assert_eq(ttl_calls, 1);
	o = out();
	cr_assert(strstr(o, " (time left unknown)\n"), "%s", o);
	cr_assert(strstr(errs(), "spy: injected"));
	cr_assert_eq(ctl_lease_show(&c, "198.18.61.0/24", false), 0);
	o = out();
	cr_assert(strstr(o, "(expires in 1h59m)"), "%s", o);
}

/* ---- dual-stack: both subnets and both public IPs; reservations with an IPv6 half ---- */

#define CFG6                                                                   \
	"{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,\"EnableIPv6\":true," \
	"\"IPv6Network\":\"2001:db8:100::/48\",\"Backend\":{\"Type\":\"vxlan\"}}"
#define VX6                                                                                         \
	"{\"PublicIP\":\"192.0.2.3\",\"PublicIPv6\":\"2001:db8:0:1::3\",\"BackendType\":\"vxlan\"," \
	"\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"72:07:01:d5:03:de\"},"                            \
	"\"BackendV6Data\":{\"VNI\":1,\"VtepMAC\":\"3a:c3:56:d6:78:82\"}}"

/* out() keeps what an earlier, longer output left after the end: parse up to the JSON's end. */
Test(ctl, dualstack_leases_and_show)
{
	const char *o;

	put("/coreos.com/network/config", CFG6, 0);
	put(SUBS "198.18.3.0-24&2001:db8:100:3::-64", VX6, 86399);
	put(SUBS "198.18.4.0-24", VX, 0); /* an IPv4-only node beside it */
	cr_assert_eq(ctl_leases(&c, false), 0);
	cr_assert_str_eq(out(), "SUBNET             IPV6 SUBNET              PUBLIC IP       "
	                        "PUBLIC IPV6              BACKEND  VTEP MAC           EXPIRES IN\n"
	                        "198.18.3.0/24      2001:db8:100:3::/64      192.0.2.3       "
	                        "2001:db8:0:1::3          vxlan    72:07:01:d5:03:de  23h59m\n"
	                        "198.18.4.0/24      -                        192.0.2.3       "
	                        "-                        vxlan    16:95:20:8d:5a:7b  reserved\n");
	cr_assert_eq(ctl_leases(&c, true), 0);
	{
		json_t *j = json_loads(out(), JSON_DISABLE_EOF_CHECK, NULL), *e;

		cr_assert_eq(json_array_size(j), 2);
		e = json_array_get(j, 0);
		cr_assert_str_eq(json_string_value(json_object_get(e, "subnet")), "198.18.3.0/24");
		cr_assert_str_eq(json_string_value(json_object_get(e, "ipv6_subnet")),
		                 "2001:db8:100:3::/64");
		cr_assert_str_eq(json_string_value(json_object_get(e, "public_ip")), "192.0.2.3");
		cr_assert_str_eq(json_string_value(json_object_get(e, "public_ipv6")),
		                 "2001:db8:0:1::3");
		cr_assert_str_eq(json_string_value(json_object_get(e, "vtep_mac_v6")),
		                 "3a:c3:56:d6:78:82");
		e = json_array_get(j, 1);
		cr_assert(json_is_null(json_object_get(e, "ipv6_subnet")));
		cr_assert(json_is_null(json_object_get(e, "public_ipv6")));
		cr_assert(json_is_null(json_object_get(e, "vtep_mac_v6")));
		json_decref(j);
	}
	/* lease show by the dual key, and by its IPv4 subnet alone */
	cr_assert_eq(ctl_lease_show(&c, "198.18.3.0-24&2001:db8:100:3::-64", false), 0);
	o = out();
	cr_assert(strstr(o, "Subnet:       198.18.3.0/24\nIPv6Subnet:   2001:db8:100:3::/64\n"),
	          "%s", o);
	cr_assert(strstr(o, "PublicIP:     192.0.2.3\nPublicIPv6:   2001:db8:0:1::3\n"), "%s", o);
	cr_assert(strstr(o, "VtepMAC:      72:07:01:d5:03:de\nVtepMACv6:    3a:c3:56:d6:78:82\n"),
	          "%s", o);
	cr_assert_eq(ctl_lease_show(&c, "198.18.3.0/24", true), 0);
	{
		const char *txt = out();
		json_t *e = json_loads(txt, JSON_DISABLE_EOF_CHECK, NULL);

		cr_assert_not_null(e, "not JSON: %s", txt);

		cr_assert_str_eq(json_string_value(json_object_get(e, "key")),
		                 SUBS "198.18.3.0-24&2001:db8:100:3::-64");
		cr_assert_str_eq(json_string_value(json_object_get(e, "public_ipv6")),
		                 "2001:db8:0:1::3");
		json_decref(e);
	}
	cr_assert_eq(ctl_lease_show(&c, "198.18.9.0/24", false), 1);
	cr_assert(strstr(errs(), "no lease for 198.18.9.0/24"));
	/* release by the IPv4 subnet alone finds the dual-stack key too */
	cr_assert_eq(ctl_release(&c, "198.18.3.0/24"), 0, "%s", errs());
	cr_assert(strstr(out(), "released 198.18.3.0/24 "
	                        "(/coreos.com/network/subnets/198.18.3.0-24&2001:db8:100:3::-64)"));
	cr_assert_eq(ctl_lease_show(&c, "198.18.3.0/24", false), 1);
	cr_assert_eq(ctl_release(&c, "198.18.3.0/24"), 1);
	cr_assert(strstr(errs(), "no lease for 198.18.3.0/24"));
}

/* The raw value ("attrs") of the lease @key, as compact JSON. */
static char *value_of(const char *key)
{
	static char buf[1024];

	buf[0] = '\0';
	cr_assert_eq(ctl_lease_show(&c, key, true), 0);
	{
		json_t *e = json_loads(out(), JSON_DISABLE_EOF_CHECK, NULL);
		char *s =
			json_dumps(json_object_get(e, "attrs"), JSON_COMPACT | JSON_PRESERVE_ORDER);

		snprintf(buf, sizeof(buf), "%s", s ? s : "");
		free(s);
		json_decref(e);
	}
	return buf;
}

Test(ctl, dualstack_reserve)
{
	put("/coreos.com/network/config", CFG6, 0);
	/* --ipv6-subnet form, with PublicIPv6 */
	cr_assert_eq(ctl_reserve6(&c, "198.18.5.0/24", "2001:db8:100:5::/64", "192.0.2.5",
	                          "2001:db8:0:1::5"),
	             0, "%s", errs());
	cr_assert_str_eq(out(),
	                 "reserved 198.18.5.0/24,2001:db8:100:5::/64 for "
	                 "192.0.2.5,2001:db8:0:1::5 "
	                 "(/coreos.com/network/subnets/198.18.5.0-24&2001:db8:100:5::-64)\n");
	cr_assert_str_eq(value_of("198.18.5.0-24&2001:db8:100:5::-64"),
	                 "{\"PublicIP\":\"192.0.2.5\",\"PublicIPv6\":\"2001:db8:0:1::5\"}");
	/* the dual key form, without PublicIPv6 */
	cr_assert_eq(ctl_reserve6(&c, "198.18.6.0-24&2001:db8:100:6::-64", NULL, "192.0.2.6", NULL),
	             0, "%s", errs());
	cr_assert(strstr(out(), "(/coreos.com/network/subnets/198.18.6.0-24&2001:db8:100:6::-64)"));
	cr_assert_eq(ctl_leases(&c, false), 0);
	cr_assert(strstr(out(), "198.18.6.0/24      2001:db8:100:6::/64      192.0.2.6       -"));

	/* refusals, each with its reason */
	cr_assert_eq(ctl_reserve(&c, "198.18.7.0/24", "192.0.2.7"), 1);
	cr_assert(strstr(errs(), "the network is dual-stack (EnableIPv6): give its IPv6 subnet "
	                         "too (--ipv6-subnet, a /64 inside 2001:db8:100::/48)"));
	cr_assert_eq(ctl_reserve6(&c, "198.18.7.0/24", "2001:db8:200:7::/64", "192.0.2.7", NULL),
	             1);
	cr_assert(strstr(errs(), "not a /64 subnet inside the IPv6 network 2001:db8:100::/48"));
	cr_assert_eq(ctl_reserve6(&c, "198.18.7.0/24", "2001:db8:100:7::/80", "192.0.2.7", NULL),
	             1);
	cr_assert(strstr(errs(), "not a /64 subnet"));
	cr_assert_eq(ctl_reserve6(&c, "198.18.7.0/24", "198.18.8.0/24", "192.0.2.7", NULL), 1);
	cr_assert(strstr(errs(), "--ipv6-subnet needs an IPv6 network"));
	cr_assert_eq(ctl_reserve6(&c, "198.18.7.0-24&2001:db8:100:7::-64", "2001:db8:100:7::/64",
	                          "192.0.2.7", NULL),
	             1);
	cr_assert(strstr(errs(), "already has an IPv6 part"));
	cr_assert_eq(
		ctl_reserve6(&c, "198.18.7.0/24", "2001:db8:100:7::/64", "192.0.2.7", "192.0.2.77"),
		1);
	cr_assert(strstr(errs(), "--public-ipv6 needs an IPv6 address, got \"192.0.2.77\""));
	/* an IPv6 half already held by another node */
	cr_assert_eq(ctl_reserve6(&c, "198.18.7.0/24", "2001:db8:100:5::/64", "192.0.2.7", NULL),
	             1);
	cr_assert(strstr(errs(), "198.18.5.0-24&2001:db8:100:5::-64 is held by 192.0.2.5 "
	                         "(a reservation); release it first"));
	cr_assert_eq(ctl_release(&c, "198.18.5.0-24&2001:db8:100:5::-64"), 0);

	/* IPv4-only network: an IPv6 half or PublicIPv6 is refused */
	put("/coreos.com/network/config", CFG, 0);
	cr_assert_eq(ctl_reserve6(&c, "198.18.7.0/24", "2001:db8:100:7::/64", "192.0.2.7", NULL),
	             1);
	cr_assert(strstr(errs(), "inside the IPv6 network (none)"));
	cr_assert_eq(ctl_reserve6(&c, "198.18.7.0/24", NULL, "192.0.2.7", "2001:db8:0:1::7"), 1);
	cr_assert(strstr(errs(), "--public-ipv6 given, but the network config has no EnableIPv6"));
	cr_assert_eq(ctl_reserve(&c, "198.18.7.0/24", "192.0.2.7"), 0);
}

Test(ctl, dualstack_command_line)
{
	const char *args[] = { "twillctl",
		               url,
		               "reserve",
		               "198.18.5.0/24",
		               "--public-ip=192.0.2.5",
		               "--ipv6-subnet=2001:db8:100:5::/64",
		               "--public-ipv6=2001:db8:0:1::5" };
	char *argv[8] = { NULL };

	for (size_t i = 0; i < 7; i++)
		argv[i] = (char *)(uintptr_t)args[i];

	put("/coreos.com/network/config", CFG6, 0);
	cr_assert_eq(ctl_main(7, argv, c.out, c.err), 0, "%s", errs());
	cr_assert(strstr(out(), "reserved 198.18.5.0/24,2001:db8:100:5::/64 for "
	                        "192.0.2.5,2001:db8:0:1::5"));
	cr_assert_eq(run(url, "leases", "--ipv6-subnet=2001:db8:100:5::/64", NULL, NULL), 2);
	cr_assert(strstr(errs(), "--ipv6-subnet is not valid here"));
	cr_assert_eq(run(url, "leases", "--public-ipv6=2001:db8::1", NULL, NULL), 2);
	cr_assert(strstr(errs(), "--public-ipv6 is not valid here"));
	cr_assert_eq(run("reserve", "--help", NULL, NULL, NULL), 0);
	cr_assert(strstr(out(), "--ipv6-subnet 2001:db8:100:3::/64"));
}
