/*
 * Test hooks for the local file store (store_local_new() in subnet/store.h),
 * compiled into the test support library only: each accepts only a store made
 * by store_local_new() and returns -EINVAL for any other store.
 */
#ifndef TWILL_TESTS_STORE_LOCAL_TEST_H
#define TWILL_TESTS_STORE_LOCAL_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "subnet/store.h"

/* True when @s was made by store_local_new(). */
bool store_is_local(const struct store *s);
/* Current revision of the store (after re-reading the file if it changed). */
int64_t store_local_revision(struct store *s);
/*
 * Drop the event history up to @rev inclusive (0 = the current revision), as
 * etcd's compaction: a watch that still needs an older revision gets -ESTALE.
 * 0, or -EINVAL when @rev is in the future.
 */
int store_local_compact(struct store *s, int64_t rev);
/* Expire lease @lease_id now, as if its TTL ran out (keys deleted, DELETE events). 0 or -ENOENT. */
int store_local_expire(struct store *s, int64_t lease_id);
/* Break every live watch with @err (-EPIPE, -ESTALE) on the next loop iteration. */
int store_local_break_watches(struct store *s, int err);
/* Length of one TTL "second" in milliseconds (default 1000): lets tests expire leases fast. */
int store_local_set_time_unit(struct store *s, int64_t ms);
/*
 * Seconds left of lease @lease_id (rounded down, as etcd's timetolive), read
 * without refreshing it. 0, or -ENOENT when the lease is gone.
 */
int store_local_lease_ttl(struct store *s, int64_t lease_id, int64_t *ret_ttl_s);
/* The next @count requests complete with @err (and change nothing). */
int store_local_fail_next(struct store *s, int err, int count);
/* list_pages delivers @n kvs per page (default 500, etcd's page in store_etcd). */
int store_local_set_page_size(struct store *s, size_t n);

#endif
