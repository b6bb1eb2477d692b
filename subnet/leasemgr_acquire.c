/*
 * The lease manager's own lease (see leasemgr.c): list, choose per docs/compat.md §3,
 * create or rewrite, renew, and give back a key lost in a race.
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

/* ---- acquisition ---- */

static void seed_drop(struct leasemgr *m)
{
	lm_larr_free(m->seed, m->n_seed);
	m->seed = NULL;
	m->n_seed = m->cap_seed = 0;
	m->have_seed = false;
}

static void acq_retry(struct leasemgr *m)
{
	ev_timer_start(m->acq_timer, (uint64_t)m->acq_backoff_ms, 0);
	m->acq_backoff_ms *= 2;
	if (m->acq_backoff_ms > m->backoff_max_ms)
		m->acq_backoff_ms = m->backoff_max_ms;
}

static void clear_pending(struct leasemgr *m)
{
	struct lease k;

	if (!m->have_pending)
		return;
	k = m->pending;
	memset(&k.attrs, 0, sizeof(k.attrs));
	m->have_pending = false;
	lease_clear(&m->pending);
	m->pending_key[0] = '\0';
	lm_refresh_key(m, &k);
}

static void set_pending(struct leasemgr *m, const struct lease *l)
{
	clear_pending(m);
	lease_copy(&m->pending, l);
	m->have_pending = true;
	lease_key_format(l, m->pending_key);
	lm_refresh_key(m, l);
}

void lm_schedule_renew(struct leasemgr *m, int64_t after_ms)
{
	ev_timer_start(m->renew_timer, (uint64_t)after_ms, 0);
}

static int64_t renew_interval_ms(const struct leasemgr *m)
{
	int64_t units = m->ttl_s - m->margin_s;

	if (units <= 0)
		units = m->ttl_s / 2 > 0 ? m->ttl_s / 2 : 1;
	return units * m->unit_ms;
}

static void acquired(struct leasemgr *m, int64_t store_lease, int64_t revision)
{
	struct lease k;

	lease_clear(&m->own);
	lease_copy(&m->own, &m->pending);
	lease_attrs_clear(&m->own.attrs);
	lease_attrs_copy(&m->own.attrs, &m->own_attrs);
	m->own.store_lease_id = store_lease;
	m->own.mod_revision = revision;
	m->own.expires_at = store_lease ? lm_realtime_s() + m->ttl_s * m->unit_ms / 1000 : 0;
	memcpy(m->own_key, m->pending_key, sizeof(m->own_key));
	m->have_own = true;
	k = m->pending;
	m->have_pending = false;
	lease_clear(&m->pending);
	m->pending_key[0] = '\0';
	ipam_taken_free(m->taken4);
	ipam_taken_free(m->taken6);
	m->taken4 = m->taken6 = NULL;
	m->races = 0;
	m->acq_backoff_ms = m->acq_retry_ms;
	if (store_lease)
		lm_schedule_renew(m, renew_interval_ms(m));
	if (m->ev.own_acquired)
		m->ev.own_acquired(m->ctx, &m->own);
	memset(&k.attrs, 0, sizeof(k.attrs));
	lm_refresh_key(m, &k);
	if (!m->watching_started) {
		m->watching_started = true;
		if (m->have_seed) {
			/* The remote set from the acquisition listing; the watch from its revision
			 * + 1 brings everything since, this acquisition included. */
			struct lease *seed = m->seed;
			size_t n = m->n_seed, cap = m->cap_seed;
			int64_t rev = m->seed_rev;

			m->seed = NULL;
			m->n_seed = m->cap_seed = 0;
			m->have_seed = false;
			lm_w_apply(m, seed, n, cap, rev);
		} else {
			lm_w_list(m);
		}
	}
}

static void create_cb(void *ctx, const struct store_result *res);
static void rewrite_cb(void *ctx, const struct store_result *res);

static const char *full_key(const struct leasemgr *m, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", m->subnets_prefix, suffix);
	return buf;
}

static void try_create(struct leasemgr *m, const struct lease *cand)
{
	char key[PATH_MAX], guard[PATH_MAX], v4key[LEASE_KEY_MAX];
	struct lease v4 = { .has_ipv4 = true, .subnet = cand->subnet };
	struct store *st = m->store;
	int r;

	set_pending(m, cand);
	full_key(m, m->pending_key, key, sizeof(key));
	if (cand->has_ipv4 && st->ops->create_guarded) {
		/* Atomic for the IPv4 half: fails when any key holds this IPv4 subnet, whatever
		 * its IPv6 part (a plain create-if-absent only sees this exact key). */
		full_key(m, lease_key_format(&v4, v4key), guard, sizeof(guard));
		r = st->ops->create_guarded(st, key, guard, m->own_value, strlen(m->own_value),
		                            m->ttl_s, create_cb, m);
	} else {
		r = st->ops->create(st, key, m->own_value, strlen(m->own_value), m->ttl_s,
		                    create_cb, m);
	}
	if (r < 0) {
		clear_pending(m);
		lm_report(m, r, "creating lease %s: %s; retrying in %" PRId64 " ms", m->pending_key,
		          strerror(-r), m->acq_backoff_ms);
		acq_retry(m);
		return;
	}
	m->outstanding++;
}

static void pick_and_create(struct leasemgr *m)
{
	struct lease cand = { 0 };
	const struct subnet_config *c = &m->cfg;
	int r;

	if (c->enable_ipv4) {
		r = ipam_pick(&c->subnet_min, &c->subnet_max, c->subnet_len, m->taken4, m->rnd,
		              m->rnd_ctx, &cand.subnet);
		if (r < 0)
			goto fail4;
		cand.has_ipv4 = true;
	}
	if (c->enable_ipv6) {
		r = ipam_pick(&c->ipv6_subnet_min, &c->ipv6_subnet_max, c->ipv6_subnet_len,
		              m->taken6, m->rnd, m->rnd_ctx, &cand.ipv6_subnet);
		if (r < 0)
			goto fail6;
		cand.has_ipv6 = true;
	}
	try_create(m, &cand);
	return;
fail4:
fail6:;
	{
		bool v6 = c->enable_ipv6 && (!c->enable_ipv4 || cand.has_ipv4);
		const struct ipam_prefix *net = v6 ? &c->ipv6_network : &c->network;
		const struct ipam_prefix *min = v6 ? &c->ipv6_subnet_min : &c->subnet_min;
		const struct ipam_prefix *max = v6 ? &c->ipv6_subnet_max : &c->subnet_max;
		char a[IPAM_PREFIX_STRLEN], b[IPAM_PREFIX_STRLEN], d[IPAM_PREFIX_STRLEN];
		uint64_t count =
			ipam_prefix_count(min, max, v6 ? c->ipv6_subnet_len : c->subnet_len);

		if (r == -ENOSPC)
			lm_report(m, -ENOSPC,
			          "out of subnets: all %" PRIu64
			          " subnets of %s between %s and %s are taken; retrying in %" PRId64
			          " ms",
			          count, ipam_prefix_format(net, a), ipam_prefix_format(min, b),
			          ipam_prefix_format(max, d), m->acq_backoff_ms);
		else
			lm_report(m, r, "choosing a subnet of %s: %s; retrying in %" PRId64 " ms",
			          ipam_prefix_format(net, a), strerror(-r), m->acq_backoff_ms);
		acq_retry(m);
	}
}

/* The pending key is someone else's (or given back): pick again among the rest. */
static void lost_race(struct leasemgr *m)
{
	lm_taken_add(m, &m->pending);
	clear_pending(m);
	if (++m->races >= RACES_BEFORE_RELIST) {
		m->races = 0;
		lm_acq_begin(m);
	} else {
		pick_and_create(m);
	}
}

static void giveback_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	char eb[128];

	if (lm_req_done(m))
		return;
	if (res->err && res->err != -ENOENT) { /* -ENOENT: the lease is gone already */
		lm_report(m, res->err, "giving lease %s back: %s; retrying in %" PRId64 " ms",
		          m->pending_key, lm_errtext(res, eb, sizeof(eb)), m->acq_backoff_ms);
		acq_retry(m); /* acq_timer_cb gives it back first */
		return;
	}
	m->giveback = false;
	lost_race(m);
}

/* Give the pending key back (revoking its store lease deletes it), then pick again. */
static void giveback(struct leasemgr *m)
{
	char key[PATH_MAX];
	int r;

	m->giveback = true;
	if (m->race_lease)
		r = m->store->ops->revoke(m->store, m->race_lease, giveback_cb, m);
	else
		r = m->store->ops->del(m->store, full_key(m, m->pending_key, key, sizeof(key)),
		                       m->race_rev, giveback_cb, m);
	if (r < 0) {
		lm_report(m, r, "giving lease %s back: %s; retrying in %" PRId64 " ms",
		          m->pending_key, strerror(-r), m->acq_backoff_ms);
		acq_retry(m);
		return;
	}
	m->outstanding++;
}

static void race_page(struct leasemgr *m, const struct store_result *res)
{
	if (m->race_fresh || res->first_page) {
		m->race_fresh = false;
		lease_race_init(&m->race, m->subnets_prefix, m->pending_key,
		                &m->pending.ipv6_subnet);
	}
	lease_race_page(&m->race, res->kvs, res->n_kvs);
}

static void race_list_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	char eb[128];

	if (!res->err && res->more) {
		if (!m->zombie)
			race_page(m, res);
		return;
	}
	if (lm_req_done(m))
		return;
	if (res->err) {
		lm_report(m, res->err, "checking lease %s against the others: %s; giving it back",
		          m->pending_key, lm_errtext(res, eb, sizeof(eb)));
		giveback(m);
		return;
	}
	race_page(m, res);
	if (lease_race_won(&m->race)) {
		acquired(m, m->race_lease, m->race_rev);
		return;
	}
	log_debug("leasemgr: %s lost its IPv6 subnet to %s (created first); giving it back",
	          m->pending_key, m->race.older[0] ? m->race.older : "nobody (key gone)");
	giveback(m);
}

/*
 * A create holding an IPv6 subnet succeeded. Its IPv6 half was not guarded (lease_race.h:
 * the IPv6 part is the key's suffix, no etcd range covers it), so another node may hold
 * the same IPv6 subnet under another IPv4 subnet. Check that with one listing BEFORE the
 * lease counts as acquired: until then nothing has written the subnet file or programmed
 * a route, so losing costs one more create, while two nodes with one IPv6 subnet would
 * break the network.
 */
static void race_check(struct leasemgr *m, int64_t store_lease, int64_t revision)
{
	int r;

	m->race_lease = store_lease;
	m->race_rev = revision;
	m->race_fresh = true;
	r = lm_list_leases(m, race_list_cb);
	if (r < 0) {
		lm_report(m, r, "checking lease %s against the others: %s; giving it back",
		          m->pending_key, strerror(-r));
		giveback(m);
		return;
	}
	m->outstanding++;
}

static void create_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	char eb[128];

	if (lm_req_done(m))
		return;
	if (res->err) {
		lm_report(m, res->err, "creating lease %s: %s; retrying in %" PRId64 " ms",
		          m->pending_key, lm_errtext(res, eb, sizeof(eb)), m->acq_backoff_ms);
		clear_pending(m);
		acq_retry(m);
		return;
	}
	if (!res->succeeded) {
		lost_race(m); /* someone holds it now */
		return;
	}
	if (m->pending.has_ipv6) {
		race_check(m, res->lease_id, res->revision);
		return;
	}
	acquired(m, res->lease_id, res->revision);
}

static void rewrite_cas(struct leasemgr *m, int64_t lease_id)
{
	char key[PATH_MAX];
	int r = m->store->ops->cas(m->store, full_key(m, m->pending_key, key, sizeof(key)),
	                           m->own_value, strlen(m->own_value), m->pending_mod_rev, lease_id,
	                           rewrite_cb, m);

	if (r < 0) {
		lm_report(m, r, "rewriting lease %s: %s; retrying in %" PRId64 " ms",
		          m->pending_key, strerror(-r), m->acq_backoff_ms);
		clear_pending(m);
		acq_retry(m);
		return;
	}
	m->pending.store_lease_id = lease_id;
	m->outstanding++;
}

static void grant_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	char eb[128];

	if (lm_req_done(m))
		return;
	if (res->err) {
		lm_report(m, res->err,
		          "granting a lease of %" PRId64 " s: %s; retrying in %" PRId64 " ms",
		          m->ttl_s, lm_errtext(res, eb, sizeof(eb)), m->acq_backoff_ms);
		clear_pending(m);
		acq_retry(m);
		return;
	}
	rewrite_cas(m, res->lease_id);
}

static void rewrite_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	int64_t old = m->old_store_lease;
	char eb[128];

	if (lm_req_done(m))
		return;
	if (res->err) {
		lm_report(m, res->err, "rewriting lease %s: %s; retrying in %" PRId64 " ms",
		          m->pending_key, lm_errtext(res, eb, sizeof(eb)), m->acq_backoff_ms);
		clear_pending(m);
		acq_retry(m);
		return;
	}
	if (!res->succeeded) {
		/* Changed meanwhile (expired, rewritten): look again. */
		if (m->pending.store_lease_id &&
		    m->store->ops->revoke(m->store, m->pending.store_lease_id, lm_revoke_cb, m) ==
		            0)
			m->outstanding++;
		clear_pending(m);
		lm_acq_begin(m);
		return;
	}
	acquired(m, m->pending.store_lease_id, res->revision);
	if (old && old != m->own.store_lease_id &&
	    m->store->ops->revoke(m->store, old, lm_revoke_cb, m) == 0)
		m->outstanding++;
}

/* Step 1 of docs/compat.md §3: re-use the lease with our PublicIP. */
void lm_rewrite(struct leasemgr *m, const struct lease *mine)
{
	set_pending(m, mine);
	m->pending_mod_rev = mine->mod_revision;
	m->old_store_lease = mine->store_lease_id;
	if (mine->store_lease_id == 0) {
		/* A reservation stays a reservation (flannel turns it into a lease). */
		if (lease_attrs_equal(&mine->attrs, &m->own_attrs)) {
			acquired(m, 0, mine->mod_revision);
			return;
		}
		rewrite_cas(m, 0);
		return;
	}
	if (m->store->ops->grant(m->store, m->ttl_s, grant_cb, m) < 0) {
		clear_pending(m);
		lm_report(m, -EIO,
		          "granting a lease: cannot queue the request; retrying in %" PRId64 " ms",
		          m->acq_backoff_ms);
		acq_retry(m);
		return;
	}
	m->outstanding++;
}

static void del_cb(void *ctx, const struct store_result *res)
{
	(void)res;
	lm_req_done(ctx);
}

static bool try_preferred(struct leasemgr *m, const struct lease *cand)
{
	if (!lm_fits(m, cand) || lm_is_taken(m, cand))
		return false;
	try_create(m, cand);
	return true;
}

/* Forget an acquisition listing in progress. */
static void acq_list_drop(struct leasemgr *m)
{
	seed_drop(m);
	lease_clear(&m->mine);
	m->have_mine = false;
}

/* One page of the acquisition listing: taken subnets, the lease with our PublicIP, the seed. */
static void acq_page(struct leasemgr *m, const struct store_result *res)
{
	if (m->acq_fresh || res->first_page) {
		m->acq_fresh = false;
		acq_list_drop(m);
		m->acq_keep = !m->watching_started;
		ipam_taken_free(m->taken4);
		ipam_taken_free(m->taken6);
		m->taken4 = ipam_taken_new();
		m->taken6 = ipam_taken_new();
	}
	if (!m->taken4 || !m->taken6)
		return; /* out of memory: reported at the end */
	for (size_t i = 0; i < res->n_kvs; i++) {
		struct lease l;
		int r = lm_parse_kv(m, &res->kvs[i], true, &l);

		if (r < 0)
			continue;
		lm_taken_add(m, &l); /* a key with a bad value still holds its subnet */
		if (r == 1 && lm_is_own_ip(m, &l.attrs)) {
			if (!m->have_mine && lm_fits(m, &l)) {
				lease_copy(&m->mine, &l);
				m->have_mine = true;
			} else if (!lm_fits(m, &l) && l.store_lease_id != 0 &&
			           m->store->ops->del(m->store, res->kvs[i].key, l.mod_revision,
			                              del_cb, m) == 0) {
				m->outstanding++;
			}
		}
		/* Before the first acquisition: keep the listing as the remote set's seed. */
		if (m->acq_keep && r == 1 &&
		    lm_larr_push(&m->seed, &m->n_seed, &m->cap_seed, &l) < 0) {
			m->acq_keep = false;
			seed_drop(m);
		}
		lease_clear(&l);
	}
}

static void acq_list_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	char eb[128];

	if (!res->err && res->more) {
		if (!m->zombie)
			acq_page(m, res);
		return;
	}
	if (lm_req_done(m))
		return;
	if (!res->err)
		acq_page(m, res);
	if (res->err || !m->taken4 || !m->taken6) {
		acq_list_drop(m);
		if (res->err)
			lm_report(m, res->err,
			          "listing leases under %s: %s; retrying in %" PRId64 " ms",
			          m->subnets_prefix, lm_errtext(res, eb, sizeof(eb)),
			          m->acq_backoff_ms);
		else
			lm_report(m, -ENOMEM, "out of memory; retrying in %" PRId64 " ms",
			          m->acq_backoff_ms);
		acq_retry(m);
		return;
	}
	if (m->acq_keep) {
		lm_larr_sort(&m->seed, &m->n_seed, &m->cap_seed);
		m->seed_rev = res->revision;
		m->have_seed = true;
	} else {
		seed_drop(m);
	}
	if (m->have_mine) {
		struct lease mine = m->mine;

		memset(&m->mine, 0, sizeof(m->mine));
		m->have_mine = false;
		lm_rewrite(m, &mine);
		lease_clear(&mine);
		return;
	}
	if (m->have_prev && try_preferred(m, &m->prev))
		return;
	if (m->subnet_file) {
		struct subnetfile sf;
		char err[256];

		if (subnetfile_read(m->subnet_file, &sf, err, sizeof(err)) == 0) {
			struct lease cand = { 0 };

			if (sf.has_subnet) {
				cand.has_ipv4 = true;
				cand.subnet = ipam_prefix_network(&sf.subnet);
			}
			if (sf.has_ipv6_subnet) {
				cand.has_ipv6 = true;
				cand.ipv6_subnet = ipam_prefix_network(&sf.ipv6_subnet);
			}
			if ((cand.has_ipv4 || cand.has_ipv6) && try_preferred(m, &cand))
				return;
		}
	}
	pick_and_create(m);
}

/* Lists the leases for @cb, in pages when the store can. */
int lm_list_leases(struct leasemgr *m, store_cb cb)
{
	struct store *st = m->store;

	if (st->ops->list_pages)
		return st->ops->list_pages(st, m->subnets_prefix, cb, m);
	return st->ops->list(st, m->subnets_prefix, cb, m);
}

void lm_acq_begin(struct leasemgr *m)
{
	int r;

	m->acq_fresh = true;
	r = lm_list_leases(m, acq_list_cb);

	if (r < 0) {
		lm_report(m, r, "listing leases under %s: %s; retrying in %" PRId64 " ms",
		          m->subnets_prefix, strerror(-r), m->acq_backoff_ms);
		acq_retry(m);
		return;
	}
	m->outstanding++;
}

void lm_acq_timer_cb(struct ev_timer *t, void *ctx)
{
	struct leasemgr *m = ctx;

	(void)t;
	if (m->giveback)
		giveback(m);
	else
		lm_acq_begin(m);
}

void lm_own_lost(struct leasemgr *m)
{
	struct lease old;

	if (!m->have_own)
		return;
	old = m->own;
	m->have_own = false;
	memset(&m->own, 0, sizeof(m->own));
	m->own_key[0] = '\0';
	ev_timer_stop(m->renew_timer);
	lease_clear(&m->prev);
	lease_copy(&m->prev, &old);
	m->have_prev = true;
	if (m->ev.own_lost)
		m->ev.own_lost(m->ctx, &old);
	lm_refresh_key(m, &old);
	lease_clear(&old);
	m->acq_backoff_ms = m->acq_retry_ms;
	lm_acq_begin(m);
}

static void keepalive_cb(void *ctx, const struct store_result *res)
{
	struct leasemgr *m = ctx;
	char eb[128], sb[2 * IPAM_PREFIX_STRLEN];

	if (lm_req_done(m))
		return;
	if (!m->have_own || m->own.store_lease_id != m->renew_lease)
		return; /* about a lease we no longer hold */
	if (res->err) {
		lm_report(m, res->err, "renewing lease %s: %s; retrying in %" PRId64 " ms",
		          leasemgr_subnets_str(&m->own, sb), lm_errtext(res, eb, sizeof(eb)),
		          m->retry_ms);
		lm_schedule_renew(m, m->retry_ms);
		return;
	}
	if (res->ttl <= 0) {
		lm_own_lost(m);
		return;
	}
	m->own.expires_at = lm_realtime_s() + res->ttl * m->unit_ms / 1000;
	m->renewals++;
	lm_schedule_renew(m, renew_interval_ms(m));
}

void lm_renew_timer_cb(struct ev_timer *t, void *ctx)
{
	struct leasemgr *m = ctx;
	int r;

	(void)t;
	if (!m->have_own || !m->own.store_lease_id)
		return;
	m->renew_lease = m->own.store_lease_id;
	r = m->store->ops->keepalive(m->store, m->renew_lease, keepalive_cb, m);
	if (r < 0) {
		lm_schedule_renew(m, m->retry_ms);
		return;
	}
	m->outstanding++;
}
