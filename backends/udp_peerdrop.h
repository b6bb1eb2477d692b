/*
 * The udp backend's per-peer drop table: which underlay addresses the data path dropped
 * packets from (wire: unknown source, malformed payload) or for (TUN: IPv6 to a peer that
 * takes IPv4 only), with a count and the reason, for /v1/status.
 *
 * Each worker owns one table of UDP_PEER_DROPS slots and is its only writer: a drop costs a
 * scan of the slots and a few relaxed or release stores, no lock, no syscall, and forwarded
 * packets never touch it. A new (address, reason) pair takes the next slot in turn, so a
 * table keeps the last UDP_PEER_DROPS pairs seen by its worker. Readers (any thread) merge
 * the workers' tables; a slot being replaced while it is read is skipped, not torn. A read
 * is no snapshot: a pair evicted and noted again in another slot while it runs may be
 * counted twice (the counts are for finding a misbehaving peer, not for accounting).
 */
#ifndef TWILL_BACKENDS_UDP_PEERDROP_H
#define TWILL_BACKENDS_UDP_PEERDROP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/udp_pkt.h"

#define UDP_PEER_DROPS 16

struct udp_peer_drop_slot {
	_Atomic uint64_t key; /* 0: empty; else PEERDROP_USED | address << 8 | reason */
	_Atomic uint64_t n;   /* packets dropped since the pair took the slot */
};

struct udp_peer_drops {
	struct udp_peer_drop_slot s[UDP_PEER_DROPS];
	unsigned next; /* the slot a new pair takes (writer only) */
} __attribute__((aligned(64)));

/* One merged entry. */
struct udp_peer_drop {
	uint32_t addr_be; /* underlay IPv4 address, network byte order */
	enum udp_verdict reason;
	uint64_t n;
};

/* Count @n drops of @reason from/for @addr_be in @d. Only @d's owning worker calls this. */
void udp_peer_drops_note(struct udp_peer_drops *d, uint32_t addr_be, enum udp_verdict reason,
                         uint64_t n);
/*
 * Merge @ntabs tables: the counts of equal (address, reason) pairs summed, the largest
 * counts first (ties: lower address, then reason), at most @max entries in @ret. Returns how
 * many. Any thread; never blocks.
 */
size_t udp_peer_drops_merge(const struct udp_peer_drops *tabs, size_t ntabs,
                            struct udp_peer_drop *ret, size_t max);

#endif
