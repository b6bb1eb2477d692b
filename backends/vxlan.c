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

#include "backends/backends.h"
#include "backends/routeset.h"
#include "backends/vxlan.h"
#include "lib/log.h"
#include "lib/nl.h"

#define VXLAN_OVERHEAD 50
#define VXLAN_NH_BASE  0x40000000u /* + (VNI % 63) * RS_NH_RANGE */

struct backend {
	struct nl_sock *sk;
	char ifname[IF_NAMESIZE];
	char logname[48];
	struct nl_vxlan spec;
	uint8_t mac[6];
	int mtu;
	int ifindex;
	bool started;
	struct ipam_prefix own_subnet;
	struct nl_addr own; /* <own subnet network address>/32 */
	struct routeset *rs;
};

static int opt_uint(const struct subnet_config *cfg, const char *key, long long min, long long max,
                    long long def, long long *ret)
{
	json_t *v = subnet_config_backend_opt(cfg, key);

	if (!v || json_is_null(v)) {
		*ret = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		log_error("vxlan: backend option %s must be an integer in %lld..%lld", key, min,
		          max);
		return -EINVAL;
	}
	*ret = json_integer_value(v);
	return 0;
}

static int opt_bool(const struct subnet_config *cfg, const char *key, bool *ret)
{
	json_t *v = subnet_config_backend_opt(cfg, key);

	if (!v || json_is_null(v)) {
		*ret = false;
		return 0;
	}
	if (!json_is_boolean(v)) {
		log_error("vxlan: backend option %s must be true or false", key);
		return -EINVAL;
	}
	*ret = json_is_true(v);
	return 0;
}

int vxlan_parse_options(const struct subnet_config *cfg, int ext_mtu, struct vxlan_options *ret)
{
	long long vni, port, mtu;
	struct vxlan_options o = { 0 };

	if (opt_uint(cfg, "VNI", 0, (1 << 24) - 1, 1, &vni) < 0 ||
	    opt_uint(cfg, "Port", 0, 65535, 8472, &port) < 0 ||
	    opt_uint(cfg, "MTU", 0, 65535, 0, &mtu) < 0 || opt_bool(cfg, "GBP", &o.gbp) < 0 ||
	    opt_bool(cfg, "Learning", &o.learning) < 0 ||
	    opt_bool(cfg, "DirectRouting", &o.direct_routing) < 0)
		return -EINVAL;
	o.vni = (uint32_t)vni;
	o.port = port ? (uint16_t)port : 8472; /* flannel: 0 means the default */
	o.mtu = mtu ? (int)mtu : ext_mtu - VXLAN_OVERHEAD;
	if (o.mtu < 68) {
		log_error("vxlan: device MTU %d is too small (underlay MTU %d)", o.mtu, ext_mtu);
		return -EINVAL;
	}
	*ret = o;
	return 0;
}

static bool compatible(const struct nl_link *l, const struct nl_vxlan *want)
{
	return l->is_vxlan && l->vxlan.vni == want->vni &&
	       l->vxlan.local.s_addr == want->local.s_addr && l->vxlan.port == want->port &&
	       l->vxlan.link == want->link && l->vxlan.gbp == want->gbp;
}

static void log_nl(struct backend *be, const char *what, int err)
{
	const char *m = nl_sock_errmsg(be->sk);

	log_error("%s: %s: %s%s%s", be->logname, what, strerror(-err), *m ? ": " : "", m);
}

/* Create the device, or keep a compatible one (adopting its MAC), or recreate it. */
static int ensure_link(struct backend *be, bool adopt_mac, struct nl_link *ret)
{
	struct nl_link l;
	int r;

	r = nl_link_get(be->sk, be->ifname, 0, &l);
	if (r == 0 && !compatible(&l, &be->spec)) {
		log_info(
			"%s: existing device is incompatible (vni %u, local %s, port %u), recreating",
			be->logname, l.vxlan.vni, inet_ntoa(l.vxlan.local), l.vxlan.port);
		r = nl_link_del(be->sk, l.ifindex);
		if (r < 0 && r != -ENODEV) {
			log_nl(be, "deleting the incompatible device failed", r);
			return r;
		}
		r = -ENODEV;
	}
	if (r == -ENODEV) {
		r = nl_link_vxlan_create(be->sk, be->ifname, &be->spec, be->mac, be->mtu);
		if (r == -EEXIST)
			return -EAGAIN; /* raced with someone: the next repair looks again */
		if (r < 0) {
			log_nl(be, "creating the device failed", r);
			return r;
		}
		r = nl_link_get(be->sk, be->ifname, 0, &l);
	}
	if (r < 0) {
		log_nl(be, "reading the device failed", r);
		return r;
	}
	if (adopt_mac && l.has_mac)
		memcpy(be->mac, l.mac, 6);
	be->ifindex = l.ifindex;
	*ret = l;
	return 0;
}

/* The route set's device callback: the link, its MTU, up, and exactly our address. */
static int ensure_dev(void *ctx)
{
	struct backend *be = ctx;
	struct nl_addr addrs[16];
	struct nl_link l;
	bool have = false;
	int r, n;

	r = ensure_link(be, false, &l);
	if (r < 0)
		return r;
	if (!be->started)
		return l.ifindex;
	if (l.mtu != be->mtu || !(l.flags & IFF_UP)) {
		r = nl_link_set_up(be->sk, l.ifindex, be->mtu);
		if (r < 0) {
			log_nl(be, "setting the device up failed", r);
			return r;
		}
	}
	n = nl_addr_list(be->sk, l.ifindex, addrs, sizeof(addrs) / sizeof(addrs[0]));
	if (n < 0) {
		log_nl(be, "listing addresses failed", n);
		return n;
	}
	be->own.ifindex = l.ifindex;
	for (int i = 0; i < n; i++) {
		if (addrs[i].local.s_addr == be->own.local.s_addr && addrs[i].prefixlen == 32) {
			have = true;
			continue;
		}
		/* flannel keeps only the lease's address on the device. */
		r = nl_addr_set(be->sk, NL_OP_DELETE, &addrs[i]);
		if (r < 0 && r != -EADDRNOTAVAIL)
			log_nl(be, "removing an old address failed", r);
	}
	if (!have) {
		r = nl_addr_set(be->sk, NL_OP_REPLACE, &be->own);
		if (r < 0) {
			log_nl(be, "adding the address failed", r);
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

static void vxlan_stop(struct backend *be);

static struct backend *vxlan_init(struct ev_loop *loop, const struct subnet_config *cfg,
                                  const struct be_extif *ext, const struct be_settings *set,
                                  struct lease_attrs *ret_attrs)
{
	struct backend *be = NULL;
	struct vxlan_options o;
	struct rs_params rp;
	struct nl_link l;
	int err;

	if (vxlan_parse_options(cfg, ext->mtu, &o) < 0) {
		errno = EINVAL;
		return NULL;
	}
	if (ext->iface_addr.family != AF_INET) {
		log_error("vxlan: the external interface %s has no IPv4 address", ext->name);
		errno = EINVAL;
		return NULL;
	}
	be = calloc(1, sizeof(*be));
	if (!be)
		return NULL;
	snprintf(be->ifname, sizeof(be->ifname), "flannel.%u", o.vni);
	snprintf(be->logname, sizeof(be->logname), "vxlan %s", be->ifname);
	be->spec.vni = o.vni;
	memcpy(&be->spec.local, ext->iface_addr.bytes, 4);
	be->spec.link = ext->ifindex;
	be->spec.port = o.port;
	be->spec.learning = o.learning;
	be->spec.gbp = o.gbp;
	be->mtu = o.mtu;
	random_mac(be->mac);
	be->sk = nl_sock_open(NULL, 0);
	if (!be->sk) {
		err = errno;
		log_error("%s: netlink socket: %s", be->logname, strerror(err));
		goto fail;
	}
	err = -ensure_link(be, true, &l);
	if (err)
		goto fail;
	rp = (struct rs_params){ .name = be->logname,
		                 .loop = loop,
		                 .ext_ifindex = ext->ifindex,
		                 .network = cfg->network,
		                 .nh_base = VXLAN_NH_BASE + (o.vni % 63) * RS_NH_RANGE,
		                 .nexthops = !(set && set->no_nexthops),
		                 .direct_routing = o.direct_routing,
		                 .ensure_dev = ensure_dev,
		                 .ctx = be };
	be->rs = routeset_new(&rp);
	if (!be->rs) {
		err = errno;
		log_error("%s: %s", be->logname, strerror(err));
		goto fail;
	}
	if (lease_attrs_set_vxlan(ret_attrs, o.vni, be->mac) < 0) {
		err = ENOMEM;
		goto fail;
	}
	snprintf(ret_attrs->backend_type, sizeof(ret_attrs->backend_type), "vxlan");
	log_info("%s: device ready (VtepMAC %02x:%02x:%02x:%02x:%02x:%02x, port %u, MTU %d, %s)",
	         be->logname, be->mac[0], be->mac[1], be->mac[2], be->mac[3], be->mac[4],
	         be->mac[5], o.port, o.mtu,
	         routeset_uses_nexthops(be->rs) ? "nexthop objects" : "plain routes");
	return be;
fail:
	vxlan_stop(be);
	errno = err ? err : EIO;
	return NULL;
}

static int vxlan_start(struct backend *be, const struct lease *own)
{
	struct ipam_prefix np;
	int r;

	if (!own->has_ipv4 || own->subnet.addr.family != AF_INET) {
		log_error("%s: the own lease has no IPv4 subnet", be->logname);
		return -EINVAL;
	}
	np = ipam_prefix_network(&own->subnet);
	be->own_subnet = np;
	memcpy(&be->own.local, np.addr.bytes, 4);
	be->own.prefixlen = 32;
	be->started = true;
	r = routeset_start(be->rs);
	if (r < 0)
		return r;
	return be->mtu;
}

/* The route-set view of a remote lease; -ENOENT when it is not ours to program. */
static int to_rs(void *ctx, const struct lease *l, struct rs_lease *ret)
{
	struct backend *be = ctx;
	char key[LEASE_KEY_MAX];
	uint32_t vni;

	if (!l->has_ipv4 || (be->started && ipam_prefix_overlaps(&l->subnet, &be->own_subnet)))
		return -ENOENT; /* IPv6-only, or our own lease: nothing to program */
	if (strcmp(l->attrs.backend_type, "vxlan") != 0) {
		/* flannel's udp backend writes no BackendType */
		log_warnx("%s: lease %s has backend type \"%s\", not vxlan: ignored", be->logname,
		          lease_key_format(l, key),
		          l->attrs.backend_type[0] ? l->attrs.backend_type : "udp");
		return -ENOENT;
	}
	memset(ret, 0, sizeof(*ret));
	if (lease_vxlan_data(&l->attrs, &vni, ret->mac) < 0 ||
	    l->attrs.public_ip.family != AF_INET) {
		log_warnx("%s: lease %s: bad BackendData or PublicIP: ignored", be->logname,
		          lease_key_format(l, key));
		return -EINVAL;
	}
	ret->subnet = l->subnet;
	ret->public_ip = l->attrs.public_ip;
	ret->overlay = true;
	return 0;
}

static int vxlan_lease_added(struct backend *be, const struct lease *l)
{
	return routeset_lease_added(be->rs, l, to_rs, be);
}

static int vxlan_lease_removed(struct backend *be, const struct lease *l)
{
	return routeset_lease_removed(be->rs, l);
}

static int vxlan_resync(struct backend *be, const struct lease *leases, size_t n)
{
	return routeset_lease_resync(be->rs, leases, n, to_rs, be);
}

static void vxlan_stop(struct backend *be)
{
	if (!be)
		return;
	routeset_free(be->rs);
	nl_sock_close(be->sk);
	free(be);
}

static void vxlan_stats(struct backend *be, struct be_stats *ret)
{
	ret->reconciles = be ? routeset_reconciles(be->rs) : 0;
	ret->repairs = be ? routeset_repairs(be->rs) : 0;
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
