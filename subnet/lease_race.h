/*
 * Which node keeps an IPv6 subnet that two dual-stack nodes claimed at once.
 *
 * A dual-stack key is "<v4>-<len>&<v6>-<len>". Its IPv4 half is claimed atomically: the
 * create fails when any key under "<prefix>/subnets/<v4>-<len>" exists (store
 * create_guarded). Its IPv6 half cannot be guarded that way: it is the key's suffix, and
 * an etcd range is a prefix. So after a create, the lease manager lists the leases and
 * the key with the lowest create_revision holding (overlapping) the IPv6 subnet keeps
 * it; a later key is given back before anything is written or programmed. Every node
 * reads the same create revisions, so exactly one of the claimants keeps the subnet.
 * Pure: no I/O, no logging.
 */
#ifndef TWILL_SUBNET_LEASE_RACE_H
#define TWILL_SUBNET_LEASE_RACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipam/ipam.h"
#include "subnet/lease.h"
#include "subnet/store.h"

struct lease_race {
	const char *prefix;        /* "<prefix>/subnets/" (not owned: outlives the check) */
	char own[LEASE_KEY_MAX];   /* the key just created, without the prefix */
	struct ipam_prefix v6;     /* its IPv6 subnet */
	int64_t own_rev;           /* its create_revision in the listing; 0 = not seen */
	int64_t older_rev;         /* lowest create_revision of another key overlapping v6 */
	char older[LEASE_KEY_MAX]; /* that key (without the prefix); "" = none */
};

/* Start (or restart, when a listing starts over) the check of @own_key (suffix of @prefix). */
void lease_race_init(struct lease_race *r, const char *prefix, const char *own_key,
                     const struct ipam_prefix *v6);
/* Take in one page of the listing of @r->prefix (keys that do not parse are ignored). */
void lease_race_page(struct lease_race *r, const struct store_kv *kvs, size_t n);
/*
 * After the last page: true when the own key was listed and no other key holding an
 * overlapping IPv6 subnet was created before it (then this node keeps the lease).
 */
bool lease_race_won(const struct lease_race *r);

#endif
