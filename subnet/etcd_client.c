/*
 * The HTTP/2 call layer of the etcd store: endpoints (race, failover, background
 * probes), authentication, unary calls with retry. See etcd_client.h and docs/etcd.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errfmt.h"
#include "lib/ev.h"
#include "lib/http.h"
#include "lib/log.h"
#include "subnet/etcd_client_int.h"

#define BACKOFF_MIN_MS     50u
#define BACKOFF_MAX_MS     2000u
#define ROUNDS             3
#define DEFAULT_TIMEOUT_MS 5000
#define PROBE_TIMEOUT_MS   2000 /* a liveness probe (pinned call) gives up after this */

/* ---- stats ---- */

struct store_stats *etcd_client_stats(struct etcd_client *c)
{
	c->stats.connects = http_client_connects(c->http);
	return &c->stats;
}

void etcd_client_stat_err(struct etcd_client *c, int err)
{
	enum store_stat_err k;

	switch (err) {
	case -ETIMEDOUT:
		k = STORE_STAT_ERR_TIMEOUT;
		break;
	case -ECONNABORTED:
	case -EKEYREJECTED:
		k = STORE_STAT_ERR_TLS;
		break;
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -EIO:
	case -ENOMEM:
		k = STORE_STAT_ERR_CONNECT;
		break;
	case -EAGAIN:
		k = STORE_STAT_ERR_UNAVAILABLE;
		break;
	case -EPERM:
	case -EACCES:
		k = STORE_STAT_ERR_AUTH;
		break;
	case -EPROTO:
	case -EMSGSIZE:
		k = STORE_STAT_ERR_PROTOCOL;
		break;
	case -EPIPE:
		k = STORE_STAT_ERR_STREAM;
		break;
	default:
		k = STORE_STAT_ERR_REJECTED;
		break;
	}
	c->stats.errors[k]++;
}

/* A failure of the connection rather than an answer of etcd's. */
bool etcd_transport_err(int err)
{
	return err == -ECONNREFUSED || err == -ETIMEDOUT || err == -ECONNRESET ||
	       err == -ECONNABORTED || err == -EKEYREJECTED || err == -EIO || err == -ENOMEM;
}

/* ---- authentication ---- */

static void auth_done(void *ctx, const struct etcd_answer *r)
{
	struct etcd_client *c = ctx;
	char *tok = NULL;
	int err = r->err;

	c->auth = NULL;
	if (!err && etcd_decode_token(r->msg, r->len, &tok) < 0) {
		etcd_client_stat_err(c, -EPROTO);
		err = -EPROTO;
	}
	if (err) {
		char why[600];

		if (err == -EINVAL || err == -EEXIST || err == -EPERM)
			err = -EACCES; /* bad user or password, or auth not enabled */
		errfmt(why, sizeof(why), "authentication as %s failed: %s", c->username,
		       r->errmsg ? r->errmsg : "no token in the reply");
		etcd_client_wake(c, err, why);
		return;
	}
	free(c->token);
	c->token = tok;
	etcd_client_wake(c, 0, NULL);
}

/* True when a token must be fetched first (then the caller waits for wake()). */
bool etcd_client_need_token(struct etcd_client *c)
{
	struct etcd_buf b;

	if (!c->username || c->token)
		return false;
	if (c->auth)
		return true;
	if (etcd_enc_auth(c->username, c->password, &b) < 0)
		return true; /* ENOMEM: the caller's deadline ends the wait */
	c->auth = etcd_call(c, ETCD_PATH_AUTHENTICATE, &b, STORE_STAT_AUTH, auth_done, c);
	if (c->auth)
		c->auth->is_auth = true;
	return true;
}

/* An "invalid auth token" answer to a request that carried @sent: fetch a new one. */
void etcd_client_token_rejected(struct etcd_client *c, const char *sent)
{
	if (c->token && (!sent || strcmp(sent, c->token) == 0)) {
		free(c->token);
		c->token = NULL;
	}
}

/* ---- requests ---- */

int etcd_client_req_opts(struct etcd_client *c, size_t ep, const char *path, bool with_token,
                         struct etcd_req_opts *r)
{
	memset(r, 0, sizeof(*r));
	if (snprintf(r->url, sizeof(r->url), "%s%s", c->eps[ep].url, path) >= (int)sizeof(r->url))
		return -ENAMETOOLONG;
	r->hdrs[0] = "Content-Type: application/grpc";
	r->hdrs[1] = "TE: trailers";
	if (with_token && c->username && c->token) {
		snprintf(r->tok, sizeof(r->tok), "token: %s", c->token);
		snprintf(r->sent_token, sizeof(r->sent_token), "%s", c->token);
		r->hdrs[2] = r->tok;
	}
	r->o.url = r->url;
	r->o.headers = r->hdrs;
	r->o.h2 = true;
	r->o.cafile = c->cafile;
	r->o.certfile = c->certfile;
	r->o.keyfile = c->keyfile;
	r->o.max_body = ETCD_MSG_MAX + 5;
	return 0;
}

/* The outcome of an HTTP exchange: -errno and the reason in @why. */
int etcd_reply_status(const struct http_response *resp, char *why, size_t whylen)
{
	char gs[32], gm[512];

	if (resp->err) {
		errfmt(why, whylen, "%s", resp->errmsg);
		return resp->err;
	}
	return etcd_status(
		resp->status, http_header_get(resp->headers, "grpc-status", gs, sizeof(gs)),
		http_header_get(resp->headers, "grpc-message", gm, sizeof(gm)), why, whylen);
}

int etcd_client_timeout_ms(const struct etcd_client *c)
{
	return c->timeout_ms;
}

bool etcd_client_has_auth(const struct etcd_client *c)
{
	return c->username != NULL;
}

const char *etcd_client_ep_url(const struct etcd_client *c, size_t i)
{
	return i < c->n_eps ? c->eps[i].url : "?";
}

const char *etcd_client_endpoint(const struct etcd_client *c)
{
	if (c->cur >= 0)
		return c->eps[c->cur].url;
	return c->n_eps == 1 || !c->all_eps ? c->eps[0].url : c->all_eps;
}

size_t etcd_client_n_eps(const struct etcd_client *c)
{
	return c->n_eps;
}

void etcd_client_on_timeout(struct etcd_client *c, void (*fn)(void *ctx, size_t ep), void *ctx)
{
	c->on_timeout = fn;
	c->on_timeout_ctx = ctx;
}

/* ---- life cycle ---- */

static int dup_opt(const char *in, char **out)
{
	*out = NULL;
	if (!in || !*in)
		return 0;
	*out = strdup(in);
	return *out ? 0 : -ENOMEM;
}

static int add_eps(struct etcd_client *c, const struct store_opts *opts)
{
	static const char *const def_eps[] = { "http://127.0.0.1:2379", NULL };
	const char *const *eps = def_eps;
	size_t n = 0;

	if (opts && opts->endpoints && opts->endpoints[0])
		eps = (const char *const *)opts->endpoints;
	while (eps[n])
		n++;
	for (size_t i = 0; i < n; i++)
		if (strncmp(eps[i], "http://", 7) != 0 && strncmp(eps[i], "https://", 8) != 0) {
			log_debug("etcd: bad endpoint '%s' (want http:// or https://)", eps[i]);
			return -EINVAL;
		}
	c->eps = calloc(n, sizeof(*c->eps));
	if (!c->eps)
		return -ENOMEM;
	/* what endpoint() says before one answered: all of them, none singled out */
	for (size_t i = 0, len = 0; i < n; i++) {
		size_t l = strlen(eps[i]);
		char *a = realloc(c->all_eps, len + l + 2);

		if (!a)
			return -ENOMEM;
		c->all_eps = a;
		memcpy(a + len, eps[i], l);
		len += l;
		a[len] = i + 1 < n ? ',' : '\0';
		len += i + 1 < n ? 1 : 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct etcd_ep *e = &c->eps[i];
		size_t l;

		e->c = c;
		e->url = strdup(eps[i]);
		e->reprobe = ev_timer_new(c->loop, etcd_ep_reprobe_fire, e);
		c->n_eps++;
		if (!e->url || !e->reprobe)
			return -ENOMEM;
		l = strlen(e->url);
		while (l > 0 && e->url[l - 1] == '/')
			e->url[--l] = '\0';
	}
	return 0;
}

struct etcd_client *etcd_client_new(struct ev_loop *loop, const struct store_opts *opts)
{
	struct etcd_client *c = calloc(1, sizeof(*c));
	int err = -ENOMEM;

	if (!c)
		return NULL;
	c->loop = loop;
	c->cur = -1;
	c->grace = ev_timer_new(loop, etcd_race_grace_fire, c);
	if (!c->grace)
		goto fail;
	err = add_eps(c, opts);
	if (err < 0)
		goto fail;
	err = -ENOMEM;
	c->timeout_ms = opts && opts->request_timeout_ms > 0 ? opts->request_timeout_ms
	                                                     : DEFAULT_TIMEOUT_MS;
	if (opts &&
	    (dup_opt(opts->cafile, &c->cafile) < 0 || dup_opt(opts->certfile, &c->certfile) < 0 ||
	     dup_opt(opts->keyfile, &c->keyfile) < 0 || dup_opt(opts->username, &c->username) < 0 ||
	     dup_opt(opts->password, &c->password) < 0))
		goto fail;
	c->http = http_client_new(loop);
	if (!c->http) {
		err = -errno;
		goto fail;
	}
	return c;
fail:
	etcd_client_free(c);
	errno = -err;
	return NULL;
}

void etcd_client_free(struct etcd_client *c)
{
	if (!c)
		return;
	etcd_streams_free(c);
	while (c->calls)
		etcd_call_cancel(c->calls);
	http_client_free(c->http);
	ev_timer_free(c->grace);
	for (size_t i = 0; i < c->n_eps; i++) {
		ev_timer_free(c->eps[i].reprobe);
		free(c->eps[i].url);
	}
	free(c->eps);
	free(c->all_eps);
	free(c->cafile);
	free(c->certfile);
	free(c->keyfile);
	free(c->username);
	free(c->password);
	free(c->token);
	free(c);
}

/* ---- unary calls ---- */

static void call_unlink(struct etcd_call *call)
{
	struct etcd_client *c = call->c;

	if (call->prev)
		call->prev->next = call->next;
	else if (c->calls == call)
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	call->next = call->prev = NULL;
}

void etcd_call_cancel(struct etcd_call *call)
{
	if (!call)
		return;
	call_unlink(call);
	http_cancel(call->http);
	ev_timer_free(call->timer);
	etcd_buf_free(&call->req);
	free(call->rbuf);
	if (call->c->auth == call)
		call->c->auth = NULL;
	free(call);
}

/* Runs the callback (which may free the client) and frees the call. */
static void call_complete(struct etcd_call *call, int err, const uint8_t *msg, size_t len)
{
	struct etcd_answer r = {
		.err = err, .msg = msg, .len = len, .ambiguous = call->ambiguous, .ep = call->ep
	};
	etcd_call_cb cb = call->cb;
	void *ctx = call->ctx;

	r.errmsg = err ? (call->errmsg[0] ? call->errmsg : strerror(-err)) : NULL;
	call_unlink(call);
	http_cancel(call->http);
	call->http = NULL;
	/* the callback may free the client: nothing of @call is used after it */
	cb(ctx, &r);
	ev_timer_free(call->timer);
	etcd_buf_free(&call->req);
	free(call->rbuf);
	free(call);
}

static void call_timer_fire(struct ev_timer *t, void *ctx)
{
	struct etcd_call *call = ctx;

	(void)t;
	if (call->final_err) {
		call_complete(call, call->final_err, NULL, 0);
		return;
	}
	call->waiting = false;
	etcd_call_try(call);
}

/* Complete with @err from the loop, never from inside the caller's call. */
static void call_fail_later(struct etcd_call *call, int err)
{
	call->final_err = err;
	call->waiting = false;
	if (ev_timer_start(call->timer, 0, 0) < 0)
		log_debug("etcd: cannot arm a timer: %s", strerror(errno));
}

static uint64_t call_budget_ms(const struct etcd_call *call)
{
	return (uint64_t)call->c->timeout_ms * ROUNDS;
}

static void note_tried(struct etcd_call *call, const char *ep)
{
	size_t l = strlen(call->tried);

	if (strstr(call->tried, ep))
		return;
	snprintf(call->tried + l, sizeof(call->tried) - l, "%s%s", l ? ", " : "", ep);
}

/* An attempt failed in transport, unavailable, or no endpoint answered: retry or give up. */
void etcd_call_attempt_failed(struct etcd_call *call, int err, const char *why_in)
{
	struct etcd_client *c = call->c;
	uint64_t delay = 0, elapsed = ev_now_ms() - call->start_ms;
	char why[sizeof(call->errmsg)];

	snprintf(why, sizeof(why), "%s", why_in ? why_in : "");
	/* an attempt that found no endpoint to send to counts as one too (store_stats.h) */
	if (!call->sent)
		c->stats.requests[call->stat]++;
	call->sent = false;
	call->attempts++;
	if (err == -EKEYREJECTED || err == -EACCES || call->pinned >= 0) {
		errfmt(call->errmsg, sizeof(call->errmsg), "%s", why);
		call_fail_later(call, err == -EKEYREJECTED ? -EACCES : err);
		return;
	}
	if (c->cur < 0 || call->attempts % c->n_eps == 0) {
		delay = call->backoff_ms;
		call->backoff_ms = call->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
		                                                         : call->backoff_ms * 2;
	}
	if (call->attempts >= ROUNDS * c->n_eps || elapsed + delay >= call_budget_ms(call)) {
		errfmt(call->errmsg, sizeof(call->errmsg),
		       "etcd unreachable after %u attempts in %" PRIu64 " ms (tried %s): %s",
		       call->attempts, elapsed, call->tried[0] ? call->tried : "no endpoint", why);
		call_fail_later(call, err == -EAGAIN ? -ETIMEDOUT
		                      : err == -ETIMEDOUT || err == -EPROTO || err == -EMSGSIZE
		                              ? err
		                              : -ECONNREFUSED);
		return;
	}
	log_debug("etcd: %s; retrying in %" PRIu64 " ms", why, delay);
	if (ev_timer_start(call->timer, delay, 0) < 0)
		call_fail_later(call, -errno);
}

static void call_http_done(void *ctx, const struct http_response *resp);
static void call_data(void *ctx, const char *data, size_t len);

static void call_send(struct etcd_call *call, size_t ep)
{
	struct etcd_client *c = call->c;
	struct etcd_req_opts r;
	uint64_t elapsed = ev_now_ms() - call->start_ms;
	uint64_t left = call_budget_ms(call) > elapsed ? call_budget_ms(call) - elapsed : 0;
	int err;

	call->ep = ep;
	err = etcd_client_req_opts(c, ep, call->path, !call->is_auth, &r);
	if (err < 0) {
		errfmt(call->errmsg, sizeof(call->errmsg), "URL too long");
		call_fail_later(call, err);
		return;
	}
	memcpy(call->sent_token, r.sent_token, sizeof(call->sent_token));
	note_tried(call, c->eps[ep].url);
	r.o.body = (const char *)call->req.data;
	r.o.body_len = call->req.len;
	if (call->hold_open) {
		r.o.stream_body = true;
		r.o.on_data = call_data;
		call->rlen = 0;
	}
	r.o.timeout_ms = (long)(left < (uint64_t)c->timeout_ms ? left : (uint64_t)c->timeout_ms);
	/*
	 * Pinned calls are liveness probes of one member: a live member answers them in
	 * milliseconds, so a frozen one is left after PROBE_TIMEOUT_MS, not the request timeout.
	 */
	if (call->pinned >= 0)
		r.o.timeout_ms = c->timeout_ms < PROBE_TIMEOUT_MS ? c->timeout_ms : PROBE_TIMEOUT_MS;
	else if (r.o.timeout_ms < 100)
		r.o.timeout_ms = c->timeout_ms;
	call->http = http_request(c->http, &r.o, call_http_done, call);
	if (!call->http) {
		errfmt(call->errmsg, sizeof(call->errmsg), "cannot start a request to %.300s: %s",
		       r.url, http_strerror(errno));
		call_fail_later(call, -errno);
		return;
	}
	c->stats.requests[call->stat]++;
	call->sent = true;
}

void etcd_call_try(struct etcd_call *call)
{
	struct etcd_client *c = call->c;
	long ep;

	if (call->pinned >= 0) {
		call_send(call, (size_t)call->pinned);
		return;
	}
	if (!call->is_auth && etcd_client_need_token(c)) {
		call->waiting = true;
		return;
	}
	ep = etcd_client_pick(c);
	if (ep < 0) {
		call->waiting = true;
		return;
	}
	call_send(call, (size_t)ep);
}

/* A reply of a single message: 0 with *@msg, or -EPROTO / -EMSGSIZE with a reason. */
static int one_message(const uint8_t *body, size_t body_len, const uint8_t **msg, size_t *len,
                       char *why, size_t whylen)
{
	size_t used;
	int r = etcd_unframe(body, body_len, ETCD_MSG_MAX, msg, len, &used, why, whylen);

	if (r == 0) {
		errfmt(why, whylen, "reply of %zu bytes holds no complete gRPC message", body_len);
		return -EPROTO;
	}
	return r < 0 ? r : 0;
}

/* A reply message of a call that holds its request side open: complete at once. */
static void call_data(void *ctx, const char *data, size_t len)
{
	struct etcd_call *call = ctx;
	struct etcd_client *c = call->c;
	const uint8_t *msg;
	size_t mlen, used;
	char why[200];
	int r;

	if (call->rlen + len > call->rcap) {
		size_t cap = call->rcap ? call->rcap : 256;
		uint8_t *nb;

		while (cap < call->rlen + len)
			cap *= 2;
		if (cap > ETCD_MSG_MAX + 5 || !(nb = realloc(call->rbuf, cap)))
			return; /* call_http_done reports what is there */
		call->rbuf = nb;
		call->rcap = cap;
	}
	memcpy(call->rbuf + call->rlen, data, len);
	call->rlen += len;
	r = etcd_unframe(call->rbuf, call->rlen, ETCD_MSG_MAX, &msg, &mlen, &used, why,
	                 sizeof(why));
	if (r <= 0)
		return; /* more to come, or the end tells */
	c->stats.last_ok_ms = ev_now_ms();
	call_complete(call, 0, msg, mlen);
}

static void call_http_done(void *ctx, const struct http_response *resp)
{
	struct etcd_call *call = ctx;
	struct etcd_client *c = call->c;
	const uint8_t *msg = NULL;
	size_t len = 0;
	char why[400] = "";
	int err;

	call->http = NULL;
	err = etcd_reply_status(resp, why, sizeof(why));
	if (err == 0 && call->hold_open)
		err = one_message(call->rbuf, call->rlen, &msg, &len, why, sizeof(why));
	else if (err == 0)
		err = one_message((const uint8_t *)resp->body, resp->body_len, &msg, &len, why,
		                  sizeof(why));
	if (err)
		etcd_client_stat_err(c, err);
	if (!etcd_transport_err(err) && err != -EAGAIN)
		c->stats.last_ok_ms = ev_now_ms();
	if (err)
		errfmt(call->errmsg, sizeof(call->errmsg), "etcd %s: %s", c->eps[call->ep].url,
		       why);
	if (err == -ETIMEDOUT && c->on_timeout)
		c->on_timeout(c->on_timeout_ctx, call->ep);
	if (err == 0 || call->pinned >= 0) {
		call_complete(call, err, msg, len);
		return;
	}
	if (err == -EPERM && c->username && !call->reauthed && !call->is_auth) {
		call->reauthed = true;
		etcd_client_token_rejected(c, call->sent_token);
		etcd_call_try(call);
		return;
	}
	if (etcd_transport_err(err) || err == -EAGAIN || err == -EPROTO || err == -EMSGSIZE) {
		if (err != -ECONNREFUSED)
			call->ambiguous = true;
		etcd_ep_down(c, call->ep, why);
		etcd_call_attempt_failed(call, err, call->errmsg);
		return;
	}
	if (err == -EPERM)
		err = -EACCES;
	call_complete(call, err, NULL, 0);
}

static struct etcd_call *call_new(struct etcd_client *c, const char *path, struct etcd_buf *req,
                                  enum store_stat_op stat, etcd_call_cb cb, void *ctx)
{
	struct etcd_call *call = calloc(1, sizeof(*call));

	if (!call || !(call->timer = ev_timer_new(c->loop, call_timer_fire, call))) {
		free(call);
		etcd_buf_free(req);
		errno = ENOMEM;
		return NULL;
	}
	call->c = c;
	call->path = path;
	call->req = *req;
	memset(req, 0, sizeof(*req));
	call->stat = stat;
	call->cb = cb;
	call->ctx = ctx;
	call->pinned = -1;
	call->start_ms = ev_now_ms();
	call->backoff_ms = BACKOFF_MIN_MS;
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	return call;
}

struct etcd_call *etcd_call(struct etcd_client *c, const char *path, struct etcd_buf *req,
                            enum store_stat_op stat, etcd_call_cb cb, void *ctx)
{
	struct etcd_call *call = call_new(c, path, req, stat, cb, ctx);

	/* started from the loop: the caller's callback never runs inside this call */
	if (call && ev_timer_start(call->timer, 0, 0) < 0) {
		etcd_call_cancel(call);
		return NULL;
	}
	return call;
}

struct etcd_call *etcd_call_open(struct etcd_client *c, const char *path, struct etcd_buf *req,
                                 enum store_stat_op stat, etcd_call_cb cb, void *ctx)
{
	struct etcd_call *call = call_new(c, path, req, stat, cb, ctx);

	if (!call)
		return NULL;
	call->hold_open = true;
	if (ev_timer_start(call->timer, 0, 0) < 0) {
		etcd_call_cancel(call);
		return NULL;
	}
	return call;
}

struct etcd_call *etcd_call_on(struct etcd_client *c, size_t ep, const char *path,
                               struct etcd_buf *req, enum store_stat_op stat, etcd_call_cb cb,
                               void *ctx)
{
	struct etcd_call *call = call_new(c, path, req, stat, cb, ctx);

	if (!call)
		return NULL;
	call->pinned = (long)ep;
	if (ev_timer_start(call->timer, 0, 0) < 0) {
		etcd_call_cancel(call);
		return NULL;
	}
	return call;
}
