#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "backends/backend.h"
#include "daemon/grace.h"
#include "daemon/health.h"
#include "daemon/iface.h"
#include "daemon/ip6tables.h"
#include "daemon/iptables.h"
#include "daemon/metrics_daemon.h"
#include "daemon/sdnotify.h"
#include "daemon/status.h"
#include "daemon/twilld.h"
#include "daemon/twilld_int.h"
#include "daemon/util.h"
#include "lib/ev.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "subnet/leasemgr.h"
#include "subnet/store.h"
#include "subnet/store_flags.h"

#define CONFIG_RETRY_MS 1000
#define INIT_RETRY_MS   5000
#define START_RETRY_MS  1000
/*
 * A remote lease that had an etcd lease (it expired or was revoked) keeps its kernel state this
 * long before it is withdrawn: after a partition longer than the TTL, every lease's expiry
 * DELETE arrives first and its owner re-acquires the same subnet a few ms later; withdrawing
 * and re-adding in between would drop packets ("traffic never stopped"). Well under the 1 s in
 * which a released lease's routes must be gone. Reservations are withdrawn at once.
 */
#define REMOVE_GRACE_MS 300
/* Withdrawals due within this much go out with the current burst. */
#define REMOVE_GRACE_SLACK_MS 50
/* Bad keys remembered for warn-once (key + reason); beyond it they are logged at debug. */
#define SKIP_SEEN_MAX 4096
/* Renewal retry and longest back-off: a quarter of the TTL, within [1 s, 60 s] (flannel: 1 min). */
#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 60000

/* ---- Retry and logging helpers ---- */

/* Log a failure at warn the first time, at debug while it repeats unchanged. */
__attribute__((format(printf, 2, 3))) static void warn_once(struct twilld *d, const char *fmt, ...)
{
	char msg[sizeof(d->last_err)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strcmp(msg, d->last_err) == 0) {
		log_debug("%s", msg);
		return;
	}
	snprintf(d->last_err, sizeof(d->last_err), "%s", msg);
	log_warnx("%s", msg);
}

static void retry_in(struct twilld *d, enum retry_what what, uint64_t ms)
{
	d->retry_what = what;
	if (ev_timer_start(d->retry, ms, 0) < 0)
		log_error("cannot arm the retry timer: %s", strerror(errno));
}

/*
 * Give the memory of a large listing back to the system: the reply, its JSON tree and the
 * parsed kvs are freed by now but stay in malloc's arenas, in holes that trimming the top
 * of the heap alone does not reach.
 */
static void trim_heap(size_t n)
{
#ifdef __GLIBC__
	if (n >= 256)
		malloc_trim(0);
#else
	(void)n;
#endif
}

/* ---- Deferred withdrawal of expired remote leases (REMOVE_GRACE_MS) ---- */

/* The grace of these expired remote leases ran out: withdraw them, as one backend burst. */
static void on_grace_over(void *ctx, const struct lease *const *leases, size_t n)
{
	struct twilld *d = ctx;

	if (!d->started)
		return;
	for (size_t i = 0; i < n; i++)
		d->be_ops->lease_removed(d->be, leases[i]); /* a failure is the backend's to log */
	log_debug("backend %s: %zu expired remote leases withdrawn after %d ms", d->be_ops->name, n,
	          REMOVE_GRACE_MS);
}

/* Bring the backend to exactly @leases (the remote set): pending withdrawals are part of it. */
static void resync_backend(struct twilld *d, const struct lease *leases, size_t n)
{
	int r;

	grace_reset(d->grace);
	r = d->be_ops->resync(d->be, leases, n);
	if (r < 0) /* logged by the backend (backend_ops) */
		log_debug("backend %s: resync of %zu remote leases failed: %s", d->be_ops->name, n,
		          strerror(-r));
	trim_heap(n);
}

/* ---- Backend start, subnet file, readiness ---- */

static void start_backend(struct twilld *d)
{
	char desc[TWILLD_DESCRIBE_MAX], why[BE_ERR_MAX] = "";
	struct subnetfile sf;
	const struct lease *remote;
	size_t n = 0;
	int mtu, r;

	twilld_lease_describe(&d->own, desc, sizeof(desc));
	mtu = d->be_ops->start(d->be, &d->own, why, sizeof(why));
	if (mtu < 0) {
		/* the backend did not log its reason (backend_ops): here, once while it repeats */
		warn_once(d, "backend %s: start with lease %s failed: %s, retrying in %ds",
		          d->be_ops->name, desc, why[0] ? why : strerror(-mtu),
		          START_RETRY_MS / 1000);
		retry_in(d, RETRY_START, START_RETRY_MS);
		return;
	}
	d->mtu = mtu;
	r = subnetfile_from_lease(d->cfg, &d->own, mtu, d->o->ip_masq, &sf);
	if (r == 0)
		r = subnetfile_write(d->o->subnet_file, &sf);
	if (r < 0) {
		warn_once(d, "subnet file %s: write failed: %s, retrying in %ds", d->o->subnet_file,
		          strerror(-r), START_RETRY_MS / 1000);
		retry_in(d, RETRY_START, START_RETRY_MS);
		return;
	}
	d->last_err[0] = '\0';
	d->started = true;
	if (d->ipt && d->cfg->enable_ipv4 && d->own.has_ipv4) {
		r = ipt_set_lease(d->ipt, &d->cfg->network, &d->own.subnet);
		if (r < 0)
			log_warnx("iptables: cannot set network and lease: %s", strerror(-r));
	}
	if (d->cfg->enable_ipv6 && d->own.has_ipv6)
		ip6t_set_lease(d->ip6t, &d->cfg->ipv6_network, &d->own.ipv6_subnet);
	log_info("subnet file %s: written (lease %s, MTU %d)", d->o->subnet_file, desc, mtu);
	/*
	 * Events that arrived while the backend was not started are applied now, but only once the
	 * remote set has been listed: before that it is empty, and a resync with it would withdraw
	 * every route a previous twilld left (docs/compat.md §4: a restart must not break traffic). The
	 * first resync then comes from on_resync.
	 */
	if (d->remote_listed) {
		remote = leasemgr_remote(d->lm, &n);
		resync_backend(d, remote, n);
	} else {
		log_debug("backend %s: remote leases not listed yet: kernel state left as it is",
		          d->be_ops->name);
	}
	if (!d->ready_notified) {
		r = sd_notify_send("READY=1");
		if (r < 0)
			log_warnx("sd_notify READY=1 to %s failed: %s", getenv("NOTIFY_SOCKET"),
			          strerror(-r));
		d->ready_notified = true;
		log_info("ready: backend %s on %s, lease %s", d->be_ops->name, d->ext.name, desc);
	}
}

/* ---- Lease manager events ---- */

static void on_own_acquired(void *ctx, const struct lease *own)
{
	struct twilld *d = ctx;
	char desc[TWILLD_DESCRIBE_MAX], old[TWILLD_DESCRIBE_MAX];
	bool same;

	twilld_metrics_lease_event(d->tm, "own_acquired");
	twilld_lease_describe(own, desc, sizeof(desc));
	same = d->has_own && d->own.has_ipv4 == own->has_ipv4 && d->own.has_ipv6 == own->has_ipv6 &&
	       (!own->has_ipv4 || ipam_prefix_equal(&d->own.subnet, &own->subnet)) &&
	       (!own->has_ipv6 || ipam_prefix_equal(&d->own.ipv6_subnet, &own->ipv6_subnet));
	if (same && d->started) {
		log_info("lease %s: re-acquired, same subnet", desc);
		lease_clear(&d->own);
		if (lease_copy(&d->own, own) < 0)
			log_error("lease %s: out of memory", desc);
		return;
	}
	if (d->has_own && !same)
		log_warnx("lease %s: acquired, replacing %s: restarting backend %s", desc,
		          twilld_lease_describe(&d->own, old, sizeof(old)), d->be_ops->name);
	else
		log_info("lease %s: acquired", desc);
	lease_clear(&d->own);
	d->has_own = false;
	if (lease_copy(&d->own, own) < 0) {
		log_error("lease %s: out of memory", desc);
		return;
	}
	d->has_own = true;
	d->started = false;
	if (d->retry_what == RETRY_START)
		ev_timer_stop(d->retry);
	start_backend(d);
}

static void on_own_lost(void *ctx, const struct lease *old)
{
	struct twilld *d = ctx;
	char desc[TWILLD_DESCRIBE_MAX];

	twilld_metrics_lease_event(d->tm, "own_lost");
	log_warnx(
		"lease %s: lost (deleted or expired): re-acquiring; forwarding continues meanwhile",
		twilld_lease_describe(old, desc, sizeof(desc)));
}

static void on_resync(void *ctx, const struct lease *leases, size_t n)
{
	struct twilld *d = ctx;

	twilld_metrics_lease_event(d->tm, "resync");
	log_info("remote leases: %zu known, resyncing backend %s", n, d->be_ops->name);
	d->remote_listed = true;
	if (!d->started) {
		log_debug("backend %s not started yet: resync deferred", d->be_ops->name);
		return;
	}
	resync_backend(d, leases, n);
}

static void on_added(void *ctx, const struct lease *l)
{
	struct twilld *d = ctx;
	char desc[TWILLD_DESCRIBE_MAX];
	bool same = false;

	twilld_metrics_lease_added(d->tm);
	twilld_lease_describe(l, desc, sizeof(desc));
	log_info("lease %s: added", desc);
	if (!d->started)
		return;
	if (grace_cancel(d->grace, l, &same)) {
		log_info("lease %s: back within %d ms of its expiry%s", desc, REMOVE_GRACE_MS,
		         same ? ", unchanged: kernel state kept" : ", changed: updating");
		if (same)
			return;
	}
	d->be_ops->lease_added(d->be, l); /* a failure is the backend's to log (backend_ops) */
}

static void on_removed(void *ctx, const struct lease *l)
{
	struct twilld *d = ctx;
	char desc[TWILLD_DESCRIBE_MAX];
	int r;

	twilld_metrics_lease_event(d->tm, "removed");
	twilld_lease_describe(l, desc, sizeof(desc));
	log_info("lease %s: removed", desc);
	if (!d->started)
		return;
	/* an etcd lease that expired: its owner may re-acquire it at once (REMOVE_GRACE_MS) */
	if (l->store_lease_id != 0) {
		r = grace_add(d->grace, l);
		if (r == 0)
			return;
		log_debug("lease %s: cannot defer its withdrawal (%s): withdrawing it now", desc,
		          strerror(-r));
	}
	r = d->be_ops->lease_removed(d->be, l);
	if (r < 0) /* logged by the backend (backend_ops) */
		log_debug("backend %s: lease %s: removal failed: %s", d->be_ops->name, desc,
		          strerror(-r));
}

static void on_lm_error(void *ctx, int err, const char *msg)
{
	struct twilld *d = ctx;
	char esc[1024];

	/* the message may quote etcd's own words */
	warn_once(d, "lease acquisition: %s (%s), retrying",
	          msg ? log_escape(esc, sizeof(esc), msg) : "failed", strerror(-err));
}

/* True the first time @key is skipped for @reason (remembered up to SKIP_SEEN_MAX pairs). */
static bool skip_first_time(struct twilld *d, const char *key, const char *reason)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a of key NUL reason */
	size_t lo = 0, hi = d->n_skip_seen;
	const char *p;

	for (p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0u) * 1099511628211ULL;
	for (p = reason; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->skip_seen[mid] == h)
			return false;
		if (d->skip_seen[mid] < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (d->n_skip_seen >= SKIP_SEEN_MAX)
		return false;
	if (!d->skip_seen) {
		d->skip_seen = calloc(SKIP_SEEN_MAX, sizeof(*d->skip_seen));
		if (!d->skip_seen)
			return true;
	}
	memmove(d->skip_seen + lo + 1, d->skip_seen + lo,
	        (d->n_skip_seen - lo) * sizeof(*d->skip_seen));
	d->skip_seen[lo] = h;
	d->n_skip_seen++;
	return true;
}

/*
 * A key under <prefix>/subnets/ or its value is bad and was skipped: warn once per key and
 * reason (flannel warns too), not on every relist of a key that stays bad. Key and reason are
 * outside data: escaped, so a newline in a key cannot forge a log line.
 */
static void on_skipped(void *ctx, const char *key, const char *reason)
{
	struct twilld *d = ctx;
	char k[512], why[600];

	if (!key)
		key = "";
	if (!reason)
		reason = "";
	log_escape(k, sizeof(k), key);
	log_escape(why, sizeof(why), reason);
	if (skip_first_time(d, key, reason))
		log_warnx("lease key \"%s\": skipped: %s", k, why);
	else
		log_debug("lease key \"%s\": skipped again: %s", k, why);
}

static const struct leasemgr_events lm_events = {
	.own_acquired = on_own_acquired,
	.own_lost = on_own_lost,
	.resync = on_resync,
	.added = on_added,
	.removed = on_removed,
	.error = on_lm_error,
	.skipped = on_skipped,
};

/* ---- Start-up steps ---- */

/*
 * EnableIPv6: the IPv6 underlay (--public-ipv6, else the interface's first global IPv6
 * address), looked up again on every try so that an address still in DAD is waited for.
 * 0, or -errno after a warning naming the interface and the flag (no lease is written).
 */
static int resolve_ipv6(struct twilld *d)
{
	char a[IPAM_ADDR_STRLEN], b[IPAM_ADDR_STRLEN];
	struct ipam_addr ifa;
	int r;

	d->ext.has_ipv6 = false;
	if (!d->cfg->enable_ipv6)
		return 0;
	r = iface_ipv6_addr(d->ext.ifindex, &ifa);
	if (r < 0 && !d->o->has_public_ipv6) {
		warn_once(
			d,
			"EnableIPv6: interface %s has %s global IPv6 address and --public-ipv6 is not set: set --public-ipv6 (FLANNELD_PUBLIC_IPV6) or add an IPv6 address to %s; no lease is written, retrying in %ds",
			d->ext.name, r == -EAGAIN ? "only a tentative (DAD)" : "no", d->ext.name,
			INIT_RETRY_MS / 1000);
		retry_in(d, RETRY_INIT, INIT_RETRY_MS);
		return r == -EAGAIN ? r : -EADDRNOTAVAIL;
	}
	d->ext.public_ipv6 = d->o->has_public_ipv6 ? d->o->public_ipv6_addr : ifa;
	d->ext.iface_addr6 = r == 0 ? ifa : d->ext.public_ipv6;
	d->ext.has_ipv6 = true;
	log_info("EnableIPv6: interface %s, IPv6 address %s, public IPv6 %s", d->ext.name,
	         ipam_addr_format(&d->ext.iface_addr6, a),
	         ipam_addr_format(&d->ext.public_ipv6, b));
	return 0;
}

static void init_backend(struct twilld *d)
{
	struct leasemgr_opts lo = { 0 };
	char why[BE_ERR_MAX] = "";
	int r;

	if (resolve_ipv6(d) < 0)
		return;
	lease_attrs_clear(&d->attrs);
	memset(&d->attrs, 0, sizeof(d->attrs));
	d->attrs.public_ip = d->ext.public_ip;
	d->be = d->be_ops->init(d->loop, d->cfg, &d->ext, &d->be_set, &d->attrs, why, sizeof(why));
	if (!d->be) {
		/* the backend did not log its reason (backend_ops): here, once while it repeats */
		warn_once(d, "backend %s: init on %s failed: %s, retrying in %ds", d->be_ops->name,
		          d->ext.name, why[0] ? why : strerror(errno), INIT_RETRY_MS / 1000);
		retry_in(d, RETRY_INIT, INIT_RETRY_MS);
		return;
	}
	d->attrs.public_ip = d->ext.public_ip;
	if (d->ext.has_ipv6) {
		d->attrs.has_public_ipv6 = true;
		d->attrs.public_ipv6 = d->ext.public_ipv6;
	}
	log_info("backend %s: initialised on %s", d->be_ops->name, d->ext.name);

	lo.prefix = d->prefix;
	lo.lease_ttl_s = d->o->lease_ttl_s;
	lo.renew_margin_s = d->o->renew_margin_min * 60;
	/*
	 * A failed renewal is retried after a quarter of the TTL (flannel's 1 min for the default
	 * 24 h): with a short --subnet-lease-ttl a 60 s retry would let the lease expire instead of
	 * renewing it, and the acquisition back-off (doubling up to this) would keep a node without
	 * a lease for up to a minute after an outage.
	 */
	lo.retry_ms = d->o->lease_ttl_s > 0 ? d->o->lease_ttl_s * 1000 / 4 : RETRY_MAX_MS;
	if (lo.retry_ms < RETRY_MIN_MS)
		lo.retry_ms = RETRY_MIN_MS;
	if (lo.retry_ms > RETRY_MAX_MS)
		lo.retry_ms = RETRY_MAX_MS;
	lo.subnet_file = d->o->subnet_file;
	d->lm = leasemgr_new(d->loop, d->store, &lo, &lm_events, d);
	if (!d->lm) {
		d->fatal = errno ? -errno : -ENOMEM;
		log_error("lease manager: cannot create: %s", strerror(-d->fatal));
		ev_loop_stop(d->loop);
		return;
	}
	r = leasemgr_start(d->lm, d->cfg, &d->attrs);
	if (r < 0) {
		d->fatal = r;
		log_error("lease manager: cannot start: %s", strerror(-r));
		ev_loop_stop(d->loop);
		return;
	}
	d->last_err[0] = '\0';
	log_info("lease manager: acquiring a lease under %s/subnets", d->prefix);
}

/* A valid config arrived at start-up. */
static void apply_config(struct twilld *d, struct subnet_config *cfg)
{
	char net[IPAM_PREFIX_STRLEN], net6[IPAM_PREFIX_STRLEN];

	d->be_ops = backend_lookup(cfg->backend_type);
	if (!d->be_ops) {
		if (cfg->backend_defaulted)
			warn_once(
				d,
				"network config %s: no Backend in the network config: flannel uses udp, which this twilld does not provide: set Backend.Type (e.g. vxlan), retrying in %ds",
				d->config_key, CONFIG_RETRY_MS / 1000);
		else
			warn_once(
				d,
				"network config %s: backend type \"%s\" is not available in this twilld, retrying in %ds",
				d->config_key, cfg->backend_type, CONFIG_RETRY_MS / 1000);
		subnet_config_free(cfg);
		retry_in(d, RETRY_CONFIG, CONFIG_RETRY_MS);
		return;
	}
	d->cfg = cfg;
	d->last_err[0] = '\0';
	if (twilld_start_ip6tables(d) < 0)
		return;
	log_info("network config %s: Network %s%s%s, SubnetLen %u, Backend %s", d->config_key,
	         cfg->enable_ipv4 ? ipam_prefix_format(&cfg->network, net) : "(IPv4 disabled)",
	         cfg->enable_ipv6 ? ", IPv6Network " : "",
	         cfg->enable_ipv6 ? ipam_prefix_format(&cfg->ipv6_network, net6) : "",
	         cfg->subnet_len, cfg->backend_type);
	if (cfg->backend_defaulted)
		log_warnx("no Backend in the network config: using udp, as flannel does");
	init_backend(d);
}

static void fetch_config(struct twilld *d, struct fetch *f);

static void on_config(void *ctx, const struct store_result *res)
{
	struct fetch *f = ctx;
	struct twilld *d = f->d;
	struct subnet_config *cfg;
	char err[SUBNET_ERR_MAX];

	f->inflight = false;
	if (res->err < 0) {
		if (f->hup) {
			log_warnx(
				"SIGHUP: network config %s: cannot read it: %s: keeping the running config",
				d->config_key, res->errmsg ? res->errmsg : strerror(-res->err));
			return;
		}
		warn_once(d, "network config %s: cannot read it from %s: %s, retrying in %ds",
		          d->config_key, d->store->ops->endpoint(d->store),
		          res->errmsg ? res->errmsg : strerror(-res->err), CONFIG_RETRY_MS / 1000);
		retry_in(d, RETRY_CONFIG, CONFIG_RETRY_MS);
		return;
	}
	if (res->n_kvs == 0) {
		if (f->hup) {
			log_warnx(
				"SIGHUP: network config %s: not found: keeping the running config",
				d->config_key);
			return;
		}
		warn_once(d,
		          "network config %s: not found, retrying in %ds (twillctl config set ...)",
		          d->config_key, CONFIG_RETRY_MS / 1000);
		retry_in(d, RETRY_CONFIG, CONFIG_RETRY_MS);
		return;
	}
	cfg = subnet_config_parse(res->kvs[0].value, res->kvs[0].value_len, err, sizeof(err));
	if (!cfg) {
		if (f->hup) {
			log_warnx(
				"SIGHUP: network config %s: invalid: %s: keeping the running config",
				d->config_key, err);
			return;
		}
		warn_once(d, "network config %s: invalid: %s, retrying in %ds", d->config_key, err,
		          CONFIG_RETRY_MS / 1000);
		retry_in(d, RETRY_CONFIG, CONFIG_RETRY_MS);
		return;
	}
	if (!f->hup) {
		apply_config(d, cfg);
		return;
	}
	if (!d->cfg) {
		/* still starting: the start-up fetch takes it from here */
		subnet_config_free(cfg);
		return;
	}
	if (subnet_config_equal(d->cfg, cfg)) {
		log_info("SIGHUP: network config %s: unchanged", d->config_key);
	} else {
		char diff[1024];

		log_warnx(
			"SIGHUP: network config %s: changed (%s): restart twilld to apply it (the running config stays in use)",
			d->config_key, subnet_config_diff(d->cfg, cfg, diff, sizeof(diff)));
	}
	subnet_config_free(cfg);
}

static void fetch_config(struct twilld *d, struct fetch *f)
{
	int r;

	if (f->inflight)
		return;
	r = d->store->ops->get(d->store, d->config_key, on_config, f);
	if (r < 0) {
		if (f->hup) {
			log_warnx("SIGHUP: network config %s: cannot query the store: %s",
			          d->config_key, strerror(-r));
			return;
		}
		warn_once(d, "network config %s: cannot query the store: %s, retrying in %ds",
		          d->config_key, strerror(-r), CONFIG_RETRY_MS / 1000);
		retry_in(d, RETRY_CONFIG, CONFIG_RETRY_MS);
		return;
	}
	f->inflight = true;
}

static void on_retry(struct ev_timer *t, void *ctx)
{
	struct twilld *d = ctx;
	enum retry_what what = d->retry_what;

	(void)t;
	d->retry_what = RETRY_NONE;
	switch (what) {
	case RETRY_CONFIG:
		fetch_config(d, &d->fetch_start);
		break;
	case RETRY_INIT:
		init_backend(d);
		break;
	case RETRY_START:
		if (d->has_own && !d->started)
			start_backend(d);
		break;
	case RETRY_NONE:
		break;
	}
}

static void on_signal(struct ev_signal *s, int signo, void *ctx)
{
	struct twilld *d = ctx;

	(void)s;
	if (signo == SIGHUP) {
		if (!d->cfg) {
			log_info("SIGHUP: no valid network config yet: checking %s now",
			         d->config_key);
			if (d->retry_what == RETRY_CONFIG) {
				ev_timer_stop(d->retry);
				d->retry_what = RETRY_NONE;
				fetch_config(d, &d->fetch_start);
			}
			return;
		}
		log_info("SIGHUP: reading network config %s again", d->config_key);
		fetch_config(d, &d->fetch_hup);
		return;
	}
	log_info("%s: exiting; the lease and the kernel state stay in place",
	         signo == SIGTERM ? "SIGTERM" : "SIGINT");
	ev_loop_stop(d->loop);
}

static void log_compat_notes(const struct twilld_opts *o)
{
	if (o->vmodule && *o->vmodule)
		log_debug("-vmodule is accepted for flanneld compatibility and ignored");
	if (o->log_backtrace_at && *o->log_backtrace_at)
		log_debug("-log_backtrace_at is accepted for flanneld compatibility and ignored");
	if (o->renew_margin_min * 60 >= o->lease_ttl_s)
		log_info(
			"--subnet-lease-renew-margin (%lld min) is not shorter than --subnet-lease-ttl (%lld s): the lease is renewed at half its TTL",
			(long long)o->renew_margin_min, (long long)o->lease_ttl_s);
}

/* The external interface, as flanneld chooses it (daemon/iface.h). */
static int choose_iface(struct twilld *d)
{
	const struct twilld_opts *o = d->o;
	struct iface_sel sel = { 0 };
	char err[IFACE_ERR_MAX], ip[IPAM_ADDR_STRLEN], pip[IPAM_ADDR_STRLEN];
	int r;

	sel.ifaces = o->iface.v;
	sel.n_ifaces = o->iface.n;
	sel.regexes = o->iface_regex.v;
	sel.n_regexes = o->iface_regex.n;
	sel.can_reach = o->iface_can_reach;
	sel.public_ip = o->has_public_ip ? &o->public_ip_addr : NULL;
	r = iface_choose(&sel, &d->ext, err, sizeof(err));
	if (r < 0) {
		log_error("failed to find an interface to use: %s", err);
		return r;
	}
	log_info("using interface %s (index %d, MTU %d), address %s, public IP %s", d->ext.name,
	         d->ext.ifindex, d->ext.mtu, ipam_addr_format(&d->ext.iface_addr, ip),
	         ipam_addr_format(&d->ext.public_ip, pip));
	return 0;
}

/* The loop, its signals and timers, and the metrics; 0 or -errno (logged). */
static int start_loop(struct twilld *d)
{
	const struct twilld_opts *o = d->o;
	int r;

	d->loop = ev_loop_new();
	if (!d->loop) {
		r = -errno;
		log_error("event loop: %s", strerror(-r));
		return r;
	}
	d->sig_term = ev_signal_new(d->loop, SIGTERM, on_signal, d);
	d->sig_int = ev_signal_new(d->loop, SIGINT, on_signal, d);
	d->sig_hup = ev_signal_new(d->loop, SIGHUP, on_signal, d);
	d->retry = ev_timer_new(d->loop, on_retry, d);
	d->grace = grace_new(d->loop, REMOVE_GRACE_MS, REMOVE_GRACE_SLACK_MS, on_grace_over, d);
	if (!d->sig_term || !d->sig_int || !d->sig_hup || !d->retry || !d->grace) {
		r = -errno;
		log_error("signals and timers: %s", strerror(-r));
		return r;
	}

	{
		struct twilld_metrics_src ms = {
			.store = &d->store,
			.lm = &d->lm,
			.be_ops = &d->be_ops,
			.be = &d->be,
			.started = &d->started,
			.lease_ttl_s = o->lease_ttl_s,
			.renew_margin_s = o->renew_margin_min * 60,
		};

		/* registers every twill_* family (metrics_register_twill) and the scrape callback */
		d->tm = twilld_metrics_new(metrics_global(), &ms);
		if (!d->tm)
			log_warnx("metrics: cannot set up twill's metrics: %s", strerror(errno));
	}
	return 0;
}

int twilld_run(const struct twilld_opts *o)
{
	struct twilld *d = calloc(1, sizeof(*d));
	char err[IFACE_ERR_MAX];
	int r = 0;

	if (!d)
		return -ENOMEM;
	d->o = o;
	d->fetch_start.d = d;
	d->fetch_hup.d = d;
	d->fetch_hup.hup = true;
	log_info("twilld %s starting", TWILL_VERSION);
	log_compat_notes(o);

	if (!store_flags_prefix(&o->store, d->prefix, sizeof(d->prefix))) {
		log_error("--etcd-prefix \"%s\": empty or too long",
		          o->store.prefix ? o->store.prefix : "");
		r = -EINVAL;
		goto out;
	}
	snprintf(d->config_key, sizeof(d->config_key), "%s/config",
	         strcmp(d->prefix, "/") == 0 ? "" : d->prefix);

	r = be_settings_from_env(&d->be_set, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		goto out;
	}
	r = choose_iface(d);
	if (r < 0)
		goto out;
	r = start_loop(d);
	if (r < 0)
		goto out;

	if (o->healthz_port > 0) {
		r = twilld_start_health(d);
		if (r < 0)
			goto out;
	}

	r = twilld_start_iptables(d);
	if (r < 0)
		goto out;

	d->store = store_flags_open(d->loop, &o->store, err, sizeof(err));
	if (!d->store) {
		r = errno ? -errno : -EINVAL;
		log_error("store: %s", err);
		goto out;
	}
	log_info("store: %s (%s), prefix %s", d->store->ops->endpoint(d->store),
	         d->store->ops->name, d->prefix);

	fetch_config(d, &d->fetch_start);
	r = ev_loop_run(d->loop);
	if (r < 0)
		log_error("event loop failed: %s", strerror(-r));
	else
		r = d->fatal;
out:
	twilld_metrics_free(d->tm); /* metrics_off_scrape: no scrape may see d after this */
	ipt_free(d->ipt);
	ip6t_free(d->ip6t);
	health_free(d->health);
	twilld_status_free(d->status);
	leasemgr_free(d->lm);
	if (d->be_ops && d->be)
		d->be_ops->stop(d->be);
	store_free(d->store);
	subnet_config_free(d->cfg);
	lease_clear(&d->own);
	lease_attrs_clear(&d->attrs);
	/* pending withdrawals are dropped: the next start resyncs the kernel */
	grace_free(d->grace);
	free(d->skip_seen);
	ev_loop_free(d->loop);
	free(d);
	return r;
}
