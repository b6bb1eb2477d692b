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
#include "lib/log.h"
#include "lib/nl.h"

#define HOSTGW_NH_BASE 0x30000000u

struct backend {
	char logname[48];
	int mtu;
	bool started;
	struct ipam_prefix own_subnet;
	struct routeset *rs;
};

static void hostgw_stop(struct backend *be);

static struct backend *hostgw_init(struct ev_loop *loop, const struct subnet_config *cfg,
                                   const struct be_extif *ext, const struct be_settings *set,
                                   struct lease_attrs *ret_attrs)
{
	char pub[IPAM_ADDR_STRLEN], own[IPAM_ADDR_STRLEN];
	struct backend *be;
	struct rs_params rp;

	if (ext->public_ip.family != AF_INET ||
	    !ipam_addr_equal(&ext->public_ip, &ext->iface_addr)) {
		log_error(
			"host-gw: the public IP %s is not the address of the external interface %s (%s): host-gw routes via the peers' public IPs and needs them on one L2 segment; drop --public-ip or use vxlan",
			ipam_addr_format(&ext->public_ip, pub), ext->name,
			ipam_addr_format(&ext->iface_addr, own));
		errno = EINVAL;
		return NULL;
	}
	be = calloc(1, sizeof(*be));
	if (!be)
		return NULL;
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
		int err = errno;

		log_error("%s: %s", be->logname, strerror(err));
		hostgw_stop(be);
		errno = err;
		return NULL;
	}
	snprintf(ret_attrs->backend_type, sizeof(ret_attrs->backend_type), "host-gw");
	lease_attrs_set_backend_data(ret_attrs, NULL); /* cannot fail */
	return be;
}

static int hostgw_start(struct backend *be, const struct lease *own)
{
	int r;

	if (own->has_ipv4) {
		be->own_subnet = ipam_prefix_network(&own->subnet);
		be->started = true;
	}
	r = routeset_start(be->rs);
	return r < 0 ? r : be->mtu;
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

static int hostgw_lease_added(struct backend *be, const struct lease *l)
{
	return routeset_lease_added(be->rs, l, to_rs, be);
}

static int hostgw_lease_removed(struct backend *be, const struct lease *l)
{
	return routeset_lease_removed(be->rs, l);
}

static int hostgw_resync(struct backend *be, const struct lease *leases, size_t n)
{
	return routeset_lease_resync(be->rs, leases, n, to_rs, be);
}

static void hostgw_stop(struct backend *be)
{
	if (!be)
		return;
	routeset_free(be->rs);
	free(be);
}

static void hostgw_stats(struct backend *be, struct be_stats *ret)
{
	ret->reconciles = be ? routeset_reconciles(be->rs) : 0;
	ret->repairs = be ? routeset_repairs(be->rs) : 0;
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
