/*
 * The kernel state of the remote leases, shared by vxlan and host-gw: for each
 * remote subnet a route (via a nexthop object where the kernel has them), and
 * for overlay (vxlan) leases a permanent neighbour and fdb entry. Changes are
 * queued and reach the kernel as netlink batches; a resync dumps the kernel and
 * brings it to exactly the wanted set; a netlink event socket restores what
 * someone else removes (debounced), and ENOBUFS triggers a full resync.
 * Logs failures (warn) with the lease they concern.
 */
#ifndef TWILL_BACKENDS_ROUTESET_H
#define TWILL_BACKENDS_ROUTESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipam/ipam.h"

struct ev_loop;
struct lease;
struct routeset;

/* What one remote lease asks of the kernel. */
struct rs_lease {
	struct ipam_prefix subnet;  /* of the set's family, network address */
	struct ipam_addr public_ip; /* of the set's family */
	bool overlay;   /* vxlan: neighbour + fdb + route via the subnet address, onlink */
	uint8_t mac[6]; /* VtepMAC when overlay */
};

#define RS_NH_RANGE (1u << 24) /* nexthop ids nh_base .. nh_base + RS_NH_RANGE - 1 */

struct rs_params {
	const char *name;           /* log prefix, e.g. "vxlan flannel.1" */
	uint8_t family;             /* AF_INET (also 0) or AF_INET6: one set per family */
	struct ev_loop *loop;       /* NULL: no self-healing, every change is flushed at once */
	int ext_ifindex;            /* external interface (direct and host-gw routes) */
	struct ipam_prefix network; /* overlay Network (IPv6Network for an IPv6 set): gateway
	                             * routes inside it on ext are ours */
	uint32_t nh_base;           /* nexthop id range of this set (deterministic ids) */
	bool nexthops;              /* use nexthop objects when the kernel has them */
	bool direct_routing;        /* overlay leases whose PublicIP has no gateway: direct route */
	/*
	 * Make sure the overlay device exists (recreating it if needed), is up and
	 * addressed: its ifindex, or -errno (reported by the callee: logged, or while the
	 * backend starts, written into its error buffer for its caller). NULL: no device.
	 */
	int (*ensure_dev)(void *ctx);
	void *ctx;
	/*
	 * NULL, or the set of the other family (same backend) whose netlink batches this one
	 * joins: a flush or a held resync sends the changes of both in the same batches.
	 * At most two sets share; either may be freed first.
	 */
	struct routeset *share;
};

/* A new, empty set; opens its netlink sockets (events only with a loop). NULL with errno. */
struct routeset *routeset_new(const struct rs_params *p);
/* Frees memory, timers and sockets; leaves the kernel state as it is. NULL-safe. */
void routeset_free(struct routeset *rs);
/* Calls ensure_dev and starts watching events. Until then, changes only queue. 0 or -errno. */
int routeset_start(struct routeset *rs);
/* Queue @l (added or changed; keyed by its subnet). 0 or -errno (bad lease, logged). */
int routeset_set(struct routeset *rs, const struct rs_lease *l);
/* Queue the removal of @subnet (unknown subnets are ignored). 0. */
int routeset_unset(struct routeset *rs, const struct ipam_prefix *subnet);
/*
 * Send the queued changes as one batch now, with those of the set sharing the batch
 * (otherwise a zero-delay timer does it once per loop iteration). 0, or the number of
 * refused objects (logged), or -errno. Does nothing while held.
 */
int routeset_flush(struct routeset *rs);
/*
 * Make @ls (n leases) the whole wanted set and reconcile the kernel with it now (while
 * held: at the release); as flush.
 */
int routeset_resync(struct routeset *rs, const struct rs_lease *ls, size_t n);
/*
 * Hold the batch @rs shares: resyncs and flushes of its sets wait until the matching
 * routeset_release, which reconciles and flushes them together, in one batch. Nests.
 * routeset_release returns as routeset_reconcile/flush (0 while still held).
 */
void routeset_hold(struct routeset *rs);
int routeset_release(struct routeset *rs);
/*
 * A backend's view of a remote lease: 0 with *@ret filled, -ENOENT when @l is not the
 * backend's to program (skipped quietly), another -errno when @l is bad (logged by the callee).
 */
typedef int (*rs_lease_fn)(void *ctx, const struct lease *l, struct rs_lease *ret);
/* Queue @l as @conv sees it; a lease @conv skips is 0. 0 or -errno. */
int routeset_lease_added(struct routeset *rs, const struct lease *l, rs_lease_fn conv, void *ctx);
/* Queue the removal of @l's subnet of the set's family (none: ignored). 0. */
int routeset_lease_removed(struct routeset *rs, const struct lease *l);
/* routeset_resync with those of the @n @leases that @conv accepts. 0 or -errno. */
int routeset_lease_resync(struct routeset *rs, const struct lease *leases, size_t n,
                          rs_lease_fn conv, void *ctx);
/* Dump the kernel and repair the differences with the wanted set now; as flush. */
int routeset_reconcile(struct routeset *rs);
/* AF_INET or AF_INET6. */
uint8_t routeset_family(const struct routeset *rs);
/* True when routes go through nexthop objects (probed once at creation). */
bool routeset_uses_nexthops(const struct routeset *rs);
/* Number of wanted leases. */
size_t routeset_count(const struct routeset *rs);
/* Number of wanted kernel objects (route, and neighbour + fdb entry for overlay leases;
 * nexthop objects not counted). */
size_t routeset_objects(const struct routeset *rs);
/* Number of reconciles run so far (self-healing included); for tests. */
uint64_t routeset_reconciles(const struct routeset *rs);
/* Leases whose kernel objects a reconcile found missing or changed after they had been
 * programmed as wanted, and sent again (self-healing); NULL-safe. */
uint64_t routeset_repairs(const struct routeset *rs);

#endif
