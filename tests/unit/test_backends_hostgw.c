/* The host-gw backend against the real kernel, in a private network namespace per test. */
#include "tests/unit/nltest.h"

#include "lib/log.h"
#include "lib/nl.h"
#include "tests/unit/be_testenv.h"

static const struct backend_ops *hg;
static struct be_extif ext;
static struct ev_loop *loop;
static char why[256];

static void setup(void)
{
	log_init("test", LOG_LVL_WARN);
	hg = backend_lookup("host-gw");
	cr_assert(hg);
	netns_underlay(&ext);
	loop = ev_loop_new();
	cr_assert(loop);
}

static void teardown(void)
{
	ev_loop_free(loop);
}

TestSuite(hostgw, .init = setup, .fini = teardown, .timeout = 60);

#define CFG "{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"host-gw\"}}"

static struct backend *started(struct lease_attrs *attrs)
{
	struct subnet_config *cfg = mk_config(CFG);
	char err[BE_ERR_MAX];
	struct backend *be;
	struct lease own;

	memset(attrs, 0, sizeof(*attrs));
	be = hg->init(loop, cfg, &ext, env_settings(), attrs, err, sizeof(err));
	cr_assert(be, "init: %s", err);
	subnet_config_free(cfg);
	mk_lease(&own, "198.18.0.0/24", "192.0.2.1", "host-gw", NULL);
	cr_assert_eq(hg->start(be, &own, err, sizeof(err)), 1500, "%s", err);
	lease_clear(&own);
	return be;
}

struct expect {
	const struct lease *ls;
	size_t n;
	bool nh;
};

/* Exactly one route per lease inside 198.18.0.0/16 on ul, via its PublicIP. */
static bool kernel_matches(void *ctx)
{
	const struct expect *x = ctx;
	json_t *routes = shj("ip -j route show dev ul root 198.18.0.0/16");
	bool ok = false;

	why[0] = '\0';
	for (size_t i = 0; i < x->n; i++) {
		char dst[IPAM_PREFIX_STRLEN], pub[IPAM_ADDR_STRLEN];
		json_t *r;

		ipam_prefix_format(&x->ls[i].subnet, dst);
		ipam_addr_format(&x->ls[i].attrs.public_ip, pub);
		r = find_by(routes, "dst", dst);
		if (!r || strcmp(jstr(r, "gateway"), pub) != 0 ||
		    x->nh != (json_object_get(r, "nhid") != NULL)) {
			snprintf(why, sizeof(why), "route %s via %s%s missing or wrong", dst, pub,
			         x->nh ? " nhid" : "");
			goto out;
		}
	}
	if (json_array_size(routes) != x->n) {
		snprintf(why, sizeof(why), "%zu routes for %zu leases", json_array_size(routes),
		         x->n);
		goto out;
	}
	ok = true;
out:
	json_decref(routes);
	return ok;
}

static void three(struct lease ls[3])
{
	mk_lease(&ls[0], "198.18.1.0/24", "192.0.2.11", "host-gw", NULL);
	mk_lease(&ls[1], "198.18.2.0/24", "192.0.2.12", "host-gw", NULL);
	mk_lease(&ls[2], "198.18.3.0/24", "192.0.2.13", "host-gw", NULL);
}

static void routes_added_removed(bool nh)
{
	struct lease_attrs a;
	struct backend *be;
	struct lease ls[3], vx;
	struct expect x = { .ls = ls, .n = 3, .nh = nh };
	static const uint8_t mac[6] = { 2, 1, 2, 3, 4, 5 };

	if (!nh)
		setenv("TWILL_NEXTHOPS", "0", 1);
	be = started(&a);
	cr_assert_str_eq(a.backend_type, "host-gw");
	cr_assert_null(a.backend_data);
	three(ls);
	mk_lease(&vx, "198.18.9.0/24", "192.0.2.19", "vxlan", mac);
	cr_assert_eq(hg->resync(be, &ls[0], 1), 0);
	cr_assert_eq(hg->lease_added(be, &ls[1]), 0);
	cr_assert_eq(hg->lease_added(be, &ls[2]), 0);
	cr_assert_eq(hg->lease_added(be, &vx), 0); /* other type: ignored */
	cr_assert(poll_until(loop, kernel_matches, &x, 2000), "%s", why);
	cr_assert_eq(hg->lease_removed(be, &ls[0]), 0);
	x.ls = &ls[1];
	x.n = 2;
	cr_assert(poll_until(loop, kernel_matches, &x, 2000), "%s", why);
	if (nh)
		cr_assert_eq(shj_count("ip -j nexthop show"), 2);
	for (int i = 0; i < 3; i++)
		lease_clear(&ls[i]);
	lease_clear(&vx);
	lease_attrs_clear(&a);
	hg->stop(be);
}

Test(hostgw, routes_added_removed_nexthops)
{
	routes_added_removed(true);
}

Test(hostgw, routes_added_removed_plain)
{
	routes_added_removed(false);
}

Test(hostgw, refuses_public_ip_not_on_interface)
{
	struct subnet_config *cfg = mk_config(CFG);
	struct lease_attrs a = { 0 };
	struct be_extif e = ext;
	char err[BE_ERR_MAX] = "";

	cr_assert_eq(ipam_addr_parse("192.0.2.99", &e.public_ip), 0);
	errno = 0;
	cr_assert_null(hg->init(loop, cfg, &e, NULL, &a, err, sizeof(err)));
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(err, "drop --public-ip or use vxlan"), "%s", err);
	subnet_config_free(cfg);
}

Test(hostgw, resync_removes_stale_keeps_foreign)
{
	struct lease_attrs a;
	struct backend *be = started(&a);
	struct lease ls[3];
	struct expect x = { .ls = ls, .n = 3, .nh = true };
	json_t *r;

	three(ls);
	cr_assert_eq(sh("ip route add 198.18.7.0/24 via 192.0.2.77 && "
	                "ip route add 198.18.2.0/24 via 192.0.2.99 && "
	                "ip route add 198.51.100.0/24 via 192.0.2.254"),
	             0);
	cr_assert_eq(hg->resync(be, ls, 3), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	r = shj("ip -j route show 198.51.100.0/24");
	cr_assert_eq(json_array_size(r), 1, "foreign route removed");
	json_decref(r);
	r = shj("ip -j route show 192.0.2.0/24");
	cr_assert_eq(json_array_size(r), 1, "connected route removed");
	json_decref(r);
	for (int i = 0; i < 3; i++)
		lease_clear(&ls[i]);
	lease_attrs_clear(&a);
	hg->stop(be);
}

Test(hostgw, self_heal_route_and_link_flap)
{
	struct lease_attrs a;
	struct backend *be = started(&a);
	struct lease ls[3];
	struct expect x = { .ls = ls, .n = 3, .nh = true };

	three(ls);
	cr_assert_eq(hg->resync(be, ls, 3), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	cr_assert_eq(sh("ip route del 198.18.3.0/24"), 0);
	cr_assert(poll_until(loop, kernel_matches, &x, 2000), "%s", why);
	/* the underlay goes down (routes flushed) and up again */
	cr_assert_eq(sh("ip link set ul down && ip link set ul up"), 0);
	cr_assert(poll_until(loop, kernel_matches, &x, 2000), "%s", why);
	for (int i = 0; i < 3; i++)
		lease_clear(&ls[i]);
	lease_attrs_clear(&a);
	hg->stop(be);
}

Test(hostgw, unreachable_peer_is_logged_not_fatal)
{
	struct lease_attrs a;
	struct backend *be = started(&a);
	struct lease ls[2];
	struct expect x = { .ls = ls, .n = 1, .nh = false };
	struct nl_stats st;

	setenv("TWILL_NEXTHOPS", "0", 1);
	hg->stop(be);
	lease_attrs_clear(&a);
	be = started(&a);
	mk_lease(&ls[0], "198.18.1.0/24", "192.0.2.11", "host-gw", NULL);
	mk_lease(&ls[1], "198.18.2.0/24", "198.51.100.9", "host-gw", NULL); /* off-segment */
	nl_stats_reset();
	cr_assert_eq(hg->resync(be, ls, 2), 0);
	nl_stats_get(&st);
	cr_assert_eq(st.errors, 1);
	cr_assert(kernel_matches(&x), "%s", why);
	lease_clear(&ls[0]);
	lease_clear(&ls[1]);
	lease_attrs_clear(&a);
	hg->stop(be);
}
