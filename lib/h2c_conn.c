/*
 * One h2c connection: resolve and connect without blocking, feed nghttp2 what the socket reads
 * and write what nghttp2 produces. nghttp2's callbacks only record (headers, data, the end
 * of a stream) and queue the stream; user callbacks run later, from h2c_pool_leave().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/ev.h"
#include "lib/h2c_int.h"
#include "lib/log.h"
#include "lib/resolve.h"

#define H2C_STREAM_WINDOW  (1 << 20)  /* per stream: a 512 KB listing page in one round trip */
#define H2C_CONN_WINDOW    (16 << 20) /* per connection: many such streams at once */
#define H2C_MAX_HEADERS    (64u << 10)
#define H2C_READ_CHUNK     65536
#define H2C_READS_PER_WAKE 16 /* level-triggered: the rest waits for the next iteration */

static void conn_io(struct ev_io *io, int fd, uint32_t revents, void *ctx);
static void resolved(void *ctx, int rc, struct addrinfo *ai);

/* ---- nghttp2 callbacks: record, queue, never call the user ---- */

static struct h2c_stream *stream_of(nghttp2_session *ng, int32_t id)
{
	struct h2c_stream *s = nghttp2_session_get_stream_user_data(ng, id);

	return s && !s->cancelled && !s->finished ? s : NULL;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct h2c_stream *s = stream_of(ng, f->hd.stream_id);
	char line[H2C_MAX_HEADERS];
	int n;

	(void)flags;
	(void)ud;
	if (!s || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	s->last_rx_ms = ev_now_ms();
	if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
		s->status = strtol((const char *)value, NULL, 10);
		return 0;
	}
	n = snprintf(line, sizeof(line), "%.*s: %.*s\r\n", (int)namelen, (const char *)name,
	             (int)valuelen, (const char *)value);
	if (n > 0 && (size_t)n < sizeof(line))
		/* over the limit: keep what fits, as for HTTP/1 (lib/http.c) */
		h2c_buf_append(&s->hdr, &s->hdr_len, &s->hdr_cap, line, (size_t)n, H2C_MAX_HEADERS);
	return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud)
{
	struct h2c_stream *s = stream_of(ng, id);

	(void)flags;
	(void)ud;
	if (!s)
		return 0;
	s->last_rx_ms = ev_now_ms();
	if (h2c_buf_append(&s->buf, &s->len, &s->cap, data, len, s->max_body) < 0) {
		s->overflow = true;
		h2c_stream_finish(s, -EMSGSIZE, "response too large");
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
		return 0;
	}
	if (s->streamed)
		h2c_stream_queue(s);
	return 0;
}

static int on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	struct h2c_stream *s = nghttp2_session_get_stream_user_data(ng, id);
	char why[H2C_WHY_MAX];

	(void)ud;
	if (!s)
		return 0;
	s->ng_closed = true;
	if (s->cancelled || s->finished) {
		h2c_stream_queue(s); /* to be freed from the dispatch */
		return 0;
	}
	if (code == NGHTTP2_NO_ERROR) {
		h2c_stream_finish(s, 0, NULL);
	} else if (code == NGHTTP2_REFUSED_STREAM) {
		/* RFC 9113 8.7: the server did nothing with it; safe to send again */
		h2c_stream_finish(s, -ECONNREFUSED, "the server refused the stream (going away)");
	} else {
		snprintf(why, sizeof(why), "stream reset: %s", nghttp2_http2_strerror(code));
		h2c_stream_finish(s, -ECONNRESET, why);
	}
	return 0;
}

static int on_frame(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct h2c_conn *k = ud;

	(void)ng;
	if (f->hd.type == NGHTTP2_GOAWAY)
		k->retired = true; /* streams it did not take are closed with REFUSED_STREAM */
	return 0;
}

static int session_new(struct h2c_conn *k)
{
	nghttp2_session_callbacks *cb;
	nghttp2_settings_entry set[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2C_STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, H2C_MAX_HEADERS },
	};
	int r;

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return -ENOMEM;
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
	r = nghttp2_session_client_new(&k->ng, cb, k);
	nghttp2_session_callbacks_del(cb);
	if (r != 0)
		return -ENOMEM;
	/* the preface and these go out with the first write, after the connect */
	if (nghttp2_submit_settings(k->ng, NGHTTP2_FLAG_NONE, set, sizeof(set) / sizeof(set[0])) ||
	    nghttp2_session_set_local_window_size(k->ng, NGHTTP2_FLAG_NONE, 0, H2C_CONN_WINDOW))
		return -ENOMEM;
	return 0;
}

/* ---- connecting ---- */

/* "host:port" or "[v6]:port" into @host and @port; 0 or -EINVAL. */
static int split_origin(const char *origin, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon, *h = origin;
	size_t n;

	if (*h == '[') {
		const char *rb = strchr(h, ']');

		if (!rb)
			return -EINVAL;
		h++;
		n = (size_t)(rb - h);
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if (rb[1] && !colon)
			return -EINVAL;
	} else {
		colon = strrchr(h, ':');
		n = colon ? (size_t)(colon - h) : strlen(h);
	}
	if (n == 0 || n >= hlen)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon && colon[1] ? colon + 1 : "80");
	return 0;
}

/*
 * An address is taken as it is; a name is resolved off the loop (lib/resolve.h), and the
 * connection goes on from resolved() (@k->rj set meanwhile). 0, or -errno with @why.
 */
static int resolve(struct h2c_conn *k, char *why, size_t whylen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
		                  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	char host[256], port[16];
	int r;

	if (split_origin(k->origin, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(why, whylen, "bad host and port \"%s\"", k->origin);
		return -EINVAL;
	}
	r = getaddrinfo(host, port, &hints, &k->ai);
	if (r == EAI_NONAME) {
		hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
		k->rj = resolve_start(k->p->loop, host, port, &hints, resolved, k);
		if (k->rj)
			return 0;
		snprintf(why, whylen, "cannot resolve %s: %s", host, strerror(errno));
		return -ECONNREFUSED;
	}
	if (r != 0) {
		snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(r));
		return -ECONNREFUSED;
	}
	k->ai_next = k->ai;
	return 0;
}

/* Start connecting to the next address; 0 (in progress or done), or -errno when none is left. */
static int connect_next(struct h2c_conn *k)
{
	int err = ECONNREFUSED;

	while (k->ai_next) {
		struct addrinfo *a = k->ai_next;
		int one = 1;

		k->ai_next = a->ai_next;
		if (k->fd >= 0)
			close(k->fd);
		k->fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (k->fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(k->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		if (connect(k->fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			err = errno;
			continue;
		}
		if (k->io)
			ev_io_free(k->io);
		k->io = ev_io_new(k->p->loop, k->fd, EPOLLOUT, conn_io, k);
		if (!k->io)
			return -errno;
		return 0;
	}
	return -err;
}

/* The name of @k resolved (or not): connect, or fail its streams. */
static void resolved(void *ctx, int rc, struct addrinfo *ai)
{
	struct h2c_conn *k = ctx;
	struct h2c_pool *p = k->p;
	char why[H2C_WHY_MAX];
	int err;

	k->rj = NULL; /* the job ends with this call */
	h2c_pool_enter(p);
	k->busy++;
	if (rc != 0) {
		snprintf(why, sizeof(why), "cannot resolve the host of %s: %s", k->origin,
		         gai_strerror(rc));
		h2c_conn_fail(k, -ECONNREFUSED, why);
	} else {
		k->ai = k->ai_next = ai;
		err = connect_next(k);
		if (err < 0) {
			snprintf(why, sizeof(why), "cannot connect to %s: %s", k->origin,
			         strerror(-err));
			h2c_conn_fail(k, -ECONNREFUSED, why);
		}
	}
	k->busy--;
	h2c_conn_release(k);
	h2c_pool_leave(p);
}

static void connect_timeout(struct ev_timer *t, void *ctx)
{
	struct h2c_conn *k = ctx;
	struct h2c_pool *p = k->p;
	char why[H2C_WHY_MAX];

	(void)t;
	if (k->state != H2C_CONNECTING)
		return;
	snprintf(why, sizeof(why), "connection to %s timed out", k->origin);
	h2c_pool_enter(p);
	h2c_conn_fail(k, -ETIMEDOUT, why);
	h2c_conn_release(k);
	h2c_pool_leave(p);
}

struct h2c_conn *h2c_conn_new(struct h2c_pool *p, const char *origin, long connect_timeout_ms,
                              char *why, size_t whylen)
{
	struct h2c_conn *k = calloc(1, sizeof(*k));
	int err;

	if (!k)
		return NULL;
	k->p = p;
	k->fd = -1;
	snprintf(k->origin, sizeof(k->origin), "%s", origin);
	err = resolve(k, why, whylen);
	if (err == 0)
		err = session_new(k);
	if (err == 0) {
		k->timer = ev_timer_new(p->loop, connect_timeout, k);
		if (!k->timer || (connect_timeout_ms > 0 &&
		                  ev_timer_start(k->timer, (uint64_t)connect_timeout_ms, 0) < 0))
			err = -ENOMEM;
	}
	if (err == 0 && !k->rj) { /* with a lookup under way, resolved() connects */
		err = connect_next(k);
		if (err < 0)
			snprintf(why, whylen, "cannot connect to %s: %s", origin, strerror(-err));
	}
	k->next = p->conns;
	p->conns = k;
	if (err < 0) {
		resolve_cancel(k->rj);
		k->rj = NULL;
		/* the request still gets its failure through the loop, as with libcurl */
		k->state = H2C_DEAD;
		k->err = err == -EINVAL ? -EINVAL : (err == -ENOMEM ? -ENOMEM : -ECONNREFUSED);
		snprintf(k->why, sizeof(k->why), "%s", why);
	}
	return k;
}

/* The socket became writable while connecting: connected, or on to the next address. */
static void connected(struct h2c_conn *k)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	char why[H2C_WHY_MAX];

	if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr != 0) {
		int err = connect_next(k);

		if (err < 0) {
			snprintf(why, sizeof(why), "cannot connect to %s: %s", k->origin,
			         strerror(soerr));
			h2c_conn_fail(k, -ECONNREFUSED, why);
		}
		return;
	}
	k->state = H2C_OPEN;
	k->p->connects++; /* last_rx_ms stays 0: a peer that accepts and never speaks is dead */
	ev_timer_stop(k->timer);
	log_debug("h2c: connected to %s", k->origin);
	h2c_conn_flush(k);
}

/* ---- reading and writing ---- */

static int out_keep(struct h2c_conn *k, const uint8_t *data, size_t n)
{
	if (k->out_len + n > k->out_cap) {
		size_t cap = k->out_cap ? k->out_cap : 16384;
		uint8_t *nb;

		while (cap < k->out_len + n)
			cap *= 2;
		nb = realloc(k->out, cap);
		if (!nb)
			return -ENOMEM;
		k->out = nb;
		k->out_cap = cap;
	}
	memcpy(k->out + k->out_len, data, n);
	k->out_len += n;
	return 0;
}

/* Write what is kept, then what nghttp2 produces: 1 = all written, 0 = the socket is full. */
static int flush_out(struct h2c_conn *k)
{
	for (;;) {
		const uint8_t *data;
		ssize_t n;

		while (k->out_off < k->out_len) {
			ssize_t w = send(k->fd, k->out + k->out_off, k->out_len - k->out_off,
			                 MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return errno == EAGAIN ? 0 : -errno;
			k->out_off += (size_t)w;
		}
		k->out_off = k->out_len = 0;
		/* nghttp2's buffer lives until its next call: keep a copy */
		n = nghttp2_session_mem_send(k->ng, &data);
		if (n < 0)
			return -EPROTO;
		if (n == 0)
			return 1;
		if (out_keep(k, data, (size_t)n) < 0)
			return -ENOMEM;
	}
}

void h2c_conn_flush(struct h2c_conn *k)
{
	int r;
	char why[H2C_WHY_MAX];

	if (k->state != H2C_OPEN)
		return;
	k->busy++;
	r = flush_out(k);
	if (r < 0) {
		snprintf(why, sizeof(why), "cannot send to %s: %s", k->origin, strerror(-r));
		h2c_conn_fail(k, -ECONNRESET, why);
	} else {
		ev_io_set_events(k->io, EPOLLIN | (r == 0 ? EPOLLOUT : 0));
	}
	k->busy--;
	h2c_conn_release(k);
}

static void conn_read(struct h2c_conn *k)
{
	uint8_t buf[H2C_READ_CHUNK];
	char why[H2C_WHY_MAX];

	for (int i = 0; i < H2C_READS_PER_WAKE && k->state == H2C_OPEN; i++) {
		ssize_t n = recv(k->fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			snprintf(why, sizeof(why), "connection to %s closed%s%s", k->origin,
			         n ? ": " : " by the server", n ? strerror(errno) : "");
			h2c_conn_fail(k, -ECONNRESET, why);
			return;
		}
		k->last_rx_ms = ev_now_ms();
		n = nghttp2_session_mem_recv(k->ng, buf, (size_t)n);
		if (n < 0) {
			snprintf(why, sizeof(why), "HTTP/2 error from %s: %s", k->origin,
			         nghttp2_strerror((int)n));
			h2c_conn_fail(k, -ECONNRESET, why);
			return;
		}
	}
	h2c_conn_flush(k);
	if (k->state == H2C_OPEN && !nghttp2_session_want_read(k->ng) &&
	    !nghttp2_session_want_write(k->ng))
		h2c_conn_fail(k, -ECONNRESET, "the server ended the connection (GOAWAY)");
}

static void conn_io(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct h2c_conn *k = ctx;
	struct h2c_pool *p = k->p;

	(void)io;
	(void)fd;
	h2c_pool_enter(p);
	k->busy++;
	if (k->state == H2C_CONNECTING && (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		connected(k);
	else if (k->state == H2C_OPEN && (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		conn_read(k);
	else if (k->state == H2C_OPEN && (revents & EPOLLOUT))
		h2c_conn_flush(k);
	k->busy--;
	h2c_conn_release(k);
	h2c_pool_leave(p);
}

/* ---- the end of a connection ---- */

bool h2c_conn_usable(struct h2c_conn *k)
{
	return k->state != H2C_DEAD && !k->retired &&
	       (k->state == H2C_CONNECTING || nghttp2_session_check_request_allowed(k->ng));
}

void h2c_conn_fail(struct h2c_conn *k, int err, const char *why)
{
	if (k->state == H2C_DEAD)
		return;
	if (k->state == H2C_OPEN)
		log_debug("h2c: %s", why);
	k->state = H2C_DEAD;
	k->err = err;
	snprintf(k->why, sizeof(k->why), "%s", why);
	while (k->streams) {
		struct h2c_stream *s = k->streams;

		if (!s->finished && !s->cancelled)
			h2c_stream_finish(s, err, why);
		h2c_stream_detach(s);
	}
	ev_timer_stop(k->timer);
	if (k->io)
		ev_io_set_events(k->io, 0);
	resolve_cancel(k->rj);
	k->rj = NULL;
}

static void conn_unlink(struct h2c_conn *k)
{
	for (struct h2c_conn **pp = &k->p->conns; *pp; pp = &(*pp)->next) {
		if (*pp == k) {
			*pp = k->next;
			return;
		}
	}
}

void h2c_conn_release(struct h2c_conn *k)
{
	if (k->state != H2C_DEAD || k->busy > 0)
		return;
	while (k->streams) /* only a pool being freed gets here with streams */
		h2c_stream_detach(k->streams);
	conn_unlink(k);
	nghttp2_session_del(k->ng);
	ev_io_free(k->io);
	ev_timer_free(k->timer);
	if (k->fd >= 0)
		close(k->fd);
	if (k->ai)
		freeaddrinfo(k->ai);
	free(k->out);
	free(k);
}

void h2c_conn_gc(struct h2c_conn *k)
{
	if (k->state == H2C_DEAD) {
		h2c_conn_release(k);
		return;
	}
	if (!k->retired)
		return;
	for (struct h2c_stream *s = k->streams; s; s = s->knext)
		if (!s->cancelled && !s->finished)
			return;
	h2c_conn_fail(k, -ECONNRESET, "connection retired");
	h2c_conn_release(k);
}
