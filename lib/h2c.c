/*
 * The h2c pool: requests as HTTP/2 streams on one connection per origin (h2c_conn.c), their
 * deadlines, and the ready list from which every user callback runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/ev.h"
#include "lib/h2c_int.h"
#include "lib/log.h"

#define H2C_MAX_BODY           (64u << 20)
#define H2C_DEFAULT_CONNECT_MS 300000L /* libcurl's default, when the caller sets none */
#define H2C_MAX_EXTRA_HEADERS  16

int h2c_buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n, size_t max)
{
	if (*len + n + 1 > max)
		return -EMSGSIZE;
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 4096;
		char *nb;

		while (c < *len + n + 1)
			c *= 2;
		if (c > max)
			c = max;
		nb = realloc(*buf, c);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = c;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/* ---- stream life ---- */

static void stream_free(struct h2c_stream *s)
{
	ev_timer_free(s->timer);
	free(s->up);
	free(s->buf);
	free(s->hdr);
	free(s);
}

static void stream_unlink(struct h2c_stream *s)
{
	struct h2c_conn *k = s->k;

	if (!k)
		return;
	if (s->kprev)
		s->kprev->knext = s->knext;
	else
		k->streams = s->knext;
	if (s->knext)
		s->knext->kprev = s->kprev;
	s->knext = s->kprev = NULL;
	s->k = NULL;
}

/* Free @s once nobody needs it: no callback due or running, nghttp2 done with it. */
static void stream_maybe_free(struct h2c_stream *s)
{
	if (s->in_cb || s->queued || !(s->cancelled || s->delivered))
		return;
	if (s->k && !s->ng_closed)
		return;
	stream_unlink(s);
	stream_free(s);
}

static void kick_fire(struct ev_timer *t, void *ctx)
{
	(void)t;
	h2c_pool_enter(ctx);
	h2c_pool_leave(ctx);
}

void h2c_stream_queue(struct h2c_stream *s)
{
	struct h2c_pool *p = s->p;

	if (s->queued)
		return;
	s->queued = true;
	s->rnext = NULL;
	if (p->ready_tail)
		p->ready_tail->rnext = s;
	else
		p->ready = s;
	p->ready_tail = s;
	/* inside an entry from the loop, its leave runs the list; else the next iteration */
	if (p->busy == 0)
		ev_timer_start(p->kick, 0, 0);
}

void h2c_stream_finish(struct h2c_stream *s, int err, const char *why)
{
	if (s->finished)
		return;
	s->finished = true;
	s->err = err;
	snprintf(s->why, sizeof(s->why), "%s", why ? why : "");
	ev_timer_stop(s->timer);
	h2c_stream_queue(s);
}

void h2c_stream_detach(struct h2c_stream *s)
{
	stream_unlink(s);
	s->ng_closed = true;
	stream_maybe_free(s);
}

/* ---- callbacks, from the ready list ---- */

/* Streamed data to on_data; false when the request was cancelled from it. */
static bool deliver_data(struct h2c_stream *s)
{
	char *b = s->buf;
	size_t n = s->len;

	s->buf = NULL;
	s->len = s->cap = 0;
	s->in_cb = true;
	s->on_data(s->ctx, b, n);
	s->in_cb = false;
	free(b);
	return !s->cancelled;
}

static void deliver_done(struct h2c_stream *s)
{
	struct http_response resp = { 0 };

	resp.err = s->err;
	resp.status = s->status;
	resp.headers = s->hdr ? s->hdr : "";
	resp.errmsg = s->err ? s->why : "";
	if (!s->streamed) {
		resp.body = s->buf ? s->buf : "";
		resp.body_len = s->len;
	}
	s->delivered = true;
	s->in_cb = true;
	if (s->done)
		s->done(s->ctx, &resp);
	s->in_cb = false;
}

static void run_one(struct h2c_stream *s)
{
	if (s->cancelled || s->delivered)
		return;
	if (s->streamed && s->len > 0 && !deliver_data(s))
		return;
	if (s->finished)
		deliver_done(s);
}

static void dispatch(struct h2c_pool *p)
{
	while (p->ready && !p->dying) {
		struct h2c_stream *s = p->ready;

		p->ready = s->rnext;
		if (!p->ready)
			p->ready_tail = NULL;
		s->queued = false;
		run_one(s);
		stream_maybe_free(s);
	}
	for (struct h2c_conn *k = p->conns, *next; k && !p->dying; k = next) {
		next = k->next;
		h2c_conn_gc(k);
	}
}

static void pool_destroy(struct h2c_pool *p)
{
	for (struct h2c_stream *s = p->ready, *next; s; s = next) {
		next = s->rnext;
		s->queued = false;
		if (!s->k) /* its connection is gone: nothing else frees it */
			stream_free(s);
	}
	while (p->conns) {
		struct h2c_conn *k = p->conns;

		h2c_conn_fail(k, -ECONNRESET, "client freed");
		h2c_conn_release(k);
	}
	ev_timer_free(p->kick);
	free(p);
}

void h2c_pool_enter(struct h2c_pool *p)
{
	p->busy++;
}

void h2c_pool_leave(struct h2c_pool *p)
{
	if (!p->dying)
		dispatch(p);
	if (--p->busy == 0 && p->dying)
		pool_destroy(p);
}

/* ---- deadlines ---- */

static void stream_timer_fire(struct ev_timer *t, void *ctx)
{
	struct h2c_stream *s = ctx;
	struct h2c_conn *k = s->k;
	uint64_t now = ev_now_ms(), due = s->deadline_ms;
	char why[H2C_WHY_MAX];

	if (s->idle_ms > 0 && (!due || s->last_rx_ms + (uint64_t)s->idle_ms < due))
		due = s->last_rx_ms + (uint64_t)s->idle_ms;
	if (now < due) {
		ev_timer_start(t, due - now, 0);
		return;
	}
	if (s->deadline_ms && now >= s->deadline_ms)
		snprintf(why, sizeof(why), "timed out after %llu ms",
		         (unsigned long long)(now - s->start_ms));
	else
		snprintf(why, sizeof(why), "no data for %ld ms", s->idle_ms);
	h2c_pool_enter(s->p);
	h2c_stream_finish(s, -ETIMEDOUT, why);
	if (k && !s->ng_closed) {
		/* nothing at all came on the connection meanwhile: do not trust it again */
		if (k->last_rx_ms <= s->last_rx_ms)
			k->retired = true;
		k->busy++;
		nghttp2_submit_rst_stream(k->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
		h2c_conn_flush(k);
		k->busy--;
		h2c_conn_release(k);
	}
	h2c_pool_leave(s->p);
}

static int stream_timer_start(struct h2c_stream *s, const struct http_request_opts *o)
{
	uint64_t first;

	s->start_ms = s->last_rx_ms = ev_now_ms();
	s->idle_ms = o->idle_ms;
	if (o->timeout_ms <= 0 && o->idle_ms <= 0)
		return 0;
	s->timer = ev_timer_new(s->p->loop, stream_timer_fire, s);
	if (!s->timer)
		return -ENOMEM;
	if (o->timeout_ms > 0)
		s->deadline_ms = s->start_ms + (uint64_t)o->timeout_ms;
	first = (uint64_t)(o->timeout_ms > 0 ? o->timeout_ms : o->idle_ms);
	if (o->idle_ms > 0 && (uint64_t)o->idle_ms < first)
		first = (uint64_t)o->idle_ms;
	return ev_timer_start(s->timer, first, 0) < 0 ? -ENOMEM : 0;
}

/* ---- requests ---- */

static ssize_t body_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct h2c_stream *s = src->ptr;
	size_t n = s->up_len - s->up_off;

	(void)ng;
	(void)id;
	(void)ud;
	if (n == 0 && !s->up_end) {
		/* a streamed body waits for h2c_send(), which resumes it */
		s->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (n > length)
		n = length;
	memcpy(buf, s->up + s->up_off, n);
	s->up_off += n;
	if (s->up_off == s->up_len) {
		s->up_off = s->up_len = 0;
		if (s->up_end)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
	}
	return (ssize_t)n;
}

static nghttp2_nv nv(const char *name, size_t nlen, const char *value, size_t vlen)
{
	nghttp2_nv h = { (uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value, nlen, vlen,
		         NGHTTP2_NV_FLAG_NONE };

	return h;
}

/* "Name: value" lines as HTTP/2 wants them: lower-case names, no connection headers. */
static size_t extra_headers(const struct http_request_opts *o, nghttp2_nv *out, size_t max,
                            char names[][64])
{
	static const char *const drop[] = {
		"connection",       "content-length",    "expect", "host", "keep-alive",
		"proxy-connection", "transfer-encoding", "upgrade"
	};
	size_t n = 0;

	for (const char *const *hp = o->headers; hp && *hp && n < max; hp++) {
		const char *colon = strchr(*hp, ':'), *v;
		size_t nl = colon ? (size_t)(colon - *hp) : 0;
		bool skip = nl == 0 || nl >= 64;

		for (size_t i = 0; !skip && i < sizeof(drop) / sizeof(drop[0]); i++)
			skip = strlen(drop[i]) == nl && strncasecmp(drop[i], *hp, nl) == 0;
		if (skip)
			continue;
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (!*v) /* "Name:" removes a header in libcurl's convention: nothing to add */
			continue;
		for (size_t i = 0; i < nl; i++)
			names[n][i] = (char)((*hp)[i] >= 'A' && (*hp)[i] <= 'Z' ? (*hp)[i] + 32
			                                                        : (*hp)[i]);
		out[n] = nv(names[n], nl, v, strlen(v));
		n++;
	}
	return n;
}

/* Submit @s on @k: its id, or a negative nghttp2 error. */
static int32_t submit(struct h2c_conn *k, struct h2c_stream *s, const struct http_request_opts *o,
                      const char *path)
{
	char names[H2C_MAX_EXTRA_HEADERS][64];
	nghttp2_nv h[4 + H2C_MAX_EXTRA_HEADERS];
	nghttp2_data_provider prd = { .source.ptr = s, .read_callback = body_read };
	bool has_body = o->body || o->stream_body;
	const char *method = has_body ? "POST" : "GET";
	size_t n = 0;

	h[n++] = nv(":method", 7, method, strlen(method));
	h[n++] = nv(":scheme", 7, "http", 4);
	h[n++] = nv(":authority", 10, k->origin, strlen(k->origin));
	h[n++] = nv(":path", 5, path, strlen(path));
	n += extra_headers(o, h + n, H2C_MAX_EXTRA_HEADERS, names);
	return nghttp2_submit_request(k->ng, NULL, h, n, has_body ? &prd : NULL, s);
}

static struct h2c_conn *find_conn(struct h2c_pool *p, const char *origin)
{
	for (struct h2c_conn *k = p->conns; k; k = k->next)
		if (strcmp(k->origin, origin) == 0 && h2c_conn_usable(k))
			return k;
	return NULL;
}

/* Put @s on a connection to @origin (the existing one, else a new one) and submit it. */
static void attach(struct h2c_stream *s, const struct http_request_opts *o, const char *origin,
                   const char *path)
{
	long cto = o->connect_timeout_ms > 0 ? o->connect_timeout_ms
	           : o->timeout_ms > 0       ? o->timeout_ms
	                                     : H2C_DEFAULT_CONNECT_MS;
	char why[H2C_WHY_MAX];

	for (int attempt = 0; attempt < 2; attempt++) {
		struct h2c_conn *k = find_conn(s->p, origin);
		int32_t id;

		if (!k)
			k = h2c_conn_new(s->p, origin, cto, why, sizeof(why));
		if (!k) {
			h2c_stream_finish(s, -ENOMEM, "out of memory");
			return;
		}
		if (k->state == H2C_DEAD) {
			h2c_stream_finish(s, k->err, k->why);
			h2c_conn_release(k);
			return;
		}
		id = submit(k, s, o, path);
		if (id < 0) {
			/* out of stream ids, or going away: a fresh connection takes it */
			log_debug("h2c: %s: %s", origin, nghttp2_strerror(id));
			k->retired = true;
			continue;
		}
		s->id = id;
		s->k = k;
		s->ng_closed = false;
		s->knext = k->streams;
		if (k->streams)
			k->streams->kprev = s;
		k->streams = s;
		h2c_conn_flush(k);
		return;
	}
	h2c_stream_finish(s, -EIO, "cannot start an HTTP/2 stream");
}

/* "http://origin/path" into @origin and the path; NULL when it is no such URL. */
static const char *split_url(const char *url, char *origin, size_t olen)
{
	const char *a, *slash;
	size_t n;

	if (strncasecmp(url, "http://", 7) != 0)
		return NULL;
	a = url + 7;
	slash = strchr(a, '/');
	n = slash ? (size_t)(slash - a) : strlen(a);
	if (n == 0 || n >= olen)
		return NULL;
	memcpy(origin, a, n);
	origin[n] = '\0';
	return slash ? slash : "/";
}

struct h2c_stream *h2c_request(struct h2c_pool *p, const struct http_request_opts *o,
                               http_done_cb done, void *ctx)
{
	char origin[sizeof(((struct h2c_conn *)0)->origin)];
	const char *path = split_url(o->url, origin, sizeof(origin));
	struct h2c_stream *s;

	if (!path || p->dying) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->p = p;
	s->done = done;
	s->ctx = ctx;
	s->on_data = o->on_data;
	s->streamed = o->on_data != NULL;
	s->max_body = o->max_body ? o->max_body : H2C_MAX_BODY;
	s->up_end = !o->stream_body;
	if ((o->body && h2c_send(s, o->body, o->body_len) < 0) || stream_timer_start(s, o) < 0) {
		stream_free(s);
		errno = ENOMEM;
		return NULL;
	}
	s->ng_closed = true; /* until submitted */
	attach(s, o, origin, path);
	return s;
}

int h2c_send(struct h2c_stream *s, const void *data, size_t len)
{
	struct h2c_conn *k = s ? s->k : NULL;

	if (!s || s->cancelled || s->finished)
		return -EINVAL;
	if (s->up_len + len > s->up_cap) {
		size_t cap = s->up_cap ? s->up_cap : 1024;
		uint8_t *nb;

		while (cap < s->up_len + len)
			cap *= 2;
		nb = realloc(s->up, cap);
		if (!nb)
			return -ENOMEM;
		s->up = nb;
		s->up_cap = cap;
	}
	memcpy(s->up + s->up_len, data, len);
	s->up_len += len;
	if (s->deferred && k && !s->ng_closed) {
		s->deferred = false;
		if (nghttp2_session_resume_data(k->ng, s->id) != 0)
			return -EIO;
		h2c_conn_flush(k);
	}
	return 0;
}

void h2c_cancel(struct h2c_stream *s)
{
	struct h2c_conn *k;

	if (!s || s->cancelled)
		return;
	s->cancelled = true;
	ev_timer_stop(s->timer);
	k = s->k;
	if (k && !s->ng_closed) {
		k->busy++;
		nghttp2_submit_rst_stream(k->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
		h2c_conn_flush(k);
		k->busy--;
		h2c_conn_gc(k); /* a retired connection that served only this one goes now */
		return;         /* @s is freed when nghttp2 closes it (or the connection goes) */
	}
	stream_maybe_free(s);
}

struct h2c_pool *h2c_pool_new(struct ev_loop *loop)
{
	struct h2c_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->loop = loop;
	p->kick = ev_timer_new(loop, kick_fire, p);
	if (!p->kick) {
		free(p);
		return NULL;
	}
	return p;
}

void h2c_pool_free(struct h2c_pool *p)
{
	if (!p || p->dying)
		return;
	p->dying = true;
	for (struct h2c_conn *k = p->conns; k; k = k->next)
		for (struct h2c_stream *s = k->streams; s; s = s->knext)
			s->cancelled = true;
	for (struct h2c_stream *s = p->ready; s; s = s->rnext)
		s->cancelled = true;
	if (p->busy == 0)
		pool_destroy(p);
}

size_t h2c_pool_connects(const struct h2c_pool *p)
{
	return p->connects;
}
