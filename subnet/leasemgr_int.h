/*
 * Private to the lease manager (leasemgr.c: life cycle, public API and shared helpers;
 * leasemgr_acquire.c: the own lease; leasemgr_watch.c: the remote set). Not for other modules.
 */
#ifndef TWILL_SUBNET_LEASEMGR_INT_H
#define TWILL_SUBNET_LEASEMGR_INT_H

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/ev.h"
#include "lib/log.h"
#include "subnet/lease_race.h"
#include "subnet/leasemgr.h"
#include "subnet/subnetfile.h"

#define RACES_BEFORE_RELIST 16

struct leasemgr {
	struct ev_loop *loop;
	struct store *store;
	struct leasemgr_events ev;
	void *ctx;
	char *subnets_prefix; /* "<prefix>/subnets/" */
	int64_t ttl_s, margin_s, retry_ms, acq_retry_ms, backoff_max_ms, unit_ms;
	char *subnet_file;
	ipam_rand_fn rnd;
	void *rnd_ctx;

	bool started;
	struct subnet_config cfg;
	struct lease_attrs own_attrs;
	char *own_value;

	/* acquisition */
	bool have_own;
	struct lease own;
	char own_key[LEASE_KEY_MAX];
	bool have_prev;
	struct lease prev; /* subnets of the lost own lease, preferred when re-acquiring */
	bool have_pending;
	struct lease pending; /* candidate being created or rewritten */
	char pending_key[LEASE_KEY_MAX];
	int64_t pending_mod_rev; /* rewrite: the mod_revision to compare */
	int64_t old_store_lease; /* rewrite: the previous store lease, revoked after */
	struct ipam_taken *taken4, *taken6;
	int races;
	/* after a create holding an IPv6 subnet: the check of lease_race.h */
	struct lease_race race;
	bool race_fresh;    /* the next page starts the check's listing */
	bool giveback;      /* the check lost: the key is being given back */
	int64_t race_lease; /* the created key's store lease (0: none) */
	int64_t race_rev;   /* the create's revision */
	int64_t acq_backoff_ms;
	struct ev_timer *acq_timer, *renew_timer;
	int64_t renew_lease; /* lease id of the keepalive in flight */

	/* remote set */
	bool watching_started;
	bool resynced;
	struct store_watch *watch, *dead_watch;
	struct ev_timer *relist_timer;
	int64_t w_backoff_ms;
	struct lease *vis, *hid;
	size_t n_vis, cap_vis, n_hid, cap_hid;
	/* The first acquisition listing, kept to seed the remote set: one listing at start-up. */
	bool have_seed;
	struct lease *seed;
	size_t n_seed, cap_seed;
	int64_t seed_rev;
	/* listings in progress (pages so far) */
	bool acq_fresh, w_fresh; /* the next page starts a listing */
	bool acq_keep;           /* the acquisition listing becomes the seed */
	bool have_mine;
	struct lease mine; /* acquisition: the valid lease with our PublicIP, if any */
	struct lease *wl;  /* relisting: the leases so far */
	size_t n_wl, cap_wl;
	bool wl_oom;

	uint64_t skipped;
	/* leasemgr_renewals(), leasemgr_changes() */
	uint64_t renewals, changes;
	int outstanding; /* store requests in flight with this manager as ctx */
	bool zombie;     /* freed while requests were in flight */
};

/* leasemgr.c */
int64_t lm_realtime_s(void);
int lm_lease_cmp(const struct lease *a, const struct lease *b);
ssize_t lm_lfind(const struct lease *arr, size_t n, const struct lease *key);
int lm_larr_insert_move(struct lease **arr, size_t *n, size_t *cap, size_t at, struct lease *l);
void lm_larr_remove(struct lease *arr, size_t *n, size_t at, struct lease *ret);
void lm_larr_free(struct lease *arr, size_t n);
int lm_larr_push(struct lease **arr, size_t *n, size_t *cap, struct lease *l);
void lm_larr_sort(struct lease **arr, size_t *n, size_t *cap);
void lm_report(struct leasemgr *m, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *lm_errtext(const struct store_result *res, char *buf, size_t len);
bool lm_is_own_ip(const struct leasemgr *m, const struct lease_attrs *a);
bool lm_fits(const struct leasemgr *m, const struct lease *l);
bool lm_is_taken(const struct leasemgr *m, const struct lease *l);
void lm_taken_add(struct leasemgr *m, const struct lease *l);
int lm_parse_kv(struct leasemgr *m, const struct store_kv *kv, bool want_value, struct lease *ret);
bool lm_req_done(struct leasemgr *m);
void lm_revoke_cb(void *ctx, const struct store_result *res);

/* leasemgr_watch.c */
bool lm_hidden(const struct leasemgr *m, const struct lease *l);
void lm_refresh_key(struct leasemgr *m, const struct lease *k);
void lm_set_put(struct leasemgr *m, struct lease *l);
void lm_set_del(struct leasemgr *m, const struct lease *k);
void lm_w_apply(struct leasemgr *m, struct lease *nall, size_t n, size_t cap, int64_t revision);
void lm_w_list(struct leasemgr *m);
void lm_relist_timer_cb(struct ev_timer *t, void *ctx);

/* leasemgr_acquire.c */
void lm_schedule_renew(struct leasemgr *m, int64_t after_ms);
void lm_rewrite(struct leasemgr *m, const struct lease *mine);
int lm_list_leases(struct leasemgr *m, store_cb cb);
void lm_acq_begin(struct leasemgr *m);
void lm_acq_timer_cb(struct ev_timer *t, void *ctx);
void lm_own_lost(struct leasemgr *m);
void lm_renew_timer_cb(struct ev_timer *t, void *ctx);

#endif
