/*
 * The store on etcd v3 over its native gRPC API (docs/etcd.md, "gRPC"): the store ops.
 * The call layer (etcd_client.c) picks the endpoint, retries and authenticates; the
 * messages are built and decoded by etcd_codec.c; watches live in etcd_watch.c.
 *
 * An operation may take several calls (struct ecall stages): create with a TTL grants a
 * lease, runs the create-if-absent txn (create_guarded: if-no-key-under-the-guard), and
 * revokes the lease when the key existed; a
 * listing reads pages of LIST_PAGE keys at the first page's revision.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errfmt.h"
#include "lib/ev.h"
#include "lib/log.h"
#include "subnet/etcd_codec.h"
#include "subnet/store_etcd_int.h"
#include "subnet/store_stats.h"
#include "subnet/store_util.h"

#define DEFAULT_IDLE_MS  660000 /* etcd's default progress interval (10 min) + 1 min */
#define DEFAULT_PROBE_MS 10000
#define LIST_PAGE        500 /* kvs per range request of a listing */

enum ecall_op {
	OP_GET,
	OP_LIST,
	OP_CREATE,
	OP_CAS,
	OP_PUT,
	OP_DEL,
	OP_GRANT,
	OP_KEEPALIVE,
	OP_REVOKE,
	OP_TIMETOLIVE,
};

enum ecall_stage { STAGE_GRANT, STAGE_MAIN, STAGE_REVOKE };

struct ecall {
	struct etcd_store *s;
	enum ecall_op op;
	enum ecall_stage stage;
	char *key;
	size_t key_len;
	char *guard; /* create_guarded: no key under this prefix may exist; NULL = create */
	size_t guard_len;
	char *value;
	size_t value_len;
	int64_t ttl;
	int64_t expect;
	int64_t lease_id;
	store_cb cb;
	void *ctx;
	struct etcd_call *call;
	bool ambiguous; /* an attempt may have been applied although it failed */
	int final_err;
	struct store_result res;
	char errmsg[700];
	/* OP_LIST in pages: the listing's revision, where the next page starts, kvs so far */
	int64_t page_rev;
	char *page_key;
	size_t page_key_len;
	struct store_kv *acc;
	size_t n_acc, cap_acc;
	unsigned list_restarts;
	bool paged;      /* list_pages: each page goes to the callback, nothing is gathered */
	bool page_first; /* list_pages: the next page delivered starts the listing */
	struct ecall *next, *prev;
};

static const struct store_ops etcd_ops;

static struct etcd_store *to_etcd(struct store *s)
{
	return (struct etcd_store *)s;
}

/* ---- counters (store_stats.h) ---- */

int store_etcd_stats(const struct store *s, struct store_stats *ret)
{
	if (!s || !ret)
		return -EINVAL;
	if (s->ops != &etcd_ops)
		return -ENOTSUP;
	*ret = *etcd_client_stats(((const struct etcd_store *)s)->c);
	return 0;
}

/* ---- stages ---- */

/* What the current stage of @c asks of etcd: the grant and revoke around a create. */
static enum ecall_op stage_op(const struct ecall *c)
{
	switch (c->stage) {
	case STAGE_GRANT:
		return OP_GRANT;
	case STAGE_REVOKE:
		return OP_REVOKE;
	case STAGE_MAIN:
		break;
	}
	return c->op;
}

struct stage_req {
	const char *path;
	enum etcd_reply kind;
	enum store_stat_op stat;
};

static const struct stage_req stage_reqs[] = {
	[OP_GET] = { ETCD_PATH_KV_RANGE, ETCD_REPLY_RANGE, STORE_STAT_GET },
	[OP_LIST] = { ETCD_PATH_KV_RANGE, ETCD_REPLY_RANGE, STORE_STAT_LIST },
	[OP_CREATE] = { ETCD_PATH_KV_TXN, ETCD_REPLY_TXN, STORE_STAT_CREATE },
	[OP_CAS] = { ETCD_PATH_KV_TXN, ETCD_REPLY_TXN, STORE_STAT_CAS },
	[OP_PUT] = { ETCD_PATH_KV_PUT, ETCD_REPLY_PUT, STORE_STAT_PUT },
	[OP_DEL] = { ETCD_PATH_KV_TXN, ETCD_REPLY_TXN, STORE_STAT_DELETE },
	[OP_GRANT] = { ETCD_PATH_LEASE_GRANT, ETCD_REPLY_GRANT, STORE_STAT_GRANT },
	[OP_KEEPALIVE] = { ETCD_PATH_LEASE_KEEPALIVE, ETCD_REPLY_KEEPALIVE, STORE_STAT_KEEPALIVE },
	[OP_REVOKE] = { ETCD_PATH_LEASE_REVOKE, ETCD_REPLY_REVOKE, STORE_STAT_REVOKE },
	[OP_TIMETOLIVE] = { ETCD_PATH_LEASE_TTL, ETCD_REPLY_TIMETOLIVE, STORE_STAT_TIMETOLIVE },
};

static int stage_encode(const struct ecall *c, struct etcd_buf *b)
{
	switch (stage_op(c)) {
	case OP_GET:
		return etcd_enc_range(c->key, c->key_len, NULL, 0, 0, 0, false, b);
	case OP_LIST: {
		char *end;
		size_t elen;
		int r;

		if (store_prefix_end(c->key, c->key_len, &end, &elen) < 0)
			return -ENOMEM;
		if (c->key_len == 1 && c->key[0] == '\0') /* the whole keyspace */
			end[0] = '\0', elen = 1;
		if (c->page_key)
			r = etcd_enc_range(c->page_key, c->page_key_len, end, elen, LIST_PAGE,
			                   c->page_rev, false, b);
		else
			r = etcd_enc_range(c->key, c->key_len, end, elen, LIST_PAGE, 0, false, b);
		free(end);
		return r;
	}
	case OP_CREATE: {
		char *end;
		size_t elen;
		int r;

		if (!c->guard)
			return etcd_enc_txn(c->key, c->key_len, 0, false, c->value, c->value_len,
			                    c->lease_id, b);
		if (store_prefix_end(c->guard, c->guard_len, &end, &elen) < 0)
			return -ENOMEM;
		r = etcd_enc_txn_guarded(c->key, c->key_len, c->guard, c->guard_len, end, elen,
		                         c->value, c->value_len, c->lease_id, b);
		free(end);
		return r;
	}
	case OP_CAS:
		return etcd_enc_txn(c->key, c->key_len, c->expect, false, c->value, c->value_len,
		                    c->lease_id, b);
	case OP_PUT:
		return etcd_enc_put(c->key, c->key_len, c->value, c->value_len, c->lease_id, b);
	case OP_DEL:
		if (c->expect == 0)
			return etcd_enc_delete(c->key, c->key_len, b);
		return etcd_enc_txn(c->key, c->key_len, c->expect, true, NULL, 0, 0, b);
	case OP_GRANT:
		return etcd_enc_lease(ETCD_LEASE_GRANT, c->ttl, b);
	case OP_KEEPALIVE:
		return etcd_enc_lease(ETCD_LEASE_KEEPALIVE, c->lease_id, b);
	case OP_REVOKE:
		return etcd_enc_lease(ETCD_LEASE_REVOKE, c->lease_id, b);
	case OP_TIMETOLIVE:
		return etcd_enc_lease(ETCD_LEASE_TIMETOLIVE, c->lease_id, b);
	}
	return -EINVAL;
}

static struct stage_req stage_req(const struct ecall *c)
{
	struct stage_req r = stage_reqs[stage_op(c)];

	if (stage_op(c) == OP_DEL && c->expect == 0) {
		r.path = ETCD_PATH_KV_DELETE;
		r.kind = ETCD_REPLY_DELETE;
	}
	return r;
}

/* Forget the pages of a listing so far (it starts again from the first page). */
static void list_reset(struct ecall *c)
{
	for (size_t i = 0; i < c->n_acc; i++)
		store_kv_clear(&c->acc[i]);
	free(c->acc);
	free(c->page_key);
	c->acc = NULL;
	c->n_acc = c->cap_acc = 0;
	c->page_key = NULL;
	c->page_key_len = 0;
	c->page_rev = 0;
	c->page_first = true;
}

static void call_unlink(struct ecall *c)
{
	struct etcd_store *s = c->s;

	if (c->prev)
		c->prev->next = c->next;
	else if (s->calls == c)
		s->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

static void call_destroy(struct ecall *c)
{
	etcd_call_cancel(c->call);
	store_result_clear(&c->res);
	list_reset(c);
	free(c->key);
	free(c->guard);
	free(c->value);
	free(c);
}

/* Runs the callback (the store may be freed by it) and frees the call. */
static void call_complete(struct ecall *c, int err)
{
	struct store_result *res = &c->res;

	call_unlink(c);
	res->err = err;
	res->errmsg = err ? (c->errmsg[0] ? c->errmsg : strerror(-err)) : NULL;
	if (err) {
		store_result_clear(res);
		res->succeeded = false;
	}
	c->cb(c->ctx, res);
	call_destroy(c);
}

static void on_reply(void *ctx, const struct etcd_answer *r);

/* Send the current stage; 0 or -errno (no call started then). */
static int stage_send(struct ecall *c)
{
	struct stage_req sr = stage_req(c);
	struct etcd_buf b;
	int r = stage_encode(c, &b);

	if (r < 0)
		return r;
	if (stage_op(c) == OP_KEEPALIVE)
		c->call = etcd_call_open(c->s->c, sr.path, &b, sr.stat, on_reply, c);
	else
		c->call = etcd_call(c->s->c, sr.path, &b, sr.stat, on_reply, c);
	return c->call ? 0 : -errno;
}

/* From a reply callback: start @stage, or complete with the failure. */
static void call_start_stage(struct ecall *c, enum ecall_stage stage)
{
	int r;

	c->stage = stage;
	r = stage_send(c);
	if (r < 0) {
		errfmt(c->errmsg, sizeof(c->errmsg), "cannot build the etcd request");
		call_complete(c, r);
	}
}

/* The key right after @last: @last with a NUL appended. */
static int next_page_key(struct ecall *c, const char *last)
{
	size_t l = strlen(last);
	char *k = malloc(l + 2);

	if (!k)
		return -ENOMEM;
	memcpy(k, last, l + 1);
	k[l + 1] = '\0';
	free(c->page_key);
	c->page_key = k;
	c->page_key_len = l + 1;
	return 0;
}

static int list_gather(struct ecall *c, struct store_result *res)
{
	size_t got = res->n_kvs;

	if (c->n_acc + got > c->cap_acc) {
		size_t cap = c->cap_acc ? c->cap_acc : LIST_PAGE;
		struct store_kv *a;

		while (cap < c->n_acc + got)
			cap *= 2;
		a = realloc(c->acc, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		c->acc = a;
		c->cap_acc = cap;
	}
	if (got)
		memcpy(c->acc + c->n_acc, res->kvs, got * sizeof(*res->kvs));
	c->n_acc += got;
	free(res->kvs);
	res->kvs = NULL;
	res->n_kvs = 0;
	return 0;
}

/*
 * A page of a listing arrived. 1 when the next page was requested, 0 when @res now holds
 * the last page (list_pages) or the whole listing (list), or -ENOMEM.
 */
static int list_page(struct ecall *c, struct store_result *res)
{
	size_t got = res->n_kvs;
	int r;

	if (!c->page_rev)
		c->page_rev = res->revision;
	if (c->paged) {
		res->revision = c->page_rev;
		res->first_page = c->page_first;
		res->more = got == LIST_PAGE;
		c->page_first = false;
		if (!res->more)
			return 0; /* the last page: delivered as the call's result */
		r = next_page_key(c, res->kvs[got - 1].key);
		if (r < 0)
			return r;
		c->cb(c->ctx, res);
		store_result_clear(res);
		call_start_stage(c, STAGE_MAIN);
		return 1;
	}
	r = list_gather(c, res);
	if (r < 0)
		return r;
	if (got == LIST_PAGE) {
		r = next_page_key(c, c->acc[c->n_acc - 1].key);
		if (r < 0)
			return r;
		call_start_stage(c, STAGE_MAIN);
		return 1;
	}
	res->kvs = c->acc;
	res->n_kvs = c->n_acc;
	res->revision = c->page_rev;
	c->acc = NULL;
	c->n_acc = c->cap_acc = 0;
	return 0;
}

static bool same_value(const struct store_kv *kv, const struct ecall *c)
{
	return kv->value_len == c->value_len && memcmp(kv->value, c->value, c->value_len) == 0;
}

/* A failed create's kvs (the key, or the guard's range) hold our own write. */
static bool own_create(const struct ecall *c)
{
	for (size_t i = 0; i < c->res.n_kvs; i++) {
		const struct store_kv *kv = &c->res.kvs[i];

		if (strcmp(kv->key, c->key) != 0)
			continue;
		/* our own write from an attempt that only seemed to fail */
		return (c->lease_id && kv->lease == c->lease_id) ||
		       (!c->lease_id && c->ambiguous && !kv->lease && same_value(kv, c));
	}
	return false;
}

/* The main stage's reply is in c->res: fix it up per operation; false when a stage follows. */
static bool main_done(struct ecall *c)
{
	switch (c->op) {
	case OP_CREATE:
		c->res.lease_id = c->lease_id;
		if (!c->res.succeeded && own_create(c))
			c->res.succeeded = true;
		if (!c->res.succeeded && c->lease_id) {
			c->res.lease_id = 0;
			call_start_stage(c, STAGE_REVOKE);
			return false;
		}
		break;
	case OP_CAS:
		if (!c->res.succeeded && c->ambiguous && c->res.n_kvs == 1 &&
		    c->res.kvs[0].lease == c->lease_id && same_value(&c->res.kvs[0], c))
			c->res.succeeded = true;
		break;
	case OP_PUT:
		c->res.succeeded = true;
		break;
	case OP_KEEPALIVE:
	case OP_TIMETOLIVE:
		if (c->res.lease_id == 0)
			c->res.lease_id = c->lease_id;
		break;
	case OP_REVOKE:
		c->res.lease_id = c->lease_id;
		c->res.succeeded = true;
		break;
	default:
		break;
	}
	if (c->res.succeeded && c->res.n_kvs && (c->op == OP_CAS || c->op == OP_CREATE)) {
		store_result_clear(&c->res); /* kvs only describe a failed compare */
		c->res.succeeded = true;
	}
	return true;
}

static void stage_error(struct ecall *c, int err);

static void stage_done(struct ecall *c, struct store_result *res)
{
	switch (c->stage) {
	case STAGE_GRANT:
		c->lease_id = res->lease_id;
		store_result_clear(res);
		call_start_stage(c, STAGE_MAIN);
		return;
	case STAGE_REVOKE:
		store_result_clear(res);
		call_complete(c, c->final_err);
		return;
	case STAGE_MAIN:
		break;
	}
	if (c->op == OP_LIST) {
		int r = list_page(c, res);

		if (r > 0)
			return;
		if (r < 0) {
			store_result_clear(res);
			stage_error(c, r);
			return;
		}
	}
	store_result_clear(&c->res);
	c->res = *res;
	memset(res, 0, sizeof(*res));
	if (main_done(c))
		call_complete(c, 0);
}

/* A definitive error of the current stage. */
static void stage_error(struct ecall *c, int err)
{
	if (c->stage == STAGE_REVOKE) { /* best effort: the lease expires by itself */
		call_complete(c, c->final_err);
		return;
	}
	if (c->op == OP_CREATE && c->stage == STAGE_MAIN && c->lease_id) {
		c->final_err = err;
		call_start_stage(c, STAGE_REVOKE);
		return;
	}
	if (c->op == OP_LIST && c->page_rev && err == -ESTALE && c->list_restarts++ < 3) {
		/* the listing's revision was compacted between two pages: from the start */
		list_reset(c);
		call_start_stage(c, STAGE_MAIN);
		return;
	}
	call_complete(c, err);
}

static void on_reply(void *ctx, const struct etcd_answer *r)
{
	struct ecall *c = ctx;
	struct store_result res;
	int err;

	c->call = NULL;
	if (r->ambiguous)
		c->ambiguous = true;
	if (r->err) {
		errfmt(c->errmsg, sizeof(c->errmsg), "%s", r->errmsg);
		stage_error(c, r->err);
		return;
	}
	err = etcd_decode_reply(stage_req(c).kind, r->msg, r->len, &res, c->errmsg,
	                        sizeof(c->errmsg));
	if (err < 0) {
		etcd_client_stat_err(c->s->c, err);
		stage_error(c, err);
		return;
	}
	stage_done(c, &res);
}

static struct ecall *call_new(struct etcd_store *s, enum ecall_op op, const char *key,
                              const char *value, size_t value_len, store_cb cb, void *ctx)
{
	struct ecall *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->s = s;
	c->op = op;
	c->cb = cb;
	c->ctx = ctx;
	c->page_first = true;
	if (key) {
		c->key_len = strlen(key);
		c->key = strdup(key);
		if (!c->key)
			goto fail;
	}
	if (value || op == OP_CREATE || op == OP_CAS || op == OP_PUT) {
		c->value = malloc(value_len + 1);
		if (!c->value)
			goto fail;
		if (value_len)
			memcpy(c->value, value, value_len);
		c->value[value_len] = '\0';
		c->value_len = value_len;
	}
	return c;
fail:
	free(c->key);
	free(c->value);
	free(c);
	return NULL;
}

/* Link @c and start it (its callback runs from the loop); 0 or -errno (then freed). */
static int call_go(struct ecall *c, enum ecall_stage first)
{
	struct etcd_store *s = c->s;
	int r;

	c->stage = first;
	r = stage_send(c);
	if (r < 0) {
		call_destroy(c);
		return r;
	}
	c->next = s->calls;
	if (s->calls)
		s->calls->prev = c;
	s->calls = c;
	return 0;
}

/* ---- the ops ---- */

static int check_key(const char *key)
{
	return key && *key ? 0 : -EINVAL;
}

static int etcd_get(struct store *st, const char *key, store_cb cb, void *ctx)
{
	struct ecall *c;

	if (check_key(key) < 0 || !cb)
		return -EINVAL;
	c = call_new(to_etcd(st), OP_GET, key, NULL, 0, cb, ctx);
	return c ? call_go(c, STAGE_MAIN) : -ENOMEM;
}

static int list_common(struct store *st, const char *prefix, bool paged, store_cb cb, void *ctx)
{
	struct ecall *c;

	if (!prefix || !cb)
		return -EINVAL;
	c = call_new(to_etcd(st), OP_LIST, prefix, NULL, 0, cb, ctx);
	if (!c)
		return -ENOMEM;
	c->paged = paged;
	if (c->key_len == 0) { /* the whole keyspace: key "\0", range_end "\0" */
		c->key_len = 1;
		free(c->key);
		c->key = calloc(1, 2);
		if (!c->key) {
			call_destroy(c);
			return -ENOMEM;
		}
	}
	return call_go(c, STAGE_MAIN);
}

static int etcd_list(struct store *st, const char *prefix, store_cb cb, void *ctx)
{
	return list_common(st, prefix, false, cb, ctx);
}

static int etcd_list_pages(struct store *st, const char *prefix, store_cb cb, void *ctx)
{
	return list_common(st, prefix, true, cb, ctx);
}

static int etcd_create_guarded(struct store *st, const char *key, const char *guard,
                               const char *value, size_t value_len, int64_t ttl_s, store_cb cb,
                               void *ctx)
{
	struct ecall *c;

	if (check_key(key) < 0 || !cb || ttl_s < 0 || (!value && value_len))
		return -EINVAL;
	if (guard && (!*guard || strncmp(key, guard, strlen(guard)) != 0))
		return -EINVAL;
	c = call_new(to_etcd(st), OP_CREATE, key, value, value_len, cb, ctx);
	if (!c)
		return -ENOMEM;
	if (guard) {
		c->guard_len = strlen(guard);
		c->guard = strdup(guard);
		if (!c->guard) {
			call_destroy(c);
			return -ENOMEM;
		}
	}
	c->ttl = ttl_s;
	return call_go(c, ttl_s > 0 ? STAGE_GRANT : STAGE_MAIN);
}

static int etcd_create(struct store *st, const char *key, const char *value, size_t value_len,
                       int64_t ttl_s, store_cb cb, void *ctx)
{
	return etcd_create_guarded(st, key, NULL, value, value_len, ttl_s, cb, ctx);
}

static int etcd_cas(struct store *st, const char *key, const char *value, size_t value_len,
                    int64_t expect_mod_rev, int64_t lease_id, store_cb cb, void *ctx)
{
	struct ecall *c;

	if (check_key(key) < 0 || !cb || expect_mod_rev < 0 || lease_id < 0 ||
	    (!value && value_len))
		return -EINVAL;
	c = call_new(to_etcd(st), OP_CAS, key, value, value_len, cb, ctx);
	if (!c)
		return -ENOMEM;
	c->expect = expect_mod_rev;
	c->lease_id = lease_id;
	return call_go(c, STAGE_MAIN);
}

static int etcd_put(struct store *st, const char *key, const char *value, size_t value_len,
                    int64_t lease_id, store_cb cb, void *ctx)
{
	struct ecall *c;

	if (check_key(key) < 0 || !cb || lease_id < 0 || (!value && value_len))
		return -EINVAL;
	c = call_new(to_etcd(st), OP_PUT, key, value, value_len, cb, ctx);
	if (!c)
		return -ENOMEM;
	c->lease_id = lease_id;
	return call_go(c, STAGE_MAIN);
}

static int etcd_del(struct store *st, const char *key, int64_t expect_mod_rev, store_cb cb,
                    void *ctx)
{
	struct ecall *c;

	if (check_key(key) < 0 || !cb || expect_mod_rev < 0)
		return -EINVAL;
	c = call_new(to_etcd(st), OP_DEL, key, NULL, 0, cb, ctx);
	if (!c)
		return -ENOMEM;
	c->expect = expect_mod_rev;
	return call_go(c, STAGE_MAIN);
}

static int lease_call(struct store *st, enum ecall_op op, int64_t arg, store_cb cb, void *ctx)
{
	struct ecall *c;

	if (!cb || arg <= 0)
		return -EINVAL;
	c = call_new(to_etcd(st), op, NULL, NULL, 0, cb, ctx);
	if (!c)
		return -ENOMEM;
	if (op == OP_GRANT)
		c->ttl = arg;
	else
		c->lease_id = arg;
	return call_go(c, STAGE_MAIN);
}

static int etcd_grant(struct store *st, int64_t ttl_s, store_cb cb, void *ctx)
{
	return lease_call(st, OP_GRANT, ttl_s, cb, ctx);
}

static int etcd_keepalive(struct store *st, int64_t lease_id, store_cb cb, void *ctx)
{
	return lease_call(st, OP_KEEPALIVE, lease_id, cb, ctx);
}

static int etcd_revoke(struct store *st, int64_t lease_id, store_cb cb, void *ctx)
{
	return lease_call(st, OP_REVOKE, lease_id, cb, ctx);
}

static int etcd_timetolive(struct store *st, int64_t lease_id, store_cb cb, void *ctx)
{
	return lease_call(st, OP_TIMETOLIVE, lease_id, cb, ctx);
}

static void etcd_free(struct store *st)
{
	struct etcd_store *s = to_etcd(st);

	if (!s)
		return;
	etcd_watcher_free(s->watcher);
	while (s->calls) {
		struct ecall *c = s->calls;

		call_unlink(c);
		call_destroy(c);
	}
	etcd_client_free(s->c);
	free(s);
}

static const char *etcd_endpoint(struct store *st)
{
	return etcd_client_endpoint(to_etcd(st)->c);
}

static const struct store_ops etcd_ops = {
	.name = "etcd",
	.get = etcd_get,
	.list = etcd_list,
	.create = etcd_create,
	.cas = etcd_cas,
	.put = etcd_put,
	.del = etcd_del,
	.grant = etcd_grant,
	.keepalive = etcd_keepalive,
	.revoke = etcd_revoke,
	.watch = etcd_watch,
	.watch_free = etcd_watch_free,
	.free = etcd_free,
	.endpoint = etcd_endpoint,
	.timetolive = etcd_timetolive,
	.list_pages = etcd_list_pages,
	.create_guarded = etcd_create_guarded,
};

struct store *store_etcd_new(struct ev_loop *loop, const struct store_opts *opts)
{
	struct etcd_store *s;

	if (!loop) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base.ops = &etcd_ops;
	s->base.loop = loop;
	s->idle_ms = opts && opts->watch_idle_ms > 0 ? opts->watch_idle_ms : DEFAULT_IDLE_MS;
	s->probe_ms = !opts || opts->watch_probe_ms == 0 ? DEFAULT_PROBE_MS
	              : opts->watch_probe_ms < 0         ? -1
	                                                 : opts->watch_probe_ms;
	s->c = etcd_client_new(loop, opts);
	if (!s->c) {
		int err = errno;

		free(s);
		errno = err;
		return NULL;
	}
	return &s->base;
}
