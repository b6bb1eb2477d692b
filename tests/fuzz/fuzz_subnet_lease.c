/*
 * libFuzzer harness: the lease codec (subnet/lease.c). The first byte picks the
 * parser: even = lease value JSON, odd = etcd key.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "subnet/lease.h"
#include "subnet/lease_race.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_attrs(const char *buf, size_t len)
{
	struct lease_attrs a, b, c;
	uint8_t mac[6];
	uint32_t vni;
	char err[256];
	char *s, *t;

	if (lease_attrs_parse(buf, len, &a, err, sizeof(err)) < 0) {
		if (!err[0])
			abort();
		return;
	}
	(void)lease_vxlan_data(&a, &vni, mac);
	(void)lease_vxlan_v6_data(&a, &vni, mac);
	/* What we write parses back to the same attributes and the same bytes. */
	s = lease_attrs_format(&a);
	if (!s)
		abort();
	if (lease_attrs_parse(s, strlen(s), &b, err, sizeof(err)) < 0)
		abort();
	if (!lease_attrs_equal(&a, &b))
		abort();
	t = lease_attrs_format(&b);
	if (!t || strcmp(s, t))
		abort();
	if (lease_attrs_copy(&c, &a) < 0 || !lease_attrs_equal(&c, &b))
		abort();
	free(t);
	free(s);
	lease_attrs_clear(&c);
	lease_attrs_clear(&b);
	lease_attrs_clear(&a);
}

/* The IPv6 race check (lease_race.h) over a listing holding @key: it loses exactly to an
 * older key that parses and holds an overlapping IPv6 subnet. */
static void fuzz_race(const char *key)
{
	static const char own[] = "198.18.1.0-24&2001:db8:100:1::-64";
	char full[LEASE_KEY_MAX + 32], ownfull[sizeof(own) + 16];
	struct lease l, o;
	struct lease_race r;
	struct store_kv kvs[2] = { { 0 } };
	bool older;

	if (lease_key_parse(own, &o) < 0)
		abort();
	snprintf(full, sizeof(full), "/p/subnets/%s", key);
	snprintf(ownfull, sizeof(ownfull), "/p/subnets/%s", own);
	kvs[0] = (struct store_kv){ .key = full, .create_revision = 5 };
	kvs[1] = (struct store_kv){ .key = ownfull, .create_revision = 7 };
	lease_race_init(&r, "/p/subnets/", own, &o.ipv6_subnet);
	lease_race_page(&r, kvs, 2);
	older = strcmp(key, own) != 0 && lease_key_parse(key, &l) == 0 && l.has_ipv6 &&
	        ipam_prefix_overlaps(&l.ipv6_subnet, &o.ipv6_subnet);
	if (lease_race_won(&r) == older)
		abort();
}

static void fuzz_key(const char *buf, size_t len)
{
	char key[LEASE_KEY_MAX + 8], out[LEASE_KEY_MAX];
	struct lease l, m;

	if (len >= sizeof(key))
		len = sizeof(key) - 1;
	memcpy(key, buf, len);
	key[len] = '\0';
	/* The lenient form keeps only a valid IPv4 half, and only when the IPv6 part is bad. */
	memset(&m, 0, sizeof(m));
	if (lease_key_parse_lenient6(key, &m) == 0 && m.ipv6_key_bad) {
		if (!m.has_ipv4 || m.has_ipv6 || !strchr(key, '&'))
			abort();
		memset(&l, 0, sizeof(l));
		if (lease_key_parse(lease_key_format(&m, out), &l) < 0 || !l.has_ipv4 ||
		    l.has_ipv6 || !ipam_prefix_equal(&l.subnet, &m.subnet))
			abort();
	}
	fuzz_race(key);
	memset(&l, 0, sizeof(l));
	if (lease_key_parse(key, &l) < 0)
		return;
	if (!l.has_ipv4 && !l.has_ipv6)
		abort();
	lease_key_format(&l, out);
	memset(&m, 0, sizeof(m));
	if (lease_key_parse(out, &m) < 0 || m.has_ipv4 != l.has_ipv4 || m.has_ipv6 != l.has_ipv6 ||
	    (l.has_ipv4 && !ipam_prefix_equal(&l.subnet, &m.subnet)) ||
	    (l.has_ipv6 && !ipam_prefix_equal(&l.ipv6_subnet, &m.ipv6_subnet)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_key((const char *)data + 1, size - 1);
	else
		fuzz_attrs((const char *)data + 1, size - 1);
	return 0;
}
