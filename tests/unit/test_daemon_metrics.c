#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "daemon/metrics_daemon.h"
#include "lib/ev.h"
#include "lib/metrics.h"
#include "subnet/store.h"
#include "subnet/store_stats.h"

static char *render(struct metrics *reg)
{
	char *text = NULL;
	size_t len = 0;

	cr_assert_eq(metrics_render(reg, &text, &len), 0);
	cr_assert_not_null(text);
	return text;
}

/* The value of the sample line starting with @series + " ", or NAN. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *p = text;

	while ((p = strstr(p, series))) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	return NAN;
}

static const struct twilld_ready_input ok_input = {
	.have_lease = true,
	.expires_at = 1000,
	.now_s = 900,
	.etcd = true,
	.etcd_last_ok_ms = 50000,
	.now_ms = 52000,
	.lease_ttl_s = 6,
	.renew_margin_s = 3600,
	.endpoint = "http://192.0.2.100:2379",
};

Test(daemon_metrics, window_is_min_of_ttl_and_margin)
{
	cr_assert_eq(twilld_ready_window_s(86400, 3600), 3600);
	cr_assert_eq(twilld_ready_window_s(6, 3600), 6);
	cr_assert_eq(twilld_ready_window_s(0, 60), 60);
	cr_assert_eq(twilld_ready_window_s(30, 0), 30);
	cr_assert_eq(twilld_ready_window_s(0, 0), 1);
	cr_assert_eq(twilld_ready_window_s(-5, -1), 1);
}

Test(daemon_metrics, ready_rules)
{
	struct twilld_ready_input in = ok_input;
	char why[256];

	cr_assert(twilld_ready_eval(&in, why, sizeof(why)));
	cr_assert_str_eq(why, "");

	in.have_lease = false;
	cr_assert_not(twilld_ready_eval(&in, why, sizeof(why)));
	cr_assert(strstr(why, "lost"), "%s", why);

	in = ok_input;
	in.now_s = 1003;
	cr_assert_not(twilld_ready_eval(&in, why, sizeof(why)));
	cr_assert(strstr(why, "expired 3 s ago"), "%s", why);

	in = ok_input;
	in.expires_at = 0; /* a reservation never expires */
	in.now_s = 5000;
	cr_assert(twilld_ready_eval(&in, why, sizeof(why)));

	/* etcd silent for exactly the window: still ready; a moment longer: not */
	in = ok_input;
	in.now_ms = in.etcd_last_ok_ms + 6000;
	cr_assert(twilld_ready_eval(&in, why, sizeof(why)));
	in.now_ms++;
	cr_assert_not(twilld_ready_eval(&in, why, sizeof(why)));
	cr_assert(strstr(why, "etcd http://192.0.2.100:2379 has not answered for 6 s (limit 6 s)"),
	          "%s", why);

	/* no etcd store, or no contact recorded: the etcd rule does not apply */
	in.etcd = false;
	cr_assert(twilld_ready_eval(&in, why, sizeof(why)));
	in.etcd = true;
	in.etcd_last_ok_ms = 0;
	cr_assert(twilld_ready_eval(&in, why, sizeof(why)));

	/* NULL reason buffer is fine */
	in = ok_input;
	in.have_lease = false;
	cr_assert_not(twilld_ready_eval(&in, NULL, 0));
}

Test(daemon_metrics, families_and_lease_events)
{
	struct metrics *reg = metrics_new();
	struct twilld_metrics_src src = { .lease_ttl_s = 86400, .renew_margin_s = 3600 };
	struct twilld_metrics *tm;
	char *t;

	tm = twilld_metrics_new(reg, &src);
	cr_assert_not_null(tm);
	t = render(reg);
	cr_assert(strstr(t, "# TYPE twill_lease_events_total counter\n"), "%s", t);
	cr_assert_eq(sample(t, "twill_lease_held"), 0);
	cr_assert_eq(sample(t, "twill_ready"), 0);
	cr_assert_eq(sample(t, "twill_remote_leases"), 0);
	cr_assert_eq(sample(t, "twill_lease_events_total{kind=\"added\"}"), 0);
	cr_assert_eq(sample(t, "twill_lease_events_total{kind=\"own_lost\"}"), 0);
	cr_assert_eq(sample(t, "twill_kernel_repairs_total"), 0);
	free(t);

	twilld_metrics_lease_added(tm); /* no lease manager: no change counted, so "added" */
	twilld_metrics_lease_added(tm);
	twilld_metrics_lease_event(tm, "removed");
	twilld_metrics_lease_event(tm, "own_acquired");
	twilld_metrics_kernel_repairs(tm, 3);
	twilld_metrics_kernel_repairs(tm, 0);
	t = render(reg);
	cr_assert_eq(sample(t, "twill_lease_events_total{kind=\"added\"}"), 2, "%s", t);
	cr_assert_eq(sample(t, "twill_lease_events_total{kind=\"changed\"}"), 0);
	cr_assert_eq(sample(t, "twill_lease_events_total{kind=\"removed\"}"), 1);
	cr_assert_eq(sample(t, "twill_lease_events_total{kind=\"own_acquired\"}"), 1);
	cr_assert_eq(sample(t, "twill_kernel_repairs_total"), 3);
	free(t);

	/* the scrape callback goes with it: rendering after free must not touch it */
	twilld_metrics_free(tm);
	t = render(reg);
	free(t);
	cr_assert_eq(metrics_off_scrape(reg, NULL, NULL), -ENOENT);
	twilld_metrics_free(NULL);
	twilld_metrics_lease_event(NULL, "removed");
	metrics_free(reg);
}

/* ---- a backend's data path counters come through backend_ops.stats ---- */

static uint64_t fake_tx;

static void fake_stats(struct backend *be, struct be_stats *ret)
{
	(void)be;
	memset(ret, 0, sizeof(*ret));
	ret->repairs = 2;
	ret->has_datapath = true;
	ret->tx_packets = fake_tx;
	ret->tx_bytes = fake_tx * 100;
	ret->rx_packets = 5;
	ret->rx_bytes = 500;
	ret->drops[0].reason = "no_route";
	ret->drops[0].n = 7;
	ret->drops[1].reason = "ttl";
	ret->drops[1].n = 0;
	ret->n_drops = 2;
}

Test(daemon_metrics, datapath_through_backend_stats)
{
	static const struct backend_ops fake = { .name = "fake", .stats = fake_stats };
	const struct backend_ops *ops = &fake;
	struct backend *be = (struct backend *)(uintptr_t)1; /* never dereferenced by fake_stats */
	struct metrics *reg = metrics_new();
	struct twilld_metrics_src src = { .be_ops = &ops, .be = &be, .lease_ttl_s = 60 };
	struct twilld_metrics *tm = twilld_metrics_new(reg, &src);
	char *t;

	cr_assert_not_null(tm);
	fake_tx = 10;
	t = render(reg);
	cr_assert_eq(sample(t, "twill_udp_packets_total{dir=\"tx\"}"), 10, "%s", t);
	cr_assert_eq(sample(t, "twill_udp_packets_total{dir=\"rx\"}"), 5, "%s", t);
	cr_assert_eq(sample(t, "twill_udp_bytes_total{dir=\"tx\"}"), 1000, "%s", t);
	cr_assert_eq(sample(t, "twill_udp_dropped_total{reason=\"no_route\"}"), 7, "%s", t);
	cr_assert_eq(sample(t, "twill_kernel_repairs_total"), 2, "%s", t);
	free(t);
	fake_tx = 25; /* counters follow the backend's, once each */
	t = render(reg);
	cr_assert_eq(sample(t, "twill_udp_packets_total{dir=\"tx\"}"), 25, "%s", t);
	cr_assert_eq(sample(t, "twill_udp_dropped_total{reason=\"no_route\"}"), 7, "%s", t);
	free(t);
	twilld_metrics_free(tm);
	metrics_free(reg);
}

struct cbctx {
	bool *done;
	int err;
};

static void get_cb(void *ctx, const struct store_result *res)
{
	struct cbctx *x = ctx;

	x->err = res->err;
	*x->done = true;
}

Test(daemon_metrics, etcd_counters_and_endpoint)
{
	struct ev_loop *loop = ev_loop_new();
	char ep[] = "http://127.0.0.1:9"; /* discard port: nothing listens */
	char *eps[] = { ep, NULL };
	struct store_opts so = { .endpoints = eps, .request_timeout_ms = 200 };
	struct store *st;
	struct metrics *reg = metrics_new();
	struct twilld_metrics_src src = { .store = &st, .lease_ttl_s = 6, .renew_margin_s = 60 };
	struct twilld_metrics *tm;
	struct store_stats ss;
	bool done = false;
	char *t;

	cr_assert_not_null(loop);
	st = store_etcd_new(loop, &so);
	cr_assert_not_null(st);
	cr_assert_eq(store_etcd_stats(st, &ss), 0);
	cr_assert_eq(ss.requests[STORE_STAT_GET], 0);
	cr_assert_eq(ss.last_ok_ms, 0);
	tm = twilld_metrics_new(reg, &src);
	cr_assert_not_null(tm);

	struct cbctx c = { &done, 0 };

	cr_assert_eq(st->ops->get(st, "/k", get_cb, &c), 0);
	cr_assert_eq(ev_loop_run_until(loop, &done, 10000), 0);
	cr_assert_lt(c.err, 0);
	cr_assert_eq(store_etcd_stats(st, &ss), 0);
	cr_assert_geq(ss.requests[STORE_STAT_GET], 1);
	cr_assert_geq(ss.errors[STORE_STAT_ERR_CONNECT], 1);
	cr_assert_eq(ss.last_ok_ms, 0);

	t = render(reg);
	cr_assert_eq(sample(t, "twill_etcd_requests_total{op=\"get\"}"),
	             (double)ss.requests[STORE_STAT_GET], "%s", t);
	cr_assert_eq(sample(t, "twill_etcd_errors_total{kind=\"connect\"}"),
	             (double)ss.errors[STORE_STAT_ERR_CONNECT], "%s", t);
	cr_assert_eq(sample(t, "twill_etcd_endpoint_info{endpoint=\"http://127.0.0.1:9\"}"), 1,
	             "%s", t);
	free(t);
	/* a second scrape adds nothing new */
	t = render(reg);
	cr_assert_eq(sample(t, "twill_etcd_requests_total{op=\"get\"}"),
	             (double)ss.requests[STORE_STAT_GET], "%s", t);
	free(t);

	cr_assert_str_eq(store_stat_op_name(STORE_STAT_KEEPALIVE), "keepalive");
	cr_assert_str_eq(store_stat_err_name(STORE_STAT_ERR_TIMEOUT), "timeout");
	cr_assert_str_eq(store_stat_op_name(STORE_STAT_OP_COUNT), "unknown");
	cr_assert_eq(store_etcd_stats(NULL, &ss), -EINVAL);

	twilld_metrics_free(tm);
	metrics_free(reg);
	store_free(st);
	ev_loop_free(loop);
}

Test(daemon_metrics, local_store_has_no_etcd_stats)
{
	struct ev_loop *loop = ev_loop_new();
	char path[] = "/tmp/twill-metrics-store-XXXXXX";
	int fd = mkstemp(path);
	struct store *st;
	struct store_stats ss;

	cr_assert_geq(fd, 0);
	close(fd);
	unlink(path);
	st = store_local_new(loop, path);
	cr_assert_not_null(st);
	cr_assert_eq(store_etcd_stats(st, &ss), -ENOTSUP);
	store_free(st);
	unlink(path);
	ev_loop_free(loop);
}
