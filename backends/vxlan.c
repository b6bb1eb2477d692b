/*
 * The vxlan backend (docs/compat.md §4): device flannel.<VNI>, and per remote lease a
 * neighbour, an fdb entry and a route (or a direct route with DirectRouting),
 * programmed through the shared route set.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/rtnetlink.h>

#include "backends/backends.h"
#include "backends/routeset.h"
#include "backends/vxlan.h"
#include "lib/errfmt.h"
#include "lib/log.h"
#include "lib/nl.h"

#define VXLAN_OVERHEAD  50 /* IPv4 underlay: outer IPv4 20 + UDP 8 + VXLAN 8 + Ethernet 14 */
#define VXLAN6_OVERHEAD 70 /* IPv6 underlay: the outer header is 40 bytes instead of 20 */
#define VXLAN_NH_BASE   0x40000000u /* + (VNI % 63) * RS_NH_RANGE; IPv6: 0x80000000u + ... */
#define VXLAN6_NH_BASE  0x80000000u

/* One VXLAN device with its route set: flannel.<VNI> (IPv4) or flannel-v6.<VNI> (IPv6). */
struct vx_dev {
	uint8_t family; /* AF_INET or AF_INET6: of the underlay and of the overlay routes */
	char ifname[IF_NAMESIZE];
	char logname[48];
	struct nl_sock *sk;
	struct nl_vxlan spec;
	uint8_t mac[6];
	int mtu;
	int ifindex;
	bool started;
	struct ipam_prefix own_subnet;
	struct nl_addr own; /* <own subnet network address>/32 or /128 */
	struct routeset *rs;
	struct backend *be;
	struct be_v6warn warn; /* IPv6 device: remote leases whose IPv6 half is unusable */
	/*
	 * While init or start runs: the caller's buffer, where a failure goes instead of the
	 * log (backend_ops). NULL otherwise: repairs log their failures themselves.
	 */
	char *err;
	size_t errlen;
};

struct backend {
	struct vx_dev v4;
	struct vx_dev *v6; /* EnableIPv6 with an IPv6 underlay, else NULL */
	struct vxlan_options o;
	bool direct_v6;
};

static int opt_uint(const struct subnet_config *cfg, const char *key, long long min, long long max,
                    long long def, long long *ret, char *err, size_t errlen)
{
	json_t *v = subnet_config_backend_opt(cfg, key);

	if (!v || json_is_null(v)) {
		*ret = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		errfmt(err, errlen, "vxlan: Backend.%s must be an integer in %lld..%lld", key, min,
		       max);
		return -EINVAL;
	}
	*ret = json_integer_value(v);
	return 0;
}

static int opt_bool(const struct subnet_config *cfg, const char *key, bool *ret, char *err,
                    size_t errlen)
{
	json_t *v = subnet_config_backend_opt(cfg, key);

	if (!v || json_is_null(v)) {
		*ret = false;
		return 0;
	}
	if (!json_is_boolean(v)) {
		errfmt(err, errlen, "vxlan: Backend.%s must be true or false", key);
		return -EINVAL;
	}
	*ret = json_is_true(v);
	return 0;
}

int vxlan_parse_options(const struct subnet_config *cfg, int ext_mtu, struct vxlan_options *ret,
                        char *err, size_t errlen)
{
	long long vni, port, mtu;
	struct vxlan_options o = { 0 };

	if (opt_uint(cfg, "VNI", 0, (1 << 24) - 1, 1, &vni, err, errlen) < 0 ||
	    opt_uint(cfg, "Port", 0, 65535, 8472, &port, err, errlen) < 0 ||
	    opt_uint(cfg, "MTU", 0, 65535, 0, &mtu, err, errlen) < 0 ||
	    opt_bool(cfg, "GBP", &o.gbp, err, errlen) < 0 ||
	    opt_bool(cfg, "Learning", &o.learning, err, errlen) < 0 ||
	    opt_bool(cfg, "DirectRouting", &o.direct_routing, err, errlen) < 0)
		return -EINVAL;
	o.vni = (uint32_t)vni;
	o.port = port ? (uint16_t)port : 8472; /* flannel: 0 means the default */
	/*
	 * Dual-stack: both devices get the MTU of the IPv6 one (underlay - 70), so that one
	 * FLANNEL_MTU fits both families (docs/compat.md, "Dual-stack").
	 */
	o.mtu = mtu ? (int)mtu : ext_mtu - (cfg->enable_ipv6 ? VXLAN6_OVERHEAD : VXLAN_OVERHEAD);
	if (o.mtu < 68) {
		errfmt(err, errlen,
		       "vxlan: device MTU %d is too small (underlay MTU %d): set Backend.MTU to "
		       "68 or more",
		       o.mtu, ext_mtu);
		return -EINVAL;
	}
	if (cfg->enable_ipv6 && o.mtu < 1280) {
		errfmt(err, errlen,
		       "vxlan: device MTU %d is below IPv6's minimum of 1280 (underlay MTU %d)",
		       o.mtu, ext_mtu);
		return -EINVAL;
	}
	*ret = o;
	return 0;
}

static bool compatible(const struct nl_link *l, const struct nl_vxlan *want)
{
	bool v6 = want->family == AF_INET6;
	uint8_t fam = l->vxlan.family ? l->vxlan.family : AF_INET;

	return l->is_vxlan && l->vxlan.vni == want->vni && fam == (v6 ? AF_INET6 : AF_INET) &&
	       (v6 ? !memcmp(&l->vxlan.local6, &want->local6, 16)
	           : l->vxlan.local.s_addr == want->local.s_addr) &&
	       l->vxlan.port == want->port && l->vxlan.link == want->link &&
	       l->vxlan.gbp == want->gbp;
}

/* @what failed with @err (the kernel's text added): into the caller's buffer during init or
 * start, else (a repair) into the log. */
static void log_nl(struct vx_dev *d, const char *what, int err)
{
	const char *m = nl_sock_errmsg(d->sk);

	if (d->err)
		errfmt(d->err, d->errlen, "%s: %s: %s%s%s", d->logname, what, strerror(-err),
		       *m ? ": " : "", m);
	else
		log_error("%s: %s: %s%s%s", d->logname, what, strerror(-err), *m ? ": " : "", m);
}

struct vni_scan {
	const struct vx_dev *d;
	char name[IF_NAMESIZE]; /* the first other VXLAN device with our VNI and port */
};

static int vni_scan_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct vni_scan *sc = ctx;
	struct nl_link l;

	if (!sc->name[0] && nl_parse_link(nlh, &l) == 0 && l.is_vxlan &&
	    l.vxlan.vni == sc->d->spec.vni && l.vxlan.port == sc->d->spec.port &&
	    strcmp(l.name, sc->d->ifname) != 0)
		snprintf(sc->name, sizeof(sc->name), "%s", l.name);
	return 0;
}

/*
 * Creating the device during init or start failed with EEXIST although no device has its
 * name: another VXLAN device holds the VNI on the same UDP port. Say which, and what to do.
 */
static void explain_vni_taken(struct vx_dev *d, int err, const char *m)
{
	char who[IF_NAMESIZE + 8];
	struct vni_scan sc = { .d = d };

	nl_dump(d->sk, RTM_GETLINK, AF_UNSPEC, vni_scan_cb, &sc);
	if (sc.name[0])
		snprintf(who, sizeof(who), "device %s", sc.name);
	else
		snprintf(who, sizeof(who), "another device");
	errfmt(d->err, d->errlen,
	       "%s: creating the device failed: %s%s%s: %s has VNI %u on UDP port %u already; "
	       "delete it or set another Backend.VNI",
	       d->logname, strerror(-err), *m ? ": " : "", m, who, d->spec.vni, d->spec.port);
}

/* Create the device, or keep a compatible one (adopting its MAC), or recreate it. */
static int ensure_link(struct vx_dev *d, bool adopt_mac, struct nl_link *ret)
{
	char a[INET6_ADDRSTRLEN];
	struct nl_link l;
	int r;

	r = nl_link_get(d->sk, d->ifname, 0, &l);
	if (r == 0 && !compatible(&l, &d->spec)) {
		inet_ntop(l.vxlan.family == AF_INET6 ? AF_INET6 : AF_INET, &l.vxlan.local6, a,
		          sizeof(a));
		log_info(
			"%s: existing device is incompatible (vni %u, local %s, port %u), recreating",
			d->logname, l.vxlan.vni, a, l.vxlan.port);
		r = nl_link_del(d->sk, l.ifindex);
		if (r < 0 && r != -ENODEV) {
			log_nl(d, "deleting the incompatible device failed", r);
			return r;
		}
		r = -ENODEV;
	}
	if (r == -ENODEV) {
		r = nl_link_vxlan_create(d->sk, d->ifname, &d->spec, d->mac, d->mtu);
		if (r == -EEXIST && d->err) {
			char m[128];

			/* the kernel's text, before the next request clears it */
			snprintf(m, sizeof(m), "%s", nl_sock_errmsg(d->sk));
			if (nl_link_get(d->sk, d->ifname, 0, &l) == -ENODEV) {
				explain_vni_taken(d, r, m);
				return r;
			}
		}
		if (r == -EEXIST)
			return -EAGAIN; /* raced with someone: the next repair looks again */
		if (r < 0) {
			log_nl(d, "creating the device failed", r);
			return r;
		}
		r = nl_link_get(d->sk, d->ifname, 0, &l);
	}
	if (r < 0) {
		log_nl(d, "reading the device failed", r);
		return r;
	}
	if (adopt_mac && l.has_mac)
		memcpy(d->mac, l.mac, 6);
	d->ifindex = l.ifindex;
	*ret = l;
	return 0;
}

static bool own_addr(const struct vx_dev *d, const struct nl_addr *a)
{
	unsigned bits = d->family == AF_INET6 ? 128 : 32;

	return a->prefixlen == bits && !memcmp(&a->local6, &d->own.local6, bits / 8);
}

/* The route set's device callback: the link, its MTU, up, and exactly our address. */
static int ensure_dev(void *ctx)
{
	struct vx_dev *d = ctx;
	struct nl_addr addrs[16];
	struct nl_link l;
	bool have = false;
	int r, n;

	r = ensure_link(d, false, &l);
	if (r < 0)
		return r;
	if (!d->started)
		return l.ifindex;
	if (l.mtu != d->mtu || !(l.flags & IFF_UP)) {
		r = nl_link_set_up(d->sk, l.ifindex, d->mtu);
		if (r < 0) {
			char what[64];

			snprintf(what, sizeof(what),
			         "setting MTU %d and bringing the device up failed", d->mtu);
			log_nl(d, what, r);
			return r;
		}
	}
	n = nl_addr_list_af(d->sk, d->family, l.ifindex, addrs, sizeof(addrs) / sizeof(addrs[0]));
	if (n < 0) {
		log_nl(d, "listing addresses failed", n);
		return n;
	}
	d->own.ifindex = l.ifindex;
	for (int i = 0; i < n; i++) {
		if (own_addr(d, &addrs[i])) {
			have = true;
			continue;
		}
		if (addrs[i].scope == RT_SCOPE_LINK)
			continue; /* the kernel's IPv6 link-local address stays */
		/* flannel keeps only the lease's address on the device. */
		r = nl_addr_set(d->sk, NL_OP_DELETE, &addrs[i]);
		if (r < 0 && r != -EADDRNOTAVAIL)
			log_warnx("%s: removing an old address failed: %s%s%s", d->logname,
			          strerror(-r), *nl_sock_errmsg(d->sk) ? ": " : "",
			          nl_sock_errmsg(d->sk)); /* not fatal: never the start's reason */
	}
	if (!have) {
		r = nl_addr_set(d->sk, NL_OP_REPLACE, &d->own);
		if (r < 0) {
			log_nl(d, "adding the address failed", r);
			return r;
		}
	}
	return l.ifindex;
}

static void random_mac(uint8_t mac[6])
{
	if (getrandom(mac, 6, 0) != 6) {
		for (int i = 0; i < 6; i++)
			mac[i] = (uint8_t)random();
	}
	mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02); /* unicast, locally administered */
}

static void dev_free(struct vx_dev *d)
{
	if (!d)
		return;
	routeset_free(d->rs);
	nl_sock_close(d->sk);
	be_v6warn_clear(&d->warn);
	d->rs = NULL;
	d->sk = NULL;
}

/*
 * Set up @d for @family: spec, MAC (adopted from a compatible existing device), route
 * set. 0 or -errno with the reason in d->err.
 */
static int dev_init(struct backend *be, struct vx_dev *d, uint8_t family, struct ev_loop *loop,
                    const struct subnet_config *cfg, const struct be_extif *ext,
                    const struct be_settings *set)
{
	bool v6 = family == AF_INET6;
	struct rs_params rp;
	struct nl_link l;
	int r;

	d->family = family;
	d->be = be;
	snprintf(d->ifname, sizeof(d->ifname), v6 ? "flannel-v6.%u" : "flannel.%u", be->o.vni);
	snprintf(d->logname, sizeof(d->logname), "vxlan %s", d->ifname);
	d->spec.vni = be->o.vni;
	d->spec.family = family;
	if (v6)
		memcpy(&d->spec.local6, ext->iface_addr6.bytes, 16);
	else
		memcpy(&d->spec.local, ext->iface_addr.bytes, 4);
	d->spec.link = ext->ifindex;
	d->spec.port = be->o.port;
	d->spec.learning = be->o.learning;
	d->spec.gbp = be->o.gbp;
	d->mtu = be->o.mtu;
	d->own.family = family;
	random_mac(d->mac);
	d->sk = nl_sock_open(NULL, 0);
	if (!d->sk) {
		r = -errno;
		errfmt(d->err, d->errlen, "%s: netlink socket: %s", d->logname, strerror(-r));
		return r;
	}
	r = ensure_link(d, true, &l);
	if (r == -EAGAIN)
		errfmt(d->err, d->errlen,
		       "%s: the device appeared while it was being created: trying again",
		       d->logname);
	if (r < 0)
		return r;
	rp = (struct rs_params){ .name = d->logname,
		                 .family = family,
		                 .loop = loop,
		                 .ext_ifindex = ext->ifindex,
		                 .network = v6 ? cfg->ipv6_network : cfg->network,
		                 .nh_base = (v6 ? VXLAN6_NH_BASE : VXLAN_NH_BASE) +
		                            (be->o.vni % 63) * RS_NH_RANGE,
		                 .nexthops = !(set && set->no_nexthops),
		                 .direct_routing = be->o.direct_routing,
		                 .ensure_dev = ensure_dev,
		                 .ctx = d,
		                 .share = v6 ? be->v4.rs : NULL };
	d->rs = routeset_new(&rp);
	if (!d->rs) {
		r = -errno;
		errfmt(d->err, d->errlen, "%s: cannot set up its routes: %s", d->logname,
		       strerror(-r));
		return r;
	}
	log_info("%s: device ready (VtepMAC %02x:%02x:%02x:%02x:%02x:%02x, port %u, MTU %d, %s)",
	         d->logname, d->mac[0], d->mac[1], d->mac[2], d->mac[3], d->mac[4], d->mac[5],
	         be->o.port, d->mtu,
	         routeset_uses_nexthops(d->rs) ? "nexthop objects" : "plain routes");
	return 0;
}

static void vxlan_stop(struct backend *be);

/* dev_init with its failure's reason in @err (the caller's buffer, non-NULL) instead of the log. */
static int dev_init_err(struct backend *be, struct vx_dev *d, uint8_t family, struct ev_loop *loop,
                        const struct subnet_config *cfg, const struct be_extif *ext,
                        const struct be_settings *set, char *err, size_t errlen)
{
	int r;

	d->err = err;
	d->errlen = errlen;
	err[0] = '\0';
	r = dev_init(be, d, family, loop, cfg, ext, set);
	d->err = NULL;
	if (r < 0 && !err[0])
		errfmt(err, errlen, "vxlan %s: %s", d->ifname, strerror(-r));
	return r;
}

static struct backend *vxlan_init(struct ev_loop *loop, const struct subnet_config *cfg,
                                  const struct be_extif *ext, const struct be_settings *set,
                                  struct lease_attrs *ret_attrs, char *errbuf, size_t errlen)
{
	struct backend *be = NULL;
	char none[1];
	int err;

	if (!errbuf || !errlen) {
		errbuf = none;
		errlen = sizeof(none);
	}
	errbuf[0] = '\0';
	if (ext->iface_addr.family != AF_INET) {
		errfmt(errbuf, errlen, "vxlan: the external interface %s has no IPv4 address",
		       ext->name);
		errno = EINVAL;
		return NULL;
	}
	be = calloc(1, sizeof(*be));
	if (!be) {
		errfmt(errbuf, errlen, "vxlan: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	if (vxlan_parse_options(cfg, ext->mtu, &be->o, errbuf, errlen) < 0) {
		err = EINVAL;
		goto fail;
	}
	err = -dev_init_err(be, &be->v4, AF_INET, loop, cfg, ext, set, errbuf, errlen);
	if (err)
		goto fail;
	if (cfg->enable_ipv6 && ext->has_ipv6) {
		be->v6 = calloc(1, sizeof(*be->v6));
		err = be->v6 ? -dev_init_err(be, be->v6, AF_INET6, loop, cfg, ext, set, errbuf,
		                             errlen)
		             : ENOMEM;
		if (err)
			goto fail;
	}
	if (lease_attrs_set_vxlan(ret_attrs, be->o.vni, be->v4.mac) < 0 ||
	    (be->v6 && lease_attrs_set_vxlan_v6(ret_attrs, be->o.vni, be->v6->mac) < 0)) {
		err = ENOMEM;
		goto fail;
	}
	snprintf(ret_attrs->backend_type, sizeof(ret_attrs->backend_type), "vxlan");
	return be;
fail:
	if (err == ENOMEM && !errbuf[0])
		errfmt(errbuf, errlen, "vxlan: out of memory");
	vxlan_stop(be);
	errno = err ? err : EIO;
	return NULL;
}

/* Address and start @d; -errno with the reason in @err (non-NULL) instead of the log. */
static int dev_start(struct vx_dev *d, const struct ipam_prefix *subnet, char *err, size_t errlen)
{
	struct ipam_prefix np = ipam_prefix_network(subnet);
	int r;

	d->own_subnet = np;
	memset(&d->own.local6, 0, sizeof(d->own.local6));
	memcpy(&d->own.local6, np.addr.bytes, d->family == AF_INET6 ? 16 : 4);
	d->own.prefixlen = d->family == AF_INET6 ? 128 : 32;
	d->started = true;
	d->err = err;
	d->errlen = errlen;
	err[0] = '\0';
	r = routeset_start(d->rs);
	d->err = NULL;
	if (r < 0 && !err[0])
		errfmt(err, errlen, "%s: cannot watch the kernel's state: %s", d->logname,
		       strerror(-r));
	return r;
}

static int vxlan_start(struct backend *be, const struct lease *own, char *err, size_t errlen)
{
	char none[1];
	int r;

	if (!err || !errlen) {
		err = none;
		errlen = sizeof(none);
	}
	if (!own->has_ipv4 || own->subnet.addr.family != AF_INET) {
		errfmt(err, errlen, "%s: the own lease has no IPv4 subnet", be->v4.logname);
		return -EINVAL;
	}
	if (be->v6 && !own->has_ipv6) {
		errfmt(err, errlen, "%s: the own lease has no IPv6 subnet", be->v6->logname);
		return -EINVAL;
	}
	r = dev_start(&be->v4, &own->subnet, err, errlen);
	if (r < 0)
		return r;
	if (be->v6) {
		r = dev_start(be->v6, &own->ipv6_subnet, err, errlen);
		if (r < 0)
			return r;
	}
	return be->v4.mtu;
}

/* The route-set view of a remote lease; -ENOENT when it is not ours to program. */
static int to_rs(void *ctx, const struct lease *l, struct rs_lease *ret)
{
	struct vx_dev *d = ctx;
	char key[LEASE_KEY_MAX];
	uint32_t vni;

	if (!l->has_ipv4 || (d->started && ipam_prefix_overlaps(&l->subnet, &d->own_subnet)))
		return -ENOENT; /* IPv6-only, or our own lease: nothing to program */
	if (strcmp(l->attrs.backend_type, "vxlan") != 0) {
		/* flannel's udp backend writes no BackendType */
		log_warnx("%s: lease %s has backend type \"%s\", not vxlan: ignored", d->logname,
		          lease_key_format(l, key),
		          l->attrs.backend_type[0] ? l->attrs.backend_type : "udp");
		return -ENOENT;
	}
	memset(ret, 0, sizeof(*ret));
	if (lease_vxlan_data(&l->attrs, &vni, ret->mac) < 0 ||
	    l->attrs.public_ip.family != AF_INET) {
		log_warnx("%s: lease %s: bad BackendData or PublicIP: ignored", d->logname,
		          lease_key_format(l, key));
		return -EINVAL;
	}
	ret->subnet = l->subnet;
	ret->public_ip = l->attrs.public_ip;
	ret->overlay = true;
	return 0;
}

/* The IPv6 half of a remote lease; a lease with an unusable one is warned about once. */
static int to_rs6(void *ctx, const struct lease *l, struct rs_lease *ret)
{
	struct vx_dev *d = ctx;
	const char *why = NULL;
	uint32_t vni;
	int r;

	if (l->has_ipv6 && d->started && ipam_prefix_overlaps(&l->ipv6_subnet, &d->own_subnet))
		return -ENOENT;
	if (l->has_ipv4 && d->started && ipam_prefix_overlaps(&l->subnet, &d->be->v4.own_subnet))
		return -ENOENT;
	if (strcmp(l->attrs.backend_type, "vxlan") != 0)
		return -ENOENT; /* warned about by the IPv4 half */
	memset(ret, 0, sizeof(*ret));
	r = lease_vxlan_v6_data(&l->attrs, &vni, ret->mac);
	if (!l->has_ipv6)
		why = l->ipv6_key_bad ? "the IPv6 part of its key is malformed"
		                      : "its key has no IPv6 part";
	else if (l->attrs.public_ipv6_bad)
		why = "its PublicIPv6 is not an IPv6 address";
	else if (!l->attrs.has_public_ipv6)
		why = "it has no PublicIPv6";
	else if (r == -ENOENT)
		why = "it has no BackendV6Data";
	else if (r < 0)
		why = "its BackendV6Data is not {\"VNI\":..,\"VtepMAC\":..}";
	if (why)
		return be_v6warn(&d->warn, d->logname, l, why);
	ret->subnet = l->ipv6_subnet;
	ret->public_ip = l->attrs.public_ipv6;
	ret->overlay = true;
	return 0;
}

/* Both halves of a lease are queued under one hold: they reach the kernel in one batch. */
static int vxlan_lease_added(struct backend *be, const struct lease *l)
{
	int r, r6 = 0, rr;

	routeset_hold(be->v4.rs);
	r = routeset_lease_added(be->v4.rs, l, to_rs, &be->v4);
	if (be->v6)
		r6 = routeset_lease_added(be->v6->rs, l, to_rs6, be->v6);
	rr = routeset_release(be->v4.rs);
	if (!r && r6 < 0 && r6 != -EINVAL)
		r = r6; /* a bad IPv6 half is warned about, not an error */
	return r ? r : (rr < 0 ? rr : 0);
}

static int vxlan_lease_removed(struct backend *be, const struct lease *l)
{
	int r, rr;

	routeset_hold(be->v4.rs);
	if (be->v6) {
		routeset_lease_removed(be->v6->rs, l);
		be_v6warn_forget(&be->v6->warn, l);
	}
	r = routeset_lease_removed(be->v4.rs, l);
	rr = routeset_release(be->v4.rs);
	return r ? r : (rr < 0 ? rr : 0);
}

static int vxlan_resync(struct backend *be, const struct lease *leases, size_t n)
{
	int r, r6 = 0, rr;

	routeset_hold(be->v4.rs);
	r = routeset_lease_resync(be->v4.rs, leases, n, to_rs, &be->v4);
	if (be->v6)
		r6 = routeset_lease_resync(be->v6->rs, leases, n, to_rs6, be->v6);
	rr = routeset_release(be->v4.rs);
	if (!r)
		r = r6;
	return r ? r : (rr < 0 ? rr : 0);
}

static void vxlan_stop(struct backend *be)
{
	if (!be)
		return;
	dev_free(&be->v4);
	dev_free(be->v6);
	free(be->v6);
	free(be);
}

static void vxlan_stats(struct backend *be, struct be_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!be)
		return;
	ret->reconciles = routeset_reconciles(be->v4.rs);
	ret->repairs = routeset_repairs(be->v4.rs);
	if (!be->v6)
		return;
	ret->reconciles += routeset_reconciles(be->v6->rs);
	ret->repairs += routeset_repairs(be->v6->rs);
	ret->v6_configured = true;
	ret->v6_working = be->v6->started && be_link_up(be->v6->sk, be->v6->ifindex);
	ret->v6_leases = routeset_count(be->v6->rs);
	ret->v6_objects = routeset_objects(be->v6->rs);
	ret->v6_bad_leases = be->v6->warn.total;
}

const struct backend_ops vxlan_backend_ops = {
	.name = "vxlan",
	.init = vxlan_init,
	.start = vxlan_start,
	.lease_added = vxlan_lease_added,
	.lease_removed = vxlan_lease_removed,
	.resync = vxlan_resync,
	.stop = vxlan_stop,
	.stats = vxlan_stats,
};
