#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "subnet/config.h"

#define DIR_GOOD TWILL_FIXTURES "/config/good"
#define DIR_BAD  TWILL_FIXTURES "/config/bad"

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

/* The parsed fields as text, one per line; what good/<name>.txt holds. */
static char *dump(const struct subnet_config *c)
{
	char a[IPAM_PREFIX_STRLEN], b[IPAM_PREFIX_STRLEN], d[IPAM_PREFIX_STRLEN];
	char *out = NULL, *be;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	cr_assert_not_null(f);
	fprintf(f, "enable_ipv4=%s\nenable_ipv6=%s\n", c->enable_ipv4 ? "true" : "false",
	        c->enable_ipv6 ? "true" : "false");
	if (c->enable_ipv4)
		fprintf(f, "network=%s\nsubnet_len=%u\nsubnet_min=%s\nsubnet_max=%s\n",
		        ipam_prefix_format(&c->network, a), c->subnet_len,
		        ipam_prefix_format(&c->subnet_min, b),
		        ipam_prefix_format(&c->subnet_max, d));
	if (c->enable_ipv6)
		fprintf(f,
		        "ipv6_network=%s\nipv6_subnet_len=%u\nipv6_subnet_min=%s\nipv6_subnet_max=%s\n",
		        ipam_prefix_format(&c->ipv6_network, a), c->ipv6_subnet_len,
		        ipam_prefix_format(&c->ipv6_subnet_min, b),
		        ipam_prefix_format(&c->ipv6_subnet_max, d));
	be = json_dumps(c->backend, JSON_COMPACT | JSON_PRESERVE_ORDER);
	cr_assert_not_null(be);
	fprintf(f, "backend_type=%s\nbackend_defaulted=%s\nbackend=%s\n", c->backend_type,
	        c->backend_defaulted ? "true" : "false", be);
	free(be);
	fclose(f);
	return out;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && !strcmp(s + n - m, suffix);
}

/* Calls @fn(dir, base name without ".json") for every *.json of @dir; returns the count. */
static int for_each_json(const char *dir, void (*fn)(const char *dir, const char *name))
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int count = 0;

	cr_assert_not_null(d, "cannot open %s", dir);
	while ((de = readdir(d))) {
		char name[256];

		if (!has_suffix(de->d_name, ".json"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(strlen(de->d_name) - 5), de->d_name);
		fn(dir, name);
		count++;
	}
	closedir(d);
	return count;
}

static void check_good(const char *dir, const char *name)
{
	char path[512], err[SUBNET_ERR_MAX];
	struct subnet_config *c;
	char *json, *want, *got;
	size_t len;

	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	json = slurp(path, &len);
	c = subnet_config_parse(json, len, err, sizeof(err));
	cr_assert_not_null(c, "%s: rejected: %s", name, err);
	snprintf(path, sizeof(path), "%s/%s.txt", dir, name);
	got = dump(c);
	if (getenv("TWILL_UPDATE_GOLDEN")) {
		/* Regenerate the expected files; review the diff before committing. */
		FILE *f = fopen(path, "w");

		cr_assert_not_null(f);
		fputs(got, f);
		fclose(f);
	}
	want = slurp(path, NULL);
	cr_expect_str_eq(got, want, "%s: parsed fields differ:\n--- got\n%s--- want\n%s", name, got,
	                 want);
	free(got);
	free(want);
	free(json);
	subnet_config_free(c);
}

static void check_bad(const char *dir, const char *name)
{
	char path[512], err[SUBNET_ERR_MAX];
	struct subnet_config *c;
	char *json, *want;
	size_t len;

	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	json = slurp(path, &len);
	snprintf(path, sizeof(path), "%s/%s.err", dir, name);
	want = strip_nl(slurp(path, NULL));
	errno = 0;
	c = subnet_config_parse(json, len, err, sizeof(err));
	cr_expect_null(c, "%s: accepted, expected \"%s\"", name, want);
	if (!c) {
		cr_expect_eq(errno, EINVAL, "%s: errno %d", name, errno);
		cr_expect_not_null(strstr(err, want), "%s: message \"%s\" lacks \"%s\"", name, err,
		                   want);
	}
	subnet_config_free(c);
	free(want);
	free(json);
}

Test(config, golden_good)
{
	cr_assert_geq(for_each_json(DIR_GOOD, check_good), 30);
}

Test(config, golden_bad)
{
	cr_assert_geq(for_each_json(DIR_BAD, check_bad), 50);
}

static struct subnet_config *parse_ok(const char *json)
{
	char err[SUBNET_ERR_MAX];
	struct subnet_config *c = subnet_config_parse(json, strlen(json), err, sizeof(err));

	cr_assert_not_null(c, "%s rejected: %s", json, err);
	return c;
}

Test(config, backend_defaulted_flag)
{
	struct subnet_config *c = parse_ok("{\"Network\":\"10.5.0.0/16\"}");

	cr_expect_str_eq(c->backend_type, "udp");
	cr_expect(c->backend_defaulted);
	cr_expect(json_is_object(c->backend));
	cr_expect_eq(json_object_size(c->backend), 0);
	subnet_config_free(c);

	c = parse_ok("{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"Type\":\"Host-GW\"}}");
	cr_expect_str_eq(c->backend_type, "host-gw");
	cr_expect_not(c->backend_defaulted);
	subnet_config_free(c);
}

Test(config, backend_opt_case_insensitive)
{
	struct subnet_config *c =
		parse_ok("{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"Type\":"
	                 "\"vxlan\",\"vni\":42,\"Port\":4789,\"directrouting\":true}}");

	cr_assert(json_is_integer(subnet_config_backend_opt(c, "VNI")));
	cr_expect_eq(json_integer_value(subnet_config_backend_opt(c, "VNI")), 42);
	cr_expect_eq(json_integer_value(subnet_config_backend_opt(c, "port")), 4789);
	cr_expect(json_is_true(subnet_config_backend_opt(c, "DirectRouting")));
	cr_expect_null(subnet_config_backend_opt(c, "GBP"));
	cr_expect_null(subnet_config_backend_opt(NULL, "VNI"));
	cr_expect_null(subnet_config_backend_opt(c, NULL));
	subnet_config_free(c);

	/* Of several case variants the last one in the document wins, as with Go. */
	c = parse_ok("{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"VNI\":1,\"vni\":2}}");
	cr_expect_eq(json_integer_value(subnet_config_backend_opt(c, "Vni")), 2);
	subnet_config_free(c);
}

Test(config, equal)
{
	struct subnet_config *a = parse_ok("{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"Type\":"
	                                   "\"vxlan\",\"VNI\":1}}");
	struct subnet_config *b = parse_ok("{\"network\":\"10.5.1.0/16\",\"SubnetLen\":24,"
	                                   "\"Backend\":{\"VNI\":1,\"Type\":\"vxlan\"}}");
	struct subnet_config *c = parse_ok("{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"Type\":"
	                                   "\"vxlan\",\"VNI\":2}}");
	struct subnet_config *d = parse_ok("{\"Network\":\"10.5.0.0/16\",\"SubnetLen\":25,"
	                                   "\"Backend\":{\"Type\":\"vxlan\",\"VNI\":1}}");
	struct subnet_config *e = parse_ok("{\"Network\":\"10.5.0.0/16\",\"EnableIPv6\":true,"
	                                   "\"IPv6Network\":\"fc00::/48\",\"Backend\":{\"Type\":"
	                                   "\"vxlan\",\"VNI\":1}}");

	cr_expect(subnet_config_equal(a, a));
	cr_expect(subnet_config_equal(a, b));
	cr_expect(subnet_config_equal(b, a));
	cr_expect_not(subnet_config_equal(a, c));
	cr_expect_not(subnet_config_equal(a, d));
	cr_expect_not(subnet_config_equal(a, e));
	cr_expect_not(subnet_config_equal(a, NULL));
	cr_expect(subnet_config_equal(NULL, NULL));
	subnet_config_free(a);
	subnet_config_free(b);
	subnet_config_free(c);
	subnet_config_free(d);
	subnet_config_free(e);
}

Test(config, length_bounded_and_small_error_buffer)
{
	/* Only the first len bytes count: the rest would be trailing garbage. */
	const char doc[] = "{\"Network\":\"10.5.0.0/16\"}GARBAGE";
	struct subnet_config *c;
	char err[8];

	c = subnet_config_parse(doc, sizeof(doc) - 1 - 7, NULL, 0);
	cr_assert_not_null(c);
	subnet_config_free(c);

	c = subnet_config_parse(doc, sizeof(doc) - 1, err, sizeof(err));
	cr_expect_null(c);
	cr_expect_eq(strlen(err), sizeof(err) - 1);
	cr_expect_null(subnet_config_parse(NULL, 0, NULL, 0));
	subnet_config_free(NULL);
}

Test(config, long_strings_are_cut_in_messages)
{
	char doc[4096], err[SUBNET_ERR_MAX];
	struct subnet_config *c;
	int n;

	n = snprintf(doc, sizeof(doc), "{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"Type\":\"");
	memset(doc + n, 'x', 2000);
	snprintf(doc + n + 2000, sizeof(doc) - (size_t)n - 2000, "\"}}");
	c = subnet_config_parse(doc, strlen(doc), err, sizeof(err));
	cr_assert_null(c);
	cr_expect_not_null(strstr(err, "...\" is not supported: use one of udp, vxlan, host-gw"),
	                   "%s", err);
}
