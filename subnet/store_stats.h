/*
 * Request and error counters of the etcd store, for metrics and readiness.
 * Counted per attempt (a retried call counts every attempt, sent or not). Updated and
 * read on the store's loop thread only.
 */
#ifndef TWILL_SUBNET_STORE_STATS_H
#define TWILL_SUBNET_STORE_STATS_H

#include <stdint.h>

struct store;

enum store_stat_op {
	STORE_STAT_GET,
	STORE_STAT_LIST,
	STORE_STAT_CREATE, /* the txn of a create (its grant and revoke count apart) */
	STORE_STAT_CAS,
	STORE_STAT_PUT,
	STORE_STAT_DELETE,
	STORE_STAT_GRANT,
	STORE_STAT_KEEPALIVE,
	STORE_STAT_REVOKE,
	STORE_STAT_TIMETOLIVE,
	STORE_STAT_AUTH,  /* Auth/Authenticate */
	STORE_STAT_WATCH, /* the store's Watch stream opened (or reopened) */
	STORE_STAT_PROBE, /* a liveness probe: of a silent watch, or of an endpoint (race) */
	STORE_STAT_OP_COUNT,
};

enum store_stat_err {
	STORE_STAT_ERR_CONNECT,     /* no connection (refused, unreachable, DNS) or it broke */
	STORE_STAT_ERR_TIMEOUT,     /* no answer within the request timeout */
	STORE_STAT_ERR_TLS,         /* TLS handshake or certificate failure */
	STORE_STAT_ERR_AUTH,        /* authentication or permission refused */
	STORE_STAT_ERR_UNAVAILABLE, /* gRPC Unavailable (no leader, stopping, timed out) */
	STORE_STAT_ERR_REJECTED,    /* etcd refused the request (another gRPC error) */
	STORE_STAT_ERR_PROTOCOL,    /* a reply that does not parse */
	STORE_STAT_ERR_STREAM,      /* a watch stream ended or broke without a transport error */
	STORE_STAT_ERR_COUNT,
};

struct store_stats {
	uint64_t requests[STORE_STAT_OP_COUNT]; /* HTTP requests started, by operation */
	uint64_t errors[STORE_STAT_ERR_COUNT];  /* failed requests, by kind */
	uint64_t connects;   /* TCP connections opened to etcd: HTTP/2 multiplexes every call on
			      * one per endpoint, so this grows only on a failover or a break */
	uint64_t last_ok_ms; /* ev_now_ms() of the last answer from etcd that proves it serves
			      * (any gRPC answer but Unavailable, watch data); 0 = never */
};

/* Label value for @op ("get", "keepalive", ...); "unknown" when out of range. */
const char *store_stat_op_name(enum store_stat_op op);
/* Label value for @kind ("connect", "timeout", ...); "unknown" when out of range. */
const char *store_stat_err_name(enum store_stat_err kind);

/*
 * Copy the counters of @s into @ret. 0, or -ENOTSUP when @s is not an etcd
 * store (the local store keeps no counters), -EINVAL for NULL. Does not log.
 */
int store_etcd_stats(const struct store *s, struct store_stats *ret);

#endif
