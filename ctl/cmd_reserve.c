/* twillctl reserve and release (see ctl.h). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "subnet/config.h"
#include "subnet/lease.h"
#include "subnet/store.h"

static bool on_boundary(const struct ipam_prefix *p, const struct ipam_prefix *net, uint8_t len)
{
	return p->len == len && ipam_prefix_is_network(p) && ipam_prefix_contains(net, p);
}

int ctl_reserve(struct ctl *c, const char *subnet, const char *public_ip)
{
	char suffix[LEASE_KEY_MAX], key[PATH_MAX + LEASE_KEY_MAX], prefix[PATH_MAX], err[256];
	char nb[IPAM_PREFIX_STRLEN], ib[IPAM_ADDR_STRLEN];
	struct subnet_config *cfg = NULL;
	struct lease want, cur = { 0 };
	struct lease_attrs attrs = { 0 };
	struct ctl_call k = { 0 }, w = { 0 };
	char *value = NULL;
	int64_t expect = 0;
	int ret = 1;

	if (ctl_parse_subnet(c, subnet, &want, suffix) < 0)
		return 1;
	if (!public_ip || ipam_addr_parse(public_ip, &attrs.public_ip) < 0 ||
	    attrs.public_ip.family != AF_INET) {
		fprintf(c->err,
		        "twillctl: reserve: --public-ip needs an IPv4 address, got \"%s\"\n",
		        public_ip ? public_ip : "");
		return 1;
	}
	cfg = ctl_load_config(c, false);
	if (!cfg)
		return 1;
	if (want.has_ipv4 &&
	    (!cfg->enable_ipv4 || !on_boundary(&want.subnet, &cfg->network, cfg->subnet_len))) {
		fprintf(c->err,
		        "twillctl: cannot reserve %s: not a /%u subnet inside the network %s\n",
		        subnet, cfg->subnet_len, ipam_prefix_format(&cfg->network, nb));
		goto out;
	}
	if (want.has_ipv6 &&
	    (!cfg->enable_ipv6 ||
	     !on_boundary(&want.ipv6_subnet, &cfg->ipv6_network, cfg->ipv6_subnet_len))) {
		fprintf(c->err,
		        "twillctl: cannot reserve %s: not a /%u subnet inside the IPv6 network %s\n",
		        subnet, cfg->ipv6_subnet_len,
		        cfg->enable_ipv6 ? ipam_prefix_format(&cfg->ipv6_network, nb) : "(none)");
		goto out;
	}
	snprintf(prefix, sizeof(prefix), "%s/subnets/", c->prefix);
	snprintf(key, sizeof(key), "%s%s", prefix, suffix);
	if (ctl_do_list(c, prefix, &k, "listing leases") < 0)
		goto out;
	for (size_t i = 0; i < k.n_kvs; i++) {
		struct lease l;
		bool same = strcmp(k.kvs[i].key, key) == 0;

		if (lease_key_parse(k.kvs[i].key + strlen(prefix), &l) < 0)
			continue;
		if (!same && !((l.has_ipv4 && want.has_ipv4 &&
		                ipam_prefix_overlaps(&l.subnet, &want.subnet)) ||
		               (l.has_ipv6 && want.has_ipv6 &&
		                ipam_prefix_overlaps(&l.ipv6_subnet, &want.ipv6_subnet))))
			continue;
		if (lease_attrs_parse(k.kvs[i].value, k.kvs[i].value_len, &l.attrs, err,
		                      sizeof(err)) < 0) {
			fprintf(c->err,
			        "twillctl: cannot reserve %s: %s holds an invalid lease (%s)\n",
			        subnet, k.kvs[i].key, err);
			goto out;
		}
		if (!same || !ipam_addr_equal(&l.attrs.public_ip, &attrs.public_ip)) {
			fprintf(c->err,
			        "twillctl: cannot reserve %s: %s is held by %s (%s); release it first\n",
			        subnet, k.kvs[i].key, ipam_addr_format(&l.attrs.public_ip, ib),
			        k.kvs[i].lease ? "a lease" : "a reservation");
			lease_clear(&l);
			goto out;
		}
		/* The holder's own lease: keep its attributes, drop the expiry. */
		lease_clear(&cur);
		cur = l;
		expect = k.kvs[i].mod_revision;
	}
	value = lease_attrs_format(expect ? &cur.attrs : &attrs);
	if (!value) {
		fprintf(c->err, "twillctl: out of memory\n");
		goto out;
	}
	if (ctl_call_wait(c, &w,
	                  c->store->ops->cas(c->store, key, value, strlen(value), expect, 0,
	                                     ctl_call_cb, &w),
	                  "writing the reservation") < 0)
		goto out;
	if (!w.succeeded) {
		fprintf(c->err, "twillctl: cannot reserve %s: %s changed meanwhile; try again\n",
		        subnet, key);
		goto out;
	}
	fprintf(c->out, "reserved %s for %s (%s)\n", subnet, public_ip, key);
	ret = 0;
out:
	free(value);
	lease_clear(&cur);
	lease_attrs_clear(&attrs);
	ctl_call_clear(&k);
	ctl_call_clear(&w);
	subnet_config_free(cfg);
	return ret;
}

int ctl_release(struct ctl *c, const char *subnet)
{
	char suffix[LEASE_KEY_MAX], key[PATH_MAX];
	struct lease l;
	struct ctl_call k = { 0 };
	int ret = 1;

	if (ctl_parse_subnet(c, subnet, &l, suffix) < 0)
		return 1;
	snprintf(key, sizeof(key), "%s/subnets/%s", c->prefix, suffix);
	if (ctl_call_wait(c, &k, c->store->ops->del(c->store, key, 0, ctl_call_cb, &k),
	                  "deleting the lease") < 0)
		goto out;
	if (!k.succeeded) {
		fprintf(c->err, "twillctl: no lease for %s (no key %s)\n", subnet, key);
		goto out;
	}
	fprintf(c->out, "released %s (%s)\n", subnet, key);
	ret = 0;
out:
	ctl_call_clear(&k);
	return ret;
}
