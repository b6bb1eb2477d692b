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

/*
 * The subnets and addresses of a reservation from the arguments: SUBNET (either form, maybe
 * the dual key), --ipv6-subnet, --public-ip, --public-ipv6. 0, or -EINVAL after a message.
 */
static int reserve_args(struct ctl *c, const char *subnet, const char *ipv6_subnet,
                        const char *public_ip, const char *public_ipv6, struct lease *want,
                        struct lease_attrs *attrs)
{
	char suffix[LEASE_KEY_MAX];
	struct lease v6;

	if (ctl_parse_subnet(c, subnet, want, suffix) < 0)
		return -EINVAL;
	if (ipv6_subnet) {
		if (want->has_ipv6 || !want->has_ipv4) {
			fprintf(c->err,
			        "twillctl: reserve: --ipv6-subnet goes with an IPv4 SUBNET, "
			        "and \"%s\" already has an IPv6 part\n",
			        subnet);
			return -EINVAL;
		}
		if (ctl_parse_subnet(c, ipv6_subnet, &v6, suffix) < 0)
			return -EINVAL;
		if (!v6.has_ipv6 || v6.has_ipv4) {
			fprintf(c->err,
			        "twillctl: reserve: --ipv6-subnet needs an IPv6 network like "
			        "2001:db8:100:3::/64, got \"%s\"\n",
			        ipv6_subnet);
			return -EINVAL;
		}
		want->has_ipv6 = true;
		want->ipv6_subnet = v6.ipv6_subnet;
	}
	if (!public_ip || ipam_addr_parse(public_ip, &attrs->public_ip) < 0 ||
	    attrs->public_ip.family != AF_INET) {
		fprintf(c->err,
		        "twillctl: reserve: --public-ip needs an IPv4 address, got \"%s\"\n",
		        public_ip ? public_ip : "");
		return -EINVAL;
	}
	if (public_ipv6) {
		if (ipam_addr_parse(public_ipv6, &attrs->public_ipv6) < 0 ||
		    attrs->public_ipv6.family != AF_INET6) {
			fprintf(c->err,
			        "twillctl: reserve: --public-ipv6 needs an IPv6 address, got \"%s\"\n",
			        public_ipv6);
			return -EINVAL;
		}
		attrs->has_public_ipv6 = true;
	}
	return 0;
}

/* The halves of @want against the network config; 0, or -EINVAL after a message. */
static int reserve_fits(struct ctl *c, const struct subnet_config *cfg, const struct lease *want,
                        const struct lease_attrs *attrs, const char *desc)
{
	char nb[IPAM_PREFIX_STRLEN];

	if (want->has_ipv4 &&
	    (!cfg->enable_ipv4 || !on_boundary(&want->subnet, &cfg->network, cfg->subnet_len))) {
		fprintf(c->err,
		        "twillctl: cannot reserve %s: not a /%u subnet inside the network %s\n",
		        desc, cfg->subnet_len, ipam_prefix_format(&cfg->network, nb));
		return -EINVAL;
	}
	if (want->has_ipv6 &&
	    (!cfg->enable_ipv6 ||
	     !on_boundary(&want->ipv6_subnet, &cfg->ipv6_network, cfg->ipv6_subnet_len))) {
		fprintf(c->err,
		        "twillctl: cannot reserve %s: not a /%u subnet inside the IPv6 network %s\n",
		        desc, cfg->ipv6_subnet_len,
		        cfg->enable_ipv6 ? ipam_prefix_format(&cfg->ipv6_network, nb) : "(none)");
		return -EINVAL;
	}
	/* flanneld deletes a reservation whose IPv6 half does not match EnableIPv6 (docs/compat.md). */
	if (cfg->enable_ipv6 && cfg->enable_ipv4 && !want->has_ipv6) {
		fprintf(c->err,
		        "twillctl: cannot reserve %s: the network is dual-stack (EnableIPv6): give its "
		        "IPv6 subnet too (--ipv6-subnet, a /%u inside %s)\n",
		        desc, cfg->ipv6_subnet_len, ipam_prefix_format(&cfg->ipv6_network, nb));
		return -EINVAL;
	}
	if (attrs->has_public_ipv6 && !cfg->enable_ipv6) {
		fprintf(c->err,
		        "twillctl: cannot reserve %s: --public-ipv6 given, but the network config has "
		        "no EnableIPv6\n",
		        desc);
		return -EINVAL;
	}
	return 0;
}

/*
 * The current holder of @key or of a subnet overlapping @want: 0 when the key is free or
 * held by the same node (then *@cur is its lease and *@expect its revision), -EEXIST after
 * a message otherwise (or -EIO when the listing failed).
 */
static int reserve_holder(struct ctl *c, const char *prefix, const char *key,
                          const struct lease *want, const struct lease_attrs *attrs,
                          const char *desc, struct lease *cur, int64_t *expect)
{
	char err[256], ib[IPAM_ADDR_STRLEN];
	struct ctl_call k = { 0 };
	int ret = 0;

	if (ctl_do_list(c, prefix, &k, "listing leases") < 0)
		return -EIO;
	for (size_t i = 0; i < k.n_kvs && ret == 0; i++) {
		struct lease l;
		bool same = strcmp(k.kvs[i].key, key) == 0;

		if (lease_key_parse(k.kvs[i].key + strlen(prefix), &l) < 0)
			continue;
		if (!same && !((l.has_ipv4 && want->has_ipv4 &&
		                ipam_prefix_overlaps(&l.subnet, &want->subnet)) ||
		               (l.has_ipv6 && want->has_ipv6 &&
		                ipam_prefix_overlaps(&l.ipv6_subnet, &want->ipv6_subnet))))
			continue;
		if (lease_attrs_parse(k.kvs[i].value, k.kvs[i].value_len, &l.attrs, err,
		                      sizeof(err)) < 0) {
			fprintf(c->err,
			        "twillctl: cannot reserve %s: %s holds an invalid lease (%s)\n",
			        desc, k.kvs[i].key, err);
			ret = -EEXIST;
			break;
		}
		if (!same || !ipam_addr_equal(&l.attrs.public_ip, &attrs->public_ip)) {
			fprintf(c->err,
			        "twillctl: cannot reserve %s: %s is held by %s (%s); release it first\n",
			        desc, k.kvs[i].key, ipam_addr_format(&l.attrs.public_ip, ib),
			        k.kvs[i].lease ? "a lease" : "a reservation");
			lease_clear(&l);
			ret = -EEXIST;
			break;
		}
		/* The holder's own lease: keep its attributes, drop the expiry. */
		lease_clear(cur);
		*cur = l;
		*expect = k.kvs[i].mod_revision;
	}
	ctl_call_clear(&k);
	return ret;
}

int ctl_reserve(struct ctl *c, const char *subnet, const char *public_ip)
{
	return ctl_reserve6(c, subnet, NULL, public_ip, NULL);
}

int ctl_reserve6(struct ctl *c, const char *subnet, const char *ipv6_subnet, const char *public_ip,
                 const char *public_ipv6)
{
	char suffix[LEASE_KEY_MAX], key[PATH_MAX + LEASE_KEY_MAX], prefix[PATH_MAX];
	char desc[512], who[2 * IPAM_ADDR_STRLEN + 2];
	struct subnet_config *cfg = NULL;
	struct lease want, cur = { 0 };
	struct lease_attrs attrs = { 0 };
	struct ctl_call w = { 0 };
	char *value = NULL;
	int64_t expect = 0;
	int ret = 1;

	if (reserve_args(c, subnet, ipv6_subnet, public_ip, public_ipv6, &want, &attrs) < 0)
		return 1;
	snprintf(desc, sizeof(desc), "%s%s%s", subnet, ipv6_subnet ? "," : "",
	         ipv6_subnet ? ipv6_subnet : "");
	snprintf(who, sizeof(who), "%s%s%s", public_ip, public_ipv6 ? "," : "",
	         public_ipv6 ? public_ipv6 : "");
	cfg = ctl_load_config(c, false);
	if (!cfg || reserve_fits(c, cfg, &want, &attrs, desc) < 0)
		goto out;
	lease_key_format(&want, suffix);
	snprintf(prefix, sizeof(prefix), "%s/subnets/", c->prefix);
	snprintf(key, sizeof(key), "%s%s", prefix, suffix);
	if (reserve_holder(c, prefix, key, &want, &attrs, desc, &cur, &expect) < 0)
		goto out;
	if (expect && attrs.has_public_ipv6 && !cur.attrs.has_public_ipv6) {
		/* the node's own lease without PublicIPv6 yet: the reservation records it */
		cur.attrs.has_public_ipv6 = true;
		cur.attrs.public_ipv6 = attrs.public_ipv6;
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
		        desc, key);
		goto out;
	}
	fprintf(c->out, "reserved %s for %s (%s)\n", desc, who, key);
	ret = 0;
out:
	free(value);
	lease_clear(&cur);
	lease_attrs_clear(&attrs);
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
	if (!k.succeeded && l.has_ipv4 && !l.has_ipv6) {
		/* an IPv4 subnet names a dual-stack lease too: "<v4 key>&<v6 key>" */
		char dual[PATH_MAX + 2];

		snprintf(dual, sizeof(dual), "%s&", key);
		ctl_call_clear(&k);
		if (ctl_do_list(c, dual, &k, "reading the lease") < 0)
			goto out;
		if (k.n_kvs != 1) {
			if (k.n_kvs > 1)
				fprintf(c->err,
				        "twillctl: %zu dual-stack keys start with %s: name one of them\n",
				        k.n_kvs, dual);
			else
				fprintf(c->err, "twillctl: no lease for %s (no key %s)\n", subnet,
				        key);
			goto out;
		}
		snprintf(key, sizeof(key), "%s", k.kvs[0].key);
		ctl_call_clear(&k);
		if (ctl_call_wait(c, &k, c->store->ops->del(c->store, key, 0, ctl_call_cb, &k),
		                  "deleting the lease") < 0)
			goto out;
	}
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
