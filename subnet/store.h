/*
 * The key-value store under the lease manager and twillctl. Two implementations:
 * etcd v3 over its native gRPC API (store_etcd.c and subnet/etcd_*.c, see
 * docs/etcd.md), and a local file store with the same semantics (store_local.c)
 * for single-host use and fast unit tests.
 *
 * Every operation is asynchronous on the caller's ev_loop: it returns 0 when
 * the request is queued (the callback then runs exactly once, never from inside
 * the call itself) or -errno when it could not be queued (no callback).
 * Keys and values are byte strings; values may contain NUL, keys may not.
 */
#ifndef TWILL_SUBNET_STORE_H
#define TWILL_SUBNET_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct store;
struct store_watch;

struct store_kv {
	char *key;
	char *value;   /* NUL-terminated for convenience; value_len excludes it */
	size_t value_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
	int64_t lease; /* 0 = no lease attached (a reservation, for subnet keys) */
};

struct store_result {
	int err;              /* 0 or -errno: -ECONNREFUSED/-ETIMEDOUT (unreachable), -EACCES (auth),
			       * -ENOENT (lease not found), -EINVAL (bad request), -EPROTO (bad reply),
			       * -ESTALE (revision compacted), -EEXIST (lease exists), -EIO (server) */
	const char *errmsg;   /* reason when err != 0 (e.g. etcd's message), else NULL */
	int64_t revision;     /* store revision the reply was taken at */
	bool succeeded;       /* create/cas/del: the compare held and the write happened (del with
			       * expect 0: a key was deleted); put/revoke: true */
	struct store_kv *kvs; /* get/list: matches; create/cas failed: the current kv, if any */
	size_t n_kvs;
	int64_t lease_id;     /* create with ttl: the lease granted; keepalive: the lease */
	int64_t ttl;          /* keepalive, timetolive: seconds left, 0 = lease lost */
	bool first_page;      /* list_pages: this page starts the listing (again, after its
			       * revision was compacted between pages): drop earlier pages */
	bool more;            /* list_pages: more pages follow (another callback) */
};

/* The result and everything it points to is valid only during the callback. */
typedef void (*store_cb)(void *ctx, const struct store_result *res);

enum store_event_type { STORE_EV_PUT, STORE_EV_DELETE };

struct store_event {
	enum store_event_type type;
	struct store_kv kv;      /* DELETE: key and mod_revision only */
	struct store_kv prev_kv; /* key NULL when unknown */
};

/*
 * Watch callback. @err 0: @n events at @revision (n may be 0 for progress).
 * @err -ESTALE: the start revision was compacted; -EPIPE: the stream broke and
 * could not be resumed; -EACCES: no permission (etcd auth). After an error the watch is dead: list again and start
 * a new watch from that listing's revision + 1 (the caller still frees the old one).
 */
typedef void (*store_watch_cb)(void *ctx, int err, const struct store_event *evs, size_t n,
			       int64_t revision);

struct store_ops {
	const char *name;
	/* One key: res.n_kvs 0 or 1. */
	int (*get)(struct store *s, const char *key, store_cb cb, void *ctx);
	/* Every key under @prefix, sorted by key, with the revision of the listing. */
	int (*list)(struct store *s, const char *prefix, store_cb cb, void *ctx);
	/*
	 * Create @key if absent: with @ttl_s > 0 a new store lease of that TTL is
	 * granted and attached (res.lease_id); 0 = no lease. res.succeeded false and
	 * res.kvs[0] = the existing kv when the key exists (the new lease is revoked).
	 */
	int (*create)(struct store *s, const char *key, const char *value, size_t value_len,
		      int64_t ttl_s, store_cb cb, void *ctx);
	/*
	 * Put @value if the key's mod_revision is @expect_mod_rev (0 = the key must be
	 * absent). @lease_id: the lease to attach (0 = none). res.kvs[0] = current kv on failure.
	 */
	int (*cas)(struct store *s, const char *key, const char *value, size_t value_len,
		   int64_t expect_mod_rev, int64_t lease_id, store_cb cb, void *ctx);
	/* Unconditional put (twillctl config set, reserve). */
	int (*put)(struct store *s, const char *key, const char *value, size_t value_len,
		   int64_t lease_id, store_cb cb, void *ctx);
	/* Delete @key if its mod_revision is @expect_mod_rev (0 = unconditionally). */
	int (*del)(struct store *s, const char *key, int64_t expect_mod_rev, store_cb cb, void *ctx);
	/* Grant a lease of @ttl_s seconds: res.lease_id, res.ttl. */
	int (*grant)(struct store *s, int64_t ttl_s, store_cb cb, void *ctx);
	/* Refresh a lease: res.ttl > 0, or 0 when the lease is gone. */
	int (*keepalive)(struct store *s, int64_t lease_id, store_cb cb, void *ctx);
	/* Revoke a lease and delete its keys. */
	int (*revoke)(struct store *s, int64_t lease_id, store_cb cb, void *ctx);
	/* Watch @prefix from @from_rev (inclusive; 0 = from now). NULL with errno on failure. */
	struct store_watch *(*watch)(struct store *s, const char *prefix, int64_t from_rev,
				     store_watch_cb cb, void *ctx);
	/* Stop a watch; no callback after this returns. NULL-safe. */
	void (*watch_free)(struct store_watch *w);
	/* Cancels pending requests (their callbacks do not run). NULL-safe. */
	void (*free)(struct store *s);
	/* Human-readable endpoint in use (the etcd store, before an endpoint answered: the
	 * comma-separated list), for logs and metrics. */
	const char *(*endpoint)(struct store *s);
	/*
	 * Seconds left of lease @lease_id without refreshing it (etcd's timetolive,
	 * rounded down): res.lease_id, res.ttl = seconds left, 0 = gone (unknown or
	 * expired: not an error). Added last: other stores may leave it NULL.
	 */
	int (*timetolive)(struct store *s, int64_t lease_id, store_cb cb, void *ctx);
	/*
	 * Optional (NULL: use list): list in pages, so a large listing is never held whole.
	 * @cb runs once per page with that page's kvs (sorted by key; in one piece with the
	 * other pages: every page at the listing's res.revision) and res.more set while more
	 * pages follow; the last call has more false, or err set (then no further calls).
	 * res.first_page marks a page that starts the listing, again after a restart.
	 * A callback with more set must not free the store.
	 */
	int (*list_pages)(struct store *s, const char *prefix, store_cb cb, void *ctx);
	/*
	 * Create as above, in one atomic step with a guard: fails (res.succeeded false,
	 * res.kvs = every kv under @guard_prefix, sorted by key, the new lease revoked) when
	 * ANY key starting with @guard_prefix exists, @key itself included. @key must start
	 * with @guard_prefix (-EINVAL otherwise; NULL: as create). The lease manager guards a dual-stack key
	 * "<v4>-<len>&<v6>-<len>" by its IPv4 part, so two keys that share only the IPv4
	 * subnet cannot both be created (docs/etcd.md, "Compare over a range"). Added last.
	 */
	int (*create_guarded)(struct store *s, const char *key, const char *guard_prefix,
			      const char *value, size_t value_len, int64_t ttl_s, store_cb cb,
			      void *ctx);
};

struct store {
	const struct store_ops *ops;
	struct ev_loop *loop;
};

/* Connection options shared by twilld and twillctl (flags and FLANNELD_* environment). */
struct store_opts {
	char **endpoints;   /* NULL-terminated; default http://127.0.0.1:2379 */
	const char *cafile, *certfile, *keyfile;
	const char *username, *password;
	int request_timeout_ms; /* total timeout of a unary call (default 5000) */
	int watch_idle_ms;      /* a watch silent this long is reopened (0 = 660000: etcd's default
				 * progress-notify interval, 10 min, + 1 min; set lower with a server
				 * that has --experimental-watch-progress-notify-interval) */
	int watch_probe_ms;     /* a watch silent this long gets a liveness probe: a linearizable
				 * range on the watch's endpoint with request_timeout_ms; when it
				 * fails the watch resumes on the next endpoint (0 = 10000,
				 * < 0 = no probes) */
};

/*
 * etcd v3 over gRPC (HTTP/2; h2c on http://, h2 by ALPN on https://). NULL with errno
 * on failure (EINVAL: an endpoint that is not http:// or https://). Logs the endpoint
 * it settles on (info) when there are several.
 */
struct store *store_etcd_new(struct ev_loop *loop, const struct store_opts *opts);
/* A local file store at @path (created when absent). */
struct store *store_local_new(struct ev_loop *loop, const char *path);

/* Convenience wrappers: s->ops->x(s, ...). */
static inline void store_free(struct store *s)
{
	if (s)
		s->ops->free(s);
}

#endif
