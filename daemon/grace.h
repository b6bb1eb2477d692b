/*
 * The removal grace: a remote lease that had an etcd lease (it expired or was
 * revoked) keeps its kernel state for a short grace before it is withdrawn,
 * because after a partition longer than the TTL every owner re-acquires the
 * same subnet a few ms after its expiry DELETE, and withdrawing and re-adding
 * in between would drop packets. One timer for all; the leases whose grace ran
 * out are withdrawn together, as one backend burst.
 */
#ifndef TWILL_DAEMON_GRACE_H
#define TWILL_DAEMON_GRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "subnet/lease.h"

struct ev_loop;
struct grace;

/* The grace of these @n leases ran out: withdraw them now. Must not call grace_*() on it. */
typedef void (*grace_withdraw_cb)(void *ctx, const struct lease *const *leases, size_t n);

/*
 * Leases wait @grace_ms; withdrawals due within @slack_ms go out with the
 * current burst. NULL with errno set.
 */
struct grace *grace_new(struct ev_loop *loop, uint64_t grace_ms, uint64_t slack_ms,
                        grace_withdraw_cb cb, void *ctx);
/* Drops what is pending (nothing is withdrawn). NULL-safe. */
void grace_free(struct grace *g);
/* Defer the withdrawal of @l (copied). 0, or -errno: then the caller withdraws it at once. */
int grace_add(struct grace *g, const struct lease *l);
/*
 * @l is back: when its withdrawal was pending, cancel it and say whether its
 * attributes are unchanged (*@ret_same: nothing to do in the kernel). False
 * when none was pending.
 */
bool grace_cancel(struct grace *g, const struct lease *l, bool *ret_same);
/* Forget every pending withdrawal (the kernel keeps what it has: a resync follows). */
void grace_reset(struct grace *g);

#endif
