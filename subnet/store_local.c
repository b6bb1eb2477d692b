/*
 * The local file store: etcd v3 semantics (revisions, create-if-absent, cas on
 * mod_revision, leases with TTL that expire and delete their keys, watches from
 * a revision with a bounded history) kept in memory and persisted to one JSON
 * file, rewritten atomically (temp file, fsync, rename) after every write.
 *
 * Several processes may share the file (twilld and twillctl): every request
 * runs under an flock() of "<path>.lock", first re-reading the file when
 * another process replaced it; the differences become watch events. inotify on
 * the directory plus a periodic check notice changes made while idle, and the
 * same periodic check expires leases (stored as wall-clock deadlines).
 *
 * Requests are queued and executed on the loop (a zero timer), so callbacks
 * never run from inside the call that queued them.
 *
 * Layers: local_map.c (the versioned map, pure), local_file.c (the file, the
 * lock, re-reading), this file (the store ops: queue, execution, watches).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "lib/ev.h"
#include "lib/log.h"
#include "subnet/store.h"
#include "subnet/store_local_int.h"

#define TICK_MS 250 /* lease expiry and file change check */

static const struct store_ops local_ops;

static struct local_store *LS(struct store *s)
{
	return (struct local_store *)s;
}

/* ---- request execution ---- */

static int kvs_result(struct store_result *res, const struct lkv *src, size_t n)
{
	res->kvs = calloc(n ? n : 1, sizeof(*res->kvs));
	if (!res->kvs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct lkv c;

		if (lkv_copy(&c, &src[i]) < 0)
			return -ENOMEM;
		res->kvs[i] = (struct store_kv){ .key = c.key,
			                         .value = c.value,
			                         .value_len = c.len,
			                         .create_revision = c.create_rev,
			                         .mod_revision = c.mod_rev,
			                         .version = c.version,
			                         .lease = c.lease };
		res->n_kvs++;
	}
	return 0;
}

static void result_clear(struct store_result *res)
{
	for (size_t i = 0; i < res->n_kvs; i++) {
		free(res->kvs[i].key);
		free(res->kvs[i].value);
	}
	free(res->kvs);
}

static void current_kv(struct local_store *s, const char *key, struct store_result *res)
{
	ssize_t i = lmap_find(&s->m, key);

	if (i >= 0)
		kvs_result(res, &s->m.kvs[i], 1);
}

static void exec_list(struct local_store *s, struct op *op, struct store_result *res)
{
	size_t from, to;

	lmap_prefix_range(&s->m, op->key, &from, &to);
	if (kvs_result(res, to > from ? s->m.kvs + from : NULL, to - from) < 0)
		res->err = -ENOMEM;
}

static void exec_create(struct local_store *s, struct op *op, struct store_result *res)
{
	struct llease *l = NULL;

	if (op->guard) {
		size_t from, to;

		lmap_prefix_range(&s->m, op->guard, &from, &to);
		if (to > from) { /* the guard's keys, as etcd's failure branch reads them */
			if (kvs_result(res, s->m.kvs + from, to - from) < 0)
				res->err = -ENOMEM;
			return;
		}
	}
	if (lmap_find(&s->m, op->key) >= 0) {
		current_kv(s, op->key, res);
		return;
	}
	if (op->ttl > 0) {
		l = lmap_lease_grant(&s->m, op->ttl, lfile_now_ms());
		if (!l) {
			res->err = -ENOMEM;
			return;
		}
		res->lease_id = l->id;
		res->ttl = l->ttl;
	}
	s->m.rev++;
	res->err = lmap_put(&s->m, op->key, op->value, op->len, l ? l->id : 0, s->m.rev);
	res->succeeded = res->err == 0;
}

/* OP_CAS and OP_PUT. */
static void exec_put(struct local_store *s, struct op *op, struct store_result *res)
{
	ssize_t i = lmap_find(&s->m, op->key);

	if (op->kind == OP_CAS &&
	    (op->expect == 0 ? i >= 0 : i < 0 || s->m.kvs[i].mod_rev != op->expect)) {
		current_kv(s, op->key, res);
		return;
	}
	if (op->lease && !lmap_lease_find(&s->m, op->lease)) {
		res->err = -ENOENT;
		res->errmsg = "etcdserver: requested lease not found";
		return;
	}
	s->m.rev++;
	res->err = lmap_put(&s->m, op->key, op->value, op->len, op->lease, s->m.rev);
	res->succeeded = res->err == 0;
	res->lease_id = op->lease;
}

static void exec_del(struct local_store *s, struct op *op, struct store_result *res)
{
	ssize_t i = lmap_find(&s->m, op->key);

	if (i < 0)
		return;
	if (op->expect && s->m.kvs[i].mod_rev != op->expect) {
		current_kv(s, op->key, res);
		return;
	}
	s->m.rev++;
	lmap_delete_at(&s->m, (size_t)i, s->m.rev);
	res->succeeded = true;
}

/* OP_GRANT, OP_KEEPALIVE, OP_TIMETOLIVE, OP_REVOKE. */
static void exec_lease(struct local_store *s, struct op *op, struct store_result *res)
{
	int64_t now = lfile_now_ms();
	struct llease *l;

	if (op->kind == OP_GRANT) {
		l = lmap_lease_grant(&s->m, op->ttl, now);
		if (!l) {
			res->err = -ENOMEM;
			return;
		}
		res->lease_id = l->id;
		res->ttl = l->ttl;
		return;
	}
	l = lmap_lease_find(&s->m, op->lease);
	res->lease_id = op->lease;
	if (op->kind == OP_KEEPALIVE && l) {
		lmap_lease_refresh(&s->m, l, now);
		res->ttl = l->ttl;
	} else if (op->kind == OP_TIMETOLIVE) {
		res->ttl = l ? lmap_lease_left_s(&s->m, l, now) : 0;
	} else if (op->kind == OP_REVOKE && !l) {
		res->err = -ENOENT;
		res->errmsg = "etcdserver: requested lease not found";
	} else if (op->kind == OP_REVOKE) {
		lmap_lease_drop(&s->m, op->lease);
		res->succeeded = true;
	}
}

/* Run @op under the file lock into @res (OP_LIST_PAGES lists whole; kick_cb pages it). */
static void exec_op(struct local_store *s, struct op *op, struct store_result *res)
{
	lfile_txn_begin(&s->f, &s->m);
	switch (op->kind) {
	case OP_GET:
		current_kv(s, op->key, res);
		break;
	case OP_LIST:
	case OP_LIST_PAGES:
		exec_list(s, op, res);
		break;
	case OP_CREATE:
		exec_create(s, op, res);
		break;
	case OP_CAS:
	case OP_PUT:
		exec_put(s, op, res);
		break;
	case OP_DEL:
		exec_del(s, op, res);
		break;
	case OP_GRANT:
	case OP_KEEPALIVE:
	case OP_TIMETOLIVE:
	case OP_REVOKE:
		exec_lease(s, op, res);
		break;
	}
	if (lfile_txn_end(&s->f, &s->m) < 0 && res->err == 0) {
		res->err = -EIO;
		res->errmsg = "cannot write the store file";
	}
	res->revision = s->m.rev;
}

/*
 * Deliver @res of a listing in pages of s->page_size kvs, as etcd's paged range
 * does (every page at the listing's revision); one call when it fails or is empty.
 */
static void deliver_pages(struct local_store *s, struct op *op, struct store_result *res)
{
	size_t n = res->n_kvs, page = s->page_size ? s->page_size : LOCAL_PAGE_SIZE;
	struct store_kv *all = res->kvs;

	if (res->err || n <= page) {
		res->first_page = true;
		op->cb(op->ctx, res);
		return;
	}
	for (size_t off = 0; off < n && !s->free_pending; off += page) {
		struct store_result p = *res;

		p.kvs = all + off;
		p.n_kvs = n - off < page ? n - off : page;
		p.first_page = off == 0;
		p.more = off + p.n_kvs < n;
		op->cb(op->ctx, &p);
	}
}

static void op_free(struct op *op)
{
	if (!op)
		return;
	free(op->key);
	free(op->guard);
	free(op->value);
	free(op);
}

static void really_free(struct local_store *s);

static char empty_value[1];

static void deliver_watches(struct local_store *s)
{
	for (struct store_watch *w = s->watches; w && !s->free_pending; w = w->next) {
		size_t i = 0;

		if (w->dead)
			continue;
		if (!w->err && w->next_rev <= s->m.compact_rev)
			w->err = -ESTALE;
		if (w->err) {
			int err = w->err;

			w->dead = true; /* a broken watch reports once */
			w->cb(w->ctx, err, NULL, 0, s->m.rev);
			continue;
		}
		while (i < s->m.n_log && s->m.log[i].rev < w->next_rev)
			i++;
		while (i < s->m.n_log && !w->dead && !s->free_pending) {
			int64_t rev = s->m.log[i].rev;
			struct store_event evs[64];
			size_t n = 0, plen = strlen(w->prefix);

			for (; i < s->m.n_log && s->m.log[i].rev == rev; i++) {
				const struct levent *e = &s->m.log[i];

				if (strncmp(e->kv.key, w->prefix, plen) != 0)
					continue;
				evs[n].type = e->type;
				evs[n].kv = (struct store_kv){ .key = e->kv.key,
					                       .value = e->kv.value ? e->kv.value
					                                            : empty_value,
					                       .value_len = e->kv.len,
					                       .create_revision = e->kv.create_rev,
					                       .mod_revision = e->kv.mod_rev,
					                       .version = e->kv.version,
					                       .lease = e->kv.lease };
				evs[n].prev_kv =
					(struct store_kv){ .key = e->prev.key,
					                   .value = e->prev.value,
					                   .value_len = e->prev.len,
					                   .create_revision = e->prev.create_rev,
					                   .mod_revision = e->prev.mod_rev,
					                   .version = e->prev.version,
					                   .lease = e->prev.lease };
				if (++n == sizeof(evs) / sizeof(evs[0])) {
					w->cb(w->ctx, 0, evs, n, rev);
					n = 0;
					if (w->dead || s->free_pending)
						break;
				}
			}
			w->next_rev = rev + 1;
			if (n && !w->dead && !s->free_pending)
				w->cb(w->ctx, 0, evs, n, rev);
		}
		if (w->next_rev <= s->m.rev)
			w->next_rev = s->m.rev + 1;
	}
}

static void reap_watches(struct local_store *s)
{
	struct store_watch **pp = &s->watches;

	while (*pp) {
		struct store_watch *w = *pp;

		if (w->dead && !w->cb) {
			*pp = w->next;
			free(w->prefix);
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

static void kick_cb(struct ev_timer *t, void *ctx)
{
	struct local_store *s = ctx;
	struct op *q = s->q_head;

	(void)t;
	s->q_head = s->q_tail = NULL;
	s->dispatching++;
	while (q) {
		struct op *op = q;
		struct store_result res = { 0 };

		q = q->next;
		if (!s->free_pending) {
			if (s->fail_count > 0) {
				s->fail_count--;
				res.err = s->fail_err;
				res.errmsg = "injected failure";
				res.revision = s->m.rev;
			} else {
				exec_op(s, op, &res);
			}
			if (op->kind == OP_LIST_PAGES)
				deliver_pages(s, op, &res);
			else
				op->cb(op->ctx, &res);
			result_clear(&res);
		}
		op_free(op);
	}
	if (!s->free_pending)
		deliver_watches(s);
	s->dispatching--;
	if (s->free_pending) {
		if (!s->dispatching)
			really_free(s);
		return;
	}
	reap_watches(s);
	if (s->q_head)
		ev_timer_start(s->kick, 0, 0);
}

/* Catch up with the file and expire leases; events go out on the next kick. */
void store_local_refresh(struct local_store *s, bool force)
{
	int64_t rev = s->m.rev;
	bool due = lmap_any_due(&s->m, lfile_now_ms());

	if (!force && !due && !lfile_changed(&s->f))
		return;
	lfile_txn_begin(&s->f, &s->m);
	lfile_txn_end(&s->f, &s->m);
	if (s->m.rev != rev)
		ev_timer_start(s->kick, 0, 0);
}

static void tick_cb(struct ev_timer *t, void *ctx)
{
	(void)t;
	store_local_refresh(ctx, false);
}

static void ino_cb(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	(void)io;
	(void)revents;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	store_local_refresh(ctx, false);
}

static int enqueue_guarded(struct store *st, enum op_kind kind, const char *key,
                           const char *guard, const char *value, size_t len, int64_t ttl,
                           int64_t expect, int64_t lease, store_cb cb, void *ctx)
{
	struct local_store *s = LS(st);
	struct op *op;

	if (!cb || s->free_pending)
		return -EINVAL;
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->kind = kind;
	op->ttl = ttl;
	op->expect = expect;
	op->lease = lease;
	op->cb = cb;
	op->ctx = ctx;
	if (key && !(op->key = strdup(key)))
		goto fail;
	if (guard && !(op->guard = strdup(guard)))
		goto fail;
	if (value || len) {
		op->value = malloc(len + 1);
		if (!op->value)
			goto fail;
		memcpy(op->value, value, len);
		op->value[len] = '\0';
		op->len = len;
	}
	if (s->q_tail)
		s->q_tail->next = op;
	else
		s->q_head = op;
	s->q_tail = op;
	ev_timer_start(s->kick, 0, 0); /* cannot fail for a valid timerfd */
	return 0;
fail:
	op_free(op);
	return -ENOMEM;
}

static int enqueue(struct store *st, enum op_kind kind, const char *key, const char *value,
                   size_t len, int64_t ttl, int64_t expect, int64_t lease, store_cb cb, void *ctx)
{
	return enqueue_guarded(st, kind, key, NULL, value, len, ttl, expect, lease, cb, ctx);
}

static int l_get(struct store *s, const char *key, store_cb cb, void *ctx)
{
	if (!key)
		return -EINVAL;
	return enqueue(s, OP_GET, key, NULL, 0, 0, 0, 0, cb, ctx);
}

static int l_list(struct store *s, const char *prefix, store_cb cb, void *ctx)
{
	if (!prefix)
		return -EINVAL;
	return enqueue(s, OP_LIST, prefix, NULL, 0, 0, 0, 0, cb, ctx);
}

static int l_list_pages(struct store *s, const char *prefix, store_cb cb, void *ctx)
{
	if (!prefix)
		return -EINVAL;
	return enqueue(s, OP_LIST_PAGES, prefix, NULL, 0, 0, 0, 0, cb, ctx);
}

static int l_create(struct store *s, const char *key, const char *value, size_t len, int64_t ttl_s,
                    store_cb cb, void *ctx)
{
	if (!key || !*key || ttl_s < 0)
		return -EINVAL;
	return enqueue(s, OP_CREATE, key, value, len, ttl_s, 0, 0, cb, ctx);
}

static int l_create_guarded(struct store *s, const char *key, const char *guard,
                            const char *value, size_t len, int64_t ttl_s, store_cb cb, void *ctx)
{
	if (!key || !*key || ttl_s < 0 ||
	    (guard && (!*guard || strncmp(key, guard, strlen(guard)) != 0)))
		return -EINVAL;
	return enqueue_guarded(s, OP_CREATE, key, guard, value, len, ttl_s, 0, 0, cb, ctx);
}

static int l_cas(struct store *s, const char *key, const char *value, size_t len, int64_t expect,
                 int64_t lease_id, store_cb cb, void *ctx)
{
	if (!key || !*key)
		return -EINVAL;
	return enqueue(s, OP_CAS, key, value, len, 0, expect, lease_id, cb, ctx);
}

static int l_put(struct store *s, const char *key, const char *value, size_t len, int64_t lease_id,
                 store_cb cb, void *ctx)
{
	if (!key || !*key)
		return -EINVAL;
	return enqueue(s, OP_PUT, key, value, len, 0, 0, lease_id, cb, ctx);
}

static int l_del(struct store *s, const char *key, int64_t expect, store_cb cb, void *ctx)
{
	if (!key || !*key)
		return -EINVAL;
	return enqueue(s, OP_DEL, key, NULL, 0, 0, expect, 0, cb, ctx);
}

static int l_grant(struct store *s, int64_t ttl_s, store_cb cb, void *ctx)
{
	return enqueue(s, OP_GRANT, NULL, NULL, 0, ttl_s, 0, 0, cb, ctx);
}

static int l_keepalive(struct store *s, int64_t lease_id, store_cb cb, void *ctx)
{
	return enqueue(s, OP_KEEPALIVE, NULL, NULL, 0, 0, 0, lease_id, cb, ctx);
}

static int l_revoke(struct store *s, int64_t lease_id, store_cb cb, void *ctx)
{
	return enqueue(s, OP_REVOKE, NULL, NULL, 0, 0, 0, lease_id, cb, ctx);
}

static int l_timetolive(struct store *s, int64_t lease_id, store_cb cb, void *ctx)
{
	if (lease_id <= 0)
		return -EINVAL;
	return enqueue(s, OP_TIMETOLIVE, NULL, NULL, 0, 0, 0, lease_id, cb, ctx);
}

static struct store_watch *l_watch(struct store *st, const char *prefix, int64_t from_rev,
                                   store_watch_cb cb, void *ctx)
{
	struct local_store *s = LS(st);
	struct store_watch *w, **pp;

	if (!prefix || !cb || from_rev < 0 || s->free_pending) {
		errno = EINVAL;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w || !(w->prefix = strdup(prefix))) {
		free(w);
		errno = ENOMEM;
		return NULL;
	}
	store_local_refresh(s, false);
	w->s = s;
	w->next_rev = from_rev ? from_rev : s->m.rev + 1;
	w->cb = cb;
	w->ctx = ctx;
	for (pp = &s->watches; *pp; pp = &(*pp)->next)
		;
	*pp = w;
	ev_timer_start(s->kick, 0, 0);
	return w;
}

static void l_watch_free(struct store_watch *w)
{
	if (!w)
		return;
	w->dead = true;
	w->cb = NULL; /* marks it reapable */
	if (!w->s->dispatching)
		reap_watches(w->s);
}

static void really_free(struct local_store *s)
{
	while (s->q_head) {
		struct op *op = s->q_head;

		s->q_head = op->next;
		op_free(op);
	}
	while (s->watches) {
		struct store_watch *w = s->watches;

		s->watches = w->next;
		free(w->prefix);
		free(w);
	}
	lmap_clear(&s->m);
	ev_timer_free(s->kick);
	ev_timer_free(s->tick);
	ev_io_free(s->ino_io);
	if (s->inofd >= 0)
		close(s->inofd);
	lfile_close(&s->f);
	free(s);
}

static void l_free(struct store *st)
{
	struct local_store *s;

	if (!st)
		return;
	s = LS(st);
	if (s->dispatching) {
		s->free_pending = true;
		return;
	}
	really_free(s);
}

static const char *l_endpoint(struct store *st)
{
	return LS(st)->endpoint;
}

static const struct store_ops local_ops = {
	.name = "local",
	.get = l_get,
	.list = l_list,
	.create = l_create,
	.create_guarded = l_create_guarded,
	.cas = l_cas,
	.put = l_put,
	.del = l_del,
	.grant = l_grant,
	.keepalive = l_keepalive,
	.revoke = l_revoke,
	.watch = l_watch,
	.watch_free = l_watch_free,
	.free = l_free,
	.endpoint = l_endpoint,
	.timetolive = l_timetolive,
	.list_pages = l_list_pages,
};

struct store *store_local_new(struct ev_loop *loop, const char *path)
{
	struct local_store *s;
	int err = ENOMEM, r;

	if (!loop || !path || !*path || strlen(path) >= PATH_MAX) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base.ops = &local_ops;
	s->base.loop = loop;
	s->inofd = -1;
	lmap_init(&s->m);
	snprintf(s->endpoint, sizeof(s->endpoint), "file://%s", path);
	r = lfile_open(&s->f, path);
	if (r < 0) {
		err = -r;
		goto fail;
	}
	s->kick = ev_timer_new(loop, kick_cb, s);
	s->tick = ev_timer_new(loop, tick_cb, s);
	if (!s->kick || !s->tick) {
		err = errno;
		goto fail;
	}
	r = lfile_load(&s->f, &s->m);
	if (r < 0) {
		err = -r;
		log_debug("store %s: cannot read it (%s)", path, strerror(err));
		goto fail;
	}
	s->inofd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->inofd >= 0) {
		if (inotify_add_watch(s->inofd, s->f.dir,
		                      IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE) < 0 ||
		    !(s->ino_io = ev_io_new(loop, s->inofd, EPOLLIN, ino_cb, s))) {
			close(s->inofd);
			s->inofd = -1;
		}
	}
	ev_timer_start(s->tick, TICK_MS, TICK_MS);
	return &s->base;
fail:
	really_free(s);
	errno = err;
	return NULL;
}

/* ---- for the test support library (store_local_int.h) ---- */

struct local_store *store_local_of(struct store *s)
{
	return s && s->ops == &local_ops ? LS(s) : NULL;
}

void store_local_kick(struct local_store *s)
{
	ev_timer_start(s->kick, 0, 0);
}

void store_local_set_tick(struct local_store *s, uint64_t ms)
{
	ev_timer_start(s->tick, ms, ms);
}
