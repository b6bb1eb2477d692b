/*
 * twilld's operations wiring (see twilld.c): iptables and ip6tables (start, sync reports),
 * /healthz and /readyz (readiness), /v1/status.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/health.h"
#include "daemon/ip6tables.h"
#include "daemon/iptables.h"
#include "daemon/metrics_daemon.h"
#include "daemon/status.h"
#include "daemon/twilld_int.h"
#include "lib/ev.h"
#include "lib/log.h"
#include "lib/metrics.h"

/* ip6tables follows the config's EnableIPv6; -errno (loop stopped) when --ip-masq cannot work. */
int twilld_start_ip6tables(struct twilld *d)
{
	struct ip6t_opts o = {
		.enable_ipv6 = d->cfg->enable_ipv6,
		.forward_rules = d->o->iptables_forward_rules,
		.masq = d->o->ip_masq,
		.resync_s = (unsigned)d->o->iptables_resync_s,
		.subnet_file = d->o->subnet_file,
		.tm = d->tm,
	};
	int r = ip6t_start(d->loop, &o, &d->ip6t);

	if (r < 0) {
		d->fatal = r;
		ev_loop_stop(d->loop);
	}
	return r;
}

static void ipt_done(void *ctx, const struct ipt_result *res)
{
	struct twilld *d = ctx;

	if (res->err < 0) {
		const char *msg = res->msg ? res->msg : strerror(-res->err);

		if (strcmp(msg, d->ipt_last_err) != 0)
			log_warnx("iptables: sync failed: %s, retrying in %llds", msg,
			          (long long)d->o->iptables_resync_s);
		else
			log_debug("iptables: sync failed again: %s", msg);
		snprintf(d->ipt_last_err, sizeof(d->ipt_last_err), "%s", msg);
		return;
	}
	d->ipt_last_err[0] = '\0';
	if (res->removed)
		log_info("iptables: removed %u chains of turned-off features", res->removed);
	if (res->first) {
		log_info("iptables: rules in place (forward rules %s, masquerade %s)",
		         d->o->iptables_forward_rules ? "on" : "off", d->o->ip_masq ? "on" : "off");
	} else if (res->repaired) {
		twilld_metrics_kernel_repairs(d->tm, res->repaired);
		log_warnx("iptables: %u missing or changed rules restored", res->repaired);
	}
}

/* 0, or -errno when --ip-masq cannot work (fatal); forward rules alone only log. */
int twilld_start_iptables(struct twilld *d)
{
	struct ipt_opts io = { 0 };
	char state[4096], err[IPT_ERR_MAX];

	io.forward_rules = d->o->iptables_forward_rules;
	io.masq = d->o->ip_masq;
	io.resync_s = (unsigned)d->o->iptables_resync_s;
	io.state_file = ipt_state_path(d->o->subnet_file, state, sizeof(state)) == 0 ? state : NULL;
	io.random_fully = -1;
	io.done = ipt_done;
	io.ctx = d;
	d->ipt = ipt_new(d->loop, &io, err, sizeof(err));
	if (d->ipt)
		return 0;
	if (d->o->ip_masq) {
		int r = errno ? -errno : -EINVAL;

		if (r == -ENOENT) {
			log_debug("iptables: %s", err);
			log_error(
				"--ip-masq needs iptables-save and iptables-restore: install the iptables package");
		} else {
			log_error("--ip-masq: iptables: %s", err);
		}
		return r;
	}
	log_error("iptables: %s: continuing without iptables rules", err);
	return 0;
}

/*
 * /readyz: ready once the backend runs with a lease and the subnet file is written, then while
 * the lease can be confirmed (twilld_metrics_ready: held, not expired, etcd answering).
 */
/* Dual-stack: whether the backend's IPv6 half works (true when there is none). */
static bool v6_working(struct twilld *d)
{
	struct be_stats bs = { 0 };

	if (!d->be || !d->be_ops->stats)
		return true;
	d->be_ops->stats(d->be, &bs);
	return !bs.v6_configured || bs.v6_working;
}

static bool health_ready(void *ctx, char *reason, size_t len)
{
	struct twilld *d = ctx;
	const char *why = "backend not started yet";

	if (d->started && !v6_working(d)) {
		snprintf(
			reason, len,
			"EnableIPv6: the backend's IPv6 half is not working (device missing or down)");
		return false;
	}
	if (d->started)
		return twilld_metrics_ready(d->tm, reason, len);
	if (!d->cfg)
		why = "no valid network config yet";
	else if (d->cfg->enable_ipv6 && !d->ext.has_ipv6)
		why = "EnableIPv6: no IPv6 address on the interface and no --public-ipv6";
	else if (!d->lm)
		why = "backend not initialised yet";
	else if (!d->has_own)
		why = "no lease yet";
	snprintf(reason, len, "%s", why);
	return false;
}

static int start_health(struct twilld *d)
{
	struct health_opts ho = { 0 };
	struct metrics *reg = metrics_global();
	char err[HEALTH_ERR_MAX];

	ho.ip = d->o->healthz_ip;
	ho.port = (uint16_t)d->o->healthz_port;
	ho.metrics = reg;
	ho.ready = health_ready;
	ho.ready_ctx = d;
	ho.status = d->status ? twilld_status_render : NULL;
	ho.status_ctx = d->status;
	d->health = health_new(d->loop, &ho, err, sizeof(err));
	if (!d->health) {
		int r = errno ? -errno : -EINVAL;

		log_error("healthz: %s", err);
		return r;
	}
	log_info("healthz: serving /healthz, /readyz, /metrics and /v1/status on %s:%u",
	         ho.ip && *ho.ip ? ho.ip : "0.0.0.0", health_port(d->health));
	return 0;
}

/* /v1/status and the health server (--healthz-port > 0); 0 or -errno (logged). */
int twilld_start_health(struct twilld *d)
{
	const struct twilld_opts *o = d->o;
	struct twilld_status_src ss = {
		.store = &d->store,
		.lm = &d->lm,
		.cfg = &d->cfg,
		.be_ops = &d->be_ops,
		.be = &d->be,
		.ipt = &d->ipt,
		.tm = &d->tm,
		.started = &d->started,
		.mtu = &d->mtu,
		.ext = &d->ext,
		.last_error = d->last_err,
		.ipt_last_err = d->ipt_last_err,
		.subnet_file = o->subnet_file,
		.masq = o->ip_masq,
		.forward_rules = o->iptables_forward_rules,
	};

	d->status = twilld_status_new(&ss);
	return start_health(d);
}
