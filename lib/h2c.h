/*
 * HTTP/2 over cleartext TCP with prior knowledge (h2c), on nghttp2, for lib/http.c.
 *
 * Why not libcurl: libcurl 7.88 (Debian 12) cannot reuse or share an h2c connection
 * (docs/etcd.md, "HTTP/2 without TLS"), so every call to an http:// etcd endpoint would open a
 * connection of its own. Here one pool keeps one connection per origin (host:port) and
 * multiplexes every request on it; a connection that broke, got a GOAWAY or stopped answering
 * is retired and the next request opens a fresh one.
 *
 * The interface is lib/http.h's: the same options, response and callbacks, with the same
 * guarantees (callbacks run from the loop, never from inside the call that started the
 * request; cancel and free are safe from any callback; -errno in the response, never an
 * nghttp2 code).
 */
#ifndef TWILL_LIB_H2C_H
#define TWILL_LIB_H2C_H

#include <stddef.h>

#include "lib/http.h"

struct ev_loop;
struct h2c_pool;
struct h2c_stream;

/* A pool on @loop; NULL with errno. */
struct h2c_pool *h2c_pool_new(struct ev_loop *loop);
/* Cancel every request (no callbacks), close every connection, free. Safe from callbacks. */
void h2c_pool_free(struct h2c_pool *p);
/* Start a request on @o->url (http://host:port/path); NULL with errno, no callback. */
struct h2c_stream *h2c_request(struct h2c_pool *p, const struct http_request_opts *o,
                               http_done_cb done, void *ctx);
/* Append to a streamed request body. 0 or -errno. */
int h2c_send(struct h2c_stream *s, const void *data, size_t len);
/* No callback for @s afterwards; the server is told (RST_STREAM). NULL-safe. */
void h2c_cancel(struct h2c_stream *s);
/* TCP connections the pool opened so far. */
size_t h2c_pool_connects(const struct h2c_pool *p);

#endif
