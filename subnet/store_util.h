/*
 * Helpers shared by the store implementations, and the etcd v3 JSON reply
 * parsers (pure functions over a buffer: exported for the unit tests and the
 * fuzz harness; they never log and never crash on any input).
 */
#ifndef TWILL_SUBNET_STORE_UTIL_H
#define TWILL_SUBNET_STORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "subnet/store.h"

/* Free the members of @kv and zero it. NULL-safe. */
void store_kv_clear(struct store_kv *kv);
/* Deep copy @src into @dst (value stays NUL-terminated); 0 or -ENOMEM (dst zeroed then). */
int store_kv_copy(struct store_kv *dst, const struct store_kv *src);
/* Free res->kvs (and each kv) and zero those members; errmsg is not owned. NULL-safe. */
void store_result_clear(struct store_result *res);
/* Free an array of @n events and the array. NULL-safe. */
void store_events_free(struct store_event *evs, size_t n);
/*
 * The etcd range_end that covers every key starting with @prefix (@len bytes): the
 * prefix with its last byte incremented, trailing 0xff bytes dropped; "\0" (all keys
 * >= prefix) when nothing is left. New buffer in *@ret (*@ret_len bytes + a NUL).
 * 0 or -ENOMEM.
 */
int store_prefix_end(const char *prefix, size_t len, char **ret, size_t *ret_len);

/* ---- etcd v3 JSON gateway replies (docs/etcd.md); implemented in store_etcd.c ---- */

/* Which reply shape to expect from a 200 answer. */
enum store_etcd_reply {
	STORE_ETCD_RANGE,      /* kv/range: revision, kvs */
	STORE_ETCD_PUT,        /* kv/put, lease/revoke: revision */
	STORE_ETCD_DELETE,     /* kv/deleterange: revision, succeeded = deleted > 0 */
	STORE_ETCD_TXN,        /* kv/txn: revision, succeeded, kvs of a response_range */
	STORE_ETCD_GRANT,      /* lease/grant: lease_id, ttl */
	STORE_ETCD_KEEPALIVE,  /* lease/keepalive: lease_id, ttl (0 when absent = lease lost) */
	STORE_ETCD_TIMETOLIVE, /* lease/timetolive: lease_id, ttl (0 when absent or -1 = gone) */
};

/*
 * Parse a 200 reply body of @kind into @res (kvs allocated: store_result_clear()).
 * 0, or -EPROTO with a reason in @errbuf (@errlen bytes) and @res cleared.
 */
int store_etcd_parse_reply(enum store_etcd_reply kind, const char *buf, size_t len,
                           struct store_result *res, char *errbuf, size_t errlen);

/*
 * Translate a non-200 answer (or an in-band error object) into -errno with etcd's
 * message in @errbuf: 401 -EPERM (caller re-authenticates), 403 -EACCES, 404 code 5
 * -ENOENT, 400 code 11 -ESTALE, other 400 -EINVAL, 412 -EEXIST, 503/code 14 -EAGAIN
 * (caller retries elsewhere), other 5xx -EIO, anything else -EPROTO.
 */
int store_etcd_parse_error(long status, const char *buf, size_t len, char *errbuf, size_t errlen);

/* One decoded line of a /v3/watch stream. */
struct store_watch_msg {
	bool created;
	bool canceled;
	int64_t revision;         /* header.revision, 0 when absent */
	int64_t compact_revision; /* canceled because compacted: the compaction revision */
	int error;                /* in-band {"error":{...}}: -errno as store_etcd_parse_error */
	char reason[256];         /* cancel_reason or in-band error message */
	struct store_event *evs;  /* store_events_free(evs, n_evs) */
	size_t n_evs;
};

/* Decode one watch line (without the '\n'); 0 or -EPROTO (reason in m->reason, no evs). */
int store_etcd_parse_watch_line(const char *line, size_t len, struct store_watch_msg *m);
/* Parse a /v3/auth/authenticate reply: the token in *@ret (malloc'd); 0 or -EPROTO. */
int store_etcd_parse_token(const char *buf, size_t len, char **ret);

#endif
