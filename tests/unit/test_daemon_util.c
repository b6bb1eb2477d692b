#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "daemon/util.h"

static struct subnet_config *cfg(const char *json)
{
	char err[SUBNET_ERR_MAX];
	struct subnet_config *c = subnet_config_parse(json, strlen(json), err, sizeof(err));

	cr_assert_not_null(c, "%s: %s", json, err);
	return c;
}

static void lease_v4(struct lease *l, const char *subnet, const char *pip, const char *type)
{
	memset(l, 0, sizeof(*l));
	l->has_ipv4 = true;
	cr_assert_eq(ipam_prefix_parse(subnet, &l->subnet), 0);
	cr_assert_eq(ipam_addr_parse(pip, &l->attrs.public_ip), 0);
	snprintf(l->attrs.backend_type, sizeof(l->attrs.backend_type), "%s", type);
	l->store_lease_id = 7;
}

Test(daemon_util, subnetfile_fill_ipv4)
{
	struct subnet_config *c =
		cfg("{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"vxlan\"}}");
	struct lease l;
	struct subnetfile sf;
	char buf[IPAM_PREFIX_STRLEN];

	lease_v4(&l, "198.18.87.0/24", "192.0.2.1", "vxlan");
	cr_assert_eq(subnetfile_from_lease(c, &l, 1450, false, &sf), 0);
	cr_expect(sf.has_network);
	cr_expect_str_eq(ipam_prefix_format(&sf.network, buf), "198.18.0.0/16");
	cr_expect(sf.has_subnet);
	cr_expect_str_eq(ipam_prefix_format(&sf.subnet, buf), "198.18.87.1/24");
	cr_expect_not(sf.has_ipv6_network);
	cr_expect_not(sf.has_ipv6_subnet);
	cr_expect(sf.has_mtu);
	cr_expect_eq(sf.mtu, 1450);
	cr_expect(sf.has_ipmasq);
	cr_expect_not(sf.ipmasq);
	subnet_config_free(c);
}

Test(daemon_util, subnetfile_fill_dual_stack)
{
	struct subnet_config *c =
		cfg("{\"Network\":\"198.18.0.0/16\",\"EnableIPv6\":true,"
	            "\"IPv6Network\":\"fc00::/48\",\"Backend\":{\"Type\":\"vxlan\"}}");
	struct lease l;
	struct subnetfile sf;
	char buf[IPAM_PREFIX_STRLEN];

	lease_v4(&l, "198.18.3.0/24", "192.0.2.1", "vxlan");
	l.has_ipv6 = true;
	cr_assert_eq(ipam_prefix_parse("fc00:0:0:5::/64", &l.ipv6_subnet), 0);
	cr_assert_eq(subnetfile_from_lease(c, &l, 1400, true, &sf), 0);
	cr_expect_str_eq(ipam_prefix_format(&sf.ipv6_network, buf), "fc00::/48");
	cr_expect_str_eq(ipam_prefix_format(&sf.ipv6_subnet, buf), "fc00:0:0:5::1/64");
	cr_expect(sf.ipmasq);
	subnet_config_free(c);
}

Test(daemon_util, config_diff)
{
	struct subnet_config *a =
		cfg("{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"vxlan\"}}");
	struct subnet_config *b =
		cfg("{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"vxlan\"}}");
	struct subnet_config *c = cfg(
		"{\"Network\":\"198.19.0.0/16\",\"SubnetLen\":25,\"Backend\":{\"Type\":\"host-gw\"}}");
	struct subnet_config *d =
		cfg("{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"vxlan\",\"VNI\":2}}");
	struct subnet_config *e = cfg("{\"Network\":\"198.18.0.0/16\"}");
	char buf[512];

	cr_expect_str_eq(subnet_config_diff(a, b, buf, sizeof(buf)), "");
	subnet_config_diff(a, c, buf, sizeof(buf));
	cr_expect(strstr(buf, "Network 198.18.0.0/16 -> 198.19.0.0/16") != NULL, "%s", buf);
	cr_expect(strstr(buf, "SubnetLen 24 -> 25") != NULL, "%s", buf);
	cr_expect(strstr(buf, "Backend.Type vxlan -> host-gw") != NULL, "%s", buf);
	cr_expect_str_eq(subnet_config_diff(a, d, buf, sizeof(buf)), "Backend options");
	cr_expect_str_eq(subnet_config_diff(a, e, buf, sizeof(buf)), "Backend.Type vxlan -> udp");
	/* truncation is safe */
	subnet_config_diff(a, c, buf, 10);
	cr_expect_eq(strlen(buf), 9);
	subnet_config_free(a);
	subnet_config_free(b);
	subnet_config_free(c);
	subnet_config_free(d);
	subnet_config_free(e);
}

Test(daemon_util, lease_describe)
{
	struct lease l;
	char buf[TWILLD_DESCRIBE_MAX];

	lease_v4(&l, "198.18.3.0/24", "192.0.2.2", "vxlan");
	cr_expect_str_eq(twilld_lease_describe(&l, buf, sizeof(buf)),
	                 "198.18.3.0/24 (public IP 192.0.2.2, backend vxlan)");
	lease_v4(&l, "198.18.4.0/24", "192.0.2.3", "");
	l.store_lease_id = 0;
	cr_expect_str_eq(twilld_lease_describe(&l, buf, sizeof(buf)),
	                 "198.18.4.0/24 (public IP 192.0.2.3, backend udp, reservation)");
}
