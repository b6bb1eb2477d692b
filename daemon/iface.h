/*
 * The choice of the external (underlay) interface, as flanneld makes it
 * (COMPAT.md §9, flannel's ipmatch.LookupExtIface): --iface (name or IPv4
 * address, first match wins), then --iface-regex (each regex against every
 * interface's IPv4 addresses, then against the names), then --iface-can-reach
 * (the interface `ip route get ADDR` names); with none of them, the interface
 * holding --public-ip, else the interface of the IPv4 default route.
 */
#ifndef TWILL_DAEMON_IFACE_H
#define TWILL_DAEMON_IFACE_H

#include <stddef.h>

#include "backends/backend.h"
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

/* Limits on an --iface-regex (see iface_regex_translate). */
#define IFACE_REGEX_MAX_LEN    1024  /* bytes */
#define IFACE_REGEX_MAX_REPEAT 1000  /* a repeat count, and nested counts multiplied (RE2's) */
#define IFACE_REGEX_MAX_STATES 10000 /* the estimated size of the compiled expression */

/*
 * Translate a Go (RE2) regular expression into POSIX ERE for regcomp(): \d \w \s
 * and their negations become bracket expressions, "(?:" becomes "(", a leading
 * "(?i)" sets *@ret_icase, a '{' RE2 reads as a literal becomes "\{". Rejects
 * what RE2 rejects here (counts above IFACE_REGEX_MAX_REPEAT, stacked
 * repetition operators such as "a**" or "a{2}{3}", a repetition without an
 * argument, unbalanced parentheses, backreferences), what ERE cannot express,
 * patterns longer than IFACE_REGEX_MAX_LEN, and those whose compiled form
 * (glibc copies every repetition) is estimated above IFACE_REGEX_MAX_STATES.
 * 0, or -EINVAL (also when @len is too small), -ENOMEM.
 */
int iface_regex_translate(const char *re2, char *buf, size_t len, int *ret_icase);

/*
 * Check an --iface-regex as iface_choose() will use it (translation, limits,
 * regcomp), without compiling anything large. 0, or -EINVAL with
 * "--iface-regex \"RE\": PROBLEM" in @err (IFACE_ERR_MAX is enough), -ENOMEM.
 */
int iface_regex_check(const char *re2, char *err, size_t errlen);

#endif
