/*
 * Asynchronous HTTP client on an ev_loop. HTTP/2 requests share one connection per origin:
 * h2c with prior knowledge on http:// through lib/h2c.c (nghttp2; libcurl 7.88 cannot share
 * an h2c connection, docs/etcd.md), h2 by ALPN on https:// through libcurl's multi-socket
 * API with multiplexing on; HTTP/1.1 through libcurl too. libcurl is loaded at run time by
 * the first request that needs it (lib/curl_dl.h), never for h2c. Requests are POSTs whose body
 * is given whole, or streamed: the request side stays open and
 * http_req_send() adds to it (the transfer pauses while there is nothing to
 * send); the response body is buffered or handed over as it arrives.
 *
 * libcurl's CURLcode stops here: completions carry -errno and a reason.
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
	/*
	 * 0, or the transport failure: -ECONNREFUSED (no connection: refused, unreachable, name
	 * not resolved; nothing was sent), -ETIMEDOUT (total or idle limit), -ECONNRESET (the
	 * connection or stream broke after the request may have been sent), -ECONNABORTED (TLS
	 * handshake failed), -EKEYREJECTED (TLS certificate refused by either side or unusable),
	 * -EMSGSIZE (response over the limit), -ENOMEM, -EIO (anything else).
	 */
	int err;
	long status;      /* HTTP status, 0 when no response arrived */
	const char *body; /* buffered requests: the body (NUL-terminated); streamed: NULL */
	size_t body_len;
	const char *errmsg;  /* the reason when err != 0, else "" */
	const char *headers; /* every response header and trailer line, "name: value\r\n" each */
};

/* Completion: runs exactly once unless the request was cancelled first. */
typedef void (*http_done_cb)(void *ctx, const struct http_response *resp);
/* Streamed body data, in arrival order, before the completion. */
typedef void (*http_data_cb)(void *ctx, const char *data, size_t len);

struct http_request_opts {
	const char *url;
	const char *body; /* copied; NULL with stream_body false = GET */
	size_t body_len;
	bool stream_body; /* POST whose body comes from http_req_send() (body, if set, first) */
	bool h2;          /* HTTP/2 only: prior knowledge on http://, ALPN h2 on https:// */
	const char *const *headers; /* NULL-terminated extra "Name: value" lines, copied */
	long timeout_ms;            /* total time limit; 0 = none */
	long connect_timeout_ms;    /* 0 = timeout_ms, or curl's default when that is 0 too */
	long idle_ms; /* fail with -ETIMEDOUT after this long without a byte; 0 = off */
	const char *cafile, *certfile, *keyfile; /* TLS files, NULL = system defaults / none */
	http_data_cb on_data; /* set: stream the body to it instead of buffering */
	size_t max_body;      /* buffered body limit (0 = 64 MiB): -EMSGSIZE beyond */
};

/* A client on @loop; NULL with errno on failure. */
struct http_client *http_client_new(struct ev_loop *loop);
/* Cancel every request (no callbacks) and free. Safe from any callback. NULL-safe. */
void http_client_free(struct http_client *c);
/*
 * Start a request; NULL with errno and no callback on failure: EINVAL bad options, ENOMEM,
 * ELIBACC an https:// or HTTP/1.1 request and libcurl (loaded on the first one) is missing.
 */
struct http_req *http_request(struct http_client *c, const struct http_request_opts *o,
                              http_done_cb done, void *ctx);
/* Append @len bytes to a streamed request body and resume sending. 0 or -errno. */
int http_req_send(struct http_req *r, const void *data, size_t len);
/* Abort a request: no callback runs for it afterwards. Safe from any callback. NULL-safe. */
void http_cancel(struct http_req *r);
/* strerror() of an http_request() errno (either sign), with what to install for ELIBACC. */
const char *http_strerror(int err);
/* Requests started and not yet completed or cancelled. */
size_t http_client_active(const struct http_client *c);
/* TCP connections opened so far, by libcurl and by h2c (to check connection reuse). */
size_t http_client_connects(const struct http_client *c);
/*
 * The value of the last header or trailer @name (case-insensitive) in @headers, copied
 * into @buf (@len bytes, NUL-terminated, trailing blanks dropped); NULL when absent.
 */
const char *http_header_get(const char *headers, const char *name, char *buf, size_t len);

#endif
