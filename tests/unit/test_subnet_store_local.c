/* The local file store: etcd's semantics, persistence, cross-instance changes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/ev.h"
#include "subnet/store.h"
#include "tests/support/store_local_test.h"

static char dir[64], path[PATH_MAX];
static struct ev_loop *loop;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/twill-sl-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.json", dir);
	loop = ev_loop_new();
	cr_assert_not_null(loop);
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];

	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

/* ---- synchronous wrappers ---- */

struct res {
	bool done;
	int err;
	int64_t revision, lease_id, ttl;
	bool succeeded;
	size_t n;
	char key[8][128];
	char value[8][256];
	int64_t mod_rev[8], lease[8], version[8];
};

static void res_cb(void *ctx, const struct store_result *r)
{
	struct res *o = ctx;

	o->done = true;
	o->err = r->err;
	o->revision = r->revision;
	o->lease_id = r->lease_id;
	o->ttl = r->ttl;
	o->succeeded = r->succeeded;
	o->n = r->n_kvs;
	for (size_t i = 0; i < r->n_kvs && i < 8; i++) {
		snprintf(o->key[i], sizeof(o->key[i]), "%s", r->kvs[i].key);
		snprintf(o->value[i], sizeof(o->value[i]), "%s", r->kvs[i].value);
		o->mod_rev[i] = r->kvs[i].mod_revision;
		o->lease[i] = r->kvs[i].lease;
		o->version[i] = r->kvs[i].version;
	}
}

static void wait_res(struct res *o)
{
	cr_assert_eq(ev_loop_run_until(loop, &o->done, 3000), 0, "no callback");
}

static struct res put(struct store *s, const char *k, const char *v, int64_t lease)
{
	struct res o = { 0 };

	cr_assert_eq(s->ops->put(s, k, v, strlen(v), lease, res_cb, &o), 0);
	cr_assert(!o.done, "callback ran synchronously");
	wait_res(&o);
	return o;
}

static struct res get(struct store *s, const char *k)
{
	struct res o = { 0 };

	cr_assert_eq(s->ops->get(s, k, res_cb, &o), 0);
	wait_res(&o);
	return o;
}

static struct res list(struct store *s, const char *p)
{
	struct res o = { 0 };

	cr_assert_eq(s->ops->list(s, p, res_cb, &o), 0);
	wait_res(&o);
	return o;
}

static struct res create(struct store *s, const char *k, const char *v, int64_t ttl)
{
	struct res o = { 0 };

	cr_assert_eq(s->ops->create(s, k, v, strlen(v), ttl, res_cb, &o), 0);
	wait_res(&o);
	return o;
}

static struct res cas(struct store *s, const char *k, const char *v, int64_t expect, int64_t lease)
{
	struct res o = { 0 };

	cr_assert_eq(s->ops->cas(s, k, v, strlen(v), expect, lease, res_cb, &o), 0);
	wait_res(&o);
	return o;
}

static struct res del(struct store *s, const char *k, int64_t expect)
{
	struct res o = { 0 };

	cr_assert_eq(s->ops->del(s, k, expect, res_cb, &o), 0);
	wait_res(&o);
	return o;
}

static struct res keepalive(struct store *s, int64_t id)
{
	struct res o = { 0 };

	cr_assert_eq(s->ops->keepalive(s, id, res_cb, &o), 0);
	wait_res(&o);
	return o;
}

static struct res timetolive(struct store *s, int64_t id)
{
	struct res o = { 0 };

	cr_assert_eq(s->ops->timetolive(s, id, res_cb, &o), 0);
	cr_assert(!o.done, "callback ran synchronously");
	wait_res(&o);
	return o;
}

/* ---- watch recorder ---- */

struct rec {
	int err;
	size_t n;
	char line[64][160];
	int64_t rev[64];
};

static void rec_cb(void *ctx, int err, const struct store_event *evs, size_t n, int64_t revision)
{
	struct rec *r = ctx;

	if (err) {
		r->err = err;
		return;
	}
	for (size_t i = 0; i < n && r->n < 64; i++, r->n++) {
		if (evs[i].type == STORE_EV_PUT)
			snprintf(r->line[r->n], sizeof(r->line[0]), "PUT %s=%s", evs[i].kv.key,
			         evs[i].kv.value);
		else
			snprintf(r->line[r->n], sizeof(r->line[0]), "DELETE %s (was %s)",
			         evs[i].kv.key, evs[i].prev_kv.key ? evs[i].prev_kv.value : "?");
		r->rev[r->n] = revision;
	}
}

static bool rec_has(const struct rec *r, size_t n)
{
	return r->n >= n;
}

static void wait_rec(struct rec *r, size_t n)
{
	uint64_t end = ev_now_ms() + 3000;

	while (!rec_has(r, n) && !r->err && ev_now_ms() < end)
		ev_loop_run_once(loop, 10);
	cr_assert_geq(r->n, n, "got %zu events, want %zu", r->n, n);
}

TestSuite(store_local, .init = setup, .fini = teardown, .timeout = 20);

Test(store_local, put_get_list_revisions)
{
	struct store *s = store_local_new(loop, path);
	struct res r;

	cr_assert_not_null(s);
	cr_assert_eq(strncmp(s->ops->endpoint(s), "file:///tmp/", 12), 0);
	r = put(s, "/p/a", "1", 0);
	cr_assert_eq(r.err, 0);
	cr_assert_eq(r.revision, 2);
	r = put(s, "/p/b", "2", 0);
	cr_assert_eq(r.revision, 3);
	r = put(s, "/q", "x", 0);
	r = put(s, "/p/a", "1b", 0);
	cr_assert_eq(r.revision, 5);
	r = get(s, "/p/a");
	cr_assert_eq(r.n, 1);
	cr_assert_str_eq(r.value[0], "1b");
	cr_assert_eq(r.version[0], 2);
	cr_assert_eq(r.mod_rev[0], 5);
	r = get(s, "/nope");
	cr_assert_eq(r.err, 0);
	cr_assert_eq(r.n, 0);
	r = list(s, "/p/");
	cr_assert_eq(r.n, 2);
	cr_assert_str_eq(r.key[0], "/p/a");
	cr_assert_str_eq(r.key[1], "/p/b");
	cr_assert_eq(r.revision, 5);
	store_free(s);
}

Test(store_local, create_if_absent_and_cas)
{
	struct store *s = store_local_new(loop, path);
	struct res r, r2;

	r = create(s, "/k", "v1", 10);
	cr_assert(r.succeeded);
	cr_assert_neq(r.lease_id, 0);
	r2 = create(s, "/k", "v2", 10);
	cr_assert_not(r2.succeeded);
	cr_assert_eq(r2.n, 1);
	cr_assert_str_eq(r2.value[0], "v1");
	cr_assert_eq(keepalive(s, r2.lease_id).ttl, 0, "the loser's lease must be revoked");
	r = get(s, "/k");
	cr_assert_eq(r.lease[0], r.lease[0]);
	r2 = cas(s, "/k", "v3", r.mod_rev[0] + 100, 0);
	cr_assert_not(r2.succeeded);
	cr_assert_str_eq(r2.value[0], "v1");
	r2 = cas(s, "/k", "v3", r.mod_rev[0], 0);
	cr_assert(r2.succeeded);
	cr_assert_eq(get(s, "/k").lease[0], 0, "cas with lease 0 detaches the lease");
	cr_assert_not(cas(s, "/new", "x", 5, 0).succeeded);
	cr_assert(cas(s, "/new", "x", 0, 0).succeeded);
	cr_assert_not(cas(s, "/new", "y", 0, 0).succeeded);
	cr_assert_eq(cas(s, "/new", "y", get(s, "/new").mod_rev[0], 424242).err, -ENOENT);
	r = get(s, "/new");
	cr_assert_not(del(s, "/new", r.mod_rev[0] - 1).succeeded);
	cr_assert(del(s, "/new", r.mod_rev[0]).succeeded);
	cr_assert_not(del(s, "/new", 0).succeeded);
	cr_assert_eq(get(s, "/new").n, 0);
	store_free(s);
}

Test(store_local, callbacks_never_synchronous_and_free_cancels)
{
	struct store *s = store_local_new(loop, path);
	struct res o = { 0 };

	cr_assert_eq(s->ops->put(s, "/a", "b", 1, 0, res_cb, &o), 0);
	cr_assert_not(o.done);
	store_free(s); /* the pending callback must never run */
	ev_loop_run_once(loop, 20);
	cr_assert_not(o.done);
}

Test(store_local, lease_expiry_deletes_keys_with_events)
{
	struct store *s = store_local_new(loop, path);
	struct rec w = { 0 };
	struct store_watch *wa;
	struct res r;
	int64_t lease;

	cr_assert_eq(store_local_set_time_unit(s, 200), 0);
	r = create(s, "/l/a", "A", 3);
	lease = r.lease_id;
	cr_assert_eq(put(s, "/l/b", "B", lease).err, 0);
	wa = s->ops->watch(s, "/l/", r.revision + 1, rec_cb, &w);
	cr_assert_not_null(wa);
	/* Keepalives hold it past its TTL of 600 ms (wide margins: sanitizers, a loaded host). */
	for (int i = 0; i < 8; i++) {
		uint64_t until = ev_now_ms() + 100;

		while (ev_now_ms() < until)
			ev_loop_run_once(loop, 5);
		cr_assert_eq(keepalive(s, lease).ttl, 3);
	}
	cr_assert_eq(list(s, "/l/").n, 2);
	wait_rec(&w, 3); /* PUT b, DELETE a, DELETE b */
	cr_assert_str_eq(w.line[0], "PUT /l/b=B");
	cr_assert_str_eq(w.line[1], "DELETE /l/a (was A)");
	cr_assert_str_eq(w.line[2], "DELETE /l/b (was B)");
	cr_assert_eq(w.rev[1], w.rev[2], "one revision for all keys of the lease");
	cr_assert_eq(keepalive(s, lease).ttl, 0);
	cr_assert_eq(put(s, "/l/c", "C", lease).err, -ENOENT);
	s->ops->watch_free(wa);
	store_free(s);
}

Test(store_local, revoke_and_expire_hook)
{
	struct store *s = store_local_new(loop, path);
	struct res o = { 0 };
	int64_t l1 = create(s, "/r/a", "A", 100).lease_id;
	int64_t l2 = create(s, "/r/b", "B", 100).lease_id;

	cr_assert_eq(s->ops->revoke(s, l1, res_cb, &o), 0);
	wait_res(&o);
	cr_assert_eq(o.err, 0);
	cr_assert_eq(get(s, "/r/a").n, 0);
	memset(&o, 0, sizeof(o));
	cr_assert_eq(s->ops->revoke(s, l1, res_cb, &o), 0);
	wait_res(&o);
	cr_assert_eq(o.err, -ENOENT);
	cr_assert_eq(store_local_expire(s, l2), 0);
	cr_assert_eq(get(s, "/r/b").n, 0);
	cr_assert_eq(store_local_expire(s, l2), -ENOENT);
	store_free(s);
}

Test(store_local, watch_history_compaction_and_future)
{
	struct store *s = store_local_new(loop, path);
	struct rec w1 = { 0 }, w2 = { 0 }, w3 = { 0 };
	struct store_watch *a, *b, *c;
	int64_t r0 = put(s, "/w/a", "1", 0).revision;

	put(s, "/w/b", "2", 0);
	put(s, "/x", "other prefix", 0);
	del(s, "/w/a", 0);
	a = s->ops->watch(s, "/w/", r0, rec_cb, &w1);
	wait_rec(&w1, 3);
	cr_assert_str_eq(w1.line[0], "PUT /w/a=1");
	cr_assert_str_eq(w1.line[1], "PUT /w/b=2");
	cr_assert_str_eq(w1.line[2], "DELETE /w/a (was 1)");
	cr_assert_eq(store_local_compact(s, r0 + 1), 0);
	b = s->ops->watch(s, "/w/", r0, rec_cb, &w2);
	while (!w2.err)
		ev_loop_run_once(loop, 10);
	cr_assert_eq(w2.err, -ESTALE);
	/* A live watch that is caught up survives the compaction. */
	put(s, "/w/c", "3", 0);
	wait_rec(&w1, 4);
	cr_assert_eq(w1.err, 0);
	c = s->ops->watch(s, "/w/", store_local_revision(s) + 2, rec_cb, &w3);
	put(s, "/w/d", "4", 0);
	put(s, "/w/e", "5", 0);
	wait_rec(&w3, 1);
	cr_assert_str_eq(w3.line[0], "PUT /w/e=5");
	cr_assert_eq(store_local_break_watches(s, -EPIPE), 0);
	while (!w1.err)
		ev_loop_run_once(loop, 10);
	cr_assert_eq(w1.err, -EPIPE);
	s->ops->watch_free(a);
	s->ops->watch_free(b);
	s->ops->watch_free(c);
	store_free(s);
}

Test(store_local, persists_across_restart)
{
	struct store *s = store_local_new(loop, path);
	int64_t lease = create(s, "/k/leased", "L", 50).lease_id;
	int64_t rev;
	const char bin[] = { 'a', (char)0xff, 0, 'b' };
	struct res o = { 0 };

	put(s, "/k/plain", "{\"PublicIP\":\"192.0.2.1\"}", 0);
	cr_assert_eq(s->ops->put(s, "/k/bin", bin, sizeof(bin), 0, res_cb, &o), 0);
	wait_res(&o);
	rev = store_local_revision(s);
	store_free(s);

	s = store_local_new(loop, path);
	cr_assert_not_null(s);
	cr_assert_eq(store_local_revision(s), rev);
	cr_assert_str_eq(get(s, "/k/plain").value[0], "{\"PublicIP\":\"192.0.2.1\"}");
	cr_assert_eq(get(s, "/k/leased").lease[0], lease);
	cr_assert_eq(keepalive(s, lease).ttl, 50);
	cr_assert_eq(get(s, "/k/bin").n, 1);
	store_free(s);
}

Test(store_local, expired_while_down)
{
	struct store *s = store_local_new(loop, path);

	store_local_set_time_unit(s, 5);
	create(s, "/e/a", "A", 2);
	store_free(s);
	usleep(30000);
	s = store_local_new(loop, path);
	cr_assert_eq(get(s, "/e/a").n, 0);
	store_free(s);
}

Test(store_local, second_instance_sees_changes)
{
	struct store *a = store_local_new(loop, path);
	struct store *b = store_local_new(loop, path);
	struct rec w = { 0 };
	struct store_watch *wa;

	cr_assert_not_null(b);
	wa = a->ops->watch(a, "/c/", 0, rec_cb, &w);
	put(b, "/c/one", "1", 0);
	wait_rec(&w, 1);
	cr_assert_str_eq(w.line[0], "PUT /c/one=1");
	cr_assert_str_eq(get(a, "/c/one").value[0], "1");
	del(b, "/c/one", 0);
	wait_rec(&w, 2);
	cr_assert_str_eq(w.line[1], "DELETE /c/one (was 1)");
	/* Writes from both interleave with increasing revisions. */
	cr_assert_gt(put(a, "/c/two", "2", 0).revision, 0);
	cr_assert_eq(get(b, "/c/two").n, 1);
	a->ops->watch_free(wa);
	store_free(a);
	store_free(b);
}

Test(store_local, injected_failures)
{
	struct store *s = store_local_new(loop, path);

	cr_assert_eq(store_local_fail_next(s, -ECONNREFUSED, 1), 0);
	cr_assert_eq(put(s, "/f", "x", 0).err, -ECONNREFUSED);
	cr_assert_eq(get(s, "/f").n, 0);
	cr_assert_eq(put(s, "/f", "x", 0).err, 0);
	store_free(s);
}

Test(store_local, malformed_file_refused)
{
	FILE *f = fopen(path, "w");
	struct store *s;

	fputs("{not json", f);
	fclose(f);
	s = store_local_new(loop, path);
	cr_assert_null(s);
	cr_assert_eq(errno, EINVAL);
}

Test(store_local, timetolive_reads_without_refreshing)
{
	struct store *s = store_local_new(loop, path);
	struct res r;
	int64_t lease, t;
	uint64_t until;

	cr_assert_not_null(s->ops->timetolive);
	cr_assert_eq(store_local_set_time_unit(s, 100), 0);
	r = create(s, "/t/a", "A", 8); /* 800 ms */
	cr_assert(r.succeeded);
	lease = r.lease_id;
	r = timetolive(s, lease);
	cr_assert_eq(r.err, 0);
	cr_assert_eq(r.lease_id, lease);
	cr_assert(r.ttl >= 6 && r.ttl <= 8, "ttl %lld", (long long)r.ttl);
	/* timetolive does not extend the lease: it keeps counting down */
	until = ev_now_ms() + 300;
	while (ev_now_ms() < until) {
		ev_loop_run_once(loop, 20);
		t = timetolive(s, lease).ttl;
		cr_assert_leq(t, 8);
	}
	t = timetolive(s, lease).ttl;
	cr_assert(t >= 1 && t <= 5, "ttl %lld after 300 ms of 100 ms units", (long long)t);
	cr_assert_eq(store_local_lease_ttl(s, lease, &r.ttl), 0);
	cr_assert_leq(r.ttl, t);
	/* keepalive refreshes, timetolive sees it */
	cr_assert_eq(keepalive(s, lease).ttl, 8);
	cr_assert_geq(timetolive(s, lease).ttl, 6);
	/* gone: ttl 0 and no error, as etcd's "TTL":"-1" */
	cr_assert_eq(store_local_expire(s, lease), 0);
	r = timetolive(s, lease);
	cr_assert_eq(r.err, 0);
	cr_assert_eq(r.ttl, 0);
	cr_assert_eq(r.lease_id, lease);
	r = timetolive(s, 12345);
	cr_assert_eq(r.err, 0);
	cr_assert_eq(r.ttl, 0);
	cr_assert_eq(s->ops->timetolive(s, 0, res_cb, &r), -EINVAL);
	/* an injected failure reaches the callback */
	cr_assert_eq(store_local_fail_next(s, -EIO, 1), 0);
	cr_assert_eq(timetolive(s, lease).err, -EIO);
	store_free(s);
}

/* ---- list_pages: the paged listing the lease manager takes ---- */

struct pages {
	int calls, firsts, errs;
	bool done, order_ok, more_ok;
	int64_t rev;
	size_t n;
	char last[128];
};

static void pages_cb(void *ctx, const struct store_result *r)
{
	struct pages *p = ctx;

	p->calls++;
	p->errs += r->err != 0;
	if (r->first_page) {
		p->firsts++;
		p->n = 0;
		p->last[0] = '\0';
		p->rev = r->revision;
	}
	if (r->revision != p->rev)
		p->order_ok = false; /* every page at the listing's revision */
	for (size_t i = 0; i < r->n_kvs; i++) {
		if (strcmp(r->kvs[i].key, p->last) <= 0)
			p->order_ok = false;
		snprintf(p->last, sizeof(p->last), "%s", r->kvs[i].key);
		p->n++;
	}
	if (!r->more)
		p->done = true;
	else if (r->n_kvs == 0)
		p->more_ok = false;
}

Test(store_local, list_pages)
{
	struct store *s = store_local_new(loop, path);
	struct pages p = { .order_ok = true, .more_ok = true };
	char k[64];

	cr_assert_not_null(s);
	cr_assert_not_null(s->ops->list_pages);
	for (int i = 0; i < 7; i++) {
		snprintf(k, sizeof(k), "/n/subnets/198.18.%d.0-24", i);
		put(s, k, "{}", 0);
	}
	put(s, "/n/config", "{}", 0);
	cr_assert_eq(store_local_set_page_size(s, 3), 0);
	cr_assert_eq(s->ops->list_pages(s, "/n/subnets/", pages_cb, &p), 0);
	cr_assert_eq(p.calls, 0, "callback ran synchronously");
	cr_assert_eq(ev_loop_run_until(loop, &p.done, 3000), 0);
	cr_assert_eq(p.calls, 3, "7 keys in pages of 3");
	cr_assert_eq(p.firsts, 1);
	cr_assert_eq(p.n, 7);
	cr_assert(p.order_ok && p.more_ok);
	cr_assert_eq(p.rev, store_local_revision(s));

	/* An empty listing is one last page. */
	memset(&p, 0, sizeof(p));
	p.order_ok = p.more_ok = true;
	cr_assert_eq(s->ops->list_pages(s, "/none/", pages_cb, &p), 0);
	cr_assert_eq(ev_loop_run_until(loop, &p.done, 3000), 0);
	cr_assert_eq(p.calls, 1);
	cr_assert_eq(p.firsts, 1);
	cr_assert_eq(p.n, 0);

	/* A failure ends the listing in one call. */
	memset(&p, 0, sizeof(p));
	p.order_ok = p.more_ok = true;
	cr_assert_eq(store_local_fail_next(s, -EIO, 1), 0);
	cr_assert_eq(s->ops->list_pages(s, "/n/subnets/", pages_cb, &p), 0);
	cr_assert_eq(ev_loop_run_until(loop, &p.done, 3000), 0);
	cr_assert_eq(p.calls, 1);
	cr_assert_eq(p.errs, 1);
	store_free(s);
}
