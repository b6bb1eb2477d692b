#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/iface.h"
#include "daemon/opts.h"
#include "lib/log.h"
#include "subnet/subnetfile.h"

static char def_subnet_file[] = SUBNETFILE_DEFAULT_PATH;
static char def_healthz_ip[] = "0.0.0.0";

static void add(struct twilld_opts *o, const char *name, enum flag_type type, void *target,
                const char *help, int64_t min, int64_t max, bool no_env)
{
	struct flag_def *d = &o->defs[o->ndefs++];

	d->name = name;
	d->type = type;
	d->target = target;
	d->help = help;
	d->min = min;
	d->max = max;
	d->no_env = no_env;
}

void twilld_opts_init(struct twilld_opts *o)
{
	memset(o, 0, sizeof(*o));
	store_flags_init(&o->store);
	o->subnet_file = def_subnet_file;
	o->healthz_ip = def_healthz_ip;
	o->lease_ttl_s = 86400;
	o->renew_margin_min = 60;
	o->iptables_resync_s = 5;
	o->iptables_forward_rules = true;

	/* Cannot fail: defs has room for every entry. */
	store_flags_add_defs(&o->store, o->defs, &o->ndefs, sizeof(o->defs) / sizeof(o->defs[0]));
	add(o, "iface", FLAG_STRING_LIST, &o->iface,
	    "interface to use (IP or name) for inter-host communication. Can be specified multiple times to check each option in order. Returns the first match found.",
	    0, 0, false);
	add(o, "iface-regex", FLAG_STRING_LIST, &o->iface_regex,
	    "regex expression to match the first interface to use (IP or name) for inter-host communication. Can be specified multiple times to check each regex in order. Returns the first match found. Regexes are checked after specific interfaces specified by the iface option have already been checked.",
	    0, 0, false);
	add(o, "iface-can-reach", FLAG_STRING, &o->iface_can_reach,
	    "detect interface to use (IP or name) for inter-host communication based on which will be used for provided IP. This is exactly the interface to use of command 'ip route get <ip-address>'",
	    0, 0, false);
	add(o, "public-ip", FLAG_STRING, &o->public_ip,
	    "IP accessible by other nodes for inter-host communication", 0, 0, false);
	add(o, "public-ipv6", FLAG_STRING, &o->public_ipv6,
	    "IPv6 accessible by other nodes for inter-host communication", 0, 0, false);
	add(o, "subnet-file", FLAG_STRING, &o->subnet_file,
	    "filename where env variables (subnet, MTU, ... ) will be written to", 0, 0, false);
	add(o, "subnet-lease-ttl", FLAG_INT, &o->lease_ttl_s,
	    "TTL of the subnet lease, in seconds (twill; flannel uses a fixed 86400)", 1, INT32_MAX,
	    false);
	add(o, "subnet-lease-renew-margin", FLAG_INT, &o->renew_margin_min,
	    "subnet lease renewal margin, in minutes, ranging from 1 to 1439", 1, 1439, false);
	add(o, "ip-masq", FLAG_BOOL, &o->ip_masq,
	    "setup IP masquerade rule for traffic destined outside of overlay network", 0, 0,
	    false);
	add(o, "iptables-resync", FLAG_INT, &o->iptables_resync_s,
	    "resync period for iptables rules, in seconds", 1, INT32_MAX, false);
	add(o, "iptables-forward-rules", FLAG_BOOL, &o->iptables_forward_rules,
	    "add default accept rules to FORWARD chain in iptables", 0, 0, false);
	add(o, "healthz-ip", FLAG_STRING, &o->healthz_ip,
	    "the IP address for healthz server to listen", 0, 0, false);
	add(o, "healthz-port", FLAG_INT, &o->healthz_port,
	    "the port for healthz server to listen(0 to disable)", 0, 65535, false);
	/* 0..0 would mean unbounded; klog levels are non-negative int32 */
	add(o, "v", FLAG_INT, &o->verbosity, "log level: 0 info, 1 (and up to 4) debug, 5 trace", 0,
	    INT32_MAX, false);
	add(o, "vmodule", FLAG_STRING, &o->vmodule,
	    "accepted for compatibility with flanneld (klog), ignored", 0, 0, false);
	add(o, "log_backtrace_at", FLAG_STRING, &o->log_backtrace_at,
	    "accepted for compatibility with flanneld (klog), ignored", 0, 0, false);
	add(o, "version", FLAG_BOOL, &o->version, "print version and exit", 0, 0, true);
	add(o, "help", FLAG_BOOL, &o->help, "print this message", 0, 0, true);
	add(o, "h", FLAG_BOOL, &o->h, "print this message", 0, 0, true);
}

int twilld_opts_parse(struct twilld_opts *o, int argc, char **argv, char *err, size_t errlen)
{
	int argind, r;

	r = flags_parse(o->defs, o->ndefs, argc, argv, TWILLD_ENV_PREFIX, &argind, err, errlen);
	o->parsed = true;
	if (r < 0)
		return r;
	if (o->h)
		o->help = true;
	if (o->help || o->version)
		return 0;
	if (argind < argc) {
		snprintf(err, errlen, "unexpected argument \"%s\" (twilld takes only flags)",
		         argv[argind]);
		return -EINVAL;
	}
	if (o->public_ip && *o->public_ip) {
		if (ipam_addr_parse(o->public_ip, &o->public_ip_addr) < 0 ||
		    o->public_ip_addr.family != AF_INET) {
			snprintf(err, errlen,
			         "invalid value \"%s\" for flag -public-ip: not an IPv4 address",
			         o->public_ip);
			return -EINVAL;
		}
		o->has_public_ip = true;
	}
	if (o->public_ipv6 && *o->public_ipv6) {
		if (ipam_addr_parse(o->public_ipv6, &o->public_ipv6_addr) < 0 ||
		    o->public_ipv6_addr.family != AF_INET6) {
			snprintf(err, errlen,
			         "invalid value \"%s\" for flag -public-ipv6: not an IPv6 address",
			         o->public_ipv6);
			return -EINVAL;
		}
		o->has_public_ipv6 = true;
	}
	if (o->iface_can_reach && *o->iface_can_reach) {
		struct ipam_addr a;

		if (ipam_addr_parse(o->iface_can_reach, &a) < 0 || a.family != AF_INET) {
			snprintf(
				err, errlen,
				"invalid value \"%s\" for flag -iface-can-reach: not an IPv4 address",
				o->iface_can_reach);
			return -EINVAL;
		}
	}
	/* A bad or too complex --iface-regex is a usage error, found before anything starts. */
	for (size_t i = 0; i < o->iface_regex.n; i++) {
		r = iface_regex_check(o->iface_regex.v[i], err, errlen);
		if (r < 0)
			return r;
	}
	if (!o->subnet_file || !*o->subnet_file) {
		snprintf(err, errlen, "flag -subnet-file: empty path");
		return -EINVAL;
	}
	return 0;
}

void twilld_opts_usage(const struct twilld_opts *o, const char *prog, void *file)
{
	fprintf(file, "Usage: %s [OPTION]...\n", prog);
	flags_usage(o->defs, o->ndefs, TWILLD_ENV_PREFIX, file);
}

int twilld_opts_log_level(const struct twilld_opts *o)
{
	if (o->verbosity >= 5)
		return LOG_LVL_TRACE;
	if (o->verbosity >= 1)
		return LOG_LVL_DEBUG;
	return LOG_LVL_INFO;
}

void twilld_opts_free(struct twilld_opts *o)
{
	if (o && o->parsed) {
		flags_free(o->defs, o->ndefs);
		o->parsed = false;
	}
}
