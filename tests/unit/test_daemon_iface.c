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
#include <time.h>
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
	cr_expect(strstr(err, "--iface-regex \"tw-(a\": missing closing )") != NULL, "%s", err);
	cr_assert_eq(choose(NULL, 0, r2, 1, NULL, NULL, &e, err), -EINVAL);
	cr_expect(strstr(err, "not supported") != NULL, "%s", err);
}

/* The fuzzer's finds: rejected before regcomp() sees them, at once. */
Test(iface, regex_too_complex_is_rejected_quickly)
{
	struct be_extif e;
	char err[IFACE_ERR_MAX];
	char good[] = "^tw-b$", nested[] = "(((((((((((()+)+)+)+)+)+)+)+)+)+)+)+";
	char *r[] = { good, nested };
	struct timespec t0, t1;

	netns_setup();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* every regex is checked before any is tried: the good one does not hide the bad */
	cr_assert_eq(choose(NULL, 0, r, 2, NULL, NULL, &e, err), -EINVAL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_expect(strstr(err, "--iface-regex \"(((((((((((()+)+)+)+)+)+)+)+)+)+)+)+\": too complex "
	                      "(would expand to 67100672 states; limit 10000)") != NULL,
	          "%s", err);
	cr_expect_lt((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 500);
}

struct rx_ok {
	const char *re2, *ere;
	int icase;
};

/* What twill accepts, and the ERE it hands to regcomp(). */
Test(iface, regex_accepted_table)
{
	static const struct rx_ok cases[] = {
		{ "^eth\\d+$", "^eth[0-9]+$", 0 },
		{ "(?i)^(?:eth|ens|enp)\\d+(s\\d+)?$", "^(eth|ens|enp)[0-9]+(s[0-9]+)?$", 1 },
		{ "[0-9]{1,3}(\\.[0-9]{1,3}){3}", "[0-9]{1,3}(\\.[0-9]{1,3}){3}", 0 },
		{ "^(25[0-5]|2[0-4]\\d|[01]?\\d\\d?)(\\.(25[0-5]|2[0-4]\\d|[01]?\\d\\d?)){3}$",
		  "^(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)(\\.(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)){3}$",
		  0 },
		{ "^198\\.51\\.100\\.\\d{1,3}$", "^198\\.51\\.100\\.[0-9]{1,3}$", 0 },
		{ "\\w+\\W\\s\\S\\D", "[[:alnum:]_]+[^[:alnum:]_][[:space:]][^[:space:]][^0-9]",
		  0 },
		/* non-greedy markers change nothing for a match test: dropped */
		{ "a*?b+?c??d{2}?", "a*b+c?d{2}", 0 },
		/* RE2 reads these '{' as literals; ERE needs them escaped ({,5} is {0,5} in glibc) */
		{ "a{,5}b{01}c{x}d{", "a\\{,5}b\\{01}c\\{x}d\\{", 0 },
		{ "x*{", "x*\\{", 0 },
		/* counts up to 1000, nested ones multiplying to 1000 */
		{ "a{1000}", "a{1000}", 0 },
		{ "((a{100}){10})", "((a{100}){10})", 0 },
		{ "((a{1000}){0}){2}", "((a{1000}){0}){2}", 0 },
		{ "(a{2,}){90}", "(a{2,}){90}", 0 },
		/* nested repetitions (not stacked) are fine while small */
		{ "((a*)*)+", "((a*)*)+", 0 },
		{ "((((()+)+)+)+)+", "((((()+)+)+)+)+", 0 },
		{ "(a?){99}", "(a?){99}", 0 },
		/* RE2 literals that are anchors in glibc's ERE; control escapes */
		{ "\\<\\>\\`\\'", "[<][>][`][']", 0 },
		{ "\\t\\n", "\t\n", 0 },
		{ "\\.\\*\\{\\(", "\\.\\*\\{\\(", 0 },
		{ "[]a]|[^]b]|[[:alpha:]\\d_-]", "[]a]|[^]b]|[[:alpha:]0-9_-]", 0 },
		{ "a||b|()", "a||b|()", 0 },
	};
	char buf[256], err[IFACE_ERR_MAX];
	int icase;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(iface_regex_translate(cases[i].re2, buf, sizeof(buf), &icase), 0, "%s",
		             cases[i].re2);
		cr_expect_str_eq(buf, cases[i].ere, "%s", cases[i].re2);
		cr_expect_eq(icase, cases[i].icase, "%s", cases[i].re2);
		cr_expect_eq(iface_regex_check(cases[i].re2, err, sizeof(err)), 0, "%s: %s",
		             cases[i].re2, err);
	}
}

struct rx_bad {
	const char *re2, *msg;
};

/* What twill rejects, with its message (after "--iface-regex \"RE\": "). */
Test(iface, regex_rejected_table)
{
	static const struct rx_bad cases[] = {
		/* RE2's limits (Go's regexp rejects these too) */
		{ "a{1001}", "invalid repeat count \"{1001}\" (counts go up to 1000)" },
		{ "a{2,1001}", "invalid repeat count \"{2,1001}\" (counts go up to 1000)" },
		{ "a{99999999999}",
		  "invalid repeat count \"{99999999999}\" (counts go up to 1000)" },
		{ "a{5,2}", "invalid repeat count \"{5,2}\" (minimum above maximum)" },
		{ "(((a{255}){255}){255})",
		  "invalid repeat count \"{255}\" (nested counts multiply to more than 1000)" },
		{ "((a{100}){11})",
		  "invalid repeat count \"{11}\" (nested counts multiply to more than 1000)" },
		{ "a**", "invalid nested repetition operator \"**\"" },
		{ "a+*", "invalid nested repetition operator \"+*\"" },
		{ "a??*", "invalid nested repetition operator \"??*\"" },
		{ "a{2}{3}", "invalid nested repetition operator \"{2}{3}\"" },
		{ "a*{2}", "invalid nested repetition operator \"*{2}\"" },
		{ "^192\\.0\\.2\\.\\d+++++$", "invalid nested repetition operator \"++\"" },
		{ "*a", "missing argument to repetition operator \"*\"" },
		{ "(+a)", "missing argument to repetition operator \"+\"" },
		{ "a|?", "missing argument to repetition operator \"?\"" },
		{ "(?i){2}", "missing argument to repetition operator \"{2}\"" },
		{ "tw-(a", "missing closing )" },
		{ "a)", "unexpected )" },
		{ "[abc", "missing closing ]" },
		{ "a\\", "trailing backslash at end of expression" },
		{ "(a)\\1",
		  "invalid escape sequence \"\\1\" (no backreferences or octal escapes)" },
		{ "\\m", "invalid escape sequence \"\\m\"" },
		/* what ERE cannot express */
		{ "\\pL", "\\p is not supported" },
		{ "\\bx", "\\b is not supported" },
		{ "[\\D]", "\\D inside [...] is not supported" },
		{ "(?P<x>a)", "\"(?P\" is not supported" },
		{ "a(?i)b", "\"(?i\" is not supported" },
		/* twill's bound on what glibc builds */
		{ "(((((((((((()+)+)+)+)+)+)+)+)+)+)+)+",
		  "too complex (would expand to 67100672 states; limit 10000)" },
		{ "(((((()+)+)+)+)+)+", "too complex (would expand to 16256 states; limit 10000)" },
		{ "(a?){1000}", "too complex (would expand to 1002001 states; limit 10000)" },
		{ "((a|)+){500}", "too complex" },
		{ "(()*){1000}", "too complex" },
		{ "((((((((((((((((a)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+",
		  "too complex (would expand to 1000000000+ states; limit 10000)" },
		{ "((((((a{10}){10}){10})+)+)+)+",
		  "too complex (would expand to 18016 states; limit 10000)" },
		/* and what regcomp() itself refuses */
		{ "^*", "Invalid preceding regular expression" },
	};
	char buf[256], err[IFACE_ERR_MAX], want[IFACE_ERR_MAX];
	int icase;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *re2 = cases[i].re2;

		if (strcmp(re2, "^*") != 0)
			cr_expect_eq(iface_regex_translate(re2, buf, sizeof(buf), &icase), -EINVAL,
			             "%s", re2);
		cr_expect_eq(iface_regex_check(re2, err, sizeof(err)), -EINVAL, "%s", re2);
		snprintf(want, sizeof(want), "--iface-regex \"%s\": %s", re2, cases[i].msg);
		cr_expect(strncmp(err, want, strlen(want)) == 0, "%s\n got: %s\nwant: %s", re2, err,
		          want);
	}
}

Test(iface, regex_length_is_bounded)
{
	char re[IFACE_REGEX_MAX_LEN + 2], buf[IFACE_REGEX_MAX_LEN + 2], err[IFACE_ERR_MAX];
	int icase;

	memset(re, 'a', IFACE_REGEX_MAX_LEN);
	re[IFACE_REGEX_MAX_LEN] = '\0';
	cr_expect_eq(iface_regex_translate(re, buf, sizeof(buf), &icase), 0);
	cr_expect_eq(iface_regex_check(re, err, sizeof(err)), 0, "%s", err);
	strcat(re, "a");
	cr_expect_eq(iface_regex_translate(re, buf, sizeof(buf), &icase), -EINVAL);
	cr_expect_eq(iface_regex_check(re, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "...\": too long (1025 bytes; limit 1024)") != NULL, "%s", err);
	/* the longest translation (\W: 2 bytes, 13 in ERE) still compiles */
	for (size_t i = 0; i < IFACE_REGEX_MAX_LEN; i += 2)
		memcpy(re + i, "\\W", 2);
	re[IFACE_REGEX_MAX_LEN] = '\0';
	cr_expect_eq(iface_regex_check(re, err, sizeof(err)), 0, "%s", err);
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
