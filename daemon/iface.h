/*
 * The choice of the external (underlay) interface, as flanneld makes it
 * (docs/compat.md §9, flannel's ipmatch.LookupExtIface): --iface (name or IPv4
 * address, first match wins), then --iface-regex (each regex against every
 * interface's IPv4 addresses, then against the names), then --iface-can-reach
 * (the interface `ip route get ADDR` names); with none of them, the interface
 * holding --public-ip, else the interface of the IPv4 default route.
 */
#ifndef TWILL_DAEMON_IFACE_H
#define TWILL_DAEMON_IFACE_H

#include <stddef.h>

#include "backends/backend.h"
#include "daemon/iface_regex.h" /* the --iface-regex checks and limits */
#include "ipam/ipam.h"

#define IFACE_ERR_MAX 1024

struct iface_sel {
	char *const *ifaces; /* --iface values, in order */
	size_t n_ifaces;
	char *const *regexes; /* --iface-regex values (Go RE2 syntax, common subset) */
	size_t n_regexes;
	const char *can_reach;             /* --iface-can-reach, or NULL */
	const struct ipam_addr *public_ip; /* --public-ip, or NULL */
};

/*
 * Choose the interface in the current network namespace and fill @ret (name,
 * ifindex, mtu, iface_addr = its first global IPv4 address (link-local as a
 * fallback) or the matched/route source address, public_ip = --public-ip or
 * iface_addr). 0, or -ENODEV (nothing matched), -EINVAL (bad regex) or another
 * -errno with a reason naming everything that was tried in @err
 * (IFACE_ERR_MAX bytes is enough). Logs at debug only.
 */
int iface_choose(const struct iface_sel *sel, struct be_extif *ret, char *err, size_t errlen);

/*
 * The first global IPv6 address of interface @ifindex (flannel's choice of PublicIPv6
 * without --public-ipv6; link-local, tentative and DAD-failed addresses are skipped).
 * 0, -EADDRNOTAVAIL (none), -EAGAIN (only tentative ones: DAD still running) or -errno.
 * Does not log.
 */
int iface_ipv6_addr(int ifindex, struct ipam_addr *ret);

#endif
