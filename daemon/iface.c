#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/rtnetlink.h>

#include "daemon/iface.h"
#include "lib/log.h"
#include "lib/nl.h"

struct snap_link {
	int ifindex;
	int mtu;
	char name[IF_NAMESIZE];
};

struct snap_addr {
	int ifindex;
	struct in_addr addr;
};

/* One consistent look at the namespace: links and their IPv4 addresses, in dump order. */
struct snap {
	struct snap_link *links;
	size_t n_links, cap_links;
	struct snap_addr *addrs;
	size_t n_addrs, cap_addrs;
	struct nl_sock *sk;
};

/* A growing "tried" list for the final error. */
struct tried {
	char *buf;
	size_t len, used;
};

__attribute__((format(printf, 2, 3))) static void tried_add(struct tried *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->used >= t->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->used, t->len - t->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->used += (size_t)n;
	if (t->used >= t->len)
		t->used = t->len;
}

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	void *nv;

	if (n < *cap)
		return 0;
	nv = realloc(*v, (*cap ? *cap * 2 : 16) * size);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = *cap ? *cap * 2 : 16;
	return 0;
}

static int link_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct snap *s = ctx;
	struct nl_link l;
	void *v = s->links;

	if (nl_parse_link(nlh, &l) < 0)
		return 0;
	if (grow(&v, &s->cap_links, s->n_links, sizeof(*s->links)) < 0)
		return -ENOMEM;
	s->links = v;
	s->links[s->n_links].ifindex = l.ifindex;
	s->links[s->n_links].mtu = l.mtu;
	memcpy(s->links[s->n_links].name, l.name, sizeof(l.name));
	s->links[s->n_links].name[IF_NAMESIZE - 1] = '\0';
	s->n_links++;
	return 0;
}

static int addr_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct snap *s = ctx;
	struct nl_addr a;
	void *v = s->addrs;

	if (nl_parse_addr(nlh, &a) < 0)
		return 0;
	if (grow(&v, &s->cap_addrs, s->n_addrs, sizeof(*s->addrs)) < 0)
		return -ENOMEM;
	s->addrs = v;
	s->addrs[s->n_addrs].ifindex = a.ifindex;
	s->addrs[s->n_addrs].addr = a.local;
	s->n_addrs++;
	return 0;
}

static void snap_clear(struct snap *s)
{
	free(s->links);
	free(s->addrs);
	nl_sock_close(s->sk);
	memset(s, 0, sizeof(*s));
}

static int snap_take(struct snap *s, char *err, size_t errlen)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->sk = nl_sock_open(NULL, 0);
	if (!s->sk) {
		r = -errno;
		snprintf(err, errlen, "netlink socket: %s", strerror(-r));
		return r;
	}
	r = nl_dump(s->sk, RTM_GETLINK, AF_UNSPEC, link_cb, s);
	if (r == 0)
		r = nl_dump(s->sk, RTM_GETADDR, AF_INET, addr_cb, s);
	if (r < 0) {
		snprintf(err, errlen, "listing interfaces: %s", strerror(-r));
		snap_clear(s);
	}
	return r;
}

static const struct snap_link *link_by_index(const struct snap *s, int ifindex)
{
	for (size_t i = 0; i < s->n_links; i++)
		if (s->links[i].ifindex == ifindex)
			return &s->links[i];
	return NULL;
}

static const struct snap_link *link_by_name(const struct snap *s, const char *name)
{
	for (size_t i = 0; i < s->n_links; i++)
		if (strcmp(s->links[i].name, name) == 0)
			return &s->links[i];
	return NULL;
}

/* Go's IP.IsGlobalUnicast for IPv4 (private ranges included). */
static bool is_global_unicast(struct in_addr a)
{
	uint32_t h = ntohl(a.s_addr);

	return h != 0 && h != 0xffffffffu && (h >> 24) != 127 && (h >> 28) != 0xe &&
	       (h >> 16) != 0xa9fe;
}

static bool is_link_local(struct in_addr a)
{
	return (ntohl(a.s_addr) >> 16) == 0xa9fe;
}

/*
 * The addresses flannel's GetInterfaceIP4Addrs returns, in its order: global
 * unicast first, then link-local. @idx-th of them in *@ret; false past the end.
 */
static bool usable_addr(const struct snap *s, int ifindex, size_t idx, struct in_addr *ret)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < s->n_addrs; i++) {
			struct in_addr a = s->addrs[i].addr;

			if (s->addrs[i].ifindex != ifindex)
				continue;
			if (pass == 0 ? !is_global_unicast(a) : !is_link_local(a))
				continue;
			if (idx-- == 0) {
				*ret = a;
				return true;
			}
		}
	}
	return false;
}

static void to_ipam(struct in_addr a, struct ipam_addr *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->family = AF_INET;
	memcpy(ret->bytes, &a, 4);
}

/* "lo (no IPv4), eth0 (192.0.2.1)" */
static void list_ifaces(const struct snap *s, struct tried *t)
{
	for (size_t i = 0; i < s->n_links; i++) {
		struct in_addr a;
		char buf[INET_ADDRSTRLEN];

		if (usable_addr(s, s->links[i].ifindex, 0, &a))
			inet_ntop(AF_INET, &a, buf, sizeof(buf));
		else
			snprintf(buf, sizeof(buf), "no IPv4");
		tried_add(t, "%s%s (%s)", i ? ", " : "", s->links[i].name, buf);
	}
}

/* flannel's GetInterfaceByIP: the link one of whose usable addresses is @a. */
static const struct snap_link *link_by_addr(const struct snap *s, struct in_addr a)
{
	for (size_t i = 0; i < s->n_links; i++) {
		struct in_addr x;

		for (size_t k = 0; usable_addr(s, s->links[i].ifindex, k, &x); k++)
			if (x.s_addr == a.s_addr)
				return &s->links[i];
	}
	return NULL;
}

/* flannel: each regex against every interface's addresses, then against the names. */
static const struct snap_link *match_regex(const struct snap *s, const regex_t *re,
                                           struct in_addr *ret_addr, bool *ret_has_addr)
{
	for (size_t i = 0; i < s->n_links; i++) {
		struct in_addr a;
		char buf[INET_ADDRSTRLEN];

		for (size_t k = 0; usable_addr(s, s->links[i].ifindex, k, &a); k++) {
			inet_ntop(AF_INET, &a, buf, sizeof(buf));
			if (regexec(re, buf, 0, NULL, 0) == 0) {
				*ret_addr = a;
				*ret_has_addr = true;
				return &s->links[i];
			}
		}
	}
	for (size_t i = 0; i < s->n_links; i++)
		if (regexec(re, s->links[i].name, 0, NULL, 0) == 0)
			return &s->links[i];
	return NULL;
}

struct default_route {
	int oif;
	uint32_t priority;
	bool found;
	bool no_oif;
};

static int default_route_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct default_route *d = ctx;
	struct nl_route r;

	if (nl_parse_route(nlh, &r) < 0)
		return 0;
	if (r.table != RT_TABLE_MAIN || r.dst_len != 0 || r.type != RTN_UNICAST)
		return 0;
	if (r.oif <= 0) {
		d->no_oif = true;
		return 0;
	}
	if (!d->found || r.priority < d->priority) {
		d->oif = r.oif;
		d->priority = r.priority;
		d->found = true;
	}
	return 0;
}

struct route_get {
	int oif;
	bool has_src;
	struct in_addr src;
	int err;
	char extack[NL_ERRMSG_MAX];
	bool replied;
};

static void route_get_err(void *ctx, void *cookie, int err, const char *extack)
{
	struct route_get *g = ctx;

	(void)cookie;
	g->err = err;
	snprintf(g->extack, sizeof(g->extack), "%s", extack ? extack : "");
}

static void route_get_reply(void *ctx, void *cookie, const struct nlmsghdr *nlh)
{
	struct route_get *g = ctx;
	const uint8_t *p = (const uint8_t *)nlh;
	size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct rtmsg));
	struct nl_route r;

	(void)cookie;
	if (nlh->nlmsg_type != RTM_NEWROUTE || nl_parse_route(nlh, &r) < 0)
		return;
	g->replied = true;
	g->oif = r.oif;
	/* RTA_PREFSRC is the one attribute nl_parse_route() leaves out */
	while (off + sizeof(struct rtattr) <= nlh->nlmsg_len) {
		struct rtattr rta;

		memcpy(&rta, p + off, sizeof(rta));
		if (rta.rta_len < sizeof(rta) || off + rta.rta_len > nlh->nlmsg_len)
			break;
		if (rta.rta_type == RTA_PREFSRC && rta.rta_len == RTA_LENGTH(4)) {
			memcpy(&g->src, p + off + RTA_LENGTH(0), 4);
			g->has_src = true;
		}
		off += RTA_ALIGN(rta.rta_len);
	}
}

static int route_get(struct nl_sock *sk, struct in_addr dst, struct route_get *g)
{
	struct nl_batch *b = nl_batch_new(sk, route_get_err, route_get_reply, g);
	int r;

	if (!b)
		return -errno;
	memset(g, 0, sizeof(*g));
	r = nl_batch_getroute(b, dst, NULL);
	if (r == 0)
		r = nl_batch_commit(b);
	nl_batch_free(b);
	if (r < 0)
		return r;
	if (g->err < 0)
		return g->err;
	return g->replied && g->oif > 0 ? 0 : -ENETUNREACH;
}

static int fill(const struct snap *s, const struct snap_link *l, const struct in_addr *addr,
                const struct iface_sel *sel, struct be_extif *ret, char *err, size_t errlen)
{
	struct in_addr a;

	if (addr) {
		a = *addr;
	} else if (!usable_addr(s, l->ifindex, 0, &a)) {
		snprintf(err, errlen, "interface %s has no IPv4 address", l->name);
		return -EADDRNOTAVAIL;
	}
	if (l->mtu <= 0) {
		snprintf(err, errlen, "failed to determine MTU for interface %s", l->name);
		return -EINVAL;
	}
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->name, sizeof(ret->name), "%s", l->name);
	ret->ifindex = l->ifindex;
	ret->mtu = l->mtu;
	to_ipam(a, &ret->iface_addr);
	ret->public_ip = sel->public_ip ? *sel->public_ip : ret->iface_addr;
	return 0;
}

static int choose_default(const struct snap *s, const struct iface_sel *sel, struct be_extif *ret,
                          char *err, size_t errlen)
{
	struct default_route d = { 0 };
	const struct snap_link *l;
	int r;

	if (sel->public_ip && sel->public_ip->family == AF_INET) {
		struct in_addr a;

		memcpy(&a, sel->public_ip->bytes, 4);
		l = link_by_addr(s, a);
		if (l) {
			log_debug("interface %s holds the public IP", l->name);
			return fill(s, l, &a, sel, ret, err, errlen);
		}
		/* flannel fails here; twill takes the default route (the public IP is a NAT address) */
		log_debug("no interface holds the public IP: using the default route's");
	}
	r = nl_dump(s->sk, RTM_GETROUTE, AF_INET, default_route_cb, &d);
	if (r < 0) {
		snprintf(err, errlen, "failed to get default interface: listing routes: %s",
		         strerror(-r));
		return r;
	}
	if (!d.found) {
		snprintf(
			err, errlen,
			d.no_oif
				? "failed to get default interface: found a default route but could not determine its interface; use --iface"
				: "failed to get default interface: no IPv4 default route; use --iface, --iface-regex or --iface-can-reach");
		return -ENODEV;
	}
	l = link_by_index(s, d.oif);
	if (!l) {
		snprintf(err, errlen, "failed to get default interface: no interface with index %d",
		         d.oif);
		return -ENODEV;
	}
	return fill(s, l, NULL, sel, ret, err, errlen);
}

/* A search step found nothing (and said so in the tried list): go on with the next. */
#define NO_MATCH 1

/* The chosen interface and where results go, for the search steps below. */
struct choice {
	const struct snap *s;
	const struct iface_sel *sel;
	struct tried *t;
	struct be_extif *ret;
	char *err;
	size_t errlen;
};

/* --iface: names or addresses, first match wins. */
static int by_iface(struct choice *c)
{
	struct tried *t = c->t;

	for (size_t i = 0; i < c->sel->n_ifaces; i++) {
		const char *spec = c->sel->ifaces[i];
		const struct snap_link *l;
		struct in_addr a;

		if (inet_pton(AF_INET, spec, &a) == 1) {
			l = link_by_addr(c->s, a);
			if (l)
				return fill(c->s, l, &a, c->sel, c->ret, c->err, c->errlen);
			tried_add(t, "%s--iface %s: no interface has this address",
			          t->used ? "; " : "", spec);
			continue;
		}
		l = link_by_name(c->s, spec);
		if (!l) {
			tried_add(t, "%s--iface %s: no such interface", t->used ? "; " : "", spec);
			continue;
		}
		if (!usable_addr(c->s, l->ifindex, 0, &a)) {
			tried_add(t, "%s--iface %s: no IPv4 address", t->used ? "; " : "", spec);
			continue;
		}
		return fill(c->s, l, &a, c->sel, c->ret, c->err, c->errlen);
	}
	return NO_MATCH;
}

/* --iface-regex, compiled in @res. */
static int by_regex(struct choice *c, const regex_t *res, size_t n_res)
{
	struct tried *t = c->t;

	for (size_t i = 0; i < n_res; i++) {
		struct in_addr a;
		bool has_addr = false;
		const struct snap_link *l = match_regex(c->s, &res[i], &a, &has_addr);

		if (l && (has_addr || usable_addr(c->s, l->ifindex, 0, &a)))
			return fill(c->s, l, &a, c->sel, c->ret, c->err, c->errlen);
		if (l)
			tried_add(t, "%s--iface-regex %s: matches %s, which has no IPv4 address",
			          t->used ? "; " : "", c->sel->regexes[i], l->name);
		else
			tried_add(t, "%s--iface-regex %s: matches no interface",
			          t->used ? "; " : "", c->sel->regexes[i]);
	}
	return NO_MATCH;
}

/* --iface-can-reach: the interface of the route to it. */
static int by_route(struct choice *c)
{
	const char *dst_s = c->sel->can_reach;
	struct tried *t = c->t;
	const struct snap_link *l;
	struct route_get g = { 0 };
	struct in_addr dst;
	int r;

	if (!dst_s || !*dst_s)
		return NO_MATCH;
	if (inet_pton(AF_INET, dst_s, &dst) != 1) {
		tried_add(t, "%s--iface-can-reach %s: not an IPv4 address", t->used ? "; " : "",
		          dst_s);
		return NO_MATCH;
	}
	r = route_get(c->s->sk, dst, &g);
	if (r < 0) {
		tried_add(t, "%s--iface-can-reach %s: %s%s%s", t->used ? "; " : "", dst_s,
		          strerror(-r), g.extack[0] ? ": " : "", g.extack);
		return NO_MATCH;
	}
	l = link_by_index(c->s, g.oif);
	if (l)
		return fill(c->s, l, g.has_src ? &g.src : NULL, c->sel, c->ret, c->err, c->errlen);
	tried_add(t, "%s--iface-can-reach %s: route via unknown interface index %d",
	          t->used ? "; " : "", dst_s, g.oif);
	return NO_MATCH;
}

/* The regexes compiled into *@ret_res (the caller regfree()s *@ret_n of them and frees). */
static int compile_regexes(const struct iface_sel *sel, regex_t **ret_res, size_t *ret_n, char *err,
                           size_t errlen)
{
	regex_t *res;
	int r;

	*ret_res = NULL;
	*ret_n = 0;
	if (!sel->n_regexes)
		return 0;
	res = calloc(sel->n_regexes, sizeof(*res));
	if (!res)
		return -ENOMEM;
	*ret_res = res;
	for (size_t i = 0; i < sel->n_regexes; i++) {
		r = iface_regex_compile(sel->regexes[i], &res[i], err, errlen);
		if (r < 0)
			return r;
		(*ret_n)++;
	}
	return 0;
}

int iface_choose(const struct iface_sel *sel, struct be_extif *ret, char *err, size_t errlen)
{
	struct snap s;
	regex_t *res = NULL;
	size_t n_res = 0;
	char tbuf[IFACE_ERR_MAX];
	struct tried t = { tbuf, sizeof(tbuf), 0 };
	struct choice c = { &s, sel, &t, ret, err, errlen };
	int r;

	tbuf[0] = '\0';
	if (errlen)
		err[0] = '\0';
	r = compile_regexes(sel, &res, &n_res, err, errlen);
	if (r < 0)
		goto out;
	r = snap_take(&s, err, errlen);
	if (r < 0)
		goto out;
	if (sel->n_ifaces == 0 && sel->n_regexes == 0 && !(sel->can_reach && *sel->can_reach)) {
		r = choose_default(&s, sel, ret, err, errlen);
		goto out_snap;
	}
	r = by_iface(&c);
	if (r == NO_MATCH)
		r = by_regex(&c, res, n_res);
	if (r == NO_MATCH)
		r = by_route(&c);
	if (r != NO_MATCH)
		goto out_snap;
	tried_add(&t, "; interfaces: ");
	list_ifaces(&s, &t);
	snprintf(err, errlen,
	         "no interface matches the given --iface/--iface-regex/--iface-can-reach (%s)",
	         tbuf);
	r = -ENODEV;
out_snap:
	snap_clear(&s);
out:
	for (size_t i = 0; i < n_res; i++)
		regfree(&res[i]);
	free(res);
	return r;
}

/* Go's IP.IsGlobalUnicast for IPv6: not unspecified, loopback, multicast or link-local. */
static bool is_global6(const struct in6_addr *a)
{
	return !IN6_IS_ADDR_UNSPECIFIED(a) && !IN6_IS_ADDR_LOOPBACK(a) &&
	       !IN6_IS_ADDR_MULTICAST(a) && !IN6_IS_ADDR_LINKLOCAL(a);
}

int iface_ipv6_addr(int ifindex, struct ipam_addr *ret)
{
	struct nl_addr addrs[64];
	struct nl_sock *sk = nl_sock_open(NULL, 0);
	bool tentative = false;
	int n;

	if (!sk)
		return -errno;
	n = nl_addr_list_af(sk, AF_INET6, ifindex, addrs, sizeof(addrs) / sizeof(addrs[0]));
	nl_sock_close(sk);
	if (n < 0)
		return n;
	/* The kernel lists an interface's addresses newest first; flannel takes the first. */
	for (int i = 0; i < n; i++) {
		if (!is_global6(&addrs[i].local6))
			continue;
		/* Tunnels cannot bind a tentative address yet: wait for DAD. */
		if (addrs[i].flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) {
			tentative = true;
			continue;
		}
		memset(ret, 0, sizeof(*ret));
		ret->family = AF_INET6;
		memcpy(ret->bytes, &addrs[i].local6, 16);
		return 0;
	}
	return tentative ? -EAGAIN : -EADDRNOTAVAIL;
}
