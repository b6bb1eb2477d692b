/* Inside lib/h2c: the pool and its streams (h2c.c), the connections (h2c_conn.c). */
#ifndef TWILL_LIB_H2C_INT_H
#define TWILL_LIB_H2C_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <netdb.h>
#include <nghttp2/nghttp2.h>

#include "lib/h2c.h"

#define H2C_ORIGIN_MAX 264 /* a DNS name, a colon and a port, or [v6]:port */
#define H2C_WHY_MAX    400

struct h2c_conn;
struct resolve_job;

struct h2c_stream {
	struct h2c_pool *p;
	struct h2c_conn *k; /* NULL once the connection is gone */
	int32_t id;         /* nghttp2's stream id */
	bool ng_closed;     /* nghttp2 holds no reference any more (closed, or session gone) */
	bool cancelled;     /* no callback any more */
	bool finished;      /* the outcome is known (err, why, status) */
	bool delivered;     /* the completion ran */
	bool queued;        /* on the pool's ready list */
	bool in_cb;         /* one of its callbacks runs: freeing waits */
	bool streamed;      /* response body goes to on_data */
	bool overflow;
	/* request body: up[up_off..up_len); up_end: nothing follows (EOF after it) */
	uint8_t *up;
	size_t up_off, up_len, up_cap;
	bool up_end, deferred;
	/* response */
	long status;
	char *buf; /* buffered body, or streamed data not yet delivered */
	size_t len, cap, max_body;
	char *hdr; /* header and trailer lines */
	size_t hdr_len, hdr_cap;
	int err;
	char why[H2C_WHY_MAX];
	/* deadlines */
	struct ev_timer *timer;
	uint64_t start_ms, deadline_ms, last_rx_ms;
	long idle_ms;
	http_done_cb done;
	http_data_cb on_data;
	void *ctx;
	struct h2c_stream *knext, *kprev; /* on the connection */
	struct h2c_stream *rnext;         /* on the ready list */
};

enum h2c_conn_state { H2C_CONNECTING, H2C_OPEN, H2C_DEAD };

struct h2c_conn {
	struct h2c_pool *p;
	char origin[H2C_ORIGIN_MAX]; /* host:port as given, the :authority */
	enum h2c_conn_state state;
	bool retired; /* takes no new stream (GOAWAY, or it stopped answering) */
	int busy;     /* a function up the stack holds it: destruction waits */
	int fd;
	struct ev_io *io;
	struct ev_timer *timer; /* connect timeout */
	struct addrinfo *ai, *ai_next;
	struct resolve_job *rj; /* resolving its name */
	nghttp2_session *ng;
	uint8_t *out; /* bytes nghttp2 produced that the socket did not take yet */
	size_t out_off, out_len, out_cap;
	uint64_t last_rx_ms;
	int err;
	char why[H2C_WHY_MAX];
	struct h2c_stream *streams;
	struct h2c_conn *next;
};

struct h2c_pool {
	struct ev_loop *loop;
	struct h2c_conn *conns;
	struct h2c_stream *ready, *ready_tail;
	struct ev_timer *kick; /* runs the ready list from the loop */
	size_t connects;
	int busy;
	bool dying;
};

/* h2c_conn.c */
struct h2c_conn *h2c_conn_new(struct h2c_pool *p, const char *origin, long connect_timeout_ms,
                              char *why, size_t whylen);
/* Whether a new stream may go on @k. */
bool h2c_conn_usable(struct h2c_conn *k);
/* Write what nghttp2 has to send; a failure kills the connection. */
void h2c_conn_flush(struct h2c_conn *k);
/* End @k: every unfinished stream fails with @err/@why; freed when no caller holds it. */
void h2c_conn_fail(struct h2c_conn *k, int err, const char *why);
/* Free a dead connection nobody holds (h2c_conn_fail did the rest). */
void h2c_conn_release(struct h2c_conn *k);
/* Close @k now when it is retired and no stream needs it any more. */
void h2c_conn_gc(struct h2c_conn *k);

/* h2c.c, for h2c_conn.c */
void h2c_stream_finish(struct h2c_stream *s, int err, const char *why);
void h2c_stream_detach(struct h2c_stream *s);
void h2c_stream_queue(struct h2c_stream *s);
/* Around every entry from the loop: leave runs the callbacks that are due, and frees a pool
 * that was freed meanwhile. */
void h2c_pool_enter(struct h2c_pool *p);
void h2c_pool_leave(struct h2c_pool *p);
int h2c_buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n, size_t max);

#endif
