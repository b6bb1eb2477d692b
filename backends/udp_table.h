/*
 * The udp backend's forwarding table: remote subnets -> PublicIP, plus the set of
 * known PublicIPs (to check the source of datagrams), the Network and the own
 * subnet. A table is immutable once built; the event loop builds a new one on
 * every lease change and publishes it with udp_rcu_publish(). Worker threads read
 * it without locks between udp_rcu_online() and udp_rcu_offline(); an old table
 * is freed only after every worker has been offline (or online again with a newer
 * epoch) since it was replaced (quiescent-state based reclamation).
 */
#ifndef TWILL_BACKENDS_UDP_TABLE_H
#define TWILL_BACKENDS_UDP_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipam/ipam.h"

/* One remote lease as the table sees it. */
struct udp_peer {
	struct ipam_prefix subnet;  /* AF_INET */
	struct ipam_addr public_ip; /* AF_INET */
	bool has_ipv6;              /* the lease has an IPv6 subnet */
	bool ipv6_ok;               /* ... and the peer takes IPv6 over udp (docs/compat.md) */
	struct ipam_prefix subnet6; /* AF_INET6, valid when has_ipv6 */
};

typedef unsigned __int128 udp_u128;

/* A route: addresses in host byte order, [first, last] inclusive. */
struct udp_route {
	uint32_t first;
	uint32_t last;
	uint32_t peer_be; /* PublicIP, network byte order (ready for sockaddr_in) */
};

/* An IPv6 route: host-order 128-bit range. */
struct udp_route6 {
	udp_u128 first;
	udp_u128 last;
	uint32_t peer_be; /* PublicIP (network order) */
	bool ipv6_ok;     /* false: the peer is IPv4-only (its drops are counted per peer) */
};

struct udp_table {
	bool has_net6; /* IPv6 enabled: the IPv6 Network and (when known) the own IPv6 subnet */
	bool has_own6;
	udp_u128 net6_first, net6_last, own6_first, own6_last;
	size_t nroutes6;
	const struct udp_route6 *routes6; /* sorted by first, disjoint */
	uint32_t net_first, net_last;     /* the Network, host order */
	bool has_own;
	uint32_t own_first, own_last; /* the own subnet, host order */
	size_t nroutes;
	const struct udp_route *routes; /* sorted by first, disjoint */
	size_t npeers;
	const uint32_t *peers; /* sorted distinct PublicIPs, host order */
	size_t skipped;        /* peers left out (overlap, bad family, own subnet) */
	/* Reclamation bookkeeping, used by the event loop thread only. */
	uint64_t retire_epoch;
	struct udp_table *next_retired;
};

/*
 * Build a table from @n peers (any order). Entries that are not IPv4, lie outside
 * @network, equal/overlap the own subnet @own (may be NULL) or overlap an earlier
 * entry (after sorting by address, longer prefixes are not expected since leases
 * never overlap) are skipped and counted in ->skipped. One allocation; free with
 * udp_table_free(). NULL with errno EINVAL (bad @network) or ENOMEM.
 */
struct udp_table *udp_table_new(const struct ipam_prefix *network, const struct ipam_prefix *own,
                                const struct udp_peer *peers, size_t n);
/*
 * The same with IPv6: @network6 (NULL: IPv6 off, the IPv6 halves of @peers are
 * ignored) and the own IPv6 subnet @own6 (may be NULL). A peer's IPv6 subnet gets
 * a route when it lies inside @network6 and overlaps neither @own6 nor another
 * route; peers without ipv6_ok get one with ipv6_ok false (drops are then counted as
 * "peer is IPv4-only", not "no route", under the peer's PublicIP).
 */
struct udp_table *udp_table_new_ds(const struct ipam_prefix *network, const struct ipam_prefix *own,
                                   const struct ipam_prefix *network6,
                                   const struct ipam_prefix *own6, const struct udp_peer *peers,
                                   size_t n);
/* NULL-safe. */
void udp_table_free(struct udp_table *t);
/* The IPv6 route covering @dst (16 bytes, network order), or NULL. O(log n). @t may be NULL. */
const struct udp_route6 *udp_table_lookup6(const struct udp_table *t, const uint8_t *dst);
/* @a (16 bytes, network order) as a host-order number. */
udp_u128 udp_u128_load(const uint8_t *a);
/* The route covering @dst_be (network byte order), or NULL. O(log n). @t may be NULL. */
const struct udp_route *udp_table_lookup(const struct udp_table *t, uint32_t dst_be);
/* True when @src_be (network byte order) is the PublicIP of some lease in @t. O(log n). */
bool udp_table_is_peer(const struct udp_table *t, uint32_t src_be);

#define UDP_RCU_MAX_READERS 16

struct udp_rcu_reader {
	_Atomic uint64_t epoch; /* 0: offline */
	char pad[64 - sizeof(uint64_t)];
};

struct udp_rcu {
	_Atomic(struct udp_table *) cur;
	_Atomic uint64_t epoch;
	size_t nreaders;
	struct udp_rcu_reader readers[UDP_RCU_MAX_READERS] __attribute__((aligned(64)));
	struct udp_table *retired; /* event loop thread only */
};

/* Initialise with @nreaders (<= UDP_RCU_MAX_READERS) offline readers and no table. */
void udp_rcu_init(struct udp_rcu *r, size_t nreaders);
/*
 * Event loop thread: make @t (owned from now on, may be NULL) current, retire the
 * previous table and free every retired table no reader can still see.
 */
void udp_rcu_publish(struct udp_rcu *r, struct udp_table *t);
/* Free retired tables that no reader can see any more; returns how many are left. */
size_t udp_rcu_reclaim(struct udp_rcu *r);
/* Free the current and every retired table. Only once no reader runs (workers joined). */
void udp_rcu_destroy(struct udp_rcu *r);
/* Reader @i: enter a read section and get the current table (may be NULL). */
const struct udp_table *udp_rcu_online(struct udp_rcu *r, size_t i);
/* Reader @i: leave the read section; no table pointer obtained before may be used after. */
void udp_rcu_offline(struct udp_rcu *r, size_t i);

#endif
