/*
 * etcd's gRPC messages and their framing (docs/etcd.md, "gRPC"): pure functions over
 * buffers, no I/O, no logging. Requests are built framed (the 5-byte gRPC prefix and the
 * protobuf bytes), ready to post; replies are decoded into the store's types. Every
 * decoder rejects bad input with a reason and never crashes (tests/fuzz/).
 */
#ifndef TWILL_SUBNET_ETCD_CODEC_H
#define TWILL_SUBNET_ETCD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "subnet/store.h"

/* Largest message accepted from etcd: a listing page of 500 keys is far below. */
#define ETCD_MSG_MAX (16u << 20)

/* A framed request (gRPC prefix + protobuf message). */
struct etcd_buf {
	uint8_t *data;
	size_t len;
};

void etcd_buf_free(struct etcd_buf *b);

/* ---- requests: 0 or -ENOMEM (@ret zeroed then) ---- */

/*
 * A range of [@key, @end) (@end NULL: the key alone), sorted by key, at most @limit kvs
 * (0 = all), at @rev (0 = now); @count_only: the count and header only.
 */
int etcd_enc_range(const char *key, size_t klen, const char *end, size_t elen, int64_t limit,
                   int64_t rev, bool count_only, struct etcd_buf *ret);
int etcd_enc_put(const char *key, size_t klen, const char *val, size_t vlen, int64_t lease,
                 struct etcd_buf *ret);
int etcd_enc_delete(const char *key, size_t klen, struct etcd_buf *ret);
/*
 * A txn: if @key's mod_revision is @expect (0: the key is absent), put @val with @lease
 * (@del false) or delete the key (@del true); else read the key.
 */
int etcd_enc_txn(const char *key, size_t klen, int64_t expect, bool del, const char *val,
                 size_t vlen, int64_t lease, struct etcd_buf *ret);
/*
 * A guarded create: if no key in [@guard, @gend) exists (one Compare over that range:
 * create_revision == 0, docs/etcd.md "Compare over a range"), put @key = @val with
 * @lease; else read the range (sorted by key).
 */
int etcd_enc_txn_guarded(const char *key, size_t klen, const char *guard, size_t glen,
                         const char *gend, size_t gelen, const char *val, size_t vlen,
                         int64_t lease, struct etcd_buf *ret);

enum etcd_lease_op {
	ETCD_LEASE_GRANT,
	ETCD_LEASE_REVOKE,
	ETCD_LEASE_KEEPALIVE,
	ETCD_LEASE_TIMETOLIVE
};
/* @arg: the TTL for a grant, else the lease ID. */
int etcd_enc_lease(enum etcd_lease_op op, int64_t arg, struct etcd_buf *ret);
int etcd_enc_auth(const char *name, const char *password, struct etcd_buf *ret);
/* Maintenance/Status (empty): what an endpoint race asks. */
int etcd_enc_status(struct etcd_buf *ret);
/* WatchRequest: create on [@key, @end) from @start_rev, with prev_kv and progress_notify. */
int etcd_enc_watch_create(const char *key, size_t klen, const char *end, size_t elen,
                          int64_t start_rev, struct etcd_buf *ret);
int etcd_enc_watch_cancel(int64_t watch_id, struct etcd_buf *ret);
int etcd_enc_watch_progress(struct etcd_buf *ret);

/* ---- framing and status ---- */

/*
 * One gRPC message at the start of @buf (@len bytes): 1 with *@msg / *@msg_len (pointing
 * into @buf) and *@used (bytes taken, prefix included); 0 when more bytes are needed;
 * -EPROTO (a compressed message: never asked for) or -EMSGSIZE (announced length over
 * @max) with a reason in @err.
 */
int etcd_unframe(const uint8_t *buf, size_t len, size_t max, const uint8_t **msg, size_t *msg_len,
                 size_t *used, char *err, size_t errlen);

/*
 * The outcome of a call from its HTTP status and its grpc-status / grpc-message values
 * (NULL when absent: a reply cut short). 0, or -errno with a reason in @err:
 * -EPERM invalid token (re-authenticate), -EACCES permission / user / password,
 * -ENOENT lease not found, -ESTALE compacted or future revision, -EINVAL bad request,
 * -EEXIST exists / failed precondition, -EAGAIN unavailable (retry elsewhere),
 * -EOPNOTSUPP unimplemented, -EMSGSIZE too large, -EPROTO not gRPC / no status, -EIO.
 */
int etcd_status(long http_status, const char *grpc_status, const char *grpc_message, char *err,
                size_t errlen);
/* Percent-decode a grpc-message value into @out (non-printable bytes become '?'). */
void etcd_message_decode(const char *in, char *out, size_t outlen);

/* ---- replies ---- */

enum etcd_reply {
	ETCD_REPLY_RANGE,      /* revision, kvs */
	ETCD_REPLY_PUT,        /* revision */
	ETCD_REPLY_DELETE,     /* revision, succeeded = deleted > 0 */
	ETCD_REPLY_TXN,        /* revision, succeeded, kvs of a response_range */
	ETCD_REPLY_GRANT,      /* lease_id, ttl */
	ETCD_REPLY_REVOKE,     /* revision */
	ETCD_REPLY_KEEPALIVE,  /* lease_id, ttl (0 = lease lost) */
	ETCD_REPLY_TIMETOLIVE, /* lease_id, ttl (0 when -1 = gone) */
};

/*
 * Decode a reply message of @kind into @res (kvs allocated: store_result_clear()). Keys
 * that are empty or hold a NUL byte are skipped. 0, or -EPROTO with a reason in @err and
 * @res cleared, -ENOMEM.
 */
int etcd_decode_reply(enum etcd_reply kind, const uint8_t *buf, size_t len,
                      struct store_result *res, char *err, size_t errlen);
/* An AuthenticateResponse: the token (printable ASCII, malloc'd) in *@ret; 0 or -EPROTO. */
int etcd_decode_token(const uint8_t *buf, size_t len, char **ret);

/* One WatchResponse. */
struct etcd_watch_msg {
	int64_t watch_id;
	bool created;
	bool canceled;
	int64_t revision;         /* header.revision, 0 when absent */
	int64_t compact_revision; /* canceled because compacted: the compaction revision */
	char reason[256];         /* cancel_reason */
	struct store_event *evs;  /* store_events_free(evs, n_evs) */
	size_t n_evs;
};

/* 0, or -EPROTO (reason in m->reason, no evs) / -ENOMEM. */
int etcd_decode_watch(const uint8_t *buf, size_t len, struct etcd_watch_msg *m);

#endif
