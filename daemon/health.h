/*
 * twilld's health and metrics HTTP/1.1 server (--healthz-ip/--healthz-port),
 * served by the event loop: non-blocking sockets, no threads, a bounded
 * request size, a per-connection deadline, a cap on concurrent connections.
 *
 *   GET /healthz  200 "ok" while the loop runs
 *   GET /readyz   200 "ok" while the readiness callback says ready, else 503
 *                 with its reason in the body
 *   GET /metrics  Prometheus text (lib/metrics.h), text/plain; version=0.0.4
 *   GET /v1/status  the node status as JSON (daemon/status.h), when a status callback is set
 * HEAD is accepted wherever GET is; other methods get 405, unknown paths 404,
 * malformed requests 400 and oversized ones 413 (then the connection closes).
 *
 * The request parser is a pure function over a buffer (health_http_parse).
 */
#ifndef TWILL_DAEMON_HEALTH_H
#define TWILL_DAEMON_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct metrics;
struct health;

#define HEALTH_REQUEST_MAX 8192  /* default cap on request line + headers */
#define HEALTH_CONNS_MAX   64    /* default cap on concurrent connections */
#define HEALTH_TIMEOUT_MS  10000 /* default time for a client to send one request */
#define HEALTH_ERR_MAX     256

/*
 * Readiness: true when ready; otherwise false with a one-line reason in @reason
 * (NUL-terminated, at most @len bytes), e.g. "no lease yet". Runs in the loop.
 */
typedef bool (*health_ready_fn)(void *ctx, char *reason, size_t len);
/* /v1/status: a malloc'd JSON body in *@ret_text (@ret_len bytes), or -errno (500). */
typedef int (*health_status_fn)(void *ctx, char **ret_text, size_t *ret_len);

struct health_opts {
	const char *ip;          /* listen address, IPv4 or IPv6 text; NULL or "" = 0.0.0.0 */
	uint16_t port;           /* 0 = an ephemeral port (tests; see health_port()) */
	struct metrics *metrics; /* served on /metrics; NULL = 404 there */
	health_ready_fn ready;   /* NULL = /readyz always 200 */
	void *ready_ctx;
	health_status_fn status; /* NULL = 404 on /v1/status */
	void *status_ctx;
	unsigned max_conns;  /* 0 = HEALTH_CONNS_MAX */
	unsigned timeout_ms; /* 0 = HEALTH_TIMEOUT_MS: per request, from accept or last reply */
	size_t max_request;  /* 0 = HEALTH_REQUEST_MAX (at least 256) */
};

/*
 * Bind, listen and serve from @loop. NULL with errno set and a reason in @err
 * ("bind 127.0.0.1:80: Address already in use"). Does not log.
 */
struct health *health_new(struct ev_loop *loop, const struct health_opts *opts, char *err,
                          size_t errlen);
/* The bound port (useful with port 0). */
uint16_t health_port(const struct health *h);
/* Connections currently open. */
unsigned health_conns(const struct health *h);
/* Close every connection and the listener; call before ev_loop_free(). NULL-safe. */
void health_free(struct health *h);

/* ---- The request parser (pure; fuzzed) ---- */

enum http_method {
	HTTP_GET,
	HTTP_HEAD,
	HTTP_OTHER, /* a syntactically valid method we do not serve: 405 */
};

struct http_request {
	enum http_method method;
	const char *path; /* points into the buffer: the target up to '?' (not NUL-terminated) */
	size_t path_len;
	int minor;       /* HTTP/1.<minor>: 0 or 1 */
	bool keep_alive; /* 1.1 without "Connection: close", or 1.0 with "keep-alive" */
	bool has_host;
};

/*
 * Parse one request head (request line and headers up to the empty line) at the
 * start of @buf. Returns the number of bytes it spans (> 0) when complete,
 * 0 when more bytes are needed, -EINVAL for a malformed request (a reason in
 * @err if not NULL), -E2BIG when a complete head would exceed @max bytes
 * (checked on incomplete input too), -ENOTSUP for a request with a body
 * (Content-Length > 0 or Transfer-Encoding), -EPROTONOSUPPORT for a version
 * other than HTTP/1.0 and HTTP/1.1.
 * Accepts CRLF or bare LF line ends. Never reads past @len.
 */
int health_http_parse(const char *buf, size_t len, size_t max, struct http_request *ret, char *err,
                      size_t errlen);

#endif
