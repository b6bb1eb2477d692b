/*
 * Asynchronous HTTP client: libcurl's multi-socket API driven by an ev_loop.
 * One client = one curl multi handle (one connection cache, so connections are
 * reused). Requests are POSTs (or GETs without a body), either buffered (the
 * whole body in the completion) or streamed (chunks as they arrive).
 *
 * Every callback runs from the loop, outside libcurl, never from inside the call
 * that started the request, so callbacks may start, cancel or free anything,
 * including the client. No call here blocks. Logs at debug at most.
 */
#ifndef TWILL_LIB_HTTP_H
#define TWILL_LIB_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct ev_loop;
struct http_client;
struct http_req;

struct http_response {
	int curl_rc;      /* CURLcode: 0 ok, 7 connect failed, 28 timed out (total or idle), ... */
	long status;      /* HTTP status, 0 when no response arrived */
	const char *body; /* buffered requests: NUL-terminated body; streamed: NULL */
	size_t body_len;
	const char *errmsg; /* curl's reason when curl_rc != 0, else "" */
	const char *url;
};

/* Completion: runs exactly once unless the request was cancelled first. */
typedef void (*http_done_cb)(void *ctx, const struct http_response *resp);
/* Streamed body data, in arrival order, before the completion. */
typedef void (*http_data_cb)(void *ctx, const char *data, size_t len);

struct http_request_opts {
	const char *url;
	const char *body; /* copied; NULL = GET */
	size_t body_len;
	const char *const
		*headers; /* NULL-terminated extra "Name: value" lines, copied; may be NULL */
	long timeout_ms;  /* total time limit; 0 = none */
	long connect_timeout_ms; /* 0 = timeout_ms, or curl's default when that is 0 too */
	long idle_ms;            /* fail with curl_rc 28 after this long without a byte; 0 = off */
	const char *cafile, *certfile, *keyfile; /* TLS files, NULL = system defaults / none */
	http_data_cb on_data; /* set: stream the body to it instead of buffering */
};

/* A client on @loop; NULL with errno on failure. */
struct http_client *http_client_new(struct ev_loop *loop);
/* Cancel every request (no callbacks) and free. Safe from any callback. NULL-safe. */
void http_client_free(struct http_client *c);
/* Start a request; NULL with errno (-EINVAL bad options, ENOMEM) and no callback on failure. */
struct http_req *http_request(struct http_client *c, const struct http_request_opts *o,
                              http_done_cb done, void *ctx);
/* Abort a request: no callback runs for it afterwards. Safe from any callback. NULL-safe. */
void http_cancel(struct http_req *r);
/* Requests started and not yet completed or cancelled. */
size_t http_client_active(const struct http_client *c);
/* TCP connections libcurl opened so far (to check connection reuse). */
size_t http_client_connects(const struct http_client *c);

#endif
