/*
 * Interface choice inside a private network namespace: each test unshares its
 * own (Criterion runs every test in its own process) and builds veth pairs
 * with addresses in 192.0.2.0/24 and 198.51.100.0/24.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "daemon/iface.h"

/*
 * tw-a 192.0.2.10/24 (MTU 1400), its peer tw-ap without IPv4;
 * tw-b 198.51.100.20/24 + 169.254.7.7/16 (MTU 9000), peer tw-bp 198.51.100.21/24;
 * default route via 198.51.100.1 on tw-b.
 */
static void netns_setup(void)
{
	static const char script[] =
		"set -e\n"
		"ip link set lo up\n"
		"ip link add tw-a mtu 1400 type veth peer name tw-ap mtu 1400\n"
		"ip link add tw-b mtu 9000 type veth peer name tw-bp mtu 9000\n"
		"ip addr add 192.0.2.10/24 dev tw-a\n"
		"ip addr add 169.254.7.7/16 dev tw-b\n"
		"ip addr add 198.51.100.20/24 dev tw-b\n"
		"ip addr add 198.51.100.21/24 dev tw-bp\n"
		"for l in tw-a tw-ap tw-b tw-bp; do ip link set $l up; done\n"
		"ip route add default via 198.51.100.1 dev tw-b\n";
	char cmd[sizeof(script) + 32];

	cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s", strerror(errno));
	snprintf(cmd, sizeof(cmd), "sh -c '%s'", script);
	cr_assert_eq(system(cmd), 0, "netns set-up failed");
}

static void sh(const char *cmd)
{
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static char *addr_str(const struct ipam_addr *a)
{
	static char buf[2][IPAM_ADDR_STRLEN];
	static int i;

	i ^= 1;
	return ipam_addr_format(a, buf[i]);
}

static int choose(char **ifaces, size_t ni, char **regexes, size_t nr, const char *reach,
                  const char *public_ip, struct be_extif *ext, char *err)
{
	struct iface_sel sel = { ifaces, ni, regexes, nr, reach, NULL };
	struct ipam_addr pip;

	if (public_ip) {
		cr_assert_eq(ipam_addr_parse(public_ip, &pip), 0);
		sel.public_ip = &pip;
	}
	return iface_choose(&sel, ext, err, IFACE_ERR_MAX);
}

static void expect(const struct be_extif *e, const char *name, int mtu, const char *addr,
                   const char *pub)
{
	cr_expect_str_eq(e->name, name);
	cr_expect_eq(e->mtu, mtu, "%s: mtu %d", e->name, e->mtu);
	cr_expect_gt(e->ifindex, 0);
	cr_expect_str_eq(addr_str(&e->iface_addr), addr);
	cr_expect_str_eq(addr_str(&e->public_ip), pub);
}

Test(iface, default_route_interface)
{
	struct be_extif e;
	char err[IFACE_ERR_MAX];

	netns_setup();
	cr_assert_eq(choose(NULL, 0, NULL, 0, NULL, NULL, &e, err), 0, "%s", err);
	/* the global address wins over the link-local one added before it */
	expect(&e, "tw-b", 9000, "198.51.100.20", "198.51.100.20");
}

Test(iface, public_ip_not_local_keeps_default_interface)
{
	struct be_extif e;
	char err[IFACE_ERR_MAX];

	netns_setup();
	cr_assert_eq(choose(NULL, 0, NULL, 0, NULL, "192.0.2.200", &e, err), 0, "%s", err);
	expect(&e, "tw-b", 9000, "198.51.100.20", "192.0.2.200");
}

Test(iface, public_ip_held_locally_selects_its_interface)
{
	struct be_extif e;
	char err[IFACE_ERR_MAX];

	netns_setup();
	cr_assert_eq(choose(NULL, 0, NULL, 0, NULL, "192.0.2.10", &e, err), 0, "%s", err);
	expect(&e, "tw-a", 1400, "192.0.2.10", "192.0.2.10");
}

Test(iface, iface_by_name_and_by_address)
{
	struct be_extif e;
	char err[IFACE_ERR_MAX];
	char a[] = "tw-a", b[] = "198.51.100.21", bad[] = "nope", noip[] = "tw-ap";
	char *l1[] = { a }, *l2[] = { b }, *l3[] = { bad, noip, a };

	netns_setup();
	cr_assert_eq(choose(l1, 1, NULL, 0, NULL, NULL, &e, err), 0, "%s", err);
	expect(&e, "tw-a", 1400, "192.0.2.10", "192.0.2.10");
	cr_assert_eq(choose(l2, 1, NULL, 0, NULL, NULL, &e, err), 0, "%s", err);
	expect(&e, "tw-bp", 9000, "198.51.100.21", "198.51.100.21");
	/* first that matches wins; an interface without IPv4 does not match */
	cr_assert_eq(choose(l3, 3, NULL, 0, NULL, "192.0.2.200", &e, err), 0, "%s", err);
	expect(&e, "tw-a", 1400, "192.0.2.10", "192.0.2.200");
}

Test(iface, iface_wins_over_regex_and_can_reach)
{
	struct be_extif e;
	char err[IFACE_ERR_MAX];
	char a[] = "tw-a", re[] = "tw-b";
	char *l1[] = { a }, *r1[] = { re };

	netns_setup();
	cr_assert_eq(choose(l1, 1, r1, 1, "198.51.100.77", NULL, &e, err), 0, "%s", err);
	expect(&e, "tw-a", 1400, "192.0.2.10", "192.0.2.10");
}

Test(iface, regex_addresses_then_names)
{
	struct be_extif e;
	char err[IFACE_ERR_MAX];
	char byaddr[] = "^198\\.51\\.100\\.\\d0$", byname[] = "^tw-[ab]$",
	     both[] = "tw-b|192\\.0\\.2\\.10", none[] = "^zz", noip[] = "^tw-ap$",
	     icase[] = "(?i)^TW-B$";
	char *r1[] = { byaddr }, *r2[] = { byname }, *r3[] = { both },
	     *r4[] = { none, noip, byname }, *r5[] = { icase };

	netns_setup();
	cr_assert_eq(choose(NULL, 0, r1, 1, NULL, NULL, &e, err), 0, "%s", err);
	expect(&e, "tw-b", 9000, "198.51.100.20", "198.51.100.20");
	cr_assert_eq(choose(NULL, 0, r2, 1, NULL, NULL, &e, err), 0, "%s", err);
	expect(&e, "tw-a", 1400, "192.0.2.10", "192.0.2.10");
	/* flannel tries every address before any name */
	cr_assert_eq(choose(NULL, 0, r3, 1, NULL, NULL, &e, err), 0, "%s", err);
	expect(&e, "tw-a", 1400, "192.0.2.10", "192.0.2.10");
	cr_assert_eq(choose(NULL, 0, r4, 3, NULL, NULL, &e, err), 0, "%s", err);
	expect(&e, "tw-a", 1400, "192.0.2.10", "192.0.2.10");
	cr_assert_eq(choose(NULL, 0, r5, 1, NULL, NULL, &e, err), 0, "%s", err);
	expect(&e, "tw-b", 9000, "198.51.100.20", "198.51.100.20");
}

Test(iface, can_reach_uses_the_route_and_its_source)
{
	struct be_extif e;
	char err[IFACE_ERR_MAX];

	netns_setup();
	cr_assert_eq(choose(NULL, 0, NULL, 0, "192.0.2.99", NULL, &e, err), 0, "%s", err);
	expect(&e, "tw-a", 1400, "192.0.2.10", "192.0.2.10");
	/* via the default route */
	cr_assert_eq(choose(NULL, 0, NULL, 0, "198.18.0.1", NULL, &e, err), 0, "%s", err);
	expect(&e, "tw-b", 9000, "198.51.100.20", "198.51.100.20");
	sh("ip route add 198.18.0.0/15 dev tw-a src 192.0.2.10");
	cr_assert_eq(choose(NULL, 0, NULL, 0, "198.18.0.1", NULL, &e, err), 0, "%s", err);
	expect(&e, "tw-a", 1400, "192.0.2.10", "192.0.2.10");
}

Test(iface, nothing_matches_names_everything_tried)
{
	struct be_extif e;
	char err[IFACE_ERR_MAX];
	char bad[] = "eth9", badip[] = "192.0.2.77", noip[] = "tw-ap", re[] = "^zz";
	char *l[] = { bad, badip, noip }, *r[] = { re };

	netns_setup();
	sh("ip route del default");
	cr_assert_eq(choose(l, 3, r, 1, "198.18.0.1", NULL, &e, err), -ENODEV);
	cr_expect(strstr(err, "--iface eth9: no such interface") != NULL, "%s", err);
	cr_expect(strstr(err, "--iface 192.0.2.77: no interface has this address") != NULL, "%s",
	          err);
	cr_expect(strstr(err, "--iface tw-ap: no IPv4 address") != NULL, "%s", err);
	cr_expect(strstr(err, "--iface-regex ^zz: matches no interface") != NULL, "%s", err);
	cr_expect(strstr(err, "--iface-can-reach 198.18.0.1: Network is unreachable") != NULL, "%s",
	          err);
	cr_expect(strstr(err, "tw-a (192.0.2.10)") != NULL, "%s", err);
	cr_expect(strstr(err, "tw-ap (no IPv4)") != NULL, "%s", err);
	cr_expect(strstr(err, "lo (no IPv4)") != NULL, "%s", err);
}

Test(iface, no_default_route)
{
	struct be_extif e;
	char err[IFACE_ERR_MAX];

	netns_setup();
	sh("ip route del default");
	cr_assert_eq(choose(NULL, 0, NULL, 0, NULL, NULL, &e, err), -ENODEV);
	cr_expect(strstr(err, "no IPv4 default route") != NULL, "%s", err);
}

Test(iface, default_route_interface_without_ipv4)
{
	struct be_extif e;
	char err[IFACE_ERR_MAX];

	netns_setup();
	sh("ip route del default && ip link set tw-ap up && ip route add default dev tw-ap");
	cr_assert_lt(choose(NULL, 0, NULL, 0, NULL, NULL, &e, err), 0);
	cr_expect(strstr(err, "interface tw-ap has no IPv4 address") != NULL, "%s", err);
}

Test(iface, bad_regex_is_an_error)
{
	struct be_extif e;
	char err[IFACE_ERR_MAX];
	char bad[] = "tw-(a", perl[] = "\\pL";
	char *r1[] = { bad }, *r2[] = { perl };

	netns_setup();
	cr_assert_eq(choose(NULL, 0, r1, 1, NULL, NULL, &e, err), -EINVAL);
	cr_expect(strstr(err, "invalid --iface-regex \"tw-(a\"") != NULL, "%s", err);
	cr_assert_eq(choose(NULL, 0, r2, 1, NULL, NULL, &e, err), -EINVAL);
	cr_expect(strstr(err, "not supported") != NULL, "%s", err);
}

Test(iface, regex_translation)
{
	char buf[128];
	int icase;

	cr_assert_eq(iface_regex_translate("^eth\\d+$", buf, sizeof(buf), &icase), 0);
	cr_expect_str_eq(buf, "^eth[0-9]+$");
	cr_expect_eq(icase, 0);
	cr_assert_eq(iface_regex_translate("(?i)(?:en|eth)[\\d_]\\w\\S", buf, sizeof(buf), &icase),
	             0);
	cr_expect_str_eq(buf, "(en|eth)[0-9_][[:alnum:]_][^[:space:]]");
	cr_expect_eq(icase, 1);
	cr_assert_eq(iface_regex_translate("[[:alpha:]\\d]", buf, sizeof(buf), &icase), 0);
	cr_expect_str_eq(buf, "[[:alpha:]0-9]");
	cr_expect_eq(iface_regex_translate("[\\D]", buf, sizeof(buf), &icase), -EINVAL);
	cr_expect_eq(iface_regex_translate("(?P<x>a)", buf, sizeof(buf), &icase), -EINVAL);
	cr_expect_eq(iface_regex_translate("[abc", buf, sizeof(buf), &icase), -EINVAL);
	cr_expect_eq(iface_regex_translate("a\\d", buf, 4, &icase), -EINVAL);
}
