/*
 * The host-gw backend (docs/compat.md §4 and flannel's host-gw): per remote lease a
 * route <subnet> via <PublicIP> dev <external interface>, through the shared
 * route set. Needs every node on one L2 segment, with its public IP on the
 * external interface.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends.h"
#include "backends/routeset.h"
#include "lib/errfmt.h"
#include "lib/log.h"
#include "lib/nl.h"

#define HOSTGW_NH_BASE  0x30000000u
#define HOSTGW6_NH_BASE 0x31000000u /* HOSTGW_NH_BASE + RS_NH_RANGE */

struct backend {
	char logname[48];
	int mtu;
	bool started;
	struct ipam_prefix own_subnet, own_subnet6;
	struct routeset *rs, *rs6; /* rs6: EnableIPv6, else NULL */
	struct be_v6warn warn;
};

static void hostgw_stop(struct backend *be);

static struct backend *hostgw_init(struct ev_loop *loop, const struct subnet_config *cfg,
                                   const struct be_extif *ext, const struct be_settings *set,
                                   struct lease_attrs *ret_attrs, char *err, size_t errlen)
{
	char pub[IPAM_ADDR_STRLEN], own[IPAM_ADDR_STRLEN];
	struct backend *be;
	struct rs_params rp;

	if (ext->public_ip.family != AF_INET ||
	    !ipam_addr_equal(&ext->public_ip, &ext->iface_addr)) {
		errfmt(err, errlen,
		       "host-gw: the public IP %s is not the address of the external interface %s "
		       "(%s): host-gw routes via the peers' public IPs and needs them on one L2 "
		       "segment; drop --public-ip or use vxlan",
		       ipam_addr_format(&ext->public_ip, pub), ext->name,
		       ipam_addr_format(&ext->iface_addr, own));
		errno = EINVAL;
		return NULL;
	}
	be = calloc(1, sizeof(*be));
	if (!be) {
		errfmt(err, errlen, "host-gw: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	snprintf(be->logname, sizeof(be->logname), "host-gw %s", ext->name);
	be->mtu = ext->mtu;
	rp = (struct rs_params){ .name = be->logname,
		                 .loop = loop,
		                 .ext_ifindex = ext->ifindex,
		                 .network = cfg->network,
		                 .nh_base = HOSTGW_NH_BASE,
		                 .nexthops = !(set && set->no_nexthops) };
	be->rs = routeset_new(&rp);
	if (!be->rs) {
		int e = errno;

		errfmt(err, errlen, "%s: cannot set up its routes: %s", be->logname, strerror(e));
		hostgw_stop(be);
		errno = e;
		return NULL;
	}
	if (cfg->enable_ipv6 && ext->has_ipv6) {
		rp.family = AF_INET6;
		rp.network = cfg->ipv6_network;
		rp.nh_base = HOSTGW6_NH_BASE;
		rp.share = be->rs; /* both families in the same netlink batches */
		be->rs6 = routeset_new(&rp);
		if (!be->rs6) {
			int e = errno;

			errfmt(err, errlen, "%s: cannot set up its IPv6 routes: %s", be->logname,
			       strerror(e));
			hostgw_stop(be);
			errno = e;
			return NULL;
		}
	}
	snprintf(ret_attrs->backend_type, sizeof(ret_attrs->backend_type), "host-gw");
	lease_attrs_set_backend_data(ret_attrs, NULL); /* cannot fail */
	return be;
}

static int hostgw_start(struct backend *be, const struct lease *own, char *err, size_t errlen)
{
	int r;

	if (own->has_ipv4) {
		be->own_subnet = ipam_prefix_network(&own->subnet);
		be->started = true;
	}
	if (own->has_ipv6)
		be->own_subnet6 = ipam_prefix_network(&own->ipv6_subnet);
	r = routeset_start(be->rs);
	if (r < 0) {
		errfmt(err, errlen, "%s: cannot watch the kernel's routes: %s", be->logname,
		       strerror(-r));
		return r;
	}
	if (be->rs6) {
		r = routeset_start(be->rs6);
		if (r < 0) {
			errfmt(err, errlen, "%s: cannot watch the kernel's IPv6 routes: %s",
			       be->logname, strerror(-r));
			return r;
		}
	}
	return be->mtu;
}

static int to_rs(void *ctx, const struct lease *l, struct rs_lease *ret)
{
	struct backend *be = ctx;
	char key[LEASE_KEY_MAX];

	if (!l->has_ipv4 || (be->started && ipam_prefix_overlaps(&l->subnet, &be->own_subnet)))
		return -ENOENT; /* IPv6-only, or our own lease: nothing to program */
	if (strcmp(l->attrs.backend_type, "host-gw") != 0) {
		log_warnx("%s: lease %s has backend type \"%s\", not host-gw: ignored", be->logname,
		          lease_key_format(l, key), l->attrs.backend_type);
		return -ENOENT;
	}
	if (l->attrs.public_ip.family != AF_INET) {
		log_warnx("%s: lease %s has no IPv4 PublicIP: ignored", be->logname,
		          lease_key_format(l, key));
		return -EINVAL;
	}
	memset(ret, 0, sizeof(*ret));
	ret->subnet = l->subnet;
	ret->public_ip = l->attrs.public_ip;
	return 0;
}

/* The IPv6 half: <v6 subnet> via <PublicIPv6> dev <ext>; an unusable one is warned once. */
static int to_rs6(void *ctx, const struct lease *l, struct rs_lease *ret)
{
	struct backend *be = ctx;
	const char *why = NULL;

	if ((l->has_ipv4 && be->started && ipam_prefix_overlaps(&l->subnet, &be->own_subnet)) ||
	    (l->has_ipv6 && be->started && ipam_prefix_overlaps(&l->ipv6_subnet, &be->own_subnet6)))
		return -ENOENT;
	if (strcmp(l->attrs.backend_type, "host-gw") != 0)
		return -ENOENT; /* warned about by the IPv4 half */
	if (!l->has_ipv6)
		why = l->ipv6_key_bad ? "the IPv6 part of its key is malformed"
		                      : "its key has no IPv6 part";
	else if (l->attrs.public_ipv6_bad)
		why = "its PublicIPv6 is not an IPv6 address";
	else if (!l->attrs.has_public_ipv6)
		why = "it has no PublicIPv6";
	if (why)
		return be_v6warn(&be->warn, be->logname, l, why);
	memset(ret, 0, sizeof(*ret));
	ret->subnet = l->ipv6_subnet;
	ret->public_ip = l->attrs.public_ipv6;
	return 0;
}

/* Both halves of a lease are queued under one hold: they reach the kernel in one batch. */
static int hostgw_lease_added(struct backend *be, const struct lease *l)
{
	int r, r6 = 0, rr;

	routeset_hold(be->rs);
	r = routeset_lease_added(be->rs, l, to_rs, be);
	if (be->rs6)
		r6 = routeset_lease_added(be->rs6, l, to_rs6, be);
	rr = routeset_release(be->rs);
	if (!r && r6 < 0 && r6 != -EINVAL)
		r = r6; /* a bad IPv6 half is warned about, not an error */
	return r ? r : (rr < 0 ? rr : 0);
}

static int hostgw_lease_removed(struct backend *be, const struct lease *l)
{
	int r, rr;

	routeset_hold(be->rs);
	if (be->rs6) {
		routeset_lease_removed(be->rs6, l);
		be_v6warn_forget(&be->warn, l);
	}
	r = routeset_lease_removed(be->rs, l);
	rr = routeset_release(be->rs);
	return r ? r : (rr < 0 ? rr : 0);
}

static int hostgw_resync(struct backend *be, const struct lease *leases, size_t n)
{
	int r, r6 = 0, rr;

	routeset_hold(be->rs);
	r = routeset_lease_resync(be->rs, leases, n, to_rs, be);
	if (be->rs6)
		r6 = routeset_lease_resync(be->rs6, leases, n, to_rs6, be);
	rr = routeset_release(be->rs);
	if (!r)
		r = r6;
	return r ? r : (rr < 0 ? rr : 0);
}

static void hostgw_stop(struct backend *be)
{
	if (!be)
		return;
	routeset_free(be->rs);
	routeset_free(be->rs6);
	be_v6warn_clear(&be->warn);
	free(be);
}

static void hostgw_stats(struct backend *be, struct be_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!be)
		return;
	ret->reconciles = routeset_reconciles(be->rs);
	ret->repairs = routeset_repairs(be->rs);
	if (!be->rs6)
		return;
	ret->reconciles += routeset_reconciles(be->rs6);
	ret->repairs += routeset_repairs(be->rs6);
	ret->v6_configured = true;
	ret->v6_working = be->started; /* no device of its own: the routes are the IPv6 half */
	ret->v6_leases = routeset_count(be->rs6);
	ret->v6_objects = routeset_objects(be->rs6);
	ret->v6_bad_leases = be->warn.total;
}

const struct backend_ops hostgw_backend_ops = {
	.name = "host-gw",
	.init = hostgw_init,
	.start = hostgw_start,
	.lease_added = hostgw_lease_added,
	.lease_removed = hostgw_lease_removed,
	.resync = hostgw_resync,
	.stop = hostgw_stop,
	.stats = hostgw_stats,
};
