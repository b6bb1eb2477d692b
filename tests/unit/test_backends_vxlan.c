/*
 * The vxlan backend against the real kernel, each test in its own network
 * namespace (Criterion forks; the test unshares). Kernel state is read back with
 * ip -j / bridge -j and compared exactly with the leases.
 */
#include "tests/unit/nltest.h"

#include "backends/routeset.h"
#include "backends/vxlan.h"
#include "lib/log.h"
#include "lib/nl.h"
#include "tests/unit/be_testenv.h"

static const struct backend_ops *vx;
static struct be_extif ext;
static struct ev_loop *loop;
static char why[512];

static void setup(void)
{
	log_init("test", LOG_LVL_WARN);
	vx = backend_lookup("vxlan");
	cr_assert(vx);
	netns_underlay(&ext);
	loop = ev_loop_new();
	cr_assert(loop);
}

static void teardown(void)
{
	ev_loop_free(loop);
}

TestSuite(vxlan, .init = setup, .fini = teardown, .timeout = 60);

static struct backend *init_ok(const char *cfgjson, struct lease_attrs *attrs)
{
	struct subnet_config *cfg = mk_config(cfgjson);
	char err[BE_ERR_MAX];
	struct backend *be;

	memset(attrs, 0, sizeof(*attrs));
	be = vx->init(loop, cfg, &ext, env_settings(), attrs, err, sizeof(err));
	cr_assert(be, "init: %s", err);
	subnet_config_free(cfg);
	return be;
}

static struct backend *started(const char *cfgjson, struct lease_attrs *attrs)
{
	struct backend *be = init_ok(cfgjson, attrs);
	char err[BE_ERR_MAX];
	struct lease own;

	mk_lease(&own, "198.18.0.0/24", "192.0.2.1", "vxlan", NULL);
	cr_assert_eq(vx->start(be, &own, err, sizeof(err)), 1450, "%s", err);
	lease_clear(&own);
	return be;
}

#define CFG "{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"vxlan\"}}"

static json_t *link_info(const char *dev)
{
	json_t *a = shj("ip -j -d link show %s 2>/dev/null", dev);
	json_t *l = json_incref(json_array_get(a, 0));

	json_decref(a);
	return l;
}

/*
 * The kernel holds exactly the neighbour, fdb entry and route (via a nexthop
 * object when @nh) of every lease in @ls, and nothing else on flannel.1.
 * @direct: leases that must have a direct route via their PublicIP on ul instead.
 */
struct expect {
	const struct lease *ls;
	size_t n;
	bool nh;
	const bool *direct;
};

static bool kernel_matches(void *ctx)
{
	const struct expect *x = ctx;
	json_t *routes, *ulroutes, *neighs, *fdb;
	size_t nover = 0;
	bool ok = false;

	/* no device (yet: self-healing recreates it) is "not there", not a failed `ip` */
	if (sh("ip link show dev flannel.1 >/dev/null 2>&1") != 0) {
		snprintf(why, sizeof(why), "no flannel.1");
		return false;
	}
	routes = shj("ip -j route show dev flannel.1");
	ulroutes = shj("ip -j route show dev ul");
	neighs = shj("ip -j neigh show dev flannel.1 nud permanent");
	fdb = shj("bridge -j fdb show dev flannel.1");
	why[0] = '\0';
	for (size_t i = 0; i < x->n; i++) {
		const struct lease *l = &x->ls[i];
		char dst[IPAM_PREFIX_STRLEN], net[IPAM_ADDR_STRLEN], pub[IPAM_ADDR_STRLEN];
		char mac[18];
		uint8_t m[6];
		uint32_t vni;
		json_t *r, *n, *f;

		ipam_prefix_format(&l->subnet, dst);
		ipam_addr_format(&l->subnet.addr, net);
		ipam_addr_format(&l->attrs.public_ip, pub);
		if (x->direct && x->direct[i]) {
			r = find_by(ulroutes, "dst", dst);
			if (!r || strcmp(jstr(r, "gateway"), pub) != 0) {
				snprintf(why, sizeof(why), "no direct route %s via %s", dst, pub);
				goto out;
			}
			if (find_by(routes, "dst", dst) || find_by(neighs, "dst", net)) {
				snprintf(why, sizeof(why), "overlay entries for direct lease %s",
				         dst);
				goto out;
			}
			continue;
		}
		nover++;
		cr_assert_eq(lease_vxlan_data(&l->attrs, &vni, m), 0);
		mac_str(m, mac);
		r = find_by(routes, "dst", dst);
		if (!r || strcmp(jstr(r, "gateway"), net) != 0 || !jarr_has(r, "flags", "onlink") ||
		    (x->nh != (json_object_get(r, "nhid") != NULL))) {
			snprintf(why, sizeof(why), "route %s via %s onlink%s missing or wrong", dst,
			         net, x->nh ? " nhid" : "");
			goto out;
		}
		n = find_by(neighs, "dst", net);
		if (!n || strcmp(jstr(n, "lladdr"), mac) != 0) {
			snprintf(why, sizeof(why), "neighbour %s lladdr %s missing or wrong", net,
			         mac);
			goto out;
		}
		f = find_by(fdb, "mac", mac);
		if (!f || strcmp(jstr(f, "dst"), pub) != 0 ||
		    strcmp(jstr(f, "state"), "permanent")) {
			snprintf(why, sizeof(why), "fdb %s dst %s missing or wrong", mac, pub);
			goto out;
		}
	}
	if (json_array_size(routes) != nover || json_array_size(neighs) != nover ||
	    json_array_size(fdb) != nover) {
		snprintf(why, sizeof(why),
		         "extra entries: %zu routes, %zu neighbours, %zu fdb for %zu leases",
		         json_array_size(routes), json_array_size(neighs), json_array_size(fdb),
		         nover);
		goto out;
	}
	if (x->nh) {
		json_t *nhs = shj("ip -j nexthop show dev flannel.1");

		if (json_array_size(nhs) != nover) {
			snprintf(why, sizeof(why), "%zu nexthops for %zu leases",
			         json_array_size(nhs), nover);
			json_decref(nhs);
			goto out;
		}
		json_decref(nhs);
	}
	ok = true;
out:
	json_decref(routes);
	json_decref(ulroutes);
	json_decref(neighs);
	json_decref(fdb);
	return ok;
}

static void three_leases(struct lease ls[3])
{
	static const uint8_t m[3][6] = { { 2, 0xaa, 0, 0, 0, 1 },
		                         { 2, 0xaa, 0, 0, 0, 2 },
		                         { 2, 0xaa, 0, 0, 0, 3 } };

	mk_lease(&ls[0], "198.18.1.0/24", "192.0.2.11", "vxlan", m[0]);
	mk_lease(&ls[1], "198.18.2.0/24", "192.0.2.12", "vxlan", m[1]);
	mk_lease(&ls[2], "198.18.3.0/24", "192.0.2.13", "vxlan", m[2]);
}

static void free_leases(struct lease *ls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lease_clear(&ls[i]);
}

Test(vxlan, options_defaults_and_errors)
{
	struct subnet_config *c = mk_config(CFG);
	struct vxlan_options o;
	char err[BE_ERR_MAX];

	cr_assert_eq(vxlan_parse_options(c, 1500, &o, err, sizeof(err)), 0);
	cr_assert_eq(o.vni, 1);
	cr_assert_eq(o.port, 8472);
	cr_assert_eq(o.mtu, 1450);
	cr_assert(!o.gbp && !o.learning && !o.direct_routing);
	subnet_config_free(c);
	c = mk_config("{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"vxlan\",\"vni\":7,"
	              "\"PORT\":4789,\"MTU\":1400,\"GBP\":true,\"DirectRouting\":true}}");
	cr_assert_eq(vxlan_parse_options(c, 1500, &o, err, sizeof(err)), 0);
	cr_assert_eq(o.vni, 7);
	cr_assert_eq(o.port, 4789);
	cr_assert_eq(o.mtu, 1400);
	cr_assert(o.gbp && o.direct_routing);
	subnet_config_free(c);
	c = mk_config(
		"{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"vxlan\",\"VNI\":\"x\"}}");
	cr_assert_eq(vxlan_parse_options(c, 1500, &o, err, sizeof(err)), -EINVAL);
	subnet_config_free(c);
	c = mk_config(
		"{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"vxlan\",\"Port\":70000}}");
	cr_assert_eq(vxlan_parse_options(c, 1500, &o, err, sizeof(err)), -EINVAL);
	subnet_config_free(c);
}

Test(vxlan, init_creates_device)
{
	struct lease_attrs a;
	struct backend *be = init_ok(CFG, &a);
	json_t *l = link_info("flannel.1"), *d;
	uint32_t vni;
	uint8_t mac[6];
	char macs[18];

	cr_assert(l, "flannel.1 missing");
	d = json_object_get(json_object_get(json_object_get(l, "linkinfo"), "info_data"), "id");
	cr_assert_eq(json_integer_value(d), 1);
	d = json_object_get(json_object_get(l, "linkinfo"), "info_data");
	cr_assert_str_eq(jstr(json_object_get(l, "linkinfo"), "info_kind"), "vxlan");
	cr_assert_eq(json_integer_value(json_object_get(d, "port")), 8472);
	cr_assert_str_eq(jstr(d, "local"), "192.0.2.1");
	cr_assert_str_eq(jstr(d, "link"), "ul");
	cr_assert(json_is_false(json_object_get(d, "learning")));
	cr_assert_null(json_object_get(d, "group"));
	cr_assert_eq(json_integer_value(json_object_get(l, "mtu")), 1450);
	cr_assert_str_eq(a.backend_type, "vxlan");
	cr_assert_eq(lease_vxlan_data(&a, &vni, mac), 0);
	cr_assert_eq(vni, 1);
	mac_str(mac, macs);
	cr_assert_str_eq(jstr(l, "address"), macs);
	cr_assert_eq(mac[0] & 1, 0, "multicast MAC");
	cr_assert_eq(mac[0] & 2, 2, "not locally administered");
	json_decref(l);
	lease_attrs_clear(&a);
	vx->stop(be);
	/* stop leaves the device */
	l = link_info("flannel.1");
	cr_assert(l);
	json_decref(l);
}

Test(vxlan, init_options_port_vni_mtu_gbp)
{
	struct lease_attrs a;
	struct backend *be =
		init_ok("{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"vxlan\","
	                "\"VNI\":7,\"Port\":4789,\"MTU\":1400,\"GBP\":true}}",
	                &a);
	json_t *l = link_info("flannel.7"), *d;

	cr_assert(l);
	d = json_object_get(json_object_get(l, "linkinfo"), "info_data");
	cr_assert_eq(json_integer_value(json_object_get(d, "id")), 7);
	cr_assert_eq(json_integer_value(json_object_get(d, "port")), 4789);
	cr_assert(json_is_true(json_object_get(d, "gbp")));
	cr_assert_eq(json_integer_value(json_object_get(l, "mtu")), 1400);
	json_decref(l);
	lease_attrs_clear(&a);
	vx->stop(be);
}

Test(vxlan, compatible_device_kept_with_its_mac)
{
	struct lease_attrs a;
	struct backend *be;
	uint32_t vni;
	uint8_t mac[6];
	unsigned idx;

	cr_assert_eq(sh("ip link add flannel.1 address 02:11:22:33:44:55 type vxlan id 1 "
	                "local 192.0.2.1 dev ul dstport 8472 nolearning"),
	             0);
	idx = if_nametoindex("flannel.1");
	be = init_ok(CFG, &a);
	cr_assert_eq(if_nametoindex("flannel.1"), idx, "device was recreated");
	cr_assert_eq(lease_vxlan_data(&a, &vni, mac), 0);
	cr_assert_eq(memcmp(mac, (uint8_t[]){ 2, 0x11, 0x22, 0x33, 0x44, 0x55 }, 6), 0);
	lease_attrs_clear(&a);
	vx->stop(be);
}

Test(vxlan, incompatible_device_recreated)
{
	struct lease_attrs a;
	struct backend *be;
	json_t *l;
	unsigned idx;

	cr_assert_eq(sh("ip link add flannel.1 address 02:11:22:33:44:55 type vxlan id 1 "
	                "local 192.0.2.1 dev ul dstport 4789 nolearning"),
	             0);
	idx = if_nametoindex("flannel.1");
	be = init_ok(CFG, &a);
	cr_assert_neq(if_nametoindex("flannel.1"), idx, "device was kept");
	l = link_info("flannel.1");
	cr_assert_eq(json_integer_value(json_object_get(
			     json_object_get(json_object_get(l, "linkinfo"), "info_data"), "port")),
	             8472);
	cr_assert_str_neq(jstr(l, "address"), "02:11:22:33:44:55");
	json_decref(l);
	lease_attrs_clear(&a);
	vx->stop(be);
}

Test(vxlan, start_sets_address_mtu_and_up)
{
	struct lease_attrs a;
	struct backend *be;
	json_t *addrs, *l;

	cr_assert_eq(sh("ip link add flannel.1 mtu 1300 type vxlan id 1 local 192.0.2.1 dev ul "
	                "dstport 8472 nolearning && ip addr add 198.18.99.0/32 dev flannel.1"),
	             0);
	be = started(CFG, &a);
	addrs = shj("ip -j -4 addr show dev flannel.1");
	l = json_object_get(json_array_get(addrs, 0), "addr_info");
	cr_assert_eq(json_array_size(l), 1);
	cr_assert_str_eq(jstr(json_array_get(l, 0), "local"), "198.18.0.0");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(l, 0), "prefixlen")), 32);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(addrs, 0), "mtu")), 1450);
	cr_assert(jarr_has(json_array_get(addrs, 0), "flags", "UP"));
	json_decref(addrs);
	lease_attrs_clear(&a);
	vx->stop(be);
}

static void added_removed(bool nh)
{
	struct lease_attrs a;
	struct backend *be;
	struct lease ls[3], other;
	struct expect x = { .ls = ls, .n = 3, .nh = nh };

	if (!nh)
		setenv("TWILL_NEXTHOPS", "0", 1);
	be = started(CFG, &a);
	three_leases(ls);
	mk_lease(&other, "198.18.9.0/24", "192.0.2.19", "host-gw", NULL);
	cr_assert_eq(vx->resync(be, NULL, 0), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(vx->lease_added(be, &ls[i]), 0);
	cr_assert_eq(vx->lease_added(be, &other), 0); /* ignored with a warning */
	cr_assert(poll_until(loop, kernel_matches, &x, 2000), "%s", why);
	cr_assert_eq(vx->lease_removed(be, &ls[1]), 0);
	lease_clear(&ls[1]);
	ls[1] = ls[2];
	x.n = 2;
	cr_assert(poll_until(loop, kernel_matches, &x, 2000), "%s", why);
	lease_clear(&ls[0]);
	lease_clear(&ls[1]);
	lease_clear(&other);
	lease_attrs_clear(&a);
	vx->stop(be);
}

Test(vxlan, lease_added_removed_nexthops)
{
	added_removed(true);
}

Test(vxlan, lease_added_removed_plain_routes)
{
	added_removed(false);
}

Test(vxlan, changed_lease_moves_fdb)
{
	struct lease_attrs a;
	struct backend *be = started(CFG, &a);
	struct lease ls[3];
	struct expect x = { .ls = ls, .n = 3, .nh = true };
	uint8_t m[6] = { 2, 0xbb, 0, 0, 0, 9 };

	three_leases(ls);
	cr_assert_eq(vx->resync(be, ls, 3), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	lease_clear(&ls[0]);
	mk_lease(&ls[0], "198.18.1.0/24", "192.0.2.21", "vxlan", m);
	cr_assert_eq(vx->lease_added(be, &ls[0]), 0);
	cr_assert(poll_until(loop, kernel_matches, &x, 2000), "%s", why);
	free_leases(ls, 3);
	lease_attrs_clear(&a);
	vx->stop(be);
}

static void resync_stale(bool nh)
{
	struct lease_attrs a;
	struct backend *be;
	struct lease ls[3];
	struct expect x = { .ls = ls, .n = 3, .nh = nh };

	if (!nh)
		setenv("TWILL_NEXTHOPS", "0", 1);
	be = started(CFG, &a);
	three_leases(ls);
	/* stale entries of a vanished lease, and one lease half installed */
	cr_assert_eq(
		sh("ip neigh add 198.18.7.0 lladdr 02:cc:00:00:00:07 dev flannel.1 nud permanent && "
	           "bridge fdb add 02:cc:00:00:00:07 dev flannel.1 dst 192.0.2.77 self permanent && "
	           "ip route add 198.18.7.0/24 via 198.18.7.0 dev flannel.1 onlink && "
	           "ip neigh add 198.18.1.0 lladdr 02:aa:00:00:00:01 dev flannel.1 nud permanent && "
	           "ip route add 198.18.2.0/24 via 198.18.2.0 dev flannel.1 onlink && "
	           "bridge fdb add 02:aa:00:00:00:03 dev flannel.1 dst 192.0.2.99 self permanent"),
		0);
	if (nh)
		cr_assert_eq(sh("ip nexthop add id %u via 198.18.8.0 dev flannel.1 onlink && "
		                "ip route add 198.18.8.0/24 nhid %u",
		                0x40000000u + RS_NH_RANGE + (0x0800 >> 2),
		                0x40000000u + RS_NH_RANGE + (0x0800 >> 2)),
		             0);
	cr_assert_eq(vx->resync(be, ls, 3), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	/* resync of the same set changes nothing */
	nl_stats_reset();
	cr_assert_eq(vx->resync(be, ls, 3), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	{
		struct nl_stats st;

		nl_stats_get(&st);
		cr_assert_eq(st.errors, 0);
	}
	/* a smaller set removes the rest */
	x.n = 1;
	cr_assert_eq(vx->resync(be, ls, 1), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	free_leases(ls, 3);
	lease_attrs_clear(&a);
	vx->stop(be);
}

Test(vxlan, resync_removes_stale_adds_missing_nexthops)
{
	resync_stale(true);
}

Test(vxlan, resync_removes_stale_adds_missing_plain_routes)
{
	resync_stale(false);
}

Test(vxlan, resync_switches_route_forms)
{
	struct lease_attrs a;
	struct backend *be = started(CFG, &a);
	struct lease ls[3];
	struct expect x = { .ls = ls, .n = 3, .nh = true };

	three_leases(ls);
	cr_assert_eq(vx->resync(be, ls, 3), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	vx->stop(be);
	lease_attrs_clear(&a);
	/* restart without nexthops: routes become plain, nexthops go */
	setenv("TWILL_NEXTHOPS", "0", 1);
	be = started(CFG, &a);
	cr_assert_eq(vx->resync(be, ls, 3), 0);
	x.nh = false;
	cr_assert(kernel_matches(&x), "%s", why);
	cr_assert_eq(shj_count("ip -j nexthop show"), 0);
	vx->stop(be);
	lease_attrs_clear(&a);
	/* and back */
	unsetenv("TWILL_NEXTHOPS");
	be = started(CFG, &a);
	cr_assert_eq(vx->resync(be, ls, 3), 0);
	x.nh = true;
	cr_assert(kernel_matches(&x), "%s", why);
	free_leases(ls, 3);
	lease_attrs_clear(&a);
	vx->stop(be);
}

static void resync_many(bool nh)
{
	enum { N = 1000 };
	struct lease_attrs a;
	struct backend *be;
	struct lease *ls = calloc(N, sizeof(*ls));
	struct expect x = { .ls = ls, .n = N, .nh = nh };
	struct nl_stats st;

	if (!nh)
		setenv("TWILL_NEXTHOPS", "0", 1);
	be = started(CFG, &a);
	for (unsigned i = 0; i < N; i++)
		mk_lease_n(&ls[i], i, "vxlan");
	nl_stats_reset();
	cr_assert_eq(vx->resync(be, ls, N), 0);
	nl_stats_get(&st);
	cr_assert_eq(st.errors, 0);
	cr_assert_geq(st.messages, (nh ? 4 : 3) * N);
	cr_assert_lt(st.sendmsg_calls, 20, "%llu sendmsg calls for %llu messages",
	             (unsigned long long)st.sendmsg_calls, (unsigned long long)st.messages);
	cr_assert(kernel_matches(&x), "%s", why);
	/* lease_added bursts are batched too: one flush per loop iteration */
	nl_stats_reset();
	for (unsigned i = 0; i < N; i += 2)
		cr_assert_eq(vx->lease_removed(be, &ls[i]), 0);
	cr_assert_eq(ev_loop_run_once(loop, 100), 0);
	nl_stats_get(&st);
	cr_assert_lt(st.sendmsg_calls, 10, "%llu sendmsg calls",
	             (unsigned long long)st.sendmsg_calls);
	free_leases(ls, N);
	lease_attrs_clear(&a);
	vx->stop(be);
	free(ls);
}

Test(vxlan, resync_1000_is_batched_nexthops)
{
	resync_many(true);
}

Test(vxlan, resync_1000_is_batched_plain_routes)
{
	resync_many(false);
}

static void self_heal(const char *breakit, bool nh)
{
	struct lease_attrs a;
	struct backend *be;
	struct lease ls[3];
	struct expect x = { .ls = ls, .n = 3, .nh = nh };
	uint8_t mac[6];
	uint32_t vni;
	char macs[18];
	json_t *l;

	if (!nh)
		setenv("TWILL_NEXTHOPS", "0", 1);
	be = started(CFG, &a);
	three_leases(ls);
	cr_assert_eq(vx->resync(be, ls, 3), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	cr_assert_eq(sh("%s", breakit), 0, "%s", breakit);
	cr_assert(!kernel_matches(&x) || strstr(breakit, "addr") || strstr(breakit, "down"));
	cr_assert(poll_until(loop, kernel_matches, &x, 2000), "not restored after '%s': %s",
	          breakit, why);
	/* the device keeps the MAC of the lease, its address and MTU */
	l = link_info("flannel.1");
	cr_assert_eq(lease_vxlan_data(&a, &vni, mac), 0);
	mac_str(mac, macs);
	cr_assert_str_eq(jstr(l, "address"), macs);
	cr_assert_eq(json_integer_value(json_object_get(l, "mtu")), 1450);
	cr_assert(jarr_has(l, "flags", "UP"));
	json_decref(l);
	{
		uint64_t end = ev_now_ms() + 2000;

		for (;;) {
			json_t *ad = shj("ip -j -4 addr show dev flannel.1");
			json_t *ai = json_object_get(json_array_get(ad, 0), "addr_info");
			bool ok = json_array_size(ai) == 1 &&
			          strcmp(jstr(json_array_get(ai, 0), "local"), "198.18.0.0") == 0;

			json_decref(ad);
			if (ok)
				break;
			cr_assert_lt(ev_now_ms(), end, "address not restored");
			ev_loop_run_once(loop, 20);
		}
	}
	free_leases(ls, 3);
	lease_attrs_clear(&a);
	vx->stop(be);
}

Test(vxlan, self_heal_route)
{
	self_heal("ip route del 198.18.2.0/24", true);
}

Test(vxlan, self_heal_route_plain)
{
	self_heal("ip route del 198.18.2.0/24", false);
}

Test(vxlan, self_heal_neighbour)
{
	self_heal("ip neigh del 198.18.1.0 dev flannel.1", true);
}

Test(vxlan, self_heal_fdb)
{
	self_heal("bridge fdb del 02:aa:00:00:00:03 dev flannel.1 self", true);
}

Test(vxlan, self_heal_nexthop)
{
	self_heal("ip nexthop flush", true);
}

Test(vxlan, self_heal_device_deleted)
{
	self_heal("ip link del flannel.1", true);
}

Test(vxlan, self_heal_device_deleted_plain)
{
	self_heal("ip link del flannel.1", false);
}

Test(vxlan, self_heal_link_down)
{
	self_heal("ip link set flannel.1 down", true);
}

Test(vxlan, self_heal_address)
{
	self_heal("ip addr flush dev flannel.1", true);
}

Test(vxlan, own_changes_do_not_loop)
{
	struct lease_attrs a;
	struct backend *be = started(CFG, &a);
	struct lease ls[3];
	struct expect x = { .ls = ls, .n = 3, .nh = true };
	struct nl_stats st;

	three_leases(ls);
	cr_assert_eq(vx->resync(be, ls, 3), 0);
	for (int i = 0; i < 3; i++)
		vx->lease_removed(be, &ls[i]);
	for (int i = 0; i < 3; i++)
		vx->lease_added(be, &ls[i]);
	cr_assert(poll_until(loop, kernel_matches, &x, 2000), "%s", why);
	/* let every event of our own changes arrive; nothing more may be sent */
	for (int i = 0; i < 10; i++)
		ev_loop_run_once(loop, 30);
	nl_stats_reset();
	for (int i = 0; i < 15; i++)
		ev_loop_run_once(loop, 30);
	nl_stats_get(&st);
	cr_assert_eq(st.sendmsg_calls, 0, "%llu sendmsg calls while idle",
	             (unsigned long long)st.sendmsg_calls);
	free_leases(ls, 3);
	lease_attrs_clear(&a);
	vx->stop(be);
}

Test(vxlan, direct_routing)
{
	struct lease_attrs a;
	struct backend *be;
	struct lease ls[3];
	bool direct[3] = { true, false, true };
	struct expect x = { .ls = ls, .n = 3, .nh = true, .direct = direct };
	static const uint8_t m[6] = { 2, 0xdd, 0, 0, 0, 2 };

	be = started("{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"vxlan\","
	             "\"DirectRouting\":true}}",
	             &a);
	cr_assert_eq(sh("ip route add 198.51.100.0/24 via 192.0.2.254"), 0);
	three_leases(ls);
	lease_clear(&ls[1]);
	mk_lease(&ls[1], "198.18.2.0/24", "198.51.100.7", "vxlan", m); /* behind a gateway */
	cr_assert_eq(vx->resync(be, ls, 3), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	/* incremental add of a direct peer, and self-healing of a direct route */
	lease_clear(&ls[2]);
	mk_lease(&ls[2], "198.18.3.0/24", "192.0.2.33", "vxlan", m);
	cr_assert_eq(vx->lease_added(be, &ls[2]), 0);
	cr_assert(poll_until(loop, kernel_matches, &x, 2000), "%s", why);
	cr_assert_eq(sh("ip route del 198.18.1.0/24"), 0);
	cr_assert(poll_until(loop, kernel_matches, &x, 2000), "%s", why);
	free_leases(ls, 3);
	lease_attrs_clear(&a);
	vx->stop(be);
}

Test(vxlan, stop_leaves_kernel_state)
{
	struct lease_attrs a;
	struct backend *be = started(CFG, &a);
	struct lease ls[3];
	struct expect x = { .ls = ls, .n = 3, .nh = true };

	three_leases(ls);
	cr_assert_eq(vx->resync(be, ls, 3), 0);
	vx->stop(be);
	cr_assert(kernel_matches(&x), "%s", why);
	/* a restart with the same leases keeps everything (and the MAC) */
	lease_attrs_clear(&a);
	be = started(CFG, &a);
	cr_assert_eq(vx->resync(be, ls, 3), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	free_leases(ls, 3);
	lease_attrs_clear(&a);
	vx->stop(be);
}

Test(vxlan, without_loop_flushes_at_once)
{
	struct subnet_config *cfg = mk_config(CFG);
	struct lease_attrs a = { 0 };
	char err[BE_ERR_MAX];
	struct backend *be = vx->init(NULL, cfg, &ext, env_settings(), &a, err, sizeof(err));
	struct lease own, ls[3];
	struct expect x = { .ls = ls, .n = 3, .nh = true };

	cr_assert(be, "%s", err);
	mk_lease(&own, "198.18.0.0/24", "192.0.2.1", "vxlan", NULL);
	cr_assert_eq(vx->start(be, &own, err, sizeof(err)), 1450, "%s", err);
	three_leases(ls);
	cr_assert_eq(vx->resync(be, NULL, 0), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(vx->lease_added(be, &ls[i]), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	free_leases(ls, 3);
	lease_clear(&own);
	lease_attrs_clear(&a);
	subnet_config_free(cfg);
	vx->stop(be);
}

Test(vxlan, lookup_table)
{
	cr_assert_eq(backend_lookup("vxlan"), &*vx);
	cr_assert(backend_lookup("host-gw"));
	cr_assert_str_eq(backend_lookup("host-gw")->name, "host-gw");
	cr_assert_str_eq(backend_lookup("udp")->name, "udp");
	cr_assert_null(backend_lookup("nope"));
	cr_assert_null(backend_lookup(NULL));
}

Test(vxlan, own_lease_is_not_programmed)
{
	struct lease_attrs a;
	struct backend *be = started(CFG, &a);
	struct lease ls[4];
	struct expect x = { .ls = ls, .n = 3, .nh = true };
	static const uint8_t m[6] = { 2, 0xee, 0, 0, 0, 1 };

	three_leases(ls);
	mk_lease(&ls[3], "198.18.0.0/24", "192.0.2.1", "vxlan", m);
	cr_assert_eq(vx->resync(be, ls, 4), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	cr_assert_eq(vx->lease_added(be, &ls[3]), 0);
	cr_assert_eq(ev_loop_run_once(loop, 50), 0);
	cr_assert(kernel_matches(&x), "%s", why);
	free_leases(ls, 4);
	lease_attrs_clear(&a);
	vx->stop(be);
}
