/*
 * Bidirectional gRPC streams of the call layer (etcd_client.h): the request side stays
 * open (through etcd grpc-proxy a half-close cancels a watch: docs/etcd.md), messages
 * are sent on it as they come, and replies are unframed as they arrive.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errfmt.h"
#include "lib/ev.h"
#include "lib/log.h"
#include "subnet/etcd_client_int.h"

struct etcd_stream {
	struct etcd_client *c;
	const char *path;
	long idle_ms;
	etcd_msg_cb on_msg;
	etcd_end_cb on_end;
	void *ctx;
	struct http_req *http;
	long ep;
	bool waiting;
	bool in_cb;
	bool closed;
	bool started;
	bool linked;  /* in c->streams (not once the client let go of it from a callback) */
	uint8_t *out; /* sent before the request started */
	size_t out_len, out_cap;
	uint8_t *in; /* received, not yet a whole message */
	size_t in_len, in_cap;
	struct ev_timer *timer; /* a deferred end */
	int end_err;
	char sent_token[256];
	char why[600];
	struct etcd_stream *next, *prev;
};

static int grow(uint8_t **buf, size_t *cap, size_t need, size_t max)
{
	size_t n = *cap ? *cap : 4096;
	uint8_t *nb;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	if (n > max)
		return -EMSGSIZE;
	nb = realloc(*buf, n);
	if (!nb)
		return -ENOMEM;
	*buf = nb;
	*cap = n;
	return 0;
}

static void stream_unlink(struct etcd_stream *s)
{
	struct etcd_client *c = s->c;

	if (!s->linked)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else if (c->streams == s)
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	s->linked = false;
}

static void stream_destroy(struct etcd_stream *s)
{
	stream_unlink(s);
	http_cancel(s->http);
	ev_timer_free(s->timer);
	free(s->out);
	free(s->in);
	free(s);
}

void etcd_stream_close(struct etcd_stream *s)
{
	if (!s)
		return;
	if (s->in_cb) {
		s->closed = true;
		http_cancel(s->http);
		s->http = NULL;
		return;
	}
	stream_destroy(s);
}

/* Runs on_end and frees the stream. */
static void stream_end(struct etcd_stream *s, int err, const char *why)
{
	http_cancel(s->http);
	s->http = NULL;
	s->in_cb = true;
	s->on_end(s->ctx, err, why);
	stream_destroy(s);
}

static void end_fire(struct ev_timer *t, void *ctx)
{
	struct etcd_stream *s = ctx;

	(void)t;
	stream_end(s, s->end_err, s->why);
}

static void end_later(struct etcd_stream *s, int err, const char *why)
{
	http_cancel(s->http);
	s->http = NULL;
	s->waiting = false;
	s->end_err = err;
	if (why != s->why)
		errfmt(s->why, sizeof(s->why), "%s", why);
	ev_timer_start(s->timer, 0, 0);
}

static void on_data(void *ctx, const char *data, size_t len)
{
	struct etcd_stream *s = ctx;
	size_t off = 0;

	s->c->stats.last_ok_ms = ev_now_ms();
	if (grow(&s->in, &s->in_cap, s->in_len + len, 2 * ETCD_MSG_MAX) < 0) {
		end_later(s, -EMSGSIZE, "stream message too large");
		return;
	}
	memcpy(s->in + s->in_len, data, len);
	s->in_len += len;
	for (;;) {
		const uint8_t *msg;
		size_t mlen, used;
		char why[200];
		int r = etcd_unframe(s->in + off, s->in_len - off, ETCD_MSG_MAX, &msg, &mlen, &used,
		                     why, sizeof(why));

		if (r < 0) {
			etcd_client_stat_err(s->c, r);
			errfmt(s->why, sizeof(s->why), "%s: %s",
			       etcd_client_ep_url(s->c, (size_t)s->ep), why);
			end_later(s, r, s->why);
			return;
		}
		if (r == 0)
			break;
		s->in_cb = true;
		s->on_msg(s->ctx, msg, mlen);
		s->in_cb = false;
		if (s->closed) {
			stream_destroy(s);
			return;
		}
		if (!s->http)
			return; /* ended meanwhile */
		off += used;
	}
	memmove(s->in, s->in + off, s->in_len - off);
	s->in_len -= off;
}

static void on_done(void *ctx, const struct http_response *resp)
{
	struct etcd_stream *s = ctx;
	char why[400];
	int err;

	s->http = NULL;
	err = etcd_reply_status(resp, why, sizeof(why));
	if (err == 0) {
		err = -EPIPE;
		errfmt(why, sizeof(why), "stream ended");
	}
	if (err == -EPERM)
		etcd_client_token_rejected(s->c, s->sent_token);
	etcd_client_stat_err(s->c, err);
	if (err == -ETIMEDOUT || etcd_transport_err(err) || err == -EAGAIN)
		etcd_client_ep_failed(s->c, (size_t)s->ep, why);
	errfmt(s->why, sizeof(s->why), "%s: %s", etcd_client_ep_url(s->c, (size_t)s->ep), why);
	stream_end(s, err, s->why);
}

static void stream_try(struct etcd_stream *s)
{
	struct etcd_client *c = s->c;
	struct etcd_req_opts r;
	long ep;

	if (etcd_client_need_token(c) || (ep = etcd_client_pick(c)) < 0) {
		s->waiting = true;
		return;
	}
	s->ep = ep;
	if (etcd_client_req_opts(c, (size_t)ep, s->path, true, &r) < 0) {
		end_later(s, -ENAMETOOLONG, "URL too long");
		return;
	}
	memcpy(s->sent_token, r.sent_token, sizeof(s->sent_token));
	r.o.stream_body = true;
	r.o.body = (const char *)s->out;
	r.o.body_len = s->out_len;
	r.o.on_data = on_data;
	r.o.idle_ms = s->idle_ms;
	r.o.connect_timeout_ms = c->timeout_ms;
	s->http = http_request(c->http, &r.o, on_done, s);
	if (!s->http) {
		errfmt(s->why, sizeof(s->why), "cannot start the stream: %s", http_strerror(errno));
		end_later(s, -errno, s->why);
		return;
	}
	s->out_len = 0;
	c->stats.requests[STORE_STAT_WATCH]++;
}

/* The timer first starts the stream (outside the caller's call), then ends it when asked. */
static void timer_fire(struct ev_timer *t, void *ctx)
{
	struct etcd_stream *s = ctx;

	if (s->started) {
		end_fire(t, ctx);
		return;
	}
	s->started = true;
	stream_try(s);
}

struct etcd_stream *etcd_stream_open(struct etcd_client *c, const char *path, long idle_ms,
                                     etcd_msg_cb on_msg, etcd_end_cb on_end, void *ctx)
{
	struct etcd_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->c = c;
	s->path = path;
	s->idle_ms = idle_ms;
	s->on_msg = on_msg;
	s->on_end = on_end;
	s->ctx = ctx;
	s->ep = -1;
	s->timer = ev_timer_new(c->loop, timer_fire, s);
	if (!s->timer || ev_timer_start(s->timer, 0, 0) < 0) {
		ev_timer_free(s->timer);
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	c->streams = s;
	s->linked = true;
	return s;
}

int etcd_stream_send(struct etcd_stream *s, const struct etcd_buf *msg)
{
	int r;

	if (s->http)
		return http_req_send(s->http, msg->data, msg->len);
	r = grow(&s->out, &s->out_cap, s->out_len + msg->len, 2 * ETCD_MSG_MAX);
	if (r < 0)
		return r;
	memcpy(s->out + s->out_len, msg->data, msg->len);
	s->out_len += msg->len;
	return 0;
}

long etcd_stream_ep(const struct etcd_stream *s)
{
	return s->http ? s->ep : -1;
}

void etcd_streams_wake(struct etcd_client *c, int err, const char *why)
{
	for (struct etcd_stream *s = c->streams; s; s = s->next) {
		if (!s->waiting)
			continue;
		s->waiting = false;
		if (err)
			end_later(s, err, why);
		else
			stream_try(s);
	}
}

void etcd_streams_free(struct etcd_client *c)
{
	while (c->streams) {
		struct etcd_stream *s = c->streams;

		if (!s->in_cb) {
			stream_destroy(s);
			continue;
		}
		/* its callback is running: it frees itself when that returns */
		stream_unlink(s);
		http_cancel(s->http);
		s->http = NULL;
		s->closed = true;
	}
}
