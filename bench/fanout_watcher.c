/*
 * Helper of bench/fanout.sh: a light twilld (the etcd store and the lease manager, no
 * backend), one per watching node of the fan-out benchmark.
 *
 *   bench_fanout_watcher ENDPOINT PUBLIC_IP EXPECT
 *
 * Reads the network config from ENDPOINT, acquires a lease for PUBLIC_IP (vxlan) exactly as
 * twilld does, then counts remote leases added whose PublicIP is in 198.51.100.0/24 (the
 * burst's). Prints "ready <realtime_ns>" once the first remote set is in (the watch is
 * running), and "done <realtime_ns> <count>" when EXPECT of them have been applied; keeps
 * watching until SIGTERM or SIGINT (so etcd's load does not drop while the others catch up),
 * then exits 0. Errors of the lease manager go to stderr; it retries on its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/ev.h"
#include "subnet/config.h"
#include "subnet/lease.h"
#include "subnet/leasemgr.h"
#include "subnet/store.h"

#define PREFIX "/coreos.com/network"

struct watcher {
	struct ev_loop *loop;
	long expect, count;
	bool ready, done, stop;
	/* config fetch */
	bool got;
	int err;
	char *config;
};

static long long realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool is_burst(const struct lease *l)
{
	const uint8_t *b = l->attrs.public_ip.bytes;

	return l->attrs.public_ip.family == AF_INET && b[0] == 198 && b[1] == 51 && b[2] == 100;
}

static void check_done(struct watcher *w)
{
	if (!w->done && w->ready && w->count >= w->expect) {
		w->done = true;
		printf("done %lld %ld\n", realtime_ns(), w->count);
		fflush(stdout);
	}
}

static void on_resync(void *ctx, const struct lease *leases, size_t n)
{
	struct watcher *w = ctx;

	for (size_t i = 0; i < n; i++)
		w->count += is_burst(&leases[i]);
	w->ready = true;
	printf("ready %lld %zu\n", realtime_ns(), n);
	fflush(stdout);
	check_done(w);
}

static void on_added(void *ctx, const struct lease *l)
{
	struct watcher *w = ctx;

	w->count += is_burst(l);
	check_done(w);
}

static void on_own(void *ctx, const struct lease *own)
{
	(void)ctx;
	(void)own;
}

static void on_removed(void *ctx, const struct lease *l)
{
	struct watcher *w = ctx;

	w->count -= is_burst(l);
}

static void on_error(void *ctx, int err, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "fanout_watcher: %s (%s)\n", msg, strerror(-err));
}

static void on_config(void *ctx, const struct store_result *res)
{
	struct watcher *w = ctx;

	w->got = true;
	w->err = res->err;
	if (!res->err && res->n_kvs == 1)
		w->config = strndup(res->kvs[0].value, res->kvs[0].value_len);
	else if (!res->err)
		w->err = -ENOENT;
}

static void on_signal(struct ev_signal *s, int signo, void *ctx)
{
	struct watcher *w = ctx;

	(void)s;
	(void)signo;
	w->stop = true;
}

/* The network config, fetched once (retried every 200 ms for up to 30 s). */
static struct subnet_config *fetch_config(struct watcher *w, struct store *st)
{
	char err[SUBNET_ERR_MAX];
	struct subnet_config *cfg;

	for (int tries = 0; tries < 150; tries++) {
		w->got = false;
		if (st->ops->get(st, PREFIX "/config", on_config, w) == 0 &&
		    ev_loop_run_until(w->loop, &w->got, 10000) == 0 && !w->err && w->config)
			break;
		fprintf(stderr, "fanout_watcher: config: %s\n", strerror(w->err ? -w->err : EIO));
		struct timespec ts = { 0, 200000000L };
		nanosleep(&ts, NULL);
	}
	if (!w->config)
		return NULL;
	cfg = subnet_config_parse(w->config, strlen(w->config), err, sizeof(err));
	if (!cfg)
		fprintf(stderr, "fanout_watcher: config: %s\n", err);
	return cfg;
}

int main(int argc, char **argv)
{
	struct watcher w = { 0 };
	struct store_opts so = { 0 };
	struct leasemgr_events ev = { .own_acquired = on_own,
		                      .resync = on_resync,
		                      .added = on_added,
		                      .removed = on_removed,
		                      .error = on_error };
	struct leasemgr_opts lo = { .prefix = PREFIX };
	struct lease_attrs own = { 0 };
	struct subnet_config *cfg = NULL;
	struct leasemgr *m = NULL;
	struct store *st = NULL;
	char *eps[2] = { NULL, NULL }, json[256], err[256];
	int ret = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: %s ENDPOINT PUBLIC_IP EXPECT\n", argv[0]);
		return 2;
	}
	w.expect = strtol(argv[3], NULL, 10);
	snprintf(json, sizeof(json),
	         "{\"PublicIP\":\"%s\",\"BackendType\":\"vxlan\",\"BackendData\":{\"VNI\":1,"
	         "\"VtepMAC\":\"0a:fa:00:00:%02x:%02x\"}}",
	         argv[2], (unsigned)(getpid() >> 8) & 255, (unsigned)getpid() & 255);
	if (lease_attrs_parse(json, strlen(json), &own, err, sizeof(err)) < 0) {
		fprintf(stderr, "fanout_watcher: own lease: %s\n", err);
		return 2;
	}
	w.loop = ev_loop_new();
	eps[0] = argv[1];
	so.endpoints = eps;
	st = w.loop ? store_etcd_new(w.loop, &so) : NULL;
	if (!st)
		goto cleanup;
	ev_signal_new(w.loop, SIGTERM, on_signal, &w);
	ev_signal_new(w.loop, SIGINT, on_signal, &w);
	cfg = fetch_config(&w, st);
	if (!cfg)
		goto cleanup;
	m = leasemgr_new(w.loop, st, &lo, &ev, &w);
	if (!m || leasemgr_start(m, cfg, &own) < 0)
		goto cleanup;
	ev_loop_run_until(w.loop, &w.stop, -1);
	ret = 0;
cleanup:
	leasemgr_free(m);
	subnet_config_free(cfg);
	store_free(st);
	lease_attrs_clear(&own);
	free(w.config);
	ev_loop_free(w.loop);
	return ret;
}
