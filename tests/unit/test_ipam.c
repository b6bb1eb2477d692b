/* Unit tests of ipam: table-driven prefix arithmetic and the candidate choice. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ipam/ipam.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static struct ipam_prefix P(const char *s) {
	struct ipam_prefix p;

	cr_assert_eq(ipam_prefix_parse(s, &p), 0, "parse %s", s);
	return p;
}

static struct ipam_addr
A(const char *s) {
	struct ipam_addr a;

	cr_assert_eq(ipam_addr_parse(s, &a), 0, "parse %s", s);
	return a;
}

/* --- parse / format ---------------------------------------------------------- */

struct fmt_case {
	const char *in, *canon;
};

Test(ipam, addr_parse_valid_and_canonical)
{
	static const struct fmt_case cases[] = {
		{ "0.0.0.0", "0.0.0.0" },
		{ "10.1.2.3", "10.1.2.3" },
		{ "255.255.255.255", "255.255.255.255" },
		{ "::", "::" },
		{ "::1", "::1" },
		{ "0:0:0:0:0:0:0:0", "::" },
		{ "2001:DB8:0:0:0:0:0:1", "2001:db8::1" },
		{ "2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1" },
		{ "fd00::", "fd00::" },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
		{ "::ffff:192.0.2.1", "::ffff:192.0.2.1" },
	};
	char buf[IPAM_ADDR_STRLEN];

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct ipam_addr a, b;

		cr_assert_eq(ipam_addr_parse(cases[i].in, &a), 0, "%s", cases[i].in);
		cr_assert_eq(a.family, strchr(cases[i].in, ':') ? AF_INET6 : AF_INET);
		cr_assert_str_eq(ipam_addr_format(&a, buf), cases[i].canon);
		cr_assert_eq(ipam_addr_parse(buf, &b), 0);
		cr_assert(ipam_addr_equal(&a, &b));
	}
}

Test(ipam, addr_bytes_layout)
{
	struct ipam_addr a = A("10.1.2.3");
	static const uint8_t v4[16] = { 10, 1, 2, 3 };

	cr_assert_eq(memcmp(a.bytes, v4, 16), 0, "IPv4 in the first 4 bytes, rest zero");
	a = A("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
	cr_assert_eq(a.bytes[15], 0xfe);
	cr_assert_eq(a.bytes[0], 0xff);
}

Test(ipam, addr_parse_rejects_garbage)
{
	static const char *const bad[] = {
		"",
		" ",
		"1.2.3",
		"1.2.3.4.5",
		"256.1.1.1",
		"1.2.3.4 ",
		" 1.2.3.4",
		"1.2.3.4x",
		"01.2.3.4",
		"1.2.3.4/24",
		"1..2.3",
		"-1.2.3.4",
		"0x1.2.3.4",
		":::",
		"1:2:3:4:5:6:7:8:9",
		"fe80::1%eth0",
		"g::1",
		"::1 ",
		"12345::",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	};

	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		struct ipam_addr a;

		cr_assert_eq(ipam_addr_parse(bad[i], &a), -EINVAL, "accepted '%s'", bad[i]);
	}
	cr_assert_eq(ipam_addr_parse(NULL, &(struct ipam_addr){ 0 }), -EINVAL);
}

Test(ipam, prefix_parse_valid_and_canonical)
{
	static const struct fmt_case cases[] = {
		{ "0.0.0.0/0", "0.0.0.0/0" },
		{ "10.0.0.0/8", "10.0.0.0/8" },
		{ "10.1.2.3/8", "10.1.2.3/8" }, /* host bits kept as written */
		{ "198.18.0.0/15", "198.18.0.0/15" },
		{ "255.255.255.255/32", "255.255.255.255/32" },
		{ "::/0", "::/0" },
		{ "FD00:0::/64", "fd00::/64" },
		{ "2001:db8::1/128", "2001:db8::1/128" },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128" },
		{ "::ffff:1.2.3.4/100", "::ffff:1.2.3.4/100" },
	};
	char buf[IPAM_PREFIX_STRLEN];

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct ipam_prefix p, q;

		cr_assert_eq(ipam_prefix_parse(cases[i].in, &p), 0, "%s", cases[i].in);
		cr_assert_str_eq(ipam_prefix_format(&p, buf), cases[i].canon);
		cr_assert_eq(ipam_prefix_parse(buf, &q), 0);
		cr_assert(ipam_prefix_equal(&p, &q));
	}
	cr_assert_eq(P("10.1.2.3/8").len, 8);
	cr_assert_eq(P("::/0").addr.family, AF_INET6);
}

Test(ipam, prefix_parse_rejects_garbage)
{
	static const char *const bad[] = {
		"",
		"/",
		"/24",
		"10.0.0.0",
		"10.0.0.0/",
		"1.2.3.4/33",
		"1.2.3.4/-1",
		"1.2.3.4/+8",
		"1.2.3.4/08",
		"1.2.3.4/8 ",
		" 1.2.3.4/8",
		"1.2.3.4/8x",
		"1.2.3.4/8/8",
		"1.2.3.4//8",
		"1.2.3.4/0x8",
		"1.2.3.4/1000",
		"1.2.3.4/4294967304",
		"01.2.3.4/8",
		"::/129",
		"::/256",
		"fd00::/64%eth0",
		"fd00::%eth0/64",
		"hello/8",
		"1.2.3.4\n/8",
	};

	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		struct ipam_prefix p;

		cr_assert_eq(ipam_prefix_parse(bad[i], &p), -EINVAL, "accepted '%s'", bad[i]);
	}
	cr_assert_eq(ipam_prefix_parse(NULL, &(struct ipam_prefix){ 0 }), -EINVAL);
}

Test(ipam, format_invalid_family_does_not_crash)
{
	struct ipam_prefix p = { .addr = { .family = 0 }, .len = 200 };
	char buf[IPAM_PREFIX_STRLEN];

	cr_assert_str_eq(ipam_prefix_format(&p, buf), "<invalid>/200");
}

/* --- comparison ------------------------------------------------------------------ */

Test(ipam, compare_orders_family_address_length)
{
	static const char *const sorted[] = {
		"0.0.0.0/0",          "0.0.0.0/8", "10.0.0.0/8", "10.0.0.0/16", "10.0.0.1/32",
		"255.255.255.255/32", "::/0",      "::1/128",    "fd00::/8",    "ffff::/16",
	};

	for (size_t i = 0; i < N_ELEMS(sorted); i++) {
		for (size_t j = 0; j < N_ELEMS(sorted); j++) {
			struct ipam_prefix a = P(sorted[i]), b = P(sorted[j]);
			int c = ipam_prefix_cmp(&a, &b);

			cr_assert_eq(c < 0, i < j, "%s vs %s", sorted[i], sorted[j]);
			cr_assert_eq(c == 0, i == j, "%s vs %s", sorted[i], sorted[j]);
			cr_assert_eq(ipam_prefix_equal(&a, &b), i == j);
		}
	}
	struct ipam_addr a = A("0.0.0.1"), b = A("::1");
	cr_assert_lt(ipam_addr_cmp(&a, &b), 0);
	cr_assert_not(ipam_addr_equal(&a, &b));
}

/* --- network / first host / last -------------------------------------------------- */

struct net_case {
	const char *in, *network, *first, *last;
	bool is_network;
};

Test(ipam, network_first_host_last)
{
	static const struct net_case cases[] = {
		{ "10.1.2.3/8", "10.0.0.0/8", "10.0.0.1", "10.255.255.255", false },
		{ "10.1.2.0/24", "10.1.2.0/24", "10.1.2.1", "10.1.2.255", true },
		{ "10.1.2.3/30", "10.1.2.0/30", "10.1.2.1", "10.1.2.3", false },
		{ "10.1.2.3/31", "10.1.2.2/31", NULL, "10.1.2.3", false },
		{ "10.1.2.3/32", "10.1.2.3/32", NULL, "10.1.2.3", true },
		{ "0.0.0.0/0", "0.0.0.0/0", "0.0.0.1", "255.255.255.255", true },
		{ "255.255.255.255/0", "0.0.0.0/0", "0.0.0.1", "255.255.255.255", false },
		{ "255.255.255.255/32", "255.255.255.255/32", NULL, "255.255.255.255", true },
		{ "255.255.255.255/24", "255.255.255.0/24", "255.255.255.1", "255.255.255.255",
		  false },
		{ "::/0", "::/0", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true },
		{ "fd00::1:2/64", "fd00::/64", "fd00::1", "fd00::ffff:ffff:ffff:ffff", false },
		{ "fd00::7/126", "fd00::4/126", "fd00::5", "fd00::7", false },
		{ "fd00::7/127", "fd00::6/127", NULL, "fd00::7", false },
		{ "fd00::7/128", "fd00::7/128", NULL, "fd00::7", true },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", NULL,
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/1", "8000::/1", "8000::1",
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false },
	};
	char buf[IPAM_PREFIX_STRLEN];

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		const struct net_case *c = &cases[i];
		struct ipam_prefix p = P(c->in), net = ipam_prefix_network(&p);
		struct ipam_addr first, last = ipam_prefix_last(&p);

		cr_assert_str_eq(ipam_prefix_format(&net, buf), c->network, "%s", c->in);
		cr_assert(ipam_prefix_is_network(&net));
		cr_assert_eq(ipam_prefix_is_network(&p), c->is_network, "%s", c->in);
		cr_assert_str_eq(ipam_addr_format(&last, buf), c->last, "%s", c->in);
		if (c->first) {
			cr_assert_eq(ipam_prefix_first_host(&p, &first), 0, "%s", c->in);
			cr_assert_str_eq(ipam_addr_format(&first, buf), c->first, "%s", c->in);
		} else {
			cr_assert_eq(ipam_prefix_first_host(&p, &first), -EINVAL, "%s", c->in);
		}
	}
}

/* --- contains / overlaps ------------------------------------------------------------ */

struct rel_case {
	const char *a, *b;
	bool a_contains_b, b_contains_a, overlap;
};

Test(ipam, contains_and_overlaps)
{
	static const struct rel_case cases[] = {
		/* identical */
		{ "10.0.0.0/24", "10.0.0.0/24", true, true, true },
		{ "10.0.0.0/24", "10.0.0.7/24", true, true, true },
		/* nested both ways */
		{ "10.0.0.0/8", "10.1.2.0/24", true, false, true },
		{ "10.1.2.64/26", "10.1.2.0/24", false, true, true },
		{ "10.1.2.255/32", "10.1.2.0/24", false, true, true },
		{ "0.0.0.0/0", "255.255.255.255/32", true, false, true },
		{ "0.0.0.0/0", "0.0.0.0/0", true, true, true },
		/* adjacent, not overlapping */
		{ "10.1.2.0/24", "10.1.3.0/24", false, false, false },
		{ "10.1.2.0/25", "10.1.2.128/25", false, false, false },
		{ "10.0.0.0/16", "10.1.0.0/24", false, false, false },
		{ "10.0.255.0/24", "10.1.0.0/16", false, false, false },
		{ "255.255.255.254/32", "255.255.255.255/32", false, false, false },
		/* disjoint */
		{ "192.0.2.0/24", "198.51.100.0/24", false, false, false },
		/* IPv6 */
		{ "::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", true, false, true },
		{ "fd00::/64", "fd00:0:0:1::/64", false, false, false },
		{ "fd00::/64", "fd00::1:0:0:0/80", true, false, true },
		{ "fd00::/48", "fd00:0:0:ffff::/64", true, false, true },
		{ "fd00:0:0:ffff::/64", "fd00::/48", false, true, true },
		{ "fd00::/48", "fd00:0:1::/64", false, false, false },
		{ "::/1", "8000::/1", false, false, false },
		/* IPv4 vs IPv6 never overlap, even with equal bytes */
		{ "0.0.0.0/0", "::/0", false, false, false },
		{ "10.0.0.0/8", "a00::/8", false, false, false },
		{ "0.0.0.0/32", "::/128", false, false, false },
	};

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		const struct rel_case *c = &cases[i];
		struct ipam_prefix a = P(c->a), b = P(c->b);

		cr_assert_eq(ipam_prefix_contains(&a, &b), c->a_contains_b, "%s > %s", c->a, c->b);
		cr_assert_eq(ipam_prefix_contains(&b, &a), c->b_contains_a, "%s > %s", c->b, c->a);
		cr_assert_eq(ipam_prefix_overlaps(&a, &b), c->overlap, "%s ~ %s", c->a, c->b);
		cr_assert_eq(ipam_prefix_overlaps(&b, &a), c->overlap, "%s ~ %s", c->b, c->a);
	}
}

Test(ipam, contains_addr)
{
	static const struct {
		const char *p, *a;
		bool in;
	} cases[] = {
		{ "10.0.0.0/8", "10.255.255.255", true },
		{ "10.0.0.0/8", "11.0.0.0", false },
		{ "10.0.0.0/8", "9.255.255.255", false },
		{ "0.0.0.0/0", "255.255.255.255", true },
		{ "255.255.255.255/32", "255.255.255.255", true },
		{ "0.0.0.0/0", "::", false },
		{ "::/0", "0.0.0.0", false },
		{ "fd00::/64", "fd00::ffff:ffff:ffff:ffff", true },
		{ "fd00::/64", "fd00:0:0:1::", false },
	};

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct ipam_prefix p = P(cases[i].p);
		struct ipam_addr a = A(cases[i].a);

		cr_assert_eq(ipam_prefix_contains_addr(&p, &a), cases[i].in, "%s in %s", cases[i].a,
		             cases[i].p);
	}
}

/* --- next / count ------------------------------------------------------------------------ */

Test(ipam, next)
{
	static const struct {
		const char *in, *next; /* NULL: -ERANGE */
	} cases[] = {
		{ "10.0.0.0/24", "10.0.1.0/24" },
		{ "10.0.0.77/24", "10.0.1.0/24" },
		{ "10.0.255.0/24", "10.1.0.0/24" },
		{ "10.1.2.3/32", "10.1.2.4/32" },
		{ "127.255.255.255/1", "128.0.0.0/1" },
		{ "255.255.255.0/24", NULL },
		{ "255.255.255.255/32", NULL },
		{ "128.0.0.0/1", NULL },
		{ "0.0.0.0/0", NULL },
		{ "::/0", NULL },
		{ "::/1", "8000::/1" },
		{ "fd00::/64", "fd00:0:0:1::/64" },
		{ "fd00:0:0:ffff:ffff:ffff:ffff:ffff/64", "fd00:0:1::/64" },
		{ "::ffff:ffff:ffff:ffff/64", "0:0:0:1::/64" },
		{ "ffff:ffff:ffff:ffff::/64", NULL },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128",
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128" },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", NULL },
	};
	char buf[IPAM_PREFIX_STRLEN];

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct ipam_prefix p = P(cases[i].in), n = { 0 };
		int r = ipam_prefix_next(&p, &n);

		if (cases[i].next) {
			cr_assert_eq(r, 0, "%s", cases[i].in);
			cr_assert_str_eq(ipam_prefix_format(&n, buf), cases[i].next);
		} else {
			cr_assert_eq(r, -ERANGE, "%s", cases[i].in);
		}
	}
	struct ipam_prefix bad = { .addr = { .family = AF_INET }, .len = 33 }, out;
	cr_assert_eq(ipam_prefix_next(&bad, &out), -EINVAL);
}

Test(ipam, count)
{
	static const struct {
		const char *min, *max;
		uint8_t len;
		uint64_t n;
	} cases[] = {
		{ "10.0.1.0/24", "10.0.255.0/24", 24, 255 },
		{ "10.0.0.0/24", "10.0.0.0/24", 24, 1 },
		{ "10.0.1.0/24", "10.0.0.0/24", 24, 0 }, /* max < min */
		{ "10.0.0.0/24", "10.0.1.0/24", 16, 0 }, /* lengths disagree */
		{ "10.0.0.0/24", "fd00::/24", 24, 0 },   /* families disagree */
		{ "0.0.0.0/32", "255.255.255.255/32", 32, 1ull << 32 },
		{ "0.0.0.0/0", "0.0.0.0/0", 0, 1 },
		{ "255.255.255.0/24", "255.255.255.0/24", 24, 1 },
		{ "0.0.0.0/24", "255.255.255.0/24", 24, 1u << 24 },
		{ "::/0", "::/0", 0, 1 },
		{ "fd00::/64", "fd00:0:0:ffff::/64", 64, 65536 },
		/* 2^64 /64s in ::/0: saturates */
		{ "::/64", "ffff:ffff:ffff:ffff::/64", 64, UINT64_MAX },
		/* exactly 2^64 - 1 fits: from the second /64 to the last */
		{ "0:0:0:1::/64", "ffff:ffff:ffff:ffff::/64", 64, UINT64_MAX },
		{ "0:0:0:2::/64", "ffff:ffff:ffff:ffff::/64", 64, UINT64_MAX - 1 },
		{ "::/128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 128, UINT64_MAX },
		{ "::/65", "ffff:ffff:ffff:ffff:8000::/65", 65, UINT64_MAX },
		{ "::/63", "ffff:ffff:ffff:fffe::/63", 63, 1ull << 63 },
	};

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct ipam_prefix a = P(cases[i].min), b = P(cases[i].max);

		cr_assert_eq(ipam_prefix_count(&a, &b, cases[i].len), cases[i].n,
		             "%s..%s /%u: %llu", cases[i].min, cases[i].max, cases[i].len,
		             (unsigned long long)ipam_prefix_count(&a, &b, cases[i].len));
	}
}

/* --- taken set ------------------------------------------------------------------------------ */

static struct ipam_taken *taken_of(const char *const *list, size_t n)
{
	struct ipam_taken *t = ipam_taken_new();

	cr_assert_not_null(t);
	for (size_t i = 0; i < n; i++) {
		struct ipam_prefix p = P(list[i]);

		cr_assert_eq(ipam_taken_add(t, &p), 0);
	}
	return t;
}

Test(ipam, taken_overlaps_matches_linear_scan)
{
	static const char *const taken[] = {
		"10.0.0.0/16",
		"10.0.5.0/24", /* nested in the /16 */
		"10.1.2.64/26",
		"10.1.2.128/26", /* adjacent */
		"10.2.0.0/24",
		"10.2.0.0/24", /* duplicate */
		"10.3.0.7/32",
		"255.255.255.255/32",
		"fd00::/48",
		"fd00:0:0:ffff::/64",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
	};
	static const char *const probes[] = {
		"10.0.0.0/8",
		"10.0.0.0/24",
		"10.0.255.0/24",
		"10.1.0.0/16",
		"10.1.2.0/24",
		"10.1.2.0/26",
		"10.1.2.192/26",
		"10.1.2.100/32",
		"10.1.3.0/24",
		"10.2.0.0/23",
		"10.2.1.0/24",
		"10.3.0.0/24",
		"10.3.0.8/29",
		"10.3.0.0/30",
		"10.3.0.4/30",
		"0.0.0.0/0",
		"255.255.255.0/24",
		"255.255.255.254/32",
		"9.0.0.0/8",
		"11.0.0.0/8",
		"::/0",
		"fd00::/16",
		"fd00:0:1::/48",
		"fd00:0:0:1::/64",
		"ffff:ffff:ffff:ffff::/64",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128",
		"::/128",
	};
	struct ipam_taken *t = taken_of(taken, N_ELEMS(taken));

	cr_assert_eq(ipam_taken_count(t), N_ELEMS(taken));
	for (size_t i = 0; i < N_ELEMS(probes); i++) {
		struct ipam_prefix p = P(probes[i]);
		bool want = false;

		for (size_t j = 0; j < N_ELEMS(taken); j++) {
			struct ipam_prefix q = P(taken[j]);

			want |= ipam_prefix_overlaps(&p, &q);
		}
		cr_assert_eq(ipam_taken_overlaps(t, &p), want, "%s", probes[i]);
	}
	/* adds after a query are seen by the next query */
	struct ipam_prefix late = P("11.0.0.0/8"), probe = P("11.2.3.0/24");
	cr_assert_not(ipam_taken_overlaps(t, &probe));
	cr_assert_eq(ipam_taken_add(t, &late), 0);
	cr_assert(ipam_taken_overlaps(t, &probe));
	ipam_taken_build(t);
	cr_assert(ipam_taken_overlaps(t, &probe));
	ipam_taken_free(t);
	ipam_taken_free(NULL);
	cr_assert_not(ipam_taken_overlaps(NULL, &probe));
	cr_assert_eq(ipam_taken_count(NULL), 0);
}

Test(ipam, taken_add_rejects_bad_prefix)
{
	struct ipam_taken *t = ipam_taken_new();
	struct ipam_prefix bad4 = { .addr = { .family = AF_INET }, .len = 33 };
	struct ipam_prefix badf = { .addr = { .family = 77 }, .len = 8 };

	cr_assert_eq(ipam_taken_add(t, &bad4), -EINVAL);
	cr_assert_eq(ipam_taken_add(t, &badf), -EINVAL);
	cr_assert_eq(ipam_taken_count(t), 0);
	ipam_taken_free(t);
}

/* Deterministic xorshift for the randomized oracle tests. */
static uint64_t xs_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

Test(ipam, taken_overlaps_random_ipv6_against_oracle)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	for (int round = 0; round < 50; round++) {
		struct ipam_taken *t = ipam_taken_new();
		struct ipam_prefix list[40];

		/* prefixes inside fd00::/56 with lengths 56..64 so they collide often */
		for (size_t i = 0; i < N_ELEMS(list); i++) {
			struct ipam_prefix p = P("fd00::/56");

			p.len = (uint8_t)(56 + xs_next(&seed) % 9);
			p.addr.bytes[7] = (uint8_t)xs_next(&seed);
			list[i] = ipam_prefix_network(&p);
			cr_assert_eq(ipam_taken_add(t, &list[i]), 0);
		}
		for (int k = 0; k < 200; k++) {
			struct ipam_prefix p = P("fd00::/56");
			bool want = false;

			p.len = (uint8_t)(54 + xs_next(&seed) % 14);
			p.addr.bytes[6] = (uint8_t)(xs_next(&seed) % 2);
			p.addr.bytes[7] = (uint8_t)xs_next(&seed);
			p = ipam_prefix_network(&p);
			for (size_t i = 0; i < N_ELEMS(list); i++)
				want |= ipam_prefix_overlaps(&p, &list[i]);
			cr_assert_eq(ipam_taken_overlaps(t, &p), want);
		}
		ipam_taken_free(t);
	}
}

/* --- candidates ------------------------------------------------------------------------------- */

struct fake_rand {
	uint64_t value; /* returned modulo bound unless @raw */
	uint64_t last_bound;
	int calls;
	bool raw;
};

static uint64_t fake_rand(void *ctx, uint64_t bound)
{
	struct fake_rand *f = ctx;

	f->calls++;
	f->last_bound = bound;
	return f->raw ? f->value : f->value % bound;
}

Test(ipam, candidates_empty_taken_are_first_subnets)
{
	struct ipam_prefix min = P("10.0.1.0/24"), max = P("10.0.255.0/24"), got;
	struct ipam_prefix c[IPAM_CANDIDATES_MAX];
	struct ipam_taken *t = ipam_taken_new();
	struct fake_rand r = { 0 };
	size_t n = ipam_candidates(&min, &max, 24, t, c, IPAM_CANDIDATES_MAX);

	cr_assert_eq(n, 100);
	for (size_t i = 0; i < n; i++) {
		struct ipam_prefix want = { .addr = min.addr, .len = 24 };

		want.addr.bytes[2] = (uint8_t)(1 + i);
		cr_assert(ipam_prefix_equal(&c[i], &want), "candidate %zu", i);
	}
	/* NULL taken set is empty too */
	cr_assert_eq(ipam_candidates(&min, &max, 24, NULL, c, IPAM_CANDIDATES_MAX), 100);

	for (uint64_t v = 0; v < 100; v += 33) {
		r.value = v;
		cr_assert_eq(ipam_pick(&min, &max, 24, t, fake_rand, &r, &got), 0);
		cr_assert_eq(r.last_bound, 100);
		cr_assert(ipam_prefix_equal(&got, &c[v]));
	}
	ipam_taken_free(t);
}

Test(ipam, candidates_fewer_than_100_and_bound)
{
	struct ipam_prefix min = P("10.0.0.16/28"), max = P("10.0.0.240/28"), got;
	struct ipam_prefix c[IPAM_CANDIDATES_MAX];
	struct fake_rand r = { .value = 1000 };

	cr_assert_eq(ipam_candidates(&min, &max, 28, NULL, c, IPAM_CANDIDATES_MAX), 15);
	cr_assert_eq(ipam_pick(&min, &max, 28, NULL, fake_rand, &r, &got), 0);
	cr_assert_eq(r.last_bound, 15);
	cr_assert(ipam_prefix_equal(&got, &c[1000 % 15]));
	/* max_candidates limits */
	cr_assert_eq(ipam_candidates(&min, &max, 28, NULL, c, 3), 3);
	cr_assert_eq(ipam_candidates(&min, &max, 28, NULL, NULL, 0), 0);
	/* a random source out of range is an error, not an overflow */
	r.raw = true;
	r.value = 15;
	cr_assert_eq(ipam_pick(&min, &max, 28, NULL, fake_rand, &r, &got), -EINVAL);
}

Test(ipam, candidates_bad_arguments)
{
	struct ipam_prefix min = P("10.0.1.0/24"), max = P("10.0.255.0/24"), v6 = P("fd00::/24");
	struct ipam_prefix got, c[4];
	struct fake_rand r = { 0 };

	cr_assert_eq(ipam_pick(&max, &min, 24, NULL, fake_rand, &r, &got), -EINVAL);
	cr_assert_eq(ipam_pick(&min, &max, 25, NULL, fake_rand, &r, &got), -EINVAL);
	cr_assert_eq(ipam_pick(&min, &v6, 24, NULL, fake_rand, &r, &got), -EINVAL);
	cr_assert_eq(ipam_pick(&min, &max, 24, NULL, NULL, &r, &got), -EINVAL);
	cr_assert_eq(ipam_candidates(&max, &min, 24, NULL, c, 4), 0);
	cr_assert_eq(r.calls, 0);
}

Test(ipam, candidates_skip_taken_of_other_lengths)
{
	static const char *const taken[] = {
		"10.0.1.0/24",                  /* exact */
		"10.0.2.64/26",                 /* inside the 10.0.2.0/24 candidate */
		"10.0.3.255/32", "10.0.4.0/22", /* covers .4 .. .7 */
		"10.1.0.0/16",                  /* covers all its /24s, outside the walk start */
		"fd00::/8",                     /* other family: irrelevant */
	};
	struct ipam_prefix min = P("10.0.1.0/24"), max = P("10.1.255.0/24");
	struct ipam_prefix c[IPAM_CANDIDATES_MAX];
	struct ipam_taken *t = taken_of(taken, N_ELEMS(taken));
	size_t n = ipam_candidates(&min, &max, 24, t, c, IPAM_CANDIDATES_MAX);
	char buf[IPAM_PREFIX_STRLEN];

	/* 10.0.8.0 .. 10.0.255.0 free: 248; the 10.1.x.0 are all taken. */
	cr_assert_eq(n, 100);
	cr_assert_str_eq(ipam_prefix_format(&c[0], buf), "10.0.8.0/24");
	cr_assert_str_eq(ipam_prefix_format(&c[99], buf), "10.0.107.0/24");

	/* near the end: the /16 swallows everything after 10.0.255.0 */
	min = P("10.0.250.0/24");
	n = ipam_candidates(&min, &max, 24, t, c, IPAM_CANDIDATES_MAX);
	cr_assert_eq(n, 6);
	cr_assert_str_eq(ipam_prefix_format(&c[5], buf), "10.0.255.0/24");
	ipam_taken_free(t);
}

Test(ipam, taken_26_makes_24_unavailable)
{
	static const char *const taken[] = { "10.0.2.64/26" };
	struct ipam_prefix min = P("10.0.2.0/24"), max = P("10.0.3.0/24"), got;
	struct ipam_taken *t = taken_of(taken, 1);
	struct fake_rand r = { 0 };
	char buf[IPAM_PREFIX_STRLEN];

	cr_assert(ipam_taken_overlaps(t, &min));
	cr_assert_eq(ipam_pick(&min, &max, 24, t, fake_rand, &r, &got), 0);
	cr_assert_eq(r.last_bound, 1);
	cr_assert_str_eq(ipam_prefix_format(&got, buf), "10.0.3.0/24");
	ipam_taken_free(t);
}

Test(ipam, taken_16_skips_all_its_24s)
{
	static const char *const taken[] = { "10.5.0.0/16" };
	struct ipam_prefix min = P("10.4.255.0/24"), max = P("10.6.1.0/24");
	struct ipam_prefix c[IPAM_CANDIDATES_MAX];
	struct ipam_taken *t = taken_of(taken, 1);
	char buf[IPAM_PREFIX_STRLEN];

	cr_assert_eq(ipam_candidates(&min, &max, 24, t, c, IPAM_CANDIDATES_MAX), 3);
	cr_assert_str_eq(ipam_prefix_format(&c[0], buf), "10.4.255.0/24");
	cr_assert_str_eq(ipam_prefix_format(&c[1], buf), "10.6.0.0/24");
	cr_assert_str_eq(ipam_prefix_format(&c[2], buf), "10.6.1.0/24");
	ipam_taken_free(t);
}

Test(ipam, full_range_is_enospc)
{
	struct ipam_prefix min = P("198.18.1.0/24"), max = P("198.18.255.0/24"), got, p;
	struct ipam_taken *t = ipam_taken_new();
	struct fake_rand r = { 0 };

	p = min;
	for (int i = 0; i < 255; i++) {
		cr_assert_eq(ipam_taken_add(t, &p), 0);
		if (i < 254)
			cr_assert_eq(ipam_prefix_next(&p, &p), 0);
	}
	cr_assert_eq(ipam_pick(&min, &max, 24, t, fake_rand, &r, &got), -ENOSPC);
	cr_assert_eq(r.calls, 0);
	ipam_taken_free(t);

	/* one supernet covering it all */
	static const char *const big[] = { "198.18.0.0/15" };
	t = taken_of(big, 1);
	cr_assert_eq(ipam_pick(&min, &max, 24, t, fake_rand, &r, &got), -ENOSPC);
	ipam_taken_free(t);
}

Test(ipam, subnet_max_at_the_end_of_the_space)
{
	struct ipam_prefix min4 = P("255.255.250.0/24"), max4 = P("255.255.255.0/24");
	struct ipam_prefix min32 = P("255.255.255.250/32"), max32 = P("255.255.255.255/32");
	struct ipam_prefix min6 = P("ffff:ffff:ffff:fffa::/64"),
			   max6 = P("ffff:ffff:ffff:ffff::/64");
	struct ipam_prefix min128 = P("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/128");
	struct ipam_prefix max128 = P("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
	struct ipam_prefix all4 = P("0.0.0.0/0"), all6 = P("::/0");
	struct ipam_prefix c[IPAM_CANDIDATES_MAX], got;
	struct fake_rand r = { .value = 5 };
	char buf[IPAM_PREFIX_STRLEN];
	static const char *const taken[] = { "255.255.255.0/24", "255.255.255.255/32",
		                             "ffff:ffff:ffff:ffff::/64",
		                             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128" };
	struct ipam_taken *t;

	cr_assert_eq(ipam_candidates(&min4, &max4, 24, NULL, c, IPAM_CANDIDATES_MAX), 6);
	cr_assert_str_eq(ipam_prefix_format(&c[5], buf), "255.255.255.0/24");
	cr_assert_eq(ipam_candidates(&min32, &max32, 32, NULL, c, IPAM_CANDIDATES_MAX), 6);
	cr_assert_eq(ipam_candidates(&min6, &max6, 64, NULL, c, IPAM_CANDIDATES_MAX), 6);
	cr_assert_eq(ipam_pick(&min6, &max6, 64, NULL, fake_rand, &r, &got), 0);
	cr_assert_str_eq(ipam_prefix_format(&got, buf), "ffff:ffff:ffff:ffff::/64");
	cr_assert_eq(ipam_candidates(&min128, &max128, 128, NULL, c, IPAM_CANDIDATES_MAX), 16);
	cr_assert_eq(ipam_candidates(&all4, &all4, 0, NULL, c, IPAM_CANDIDATES_MAX), 1);
	cr_assert_eq(ipam_candidates(&all6, &all6, 0, NULL, c, IPAM_CANDIDATES_MAX), 1);

	/* the last subnet taken: the walk stops cleanly at the end of the space */
	t = taken_of(taken, N_ELEMS(taken));
	cr_assert_eq(ipam_candidates(&min4, &max4, 24, t, c, IPAM_CANDIDATES_MAX), 5);
	cr_assert_str_eq(ipam_prefix_format(&c[4], buf), "255.255.254.0/24");
	/* the taken 255.255.255.0/24 covers every /32 of that range */
	cr_assert_eq(ipam_candidates(&min32, &max32, 32, t, c, IPAM_CANDIDATES_MAX), 0);
	cr_assert_eq(ipam_candidates(&min6, &max6, 64, t, c, IPAM_CANDIDATES_MAX), 5);
	/* ... and the taken ffff:ffff:ffff:ffff::/64 every /128 of that one */
	cr_assert_eq(ipam_candidates(&min128, &max128, 128, t, c, IPAM_CANDIDATES_MAX), 0);
	cr_assert_eq(ipam_candidates(&all4, &all4, 0, t, c, IPAM_CANDIDATES_MAX), 0);
	cr_assert_eq(ipam_pick(&all6, &all6, 0, t, fake_rand, &r, &got), -ENOSPC);
	ipam_taken_free(t);

	t = taken_of(&taken[3], 1); /* only the last /128 */
	cr_assert_eq(ipam_candidates(&min128, &max128, 128, t, c, IPAM_CANDIDATES_MAX), 15);
	cr_assert_str_eq(ipam_prefix_format(&c[14], buf),
	                 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128");
	ipam_taken_free(t);
}

Test(ipam, candidates_ipv6_huge_range)
{
	struct ipam_prefix min = P("::/64"), max = P("ffff:ffff:ffff:ffff::/64");
	struct ipam_prefix c[IPAM_CANDIDATES_MAX];
	static const char *const taken[] = { "::/56" }; /* the first 256 /64s */
	struct ipam_taken *t = taken_of(taken, 1);
	char buf[IPAM_PREFIX_STRLEN];

	cr_assert_eq(ipam_candidates(&min, &max, 64, t, c, IPAM_CANDIDATES_MAX), 100);
	cr_assert_str_eq(ipam_prefix_format(&c[0], buf), "0:0:0:100::/64");
	cr_assert_str_eq(ipam_prefix_format(&c[99], buf), "0:0:0:163::/64");
	ipam_taken_free(t);
}

/*
 * 20,000 taken prefixes of mixed lengths in 10.0.0.0/8 (SubnetLen 24), checked
 * against a bitmap oracle over the 65,536 /24s; 1000 picks must stay fast.
 */
Test(ipam, taken_20000_mixed_lengths, .timeout = 30)
{
	static uint8_t used[65536];
	struct ipam_prefix min = P("10.0.1.0/24"), max = P("10.255.255.0/24"), got;
	struct ipam_prefix c[IPAM_CANDIDATES_MAX];
	struct ipam_taken *t = ipam_taken_new();
	uint64_t seed = 12345;
	struct fake_rand r = { 0 };
	size_t n, want_n = 0, k;

	memset(used, 0, sizeof(used));
	for (int i = 0; i < 20000; i++) {
		/* mostly /24s, some /26 /28 /32 inside a /24, some /22 /20 supernets */
		static const uint8_t lens[] = { 24, 24, 24, 24, 24, 24, 26, 28, 32, 22, 20 };
		uint8_t len = lens[xs_next(&seed) % sizeof(lens)];
		uint32_t a = 0x0a000000u | (uint32_t)(xs_next(&seed) & 0xffffff);
		struct ipam_prefix p = { .addr = { .family = AF_INET }, .len = len };

		if (len <= 22 && xs_next(&seed) % 4)
			continue; /* keep the supernets rarer */
		p.addr.bytes[0] = (uint8_t)(a >> 24);
		p.addr.bytes[1] = (uint8_t)(a >> 16);
		p.addr.bytes[2] = (uint8_t)(a >> 8);
		p.addr.bytes[3] = (uint8_t)a;
		cr_assert_eq(ipam_taken_add(t, &p), 0);
		uint32_t first = (a & 0xffffff) >> 8, count = len >= 24 ? 1 : 1u << (24 - len);
		first &= ~(count - 1);
		for (uint32_t j = 0; j < count; j++)
			used[first + j] = 1;
	}
	/* add more until exactly 20,000, densely at the start of the range */
	for (uint32_t i = 1; ipam_taken_count(t) < 20000; i++) {
		struct ipam_prefix p = { .addr = { .family = AF_INET, .bytes = { 10, 0, 0, 0 } },
			                 .len = 24 };

		p.addr.bytes[1] = (uint8_t)(i >> 8);
		p.addr.bytes[2] = (uint8_t)i;
		cr_assert_eq(ipam_taken_add(t, &p), 0);
		used[i] = 1;
	}
	cr_assert_eq(ipam_taken_count(t), 20000);

	n = ipam_candidates(&min, &max, 24, t, c, IPAM_CANDIDATES_MAX);
	k = 0;
	for (uint32_t i = 1; i < 65536 && want_n < IPAM_CANDIDATES_MAX; i++) {
		if (used[i])
			continue;
		cr_assert_lt(k, n);
		cr_assert_eq(c[k].addr.bytes[1], i >> 8, "candidate %zu", k);
		cr_assert_eq(c[k].addr.bytes[2], i & 0xff, "candidate %zu", k);
		cr_assert_eq(c[k].len, 24);
		k++;
		want_n++;
	}
	cr_assert_eq(n, want_n);

	for (int i = 0; i < 1000; i++) {
		r.value = xs_next(&seed);
		cr_assert_eq(ipam_pick(&min, &max, 24, t, fake_rand, &r, &got), 0);
		cr_assert_not(used[(got.addr.bytes[1] << 8) | got.addr.bytes[2]]);
		cr_assert_not(ipam_taken_overlaps(t, &got));
	}
	ipam_taken_free(t);
}

/* Many consecutive taken subnets are jumped over, not stepped through. */
Test(ipam, consecutive_taken_then_free, .timeout = 30)
{
	struct ipam_prefix min = P("10.0.0.0/28"), max = P("10.255.255.240/28"), p = min, got;
	struct ipam_taken *t = ipam_taken_new();
	struct fake_rand r = { .value = 0 };
	char buf[IPAM_PREFIX_STRLEN];

	for (int i = 0; i < 10000; i++) {
		cr_assert_eq(ipam_taken_add(t, &p), 0);
		cr_assert_eq(ipam_prefix_next(&p, &p), 0);
	}
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(ipam_pick(&min, &max, 28, t, fake_rand, &r, &got), 0);
	/* 10000 * 16 = 160000 = 0x27100 addresses */
	cr_assert_str_eq(ipam_prefix_format(&got, buf), "10.2.113.0/28");
	ipam_taken_free(t);
}
