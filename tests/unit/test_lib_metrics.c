#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/metrics.h"

static char *render(struct metrics *reg)
{
	char *text = NULL;
	size_t len = 0;

	cr_assert_eq(metrics_render(reg, &text, &len), 0);
	cr_assert_not_null(text);
	cr_assert_eq(strlen(text), len);
	return text;
}

Test(metrics, empty_registry_renders_nothing)
{
	struct metrics *reg = metrics_new();
	char *t = render(reg);

	cr_assert_str_eq(t, "");
	free(t);
	metrics_free(reg);
}

Test(metrics, exposition_is_exact_and_sorted)
{
	struct metrics *reg = metrics_new();
	struct metric *ev = metrics_register(reg, METRIC_COUNTER, "twill_lease_events_total",
	                                     "Lease events seen, by kind.", "kind", NULL);
	struct metric *held = metrics_register(reg, METRIC_GAUGE, "twill_lease_held",
	                                       "1 while a lease is held.", NULL, NULL);
	struct metric *exp = metrics_register(reg, METRIC_GAUGE, "twill_lease_expiry_seconds",
	                                      "Seconds until the lease expires.", NULL, NULL);
	char *t;

	cr_assert_not_null(ev);
	cr_assert_not_null(held);
	cr_assert_not_null(exp);
	metric_inc(ev, "removed", NULL);
	metric_add(ev, "added", NULL, 3);
	metric_set(held, NULL, NULL, 1);
	metric_set(exp, NULL, NULL, 86399.5);
	t = render(reg);
	cr_assert_str_eq(t, "# HELP twill_lease_events_total Lease events seen, by kind.\n"
	                    "# TYPE twill_lease_events_total counter\n"
	                    "twill_lease_events_total{kind=\"added\"} 3\n"
	                    "twill_lease_events_total{kind=\"removed\"} 1\n"
	                    "# HELP twill_lease_expiry_seconds Seconds until the lease expires.\n"
	                    "# TYPE twill_lease_expiry_seconds gauge\n"
	                    "twill_lease_expiry_seconds 86399.5\n"
	                    "# HELP twill_lease_held 1 while a lease is held.\n"
	                    "# TYPE twill_lease_held gauge\n"
	                    "twill_lease_held 1\n");
	free(t);
	metrics_free(reg);
}

Test(metrics, two_labels_and_escaping)
{
	struct metrics *reg = metrics_new();
	struct metric *m = metrics_register(reg, METRIC_COUNTER, "twill_x_total", "a \\ b\\c",
	                                    "endpoint", "op");
	char *t;

	cr_assert_not_null(m);
	metric_inc(m, "http://a\"b\"\n\\", "get");
	metric_inc(m, "a", NULL);
	t = render(reg);
	cr_assert_str_eq(t, "# HELP twill_x_total a \\\\ b\\\\c\n"
	                    "# TYPE twill_x_total counter\n"
	                    "twill_x_total{endpoint=\"a\",op=\"\"} 1\n"
	                    "twill_x_total{endpoint=\"http://a\\\"b\\\"\\n\\\\\",op=\"get\"} 1\n");
	free(t);
	metrics_free(reg);
}

Test(metrics, names_are_validated)
{
	struct metrics *reg = metrics_new();

	errno = 0;
	cr_assert_null(metrics_register(reg, METRIC_COUNTER, "twill_no_suffix", "h", NULL, NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(metrics_register(reg, METRIC_GAUGE, "1abc", "h", NULL, NULL));
	cr_assert_null(metrics_register(reg, METRIC_GAUGE, "a-b", "h", NULL, NULL));
	cr_assert_null(metrics_register(reg, METRIC_GAUGE, "", "h", NULL, NULL));
	cr_assert_null(metrics_register(reg, METRIC_GAUGE, "ok", "h", "__x", NULL));
	cr_assert_null(metrics_register(reg, METRIC_GAUGE, "ok", "h", "a:b", NULL));
	cr_assert_null(metrics_register(reg, METRIC_GAUGE, "ok", "h", NULL, "b"));
	cr_assert_null(metrics_register(reg, METRIC_GAUGE, "ok", "h", "a", "a"));
	cr_assert_null(metrics_register(reg, METRIC_GAUGE, "ok", "two\nlines", NULL, NULL));
	cr_assert_not_null(metrics_register(reg, METRIC_GAUGE, "ok:sub_1", "h", "a", "b_2"));
	metrics_free(reg);
}

Test(metrics, reregistration_returns_the_same_family_or_eexist)
{
	struct metrics *reg = metrics_new();
	struct metric *a = metrics_register(reg, METRIC_COUNTER, "a_total", "h", "k", NULL);

	cr_assert_eq(metrics_register(reg, METRIC_COUNTER, "a_total", "other help", "k", NULL), a);
	errno = 0;
	cr_assert_null(metrics_register(reg, METRIC_GAUGE, "a_total", "h", "k", NULL));
	cr_assert_eq(errno, EEXIST);
	cr_assert_null(metrics_register(reg, METRIC_COUNTER, "a_total", "h", NULL, NULL));
	cr_assert_eq(metrics_find(reg, "a_total"), a);
	cr_assert_null(metrics_find(reg, "b"));
	metrics_free(reg);
}

Test(metrics, gauge_values_and_special_floats)
{
	struct metrics *reg = metrics_new();
	struct metric *g = metrics_register(reg, METRIC_GAUGE, "g", "h", "k", NULL);
	struct metric_series *s;
	char *t;

	metric_set(g, "a_neg", NULL, -2);
	metric_set(g, "b_nan", NULL, NAN);
	metric_set(g, "c_inf", NULL, INFINITY);
	metric_set(g, "d_ninf", NULL, -INFINITY);
	metric_set(g, "e_big", NULL, 1e20);
	s = metric_series(g, "f_add", NULL);
	metric_series_gauge_add(s, 2.5);
	metric_series_gauge_add(s, -1);
	metric_series_add(s, 2);
	cr_assert_float_eq(metric_series_value(s), 3.5, 1e-9);
	t = render(reg);
	cr_assert_str_eq(t, "# HELP g h\n# TYPE g gauge\n"
	                    "g{k=\"a_neg\"} -2\n"
	                    "g{k=\"b_nan\"} NaN\n"
	                    "g{k=\"c_inf\"} +Inf\n"
	                    "g{k=\"d_ninf\"} -Inf\n"
	                    "g{k=\"e_big\"} 1e+20\n"
	                    "g{k=\"f_add\"} 3.5\n");
	free(t);
	metrics_free(reg);
}

Test(metrics, counters_ignore_set_and_null_is_harmless)
{
	struct metrics *reg = metrics_new();
	struct metric *c = metrics_register(reg, METRIC_COUNTER, "c_total", "h", NULL, NULL);
	struct metric_series *s = metric_series(c, NULL, NULL);

	metric_series_inc(s);
	metric_series_set(s, 100);
	cr_assert_float_eq(metric_series_value(s), 1, 1e-9);
	cr_assert_eq(metric_series(c, "ignored", NULL), s); /* no labels: extra values ignored */
	metric_series_inc(NULL);
	metric_series_set(NULL, 1);
	metric_inc(NULL, NULL, NULL);
	cr_assert_null(metric_series(NULL, NULL, NULL));
	cr_assert_float_eq(metric_series_value(NULL), 0, 1e-9);
	metrics_free(NULL);
	metrics_free(reg);
}

static void fill(void *ctx, struct metrics *reg)
{
	int *calls = ctx;

	(*calls)++;
	metric_set(metrics_find(reg, "twill_remote_leases"), NULL, NULL, 40 + *calls);
}

Test(metrics, scrape_callback_fills_gauges)
{
	struct metrics *reg = metrics_new();
	int calls = 0;
	char *t;

	metrics_register(reg, METRIC_GAUGE, "twill_remote_leases", "Remote leases.", NULL, NULL);
	cr_assert_eq(metrics_on_scrape(reg, fill, &calls), 0);
	t = render(reg);
	cr_assert(strstr(t, "\ntwill_remote_leases 41\n"), "%s", t);
	free(t);
	t = render(reg);
	cr_assert(strstr(t, "\ntwill_remote_leases 42\n"), "%s", t);
	free(t);
	cr_assert_eq(metrics_off_scrape(reg, fill, &calls), 0);
	cr_assert_eq(metrics_off_scrape(reg, fill, &calls), -ENOENT);
	free(render(reg));
	cr_assert_eq(calls, 2);
	metrics_free(reg);
}

struct worker {
	struct metric *m;
	int id;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	struct metric_series *s = metric_series(w->m, w->id % 2 ? "tx" : "rx", NULL);
	int i;

	for (i = 0; i < 100000; i++) {
		metric_series_inc(s);
		if (i % 1000 == 0) /* lookups race with creation in other threads */
			metric_inc(w->m, "shared", NULL);
	}
	return NULL;
}

Test(metrics, concurrent_increments_are_not_lost)
{
	struct metrics *reg = metrics_new();
	struct metric *m =
		metrics_register(reg, METRIC_COUNTER, "twill_udp_packets_total", "p", "dir", NULL);
	pthread_t th[4];
	struct worker w[4];
	char *t;
	int i;

	for (i = 0; i < 4; i++) {
		w[i].m = m;
		w[i].id = i;
		cr_assert_eq(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
	}
	for (i = 0; i < 3; i++) /* scrapes while the workers run */
		free(render(reg));
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	t = render(reg);
	cr_assert_str_eq(t, "# HELP twill_udp_packets_total p\n"
	                    "# TYPE twill_udp_packets_total counter\n"
	                    "twill_udp_packets_total{dir=\"rx\"} 200000\n"
	                    "twill_udp_packets_total{dir=\"shared\"} 400\n"
	                    "twill_udp_packets_total{dir=\"tx\"} 200000\n");
	free(t);
	metrics_free(reg);
}

Test(metrics, global_registry_is_one_object)
{
	cr_assert_not_null(metrics_global());
	cr_assert_eq(metrics_global(), metrics_global());
}

Test(metrics, twill_families_register_once_and_render_strictly)
{
	struct metrics *reg = metrics_new();
	char *t;

	cr_assert_eq(metrics_register_twill(reg), 0);
	cr_assert_eq(metrics_register_twill(reg), 0); /* idempotent */
	metric_inc(metrics_find(reg, TWILL_M_UDP_DROPPED), "no route", NULL);
	metric_add(metrics_find(reg, TWILL_M_KERNEL_REPAIRS), NULL, NULL, 3);
	t = render(reg);
	cr_assert(strstr(t, "# TYPE twill_lease_held gauge\ntwill_lease_held 0\n"), "%s", t);
	cr_assert(
		strstr(t,
	               "# TYPE twill_kernel_repairs_total counter\ntwill_kernel_repairs_total 3\n"),
		"%s", t);
	cr_assert(strstr(t, "# TYPE twill_udp_dropped_total counter\n"
	                    "twill_udp_dropped_total{reason=\"no route\"} 1\n"),
	          "%s", t);
	/* a labelled family with no series yet: HELP and TYPE only */
	cr_assert(strstr(t, "# TYPE twill_etcd_requests_total counter\n# HELP "), "%s", t);
	free(t);
	/* a conflicting earlier registration is reported */
	metrics_free(reg);
	reg = metrics_new();
	metrics_register(reg, METRIC_COUNTER, TWILL_M_ETCD_REQUESTS, "x", NULL, NULL);
	cr_assert_eq(metrics_register_twill(reg), -EEXIST);
	metrics_free(reg);
}
