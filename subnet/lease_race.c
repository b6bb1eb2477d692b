/* The IPv6 half of a dual-stack create race (see lease_race.h). */
#include <stdio.h>
#include <string.h>

#include "subnet/lease_race.h"

void lease_race_init(struct lease_race *r, const char *prefix, const char *own_key,
                     const struct ipam_prefix *v6)
{
	memset(r, 0, sizeof(*r));
	r->prefix = prefix;
	snprintf(r->own, sizeof(r->own), "%s", own_key);
	r->v6 = *v6;
}

void lease_race_page(struct lease_race *r, const struct store_kv *kvs, size_t n)
{
	size_t plen = strlen(r->prefix);

	for (size_t i = 0; i < n; i++) {
		const struct store_kv *kv = &kvs[i];
		struct lease l;

		if (!kv->key || strncmp(kv->key, r->prefix, plen) != 0)
			continue;
		if (strcmp(kv->key + plen, r->own) == 0) {
			r->own_rev = kv->create_revision;
			continue;
		}
		if (lease_key_parse(kv->key + plen, &l) < 0 || !l.has_ipv6 ||
		    !ipam_prefix_overlaps(&l.ipv6_subnet, &r->v6))
			continue;
		if (r->older_rev == 0 || kv->create_revision < r->older_rev) {
			r->older_rev = kv->create_revision;
			snprintf(r->older, sizeof(r->older), "%s", kv->key + plen);
		}
	}
}

bool lease_race_won(const struct lease_race *r)
{
	if (r->own_rev == 0)
		return false; /* our key is gone (deleted, expired): nothing to keep */
	return r->older_rev == 0 || r->older_rev > r->own_rev;
}
