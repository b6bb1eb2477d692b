/* The etcd store against a real etcd (tests/support/etcd_fixture.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <dirent.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "lib/base64.h"
#include "lib/ev.h"
#include "subnet/store.h"
#include "subnet/store_stats.h"
#include "subnet/store_util.h"
#include "tests/support/etcd_fixture.h"
#include "tests/support/grpc_fake.h"

#define P "/coreos.com/network/"

static struct ev_loop *loop;
static struct etcd_fixture *fx;
static struct store *st;

struct sync {
	bool done;
	struct store_result res;
	char errmsg[600];
};

static void on_res(void *ctx, const struct store_result *r)
{
	struct sync *y = ctx;

	cr_assert(!y->done, "callback ran twice");
	y->res = *r;
	y->res.kvs = NULL;
	y->res.n_kvs = 0;
	if (r->n_kvs) {
		y->res.kvs = calloc(r->n_kvs, sizeof(*r->kvs));
		cr_assert(y->res.kvs);
		for (size_t i = 0; i < r->n_kvs; i++)
			cr_assert_eq(store_kv_copy(&y->res.kvs[i], &r->kvs[i]), 0);
		y->res.n_kvs = r->n_kvs;
	}
	snprintf(y->errmsg, sizeof(y->errmsg), "%s", r->errmsg ? r->errmsg : "");
	y->res.errmsg = y->errmsg;
	y->done = true;
}

static void finish_sync(struct sync *y, int r, int timeout_ms)
{
	cr_assert_eq(r, 0, "call not queued: %d", r);
	cr_assert(!y->done, "callback ran from inside the call");
	cr_assert_eq(ev_loop_run_until(loop, &y->done, timeout_ms), 0, "no reply in %d ms",
	             timeout_ms);
}

static void sync_clear(struct sync *y)
{
	store_result_clear(&y->res);
	memset(y, 0, sizeof(*y));
}

#define DO(y, call)                            \
	do {                                   \
		sync_clear(y);                 \
		finish_sync(y, (call), 15000); \
	} while (0)

static void start(const struct etcd_fixture_opts *fo, struct store_opts *so)
{
	struct store_opts def = { 0 };

	loop = ev_loop_new();
	cr_assert(loop);
	fx = etcd_fixture_start(fo);
	cr_assert(fx, "etcd did not start");
	if (!so)
		so = &def;
	if (!so->endpoints)
		so->endpoints = fx->endpoints;
	st = store_etcd_new(loop, so);
	cr_assert(st, "store_etcd_new: %s", strerror(errno));
}

static void stop(void)
{
	store_free(st);
	st = NULL;
	ev_loop_free(loop);
	loop = NULL;
	etcd_fixture_stop(fx);
	fx = NULL;
}

static int64_t put(const char *key, const char *value)
{
	struct sync y = { 0 };
	int64_t rev;

	DO(&y, st->ops->put(st, key, value, strlen(value), 0, on_res, &y));
	cr_assert_eq(y.res.err, 0, "put %s: %s", key, y.errmsg);
	cr_assert(y.res.succeeded);
	rev = y.res.revision;
	sync_clear(&y);
	return rev;
}

/* ---- watch collection ---- */

struct wcoll {
	int err;
	bool got_err;
	struct store_event evs[64];
	size_t n;
	int64_t last_rev;
	int calls;
};

static void on_watch(void *ctx, int err, const struct store_event *evs, size_t n, int64_t rev)
{
	struct wcoll *w = ctx;

	w->calls++;
	if (err) {
		w->err = err;
		w->got_err = true;
		return;
	}
	for (size_t i = 0; i < n && w->n < 64; i++) {
		struct store_event *e = &w->evs[w->n++];

		e->type = evs[i].type;
		cr_assert_eq(store_kv_copy(&e->kv, &evs[i].kv), 0);
		cr_assert_eq(store_kv_copy(&e->prev_kv, &evs[i].prev_kv), 0);
	}
	if (rev > w->last_rev)
		w->last_rev = rev;
}

static void wcoll_clear(struct wcoll *w)
{
	for (size_t i = 0; i < w->n; i++) {
		store_kv_clear(&w->evs[i].kv);
		store_kv_clear(&w->evs[i].prev_kv);
	}
	memset(w, 0, sizeof(*w));
}

static bool wait_events(struct wcoll *w, size_t n, int timeout_ms)
{
	uint64_t end = ev_now_ms() + (uint64_t)timeout_ms;

	while (w->n < n && !w->got_err && ev_now_ms() < end)
		ev_loop_run_once(loop, 50);
	return w->n >= n;
}

/* ---------------------------------------------------------------------- */

Test(store_etcd, put_get_list)
{
	struct sync y = { 0 };
	int64_t r1, r2, r3;

	start(NULL, NULL);
	r1 = put(P "subnets/10.5.1.0-24", "{\"PublicIP\":\"192.0.2.1\"}");
	r2 = put(P "subnets/10.5.2.0-24", "two");
	cr_assert_gt(r2, r1);
	DO(&y, st->ops->put(st, P "config", "a\0b", 3, 0, on_res, &y));
	cr_assert_eq(y.res.err, 0);
	r3 = y.res.revision;
	put("/other/key", "x");

	DO(&y, st->ops->get(st, P "subnets/10.5.1.0-24", on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_eq(y.res.n_kvs, 1);
	cr_assert_str_eq(y.res.kvs[0].key, P "subnets/10.5.1.0-24");
	cr_assert_str_eq(y.res.kvs[0].value, "{\"PublicIP\":\"192.0.2.1\"}");
	cr_assert_eq(y.res.kvs[0].create_revision, r1);
	cr_assert_eq(y.res.kvs[0].mod_revision, r1);
	cr_assert_eq(y.res.kvs[0].version, 1);
	cr_assert_eq(y.res.kvs[0].lease, 0);
	cr_assert_geq(y.res.revision, r3);

	DO(&y, st->ops->get(st, P "config", on_res, &y));
	cr_assert_eq(y.res.n_kvs, 1);
	cr_assert_eq(y.res.kvs[0].value_len, 3);
	cr_assert_eq(memcmp(y.res.kvs[0].value, "a\0b", 3), 0);

	DO(&y, st->ops->get(st, P "nosuch", on_res, &y));
	cr_assert_eq(y.res.err, 0);
	cr_assert_eq(y.res.n_kvs, 0);
	cr_assert_gt(y.res.revision, 0);

	DO(&y, st->ops->put(st, P "empty", "", 0, 0, on_res, &y));
	DO(&y, st->ops->get(st, P "empty", on_res, &y));
	cr_assert_eq(y.res.n_kvs, 1);
	cr_assert_eq(y.res.kvs[0].value_len, 0);
	cr_assert_str_eq(y.res.kvs[0].value, "");

	DO(&y, st->ops->list(st, P "subnets/", on_res, &y));
	cr_assert_eq(y.res.err, 0);
	cr_assert_eq(y.res.n_kvs, 2);
	cr_assert_str_eq(y.res.kvs[0].key, P "subnets/10.5.1.0-24");
	cr_assert_str_eq(y.res.kvs[1].key, P "subnets/10.5.2.0-24");
	cr_assert_str_eq(y.res.kvs[1].value, "two");
	cr_assert_gt(y.res.revision, r3);

	DO(&y, st->ops->list(st, P "nothing/", on_res, &y));
	cr_assert_eq(y.res.err, 0);
	cr_assert_eq(y.res.n_kvs, 0);
	sync_clear(&y);
	cr_assert_str_eq(st->ops->endpoint(st), fx->endpoints[0]);
	stop();
}

Test(store_etcd, create_if_absent_race)
{
	struct sync a = { 0 }, b = { 0 }, y = { 0 };
	char *body = NULL;
	int64_t lease;

	start(NULL, NULL);
	DO(&a, st->ops->create(st, P "subnets/10.5.3.0-24", "mine", 4, 30, on_res, &a));
	cr_assert_eq(a.res.err, 0, "%s", a.errmsg);
	cr_assert(a.res.succeeded);
	cr_assert_gt(a.res.lease_id, 0);
	cr_assert_eq(a.res.n_kvs, 0);
	lease = a.res.lease_id;

	DO(&b, st->ops->create(st, P "subnets/10.5.3.0-24", "theirs", 6, 30, on_res, &b));
	cr_assert_eq(b.res.err, 0, "%s", b.errmsg);
	cr_assert(!b.res.succeeded);
	cr_assert_eq(b.res.lease_id, 0);
	cr_assert_eq(b.res.n_kvs, 1);
	cr_assert_str_eq(b.res.kvs[0].value, "mine");
	cr_assert_eq(b.res.kvs[0].lease, lease);
	/* the loser's lease was revoked: only the winner's is left */
	cr_assert_eq(etcd_fixture_post(fx, "/v3/lease/leases", "{}", &body), 200);
	cr_assert(strstr(body, "\"leases\":[{\"ID\":\""), "%s", body);
	cr_assert_null(strstr(body, "},{"), "more than one lease: %s", body);
	free(body);

	/* two at once: exactly one wins */
	sync_clear(&a);
	sync_clear(&b);
	cr_assert_eq(st->ops->create(st, P "subnets/10.5.4.0-24", "a", 1, 0, on_res, &a), 0);
	cr_assert_eq(st->ops->create(st, P "subnets/10.5.4.0-24", "b", 1, 0, on_res, &b), 0);
	cr_assert_eq(ev_loop_run_until(loop, &a.done, 10000), 0);
	cr_assert_eq(ev_loop_run_until(loop, &b.done, 10000), 0);
	cr_assert_eq(a.res.err + b.res.err, 0);
	cr_assert_eq((int)a.res.succeeded + (int)b.res.succeeded, 1);
	cr_assert_eq(a.res.lease_id + b.res.lease_id, 0);
	DO(&y, st->ops->get(st, P "subnets/10.5.4.0-24", on_res, &y));
	cr_assert_str_eq(y.res.kvs[0].value, a.res.succeeded ? "a" : "b");
	sync_clear(&a);
	sync_clear(&b);
	sync_clear(&y);
	stop();
}

Test(store_etcd, cas_and_del)
{
	struct sync y = { 0 };
	int64_t m1, m2;

	start(NULL, NULL);
	DO(&y, st->ops->cas(st, P "k", "v1", 2, 0, 0, on_res, &y)); /* absent: expect 0 */
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert(y.res.succeeded);
	m1 = y.res.revision;
	DO(&y, st->ops->cas(st, P "k", "v9", 2, 0, 0, on_res, &y)); /* exists now */
	cr_assert(!y.res.succeeded);
	cr_assert_eq(y.res.n_kvs, 1);
	cr_assert_eq(y.res.kvs[0].mod_revision, m1);

	DO(&y, st->ops->cas(st, P "k", "v2", 2, m1, 0, on_res, &y));
	cr_assert(y.res.succeeded);
	m2 = y.res.revision;
	cr_assert_gt(m2, m1);
	DO(&y, st->ops->cas(st, P "k", "v3", 2, m1, 0, on_res, &y)); /* stale */
	cr_assert_eq(y.res.err, 0);
	cr_assert(!y.res.succeeded);
	cr_assert_eq(y.res.n_kvs, 1);
	cr_assert_str_eq(y.res.kvs[0].value, "v2");
	cr_assert_eq(y.res.kvs[0].mod_revision, m2);

	DO(&y, st->ops->del(st, P "k", m1, on_res, &y)); /* stale */
	cr_assert_eq(y.res.err, 0);
	cr_assert(!y.res.succeeded);
	cr_assert_eq(y.res.kvs[0].mod_revision, m2);
	DO(&y, st->ops->del(st, P "k", m2, on_res, &y));
	cr_assert(y.res.succeeded);
	DO(&y, st->ops->get(st, P "k", on_res, &y));
	cr_assert_eq(y.res.n_kvs, 0);

	put(P "k2", "x");
	DO(&y, st->ops->del(st, P "k2", 0, on_res, &y));
	cr_assert_eq(y.res.err, 0);
	cr_assert(y.res.succeeded);
	DO(&y, st->ops->del(st, P "k2", 0, on_res, &y)); /* already gone */
	cr_assert_eq(y.res.err, 0);
	cr_assert(!y.res.succeeded);
	sync_clear(&y);
	stop();
}

Test(store_etcd, leases_keepalive_revoke)
{
	struct sync y = { 0 };
	int64_t lease;

	start(NULL, NULL);
	DO(&y, st->ops->grant(st, 20, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_gt(y.res.lease_id, 0);
	cr_assert_eq(y.res.ttl, 20);
	lease = y.res.lease_id;
	DO(&y, st->ops->put(st, P "leased", "v", 1, lease, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	DO(&y, st->ops->get(st, P "leased", on_res, &y));
	cr_assert_eq(y.res.kvs[0].lease, lease);

	DO(&y, st->ops->keepalive(st, lease, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_eq(y.res.lease_id, lease);
	cr_assert_gt(y.res.ttl, 15);

	DO(&y, st->ops->revoke(st, lease, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	DO(&y, st->ops->get(st, P "leased", on_res, &y));
	cr_assert_eq(y.res.n_kvs, 0, "revoke did not delete the key");
	DO(&y, st->ops->keepalive(st, lease, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_eq(y.res.ttl, 0, "lost lease must give ttl 0");
	DO(&y, st->ops->revoke(st, lease, on_res, &y));
	cr_assert_eq(y.res.err, -ENOENT, "%s", y.errmsg);
	cr_assert(strstr(y.errmsg, "lease not found"), "%s", y.errmsg);
	DO(&y, st->ops->put(st, P "leased", "v", 1, lease, on_res, &y));
	cr_assert_eq(y.res.err, -ENOENT);
	sync_clear(&y);
	stop();
}

Test(store_etcd, expiry_seen_by_watch)
{
	struct sync y = { 0 };
	struct wcoll w = { 0 };
	struct store_watch *wt;
	int64_t rev;

	start(NULL, NULL);
	rev = put("/unrelated", "x");
	wt = st->ops->watch(st, P "subnets/", rev + 1, on_watch, &w);
	cr_assert(wt);
	DO(&y, st->ops->create(st, P "subnets/10.5.9.0-24", "v", 1, 2, on_res, &y));
	cr_assert(y.res.succeeded, "%s", y.errmsg);
	cr_assert(wait_events(&w, 2, 10000), "expiry not seen (%zu events)", w.n);
	cr_assert_eq(w.evs[0].type, STORE_EV_PUT);
	cr_assert_eq(w.evs[0].kv.lease, y.res.lease_id);
	cr_assert_eq(w.evs[1].type, STORE_EV_DELETE);
	cr_assert_str_eq(w.evs[1].kv.key, P "subnets/10.5.9.0-24");
	cr_assert_eq(w.evs[1].prev_kv.lease, y.res.lease_id);
	cr_assert_str_eq(w.evs[1].prev_kv.value, "v");
	cr_assert(!w.got_err);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	sync_clear(&y);
	stop();
}

Test(store_etcd, watch_history_and_live)
{
	struct sync y = { 0 };
	struct wcoll w = { 0 };
	struct store_watch *wt;
	int64_t r1;

	start(NULL, NULL);
	r1 = put(P "subnets/a", "1");
	put(P "subnets/a", "2");
	put(P "elsewhere", "x");
	DO(&y, st->ops->del(st, P "subnets/a", 0, on_res, &y));
	wt = st->ops->watch(st, P "subnets/", r1, on_watch, &w);
	cr_assert(wt);
	cr_assert(wait_events(&w, 3, 5000), "history: %zu events", w.n);
	cr_assert_eq(w.evs[0].type, STORE_EV_PUT);
	cr_assert_str_eq(w.evs[0].kv.value, "1");
	cr_assert_eq(w.evs[0].kv.mod_revision, r1);
	cr_assert_null(w.evs[0].prev_kv.key);
	cr_assert_str_eq(w.evs[1].kv.value, "2");
	cr_assert_str_eq(w.evs[1].prev_kv.value, "1");
	cr_assert_eq(w.evs[2].type, STORE_EV_DELETE);
	cr_assert_str_eq(w.evs[2].prev_kv.value, "2");
	put(P "subnets/b", "live");
	cr_assert(wait_events(&w, 4, 5000));
	cr_assert_str_eq(w.evs[3].kv.key, P "subnets/b");
	cr_assert_eq(w.n, 4);
	cr_assert_eq(w.last_rev, w.evs[3].kv.mod_revision);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	sync_clear(&y);
	stop();
}

/* Every watch of a store shares its one Watch stream; freeing one cancels only that one. */
Test(store_etcd, watches_share_one_stream)
{
	struct wcoll a = { 0 }, b = { 0 };
	struct store_watch *wa, *wb;
	struct store_stats ss;

	start(NULL, NULL);
	wa = st->ops->watch(st, P "subnets/", 0, on_watch, &a);
	wb = st->ops->watch(st, P "config", 0, on_watch, &b);
	cr_assert(wa && wb);
	for (int i = 0; i < 20; i++) /* both created */
		ev_loop_run_once(loop, 20);
	put(P "subnets/a", "1");
	put(P "config", "c");
	cr_assert(wait_events(&a, 1, 5000));
	cr_assert(wait_events(&b, 1, 5000));
	cr_assert_str_eq(a.evs[0].kv.key, P "subnets/a");
	cr_assert_str_eq(b.evs[0].kv.key, P "config");
	st->ops->watch_free(wa);
	put(P "subnets/b", "2");
	put(P "config", "d");
	cr_assert(wait_events(&b, 2, 5000));
	cr_assert_str_eq(b.evs[1].kv.value, "d");
	cr_assert_eq(a.n, 1, "a freed watch got events");
	cr_assert_eq(store_etcd_stats(st, &ss), 0);
	cr_assert_eq(ss.requests[STORE_STAT_WATCH], 1, "%" PRIu64 " watch streams",
	             ss.requests[STORE_STAT_WATCH]);
	st->ops->watch_free(wb);
	wcoll_clear(&a);
	wcoll_clear(&b);
	stop();
}

/*
 * Through etcd grpc-proxy (it serves no JSON gateway, and ends a watch or a keepalive whose
 * request side was half-closed): watches on the shared stream, keepalive, create with a
 * lease, listing.
 */
Test(store_etcd, through_grpc_proxy)
{
	struct wcoll w = { 0 };
	struct store_watch *wt;
	struct sync y = { 0 };
	char *eps[2] = { NULL, NULL };
	int64_t lease;

	loop = ev_loop_new();
	fx = etcd_fixture_start(NULL);
	cr_assert(fx);
	cr_assert_eq(etcd_fixture_proxy(fx), 0);
	eps[0] = fx->proxy_url;
	st = store_etcd_new(loop, &(struct store_opts){ .endpoints = eps });
	cr_assert(st);
	/*
	 * From a known revision: the create shares the watch's connection and can reach etcd
	 * before the proxy has set up its own watch upstream.
	 */
	wt = st->ops->watch(st, P "subnets/", put(P "config", "c") + 1, on_watch, &w);
	cr_assert(wt);
	DO(&y, st->ops->create(st, P "subnets/10.5.9.0-24", "p", 1, 30, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert(y.res.succeeded);
	lease = y.res.lease_id;
	cr_assert(wait_events(&w, 1, 5000), "no event through the proxy");
	cr_assert_str_eq(w.evs[0].kv.key, P "subnets/10.5.9.0-24");
	cr_assert_eq(w.evs[0].kv.lease, lease);
	DO(&y, st->ops->keepalive(st, lease, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_gt(y.res.ttl, 25);
	DO(&y, st->ops->list(st, P "subnets/", on_res, &y));
	cr_assert_eq(y.res.n_kvs, 1);
	DO(&y, st->ops->revoke(st, lease, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert(wait_events(&w, 2, 5000));
	cr_assert_eq(w.evs[1].type, STORE_EV_DELETE);
	cr_assert_str_eq(st->ops->endpoint(st), fx->proxy_url);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	sync_clear(&y);
	stop();
}

/*
 * 64 calls in flight at once, a watch stream and a listing: on an http:// endpoint, direct
 * or through grpc-proxy, every one of them goes over the one HTTP/2 connection (lib/h2c.c),
 * and a put made while the others run is seen by the watch.
 */
static void burst_on_one_connection(void)
{
	enum { N = 64 };
	struct sync ys[N], y = { 0 };
	struct wcoll w = { 0 };
	struct store_watch *wt;
	struct store_stats ss;
	char key[64];
	int64_t rev = put(P "config", "c");

	/* from the next revision on: the puts below may overtake the watch's creation */
	wt = st->ops->watch(st, P "subnets/", rev + 1, on_watch, &w);
	cr_assert(wt);
	memset(ys, 0, sizeof(ys));
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), P "subnets/10.9.%d.0-24", i);
		cr_assert_eq(st->ops->put(st, key, "v", 1, 0, on_res, &ys[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(ev_loop_run_until(loop, &ys[i].done, 15000), 0, "put %d: no reply", i);
		cr_assert_eq(ys[i].res.err, 0, "put %d: %s", i, ys[i].errmsg);
		sync_clear(&ys[i]);
	}
	cr_assert(wait_events(&w, N, 10000), "%zu of %d events", w.n, N);
	DO(&y, st->ops->list(st, P "subnets/", on_res, &y));
	cr_assert_eq(y.res.n_kvs, N);
	cr_assert_eq(store_etcd_stats(st, &ss), 0);
	cr_assert_eq(ss.connects, 1, "%" PRIu64 " connections for %d calls and a watch",
	             ss.connects, N + 1);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	sync_clear(&y);
}

Test(store_etcd, calls_share_one_connection)
{
	start(NULL, NULL);
	burst_on_one_connection();
	stop();
}

Test(store_etcd, calls_share_one_connection_through_grpc_proxy)
{
	char *eps[2] = { NULL, NULL };

	loop = ev_loop_new();
	fx = etcd_fixture_start(NULL);
	cr_assert(fx);
	cr_assert_eq(etcd_fixture_proxy(fx), 0);
	eps[0] = fx->proxy_url;
	st = store_etcd_new(loop, &(struct store_opts){ .endpoints = eps });
	cr_assert(st);
	burst_on_one_connection();
	stop();
}

Test(store_etcd, watch_compacted_is_estale)
{
	struct wcoll w = { 0 };
	struct store_watch *wt;
	int64_t rev;

	start(NULL, NULL);
	put(P "subnets/a", "1");
	put(P "subnets/a", "2");
	rev = put(P "subnets/a", "3");
	cr_assert_eq(etcd_fixture_compact(fx, rev), 0);
	wt = st->ops->watch(st, P "subnets/", 2, on_watch, &w);
	cr_assert(wt);
	wait_events(&w, 1, 5000);
	cr_assert(w.got_err, "no error");
	cr_assert_eq(w.err, -ESTALE);
	cr_assert_eq(w.n, 0);
	/* the dead watch stays quiet */
	put(P "subnets/a", "4");
	for (int i = 0; i < 5; i++)
		ev_loop_run_once(loop, 20);
	cr_assert_eq(w.calls, 1);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	stop();
}

/* A loopback port nobody listens on. */
static int closed_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);

	cr_assert_geq(s, 0);
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
	close(s);
	return ntohs(sa.sin_port);
}

/*
 * A first endpoint that accepts connections and never answers (a frozen or blackholed
 * member) costs the race's head start, not the request timeout: the endpoints are raced.
 */
Test(store_etcd, silent_first_endpoint_costs_only_the_head_start)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	char silent[64];
	char *eps[3] = { silent, NULL, NULL };
	struct sync y = { 0 };
	uint64_t t0, took;
	int lfd;

	loop = ev_loop_new();
	fx = etcd_fixture_start(NULL);
	cr_assert(fx);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 8), 0); /* never accepted: the kernel completes handshakes */
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(silent, sizeof(silent), "http://127.0.0.1:%d", ntohs(sa.sin_port));
	eps[1] = fx->endpoints[0];
	st = store_etcd_new(loop, &(struct store_opts){ .endpoints = eps });
	cr_assert(st);
	t0 = ev_now_ms();
	DO(&y, st->ops->put(st, P "x", "1", 1, 0, on_res, &y));
	took = ev_now_ms() - t0;
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_lt(took, 1000, "first put after %" PRIu64 " ms (request timeout 5000)", took);
	cr_assert_str_eq(st->ops->endpoint(st), fx->endpoints[0]);
	sync_clear(&y);
	close(lfd);
	stop();
}

Test(store_etcd, failover_dead_first_endpoint)
{
	struct sync y = { 0 };
	char deadurl[64];
	char *eps[3];
	struct store_opts so = { .endpoints = eps };
	struct store *bad;
	uint64_t t0;

	loop = ev_loop_new();
	fx = etcd_fixture_start(NULL);
	cr_assert(fx);
	snprintf(deadurl, sizeof(deadurl), "http://127.0.0.1:%d", closed_port());
	eps[0] = deadurl;
	eps[1] = fx->endpoints[0];
	eps[2] = NULL;
	st = store_etcd_new(loop, &so);
	cr_assert(st);
	/* none answered yet: the list, no endpoint singled out */
	cr_assert(strstr(st->ops->endpoint(st), deadurl), "%s", st->ops->endpoint(st));
	cr_assert(strstr(st->ops->endpoint(st), fx->endpoints[0]), "%s", st->ops->endpoint(st));
	put(P "x", "1");
	cr_assert_str_eq(st->ops->endpoint(st), fx->endpoints[0], "did not move to the live one");
	DO(&y, st->ops->get(st, P "x", on_res, &y));
	cr_assert_eq(y.res.n_kvs, 1);
	cr_assert_str_eq(st->ops->endpoint(st), fx->endpoints[0], "did not stay on the live one");

	/* only the dead one: fails fast, naming it */
	eps[1] = NULL;
	bad = store_etcd_new(loop, &so);
	cr_assert(bad);
	t0 = ev_now_ms();
	DO(&y, bad->ops->get(bad, P "x", on_res, &y));
	cr_assert_eq(y.res.err, -ECONNREFUSED, "%d %s", y.res.err, y.errmsg);
	cr_assert(strstr(y.errmsg, deadurl), "%s", y.errmsg);
	cr_assert_lt(ev_now_ms() - t0, 3000);
	sync_clear(&y);
	store_free(bad);
	stop();
}

static int member_of(const char *url)
{
	for (int i = 0; i < fx->n; i++)
		if (!strcmp(url, fx->m[i].url))
			return i;
	cr_assert_fail("endpoint %s is no member", url);
	return -1;
}

Test(store_etcd, cluster_member_killed)
{
	struct sync y = { 0 };
	struct wcoll w = { 0 };
	struct store_watch *wt;
	int64_t rev;
	int used;

	start(&(struct etcd_fixture_opts){ .members = 3 }, NULL);
	rev = put(P "subnets/a", "1");
	wt = st->ops->watch(st, P "subnets/", rev, on_watch, &w);
	cr_assert(wt);
	cr_assert(wait_events(&w, 1, 5000));
	DO(&y, st->ops->grant(st, 30, on_res, &y));
	cr_assert_eq(y.res.err, 0);
	used = member_of(st->ops->endpoint(st));
	cr_assert_eq(etcd_fixture_kill(fx, used), 0);

	/* operations go on through the others (an election may take a moment) */
	rev = put(P "subnets/b", "2");
	cr_assert_neq(member_of(st->ops->endpoint(st)), used);
	DO(&y, st->ops->list(st, P "subnets/", on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_eq(y.res.n_kvs, 2);
	/* the watch resumed elsewhere: b exactly once, nothing lost or repeated */
	cr_assert(wait_events(&w, 2, 10000), "watch did not resume (%zu)", w.n);
	put(P "subnets/c", "3");
	cr_assert(wait_events(&w, 3, 10000));
	for (int i = 0; i < 10; i++)
		ev_loop_run_once(loop, 10);
	cr_assert_eq(w.n, 3);
	cr_assert_str_eq(w.evs[1].kv.key, P "subnets/b");
	cr_assert_eq(w.evs[1].kv.mod_revision, rev);
	cr_assert_str_eq(w.evs[2].kv.key, P "subnets/c");
	cr_assert(!w.got_err);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	sync_clear(&y);
	stop();
}

/* SIGSTOP member @i and wait until every thread of it has stopped (kill() does not wait). */
static void freeze(int i)
{
	uint64_t end = ev_now_ms() + 3000;
	char dirpath[64];

	cr_assert_eq(etcd_fixture_freeze(fx, i), 0);
	snprintf(dirpath, sizeof(dirpath), "/proc/%d/task", (int)fx->m[i].pid);
	for (;;) {
		DIR *d = opendir(dirpath);
		struct dirent *de;
		int running = 0;

		cr_assert(d, "%s: %s", dirpath, strerror(errno));
		while ((de = readdir(d))) {
			char path[384], buf[512], *p;
			FILE *f;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/stat", dirpath, de->d_name);
			f = fopen(path, "r");
			if (!f)
				continue; /* thread gone */
			if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] == ' ' &&
			    p[2] != 'T' && p[2] != 't')
				running++;
			fclose(f);
		}
		closedir(d);
		if (!running)
			return;
		cr_assert_lt(ev_now_ms(), end, "member %d did not stop", i);
		usleep(1000);
	}
}

Test(store_etcd, frozen_member_times_out_and_moves)
{
	struct sync y = { 0 };
	struct wcoll w = { 0 };
	struct store_watch *wt;
	struct store_opts so = { .request_timeout_ms = 1000, .watch_idle_ms = 1500 };
	struct store_opts so2 = { 0 };
	struct store *other;
	char *eps2[2];
	uint64_t t0;
	int64_t rev;

	start(&(struct etcd_fixture_opts){ .members = 3 }, &so);
	rev = put(P "subnets/a", "1");
	cr_assert_eq(member_of(st->ops->endpoint(st)), 0);
	wt = st->ops->watch(st, P "subnets/", rev + 1, on_watch, &w);
	cr_assert(wt);
	for (int i = 0; i < 20; i++) /* let the watch get created on member 0 */
		ev_loop_run_once(loop, 10);
	freeze(0);

	t0 = ev_now_ms();
	DO(&y, st->ops->get(st, P "subnets/a", on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_eq(y.res.n_kvs, 1);
	cr_assert_lt(ev_now_ms() - t0, 2900, "took %" PRIu64 " ms", ev_now_ms() - t0);
	cr_assert_neq(member_of(st->ops->endpoint(st)), 0);

	/* a write through another member reaches the watch after its idle reopen */
	eps2[0] = fx->endpoints[2];
	eps2[1] = NULL;
	so2.endpoints = eps2;
	other = store_etcd_new(loop, &so2);
	cr_assert(other);
	DO(&y, other->ops->put(other, P "subnets/b", "2", 1, 0, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert(wait_events(&w, 1, 8000), "watch stuck on the frozen member");
	cr_assert_str_eq(w.evs[0].kv.key, P "subnets/b");
	cr_assert(!w.got_err);
	etcd_fixture_thaw(fx, 0);
	store_free(other);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	sync_clear(&y);
	stop();
}

Test(store_etcd, timetolive)
{
	struct sync y = { 0 };
	int64_t lease;

	start(NULL, NULL);
	cr_assert_not_null(st->ops->timetolive);
	DO(&y, st->ops->grant(st, 30, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	lease = y.res.lease_id;
	DO(&y, st->ops->put(st, P "subnets/t", "v", 1, lease, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	DO(&y, st->ops->timetolive(st, lease, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_eq(y.res.lease_id, lease);
	cr_assert(y.res.ttl >= 25 && y.res.ttl <= 30, "ttl %" PRId64, y.res.ttl);
	cr_assert_gt(y.res.revision, 0);
	/* unknown and revoked leases: TTL "-1" from etcd, ttl 0 and no error here */
	DO(&y, st->ops->timetolive(st, 999, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_eq(y.res.ttl, 0);
	cr_assert_eq(y.res.lease_id, 999);
	DO(&y, st->ops->revoke(st, lease, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	DO(&y, st->ops->timetolive(st, lease, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_eq(y.res.ttl, 0);
	cr_assert_eq(st->ops->timetolive(st, 0, on_res, &y), -EINVAL);
	cr_assert_eq(st->ops->timetolive(st, lease, NULL, &y), -EINVAL);
	sync_clear(&y);
	stop();
}

/* A second store on member @i only, for writes that must not touch member 0. */
static struct store *store_on(int i, char **eps)
{
	struct store_opts so = { .request_timeout_ms = 2000, .watch_probe_ms = -1 };
	struct store *o;

	eps[0] = fx->endpoints[i];
	eps[1] = NULL;
	so.endpoints = eps;
	o = store_etcd_new(loop, &so);
	cr_assert(o);
	return o;
}

static void run_for(int ms)
{
	uint64_t end = ev_now_ms() + (uint64_t)ms;

	while (ev_now_ms() < end)
		ev_loop_run_once(loop, (int)(end - ev_now_ms()) + 1);
}

/* Index of the current raft leader among fx->m[], from the cluster's own view. */
static int leader_index(void)
{
	char *body = NULL;
	json_t *stat, *ml, *m;
	const char *leader;
	int found = -1;
	size_t i;

	cr_assert_eq(etcd_fixture_post(fx, "/v3/maintenance/status", "{}", &body), 200);
	stat = json_loads(body, 0, NULL);
	free(body);
	leader = json_string_value(json_object_get(stat, "leader"));
	cr_assert(leader, "no leader in the status");
	cr_assert_eq(etcd_fixture_post(fx, "/v3/cluster/member/list", "{}", &body), 200);
	ml = json_loads(body, 0, NULL);
	free(body);
	json_array_foreach(json_object_get(ml, "members"), i, m) {
		const char *id = json_string_value(json_object_get(m, "ID"));
		const char *url =
			json_string_value(json_array_get(json_object_get(m, "clientURLs"), 0));

		if (id && url && !strcmp(id, leader))
			for (int k = 0; k < fx->n; k++)
				if (!strcmp(url, fx->m[k].url))
					found = k;
	}
	json_decref(stat);
	json_decref(ml);
	cr_assert_geq(found, 0, "leader %s not found", leader);
	return found;
}

/*
 * Endpoints for the store under test, a follower first: freezing it then leaves a
 * working cluster at once (freezing the leader would add an election to the timings).
 * Returns that follower's index; *@ret_other is another live member for side writes.
 */
static int follower_first(char **eps, int *ret_other)
{
	int lead = leader_index(), f = lead == 0 ? 1 : 0, n = 0;

	eps[n++] = fx->endpoints[f];
	for (int k = 0; k < fx->n; k++)
		if (k != f)
			eps[n++] = fx->endpoints[k];
	eps[n] = NULL;
	*ret_other = lead;
	return f;
}

/* Replace the store under test by one on @eps with @so. */
static void restart_store(struct store_opts *so, char **eps)
{
	store_free(st);
	so->endpoints = eps;
	st = store_etcd_new(loop, so);
	cr_assert(st);
}

/*
 * etcd's progress notify is 10 min by default: only the probe notices a frozen
 * member. Probe 500 ms, timeout 1000 ms, idle timeout left at its 660 s default.
 */
Test(store_etcd, watch_probe_moves_off_frozen_member, .timeout = 60)
{
	struct sync y = { 0 };
	struct wcoll w = { 0 };
	struct store_watch *wt;
	struct store_opts so = { .request_timeout_ms = 1000, .watch_probe_ms = 500 };
	struct store *other;
	char *eps[ETCD_FIXTURE_MAX + 1], *eps2[2];
	int64_t rev, rb, rc;
	uint64_t t0, took;
	int fz, side;

	start(&(struct etcd_fixture_opts){ .members = 3 }, &so);
	put(P "subnets/a", "1"); /* the cluster has a leader */
	fz = follower_first(eps, &side);
	restart_store(&so, eps);
	rev = put(P "subnets/a", "1");
	cr_assert_eq(member_of(st->ops->endpoint(st)), fz);
	wt = st->ops->watch(st, P "subnets/", rev + 1, on_watch, &w);
	cr_assert(wt);
	other = store_on(side, eps2);

	/* healthy but silent for over 2 probe periods: the probes pass, the stream stays */
	run_for(1300);
	cr_assert_eq(member_of(st->ops->endpoint(st)), fz, "a passing probe moved the watch");
	DO(&y, other->ops->put(other, P "subnets/x", "0", 1, 0, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert(wait_events(&w, 1, 3000));
	cr_assert_str_eq(w.evs[0].kv.key, P "subnets/x");
	cr_assert_eq(member_of(st->ops->endpoint(st)), fz);

	run_for(100);
	freeze(fz);
	t0 = ev_now_ms();
	DO(&y, other->ops->put(other, P "subnets/b", "2", 1, 0, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	rb = y.res.revision;
	cr_assert(wait_events(&w, 2, 5000), "watch stuck on the frozen member");
	took = ev_now_ms() - t0;
	cr_assert_lt(took, 500 + 1000 + 1000, "event after %" PRIu64 " ms", took);
	cr_assert_neq(member_of(st->ops->endpoint(st)), fz);
	DO(&y, other->ops->put(other, P "subnets/c", "3", 1, 0, on_res, &y));
	rc = y.res.revision;
	cr_assert(wait_events(&w, 3, 3000));
	run_for(300);
	/* nothing lost or repeated across the move */
	cr_assert_eq(w.n, 3);
	cr_assert_str_eq(w.evs[1].kv.key, P "subnets/b");
	cr_assert_eq(w.evs[1].kv.mod_revision, rb);
	cr_assert_str_eq(w.evs[2].kv.key, P "subnets/c");
	cr_assert_eq(w.evs[2].kv.mod_revision, rc);
	cr_assert(!w.got_err);

	cr_assert_eq(etcd_fixture_thaw(fx, fz), 0);
	store_free(other);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	sync_clear(&y);
	stop();
}

/* No periodic probes: a unary call timing out on the watch's endpoint moves the watch. */
Test(store_etcd, unary_timeouts_move_the_watch, .timeout = 60)
{
	struct sync y = { 0 };
	struct wcoll w = { 0 };
	struct store_watch *wt;
	struct store_opts so = { .request_timeout_ms = 1000, .watch_probe_ms = -1 };
	struct store *other;
	char *eps[ETCD_FIXTURE_MAX + 1], *eps2[2];
	int64_t rev;
	uint64_t t0;
	int fz, side;

	start(&(struct etcd_fixture_opts){ .members = 3 }, &so);
	put(P "subnets/a", "1");
	fz = follower_first(eps, &side);
	restart_store(&so, eps);
	rev = put(P "subnets/a", "1");
	wt = st->ops->watch(st, P "subnets/", rev + 1, on_watch, &w);
	cr_assert(wt);
	other = store_on(side, eps2);
	run_for(300);
	cr_assert_eq(member_of(st->ops->endpoint(st)), fz);
	freeze(fz);

	t0 = ev_now_ms();
	DO(&y, st->ops->get(st, P "subnets/a", on_res, &y)); /* times out, then another answers */
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	DO(&y, other->ops->put(other, P "subnets/b", "2", 1, 0, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert(wait_events(&w, 1, 5000), "watch stuck on the frozen member");
	cr_assert_lt(ev_now_ms() - t0, 1000 + 1000 + 1000, "took %" PRIu64 " ms", ev_now_ms() - t0);
	run_for(200);
	cr_assert_eq(w.n, 1);
	cr_assert_str_eq(w.evs[0].kv.key, P "subnets/b");
	cr_assert(!w.got_err);

	cr_assert_eq(etcd_fixture_thaw(fx, fz), 0);
	store_free(other);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	sync_clear(&y);
	stop();
}

Test(store_etcd, tls_client_certificates)
{
	struct sync y = { 0 };
	struct wcoll w = { 0 };
	struct store_watch *wt;
	struct store_opts so = { 0 };
	struct store *nocert;
	int64_t rev;

	loop = ev_loop_new();
	fx = etcd_fixture_start(&(struct etcd_fixture_opts){ .tls = true });
	cr_assert(fx);
	cr_assert(!strncmp(fx->endpoints[0], "https://", 8));
	so.endpoints = fx->endpoints;
	so.cafile = fx->cafile;
	so.certfile = fx->certfile;
	so.keyfile = fx->keyfile;
	st = store_etcd_new(loop, &so);
	cr_assert(st);
	rev = put(P "tls", "secure");
	DO(&y, st->ops->get(st, P "tls", on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_str_eq(y.res.kvs[0].value, "secure");
	wt = st->ops->watch(st, P, rev, on_watch, &w);
	cr_assert(wt);
	cr_assert(wait_events(&w, 1, 5000));
	put(P "tls2", "x");
	cr_assert(wait_events(&w, 2, 5000));
	st->ops->watch_free(wt);

	so.certfile = so.keyfile = NULL;
	nocert = store_etcd_new(loop, &so);
	cr_assert(nocert);
	DO(&y, nocert->ops->get(nocert, P "tls", on_res, &y));
	cr_assert_lt(y.res.err, 0, "no client cert must fail");
	store_free(nocert);
	wcoll_clear(&w);
	sync_clear(&y);
	stop();
}

Test(store_etcd, auth_token_and_reauth)
{
	struct sync y = { 0 };
	struct wcoll w = { 0 };
	struct store_watch *wt;
	struct store_opts so = { 0 };
	struct store *wrong;
	uint64_t t0;
	int64_t rev;

	loop = ev_loop_new();
	fx = etcd_fixture_start(&(struct etcd_fixture_opts){ .auth = true, .auth_token_ttl_s = 2 });
	cr_assert(fx);
	so.endpoints = fx->endpoints;
	so.username = fx->username;
	so.password = fx->password;
	st = store_etcd_new(loop, &so);
	cr_assert(st);
	rev = put(P "auth", "1");
	wt = st->ops->watch(st, P, rev, on_watch, &w);
	cr_assert(wt);
	cr_assert(wait_events(&w, 1, 5000), "watch with auth: %d", w.err);

	DO(&y, st->ops->put(st, "/outside", "x", 1, 0, on_res, &y));
	cr_assert_eq(y.res.err, -EACCES, "%d %s", y.res.err, y.errmsg);
	cr_assert(strstr(y.errmsg, "permission denied"), "%s", y.errmsg);

	/* idle past --auth-token-ttl: the token expires, the store re-authenticates */
	t0 = ev_now_ms();
	while (ev_now_ms() - t0 < 4500)
		ev_loop_run_once(loop, 100);
	DO(&y, st->ops->get(st, P "auth", on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_eq(y.res.n_kvs, 1);
	put(P "auth2", "2");
	cr_assert(wait_events(&w, 2, 5000));

	so.password = "wrong";
	wrong = store_etcd_new(loop, &so);
	cr_assert(wrong);
	DO(&y, wrong->ops->get(wrong, P "auth", on_res, &y));
	cr_assert_eq(y.res.err, -EACCES, "%d %s", y.res.err, y.errmsg);
	store_free(wrong);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	sync_clear(&y);
	stop();
}

Test(store_etcd, free_with_pending_calls)
{
	struct sync y = { 0 }, z = { 0 };
	struct wcoll w = { 0 };

	start(NULL, NULL);
	cr_assert_eq(st->ops->get(st, P "a", on_res, &y), 0);
	cr_assert_eq(st->ops->create(st, P "b", "v", 1, 10, on_res, &z), 0);
	cr_assert(st->ops->watch(st, P, 0, on_watch, &w));
	ev_loop_run_once(loop, 0);
	store_free(st); /* no callback may run after this */
	st = NULL;
	for (int i = 0; i < 10; i++)
		ev_loop_run_once(loop, 10);
	cr_assert(!y.done && !z.done && w.calls == 0);
	stop();
}

Test(store_etcd, watch_gives_epipe_when_etcd_is_gone)
{
	struct wcoll w = { 0 };
	struct store_watch *wt;
	int64_t rev;

	start(NULL, NULL);
	rev = put(P "a", "1");
	wt = st->ops->watch(st, P, rev, on_watch, &w);
	cr_assert(wt);
	cr_assert(wait_events(&w, 1, 5000));
	cr_assert_eq(etcd_fixture_kill(fx, 0), 0);
	wait_events(&w, 2, 10000);
	cr_assert(w.got_err, "no error after etcd died");
	cr_assert_eq(w.err, -EPIPE);
	cr_assert_eq(w.n, 1);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	stop();
}

/*
 * A watch resumed on a store that went backwards (wiped or restored, here: a second, fresh
 * etcd among the endpoints) would wait in silence until the new store reached the old
 * revision: it must end with -ESTALE instead, so that the caller lists again.
 */
Test(store_etcd, watch_on_a_store_that_went_backwards_is_estale, .timeout = 60)
{
	struct etcd_fixture *fresh = etcd_fixture_start(NULL);
	char *eps[3] = { NULL, NULL, NULL };
	struct store_opts so = { 0 };
	struct wcoll w = { 0 };
	struct store_watch *wt;
	uint64_t t0;
	int64_t rev = 0;

	cr_assert(fresh, "second etcd did not start");
	loop = ev_loop_new();
	cr_assert(loop);
	fx = etcd_fixture_start(NULL);
	cr_assert(fx, "etcd did not start");
	eps[0] = fx->endpoints[0];
	eps[1] = fresh->endpoints[0];
	so.endpoints = eps;
	st = store_etcd_new(loop, &so);
	cr_assert(st);
	for (int i = 0; i < 20; i++)
		rev = put(P "subnets/a", "x");
	cr_assert_gt(rev, etcd_fixture_revision(fresh) + 5);
	wt = st->ops->watch(st, P "subnets/", rev + 1, on_watch, &w);
	cr_assert(wt);
	put(P "subnets/a", "y");
	cr_assert(wait_events(&w, 1, 5000), "no event on the first store");
	/* the first store dies: the watch resumes on the fresh one, far behind */
	cr_assert_eq(etcd_fixture_kill(fx, 0), 0);
	t0 = ev_now_ms();
	wait_events(&w, 2, 10000);
	cr_assert(w.got_err, "no error on a store behind the watch's revision");
	cr_assert_eq(w.err, -ESTALE, "err %d", w.err);
	cr_expect_lt(ev_now_ms() - t0, 5000, "ESTALE after %" PRIu64 " ms", ev_now_ms() - t0);
	cr_assert_eq(w.n, 1);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	stop();
	etcd_fixture_stop(fresh);
}

/* Creating a watch beyond the store's revision (as after a wipe): -ESTALE, not silence. */
Test(store_etcd, watch_beyond_the_store_revision_is_estale)
{
	struct wcoll w = { 0 };
	struct store_watch *wt;
	int64_t rev;

	start(NULL, NULL);
	rev = put(P "subnets/a", "1");
	wt = st->ops->watch(st, P "subnets/", rev + 10, on_watch, &w);
	cr_assert(wt);
	wait_events(&w, 1, 5000);
	cr_assert(w.got_err, "no error");
	cr_assert_eq(w.err, -ESTALE);
	st->ops->watch_free(wt);
	wcoll_clear(&w);

	/* resuming right after the store's revision is no such case: events come */
	memset(&w, 0, sizeof(w));
	wt = st->ops->watch(st, P "subnets/", rev + 1, on_watch, &w);
	cr_assert(wt);
	for (int i = 0; i < 10; i++)
		ev_loop_run_once(loop, 20);
	put(P "subnets/a", "2");
	cr_assert(wait_events(&w, 1, 5000));
	cr_assert_not(w.got_err, "error %d", w.err);
	st->ops->watch_free(wt);
	wcoll_clear(&w);
	stop();
}

/* ---- pure helpers: no etcd needed ---- */

Test(etcd_parse, prefix_end_and_base64)
{
	char *end, *dec, *enc;
	size_t n;

	cr_assert_eq(store_prefix_end("/coreos.com/network/subnets/", 28, &end, &n), 0);
	cr_assert_str_eq(end, "/coreos.com/network/subnets0");
	free(end);
	cr_assert_eq(store_prefix_end("a\xff\xff", 3, &end, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(end, "b");
	free(end);
	cr_assert_eq(store_prefix_end("\xff", 1, &end, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(end[0], '\0');
	free(end);

	enc = base64_encode("/coreos.com/network/subnets/", 28);
	cr_assert_str_eq(enc, "L2NvcmVvcy5jb20vbmV0d29yay9zdWJuZXRzLw==");
	free(enc);
	for (size_t len = 0; len < 8; len++) {
		const char src[] = "\0\xff\x10xyz\x80q";

		enc = base64_encode(src, len);
		cr_assert_eq(base64_decode(enc, strlen(enc), &dec, &n), 0);
		cr_assert_eq(n, len);
		cr_assert_eq(memcmp(dec, src, len), 0);
		free(enc);
		free(dec);
	}
	cr_assert_eq(base64_decode("Zm8", 3, &dec, &n), -EINVAL);
	cr_assert_eq(base64_decode("Pz4_", 4, &dec, &n), -EINVAL);
	cr_assert_eq(base64_decode("Zg=a", 4, &dec, &n), -EINVAL);
	cr_assert_eq(base64_decode("Zg==Zg==", 8, &dec, &n), -EINVAL);
}

static void free_store_cb(void *ctx, const struct store_result *r)
{
	bool *done = ctx;

	(void)r;
	store_free(st);
	st = NULL;
	*done = true;
}

struct wfree {
	struct store_watch *w;
	int calls;
	bool free_store;
};

static void free_watch_cb(void *ctx, int err, const struct store_event *evs, size_t n, int64_t rev)
{
	struct wfree *x = ctx;

	(void)err;
	(void)evs;
	(void)n;
	(void)rev;
	x->calls++;
	if (x->free_store) {
		store_free(st);
		st = NULL;
	} else {
		st->ops->watch_free(x->w);
	}
}

Test(store_etcd, free_from_callbacks)
{
	struct wfree a = { 0 }, b = { .free_store = true };
	bool done = false;
	int64_t rev;

	start(NULL, NULL);
	put(P "a", "1");
	rev = put(P "a", "2");
	/* watch freed from its own callback, with more history in the same message */
	a.w = st->ops->watch(st, P, 1, free_watch_cb, &a);
	cr_assert(a.w);
	while (a.calls == 0)
		ev_loop_run_once(loop, 50);
	for (int i = 0; i < 5; i++)
		ev_loop_run_once(loop, 10);
	cr_assert_eq(a.calls, 1);
	/* the whole store freed from a watch callback */
	b.w = st->ops->watch(st, P, rev, free_watch_cb, &b);
	cr_assert(b.w);
	cr_assert_eq(etcd_fixture_post(
			     fx, "/v3/kv/put",
			     "{\"key\":\"L2NvcmVvcy5jb20vbmV0d29yay9i\",\"value\":\"eA==\"}", NULL),
	             200);
	while (b.calls == 0)
		ev_loop_run_once(loop, 50);
	cr_assert_null(st);
	cr_assert_eq(b.calls, 1);
	/* and from a unary callback, with another call pending */
	st = store_etcd_new(loop, &(struct store_opts){ .endpoints = fx->endpoints });
	cr_assert(st);
	cr_assert_eq(st->ops->get(st, P "a", free_store_cb, &done), 0);
	cr_assert_eq(st->ops->get(st, P "b", free_store_cb, &done), 0);
	cr_assert_eq(ev_loop_run_until(loop, &done, 5000), 0);
	for (int i = 0; i < 5; i++)
		ev_loop_run_once(loop, 10);
	cr_assert_null(st);
	stop();
}

/* A member that answers every call with "unavailable" (as etcd does without quorum). */
Test(store_etcd, unavailable_moves_to_next_endpoint)
{
	struct grpc_fake *busy;
	char *eps[3] = { NULL, NULL, NULL };
	struct store_opts so = { .endpoints = eps };
	struct sync y = { 0 };

	loop = ev_loop_new();
	fx = etcd_fixture_start(NULL);
	cr_assert(fx);
	busy = grpc_fake_start(loop, GRPC_FAKE_UNAVAILABLE);
	cr_assert(busy);
	eps[0] = busy->url;
	eps[1] = fx->endpoints[0];
	st = store_etcd_new(loop, &so);
	cr_assert(st);
	DO(&y, st->ops->put(st, P "k", "v", 1, 0, on_res, &y));
	cr_assert_eq(y.res.err, 0, "%s", y.errmsg);
	cr_assert_geq(busy->requests, 1);
	cr_assert_str_eq(st->ops->endpoint(st), fx->endpoints[0]);

	/* only the busy one: gives up with -ETIMEDOUT after its rounds, saying why */
	eps[1] = NULL;
	store_free(st);
	st = store_etcd_new(loop, &so);
	DO(&y, st->ops->get(st, P "k", on_res, &y));
	cr_assert_eq(y.res.err, -ETIMEDOUT, "%d %s", y.res.err, y.errmsg);
	cr_assert(strstr(y.errmsg, "request timed out"), "%s", y.errmsg);
	cr_assert_geq(busy->requests, 3);
	sync_clear(&y);
	store_free(st);
	st = NULL;
	grpc_fake_stop(busy);
	stop();
}

/* Bad replies: a clear error (after retries where another endpoint could do better), no crash. */
Test(store_etcd, bad_replies_fail_cleanly)
{
	static const struct {
		enum grpc_fake_mode mode;
		int err;
		const char *why;
	} cases[] = {
		{ GRPC_FAKE_TRUNCATED, -EPROTO, "no complete gRPC message" },
		{ GRPC_FAKE_OVERSIZE, -EMSGSIZE, "over the limit" },
		{ GRPC_FAKE_NO_STATUS, -EPROTO, "without a grpc-status" },
		{ GRPC_FAKE_CLOSE, -ECONNREFUSED, "unreachable" },
		{ GRPC_FAKE_GARBAGE, -EPROTO, "does not decode" },
		{ GRPC_FAKE_PERCENT, -EACCES, "etcdserver: permission denied" },
	};

	loop = ev_loop_new();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct grpc_fake *bad = grpc_fake_start(loop, cases[i].mode);
		char *eps[2] = { bad->url, NULL };
		struct sync y = { 0 };

		st = store_etcd_new(loop, &(struct store_opts){ .endpoints = eps,
		                                                .request_timeout_ms = 1000 });
		cr_assert(st);
		DO(&y, st->ops->get(st, P "k", on_res, &y));
		cr_assert_eq(y.res.err, cases[i].err, "mode %d: %d %s", (int)cases[i].mode,
		             y.res.err, y.errmsg);
		cr_assert(strstr(y.errmsg, cases[i].why), "mode %d: %s", (int)cases[i].mode,
		          y.errmsg);
		cr_assert_geq(bad->requests, 1);
		sync_clear(&y);
		store_free(st);
		st = NULL;
		grpc_fake_stop(bad);
	}
	ev_loop_free(loop);
	loop = NULL;
}
