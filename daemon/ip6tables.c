/*
 * The ip6tables half of flannel's rules: a struct ipt of family AF_INET6 and
 * its result handling (the IPv4 instance's is in daemon/twilld.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/ip6tables.h"
#include "daemon/iptables.h"
#include "daemon/metrics_daemon.h"
#include "lib/log.h"

struct ip6t {
	struct ipt *ipt;
	struct ip6t_opts o;
	char last_err[IPT_ERR_MAX]; /* a failure is logged once until it changes */
};

static void on_done(void *ctx, const struct ipt_result *res)
{
	struct ip6t *t = ctx;

	if (res->err < 0) {
		const char *msg = res->msg && *res->msg ? res->msg : strerror(-res->err);

		if (strcmp(msg, t->last_err) != 0)
			log_warnx("ip6tables: sync failed: %s, retrying in %us", msg,
			          t->o.resync_s);
		else
			log_debug("ip6tables: sync failed again: %s", msg);
		snprintf(t->last_err, sizeof(t->last_err), "%s", msg);
		return;
	}
	t->last_err[0] = '\0';
	if (res->removed)
		log_info("ip6tables: removed %u chains of turned-off features", res->removed);
	if (res->first && t->o.enable_ipv6) {
		log_info("ip6tables: rules in place for the IPv6 network (forward rules %s, "
		         "masquerade %s)",
		         t->o.forward_rules ? "on" : "off", t->o.masq ? "on" : "off");
	} else if (res->repaired) {
		twilld_metrics_kernel_repairs(t->o.tm, res->repaired);
		log_warnx("ip6tables: %u missing or changed rules restored", res->repaired);
	}
}

int ip6t_start(struct ev_loop *loop, const struct ip6t_opts *o, struct ip6t **ret)
{
	struct ipt_opts io = { 0 };
	char state[4096], err[IPT_ERR_MAX];
	struct ip6t *t;
	int r;

	*ret = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->o = *o;
	t->o.subnet_file = NULL;
	t->o.path = NULL;
	io.family = AF_INET6;
	io.forward_rules = o->enable_ipv6 && o->forward_rules;
	io.masq = o->enable_ipv6 && o->masq;
	io.resync_s = o->resync_s;
	io.state_file = ipt6_state_path(o->subnet_file, state, sizeof(state)) == 0 ? state : NULL;
	io.path = o->path;
	io.random_fully = -1;
	io.done = on_done;
	io.ctx = t;
	t->ipt = ipt_new(loop, &io, err, sizeof(err));
	if (!t->ipt) {
		r = errno ? -errno : -EINVAL;
		free(t);
		if (io.masq) {
			if (r == -ENOENT) {
				log_debug("ip6tables: %s", err);
				log_error("--ip-masq with EnableIPv6 needs ip6tables-save and "
				          "ip6tables-restore: install the iptables package");
			} else {
				log_error("--ip-masq with EnableIPv6: ip6tables: %s", err);
			}
			return r;
		}
		log_error("ip6tables: %s: continuing without ip6tables rules", err);
		return 0;
	}
	if (!o->enable_ipv6) {
		/* no IPv6 network: only what an earlier run with EnableIPv6 left goes away */
		r = ipt_set_lease(t->ipt, NULL, NULL);
		if (r < 0)
			log_warnx("ip6tables: cannot remove old chains: %s", strerror(-r));
	}
	*ret = t;
	return 0;
}

int ip6t_set_lease(struct ip6t *t, const struct ipam_prefix *network,
                   const struct ipam_prefix *subnet)
{
	int r;

	if (!t || !t->o.enable_ipv6)
		return 0;
	r = ipt_set_lease(t->ipt, network, subnet);
	if (r < 0)
		log_warnx("ip6tables: cannot set the IPv6 network and lease: %s", strerror(-r));
	return r;
}

void ip6t_free(struct ip6t *t)
{
	if (!t)
		return;
	ipt_free(t->ipt);
	free(t);
}
