/*
 * twilld's metrics and readiness beyond start-up: fills the twill_* families of
 * lib/metrics.h from the counters the modules keep (lease manager, etcd store,
 * netlink, backend, udp data path) at scrape time, counts lease events, and
 * decides whether the own lease can still be confirmed (/readyz).
 *
 * Readiness after start-up (twilld_ready_eval): ready while
 *   1. the own lease is held (not lost and being re-acquired),
 *   2. its expiry, as last confirmed by etcd (acquisition or renewal), is in
 *      the future, and
 *   3. with the etcd store: etcd answered (any reply below HTTP 500, watch
 *      data) within the confirmation window min(lease TTL, renew margin)
 *      (default min(24 h, 60 min) = 60 min).
 * Everything runs on the loop thread. Does not log.
 */
#ifndef TWILL_DAEMON_METRICS_DAEMON_H
#define TWILL_DAEMON_METRICS_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metrics;
struct store;
struct leasemgr;
struct backend;
struct backend_ops;
struct twilld_metrics;

/*
 * Where the scrape finds the daemon's parts: addresses of the daemon's own
 * pointers, read at every scrape (each may hold NULL while not created yet).
 */
struct twilld_metrics_src {
	struct store *const *store;
	struct leasemgr *const *lm;
	const struct backend_ops *const *be_ops;
	struct backend *const *be;
	const bool *started;    /* backend started and subnet file written */
	int64_t lease_ttl_s;    /* --subnet-lease-ttl */
	int64_t renew_margin_s; /* --subnet-lease-renew-margin, in seconds */
};

/*
 * Register twill's families in @reg (metrics_register_twill) and a scrape
 * callback reading @src (copied). NULL with errno (EINVAL, EEXIST, ENOMEM).
 */
struct twilld_metrics *twilld_metrics_new(struct metrics *reg,
                                          const struct twilld_metrics_src *src);
/* Remove the scrape callback and free; call before the daemon's parts are freed. NULL-safe. */
void twilld_metrics_free(struct twilld_metrics *tm);

/* Count a lease event: "removed", "resync", "own_acquired", "own_lost". NULL-safe. */
void twilld_metrics_lease_event(struct twilld_metrics *tm, const char *kind);
/* Count a lease manager .added callback as "added" or "changed" (leasemgr_changes()). NULL-safe. */
void twilld_metrics_lease_added(struct twilld_metrics *tm);
/* Add @n to twill_kernel_repairs_total (iptables rules restored). NULL-safe. */
void twilld_metrics_kernel_repairs(struct twilld_metrics *tm, uint64_t n);

/* Readiness after start-up (rules in the file comment); false with a reason in @reason. */
bool twilld_metrics_ready(struct twilld_metrics *tm, char *reason, size_t len);

/* What readiness looks at (pure input of twilld_ready_eval). */
struct twilld_ready_input {
	bool have_lease;          /* the lease manager holds the own lease */
	int64_t expires_at;       /* own lease expiry, CLOCK_REALTIME s; 0 = never/unknown */
	int64_t now_s;            /* CLOCK_REALTIME s */
	bool etcd;                /* etcd contact is known (etcd store) */
	uint64_t etcd_last_ok_ms; /* ev_now_ms() of the last answer; 0 = never */
	uint64_t now_ms;          /* ev_now_ms() */
	int64_t lease_ttl_s;
	int64_t renew_margin_s;
	const char *endpoint; /* for the reason; may be NULL */
};

/* The confirmation window in seconds: min(TTL, margin), each ignored when <= 0; at least 1. */
int64_t twilld_ready_window_s(int64_t lease_ttl_s, int64_t renew_margin_s);
/* Pure readiness rule; true when ready, else false and a one-line reason in @reason. */
bool twilld_ready_eval(const struct twilld_ready_input *in, char *reason, size_t len);

#endif
