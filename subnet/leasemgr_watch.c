/*
 * The lease manager's remote set (see leasemgr.c): the vis/hid arrays, list, resync,
 * watch, relist on a broken watch.
 */
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
#include "subnet/leasemgr_int.h"

/* ---- the remote set ---- */

bool lm_hidden(const struct leasemgr *m, const struct lease *l)
{
	if (m->have_own && lm_lease_cmp(l, &m->own) == 0)
		return true;
	if (m->have_pending && lm_lease_cmp(l, &m->pending) == 0)
		return true;
	return lm_is_own_ip(m, &l->attrs);
}

/*
 * The hiddenness of the key of @k may have changed (own, pending): move it between vis and
 * hid, emitting the difference.
 */
void lm_refresh_key(struct leasemgr *m, const struct lease *k)
{
	ssize_t vi, hi;
	struct lease l;

	if (!m->resynced)
		return;
	vi = lm_lfind(m->vis, m->n_vis, k);
	if (vi >= 0 && lm_hidden(m, &m->vis[vi])) {
		lm_larr_remove(m->vis, &m->n_vis, (size_t)vi, &l);
		if (m->ev.removed)
			m->ev.removed(m->ctx, &l);
		hi = lm_lfind(m->hid, m->n_hid, &l);
		if (hi >= 0 ||
		    lm_larr_insert_move(&m->hid, &m->n_hid, &m->cap_hid, (size_t)(-hi - 1), &l) < 0)
			lease_clear(&l);
		return;
	}
	hi = lm_lfind(m->hid, m->n_hid, k);
	if (hi >= 0 && !lm_hidden(m, &m->hid[hi])) {
		lm_larr_remove(m->hid, &m->n_hid, (size_t)hi, &l);
		vi = lm_lfind(m->vis, m->n_vis, &l);
		if (vi >= 0) {
			lease_clear(&l); /* cannot happen: a key is in one of the two */
			return;
		}
		vi = -vi - 1;
		if (lm_larr_insert_move(&m->vis, &m->n_vis, &m->cap_vis, (size_t)vi, &l) < 0) {
			lease_clear(&l);
			return;
		}
		if (m->ev.added)
			m->ev.added(m->ctx, &m->vis[vi]);
	}
}

/* A lease was put (*l taken over, zeroed): store it in vis or hid, emitting the difference. */
void lm_set_put(struct leasemgr *m, struct lease *l)
{
	ssize_t vi = lm_lfind(m->vis, m->n_vis, l), hi = lm_lfind(m->hid, m->n_hid, l);

	if (lm_hidden(m, l)) {
		if (vi >= 0) {
			struct lease gone;

			lm_larr_remove(m->vis, &m->n_vis, (size_t)vi, &gone);
			if (m->ev.removed)
				m->ev.removed(m->ctx, &gone);
			lease_clear(&gone);
		}
		if (hi >= 0) {
			lease_clear(&m->hid[hi]);
			m->hid[hi] = *l;
			memset(l, 0, sizeof(*l));
		} else if (lm_larr_insert_move(&m->hid, &m->n_hid, &m->cap_hid, (size_t)(-hi - 1),
		                               l) < 0) {
			lease_clear(l);
		}
		return;
	}
	if (hi >= 0)
		lm_larr_remove(m->hid, &m->n_hid, (size_t)hi, NULL);
	if (vi >= 0) {
		struct lease *v = &m->vis[vi];
		bool changed = !lease_attrs_equal(&v->attrs, &l->attrs);

		lease_clear(v);
		*v = *l;
		memset(l, 0, sizeof(*l));
		m->changes += changed;
		if (changed && m->ev.added)
			m->ev.added(m->ctx, v);
		return;
	}
	vi = -vi - 1;
	if (lm_larr_insert_move(&m->vis, &m->n_vis, &m->cap_vis, (size_t)vi, l) < 0) {
		lease_clear(l);
		return;
	}
	if (m->ev.added)
		m->ev.added(m->ctx, &m->vis[vi]);
}

/* The key of @k is gone (deleted, or its value no longer parses). */
void lm_set_del(struct leasemgr *m, const struct lease *k)
{
	ssize_t vi = lm_lfind(m->vis, m->n_vis, k), hi = lm_lfind(m->hid, m->n_hid, k);

	if (hi >= 0)
		lm_larr_remove(m->hid, &m->n_hid, (size_t)hi, NULL);
	if (vi >= 0) {
		struct lease gone;

		lm_larr_remove(m->vis, &m->n_vis, (size_t)vi, &gone);
		if (m->ev.removed)
			m->ev.removed(m->ctx, &gone);
		lease_clear(&gone);
	}
}

/* The lease held for the key of @k, visible or hidden; NULL when none. */
static const struct lease *set_find(const struct leasemgr *m, const struct lease *k)
{
	ssize_t i = lm_lfind(m->vis, m->n_vis, k);

	if (i >= 0)
		return &m->vis[i];
	i = lm_lfind(m->hid, m->n_hid, k);
	return i >= 0 ? &m->hid[i] : NULL;
}

/* ---- the remote set: list, resync, watch ---- */

static void w_retry(struct leasemgr *m)
{
	ev_timer_start(m->relist_timer, (uint64_t)m->w_backoff_ms, 0);
	m->w_backoff_ms *= 2;
	if (m->w_backoff_ms > m->backoff_max_ms)
		m->w_backoff_ms = m->backoff_max_ms;
}

static void handle_event(struct leasemgr *m, const struct store_event *e)
{
	struct lease l;
	int r = lm_parse_kv(m, &e->kv, e->type == STORE_EV_PUT, &l);
	bool lost = false;

	if (r < 0)
		return;
	if (r == 1 && e->type == STORE_EV_PUT) {
		if (m->have_own && lm_lease_cmp(&l, &m->own) == 0) {
			if (lm_is_own_ip(m, &l.attrs)) {
				if (l.mod_revision > m->own.mod_revision)
					m->own.mod_revision = l.mod_revision;
			} else if (l.mod_revision > m->own.mod_revision) {
				lost = true; /* someone else wrote our key */
			}
		}
		lm_set_put(m, &l); /* takes @l over */
	} else {
		lm_set_del(m, &l);
		lost = m->have_own && lm_lease_cmp(&l, &m->own) == 0 &&
		       e->kv.mod_revision > m->own.mod_revision;
	}
	if (lost)
		lm_own_lost(m); /* shows the key's new holder, if any */
	lease_clear(&l);
}

static void w_event_cb(void *ctx, int err, const struct store_event *evs, size_t n,
                       int64_t revision)
{
	struct leasemgr *m = ctx;

	(void)revision;
	if (err) {
		log_debug("leasemgr: watch of %s ended (%s), listing again", m->subnets_prefix,
		          strerror(-err));
		m->dead_watch = m->watch;
		m->watch = NULL;
		ev_timer_start(m->relist_timer, 0, 0);
		return;
	}
	for (size_t i = 0; i < n; i++)
		handle_event(m, &evs[i]);
}

static void wl_drop(struct leasemgr *m)
{
	lm_larr_free(m->wl, m->n_wl);
	m->wl = NULL;
	m->n_wl = m->cap_wl = 0;
	m->wl_oom = false;
}

/* One page of a relisting: its valid leases. */
static void w_page(struct leasemgr *m, const struct store_result *res)
{
	if (m->w_fresh || res->first_page) {
		m->w_fresh = false;
		wl_drop(m);
	}
	for (size_t i = 0; i < res->n_kvs && !m->wl_oom; i++) {
		struct lease l;

		if (lm_parse_kv(m, &res->kvs[i], true, &l) == 1 &&
		    lm_larr_push(&m->wl, &m->n_wl, &m->cap_wl, &l) < 0)
			m->wl_oom = true;
		lease_clear(&l);
	}
}

static void w_list_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	struct lease *nall;
	size_t n, cap;
	char eb[128];

	if (!res->err && res->more) {
		if (!m->zombie)
			w_page(m, res);
		return;
	}
	if (lm_req_done(m))
		return;
	if (!res->err)
		w_page(m, res);
	if (res->err || m->wl_oom) {
		wl_drop(m);
		if (res->err)
			lm_report(m, res->err,
			          "listing leases under %s: %s; retrying in %" PRId64 " ms",
			          m->subnets_prefix, lm_errtext(res, eb, sizeof(eb)),
			          m->w_backoff_ms);
		else
			lm_report(m, -ENOMEM,
			          "listing leases under %s: out of memory; retrying in %" PRId64
			          " ms",
			          m->subnets_prefix, m->w_backoff_ms);
		w_retry(m);
		return;
	}
	nall = m->wl;
	n = m->n_wl;
	cap = m->cap_wl;
	m->wl = NULL;
	m->n_wl = m->cap_wl = 0;
	lm_larr_sort(&nall, &n, &cap);
	lm_w_apply(m, nall, n, cap, res->revision);
}

/*
 * Take @nall (sorted, owned) as the set of every lease at @revision, and watch from there.
 * The hidden few move to hid; the rest, in place, becomes vis (no copy).
 */
void lm_w_apply(struct leasemgr *m, struct lease *nall, size_t n, size_t cap, int64_t revision)
{
	struct lease *nhid = NULL;
	size_t n_hid = 0, cap_hid = 0, w = 0;

	for (size_t i = 0; i < n; i++) {
		if (lm_hidden(m, &nall[i])) {
			if (lm_larr_push(&nhid, &n_hid, &cap_hid, &nall[i]) < 0)
				lease_clear(&nall[i]);
			continue;
		}
		if (w != i)
			nall[w] = nall[i];
		w++;
	}
	n = w;
	if (n == 0) {
		free(nall);
		nall = NULL;
		cap = 0;
	} else if (cap > n) {
		/* exactly sized: at 10,000 leases the slack is most of a MB */
		struct lease *na = realloc(nall, n * sizeof(*na));

		if (na) {
			nall = na;
			cap = n;
		}
	}
	lm_larr_free(m->hid, m->n_hid);
	m->hid = nhid;
	m->n_hid = n_hid;
	m->cap_hid = cap_hid;
	if (!m->resynced) {
		lm_larr_free(m->vis, m->n_vis);
		m->vis = nall;
		m->n_vis = n;
		m->cap_vis = cap;
		m->resynced = true;
		if (m->ev.resync)
			m->ev.resync(m->ctx, m->vis, m->n_vis);
	} else {
		struct lease *old = m->vis;
		size_t n_old = m->n_vis, i = 0, j = 0;

		m->vis = nall;
		m->n_vis = n;
		m->cap_vis = cap;
		/* Every key in either set: report the difference. */
		while (i < n_old || j < n) {
			int c = i == n_old ? 1 : j == n ? -1 : lm_lease_cmp(&old[i], &nall[j]);

			if (c < 0) {
				if (m->ev.removed)
					m->ev.removed(m->ctx, &old[i]);
				i++;
			} else if (c > 0) {
				if (m->ev.added)
					m->ev.added(m->ctx, &nall[j]);
				j++;
			} else {
				if (!lease_attrs_equal(&old[i].attrs, &nall[j].attrs)) {
					m->changes++;
					if (m->ev.added)
						m->ev.added(m->ctx, &nall[j]);
				}
				i++;
				j++;
			}
		}
		lm_larr_free(old, n_old);
		/* The own lease vanished, or another node took the key, while the watch was down. */
		if (m->have_own) {
			const struct lease *at = set_find(m, &m->own);

			if (!at ? revision > m->own.mod_revision
			        : !lm_is_own_ip(m, &at->attrs) &&
			                    at->mod_revision > m->own.mod_revision)
				lm_own_lost(m);
			else if (!at && m->own.store_lease_id)
				/* Gone at a revision below ours: the store went backwards (wiped or
				 * restored). A keepalive now tells whether the lease still exists. */
				lm_schedule_renew(m, 0);
		}
	}
	m->w_backoff_ms = m->acq_retry_ms;
	m->watch = m->store->ops->watch(m->store, m->subnets_prefix, revision + 1, w_event_cb, m);
	if (!m->watch) {
		lm_report(m, -errno, "watching %s: %s; retrying in %" PRId64 " ms",
		          m->subnets_prefix, strerror(errno), m->w_backoff_ms);
		w_retry(m);
	}
}

void lm_w_list(struct leasemgr *m)
{
	int r;

	m->w_fresh = true;
	r = lm_list_leases(m, w_list_cb);

	if (r < 0) {
		lm_report(m, r, "listing leases under %s: %s; retrying in %" PRId64 " ms",
		          m->subnets_prefix, strerror(-r), m->w_backoff_ms);
		w_retry(m);
		return;
	}
	m->outstanding++;
}

void lm_relist_timer_cb(struct ev_timer *t, void *ctx)
{
	struct leasemgr *m = ctx;

	(void)t;
	if (m->dead_watch) {
		m->store->ops->watch_free(m->dead_watch);
		m->dead_watch = NULL;
	}
	if (!m->watch)
		lm_w_list(m);
}
