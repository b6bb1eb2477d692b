/* twillctl leases and lease show (see ctl.h). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "subnet/lease.h"
#include "subnet/store.h"

/*
 * The table when a lease has an IPv6 half: both subnets and both public IPs in columns of
 * their own ("-" for a half a lease lacks), so IPv4-only clusters keep the narrow table.
 */
static void print_table_dual(struct ctl *c, const struct ctl_row *rows, size_t n)
{
	fprintf(c->out, "%-18s %-24s %-15s %-24s %-8s %-18s %s\n", "SUBNET", "IPV6 SUBNET",
	        "PUBLIC IP", "PUBLIC IPV6", "BACKEND", "VTEP MAC", "EXPIRES IN");
	for (size_t i = 0; i < n; i++) {
		const struct lease *l = &rows[i].l;
		char sub[IPAM_PREFIX_STRLEN] = "-", sub6[IPAM_PREFIX_STRLEN] = "-";
		char ip[IPAM_ADDR_STRLEN], ip6[IPAM_ADDR_STRLEN] = "-", mac[32], ex[32];

		if (l->has_ipv4)
			ipam_prefix_format(&l->subnet, sub);
		if (l->has_ipv6)
			ipam_prefix_format(&l->ipv6_subnet, sub6);
		if (l->attrs.has_public_ipv6)
			ipam_addr_format(&l->attrs.public_ipv6, ip6);
		ctl_vtep_mac(&l->attrs, mac, sizeof(mac));
		ctl_expires_str(&rows[i], ex, sizeof(ex));
		fprintf(c->out, "%-18s %-24s %-15s %-24s %-8s %-18s %s\n", sub, sub6,
		        ipam_addr_format(&l->attrs.public_ip, ip), ip6, ctl_backend_name(l), mac,
		        ex);
	}
}

int ctl_leases(struct ctl *c, bool json)
{
	char prefix[PATH_MAX];
	struct ctl_call k;
	struct ctl_row *rows;
	size_t n;
	int ret = 0;

	ctl_key_path(c, "subnets/", prefix, sizeof(prefix));
	if (ctl_do_list(c, prefix, &k, "listing leases") < 0)
		return 1;
	rows = ctl_rows_of(c, &k, strlen(prefix), &n);
	if (!rows) {
		ctl_call_clear(&k);
		return 1;
	}
	if (json) {
		json_t *arr = json_array();
		char *s;

		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, ctl_row_json(&rows[i]));
		s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s)
			fprintf(c->out, "%s\n", s);
		else
			ret = 1;
		free(s);
		json_decref(arr);
	} else if (ctl_rows_dual(rows, n)) {
		print_table_dual(c, rows, n);
	} else {
		fprintf(c->out, "%-20s %-16s %-8s %-18s %s\n", "SUBNET", "PUBLIC IP", "BACKEND",
		        "VTEP MAC", "EXPIRES IN");
		for (size_t i = 0; i < n; i++) {
			char sub[2 * IPAM_PREFIX_STRLEN], ip[IPAM_ADDR_STRLEN], mac[32], ex[32];

			ctl_subnets_str(&rows[i].l, sub, sizeof(sub));
			ctl_vtep_mac(&rows[i].l.attrs, mac, sizeof(mac));
			ctl_expires_str(&rows[i], ex, sizeof(ex));
			fprintf(c->out, "%-20s %-16s %-8s %-18s %s\n", sub,
			        ipam_addr_format(&rows[i].l.attrs.public_ip, ip),
			        ctl_backend_name(&rows[i].l), mac, ex);
		}
	}
	ctl_rows_free(rows, n);
	ctl_call_clear(&k);
	return ret;
}

/* "198.18.3.0/24" or "198.18.3.0-24" (also dual-stack key forms) into a lease key suffix. */
int ctl_parse_subnet(struct ctl *c, const char *arg, struct lease *ret, char *keybuf)
{
	char tmp[LEASE_KEY_MAX];
	struct ipam_prefix p;

	memset(ret, 0, sizeof(*ret));
	if (strchr(arg, '/')) {
		if (ipam_prefix_parse(arg, &p) < 0) {
			fprintf(c->err,
			        "twillctl: bad subnet \"%s\": expected a network like 198.18.3.0/24\n",
			        arg);
			return -EINVAL;
		}
		if (!ipam_prefix_is_network(&p)) {
			struct ipam_prefix n = ipam_prefix_network(&p);
			char nb[IPAM_PREFIX_STRLEN];

			fprintf(c->err,
			        "twillctl: bad subnet \"%s\": host bits set, did you mean %s?\n",
			        arg, ipam_prefix_format(&n, nb));
			return -EINVAL;
		}
		if (p.addr.family == AF_INET) {
			ret->has_ipv4 = true;
			ret->subnet = p;
		} else {
			ret->has_ipv6 = true;
			ret->ipv6_subnet = p;
		}
	} else if (strlen(arg) >= sizeof(tmp) || lease_key_parse(arg, ret) < 0) {
		fprintf(c->err,
		        "twillctl: bad subnet \"%s\": expected a network like 198.18.3.0/24 (or the key form 198.18.3.0-24)\n",
		        arg);
		return -EINVAL;
	}
	lease_key_format(ret, keybuf);
	return 0;
}

int ctl_lease_show(struct ctl *c, const char *subnet, bool json)
{
	char suffix[LEASE_KEY_MAX], key[PATH_MAX], sub[2 * IPAM_PREFIX_STRLEN];
	char ip[IPAM_ADDR_STRLEN], mac[32], ex[32];
	struct lease l;
	struct ctl_call k;
	struct ctl_row r = { 0 };
	char err[256];
	int ret = 1;

	if (ctl_parse_subnet(c, subnet, &l, suffix) < 0)
		return 1;
	snprintf(key, sizeof(key), "%s/subnets/%s", c->prefix, suffix);
	if (ctl_do_get(c, key, &k, "reading the lease") < 0)
		return 1;
	if (k.n_kvs == 0 && l.has_ipv4 && !l.has_ipv6) {
		/* an IPv4 subnet names a dual-stack lease too: its key is "<v4 key>&<v6 key>" */
		char dual[PATH_MAX + 2];

		ctl_call_clear(&k);
		snprintf(dual, sizeof(dual), "%s&", key);
		if (ctl_do_list(c, dual, &k, "reading the lease") < 0)
			return 1;
		if (k.n_kvs > 0) {
			snprintf(key, sizeof(key), "%s", k.kvs[0].key);
			if (lease_key_parse(key + strlen(c->prefix) + strlen("/subnets/"), &l) <
			    0) {
				fprintf(c->err, "twillctl: %s: not a subnet key\n", key);
				goto out;
			}
		}
	}
	if (k.n_kvs == 0) {
		fprintf(c->err, "twillctl: no lease for %s (no key %s)\n", subnet, key);
		goto out;
	}
	r.l = l;
	if (lease_attrs_parse(k.kvs[0].value, k.kvs[0].value_len, &r.l.attrs, err, sizeof(err)) <
	    0) {
		fprintf(c->err, "twillctl: %s holds an invalid lease: %s\n  value: %.*s\n", key,
		        err, (int)k.kvs[0].value_len, k.kvs[0].value);
		goto out;
	}
	r.kv = &k.kvs[0];
	r.l.store_lease_id = k.kvs[0].lease;
	r.l.mod_revision = k.kvs[0].mod_revision;
	ctl_fill_ttls(c, &r, 1);
	if (json) {
		json_t *o = ctl_row_json(&r);
		char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

		if (s)
			fprintf(c->out, "%s\n", s);
		free(s);
		json_decref(o);
	} else {
		ctl_vtep_mac(&r.l.attrs, mac, sizeof(mac));
		ctl_expires_str(&r, ex, sizeof(ex));
		if (r.l.has_ipv4)
			fprintf(c->out, "Subnet:       %s\n", ipam_prefix_format(&r.l.subnet, sub));
		if (r.l.has_ipv6)
			fprintf(c->out, "IPv6Subnet:   %s\n",
			        ipam_prefix_format(&r.l.ipv6_subnet, sub));
		fprintf(c->out, "Key:          %s\n", key);
		fprintf(c->out, "PublicIP:     %s\n", ipam_addr_format(&r.l.attrs.public_ip, ip));
		if (r.l.attrs.has_public_ipv6)
			fprintf(c->out, "PublicIPv6:   %s\n",
			        ipam_addr_format(&r.l.attrs.public_ipv6, ip));
		fprintf(c->out, "Backend:      %s\n", ctl_backend_name(&r.l));
		if (strcmp(mac, "-"))
			fprintf(c->out, "VtepMAC:      %s\n", mac);
		ctl_vtep_mac6(&r.l.attrs, mac, sizeof(mac));
		if (strcmp(mac, "-"))
			fprintf(c->out, "VtepMACv6:    %s\n", mac);
		if (r.l.store_lease_id && r.ttl < 0)
			fprintf(c->out, "Lease:        %" PRId64 " (time left unknown)\n",
			        r.l.store_lease_id);
		else if (r.l.store_lease_id && r.ttl == 0)
			fprintf(c->out, "Lease:        %" PRId64 " (expired)\n",
			        r.l.store_lease_id);
		else if (r.l.store_lease_id)
			fprintf(c->out, "Lease:        %" PRId64 " (expires in %s)\n",
			        r.l.store_lease_id, ex);
		else
			fprintf(c->out, "Lease:        none (a reservation)\n");
		fprintf(c->out, "Revision:     %" PRId64 "\n", k.kvs[0].mod_revision);
		fprintf(c->out, "Value:        %.*s\n", (int)k.kvs[0].value_len, k.kvs[0].value);
	}
	ret = 0;
out:
	lease_clear(&r.l);
	ctl_call_clear(&k);
	return ret;
}
