/*
 * The HTTP/2 call layer of the etcd store (docs/etcd.md, "gRPC"): gRPC calls on one
 * libcurl multi handle, so every call to an endpoint shares its one HTTP/2 connection.
 *
 * Endpoints: none is trusted before it answered. The first call races them: a
 * Maintenance/Status goes to every endpoint at once and the first to answer becomes the
 * endpoint in use (logged); the others keep being probed in the background with back-off.
 * A transport failure or an "unavailable" answer marks an endpoint down and moves the
 * calls to another one (or a new race), within ~3 rounds and 3x the request timeout.
 * Auth: with a username, a token from Auth/Authenticate goes in the `token` header; an
 * "invalid auth token" answer drops it, re-authenticates and retries once. Without a
 * username no token is ever sent (TLS client certificates then name the user).
 *
 * CURLcode, HTTP status and grpc-status stop here: callbacks see -errno and a reason.
 * Callbacks run from the loop, never from inside the call that started the request.
 */
#ifndef TWILL_SUBNET_ETCD_CLIENT_H
#define TWILL_SUBNET_ETCD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "subnet/etcd_codec.h"
#include "subnet/store.h"
#include "subnet/store_stats.h"

struct ev_loop;
struct etcd_client;
struct etcd_call;
struct etcd_stream;

/* gRPC method paths (service + method). */
#define ETCD_PATH_KV_RANGE        "/etcdserverpb.KV/Range"
#define ETCD_PATH_KV_PUT          "/etcdserverpb.KV/Put"
#define ETCD_PATH_KV_DELETE       "/etcdserverpb.KV/DeleteRange"
#define ETCD_PATH_KV_TXN          "/etcdserverpb.KV/Txn"
#define ETCD_PATH_LEASE_GRANT     "/etcdserverpb.Lease/LeaseGrant"
#define ETCD_PATH_LEASE_REVOKE    "/etcdserverpb.Lease/LeaseRevoke"
#define ETCD_PATH_LEASE_KEEPALIVE "/etcdserverpb.Lease/LeaseKeepAlive"
#define ETCD_PATH_LEASE_TTL       "/etcdserverpb.Lease/LeaseTimeToLive"
#define ETCD_PATH_AUTHENTICATE    "/etcdserverpb.Auth/Authenticate"
#define ETCD_PATH_STATUS          "/etcdserverpb.Maintenance/Status"
#define ETCD_PATH_WATCH           "/etcdserverpb.Watch/Watch"

struct etcd_answer {
	int err;            /* 0 or -errno (etcd_status(); transport: lib/http.h's codes) */
	const char *errmsg; /* reason when err != 0 */
	const uint8_t *msg; /* err 0: the reply message (without the gRPC prefix) */
	size_t len;
	bool ambiguous; /* some failed attempt may have been applied */
	size_t ep;      /* the endpoint that answered last */
};

typedef void (*etcd_call_cb)(void *ctx, const struct etcd_answer *r);

/* A client for @opts (endpoints checked: http:// or https://). NULL with errno. Logs nothing. */
struct etcd_client *etcd_client_new(struct ev_loop *loop, const struct store_opts *opts);
/* Cancels every call and stream (no callbacks). NULL-safe. */
void etcd_client_free(struct etcd_client *c);

/*
 * A unary call of @path with the framed @req (taken, freed by the call), retried on other
 * endpoints as above. @cb runs exactly once unless cancelled. NULL with errno.
 */
struct etcd_call *etcd_call(struct etcd_client *c, const char *path, struct etcd_buf *req,
                            enum store_stat_op stat, etcd_call_cb cb, void *ctx);
/*
 * As etcd_call, for a bidirectional method asked one question: the request side stays
 * open until the first reply message (through grpc-proxy a half-close ends a
 * LeaseKeepAlive stream before its reply: docs/etcd.md).
 */
struct etcd_call *etcd_call_open(struct etcd_client *c, const char *path, struct etcd_buf *req,
                                 enum store_stat_op stat, etcd_call_cb cb, void *ctx);
/* One attempt on endpoint @ep only, no retry (liveness probes). NULL with errno. */
struct etcd_call *etcd_call_on(struct etcd_client *c, size_t ep, const char *path,
                               struct etcd_buf *req, enum store_stat_op stat, etcd_call_cb cb,
                               void *ctx);
/* No callback after this. NULL-safe. */
void etcd_call_cancel(struct etcd_call *call);

/*
 * Streams. @on_msg gets each message; @on_end runs once when the stream ended (err -EPIPE
 * when it ended with grpc-status 0, else the failure), not after etcd_stream_close().
 */
typedef void (*etcd_msg_cb)(void *ctx, const uint8_t *msg, size_t len);
typedef void (*etcd_end_cb)(void *ctx, int err, const char *errmsg);

/*
 * Open a bidirectional stream of @path on the endpoint in use, its request side left open
 * (the token is fetched first when needed). Returns 0 and reports through the callbacks
 * (on_end when it cannot be opened), or -errno.
 */
struct etcd_stream *etcd_stream_open(struct etcd_client *c, const char *path, long idle_ms,
                                     etcd_msg_cb on_msg, etcd_end_cb on_end, void *ctx);
/* Send the framed @msg (copied) on the request side. 0 or -errno. */
int etcd_stream_send(struct etcd_stream *s, const struct etcd_buf *msg);
/* The endpoint of @s (index), or -1 while it is still being chosen. */
long etcd_stream_ep(const struct etcd_stream *s);
/* Cancel: no callback after this. NULL-safe. */
void etcd_stream_close(struct etcd_stream *s);

/* Endpoint @i's URL; the endpoint in use (before one answered: the list, comma-separated). */
const char *etcd_client_ep_url(const struct etcd_client *c, size_t i);
const char *etcd_client_endpoint(const struct etcd_client *c);
size_t etcd_client_n_eps(const struct etcd_client *c);
/* Mark @ep down (a watch found it silent): calls move elsewhere. */
void etcd_client_ep_failed(struct etcd_client *c, size_t ep, const char *why);
/* Called when a unary call timed out on @ep (the watch probes its stream there). */
void etcd_client_on_timeout(struct etcd_client *c, void (*fn)(void *ctx, size_t ep), void *ctx);
int etcd_client_timeout_ms(const struct etcd_client *c);
bool etcd_client_has_auth(const struct etcd_client *c);
/* The counters (store_stats.h), for the store and its watch to update. */
struct store_stats *etcd_client_stats(struct etcd_client *c);
/* Count a failure of kind @err (-errno from a reply) in the stats. */
void etcd_client_stat_err(struct etcd_client *c, int err);

#endif
