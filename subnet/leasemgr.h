/*
 * The lease manager: acquires this node's lease exactly as COMPAT.md §3, renews
 * it, re-acquires it when lost, and watches every lease, reporting remote ones
 * (the own lease excluded) to a consumer, with no event lost or duplicated
 * across compactions and broken streams.
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
	const char *prefix;              /* etcd prefix, default "/coreos.com/network" */
	int64_t lease_ttl_s;             /* default 86400 (--subnet-lease-ttl) */
	int64_t renew_margin_s;          /* default 3600 (--subnet-lease-renew-margin minutes * 60) */
	int64_t retry_ms;                /* renewal retry after failure, default 60000 */
	const char *subnet_file;         /* read FLANNEL_SUBNET from it for re-use; may be NULL */
	ipam_rand_fn rnd;                /* NULL = getrandom-based */
	void *rnd_ctx;
};

/* Consumer callbacks; every pointer is valid only during the call. */
struct leasemgr_events {
	/* Own lease acquired (first time, or re-acquired after loss: check subnet). */
	void (*own_acquired)(void *ctx, const struct lease *own);
	/* Own lease lost (deleted or expired); the manager re-acquires on its own. */
	void (*own_lost)(void *ctx, const struct lease *old);
	/* The full set of remote leases: after the first listing and after every relist. */
	void (*resync)(void *ctx, const struct lease *leases, size_t n);
	/* One remote lease added, or changed (same subnet, other attributes). */
	void (*added)(void *ctx, const struct lease *l);
	void (*removed)(void *ctx, const struct lease *l);
	/* A fatal condition for acquisition (e.g. -ENOSPC out of subnets); manager keeps retrying. */
	void (*error)(void *ctx, int err, const char *msg);
};

struct leasemgr *leasemgr_new(struct ev_loop *loop, struct store *store,
			      const struct leasemgr_opts *opts, const struct leasemgr_events *ev,
			      void *ctx);
/* Start acquiring with @cfg and @own_attrs (copied). 0 or -errno. */
int leasemgr_start(struct leasemgr *m, const struct subnet_config *cfg,
		   const struct lease_attrs *own_attrs);
/* The own lease, or NULL while none is held. */
const struct lease *leasemgr_own(const struct leasemgr *m);
/* Remote leases currently known (sorted by subnet). */
const struct lease *leasemgr_remote(const struct leasemgr *m, size_t *ret_n);
/* Stops timers and watches; the lease stays in the store. NULL-safe. */
void leasemgr_free(struct leasemgr *m);

#endif
