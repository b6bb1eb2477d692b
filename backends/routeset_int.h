/*
 * Route set internals shared by routeset.c (wanted state, batches, flush, leases, life cycle)
 * and routeset_sync.c (reconcile, resync, self-healing). Not for the backends: see routeset.h.
 */
#ifndef TWILL_BACKENDS_ROUTESET_INT_H
#define TWILL_BACKENDS_ROUTESET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "backends/routeset.h"
#include "lib/nl.h"

struct ev_timer;
struct ev_io;

#define RS_HEAL_DELAY_MS  100  /* debounce of self-healing */
#define RS_RETRY_DELAY_MS 1000 /* after a failed reconcile */

/* An address of the set's family: IPv4 in the first 4 bytes, the rest zero. */
union rs_ip {
	struct in_addr v4;
	struct in6_addr v6;
	uint8_t b[16];
};

/*
 * One per remote lease, 80 bytes (flags as bits, the bytes after the words): a 96-byte malloc
 * chunk rather than 112 (160 KB at 10,000 leases).
 */
struct rs_entry {
	struct rs_entry *next_net, *next_mac, *next_dirty;
	union rs_ip net; /* subnet network address */
	union rs_ip pub;
	uint32_t p_nh; /* what the kernel has, as far as we know (with p_mac, p_valid, p_l2) */
	uint8_t mac[6];
	uint8_t p_mac[6];
	uint8_t len;
	bool overlay : 1;
	bool wanted : 1; /* false: removal queued */
	bool dirty : 1;
	bool in_mac : 1;
	bool direct : 1, direct_known : 1; /* DirectRouting verdict */
	bool failed : 1;                   /* a message of the current batch was refused */
	bool p_valid : 1, p_l2 : 1;
	/* seen correct in the last dump */
	bool k_route : 1, k_neigh : 1, k_fdb : 1, k_nh : 1;
};

struct rs_table {
	struct rs_entry **b;
	size_t nb, n;
	bool by_mac;
};

enum rs_what { W_ROUTE, W_NEIGH, W_FDB, W_NH, W_LOOKUP };

/*
 * One message awaiting its ACK, found again from its cookie (its slot in rs_batch.ops + 1),
 * so that a refusal is logged with the lease or stale object it concerns.
 */
struct rs_op {
	struct routeset *rs; /* the set whose message this is */
	struct rs_entry *e;  /* NULL for stale objects */
	uint8_t what;
	bool del;
	union rs_ip addr;
	uint8_t len;
	uint8_t mac[6];
	uint32_t id;
};

/* + 1: a message's record is written before nl_batch queues it, which may first send the
 * NL_BATCH_MSGS queued before it and report their ACKs. */
#define RS_OPS (NL_BATCH_MSGS + 1)

struct rs_stale {
	struct nl_route *routes;
	size_t nroutes, croutes;
	struct nl_neigh *neighs; /* neighbours and fdb entries */
	size_t nneighs, cneighs;
	uint32_t *nhs;
	size_t nnhs, cnhs;
};

/*
 * The netlink socket and batch of a route set, shared with the set of the other family
 * (rs_params.share), so that the objects of both reach the kernel in the same batches.
 */
struct rs_batch {
	struct nl_sock *sk;
	struct nl_batch *batch;
	/*
	 * A ring of RS_OPS records (allocated at the first message) for the messages awaiting
	 * their ACK; @nops counts the messages queued so far. nl_batch has at most
	 * NL_BATCH_MSGS of them queued or unacknowledged, and drains their ACKs before it
	 * queues another (lib/nl.h), so a slot is reused only once no ACK can name it. A
	 * record per message of the whole batch instead (4 per lease with nexthops) grew to
	 * 2.1 MB at 10,000 leases, the largest peak of the daemon's heap.
	 */
	struct rs_op *ops;
	size_t nops;
	struct routeset *members[2];
	size_t nmembers;
	unsigned hold; /* routeset_hold depth: flushes and reconciles wait for the release */
};

struct routeset {
	struct rs_params p;
	uint8_t family; /* AF_INET or AF_INET6 */
	char name[64];
	struct rs_batch *rb;
	struct nl_sock *evsk;
	struct ev_io *io;
	struct ev_timer *flush_timer, *heal_timer;
	struct rs_table by_net, by_mac;
	struct rs_entry *dirty;
	struct rs_stale stale;
	int dev;
	bool started, synced, nh_kernel, nh, ext_up;
	bool want_reconcile; /* a resync while held: reconcile at the release */
	uint64_t reconciles;
	uint64_t repairs; /* entries found missing or changed in a reconcile after programming */
};

/* Addresses of the set's family, and the entry tables (routeset.c). */
bool rs_ip_eq(const union rs_ip *a, const union rs_ip *b);
union rs_ip rs_ip_of(const struct routeset *rs, const void *src);
struct rs_entry *rs_net_find(const struct routeset *rs, const union rs_ip *net);
/* A wanted entry with neighbour/fdb for @mac, other than @skip; NULL when none. */
struct rs_entry *rs_mac_find(const struct routeset *rs, const uint8_t *mac,
                             const struct rs_entry *skip);
void rs_entry_free(struct routeset *rs, struct rs_entry *e);
/* Entry @e needs a neighbour and an fdb entry (overlay, not a direct route). */
bool rs_e_l2(const struct rs_entry *e);
void rs_mark_dirty(struct routeset *rs, struct rs_entry *e);
/* Update or create the entry for @l, without flushing. 0 or -errno (bad lease: logged). */
int rs_set_entry(struct routeset *rs, const struct rs_lease *l);

/* The wanted kernel objects of an entry: nexthop id (0 = plain route), nexthop, route. */
uint32_t rs_e_nh(const struct routeset *rs, const struct rs_entry *e);
union rs_ip rs_id_net(const struct routeset *rs, uint32_t id);
void rs_e_nexthop(const struct routeset *rs, const struct rs_entry *e, struct nl_nexthop *nh);
void rs_e_route(const struct routeset *rs, const struct rs_entry *e, struct nl_route *r);

/*
 * Messages queued into the shared batch (0 or -errno when the batch could not make room);
 * rs_commit sends it: the count of refused objects, or -errno (logged, heal scheduled).
 */
int rs_emit_entry(struct routeset *rs, struct rs_entry *e, bool nh, bool neigh, bool fdb,
                  bool route);
int rs_emit_del_neigh(struct routeset *rs, struct rs_entry *e, const union rs_ip *dst);
int rs_emit_del_fdb(struct routeset *rs, struct rs_entry *e, const uint8_t *mac);
int rs_emit_del_nh(struct routeset *rs, struct rs_entry *e, uint32_t id);
int rs_emit_del_route(struct routeset *rs, struct rs_entry *e, const union rs_ip *dst, uint8_t len);
int rs_commit(struct routeset *rs);
/* Record that @e's kernel objects are as wanted now (the caller sets p_valid). */
void rs_entry_programmed(const struct routeset *rs, struct rs_entry *e);
/* DirectRouting: route lookups for the PublicIPs (@all, or dirty unknown ones); own batch. */
int rs_lookup_direct(struct routeset *rs, bool all);

/* routeset_sync.c: the device callback (0 or -errno), timer and event socket callbacks. */
int rs_ensure_dev(struct routeset *rs);
void rs_heal_cb(struct ev_timer *t, void *ctx);
void rs_io_cb(struct ev_io *io, int fd, uint32_t revents, void *ctx);

#endif
