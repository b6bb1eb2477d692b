/*
 * Watches of the etcd store: ONE long-lived Watch stream per store (docs/etcd.md,
 * "gRPC"), its request side held open; each watch is a create request on it, sent one
 * at a time (etcd answers creates in order and a proxy assigns its own watch IDs, so the
 * "created" reply names the ID of the create in flight), and a cancel when it is freed.
 *
 * A broken stream is reopened (on another endpoint when its own failed) with every
 * watch resumed from its last delivered revision + 1; after ROUNDS rounds over the
 * endpoints without a working stream the watches end with -EPIPE.
 *
 * Liveness: a frozen member accepts connections and then says nothing, exactly like a
 * quiet healthy one. A stream silent for probe_ms gets a probe: a linearizable
 * count_only range on the stream's endpoint with the request timeout. An answer keeps
 * the stream; a transport failure or "unavailable" reopens it elsewhere. A unary call
 * that times out on the stream's endpoint probes it at once.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errfmt.h"
#include "lib/ev.h"
#include "lib/log.h"
#include "subnet/etcd_client_int.h"
#include "subnet/store_etcd_int.h"
#include "subnet/store_util.h"

#define BACKOFF_MIN_MS 50u
#define BACKOFF_MAX_MS 2000u
#define ROUNDS         3

enum wstate { W_NEW, W_CREATING, W_ACTIVE, W_DEAD };

struct store_watch {
	struct etcd_watcher *wr;
	char *key, *end;
	size_t key_len, end_len;
	int64_t next_rev;
	int64_t probe_rev; /* next_rev when the probe in flight was sent */
	int64_t id;        /* etcd's watch ID while W_ACTIVE */
	enum wstate state;
	store_watch_cb cb;
	void *ctx;
	struct ev_timer *timer; /* delivers pending_err */
	int pending_err;
	bool in_cb;
	bool freed;
	bool denied_once; /* refused once: a new token was fetched */
	unsigned cancels; /* canceled by etcd since the last events */
	struct store_watch *next, *prev;
};

struct etcd_watcher {
	struct etcd_store *s;
	struct etcd_stream *stream;
	struct store_watch *watches;
	struct store_watch *creating; /* its create is in flight (or NULL: freed since) */
	bool create_inflight;
	struct ev_timer *timer; /* reopen after back-off */
	struct ev_timer *probe_timer;
	struct etcd_call *probe;
	long ep;           /* endpoint of the stream, -1 while opening */
	uint64_t alive_ms; /* last sign of life of the stream's endpoint */
	unsigned failures;
};

static void watcher_open(struct etcd_watcher *wr);
static void watcher_probe(struct etcd_watcher *wr);

/* ---- watches ---- */

static void watch_destroy(struct store_watch *w)
{
	ev_timer_free(w->timer);
	free(w->key);
	free(w->end);
	free(w);
}

/* Calls the user; false when the watch was freed meanwhile (and is gone now). */
static bool watch_deliver(struct store_watch *w, int err, const struct store_event *evs, size_t n,
                          int64_t rev)
{
	w->in_cb = true;
	w->cb(w->ctx, err, evs, n, rev);
	w->in_cb = false;
	if (w->freed) {
		watch_destroy(w);
		return false;
	}
	return true;
}

static void watch_timer_fire(struct ev_timer *t, void *ctx)
{
	struct store_watch *w = ctx;

	(void)t;
	watch_deliver(w, w->pending_err, NULL, 0, 0);
}

static void send_msg(struct etcd_watcher *wr, int enc_r, struct etcd_buf *b, const char *what)
{
	if (enc_r == 0 && wr->stream && etcd_stream_send(wr->stream, b) == 0) {
		etcd_buf_free(b);
		return;
	}
	etcd_buf_free(b);
	log_debug("etcd watch: cannot send a %s", what);
}

/* The watch is dead: report @err from the loop; a cancel goes to etcd when it was active. */
static void watch_fail(struct store_watch *w, int err)
{
	struct etcd_watcher *wr = w->wr;
	struct etcd_buf b;

	if (w->state == W_ACTIVE)
		send_msg(wr, etcd_enc_watch_cancel(w->id, &b), &b, "cancel");
	if (wr->creating == w)
		wr->creating = NULL;
	w->state = W_DEAD;
	w->pending_err = err;
	ev_timer_start(w->timer, 0, 0);
}

static void watch_unlink(struct store_watch *w)
{
	struct etcd_watcher *wr = w->wr;

	if (w->prev)
		w->prev->next = w->next;
	else if (wr->watches == w)
		wr->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->next = w->prev = NULL;
}

void etcd_watch_free(struct store_watch *w)
{
	struct etcd_buf b;

	if (!w)
		return;
	if (w->state == W_ACTIVE)
		send_msg(w->wr, etcd_enc_watch_cancel(w->id, &b), &b, "cancel");
	if (w->wr->creating == w)
		w->wr->creating = NULL; /* its "created" is cancelled when it comes */
	watch_unlink(w);
	ev_timer_stop(w->timer);
	if (w->in_cb) {
		w->freed = true;
		return;
	}
	watch_destroy(w);
}

/* Send the next create when none is in flight. */
static void watcher_kick(struct etcd_watcher *wr)
{
	struct etcd_buf b;

	if (!wr->stream) {
		bool waiting = false;

		for (struct store_watch *w = wr->watches; w; w = w->next)
			waiting |= w->state == W_NEW;
		if (waiting && !ev_timer_active(wr->timer))
			watcher_open(wr);
		return;
	}
	if (wr->create_inflight)
		return;
	for (struct store_watch *w = wr->watches; w; w = w->next) {
		if (w->state != W_NEW)
			continue;
		if (etcd_enc_watch_create(w->key, w->key_len, w->end, w->end_len, w->next_rev, &b) <
		            0 ||
		    etcd_stream_send(wr->stream, &b) < 0) {
			etcd_buf_free(&b);
			watch_fail(w, -ENOMEM);
			continue;
		}
		etcd_buf_free(&b);
		w->state = W_CREATING;
		wr->creating = w;
		wr->create_inflight = true;
		return;
	}
}

/* ---- the stream ---- */

static void watcher_stop_stream(struct etcd_watcher *wr)
{
	etcd_stream_close(wr->stream);
	wr->stream = NULL;
	etcd_call_cancel(wr->probe);
	wr->probe = NULL;
	ev_timer_stop(wr->probe_timer);
	wr->creating = NULL;
	wr->create_inflight = false;
	for (struct store_watch *w = wr->watches; w; w = w->next)
		if (w->state == W_CREATING || w->state == W_ACTIVE)
			w->state = W_NEW;
}

/* The stream broke (or must move): reopen it after a back-off, or give up. */
static void watcher_broken(struct etcd_watcher *wr, int err, const char *why)
{
	size_t n_eps = etcd_client_n_eps(wr->s->c);
	uint64_t delay = 0;

	watcher_stop_stream(wr);
	wr->failures++;
	if (wr->failures > ROUNDS * n_eps || err == -EACCES) {
		log_debug("etcd watch: %s; giving up after %u attempts", why, wr->failures);
		for (struct store_watch *w = wr->watches; w; w = w->next)
			if (w->state != W_DEAD)
				watch_fail(w, err == -EACCES ? -EACCES : -EPIPE);
		wr->failures = 0;
		return;
	}
	if (wr->failures > n_eps) {
		unsigned sh = wr->failures - (unsigned)n_eps - 1;

		delay = sh >= 6 ? BACKOFF_MAX_MS : (uint64_t)BACKOFF_MIN_MS << sh;
		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
	}
	log_debug("etcd watch: %s; reopening in %" PRIu64 " ms", why, delay);
	if (ev_timer_start(wr->timer, delay, 0) < 0)
		log_debug("etcd watch: cannot arm a timer");
}

static void arm_probe(struct etcd_watcher *wr, uint64_t after_ms)
{
	if (wr->s->probe_ms > 0 && ev_timer_start(wr->probe_timer, after_ms, 0) < 0)
		log_debug("etcd watch: cannot arm the liveness probe");
}

static bool auth_problem(const char *reason)
{
	return strstr(reason, "user name is empty") || strstr(reason, "invalid auth token") ||
	       strstr(reason, "Unauthenticated");
}

/* A cancel from etcd; false when the stream was restarted. */
static bool on_canceled(struct etcd_watcher *wr, struct store_watch *w,
                        const struct etcd_watch_msg *m)
{
	bool perm = strstr(m->reason, "permission denied") || auth_problem(m->reason);

	etcd_client_stat_err(wr->s->c, perm ? -EACCES : -EINVAL);
	if (m->compact_revision > 0) {
		watch_fail(w, -ESTALE);
	} else if (perm && etcd_client_has_auth(wr->s->c) && !w->denied_once) {
		/*
		 * etcd 3.4 cancels a watch with "permission denied" when the stream's token has
		 * expired too: the first time, get a new token and open the stream again.
		 */
		w->denied_once = true;
		etcd_client_token_rejected(wr->s->c, NULL);
		watcher_broken(wr, -EPERM, m->reason);
		return false;
	} else if (perm) {
		watch_fail(w, -EACCES);
	} else if (++w->cancels > 3) {
		log_debug("etcd watch: canceled %u times in a row: %s", w->cancels, m->reason);
		watch_fail(w, -EPIPE);
	} else {
		w->state = W_NEW; /* created again on this stream */
	}
	return true;
}

/* The member is behind the revision we resume from: the store went backwards, or it lags. */
static void check_behind(struct etcd_watcher *wr, struct store_watch *w, int64_t rev)
{
	if (rev > 0 && rev < w->next_rev - 1) {
		log_debug("etcd watch: %s is at revision %" PRId64 ", behind %" PRId64
		          ": checking whether the store went backwards",
		          etcd_client_ep_url(wr->s->c, (size_t)wr->ep), rev, w->next_rev - 1);
		watcher_probe(wr);
	}
}

static void on_created(struct etcd_watcher *wr, const struct etcd_watch_msg *m)
{
	struct store_watch *w = wr->creating;
	struct etcd_buf b;

	wr->creating = NULL;
	wr->create_inflight = false;
	if (!w) { /* freed while its create was in flight */
		if (!m->canceled)
			send_msg(wr, etcd_enc_watch_cancel(m->watch_id, &b), &b, "cancel");
		return;
	}
	if (m->canceled) {
		on_canceled(wr, w, m);
		return;
	}
	w->id = m->watch_id;
	w->state = W_ACTIVE;
	w->denied_once = false;
	wr->ep = etcd_stream_ep(wr->stream);
	/* "from now": pin it, so a resume cannot skip what happens meanwhile */
	if (w->next_rev == 0 && m->revision > 0)
		w->next_rev = m->revision + 1;
	wr->failures = 0;
	check_behind(wr, w, m->revision);
}

/* Events or progress for @w; false when @w was freed. */
static bool on_events(struct store_watch *w, const struct etcd_watch_msg *m)
{
	size_t first = 0;

	w->cancels = 0;
	while (first < m->n_evs && m->evs[first].kv.mod_revision < w->next_rev)
		first++;
	if (m->n_evs == 0) {
		if (m->revision >= w->next_rev) {
			w->next_rev = m->revision + 1;
			return watch_deliver(w, 0, NULL, 0, m->revision);
		}
	} else if (first < m->n_evs) {
		int64_t last = m->evs[m->n_evs - 1].kv.mod_revision;

		if (last >= w->next_rev)
			w->next_rev = last + 1;
		return watch_deliver(w, 0, m->evs + first, m->n_evs - first, last);
	}
	return true;
}

static struct store_watch *find_active(struct etcd_watcher *wr, int64_t id)
{
	for (struct store_watch *w = wr->watches; w; w = w->next)
		if (w->state == W_ACTIVE && w->id == id)
			return w;
	return NULL;
}

static void on_msg(void *ctx, const uint8_t *buf, size_t len)
{
	struct etcd_watcher *wr = ctx;
	struct etcd_watch_msg m;
	struct store_watch *w;

	wr->alive_ms = ev_now_ms();
	if (etcd_decode_watch(buf, len, &m) < 0) {
		char why[300];

		etcd_client_stat_err(wr->s->c, -EPROTO);
		errfmt(why, sizeof(why), "bad watch message: %s", m.reason);
		watcher_broken(wr, -EPROTO, why);
		return;
	}
	if (m.created) {
		on_created(wr, &m);
		watcher_kick(wr);
	} else if ((w = find_active(wr, m.watch_id))) {
		if (m.canceled) {
			if (on_canceled(wr, w, &m))
				watcher_kick(wr);
		} else {
			on_events(w, &m);
		}
	}
	store_events_free(m.evs, m.n_evs);
}

static void on_end(void *ctx, int err, const char *why)
{
	struct etcd_watcher *wr = ctx;

	wr->stream = NULL;
	watcher_broken(wr, err, why);
}

static void watcher_open(struct etcd_watcher *wr)
{
	struct etcd_store *s = wr->s;

	wr->stream = etcd_stream_open(s->c, ETCD_PATH_WATCH, s->idle_ms, on_msg, on_end, wr);
	if (!wr->stream) {
		watcher_broken(wr, -ENOMEM, "cannot open the watch stream");
		return;
	}
	wr->ep = -1;
	wr->alive_ms = ev_now_ms();
	arm_probe(wr, (uint64_t)s->probe_ms);
	watcher_kick(wr);
}

static void reopen_fire(struct ev_timer *t, void *ctx)
{
	struct etcd_watcher *wr = ctx;

	(void)t;
	if (!wr->stream)
		watcher_kick(wr);
}

/* ---- liveness probes ---- */

/*
 * A linearizable read is never behind a revision seen before it was sent: when the probe's
 * revision is, the store went backwards (its data was wiped or restored) and a watch resumed
 * at the old revision would wait for it in silence: end it with -ESTALE (the caller lists
 * again).
 */
static void check_backwards(struct etcd_watcher *wr, int64_t rev)
{
	for (struct store_watch *w = wr->watches; w; w = w->next) {
		if (w->state == W_DEAD || rev <= 0 || rev >= w->probe_rev - 1)
			continue;
		log_debug("etcd watch: the store is at revision %" PRId64 " but revision %" PRId64
		          " was seen: it went backwards (wiped or restored): ESTALE",
		          rev, w->probe_rev - 1);
		etcd_client_stat_err(wr->s->c, -ESTALE);
		watch_fail(w, -ESTALE);
	}
}

static void probe_done(void *ctx, const struct etcd_answer *r)
{
	struct etcd_watcher *wr = ctx;
	struct store_result res;
	char why[700], err[100];

	wr->probe = NULL;
	if (!etcd_transport_err(r->err) && r->err != -EAGAIN && r->err != -EPROTO) {
		/* the member answers (an auth error proves that too): keep the stream */
		wr->alive_ms = ev_now_ms();
		if (r->err == 0 && etcd_decode_reply(ETCD_REPLY_RANGE, r->msg, r->len, &res, err,
		                                     sizeof(err)) == 0) {
			check_backwards(wr, res.revision);
			store_result_clear(&res);
		}
		arm_probe(wr, (uint64_t)wr->s->probe_ms);
		return;
	}
	errfmt(why, sizeof(why), "liveness probe failed: %s", r->errmsg);
	if (wr->ep >= 0)
		etcd_client_ep_failed(wr->s->c, (size_t)wr->ep, why);
	watcher_broken(wr, r->err, why);
}

/* A linearizable count_only range on the stream's endpoint. */
static void watcher_probe(struct etcd_watcher *wr)
{
	struct etcd_store *s = wr->s;
	const struct store_watch *w0 = wr->watches;
	struct etcd_buf b;
	long ep = wr->stream ? etcd_stream_ep(wr->stream) : -1;

	if (!wr->stream || wr->probe || ep < 0 || !w0)
		return;
	wr->ep = ep;
	if (etcd_enc_range(w0->key, w0->key_len, NULL, 0, 0, 0, true, &b) < 0) {
		arm_probe(wr, (uint64_t)(s->probe_ms > 0 ? s->probe_ms : 10000));
		return;
	}
	for (struct store_watch *w = wr->watches; w; w = w->next)
		w->probe_rev = w->next_rev;
	wr->probe = etcd_call_on(s->c, (size_t)ep, ETCD_PATH_KV_RANGE, &b, STORE_STAT_PROBE,
	                         probe_done, wr);
	if (!wr->probe)
		arm_probe(wr, (uint64_t)(s->probe_ms > 0 ? s->probe_ms : 10000));
	else
		log_debug("etcd watch: silent for %" PRIu64 " ms; probing %s",
		          ev_now_ms() - wr->alive_ms, etcd_client_ep_url(s->c, (size_t)ep));
}

static void probe_timer_fire(struct ev_timer *t, void *ctx)
{
	struct etcd_watcher *wr = ctx;
	uint64_t quiet = ev_now_ms() - wr->alive_ms;

	if (!wr->stream || wr->probe || wr->s->probe_ms <= 0)
		return;
	if (quiet < (uint64_t)wr->s->probe_ms) {
		ev_timer_start(t, (uint64_t)wr->s->probe_ms - quiet, 0);
		return;
	}
	watcher_probe(wr);
}

/* A unary call timed out on @ep: when the stream is there, probe it now. */
static void on_unary_timeout(void *ctx, size_t ep)
{
	struct etcd_watcher *wr = ctx;

	if (wr->stream && etcd_stream_ep(wr->stream) == (long)ep)
		watcher_probe(wr);
}

/* ---- life cycle ---- */

static struct etcd_watcher *watcher_get(struct etcd_store *s)
{
	struct etcd_watcher *wr = s->watcher;

	if (wr)
		return wr;
	wr = calloc(1, sizeof(*wr));
	if (!wr)
		return NULL;
	wr->s = s;
	wr->ep = -1;
	wr->timer = ev_timer_new(s->base.loop, reopen_fire, wr);
	wr->probe_timer = ev_timer_new(s->base.loop, probe_timer_fire, wr);
	if (!wr->timer || !wr->probe_timer) {
		ev_timer_free(wr->timer);
		ev_timer_free(wr->probe_timer);
		free(wr);
		return NULL;
	}
	etcd_client_on_timeout(s->c, on_unary_timeout, wr);
	s->watcher = wr;
	return wr;
}

void etcd_watcher_free(struct etcd_watcher *wr)
{
	if (!wr)
		return;
	watcher_stop_stream(wr);
	etcd_client_on_timeout(wr->s->c, NULL, NULL);
	while (wr->watches) {
		struct store_watch *w = wr->watches;

		watch_unlink(w);
		ev_timer_stop(w->timer);
		if (w->in_cb)
			w->freed = true;
		else
			watch_destroy(w);
	}
	ev_timer_free(wr->timer);
	ev_timer_free(wr->probe_timer);
	wr->s->watcher = NULL;
	free(wr);
}

static int watch_range(struct store_watch *w, const char *prefix)
{
	w->key_len = strlen(prefix);
	if (w->key_len == 0) { /* every key: key "\0", range_end "\0" */
		w->key = calloc(1, 2);
		w->key_len = 1;
	} else {
		w->key = strdup(prefix);
	}
	if (!w->key || store_prefix_end(w->key, w->key_len, &w->end, &w->end_len) < 0)
		return -ENOMEM;
	if (w->key_len == 1 && w->key[0] == '\0') {
		w->end[0] = '\0';
		w->end_len = 1;
	}
	return 0;
}

struct store_watch *etcd_watch(struct store *st, const char *prefix, int64_t from_rev,
                               store_watch_cb cb, void *ctx)
{
	struct etcd_store *s = (struct etcd_store *)st;
	struct etcd_watcher *wr;
	struct store_watch *w;

	if (!prefix || !cb || from_rev < 0) {
		errno = EINVAL;
		return NULL;
	}
	wr = watcher_get(s);
	w = wr ? calloc(1, sizeof(*w)) : NULL;
	if (!w) {
		errno = ENOMEM;
		return NULL;
	}
	w->wr = wr;
	w->cb = cb;
	w->ctx = ctx;
	w->next_rev = from_rev;
	w->timer = ev_timer_new(st->loop, watch_timer_fire, w);
	if (!w->timer || watch_range(w, prefix) < 0) {
		watch_destroy(w);
		errno = ENOMEM;
		return NULL;
	}
	w->next = wr->watches;
	if (wr->watches)
		wr->watches->prev = w;
	wr->watches = w;
	/* the stream starts from the loop: no callback runs inside this call */
	watcher_kick(wr);
	return w;
}
