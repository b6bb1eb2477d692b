/*
 * The IPv6 half of the vxlan and host-gw backends (EnableIPv6) against the real kernel,
 * each test in its own network namespace: flannel-v6.1 as flannel makes it, the IPv6
 * neighbours, fdb entries and routes of the leases exactly (read back with ip -j / bridge -j),
 * self-healing, and leases whose IPv6 half is unusable (IPv4 half kept, warned once, counted).
 */
#include "tests/unit/nltest.h"
#include "tests/unit/be_testenv.h"

#include "backends/routeset.h"
#include "lib/log.h"
#include "lib/nl.h"

static struct be_extif ext;
static struct ev_loop *loop;
static char why[512];

static void setup(void)
{
	log_init("test", LOG_LVL_ERROR);
	netns_underlay(&ext);
	cr_assert_eq(sh("ip -6 addr add 2001:db8:0:1::1/64 dev ul nodad"), 0);
	ext.has_ipv6 = true;
	cr_assert_eq(ipam_addr_parse("2001:db8:0:1::1", &ext.iface_addr6), 0);
	ext.public_ipv6 = ext.iface_addr6;
	loop = ev_loop_new();
	cr_assert(loop);
}

static void teardown(void)
{
	ev_loop_free(loop);
}

TestSuite(dualstack, .init = setup, .fini = teardown, .timeout = 60);

#define CFG_VX                                                                                      \
	"{\"Network\":\"198.18.0.0/16\",\"EnableIPv6\":true,\"IPv6Network\":\"2001:db8:100::/48\"," \
	"\"Backend\":{\"Type\":\"vxlan\"}}"
#define CFG_HG                                                                                      \
	"{\"Network\":\"198.18.0.0/16\",\"EnableIPv6\":true,\"IPv6Network\":\"2001:db8:100::/48\"," \
	"\"Backend\":{\"Type\":\"host-gw\"}}"

/* A dual-stack lease: subnets 198.18.@n.0/24 and 2001:db8:100:@n::/64, public IPs .1@n. */
static void mk_lease6(struct lease *l, unsigned n, const char *type, bool v6data)
{
	char s4[32], s6[48], p4[32], p6[48];
	uint8_t m4[6] = { 2, 0xaa, 0, 0, 4, (uint8_t)n }, m6[6] = { 2, 0xbb, 0, 0, 6, (uint8_t)n };

	snprintf(s4, sizeof(s4), "198.18.%u.0/24", n);
	snprintf(s6, sizeof(s6), "2001:db8:100:%x::/64", n);
	snprintf(p4, sizeof(p4), "192.0.2.%u", 10 + n);
	snprintf(p6, sizeof(p6), "2001:db8:0:1::%x", 0x10 + n);
	mk_lease(l, s4, p4, type, strcmp(type, "vxlan") == 0 ? m4 : NULL);
	l->has_ipv6 = true;
	cr_assert_eq(ipam_prefix_parse(s6, &l->ipv6_subnet), 0);
	l->attrs.has_public_ipv6 = true;
	cr_assert_eq(ipam_addr_parse(p6, &l->attrs.public_ipv6), 0);
	if (v6data)
		cr_assert_eq(lease_attrs_set_vxlan_v6(&l->attrs, 1, m6), 0);
}

static const struct backend_ops *ops;

static struct backend *started(const char *type, const char *cfgjson, struct lease_attrs *a)
{
	struct subnet_config *cfg = mk_config(cfgjson);
	char err[BE_ERR_MAX];
	struct backend *be;
	struct lease own;

	ops = backend_lookup(type);
	memset(a, 0, sizeof(*a));
	be = ops->init(loop, cfg, &ext, env_settings(), a, err, sizeof(err));
	cr_assert(be, "init: %s", err);
	subnet_config_free(cfg);
	mk_lease6(&own, 0, type, false);
	cr_assert_eq(ops->start(be, &own, err, sizeof(err)),
	             strcmp(type, "vxlan") == 0 ? 1430 : 1500, "%s", err);
	lease_clear(&own);
	return be;
}

struct expect6 {
	const struct lease *ls;
	size_t n;
	const char *dev; /* "flannel-v6.1" (overlay) or "ul" (host-gw) */
};

/* The IPv6 objects of the set exactly, no others (kernel routes and 33:33 multicast aside). */
static bool v6_matches(void *ctx)
{
	const struct expect6 *x = ctx;
	bool overlay = strcmp(x->dev, "ul") != 0, ok = false;

	/* the device is being recreated (self-healing): not there yet is "not yet", not an error */
	if (overlay && sh("ip link show dev flannel-v6.1 >/dev/null 2>&1") != 0) {
		snprintf(why, sizeof(why), "device flannel-v6.1 missing");
		return false;
	}
	json_t *routes = shj("ip -j -6 route show root 2001:db8:100::/48 proto boot");
	json_t *neighs =
		shj(overlay ? "ip -j -6 neigh show dev flannel-v6.1 nud permanent" : "echo []");
	json_t *fdb = shj("{ bridge -j fdb show dev flannel-v6.1 2>/dev/null || echo []; } | jq -c "
	                  "'[.[] | select(.mac | startswith(\"33:33\") | not)]'");
	char dst[IPAM_PREFIX_STRLEN], net[IPAM_ADDR_STRLEN], pub[IPAM_ADDR_STRLEN], mac[18];
	uint8_t m[6];

	why[0] = '\0';
	for (size_t i = 0; i < x->n; i++) {
		const struct lease *l = &x->ls[i];
		json_t *r;

		ipam_prefix_format(&l->ipv6_subnet, dst);
		ipam_addr_format(&l->ipv6_subnet.addr, net);
		ipam_addr_format(&l->attrs.public_ipv6, pub);
		r = find_by(routes, "dst", dst);
		if (!r || strcmp(jstr(r, "gateway"), overlay ? net : pub) ||
		    strcmp(jstr(r, "dev"), x->dev) ||
		    (overlay && !jarr_has(r, "flags", "onlink"))) {
			snprintf(why, sizeof(why), "route %s via %s dev %s missing or wrong", dst,
			         overlay ? net : pub, x->dev);
			goto out;
		}
		if (!overlay)
			continue;
		cr_assert_eq(lease_vxlan_v6_data(&l->attrs, NULL, m), 0);
		mac_str(m, mac);
		r = find_by(neighs, "dst", net);
		if (!r || strcmp(jstr(r, "lladdr"), mac)) {
			snprintf(why, sizeof(why), "neighbour %s lladdr %s missing", net, mac);
			goto out;
		}
		r = find_by(fdb, "mac", mac);
		if (!r || strcmp(jstr(r, "dst"), pub) || strcmp(jstr(r, "state"), "permanent")) {
			snprintf(why, sizeof(why), "fdb %s dst %s missing", mac, pub);
			goto out;
		}
	}
	if (json_array_size(routes) != x->n || json_array_size(neighs) != (overlay ? x->n : 0) ||
	    json_array_size(fdb) != (overlay ? x->n : 0)) {
		snprintf(why, sizeof(why), "%zu routes, %zu neighbours, %zu fdb for %zu leases",
		         json_array_size(routes), json_array_size(neighs), json_array_size(fdb),
		         x->n);
		goto out;
	}
	ok = true;
out:
	json_decref(routes);
	json_decref(neighs);
	json_decref(fdb);
	return ok;
}

Test(dualstack, vxlan_device_and_lease)
{
	struct lease_attrs a;
	struct backend *be = started("vxlan", CFG_VX, &a);
	json_t *l = shj("ip -j -d addr show flannel-v6.1");
	json_t *d = json_object_get(json_object_get(json_array_get(l, 0), "linkinfo"), "info_data");
	json_t *l4 = shj("ip -j link show flannel.1");
	uint8_t m4[6], m6[6];
	char mac[18];
	uint32_t vni;
	char *js;

	cr_assert(d, "no flannel-v6.1");
	cr_assert_eq(json_integer_value(json_object_get(d, "id")), 1);
	cr_assert_str_eq(jstr(d, "local6"), "2001:db8:0:1::1");
	cr_assert_eq(json_integer_value(json_object_get(d, "port")), 8472);
	cr_assert(json_is_false(json_object_get(d, "learning")));
	/* both devices carry the same MTU: the IPv6 underlay's (1500 - 70) */
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(l, 0), "mtu")), 1430);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(l4, 0), "mtu")), 1430);
	cr_assert(find_by(json_object_get(json_array_get(l, 0), "addr_info"), "local",
	                  "2001:db8:100::"),
	          "no 2001:db8:100::/128 on flannel-v6.1");
	/* the lease: BackendV6Data with the device's own MAC, not flannel.1's */
	cr_assert_eq(lease_vxlan_v6_data(&a, &vni, m6), 0);
	cr_assert_eq(lease_vxlan_data(&a, NULL, m4), 0);
	cr_assert_eq(vni, 1);
	mac_str(m6, mac);
	cr_assert_str_eq(jstr(json_array_get(l, 0), "address"), mac);
	cr_assert_neq(memcmp(m4, m6, 6), 0);
	cr_assert_eq(m6[0] & 3, 2, "not locally administered unicast");
	a.public_ip = ext.public_ip;
	a.has_public_ipv6 = true;
	a.public_ipv6 = ext.public_ipv6;
	js = lease_attrs_format(&a);
	cr_assert(strstr(js, "\"PublicIPv6\":\"2001:db8:0:1::1\",\"BackendType\":\"vxlan\""), "%s",
	          js);
	free(js);
	json_decref(l);
	json_decref(l4);
	lease_attrs_clear(&a);
	ops->stop(be);
}

static void leases_exact(bool nh)
{
	struct lease_attrs a;
	struct backend *be;
	struct lease ls[3];
	struct expect6 x = { .ls = ls, .n = 3, .dev = "flannel-v6.1" };
	struct be_stats st;

	if (!nh)
		setenv("TWILL_NEXTHOPS", "0", 1);
	be = started("vxlan", CFG_VX, &a);
	for (unsigned i = 0; i < 3; i++)
		mk_lease6(&ls[i], i + 1, "vxlan", true);
	cr_assert_eq(ops->resync(be, ls, 3), 0);
	cr_assert(v6_matches(&x), "%s", why);
	cr_assert_eq(shj_count("ip -j -6 nexthop show dev flannel-v6.1"), nh ? 3 : 0);
	ops->stats(be, &st);
	cr_assert(st.v6_configured && st.v6_working);
	cr_assert_eq(st.v6_leases, 3);
	cr_assert_eq(st.v6_objects, 9);
	/* withdrawn with the lease, in the next batch */
	cr_assert_eq(ops->lease_removed(be, &ls[1]), 0);
	x.n = 1;
	x.ls = &ls[0];
	cr_assert_eq(ops->lease_removed(be, &ls[2]), 0);
	cr_assert(poll_until(loop, v6_matches, &x, 2000), "%s", why);
	cr_assert_eq(shj_count("ip -j -4 route show dev flannel.1"), 1);
	for (unsigned i = 0; i < 3; i++)
		lease_clear(&ls[i]);
	lease_attrs_clear(&a);
	ops->stop(be);
}

Test(dualstack, vxlan_leases_exact_nexthops)
{
	leases_exact(true);
}

Test(dualstack, vxlan_leases_exact_plain_routes)
{
	leases_exact(false);
}

/* IPv6 halves that cannot be used: the IPv4 half is programmed, each is warned about once. */
Test(dualstack, vxlan_bad_ipv6_half_keeps_ipv4)
{
	struct lease_attrs a;
	struct backend *be = started("vxlan", CFG_VX, &a);
	struct lease ls[4];
	struct expect6 x = { .ls = ls, .n = 1, .dev = "flannel-v6.1" };
	struct be_stats st;

	mk_lease6(&ls[0], 1, "vxlan", true);
	mk_lease6(&ls[1], 2, "vxlan", false); /* no BackendV6Data */
	mk_lease6(&ls[2], 3, "vxlan", true);
	ls[2].attrs.has_public_ipv6 = false; /* PublicIPv6 not an address */
	ls[2].attrs.public_ipv6_bad = true;
	mk_lease6(&ls[3], 4, "vxlan", true);
	ls[3].has_ipv6 = false; /* no IPv6 part in the key */
	cr_assert_eq(ops->resync(be, ls, 4), 0);
	cr_assert(v6_matches(&x), "%s", why);
	cr_assert_eq(shj_count("ip -j -4 route show dev flannel.1"), 4, "IPv4 halves not all kept");
	ops->stats(be, &st);
	cr_assert_eq(st.v6_bad_leases, 3);
	cr_assert_eq(ops->resync(be, ls, 4), 0);
	cr_assert_eq(ops->lease_added(be, &ls[1]), 0);
	ops->stats(be, &st);
	cr_assert_eq(st.v6_bad_leases, 3, "warned again");
	for (unsigned i = 0; i < 4; i++)
		lease_clear(&ls[i]);
	lease_attrs_clear(&a);
	ops->stop(be);
}

static void self_heal(const char *breakit)
{
	struct lease_attrs a;
	struct backend *be;
	struct lease ls[2];
	struct expect6 x = { .ls = ls, .n = 2, .dev = "flannel-v6.1" };
	struct be_stats st;

	/* `ip route flush` cannot delete routes that use nexthop objects: plain routes then */
	if (strstr(breakit, "flush"))
		setenv("TWILL_NEXTHOPS", "0", 1);
	be = started("vxlan", CFG_VX, &a);
	mk_lease6(&ls[0], 1, "vxlan", true);
	mk_lease6(&ls[1], 2, "vxlan", true);
	cr_assert_eq(ops->resync(be, ls, 2), 0);
	cr_assert(v6_matches(&x), "%s", why);
	cr_assert_eq(sh("%s", breakit), 0, "%s", breakit);
	cr_assert(!v6_matches(&x));
	if (strstr(breakit, "link del")) {
		ops->stats(be, &st);
		cr_assert(!st.v6_working, "IPv6 half reported working without its device");
	}
	cr_assert(poll_until(loop, v6_matches, &x, 2000), "not restored after '%s': %s", breakit,
	          why);
	ops->stats(be, &st);
	cr_assert(st.v6_working);
	cr_assert_geq(st.repairs, 1);
	cr_assert_eq(shj_count("ip -j -4 route show dev flannel.1"), 2);
	lease_clear(&ls[0]);
	lease_clear(&ls[1]);
	lease_attrs_clear(&a);
	ops->stop(be);
}

Test(dualstack, self_heal_route_flush)
{
	self_heal("ip -6 route flush dev flannel-v6.1");
}

Test(dualstack, self_heal_neighbour)
{
	self_heal("ip -6 neigh del 2001:db8:100:1:: dev flannel-v6.1");
}

Test(dualstack, self_heal_device_deleted)
{
	self_heal("ip link del flannel-v6.1");
}

Test(dualstack, hostgw_routes)
{
	struct lease_attrs a;
	struct backend *be = started("host-gw", CFG_HG, &a);
	struct lease ls[2];
	struct expect6 x = { .ls = ls, .n = 2, .dev = "ul" };
	struct be_stats st;

	mk_lease6(&ls[0], 1, "host-gw", false);
	mk_lease6(&ls[1], 2, "host-gw", false);
	cr_assert_eq(ops->resync(be, ls, 2), 0);
	cr_assert(v6_matches(&x), "%s", why);
	cr_assert_null(a.backend_v6_data);
	ops->stats(be, &st);
	cr_assert_eq(st.v6_objects, 2);
	cr_assert_eq(sh("ip -6 route del 2001:db8:100:2::/64"), 0);
	cr_assert(poll_until(loop, v6_matches, &x, 2000), "not restored: %s", why);
	cr_assert_eq(ops->lease_removed(be, &ls[1]), 0);
	x.n = 1;
	cr_assert(poll_until(loop, v6_matches, &x, 2000), "not withdrawn: %s", why);
	lease_clear(&ls[0]);
	lease_clear(&ls[1]);
	lease_attrs_clear(&a);
	ops->stop(be);
}

/* Both halves of a lease reach the kernel in the same netlink batch (one sendmsg). */
Test(dualstack, both_families_in_one_batch)
{
	struct lease_attrs a;
	struct backend *be;
	struct lease ls[2];
	struct expect6 x = { .ls = ls, .n = 2, .dev = "flannel-v6.1" };
	struct nl_stats st;

	setenv("TWILL_NEXTHOPS", "0", 1);
	be = started("vxlan", CFG_VX, &a);
	mk_lease6(&ls[0], 1, "vxlan", true);
	mk_lease6(&ls[1], 2, "vxlan", true);
	cr_assert_eq(ops->resync(be, ls, 1), 0);
	nl_stats_reset();
	cr_assert_eq(ops->lease_added(be, &ls[1]), 0);
	cr_assert(poll_until(loop, v6_matches, &x, 2000), "%s", why);
	nl_stats_get(&st);
	cr_assert_eq(st.messages, 6, "%llu messages", (unsigned long long)st.messages);
	cr_assert_eq(st.sendmsg_calls, 1, "%llu sendmsg calls for one dual-stack lease",
	             (unsigned long long)st.sendmsg_calls);
	cr_assert_eq(shj_count("ip -j -4 route show dev flannel.1"), 2);
	/* and a resync of both families is one batch of repairs after the dumps */
	cr_assert_eq(sh("ip -6 route del 2001:db8:100:1::/64 && ip route del 198.18.1.0/24"), 0);
	nl_stats_reset();
	cr_assert_eq(ops->resync(be, ls, 2), 0);
	nl_stats_get(&st);
	cr_assert(v6_matches(&x), "%s", why);
	cr_assert_eq(shj_count("ip -j -4 route show dev flannel.1"), 2);
	cr_assert_eq(st.errors, 0);
	lease_clear(&ls[0]);
	lease_clear(&ls[1]);
	lease_attrs_clear(&a);
	ops->stop(be);
}

/* DirectRouting for IPv6: a peer on the underlay's /64 gets a direct route, one behind a gateway
 * the overlay objects. */
Test(dualstack, direct_routing_ipv6)
{
	static const char cfg[] =
		"{\"Network\":\"198.18.0.0/16\",\"EnableIPv6\":true,\"IPv6Network\":\"2001:db8:100::/48\","
		"\"Backend\":{\"Type\":\"vxlan\",\"DirectRouting\":true}}";
	struct lease_attrs a;
	struct backend *be;
	struct lease ls[2];
	json_t *r;

	cr_assert_eq(sh("ip -6 route add 2001:db8:0:2::/64 via 2001:db8:0:1::fe dev ul"), 0);
	be = started("vxlan", cfg, &a);
	mk_lease6(&ls[0], 1, "vxlan", true); /* PublicIPv6 2001:db8:0:1::11: on link */
	mk_lease6(&ls[1], 2, "vxlan", true);
	cr_assert_eq(ipam_addr_parse("2001:db8:0:2::5", &ls[1].attrs.public_ipv6), 0);
	cr_assert_eq(ops->resync(be, ls, 2), 0);
	r = shj("ip -j -6 route show 2001:db8:100:1::/64");
	cr_assert_str_eq(jstr(json_array_get(r, 0), "gateway"), "2001:db8:0:1::11");
	cr_assert_str_eq(jstr(json_array_get(r, 0), "dev"), "ul");
	json_decref(r);
	/* the overlay lease: neighbour, fdb and onlink route; the direct one has none of them */
	cr_assert_eq(shj_count("ip -j -6 neigh show dev flannel-v6.1 nud permanent"), 1);
	r = shj("ip -j -6 route show root 2001:db8:100::/48 dev flannel-v6.1 proto boot");
	cr_assert_eq(json_array_size(r), 1);
	cr_assert_str_eq(jstr(json_array_get(r, 0), "dst"), "2001:db8:100:2::/64");
	json_decref(r);
	lease_clear(&ls[0]);
	lease_clear(&ls[1]);
	lease_attrs_clear(&a);
	ops->stop(be);
}
