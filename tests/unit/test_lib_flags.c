#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/flags.h"

struct opts {
	char *endpoints;
	char *subnet_file;
	struct flag_list iface;
	bool ip_masq;
	bool fwd;
	int64_t margin;
	int64_t port;
	bool version;
};

#define NDEFS 8

static void opts_init(struct opts *o, struct flag_def *defs)
{
	static char def_ep[] = "http://127.0.0.1:2379";

	memset(o, 0, sizeof(*o));
	o->endpoints = def_ep;
	o->fwd = true;
	o->margin = 60;
	struct flag_def d[NDEFS] = {
		{ "etcd-endpoints", FLAG_STRING, &o->endpoints, "endpoints", 0, 0, false },
		{ "subnet-file", FLAG_STRING, &o->subnet_file, "file", 0, 0, false },
		{ "iface", FLAG_STRING_LIST, &o->iface, "iface", 0, 0, false },
		{ "ip-masq", FLAG_BOOL, &o->ip_masq, "masq", 0, 0, false },
		{ "iptables-forward-rules", FLAG_BOOL, &o->fwd, "fwd", 0, 0, false },
		{ "subnet-lease-renew-margin", FLAG_INT, &o->margin, "margin", 1, 1439, false },
		{ "healthz-port", FLAG_INT, &o->port, "port", 0, 0, false },
		{ "version", FLAG_BOOL, &o->version, "version", 0, 0, true },
	};
	memcpy(defs, d, sizeof(d));
}

/* Parse a space-separated command line; returns flags_parse's result. */
static int parse(struct opts *o, struct flag_def *defs, const char *cmdline, int *argind, char *err)
{
	char prog[] = "twilld";
	char *argv[32], *copy = strdup(cmdline), *save = NULL;
	int argc = 0;
	int r, ai = -1;

	argv[argc++] = prog;
	for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	opts_init(o, defs);
	r = flags_parse(defs, NDEFS, argc, argv, "FLANNELD_", &ai, err, 256);
	if (argind)
		*argind = ai;
	free(copy);
	return r;
}

/* Criterion re-executes the binary for each test: parameters hold no pointers. */
struct ok_case {
	char cmdline[80];
	char endpoints[40];
	bool ip_masq, fwd;
	int64_t margin;
	size_t n_iface;
	char iface0[16], iface1[16];
	int argind;
};

ParameterizedTestParameters(flags, accepted)
{
	static struct ok_case cases[] = {
		{ "", "http://127.0.0.1:2379", false, true, 60, 0, "", "", 1 },
		{ "-etcd-endpoints=http://a:1", "http://a:1", false, true, 60, 0, "", "", 2 },
		{ "--etcd-endpoints=http://a:1", "http://a:1", false, true, 60, 0, "", "", 2 },
		{ "--etcd-endpoints http://b:2", "http://b:2", false, true, 60, 0, "", "", 3 },
		{ "-etcd-endpoints http://b:2", "http://b:2", false, true, 60, 0, "", "", 3 },
		{ "--etcd-endpoints=a --etcd-endpoints=b", "b", false, true, 60, 0, "", "", 3 },
		/* a value may look like a flag: Go takes the next argument as is */
		{ "--etcd-endpoints --ip-masq", "--ip-masq", false, true, 60, 0, "", "", 3 },
		{ "--etcd-endpoints=", "", false, true, 60, 0, "", "", 2 },
		{ "--etcd-endpoints=a=b", "a=b", false, true, 60, 0, "", "", 2 },
		{ "--ip-masq", "http://127.0.0.1:2379", true, true, 60, 0, "", "", 2 },
		{ "-ip-masq=true", "http://127.0.0.1:2379", true, true, 60, 0, "", "", 2 },
		{ "-ip-masq=1", "http://127.0.0.1:2379", true, true, 60, 0, "", "", 2 },
		{ "-ip-masq=T", "http://127.0.0.1:2379", true, true, 60, 0, "", "", 2 },
		{ "-ip-masq=True", "http://127.0.0.1:2379", true, true, 60, 0, "", "", 2 },
		{ "-ip-masq=TRUE", "http://127.0.0.1:2379", true, true, 60, 0, "", "", 2 },
		{ "--iptables-forward-rules=false", "http://127.0.0.1:2379", false, false, 60, 0,
		  "", "", 2 },
		{ "--iptables-forward-rules=0", "http://127.0.0.1:2379", false, false, 60, 0, "",
		  "", 2 },
		{ "--iptables-forward-rules=f", "http://127.0.0.1:2379", false, false, 60, 0, "",
		  "", 2 },
		{ "--iptables-forward-rules=FALSE", "http://127.0.0.1:2379", false, false, 60, 0,
		  "", "", 2 },
		/* a bool never takes the next argument: "false" ends the flags */
		{ "--ip-masq false", "http://127.0.0.1:2379", true, true, 60, 0, "", "", 2 },
		{ "--subnet-lease-renew-margin=30", "http://127.0.0.1:2379", false, true, 30, 0, "",
		  "", 2 },
		{ "--subnet-lease-renew-margin 1439", "http://127.0.0.1:2379", false, true, 1439, 0,
		  "", "", 3 },
		{ "--subnet-lease-renew-margin=0x10", "http://127.0.0.1:2379", false, true, 16, 0,
		  "", "", 2 },
		{ "--subnet-lease-renew-margin=010", "http://127.0.0.1:2379", false, true, 8, 0, "",
		  "", 2 },
		{ "--subnet-lease-renew-margin=+1", "http://127.0.0.1:2379", false, true, 1, 0, "",
		  "", 2 },
		{ "--iface=eth0", "http://127.0.0.1:2379", false, true, 60, 1, "eth0", "", 2 },
		{ "--iface eth0 -iface=192.0.2.1", "http://127.0.0.1:2379", false, true, 60, 2,
		  "eth0", "192.0.2.1", 4 },
		{ "--iface=a,b", "http://127.0.0.1:2379", false, true, 60, 1, "a,b", "", 2 },
		{ "--ip-masq rest --iface=x", "http://127.0.0.1:2379", true, true, 60, 0, "", "",
		  2 },
		{ "--ip-masq -- --iface=x", "http://127.0.0.1:2379", true, true, 60, 0, "", "", 3 },
		{ "--ip-masq - x", "http://127.0.0.1:2379", true, true, 60, 0, "", "", 2 },
	};
	return cr_make_param_array(struct ok_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct ok_case *c, flags, accepted)
{
	struct flag_def defs[NDEFS];
	struct opts o;
	char err[256];
	int ai;

	unsetenv("FLANNELD_ETCD_ENDPOINTS");
	cr_assert_eq(parse(&o, defs, c->cmdline, &ai, err), 0, "%s: %s", c->cmdline, err);
	cr_expect_str_eq(o.endpoints, c->endpoints, "%s", c->cmdline);
	cr_expect_eq(o.ip_masq, c->ip_masq, "%s", c->cmdline);
	cr_expect_eq(o.fwd, c->fwd, "%s", c->cmdline);
	cr_expect_eq(o.margin, c->margin, "%s", c->cmdline);
	cr_expect_eq(o.iface.n, c->n_iface, "%s", c->cmdline);
	if (c->n_iface > 0)
		cr_expect_str_eq(o.iface.v[0], c->iface0);
	if (c->n_iface > 1)
		cr_expect_str_eq(o.iface.v[1], c->iface1);
	cr_expect_eq(ai, c->argind, "%s: argind %d", c->cmdline, ai);
	flags_free(defs, NDEFS);
	cr_expect_null(o.endpoints);
	cr_expect_eq(o.iface.n, 0);
}

struct bad_case {
	char cmdline[64];
	char msg[128];
};

ParameterizedTestParameters(flags, rejected)
{
	static struct bad_case cases[] = {
		{ "--nope", "unknown flag -nope" },
		{ "-nope=1", "unknown flag -nope" },
		{ "--help", "unknown flag -help" },
		{ "---ip-masq", "bad flag syntax: ---ip-masq" },
		{ "-=x", "bad flag syntax: -=x" },
		{ "--etcd-endpoints", "flag -etcd-endpoints needs a value" },
		{ "--iface", "flag -iface needs a value" },
		{ "--ip-masq=yes", "invalid boolean value \"yes\" for flag -ip-masq" },
		{ "--ip-masq=", "invalid boolean value \"\" for flag -ip-masq" },
		{ "--subnet-lease-renew-margin=abc",
		  "invalid value \"abc\" for flag -subnet-lease-renew-margin: not an integer" },
		{ "--subnet-lease-renew-margin=",
		  "invalid value \"\" for flag -subnet-lease-renew-margin: not an integer" },
		{ "--subnet-lease-renew-margin=12x", "not an integer" },
		{ "--subnet-lease-renew-margin= 5", "not an integer" },
		{ "--subnet-lease-renew-margin=1440",
		  "invalid value \"1440\" for flag -subnet-lease-renew-margin: out of range 1..1439" },
		{ "--subnet-lease-renew-margin=0", "out of range 1..1439" },
		{ "--healthz-port=99999999999999999999", "value out of range" },
		{ "--healthz-port=09", "not an integer" },
		{ "--healthz-port=0x", "not an integer" },
	};
	return cr_make_param_array(struct bad_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct bad_case *c, flags, rejected)
{
	struct flag_def defs[NDEFS];
	struct opts o;
	char err[256];

	cr_assert_eq(parse(&o, defs, c->cmdline, NULL, err), -EINVAL, "%s", c->cmdline);
	cr_expect(strstr(err, c->msg) != NULL, "%s: got \"%s\", want \"%s\"", c->cmdline, err,
	          c->msg);
	flags_free(defs, NDEFS);
}

Test(flags, env_applies_and_argv_wins)
{
	struct flag_def defs[NDEFS];
	struct opts o;
	char err[256];

	setenv("FLANNELD_ETCD_ENDPOINTS", "http://env:1", 1);
	setenv("FLANNELD_SUBNET_FILE", "/run/env.env", 1);
	setenv("FLANNELD_IP_MASQ", "true", 1);
	setenv("FLANNELD_SUBNET_LEASE_RENEW_MARGIN", "15", 1);
	setenv("FLANNELD_VERSION", "true", 1); /* no_env */
	cr_assert_eq(parse(&o, defs, "--etcd-endpoints=http://argv:2", NULL, err), 0, "%s", err);
	cr_expect_str_eq(o.endpoints, "http://argv:2");
	cr_expect_str_eq(o.subnet_file, "/run/env.env");
	cr_expect(o.ip_masq);
	cr_expect_eq(o.margin, 15);
	cr_expect_not(o.version);
	flags_free(defs, NDEFS);

	cr_assert_eq(parse(&o, defs, "--ip-masq=false --subnet-lease-renew-margin=5", NULL, err),
	             0);
	cr_expect_not(o.ip_masq);
	cr_expect_eq(o.margin, 5);
	cr_expect_str_eq(o.endpoints, "http://env:1");
	flags_free(defs, NDEFS);
}

Test(flags, env_empty_is_ignored)
{
	struct flag_def defs[NDEFS];
	struct opts o;
	char err[256];

	setenv("FLANNELD_ETCD_ENDPOINTS", "", 1);
	setenv("FLANNELD_IPTABLES_FORWARD_RULES", "", 1);
	cr_assert_eq(parse(&o, defs, "", NULL, err), 0, "%s", err);
	cr_expect_str_eq(o.endpoints, "http://127.0.0.1:2379");
	cr_expect(o.fwd);
	flags_free(defs, NDEFS);
}

Test(flags, env_list_is_one_value_and_argv_replaces_it)
{
	struct flag_def defs[NDEFS];
	struct opts o;
	char err[256];

	setenv("FLANNELD_IFACE", "eth0,eth1", 1);
	cr_assert_eq(parse(&o, defs, "", NULL, err), 0, "%s", err);
	cr_assert_eq(o.iface.n, 1);
	cr_expect_str_eq(o.iface.v[0], "eth0,eth1");
	flags_free(defs, NDEFS);

	cr_assert_eq(parse(&o, defs, "--iface=eth2", NULL, err), 0, "%s", err);
	cr_assert_eq(o.iface.n, 1);
	cr_expect_str_eq(o.iface.v[0], "eth2");
	flags_free(defs, NDEFS);
}

Test(flags, env_bad_values_are_errors_naming_the_variable)
{
	struct flag_def defs[NDEFS];
	struct opts o;
	char err[256];

	setenv("FLANNELD_SUBNET_LEASE_RENEW_MARGIN", "2000", 1);
	cr_assert_eq(parse(&o, defs, "", NULL, err), -EINVAL);
	cr_expect_str_eq(
		err,
		"invalid value \"2000\" for FLANNELD_SUBNET_LEASE_RENEW_MARGIN: out of range 1..1439");
	flags_free(defs, NDEFS);
	/* the command line wins: the bad variable is not even looked at */
	cr_assert_eq(parse(&o, defs, "--subnet-lease-renew-margin=3", NULL, err), 0, "%s", err);
	cr_expect_eq(o.margin, 3);
	flags_free(defs, NDEFS);

	unsetenv("FLANNELD_SUBNET_LEASE_RENEW_MARGIN");
	setenv("FLANNELD_IP_MASQ", "yes", 1);
	cr_assert_eq(parse(&o, defs, "", NULL, err), -EINVAL);
	cr_expect(strstr(err, "FLANNELD_IP_MASQ") != NULL, "%s", err);
	flags_free(defs, NDEFS);
}

Test(flags, unrelated_env_is_ignored)
{
	struct flag_def defs[NDEFS];
	struct opts o;
	char err[256];

	setenv("FLANNELD_KUBE_SUBNET_MGR", "true", 1);
	setenv("FLANNELD_NO_SUCH_THING", "x", 1);
	cr_assert_eq(parse(&o, defs, "", NULL, err), 0, "%s", err);
	flags_free(defs, NDEFS);
}

Test(flags, usage_lists_flags_defaults_and_env)
{
	struct flag_def defs[NDEFS];
	struct opts o;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	opts_init(&o, defs);
	flags_usage(defs, NDEFS, "FLANNELD_", f);
	fclose(f);
	cr_expect(strstr(buf, "--etcd-endpoints string") != NULL, "%s", buf);
	cr_expect(strstr(buf, "(default \"http://127.0.0.1:2379\") [$FLANNELD_ETCD_ENDPOINTS]") !=
	                  NULL,
	          "%s", buf);
	cr_expect(strstr(buf, "--subnet-lease-renew-margin int") != NULL);
	cr_expect(strstr(buf, "(default 60)") != NULL);
	cr_expect(strstr(buf, "$FLANNELD_VERSION") == NULL);
	free(buf);
}

Test(flags, parse_int_go_rules)
{
	int64_t v;

	cr_expect_eq(flags_parse_int("9223372036854775807", &v), 0);
	cr_expect_eq(v, INT64_MAX);
	cr_expect_eq(flags_parse_int("-9223372036854775808", &v), 0);
	cr_expect_eq(v, INT64_MIN);
	cr_expect_eq(flags_parse_int("9223372036854775808", &v), -ERANGE);
	cr_expect_eq(flags_parse_int("0b101", &v), 0);
	cr_expect_eq(v, 5);
	cr_expect_eq(flags_parse_int("0o17", &v), 0);
	cr_expect_eq(v, 15);
	cr_expect_eq(flags_parse_int("-0", &v), 0);
	cr_expect_eq(v, 0);
	cr_expect_eq(flags_parse_int("-", &v), -EINVAL);
	cr_expect_eq(flags_parse_int("1_000", &v), -EINVAL);
}
