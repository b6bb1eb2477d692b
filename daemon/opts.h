/*
 * twilld's command line: flanneld's flags and FLANNELD_* environment
 * (docs/compat.md §9) plus twill's own (--subnet-lease-ttl).
 */
#ifndef TWILL_DAEMON_OPTS_H
#define TWILL_DAEMON_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipam/ipam.h"
#include "lib/flags.h"
#include "subnet/store_flags.h"

#define TWILLD_ENV_PREFIX "FLANNELD_"

struct twilld_opts {
	struct store_flags store;     /* --etcd-* */
	struct flag_list iface;       /* --iface (repeatable: name or IPv4 address) */
	struct flag_list iface_regex; /* --iface-regex (repeatable) */
	char *iface_can_reach;        /* --iface-can-reach */
	char *public_ip;              /* --public-ip */
	char *public_ipv6;            /* --public-ipv6 */
	char *subnet_file;            /* --subnet-file */
	int64_t lease_ttl_s;          /* --subnet-lease-ttl (seconds) */
	int64_t renew_margin_min;     /* --subnet-lease-renew-margin (minutes, 1..1439) */
	bool ip_masq;                 /* --ip-masq */
	int64_t iptables_resync_s;    /* --iptables-resync (seconds) */
	bool iptables_forward_rules;  /* --iptables-forward-rules */
	char *healthz_ip;             /* --healthz-ip */
	int64_t healthz_port;         /* --healthz-port (0 = off) */
	int64_t verbosity;            /* -v (klog level) */
	char *vmodule;                /* -vmodule: accepted for flanneld compatibility, ignored */
	char *log_backtrace_at;       /* -log_backtrace_at: accepted, ignored */
	bool help;                    /* --help, -h */
	bool h;
	bool version; /* --version */

	/* derived by twilld_opts_parse() */
	bool has_public_ip;
	struct ipam_addr public_ip_addr;
	bool has_public_ipv6;
	struct ipam_addr public_ipv6_addr;

	/* the flag table (targets point into this struct: do not copy it after init) */
	struct flag_def defs[40];
	size_t ndefs;
	bool parsed; /* flags_parse() ran: the strings are malloc'd */
};

/* Defaults and the flag table. */
void twilld_opts_init(struct twilld_opts *o);
/*
 * Parse argv and the environment, then check the values (--public-ip is an
 * IPv4 address, no arguments left over, ...). 0, or -EINVAL with the reason in
 * @err (a usage error: exit 2). Call twilld_opts_free() in every case. Does not log.
 */
int twilld_opts_parse(struct twilld_opts *o, int argc, char **argv, char *err, size_t errlen);
/* The flag list for --help, to @file (FILE *). */
void twilld_opts_usage(const struct twilld_opts *o, const char *prog, void *file);
/* The log level -v selects: 0 -> info, 1..4 -> debug, 5 and up -> trace. */
int twilld_opts_log_level(const struct twilld_opts *o);
/* Free what parsing stored (nothing before twilld_opts_parse()). NULL-safe. */
void twilld_opts_free(struct twilld_opts *o);

#endif
