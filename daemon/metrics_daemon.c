#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/backend.h"
#include "backends/udp.h"
#include "daemon/metrics_daemon.h"
#include "lib/ev.h"
#include "lib/metrics.h"
#include "lib/nl.h"
#include "subnet/leasemgr.h"
#include "subnet/store.h"
#include "subnet/store_stats.h"

#define M_READY "twill_ready"

enum { K_ADDED, K_CHANGED, K_REMOVED, K_RESYNC, K_OWN_ACQUIRED, K_OWN_LOST, K_SKIPPED };

static const char *const event_kinds[] = {
	[K_ADDED] = "added",     [K_CHANGED] = "changed",           [K_REMOVED] = "removed",
	[K_RESYNC] = "resync",   [K_OWN_ACQUIRED] = "own_acquired", [K_OWN_LOST] = "own_lost",
	[K_SKIPPED] = "skipped",
};

#define N_KINDS (sizeof(event_kinds) / sizeof(event_kinds[0]))

struct twilld_metrics {
	struct metrics *reg;
	struct twilld_metrics_src src;
	struct metric *ready, *held, *expiry, *remote, *events, *renewals, *etcd_req, *etcd_err,
		*etcd_ep, *nl_ops, *nl_err, *repairs, *udp_pkts, *udp_bytes, *udp_drop;
	struct metric_series *kind[N_KINDS]; /* twill_lease_events_total by event_kinds[] */
	struct metric *v6_objects, *v6_leases, *v6_bad; /* dual-stack: the IPv6 half */
	uint64_t last_v6_bad;
	/* counters of other modules as last seen, to add only what is new */
	uint64_t last_renewals, last_skipped, last_changes;
	uint64_t last_req[STORE_STAT_OP_COUNT], last_err[STORE_STAT_ERR_COUNT];
	uint64_t last_nl_msgs, last_nl_errs, last_be_repairs;
	uint64_t last_udp_tx, last_udp_rx, last_udp_txb, last_udp_rxb;
	uint64_t last_udp_drop[UDP_VERDICT_MAX];
	char endpoint[512]; /* the endpoint last shown with value 1 */
};

/* Add to @m{@v1} what @cur gained since *@last (a counter that went back counts from 0). */
static void add_delta(struct metric *m, const char *v1, uint64_t cur, uint64_t *last)
{
	uint64_t d = cur >= *last ? cur - *last : cur;

	metric_add(m, v1, NULL, d);
	*last = cur;
}

static int64_t realtime_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

static struct leasemgr *src_lm(const struct twilld_metrics *tm)
{
	return tm->src.lm ? *tm->src.lm : NULL;
}

static struct store *src_store(const struct twilld_metrics *tm)
{
	return tm->src.store ? *tm->src.store : NULL;
}

static void scrape_lease(struct twilld_metrics *tm)
{
	struct leasemgr *lm = src_lm(tm);
	const struct lease *own = lm ? leasemgr_own(lm) : NULL;
	size_t n = 0;
	double left = 0;
	uint64_t skipped;

	metric_set(tm->ready, NULL, NULL,
	           tm->src.started && *tm->src.started && twilld_metrics_ready(tm, NULL, 0) ? 1
	                                                                                    : 0);
	metric_set(tm->held, NULL, NULL, own ? 1 : 0);
	if (own && own->expires_at == 0)
		left = INFINITY; /* a reservation: never expires */
	else if (own && own->expires_at > realtime_s())
		left = (double)(own->expires_at - realtime_s());
	metric_set(tm->expiry, NULL, NULL, left);
	if (lm)
		leasemgr_remote(lm, &n);
	metric_set(tm->remote, NULL, NULL, (double)n);
	add_delta(tm->renewals, NULL, leasemgr_renewals(lm), &tm->last_renewals);
	skipped = leasemgr_skipped(lm);
	metric_series_add(tm->kind[K_SKIPPED],
	                  skipped >= tm->last_skipped ? skipped - tm->last_skipped : skipped);
	tm->last_skipped = skipped;
}

static void scrape_etcd(struct twilld_metrics *tm)
{
	struct store *s = src_store(tm);
	struct store_stats st;
	const char *ep;
	unsigned i;

	if (!s)
		return;
	ep = s->ops->endpoint ? s->ops->endpoint(s) : NULL;
	if (ep && strcmp(ep, tm->endpoint) != 0) {
		if (tm->endpoint[0])
			metric_set(tm->etcd_ep, tm->endpoint, NULL, 0);
		snprintf(tm->endpoint, sizeof(tm->endpoint), "%s", ep);
	}
	if (tm->endpoint[0])
		metric_set(tm->etcd_ep, tm->endpoint, NULL, 1);
	if (store_etcd_stats(s, &st) < 0)
		return;
	for (i = 0; i < STORE_STAT_OP_COUNT; i++)
		if (st.requests[i])
			add_delta(tm->etcd_req, store_stat_op_name(i), st.requests[i],
			          &tm->last_req[i]);
	for (i = 0; i < STORE_STAT_ERR_COUNT; i++)
		if (st.errors[i])
			add_delta(tm->etcd_err, store_stat_err_name(i), st.errors[i],
			          &tm->last_err[i]);
}

static void scrape_kernel(struct twilld_metrics *tm)
{
	const struct backend_ops *ops = tm->src.be_ops ? *tm->src.be_ops : NULL;
	struct backend *be = tm->src.be ? *tm->src.be : NULL;
	struct nl_stats ns;

	nl_stats_get(&ns);
	add_delta(tm->nl_ops, NULL, ns.messages, &tm->last_nl_msgs);
	add_delta(tm->nl_err, NULL, ns.errors, &tm->last_nl_errs);
	if (ops && be && ops->stats) {
		struct be_stats bs = { 0 };

		ops->stats(be, &bs);
		add_delta(tm->repairs, NULL, bs.repairs, &tm->last_be_repairs);
		metric_set(tm->v6_objects, NULL, NULL, (double)bs.v6_objects);
		metric_set(tm->v6_leases, NULL, NULL, (double)bs.v6_leases);
		add_delta(tm->v6_bad, NULL, bs.v6_bad_leases, &tm->last_v6_bad);
	}
}

static void scrape_udp(struct twilld_metrics *tm)
{
	const struct backend_ops *ops = tm->src.be_ops ? *tm->src.be_ops : NULL;
	struct backend *be = tm->src.be ? *tm->src.be : NULL;
	struct udp_stats us;
	unsigned v;

	if (ops != &udp_backend_ops || !be)
		return;
	memset(&us, 0, sizeof(us));
	udp_backend_stats(be, &us);
	add_delta(tm->udp_pkts, "tx", us.tx_packets, &tm->last_udp_tx);
	add_delta(tm->udp_pkts, "rx", us.rx_packets, &tm->last_udp_rx);
	add_delta(tm->udp_bytes, "tx", us.tx_bytes, &tm->last_udp_txb);
	add_delta(tm->udp_bytes, "rx", us.rx_bytes, &tm->last_udp_rxb);
	for (v = 1; v < UDP_VERDICT_MAX; v++) {
		uint64_t n = us.drop_tun[v] + us.drop_wire[v];

		if (n)
			add_delta(tm->udp_drop, udp_verdict_name(v), n, &tm->last_udp_drop[v]);
	}
}

static void scrape(void *ctx, struct metrics *reg)
{
	struct twilld_metrics *tm = ctx;

	(void)reg;
	scrape_lease(tm);
	scrape_etcd(tm);
	scrape_kernel(tm);
	scrape_udp(tm);
}

struct twilld_metrics *twilld_metrics_new(struct metrics *reg, const struct twilld_metrics_src *src)
{
	struct twilld_metrics *tm;
	size_t i;
	int r;

	if (!reg || !src) {
		errno = EINVAL;
		return NULL;
	}
	r = metrics_register_twill(reg);
	if (r < 0) {
		errno = -r;
		return NULL;
	}
	tm = calloc(1, sizeof(*tm));
	if (!tm) {
		errno = ENOMEM;
		return NULL;
	}
	tm->reg = reg;
	tm->src = *src;
	tm->ready = metrics_register(
		reg, METRIC_GAUGE, M_READY,
		"1 when /readyz answers 200: backend running with a confirmed lease, etcd reachable.",
		NULL, NULL);
	tm->v6_objects = metrics_register(
		reg, METRIC_GAUGE, "twill_ipv6_kernel_objects",
		"IPv6 kernel objects the backend keeps for remote leases (routes, neighbours, fdb entries).",
		NULL, NULL);
	tm->v6_leases =
		metrics_register(reg, METRIC_GAUGE, "twill_ipv6_remote_leases",
	                         "Remote leases whose IPv6 half is programmed.", NULL, NULL);
	tm->v6_bad = metrics_register(
		reg, METRIC_COUNTER, "twill_ipv6_bad_leases_total",
		"Remote leases whose IPv6 half was unusable (IPv4 half programmed, warned once).",
		NULL, NULL);
	if (!tm->v6_objects || !tm->v6_leases || !tm->v6_bad ||
	    !metric_series(tm->v6_objects, NULL, NULL) ||
	    !metric_series(tm->v6_leases, NULL, NULL) || !metric_series(tm->v6_bad, NULL, NULL))
		goto fail;
	tm->held = metrics_find(reg, TWILL_M_LEASE_HELD);
	tm->expiry = metrics_find(reg, TWILL_M_LEASE_EXPIRY);
	tm->remote = metrics_find(reg, TWILL_M_REMOTE_LEASES);
	tm->events = metrics_find(reg, TWILL_M_LEASE_EVENTS);
	tm->renewals = metrics_find(reg, TWILL_M_LEASE_RENEWALS);
	tm->etcd_req = metrics_find(reg, TWILL_M_ETCD_REQUESTS);
	tm->etcd_err = metrics_find(reg, TWILL_M_ETCD_ERRORS);
	tm->etcd_ep = metrics_find(reg, TWILL_M_ETCD_ENDPOINT);
	tm->nl_ops = metrics_find(reg, TWILL_M_NETLINK_OPS);
	tm->nl_err = metrics_find(reg, TWILL_M_NETLINK_ERRORS);
	tm->repairs = metrics_find(reg, TWILL_M_KERNEL_REPAIRS);
	tm->udp_pkts = metrics_find(reg, TWILL_M_UDP_PACKETS);
	tm->udp_bytes = metrics_find(reg, TWILL_M_UDP_BYTES);
	tm->udp_drop = metrics_find(reg, TWILL_M_UDP_DROPPED);
	if (!tm->ready || !tm->held || !tm->expiry || !tm->remote || !tm->events || !tm->renewals ||
	    !tm->etcd_req || !tm->etcd_err || !tm->etcd_ep || !tm->nl_ops || !tm->nl_err ||
	    !tm->repairs || !tm->udp_pkts || !tm->udp_bytes || !tm->udp_drop)
		goto fail;
	if (!metric_series(tm->ready, NULL, NULL))
		goto fail;
	for (i = 0; i < N_KINDS; i++) {
		tm->kind[i] = metric_series(tm->events, event_kinds[i], NULL);
		if (!tm->kind[i])
			goto fail;
	}
	/* what happened before (tests, a second daemon in one process) is not ours */
	{
		struct nl_stats ns;

		nl_stats_get(&ns);
		tm->last_nl_msgs = ns.messages;
		tm->last_nl_errs = ns.errors;
	}
	r = metrics_on_scrape(reg, scrape, tm);
	if (r < 0) {
		errno = -r;
		free(tm);
		return NULL;
	}
	return tm;
fail:
	r = errno ? errno : ENOMEM;
	free(tm);
	errno = r;
	return NULL;
}

void twilld_metrics_free(struct twilld_metrics *tm)
{
	if (!tm)
		return;
	metrics_off_scrape(tm->reg, scrape, tm);
	free(tm);
}

void twilld_metrics_lease_event(struct twilld_metrics *tm, const char *kind)
{
	size_t i;

	if (!tm || !kind)
		return;
	for (i = 0; i < N_KINDS; i++) {
		if (strcmp(kind, event_kinds[i]) == 0) {
			metric_series_inc(tm->kind[i]);
			return;
		}
	}
	metric_inc(tm->events, kind, NULL);
}

void twilld_metrics_lease_added(struct twilld_metrics *tm)
{
	uint64_t changes;

	if (!tm)
		return;
	changes = leasemgr_changes(src_lm(tm));
	metric_series_inc(tm->kind[changes != tm->last_changes ? K_CHANGED : K_ADDED]);
	tm->last_changes = changes;
}

void twilld_metrics_kernel_repairs(struct twilld_metrics *tm, uint64_t n)
{
	if (tm && n)
		metric_add(tm->repairs, NULL, NULL, n);
}

/* ---- Readiness ---- */

int64_t twilld_ready_window_s(int64_t lease_ttl_s, int64_t renew_margin_s)
{
	int64_t w = 0;

	if (lease_ttl_s > 0)
		w = lease_ttl_s;
	if (renew_margin_s > 0 && (w == 0 || renew_margin_s < w))
		w = renew_margin_s;
	return w > 0 ? w : 1;
}

bool twilld_ready_eval(const struct twilld_ready_input *in, char *reason, size_t len)
{
	char dummy[1];
	int64_t win;

	if (!reason || !len) {
		reason = dummy;
		len = sizeof(dummy);
	}
	reason[0] = '\0';
	if (!in->have_lease) {
		snprintf(reason, len, "own lease lost: re-acquiring it");
		return false;
	}
	if (in->expires_at > 0 && in->now_s >= in->expires_at) {
		snprintf(
			reason, len,
			"own lease expired %lld s ago without a confirmed renewal (etcd unreachable?)",
			(long long)(in->now_s - in->expires_at));
		return false;
	}
	if (in->etcd && in->etcd_last_ok_ms) {
		win = twilld_ready_window_s(in->lease_ttl_s, in->renew_margin_s);
		if (in->now_ms > in->etcd_last_ok_ms &&
		    in->now_ms - in->etcd_last_ok_ms > (uint64_t)win * 1000) {
			snprintf(
				reason, len,
				"etcd %s has not answered for %llu s (limit %lld s): the lease cannot be confirmed",
				in->endpoint ? in->endpoint : "",
				(unsigned long long)((in->now_ms - in->etcd_last_ok_ms) / 1000),
				(long long)win);
			return false;
		}
	}
	return true;
}

bool twilld_metrics_ready(struct twilld_metrics *tm, char *reason, size_t len)
{
	struct twilld_ready_input in = { 0 };
	struct leasemgr *lm;
	struct store *s;
	const struct lease *own;
	struct store_stats st;

	if (!tm)
		return true;
	lm = src_lm(tm);
	s = src_store(tm);
	own = lm ? leasemgr_own(lm) : NULL;
	in.have_lease = own != NULL;
	in.expires_at = own ? own->expires_at : 0;
	in.now_s = realtime_s();
	in.now_ms = ev_now_ms();
	in.lease_ttl_s = tm->src.lease_ttl_s;
	in.renew_margin_s = tm->src.renew_margin_s;
	if (s && store_etcd_stats(s, &st) == 0) {
		in.etcd = true;
		in.etcd_last_ok_ms = st.last_ok_ms;
		in.endpoint = s->ops->endpoint ? s->ops->endpoint(s) : NULL;
	}
	return twilld_ready_eval(&in, reason, len);
}
