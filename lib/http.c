#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/curl_dl.h"
#include "lib/ev.h"
#include "lib/h2c.h"
#include "lib/http.h"
#include "lib/log.h"

#define HTTP_MAX_BODY     (64u << 20)
#define HTTP_MAX_HEADERS  (64u << 10)
#define HTTP_UNARY_BUFFER (512L << 10) /* CURLOPT_BUFFERSIZE of unary calls (libcurl max) */

struct http_sock {
	struct http_client *c;
	curl_socket_t fd;
	struct ev_io *io;
	struct http_sock *next, *prev;
};

struct http_req {
	struct http_client *c;
	struct h2c_stream *h2s; /* h2c: the stream that carries it (lib/h2c.c), no easy handle */
	CURL *easy;
	struct curl_slist *hdrs;
	char *url;
	char *buf; /* buffered body, or stream data not yet delivered */
	size_t len, cap;
	size_t max_body;
	char *hdr; /* response header and trailer lines */
	size_t hdr_len, hdr_cap;
	char *up; /* streamed request body not yet taken by libcurl: up[up_off..up_len) */
	size_t up_off, up_len, up_cap;
	bool up_paused; /* the read callback paused the transfer: nothing to send */
	bool streamed;
	bool pending;   /* stream data waits for delivery */
	bool cancelled; /* no callback any more (also set once completion starts) */
	bool removed;   /* no longer in the multi handle */
	bool in_cb;     /* a callback of this request is running: destroy after it */
	bool overflow;
	http_done_cb done;
	http_data_cb on_data;
	void *ctx;
	long idle_ms;
	uint64_t last_rx;
	struct ev_timer *idle;
	char errbuf[CURL_ERROR_SIZE];
	struct http_req *next, *prev;
};

/* libcurl's functions, once loaded (curl_ready()); NULL before: no libcurl call happens then */
static const struct curl_dl *curl;

struct http_client {
	struct ev_loop *loop;
	CURLM *multi;
	struct h2c_pool *h2c; /* http:// with HTTP/2 */
	struct ev_timer *timer;
	struct http_sock *socks;
	struct http_req *reqs;
	size_t n_reqs;
	size_t connects;
	int busy; /* inside a dispatch: destruction waits for it to unwind */
	bool dying;
};

static void req_unlink(struct http_req *r)
{
	struct http_client *c = r->c;

	if (r->prev)
		r->prev->next = r->next;
	else if (c->reqs == r)
		c->reqs = r->next;
	else
		return; /* not linked */
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
	c->n_reqs--;
}

static void req_destroy(struct http_req *r)
{
	if (!r->removed)
		curl->multi_remove_handle(r->c->multi, r->easy);
	curl->easy_cleanup(r->easy);
	curl->slist_free_all(r->hdrs);
	ev_timer_free(r->idle);
	free(r->url);
	free(r->buf);
	free(r->hdr);
	free(r->up);
	free(r);
}

static void client_destroy(struct http_client *c)
{
	h2c_pool_free(c->h2c);
	if (c->multi)
		curl->multi_cleanup(c->multi);
	while (c->socks) {
		struct http_sock *hs = c->socks;

		c->socks = hs->next;
		ev_io_free(hs->io);
		free(hs);
	}
	ev_timer_free(c->timer);
	free(c);
}

static void maybe_destroy(struct http_client *c)
{
	if (c->busy == 0 && c->dying)
		client_destroy(c);
}

/* Runs on_data outside curl; false when the request was cancelled (and is gone now). */
static bool deliver_data(struct http_req *r)
{
	char *b = r->buf;
	size_t n = r->len;

	r->buf = NULL;
	r->len = r->cap = 0;
	r->pending = false;
	r->in_cb = true;
	r->on_data(r->ctx, b, n);
	r->in_cb = false;
	free(b);
	if (r->cancelled) {
		req_destroy(r);
		return false;
	}
	return true;
}

/* CURLcode stops here: the -errno of struct http_response. */
static int curl_errno(CURLcode rc, bool overflow)
{
	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_WEIRD_SERVER_REPLY:
		return -ECONNRESET;
	case CURLE_SSL_CONNECT_ERROR:
		return -ECONNABORTED;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
		return -EKEYREJECTED;
	case CURLE_WRITE_ERROR:
		return overflow ? -EMSGSIZE : -EIO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* @err: a failure found outside curl (idle timeout), else 0 and curl's @rc counts. */
static void finish(struct http_req *r, int rc, int err, const char *why)
{
	struct http_client *c = r->c;
	struct http_response resp = { 0 };
	long status = 0, nconn = 0;

	if (r->streamed && r->len && !deliver_data(r))
		return;
	curl->easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	curl->easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &nconn);
	c->connects += (size_t)(nconn > 0 ? nconn : 0);
	if (!r->removed) {
		curl->multi_remove_handle(c->multi, r->easy);
		r->removed = true;
	}
	req_unlink(r);
	r->cancelled = true;
	if (!err)
		err = curl_errno((CURLcode)rc, r->overflow);

	if (r->overflow && !why)
		why = "response too large";
	resp.err = err;
	resp.status = status;
	resp.headers = r->hdr ? r->hdr : "";
	if (err)
		resp.errmsg = why ? why : (r->errbuf[0] ? r->errbuf : curl->easy_strerror(rc));
	else
		resp.errmsg = "";
	if (!r->streamed) {
		resp.body = r->buf ? r->buf : "";
		resp.body_len = r->len;
	}
	r->in_cb = true;
	if (r->done)
		r->done(r->ctx, &resp);
	req_destroy(r);
}

static void dispatch(struct http_client *c)
{
	CURLMsg *msg;
	int left;

restart:
	for (struct http_req *r = c->reqs; r; r = r->next) {
		if (r->pending && !r->cancelled) {
			deliver_data(r);
			if (c->dying)
				return;
			goto restart;
		}
	}
	while ((msg = curl->multi_info_read(c->multi, &left))) {
		struct http_req *r = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl->easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (!r || r->cancelled)
			continue;
		finish(r, (int)msg->data.result, 0, NULL);
		if (c->dying)
			return;
	}
}

static void drive(struct http_client *c, curl_socket_t fd, int action)
{
	int running;

	c->busy++;
	curl->multi_socket_action(c->multi, fd, action, &running);
	if (!c->dying)
		dispatch(c);
	c->busy--;
	maybe_destroy(c);
}

static void sock_io_cb(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct http_sock *hs = ctx;
	int action = 0;

	(void)io;
	if (revents & EPOLLIN)
		action |= CURL_CSELECT_IN;
	if (revents & EPOLLOUT)
		action |= CURL_CSELECT_OUT;
	if (revents & (EPOLLERR | EPOLLHUP))
		action |= CURL_CSELECT_ERR;
	drive(hs->c, fd, action);
}

static void timer_fire(struct ev_timer *t, void *ctx)
{
	(void)t;
	drive(ctx, CURL_SOCKET_TIMEOUT, 0);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct http_client *c = userp;
	struct http_sock *hs = socketp;
	uint32_t events = 0;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (hs) {
			ev_io_free(hs->io);
			if (hs->prev)
				hs->prev->next = hs->next;
			else
				c->socks = hs->next;
			if (hs->next)
				hs->next->prev = hs->prev;
			free(hs);
			curl->multi_assign(c->multi, s, NULL);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		events |= EPOLLOUT;
	if (hs)
		return ev_io_set_events(hs->io, events) < 0 ? -1 : 0;
	hs = calloc(1, sizeof(*hs));
	if (!hs)
		return -1;
	hs->c = c;
	hs->fd = s;
	hs->io = ev_io_new(c->loop, s, events, sock_io_cb, hs);
	if (!hs->io) {
		log_debug("http: cannot watch socket %d: %s", s, strerror(errno));
		free(hs);
		return -1;
	}
	hs->next = c->socks;
	if (c->socks)
		c->socks->prev = hs;
	c->socks = hs;
	curl->multi_assign(c->multi, s, hs);
	return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct http_client *c = userp;

	(void)m;
	if (timeout_ms < 0)
		ev_timer_stop(c->timer);
	else if (ev_timer_start(c->timer, (uint64_t)timeout_ms, 0) < 0)
		return -1;
	return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct http_req *r = userp;
	size_t n = size * nmemb;

	r->last_rx = ev_now_ms();
	if (r->cancelled || n == 0)
		return n;
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		char *nb;

		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > r->max_body) {
			r->overflow = true;
			return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
		}
		nb = realloc(r->buf, cap);
		if (!nb)
			return 0;
		r->buf = nb;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, ptr, n);
	r->len += n;
	r->buf[r->len] = '\0';
	if (r->streamed)
		r->pending = true;
	return n;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct http_req *r = userp;
	size_t n = size * nmemb;

	if (r->hdr_len + n + 1 > r->hdr_cap) {
		size_t cap = r->hdr_cap ? r->hdr_cap : 512;
		char *nb;

		while (cap < r->hdr_len + n + 1)
			cap *= 2;
		if (cap > HTTP_MAX_HEADERS)
			return n; /* keep what fits: the first headers matter less than none */
		nb = realloc(r->hdr, cap);
		if (!nb)
			return 0;
		r->hdr = nb;
		r->hdr_cap = cap;
	}
	memcpy(r->hdr + r->hdr_len, ptr, n);
	r->hdr_len += n;
	r->hdr[r->hdr_len] = '\0';
	return n;
}

/* The streamed request body: pause the transfer while nothing waits (http_req_send resumes). */
static size_t read_cb(char *buf, size_t size, size_t nitems, void *userp)
{
	struct http_req *r = userp;
	size_t n = size * nitems, left = r->up_len - r->up_off;

	if (left == 0) {
		r->up_paused = true;
		return CURL_READFUNC_PAUSE;
	}
	if (n > left)
		n = left;
	memcpy(buf, r->up + r->up_off, n);
	r->up_off += n;
	if (r->up_off == r->up_len)
		r->up_off = r->up_len = 0;
	return n;
}

static void idle_fire(struct ev_timer *t, void *ctx)
{
	struct http_req *r = ctx;
	struct http_client *c = r->c;
	uint64_t now = ev_now_ms();
	char why[64];

	if (now < r->last_rx + (uint64_t)r->idle_ms) {
		ev_timer_start(t, r->last_rx + (uint64_t)r->idle_ms - now, 0);
		return;
	}
	snprintf(why, sizeof(why), "no data for %ld ms", r->idle_ms);
	c->busy++;
	finish(r, CURLE_OPERATION_TIMEDOUT, -ETIMEDOUT, why);
	if (!c->dying)
		dispatch(c);
	c->busy--;
	maybe_destroy(c);
}

/*
 * libcurl is loaded (lib/curl_dl.c) and set up on the first request that needs it (https://,
 * or HTTP/1.1): linked, it maps ~36 shared objects into every process (~9 MB RSS, ~5 ms
 * before main), and its global init initialises OpenSSL whatever its flags (gdb breakpoint
 * on OPENSSL_init_ssl, libcurl 7.88/OpenSSL 3), ~1.7 MB of clean libcrypto pages and ~90 kB
 * of heap, which a daemon whose endpoints are all http:// (h2c, lib/h2c.c) never needs
 * (bench/RESULTS.md, "start-up and memory"). 0 or -errno (-ELIBACC: no libcurl).
 */
static int curl_ready(struct http_client *c)
{
	static bool global_done;

	if (c->multi)
		return 0;
	if (!curl && !(curl = curl_dl_load()))
		return -ELIBACC;
	if (!global_done) {
		if (curl->global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -EIO;
		global_done = true;
	}
	c->multi = curl->multi_init();
	if (!c->multi)
		return -ENOMEM;
	curl->multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl->multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl->multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl->multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	curl->multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	return 0;
}

const char *http_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err == ELIBACC && curl_dl_error()[0])
		return curl_dl_error();
	return strerror(err);
}

struct http_client *http_client_new(struct ev_loop *loop)
{
	struct http_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->loop = loop;
	c->timer = ev_timer_new(loop, timer_fire, c);
	c->h2c = h2c_pool_new(loop);
	if (!c->timer || !c->h2c) {
		int err = errno ? errno : ENOMEM;

		h2c_pool_free(c->h2c);
		ev_timer_free(c->timer);
		free(c);
		errno = err;
		return NULL;
	}
	return c;
}

void http_client_free(struct http_client *c)
{
	if (!c || c->dying)
		return;
	c->dying = true;
	while (c->reqs)
		http_cancel(c->reqs);
	maybe_destroy(c);
}

void http_cancel(struct http_req *r)
{
	if (!r || r->cancelled)
		return;
	r->cancelled = true;
	req_unlink(r);
	if (r->h2s) {
		h2c_cancel(r->h2s);
		free(r);
		return;
	}
	if (!r->removed) {
		curl->multi_remove_handle(r->c->multi, r->easy);
		r->removed = true;
	}
	ev_timer_free(r->idle);
	r->idle = NULL;
	if (!r->in_cb)
		req_destroy(r);
}

size_t http_client_active(const struct http_client *c)
{
	return c->n_reqs;
}

size_t http_client_connects(const struct http_client *c)
{
	return c->connects + h2c_pool_connects(c->h2c);
}

#define SETOPT(h, opt, val)                                     \
	do {                                                    \
		if (curl->easy_setopt(h, opt, val) != CURLE_OK) \
			goto fail_inval;                        \
	} while (0)

static int append_headers(struct http_req *r, const struct http_request_opts *o)
{
	r->hdrs = curl->slist_append(NULL, "Expect:"); /* no 100-continue round trip */
	if (!r->hdrs)
		return -ENOMEM;
	for (const char *const *hp = o->headers; hp && *hp; hp++) {
		struct curl_slist *h = curl->slist_append(r->hdrs, *hp);

		if (!h)
			return -ENOMEM;
		r->hdrs = h;
	}
	return 0;
}

/* The body, the protocol version and the TLS files; 0 or -EINVAL. */
static int setup_body_and_tls(struct http_req *r, const struct http_request_opts *o)
{
	bool plain = strncasecmp(o->url, "http://", 7) == 0;

	if (o->stream_body) {
		SETOPT(r->easy, CURLOPT_POST, 1L);
		SETOPT(r->easy, CURLOPT_READFUNCTION, read_cb);
		SETOPT(r->easy, CURLOPT_READDATA, r);
		if (o->body && http_req_send(r, o->body, o->body_len) < 0)
			return -ENOMEM;
	} else if (o->body) {
		SETOPT(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
		SETOPT(r->easy, CURLOPT_COPYPOSTFIELDS, o->body);
	}
	if (o->h2) {
		/* h2 by ALPN; share the endpoint's connection instead of opening another */
		SETOPT(r->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
		SETOPT(r->easy, CURLOPT_PIPEWAIT, 1L);
	} else if (plain) {
		SETOPT(r->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	}
	if (o->cafile)
		SETOPT(r->easy, CURLOPT_CAINFO, o->cafile);
	if (o->certfile)
		SETOPT(r->easy, CURLOPT_SSLCERT, o->certfile);
	if (o->keyfile)
		SETOPT(r->easy, CURLOPT_SSLKEY, o->keyfile);
	return 0;
fail_inval:
	return -EINVAL;
}

static int setup_easy(struct http_req *r, const struct http_request_opts *o)
{
	int err = append_headers(r, o);

	if (err < 0)
		return err;
	SETOPT(r->easy, CURLOPT_URL, r->url);
	SETOPT(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(r->easy, CURLOPT_PRIVATE, (char *)r);
	/*
	 * libcurl 7.88 over HTTP/2 reads a reply in buffer-sized pieces and, once the socket is
	 * drained, finishes a transfer only when its next timer fires (~200 ms later): a 500-key
	 * listing page (~90 KB) then costs 200 ms. A buffer that holds a whole page avoids that.
	 * Unary calls only: the buffer lives as long as the handle, and streams live long.
	 */
	if (!o->stream_body)
		SETOPT(r->easy, CURLOPT_BUFFERSIZE, HTTP_UNARY_BUFFER);
	SETOPT(r->easy, CURLOPT_NOSIGNAL, 1L);
	SETOPT(r->easy, CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(r->easy, CURLOPT_WRITEDATA, r);
	SETOPT(r->easy, CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(r->easy, CURLOPT_HEADERDATA, r);
	SETOPT(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	SETOPT(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
	SETOPT(r->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	if (o->timeout_ms > 0)
		SETOPT(r->easy, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	if (o->connect_timeout_ms > 0)
		SETOPT(r->easy, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
	else if (o->timeout_ms > 0)
		SETOPT(r->easy, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms);
	return setup_body_and_tls(r, o);
fail_inval:
	return -EINVAL;
}

static void req_link(struct http_client *c, struct http_req *r)
{
	r->next = c->reqs;
	if (c->reqs)
		c->reqs->prev = r;
	c->reqs = r;
	c->n_reqs++;
}

/* h2c streams call back through these: the request is the wrapper the caller holds. */
static void h2c_data(void *ctx, const char *data, size_t len)
{
	struct http_req *r = ctx;

	r->on_data(r->ctx, data, len); /* may cancel (and free) @r: not touched after */
}

static void h2c_done(void *ctx, const struct http_response *resp)
{
	struct http_req *r = ctx;

	req_unlink(r);
	r->cancelled = true;
	if (r->done)
		r->done(r->ctx, resp);
	free(r);
}

/*
 * HTTP/2 on http:// goes to lib/h2c.c: libcurl 7.88 cannot share an h2c connection
 * (docs/etcd.md), h2c.c keeps one per origin for every request.
 */
static struct http_req *h2c_start(struct http_client *c, const struct http_request_opts *o,
                                  http_done_cb done, void *ctx)
{
	struct http_request_opts so = *o;
	struct http_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->c = c;
	r->done = done;
	r->ctx = ctx;
	r->on_data = o->on_data;
	so.on_data = o->on_data ? h2c_data : NULL;
	r->h2s = h2c_request(c->h2c, &so, h2c_done, r);
	if (!r->h2s) {
		int err = errno;

		free(r);
		errno = err;
		return NULL;
	}
	req_link(c, r);
	return r;
}

struct http_req *http_request(struct http_client *c, const struct http_request_opts *o,
                              http_done_cb done, void *ctx)
{
	struct http_req *r;
	int err = ENOMEM;

	if (!c || !o || !o->url || c->dying) {
		errno = EINVAL;
		return NULL;
	}
	if (o->h2 && strncasecmp(o->url, "http://", 7) == 0)
		return h2c_start(c, o, done, ctx);
	err = curl_ready(c);
	if (err < 0) {
		errno = -err;
		return NULL;
	}
	err = ENOMEM;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->c = c;
	r->removed = true;
	r->done = done;
	r->on_data = o->on_data;
	r->streamed = o->on_data != NULL;
	r->ctx = ctx;
	r->idle_ms = o->idle_ms;
	r->max_body = o->max_body ? o->max_body : HTTP_MAX_BODY;
	r->url = strdup(o->url);
	r->easy = curl->easy_init();
	if (!r->url || !r->easy)
		goto fail;
	err = setup_easy(r, o);
	if (err < 0) {
		err = -err;
		goto fail;
	}
	err = ENOMEM;
	if (r->idle_ms > 0) {
		r->idle = ev_timer_new(c->loop, idle_fire, r);
		if (!r->idle || ev_timer_start(r->idle, (uint64_t)r->idle_ms, 0) < 0)
			goto fail;
		r->last_rx = ev_now_ms();
	}
	if (curl->multi_add_handle(c->multi, r->easy) != CURLM_OK) {
		err = EIO;
		goto fail;
	}
	r->removed = false;
	req_link(c, r);
	return r;
fail:
	if (r->easy)
		curl->easy_cleanup(r->easy);
	curl->slist_free_all(r->hdrs);
	ev_timer_free(r->idle);
	free(r->url);
	free(r->up);
	free(r);
	errno = err;
	return NULL;
}

int http_req_send(struct http_req *r, const void *data, size_t len)
{
	if (!r || r->cancelled)
		return -EINVAL;
	if (r->h2s)
		return h2c_send(r->h2s, data, len);
	if (r->up_len + len > r->up_cap) {
		size_t cap = r->up_cap ? r->up_cap : 1024;
		char *nb;

		while (cap < r->up_len + len)
			cap *= 2;
		nb = realloc(r->up, cap);
		if (!nb)
			return -ENOMEM;
		r->up = nb;
		r->up_cap = cap;
	}
	memcpy(r->up + r->up_len, data, len);
	r->up_len += len;
	if (r->up_paused && !r->removed) {
		r->up_paused = false;
		if (curl->easy_pause(r->easy, CURLPAUSE_CONT) != CURLE_OK)
			return -EIO;
	}
	return 0;
}
