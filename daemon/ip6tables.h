/*
 * flannel's iptables chains for the IPv6 network (docs/compat.md "ip6tables"):
 * FLANNEL-FWD and FLANNEL-POSTRTG in ip6tables, run by a second struct ipt
 * (daemon/iptables.c, family AF_INET6) with its own state file
 * (twill-ip6tables.state next to the subnet file) and its own log lines.
 *
 * It is set up once the network config is known: with EnableIPv6 the chains
 * follow --iptables-forward-rules and --ip-masq; without it, only the chains a
 * previous run recorded in the state file are removed.
 */
#ifndef TWILL_DAEMON_IP6TABLES_H
#define TWILL_DAEMON_IP6TABLES_H

#include <stdbool.h>

#include "ipam/ipam.h"

struct ev_loop;
struct ip6t;
struct twilld_metrics;

struct ip6t_opts {
	bool enable_ipv6;          /* the network config's EnableIPv6 */
	bool forward_rules;        /* --iptables-forward-rules */
	bool masq;                 /* --ip-masq */
	unsigned resync_s;         /* --iptables-resync */
	const char *subnet_file;   /* the state file goes next to it */
	const char *path;          /* directories for ip6tables-save/-restore; NULL: $PATH... */
	struct twilld_metrics *tm; /* repairs are counted here; may be NULL */
};

/*
 * Set up (and, without EnableIPv6, start removing recorded chains). 0 with
 * *ret set (NULL when ip6tables cannot be used but nothing needs it to), or
 * -errno when --ip-masq with EnableIPv6 cannot work: a fatal error, already
 * logged ("--ip-masq with EnableIPv6 needs ip6tables-save and
 * ip6tables-restore: install the iptables package").
 */
int ip6t_start(struct ev_loop *loop, const struct ip6t_opts *o, struct ip6t **ret);

/* The IPv6 network of the config and this node's IPv6 subnet; syncs now. NULL-safe on @t. */
int ip6t_set_lease(struct ip6t *t, const struct ipam_prefix *network,
                   const struct ipam_prefix *subnet);

/* Stop syncing; the rules stay in place. NULL-safe. */
void ip6t_free(struct ip6t *t);

#endif
