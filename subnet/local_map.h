/*
 * The local store's versioned map: etcd v3's data model in memory. Keys sorted,
 * each with create/mod revisions, a version and a lease; leases with a TTL and a
 * wall-clock deadline; a bounded history of events for watches. Pure: no I/O,
 * no clock (callers pass the time), no logging. One request bumps m->rev once
 * and passes it to the changes it makes.
 */
#ifndef TWILL_SUBNET_LOCAL_MAP_H
#define TWILL_SUBNET_LOCAL_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "subnet/store.h"

#define LMAP_LOG_MAX     2048 /* events kept for watches; older ones are compacted away */
#define LMAP_FIRST_LEASE 0x7a11000000000001LL

struct lkv {
	char *key;
	char *value;
	size_t len;
	int64_t create_rev, mod_rev, version, lease;
};

struct llease {
	int64_t id;
	int64_t ttl;
	int64_t expires_ms; /* CLOCK_REALTIME */
};

struct levent {
	int64_t rev;
	enum store_event_type type;
	struct lkv kv;
	struct lkv prev; /* key NULL when none */
};

struct local_map {
	struct lkv *kvs; /* sorted by key */
	size_t n_kvs, cap_kvs;
	struct llease *leases;
	size_t n_leases, cap_leases;
	int64_t rev, compact_rev, next_lease;
	struct levent *log; /* oldest first */
	size_t n_log, cap_log;
	int64_t unit_ms; /* length of one TTL "second" */
	bool dirty;      /* changed since the file was last written */
};

/* An empty map at revision 1 with 1000 ms seconds. */
void lmap_init(struct local_map *m);
/* Free everything @m holds (it may be lmap_init()ed again). */
void lmap_clear(struct local_map *m);
/* Replace the keys and leases by @kvs and @leases (taken over, malloc'd; NULL when 0). */
void lmap_replace(struct local_map *m, struct lkv *kvs, size_t n_kvs, struct llease *leases,
                  size_t n_leases);

void lkv_clear(struct lkv *kv);
/* Deep copy; 0 or -ENOMEM (@dst cleared). */
int lkv_copy(struct lkv *dst, const struct lkv *src);

/* Binary search: the index of @key, or -(insertion point) - 1. */
ssize_t lmap_find(const struct local_map *m, const char *key);
/* The range [*ret_from, *ret_to) of keys starting with @prefix. */
void lmap_prefix_range(const struct local_map *m, const char *prefix, size_t *ret_from,
                       size_t *ret_to);
struct llease *lmap_lease_find(struct local_map *m, int64_t id);
/* Forget the events up to @upto inclusive: watches from before get -ESTALE. */
void lmap_log_trim(struct local_map *m, int64_t upto);
/* Record an event (@prev may be NULL); the oldest half goes when LMAP_LOG_MAX is reached. */
int lmap_log_append(struct local_map *m, int64_t rev, enum store_event_type type,
                    const struct lkv *kv, const struct lkv *prev);
/* Put @key at revision @rev with @lease (0 = none); 0 or -ENOMEM. */
int lmap_put(struct local_map *m, const char *key, const char *value, size_t len, int64_t lease,
             int64_t rev);
/* Delete the key at index @i at revision @rev. */
void lmap_delete_at(struct local_map *m, size_t i, int64_t rev);
void lmap_lease_remove(struct local_map *m, int64_t id);
/* Delete every key attached to lease @id in one new revision, and the lease. */
void lmap_lease_drop(struct local_map *m, int64_t id);
/* Drop the leases whose deadline is at or before @now (ms). */
void lmap_expire_due(struct local_map *m, int64_t now);
/* Whether a lease is due at @now. */
bool lmap_any_due(const struct local_map *m, int64_t now);
/* A new lease of @ttl seconds (at least 2, as etcd) from @now; NULL on ENOMEM. */
struct llease *lmap_lease_grant(struct local_map *m, int64_t ttl, int64_t now);
/* Restart lease @l's TTL from @now. */
void lmap_lease_refresh(struct local_map *m, struct llease *l, int64_t now);
/* Whole seconds left of @l at @now (rounded down, as etcd's timetolive); 0 when due. */
int64_t lmap_lease_left_s(const struct local_map *m, const struct llease *l, int64_t now);

#endif
