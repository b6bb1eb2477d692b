#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/opts.h"
#include "lib/log.h"

static int parse(struct twilld_opts *o, const char *cmdline, char *err)
{
	char prog[] = "twilld";
	char *argv[32], *copy = strdup(cmdline), *save = NULL;
	int argc = 0, r;

	argv[argc++] = prog;
	for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	twilld_opts_init(o);
	r = twilld_opts_parse(o, argc, argv, err, 512);
	free(copy);
	return r;
}

Test(daemon_opts, defaults_match_flanneld)
{
	struct twilld_opts o;
	char err[512];

	cr_assert_eq(parse(&o, "", err), 0, "%s", err);
	cr_expect_str_eq(o.store.endpoints, "http://127.0.0.1:2379");
	cr_expect_str_eq(o.store.prefix, "/coreos.com/network");
	cr_expect_str_eq(o.subnet_file, "/run/flannel/subnet.env");
	cr_expect_str_eq(o.healthz_ip, "0.0.0.0");
	cr_expect_eq(o.healthz_port, 0);
	cr_expect_eq(o.lease_ttl_s, 86400);
	cr_expect_eq(o.renew_margin_min, 60);
	cr_expect_eq(o.iptables_resync_s, 5);
	cr_expect(o.iptables_forward_rules);
	cr_expect_not(o.ip_masq);
	cr_expect_eq(o.iface.n, 0);
	cr_expect_eq(o.iface_regex.n, 0);
	cr_expect_null(o.iface_can_reach);
	cr_expect_not(o.has_public_ip);
	cr_expect_eq(twilld_opts_log_level(&o), LOG_LVL_INFO);
	twilld_opts_free(&o);
	twilld_opts_free(&o); /* idempotent */
}

Test(daemon_opts, the_brief_command_line)
{
	struct twilld_opts o;
	char err[512];

	cr_assert_eq(parse(&o,
	                   "--etcd-endpoints=http://192.0.2.100:2379 --iface=eth0 "
	                   "--subnet-file=/run/x/subnet.env -v 2",
	                   err),
	             0, "%s", err);
	cr_expect_str_eq(o.store.endpoints, "http://192.0.2.100:2379");
	cr_assert_eq(o.iface.n, 1);
	cr_expect_str_eq(o.iface.v[0], "eth0");
	cr_expect_str_eq(o.subnet_file, "/run/x/subnet.env");
	cr_expect_eq(o.verbosity, 2);
	cr_expect_eq(twilld_opts_log_level(&o), LOG_LVL_DEBUG);
	twilld_opts_free(&o);
}

Test(daemon_opts, every_flanneld_flag_is_accepted)
{
	struct twilld_opts o;
	char err[512];

	cr_assert_eq(parse(&o,
	                   "-etcd-endpoints=http://192.0.2.1:2379,http://192.0.2.2:2379 "
	                   "-etcd-prefix=/x -etcd-keyfile=/k -etcd-certfile=/c -etcd-cafile=/ca "
	                   "-etcd-username=u -etcd-password=p -iface=a -iface=192.0.2.1 "
	                   "-iface-regex=^e -iface-regex=^w -iface-can-reach=192.0.2.254 "
	                   "-public-ip=192.0.2.9 -public-ipv6=2001:db8::1 -subnet-file=/s "
	                   "-subnet-lease-renew-margin=30 -subnet-lease-ttl=120 -ip-masq "
	                   "-iptables-resync=7 -iptables-forward-rules=false -healthz-ip=127.0.0.1 "
	                   "-healthz-port=8471 -v=5 -vmodule=x=2 -log_backtrace_at=a.go:1",
	                   err),
	             0, "%s", err);
	cr_expect_str_eq(o.store.prefix, "/x");
	cr_expect_str_eq(o.store.keyfile, "/k");
	cr_expect_str_eq(o.store.certfile, "/c");
	cr_expect_str_eq(o.store.cafile, "/ca");
	cr_expect_str_eq(o.store.username, "u");
	cr_expect_str_eq(o.store.password, "p");
	cr_expect_eq(o.iface.n, 2);
	cr_expect_eq(o.iface_regex.n, 2);
	cr_expect_str_eq(o.iface_regex.v[1], "^w");
	cr_expect_str_eq(o.iface_can_reach, "192.0.2.254");
	cr_expect(o.has_public_ip);
	cr_expect(o.has_public_ipv6);
	cr_expect_eq(o.renew_margin_min, 30);
	cr_expect_eq(o.lease_ttl_s, 120);
	cr_expect(o.ip_masq);
	cr_expect_eq(o.iptables_resync_s, 7);
	cr_expect_not(o.iptables_forward_rules);
	cr_expect_str_eq(o.healthz_ip, "127.0.0.1");
	cr_expect_eq(o.healthz_port, 8471);
	cr_expect_eq(twilld_opts_log_level(&o), LOG_LVL_TRACE);
	twilld_opts_free(&o);
}

Test(daemon_opts, environment_like_a_flanneld_unit)
{
	struct twilld_opts o;
	char err[512];

	setenv("FLANNELD_ETCD_ENDPOINTS", "http://192.0.2.3:2379", 1);
	setenv("FLANNELD_IFACE", "eth1", 1);
	setenv("FLANNELD_IP_MASQ", "true", 1);
	setenv("FLANNELD_SUBNET_LEASE_TTL", "60", 1);
	setenv("FLANNELD_V", "1", 1);
	setenv("FLANNELD_HELP", "true", 1);    /* not read from the environment */
	setenv("FLANNELD_VERSION", "true", 1); /* likewise */
	cr_assert_eq(parse(&o, "--iface=eth2", err), 0, "%s", err);
	cr_expect_str_eq(o.store.endpoints, "http://192.0.2.3:2379");
	cr_assert_eq(o.iface.n, 1);
	cr_expect_str_eq(o.iface.v[0], "eth2");
	cr_expect(o.ip_masq);
	cr_expect_eq(o.lease_ttl_s, 60);
	cr_expect_eq(o.verbosity, 1);
	cr_expect_not(o.help);
	cr_expect_not(o.version);
	twilld_opts_free(&o);
}

Test(daemon_opts, help_and_version)
{
	struct twilld_opts o;
	char err[512];

	cr_assert_eq(parse(&o, "-h", err), 0, "%s", err);
	cr_expect(o.help);
	twilld_opts_free(&o);
	cr_assert_eq(parse(&o, "--help extra", err), 0, "%s", err);
	cr_expect(o.help);
	twilld_opts_free(&o);
	cr_assert_eq(parse(&o, "--version", err), 0, "%s", err);
	cr_expect(o.version);
	twilld_opts_free(&o);
}

struct bad {
	const char *cmdline;
	const char *msg;
};

Test(daemon_opts, usage_errors)
{
	static const struct bad cases[] = {
		{ "--kube-subnet-mgr", "unknown flag -kube-subnet-mgr" },
		{ "--subnet-lease-renew-margin=0", "out of range 1..1439" },
		{ "--subnet-lease-renew-margin=1440", "out of range 1..1439" },
		{ "--subnet-lease-ttl=0", "for flag -subnet-lease-ttl" },
		{ "--healthz-port=65536", "out of range 0..65535" },
		{ "--healthz-port=x", "not an integer" },
		{ "-v=-1", "for flag -v" },
		{ "--public-ip=eth0", "flag -public-ip: not an IPv4 address" },
		{ "--public-ip=2001:db8::1", "flag -public-ip: not an IPv4 address" },
		{ "--public-ipv6=192.0.2.1", "flag -public-ipv6: not an IPv6 address" },
		{ "--iface-can-reach=host", "flag -iface-can-reach: not an IPv4 address" },
		{ "--subnet-file=", "flag -subnet-file: empty path" },
		{ "stray", "unexpected argument \"stray\"" },
		{ "--ip-masq false", "unexpected argument \"false\"" },
		{ "--iface", "flag -iface needs a value" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct twilld_opts o;
		char err[512];

		cr_expect_eq(parse(&o, cases[i].cmdline, err), -EINVAL, "%s", cases[i].cmdline);
		cr_expect(strstr(err, cases[i].msg) != NULL, "%s: got \"%s\"", cases[i].cmdline,
		          err);
		twilld_opts_free(&o);
	}
}

Test(daemon_opts, usage_lists_every_flag)
{
	static const char *const names[] = {
		"etcd-endpoints",
		"etcd-prefix",
		"etcd-keyfile",
		"etcd-certfile",
		"etcd-cafile",
		"etcd-username",
		"etcd-password",
		"iface",
		"iface-regex",
		"iface-can-reach",
		"public-ip",
		"public-ipv6",
		"subnet-file",
		"subnet-lease-ttl",
		"subnet-lease-renew-margin",
		"ip-masq",
		"iptables-resync",
		"iptables-forward-rules",
		"healthz-ip",
		"healthz-port",
		"v",
		"version",
		"help",
	};
	struct twilld_opts o;
	char *buf = NULL, needle[64];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	twilld_opts_init(&o);
	twilld_opts_usage(&o, "twilld", f);
	fclose(f);
	cr_expect(strncmp(buf, "Usage: twilld [OPTION]...\n", 26) == 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(needle, sizeof(needle), "  --%s", names[i]);
		cr_expect(strstr(buf, needle) != NULL, "%s missing", names[i]);
	}
	cr_expect(strstr(buf, "[$FLANNELD_SUBNET_LEASE_RENEW_MARGIN]") != NULL);
	cr_expect(strstr(buf, "(default \"/run/flannel/subnet.env\")") != NULL);
	free(buf);
	twilld_opts_free(&o); /* nothing parsed: must not free the static defaults */
}
