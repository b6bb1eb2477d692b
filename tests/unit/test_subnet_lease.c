#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "subnet/lease.h"

#define FIX TWILL_FIXTURES "/lease"

static char *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	cr_assert_not_null(f, "cannot open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (ret_len)
		*ret_len = (size_t)n;
	return buf;
}

static char *strip_nl(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '\n')
		s[--n] = '\0';
	return s;
}

static int for_each_json(const char *dir, void (*fn)(const char *dir, const char *name))
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int count = 0;

	cr_assert_not_null(d, "cannot open %s", dir);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char name[256];

		if (n <= 5 || strcmp(de->d_name + n - 5, ".json"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(n - 5), de->d_name);
		fn(dir, name);
		count++;
	}
	closedir(d);
	return count;
}

/* Parse @path and format it again. */
static char *reformat(const char *path, const char *name)
{
	char err[256];
	struct lease_attrs a;
	char *json, *out;
	size_t len;

	json = slurp(path, &len);
	cr_assert_eq(lease_attrs_parse(json, len, &a, err, sizeof(err)), 0, "%s: rejected: %s",
	             name, err);
	out = lease_attrs_format(&a);
	cr_assert_not_null(out);
	lease_attrs_clear(&a);
	free(json);
	return out;
}

static void check_roundtrip(const char *dir, const char *name)
{
	char path[512];
	char *want, *got;

	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	want = slurp(path, NULL);
	got = reformat(path, name);
	cr_expect_str_eq(got, want, "%s: not byte-identical:\n got  %s\n want %s", name, got, want);
	free(got);
	free(want);
}

static void check_normalize(const char *dir, const char *name)
{
	char path[512];
	char *want, *got;

	snprintf(path, sizeof(path), "%s/%s.out", dir, name);
	want = strip_nl(slurp(path, NULL));
	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	got = reformat(path, name);
	cr_expect_str_eq(got, want, "%s:\n got  %s\n want %s", name, got, want);
	free(got);
	free(want);
}

static void check_bad(const char *dir, const char *name)
{
	char path[512], err[256];
	struct lease_attrs a;
	char *json, *want;
	size_t len;

	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	json = slurp(path, &len);
	snprintf(path, sizeof(path), "%s/%s.err", dir, name);
	want = strip_nl(slurp(path, NULL));
	memset(&a, 0x5a, sizeof(a));
	cr_expect_eq(lease_attrs_parse(json, len, &a, err, sizeof(err)), -EINVAL,
	             "%s: accepted, expected \"%s\"", name, want);
	cr_expect_not_null(strstr(err, want), "%s: message \"%s\" lacks \"%s\"", name, err, want);
	cr_expect_eq(((unsigned char *)&a)[0], 0x5a, "%s: *ret written on failure", name);
	free(want);
	free(json);
}

Test(lease, golden_roundtrip_byte_identical)
{
	cr_assert_geq(for_each_json(FIX "/roundtrip", check_roundtrip), 10);
}

Test(lease, golden_normalize)
{
	cr_assert_geq(for_each_json(FIX "/normalize", check_normalize), 10);
}

Test(lease, golden_bad)
{
	cr_assert_geq(for_each_json(FIX "/bad", check_bad), 15);
}

Test(lease, format_from_fields)
{
	struct lease_attrs a = { 0 };
	uint8_t mac[6] = { 0x16, 0x95, 0x20, 0x8d, 0x5a, 0x7b };
	char *s;

	cr_assert_eq(ipam_addr_parse("192.0.2.1", &a.public_ip), 0);
	s = lease_attrs_format(&a);
	cr_expect_str_eq(s, "{\"PublicIP\":\"192.0.2.1\",\"PublicIPv6\":null}");
	free(s);

	snprintf(a.backend_type, sizeof(a.backend_type), "host-gw");
	s = lease_attrs_format(&a);
	cr_expect_str_eq(
		s, "{\"PublicIP\":\"192.0.2.1\",\"PublicIPv6\":null,\"BackendType\":\"host-gw\"}");
	free(s);

	snprintf(a.backend_type, sizeof(a.backend_type), "vxlan");
	cr_assert_eq(lease_attrs_set_vxlan(&a, 1, mac), 0);
	cr_assert_str_eq(a.backend_data, "{\"VNI\":1,\"VtepMAC\":\"16:95:20:8d:5a:7b\"}");
	cr_expect(a.has_vxlan);
	s = lease_attrs_format(&a);
	cr_expect_str_eq(
		s, "{\"PublicIP\":\"192.0.2.1\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\","
		   "\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"16:95:20:8d:5a:7b\"}}");
	free(s);

	a.has_public_ipv6 = true;
	cr_assert_eq(ipam_addr_parse("2001:db8::1", &a.public_ipv6), 0);
	s = lease_attrs_format(&a);
	cr_expect_str_eq(s, "{\"PublicIP\":\"192.0.2.1\",\"PublicIPv6\":\"2001:db8::1\","
	                    "\"BackendType\":\"vxlan\",\"BackendData\":{\"VNI\":1,\"VtepMAC\":"
	                    "\"16:95:20:8d:5a:7b\"}}");
	free(s);
	lease_attrs_clear(&a);
	cr_expect_null(a.backend_data);
	cr_expect_null(lease_attrs_format(NULL));
	lease_attrs_clear(NULL);
}

Test(lease, vxlan_data)
{
	uint8_t mac[6] = { 0xee, 0x0b, 0x7a, 0x00, 0x01, 0xff }, got[6];
	struct lease_attrs a = { 0 };
	json_error_t jerr;
	uint32_t vni;
	static const char *const bad[] = {
		"null",
		"[]",
		"{\"VNI\":1}",
		"{\"VNI\":1,\"VtepMAC\":\"ee:0b:7a:00:01\"}",
		"{\"VNI\":1,\"VtepMAC\":\"ee:0b:7a:00:01:fg\"}",
		"{\"VNI\":1,\"VtepMAC\":\"ee:0b:7a-00:01:ff\"}",
		"{\"VNI\":1,\"VtepMAC\":\"ee:0b:7a:00:01:ff \"}",
		"{\"VNI\":1,\"VtepMAC\":7}",
		"{\"VNI\":-1,\"VtepMAC\":\"ee:0b:7a:00:01:ff\"}",
		"{\"VNI\":16777216,\"VtepMAC\":\"ee:0b:7a:00:01:ff\"}",
		"{\"VNI\":1.5,\"VtepMAC\":\"ee:0b:7a:00:01:ff\"}",
		"{\"VNI\":\"1\",\"VtepMAC\":\"ee:0b:7a:00:01:ff\"}",
	};

	cr_assert_eq(lease_attrs_set_vxlan(&a, 16777215, mac), 0);
	cr_assert_eq(lease_vxlan_data(&a, &vni, got), 0);
	cr_expect_eq(vni, 16777215);
	cr_expect_arr_eq(got, mac, 6);

	/* Go: case-insensitive keys, upper-case hex, '-' separators; a missing VNI is 0. */
	{
		json_t *d = json_loads("{\"vtepmac\":\"EE-0B-7A-00-01-FF\"}", 0, &jerr);

		cr_assert_eq(lease_attrs_set_backend_data(&a, d), 0);
		json_decref(d);
	}
	cr_expect_str_eq(a.backend_data, "{\"vtepmac\":\"EE-0B-7A-00-01-FF\"}");
	cr_assert_eq(lease_vxlan_data(&a, &vni, got), 0);
	cr_expect_eq(vni, 0);
	cr_expect_arr_eq(got, mac, 6);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *d = json_loads(bad[i], JSON_DECODE_ANY, &jerr);

		cr_assert_not_null(d, "%s", bad[i]);
		cr_assert_eq(lease_attrs_set_backend_data(&a, d), 0);
		json_decref(d);
		cr_expect_eq(lease_vxlan_data(&a, &vni, got), -EINVAL, "accepted %s", bad[i]);
		cr_expect_not(a.has_vxlan, "%s", bad[i]);
	}
	cr_assert_not_null(a.backend_data, "kept as text although not vxlan's");
	{
		json_t *n = json_null();

		cr_assert_eq(lease_attrs_set_backend_data(&a, n), 0);
		json_decref(n);
	}
	cr_assert_null(a.backend_data, "JSON null: no BackendData");
	cr_assert_eq(lease_attrs_set_backend_data(&a, NULL), 0);
	cr_expect_eq(lease_vxlan_data(&a, &vni, got), -EINVAL);
	lease_attrs_clear(&a);
	cr_expect_eq(lease_vxlan_data(NULL, &vni, got), -EINVAL);
}

Test(lease, copy_equal_clear)
{
	const char *v =
		"{\"PublicIP\":\"192.0.2.1\",\"PublicIPv6\":\"2001:db8::1\",\"BackendType\":"
		"\"vxlan\",\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"16:95:20:8d:5a:7b\"}}";
	const char *w = "{\"BackendData\":{\"VtepMAC\":\"16:95:20:8d:5a:7b\",\"VNI\":1},"
			"\"PublicIPv6\":\"2001:db8::1\",\"BackendType\":\"vxlan\",\"PublicIP\":"
			"\"192.0.2.1\"}";
	struct lease_attrs a, b, c;
	struct lease l = { 0 }, m = { 0 };
	char err[256];

	cr_assert_eq(lease_attrs_parse(v, strlen(v), &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(lease_attrs_parse(w, strlen(w), &b, err, sizeof(err)), 0, "%s", err);
	cr_expect(lease_attrs_equal(&a, &b));
	cr_assert_eq(lease_attrs_copy(&c, &a), 0);
	cr_expect(lease_attrs_equal(&a, &c));
	lease_attrs_clear(&a);
	/* The copy keeps its own reference. */
	cr_expect(lease_attrs_equal(&b, &c));
	c.has_public_ipv6 = false;
	cr_expect_not(lease_attrs_equal(&b, &c));
	c.has_public_ipv6 = true;
	snprintf(c.backend_type, sizeof(c.backend_type), "udp");
	cr_expect_not(lease_attrs_equal(&b, &c));
	snprintf(c.backend_type, sizeof(c.backend_type), "vxlan");
	{
		uint8_t mac[6] = { 0x16, 0x95, 0x20, 0x8d, 0x5a, 0x7b };

		cr_assert_eq(lease_attrs_set_vxlan(&c, 2, mac), 0);
	}
	cr_expect_not(lease_attrs_equal(&b, &c));
	cr_assert_eq(lease_attrs_set_backend_data(&c, NULL), 0);
	cr_expect_not(lease_attrs_equal(&b, &c));
	lease_attrs_clear(&c);

	cr_assert_eq(lease_key_parse("10.5.34.0-24", &l), 0);
	l.store_lease_id = 42;
	l.attrs = b;
	cr_assert_eq(lease_copy(&m, &l), 0);
	cr_expect_eq(m.store_lease_id, 42);
	cr_expect(ipam_prefix_equal(&m.subnet, &l.subnet));
	lease_clear(&l); /* drops the reference b handed over; m keeps its own */
	cr_assert_not_null(m.attrs.backend_data);
	cr_expect_str_eq(m.attrs.backend_data, "{\"VtepMAC\":\"16:95:20:8d:5a:7b\",\"VNI\":1}");
	cr_expect(m.attrs.has_vxlan);
	cr_expect_eq(m.attrs.vni, 1);
	lease_clear(&m);
	cr_expect_null(m.attrs.backend_data);
	lease_clear(NULL);
}

struct key_case {
	const char *key;
	const char *v4; /* NULL: none */
	const char *v6;
};

static const struct key_case good_keys[] = {
	{ "10.5.34.0-24", "10.5.34.0/24", NULL },
	{ "10.5.34.0-24&fc00:0:0:5::-64", "10.5.34.0/24", "fc00:0:0:5::/64" },
	{ "&fc00:0:0:5::-64", NULL, "fc00:0:0:5::/64" },
	{ "198.18.0.0-15", "198.18.0.0/15", NULL },
	{ "10.5.0.4-30", "10.5.0.4/30", NULL },
	{ "10.5.0.4-32", "10.5.0.4/32", NULL },
	{ "0.0.0.0-0", "0.0.0.0/0", NULL },
	{ "10.5.34.0-24&fc00:0:0:5::1-128", "10.5.34.0/24", "fc00:0:0:5::1/128" },
	{ "10.5.34.0-24&::-0", "10.5.34.0/24", "::/0" },
};

/* Parsed but formatted differently (inet_pton is lenient about IPv6 spelling). */
static const struct key_case lenient_keys[] = {
	{ "10.5.34.0-24&FC00:0000:0:5:0:0:0:0-64", "10.5.34.0/24", "fc00:0:0:5::/64" },
	{ "10.5.34.0-24&fc00::5:0:0:0:0-128", "10.5.34.0/24", "fc00:0:0:5::/128" },
};

static const char *const bad_keys[] = {
	"",
	"10.5.34.0",
	"10.5.34.0-",
	"10.5.34.0/24",
	"10.5.34.0-24 ",
	" 10.5.34.0-24",
	"10.5.34.0-024",
	"10.5.34.0-+24",
	"10.5.34.0--24",
	"10.5.34.0-33",
	"10.5.34.0-1000",
	"10.5.34.1-24", /* host bits */
	"10.5.34.0-16", /* host bits */
	"10.5.34-24",
	"10.5.34.256-24",
	"010.5.34.0-24",
	"fc00::-64",
	"10.5.34.0-24&",
	"10.5.34.0-24&10.5.35.0-24",
	"10.5.34.0-24&fc00::-129",
	"10.5.34.0-24&fc00::1-64", /* host bits */
	"10.5.34.0-24&fc00::-64&fc01::-64",
	"10.5.34.0-24&&fc00::-64",
	"&",
	"-24",
	"garbage",
	"10.5.34.0-24x",
	"x10.5.34.0-24",
	"10.5.34.0-24&fc00:0:0:5::-64-64",
	"10.5.34.0-24&fc00:0:0:5:::-64",
};

static void expect_key(const struct lease *l, const struct key_case *k)
{
	char buf[IPAM_PREFIX_STRLEN];

	cr_expect_eq(l->has_ipv4, k->v4 != NULL, "%s", k->key);
	cr_expect_eq(l->has_ipv6, k->v6 != NULL, "%s", k->key);
	if (k->v4 && l->has_ipv4)
		cr_expect_str_eq(ipam_prefix_format(&l->subnet, buf), k->v4, "%s", k->key);
	if (k->v6 && l->has_ipv6)
		cr_expect_str_eq(ipam_prefix_format(&l->ipv6_subnet, buf), k->v6, "%s", k->key);
}

Test(lease, key_parse_format)
{
	char buf[LEASE_KEY_MAX], canon[LEASE_KEY_MAX];
	struct lease l;

	for (size_t i = 0; i < sizeof(good_keys) / sizeof(good_keys[0]); i++) {
		memset(&l, 0, sizeof(l));
		cr_expect_eq(lease_key_parse(good_keys[i].key, &l), 0, "rejected %s",
		             good_keys[i].key);
		expect_key(&l, &good_keys[i]);
		cr_expect_str_eq(lease_key_format(&l, buf), good_keys[i].key);
	}
	for (size_t i = 0; i < sizeof(lenient_keys) / sizeof(lenient_keys[0]); i++) {
		memset(&l, 0, sizeof(l));
		cr_expect_eq(lease_key_parse(lenient_keys[i].key, &l), 0, "rejected %s",
		             lenient_keys[i].key);
		expect_key(&l, &lenient_keys[i]);
		lease_key_format(&l, canon);
		cr_expect_eq(lease_key_parse(canon, &l), 0);
		cr_expect_str_eq(lease_key_format(&l, buf), canon);
	}
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
		memset(&l, 0x5a, sizeof(l));
		cr_expect_eq(lease_key_parse(bad_keys[i], &l), -EINVAL, "accepted \"%s\"",
		             bad_keys[i]);
		cr_expect_eq(((unsigned char *)&l)[0], 0x5a, "wrote *ret for \"%s\"", bad_keys[i]);
	}
	cr_expect_eq(lease_key_parse(NULL, &l), -EINVAL);
	cr_expect_eq(lease_key_parse("10.5.34.0-24", NULL), -EINVAL);
}

Test(lease, key_format_clears_host_bits)
{
	struct lease l = { 0 };
	char buf[LEASE_KEY_MAX];

	l.has_ipv4 = true;
	cr_assert_eq(ipam_prefix_parse("10.5.34.1/24", &l.subnet), 0);
	cr_expect_str_eq(lease_key_format(&l, buf), "10.5.34.0-24");
	memset(&l, 0, sizeof(l));
	cr_expect_str_eq(lease_key_format(&l, buf), "");
}

/* The attributes of a node's own lease as twilld and its backends build them. */
static void own_attrs(struct lease_attrs *a, const char *type, bool v6)
{
	static const uint8_t m4[6] = { 0x72, 0x07, 0x01, 0xd5, 0x03, 0xde };
	static const uint8_t m6[6] = { 0x3a, 0xc3, 0x56, 0xd6, 0x78, 0x82 };

	memset(a, 0, sizeof(*a));
	cr_assert_eq(ipam_addr_parse("192.0.2.3", &a->public_ip), 0);
	if (v6) {
		a->has_public_ipv6 = true;
		cr_assert_eq(ipam_addr_parse("2001:db8:0:1::3", &a->public_ipv6), 0);
	}
	if (strcmp(type, "vxlan") == 0) {
		cr_assert_eq(lease_attrs_set_vxlan(a, 1, m4), 0);
		if (v6)
			cr_assert_eq(lease_attrs_set_vxlan_v6(a, 1, m6), 0);
	} else {
		cr_assert_eq(lease_attrs_set_backend_data(a, NULL), 0);
	}
	snprintf(a->backend_type, sizeof(a->backend_type), "%s", type);
}

/* What twill writes for its own lease equals flannel's bytes, for both families. */
Test(lease, written_matches_flannel_both_families)
{
	static const struct {
		const char *file, *type;
		bool v6;
	} cases[] = {
		{ "vxlan-dualstack", "vxlan", true },
		{ "vxlan-ipv4", "vxlan", false },
		{ "host-gw-dualstack", "host-gw", true },
		{ "host-gw-ipv4", "host-gw", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[512], err[256];
		struct lease_attrs a, b;
		char *want, *got;
		uint8_t mac[6];
		uint32_t vni;

		snprintf(path, sizeof(path), "%s/written/%s.json", FIX, cases[i].file);
		want = slurp(path, NULL);
		own_attrs(&a, cases[i].type, cases[i].v6);
		got = lease_attrs_format(&a);
		cr_assert_not_null(got);
		cr_expect_str_eq(got, want, "%s:\n got  %s\n want %s", cases[i].file, got, want);
		/* and it reads back: BackendV6Data as vxlan data exactly when dual-stack vxlan */
		cr_assert_eq(lease_attrs_parse(want, strlen(want), &b, err, sizeof(err)), 0, "%s",
		             err);
		cr_expect(lease_attrs_equal(&a, &b), "%s: not equal after parsing", cases[i].file);
		cr_expect_eq(lease_vxlan_v6_data(&b, &vni, mac),
		             cases[i].v6 && !strcmp(cases[i].type, "vxlan") ? 0 : -ENOENT, "%s",
		             cases[i].file);
		lease_attrs_clear(&a);
		lease_attrs_clear(&b);
		free(got);
		free(want);
	}
}

/* BackendV6Data that is not vxlan data, and a PublicIPv6 that is not an address. */
Test(lease, ipv6_half_malformed)
{
	static const char bad6[] =
		"{\"PublicIP\":\"192.0.2.3\",\"PublicIPv6\":\"192.0.2.4\",\"BackendType\":\"vxlan\","
		"\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"72:07:01:d5:03:de\"},"
		"\"BackendV6Data\":{\"VNI\":1,\"VtepMAC\":\"not-a-mac\"}}";
	struct lease_attrs a;
	char err[256];

	cr_assert_eq(lease_attrs_parse(bad6, strlen(bad6), &a, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "PublicIPv6"), "%s", err);
	cr_assert_eq(lease_attrs_parse_lenient6(bad6, strlen(bad6), &a, err, sizeof(err)), 0);
	cr_assert(!a.has_public_ipv6 && a.public_ipv6_bad);
	cr_assert_eq(lease_vxlan_data(&a, NULL, NULL), 0, "the IPv4 half is intact");
	cr_assert_eq(lease_vxlan_v6_data(&a, NULL, NULL), -EINVAL);
	lease_attrs_clear(&a);
}

/* The dual-stack key: both halves, and the lenient form that keeps a valid IPv4 half. */
Test(lease, dual_stack_key_lenient)
{
	static const char *const bad6[] = {
		"198.18.27.0-24&",
		"198.18.27.0-24&2001:db8:100:e::1-64",
		"198.18.27.0-24&garbage-64",
		"198.18.27.0-24&2001:db8:100:e::-129",
		"198.18.27.0-24&198.18.0.0-24",
	};
	char out[LEASE_KEY_MAX];
	struct lease l;

	memset(&l, 0, sizeof(l));
	cr_assert_eq(lease_key_parse_lenient6("198.18.27.0-24&2001:db8:100:e::-64", &l), 0);
	cr_assert(l.has_ipv4 && l.has_ipv6 && !l.ipv6_key_bad);
	cr_assert_str_eq(lease_key_format(&l, out), "198.18.27.0-24&2001:db8:100:e::-64");
	for (size_t i = 0; i < sizeof(bad6) / sizeof(bad6[0]); i++) {
		memset(&l, 0, sizeof(l));
		cr_assert_eq(lease_key_parse(bad6[i], &l), -EINVAL, "%s", bad6[i]);
		cr_assert_eq(lease_key_parse_lenient6(bad6[i], &l), 0, "%s", bad6[i]);
		cr_assert(l.has_ipv4 && !l.has_ipv6 && l.ipv6_key_bad, "%s", bad6[i]);
		cr_assert_str_eq(lease_key_format(&l, out), "198.18.27.0-24");
	}
	cr_assert_eq(lease_key_parse_lenient6("198.18.27.1-24&2001:db8:100:e::-64", &l), -EINVAL);
	cr_assert_eq(lease_key_parse_lenient6("garbage&2001:db8:100:e::-64", &l), -EINVAL);
}
