/*
 * The lease manager: acquires this node's lease exactly as docs/compat.md §3, renews
 * it, re-acquires it when lost, and watches every lease, reporting remote ones
 * (the own lease excluded) to a consumer, with no event lost or duplicated
 * across compactions and broken streams.
 *
 * Sequence: leasemgr_start() lists the leases and acquires one (own_acquired),
 * then lists again and reports the remote set once (resync), then watches and
 * reports each change (added/removed). A broken or compacted watch is followed
 * by a new listing whose differences to the known set are reported as
 * added/removed, and a new watch from that listing. Never a remote lease:
 * the own key, a key being created by this manager, and any lease carrying
 * this node's PublicIP. Keys or values that do not parse, and keys for a subnet
 * outside the Network (IPv6Network), are skipped (reported through .skipped and
 * counted), never fatal; an outside key does not hold a subnet for allocation. The library does not log above debug.
 */
#ifndef TWILL_SUBNET_LEASEMGR_H
#define TWILL_SUBNET_LEASEMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipam/ipam.h"
#include "subnet/config.h"
#include "subnet/lease.h"
#include "subnet/store.h"

struct leasemgr;

struct leasemgr_opts {
	const char *prefix;      /* etcd prefix, default "/coreos.com/network" */
	int64_t lease_ttl_s;     /* default 86400 (--subnet-lease-ttl) */
	int64_t renew_margin_s;  /* default 3600 (--subnet-lease-renew-margin minutes * 60) */
	int64_t retry_ms;        /* renewal retry after failure, default 60000 */
	const char *subnet_file; /* read FLANNEL_SUBNET from it for re-use; may be NULL */
	ipam_rand_fn rnd;        /* NULL = getrandom-based */
	void *rnd_ctx;
	int64_t acquire_retry_ms; /* first back-off after a failed acquisition or listing,
					  * doubled up to backoff_max_ms; default 1000 */
	int64_t backoff_max_ms;   /* longest back-off of acquisition and relisting, default
					  * 2000: a node must catch up within seconds of its etcd
					  * (or local proxy) returning, and a failed listing costs
					  * etcd nothing */
	int64_t time_unit_ms;     /* test hook: length of one TTL second, default 1000
					  * (pair with store_local_set_time_unit) */
};

/* Consumer callbacks; every pointer is valid only during the call. */
struct leasemgr_events {
	/* Own lease acquired (first time, or re-acquired after loss: check subnet). */
	void (*own_acquired)(void *ctx, const struct lease *own);
	/* Own lease lost (deleted or expired); the manager re-acquires on its own. */
	void (*own_lost)(void *ctx, const struct lease *old);
	/* The full set of remote leases, once, after the first listing (sorted by subnet). */
	void (*resync)(void *ctx, const struct lease *leases, size_t n);
	/* One remote lease added, or changed (same subnet, other attributes). */
	void (*added)(void *ctx, const struct lease *l);
	void (*removed)(void *ctx, const struct lease *l);
	/*
	 * A failure the manager handles by retrying (store unreachable, out of subnets
	 * -ENOSPC, renewal failed): @msg says what failed and when the next try is.
	 */
	void (*error)(void *ctx, int err, const char *msg);
	/* Optional: a key under <prefix>/subnets/ or its value did not parse, or the subnet is
	 * outside the Network, and it was skipped. */
	void (*skipped)(void *ctx, const char *key, const char *reason);
};

/* NULL with errno (EINVAL: no loop/store/events) on failure. @ev is copied. */
struct leasemgr *leasemgr_new(struct ev_loop *loop, struct store *store,
                              const struct leasemgr_opts *opts, const struct leasemgr_events *ev,
                              void *ctx);
/* Start acquiring with @cfg and @own_attrs (both copied). 0 or -errno (-EALREADY when started). */
int leasemgr_start(struct leasemgr *m, const struct subnet_config *cfg,
                   const struct lease_attrs *own_attrs);
/* The own lease, or NULL while none is held. */
const struct lease *leasemgr_own(const struct leasemgr *m);
/* Remote leases currently known (sorted by subnet). */
const struct lease *leasemgr_remote(const struct leasemgr *m, size_t *ret_n);
/* Number of keys or values skipped because they did not parse (each event counts). */
uint64_t leasemgr_skipped(const struct leasemgr *m);
/* Successful renewals (keepalives) of the own lease so far; 0 for NULL. */
uint64_t leasemgr_renewals(const struct leasemgr *m);
/*
 * Remote leases that changed in place (same subnet, other attributes) so far; counted
 * before the .added callback that reports the change runs, so a consumer can tell a change
 * from an addition there. 0 for NULL.
 */
uint64_t leasemgr_changes(const struct leasemgr *m);
/*
 * How many freed managers still wait for requests in flight (a freed manager is
 * released by its last callback; a store freed first cancels them). For tests:
 * run the loop until 0 before freeing the store.
 */
int leasemgr_zombies(void);
/* Stops timers and watches; the lease stays in the store. NULL-safe. */
void leasemgr_free(struct leasemgr *m);

/* "10.5.1.0/24" or "10.5.1.0/24,fc00::/64" for a lease's subnets; @buf holds 2 * IPAM_PREFIX_STRLEN. */
char *leasemgr_subnets_str(const struct lease *l, char *buf);

#endif
