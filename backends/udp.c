/* The udp backend: TUN <-> UDP forwarder (see udp.h for the design). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>

#include "backends/udp_int.h"
#include "lib/errfmt.h"
#include "lib/ev.h"
#include "lib/log.h"
#include "lib/nl.h"

/* ---- Options ---- */

int udp_parse_options(const struct subnet_config *cfg, const struct be_settings *set,
                      struct udp_options *ret, char *err, size_t errlen)
{
	struct udp_options o = { .port = UDP_DEFAULT_PORT,
		                 .gro = true,
		                 .busy_poll_us = UDP_DEFAULT_BUSY_POLL_US };
	json_t *v;
	long ncpu;

	v = subnet_config_backend_opt(cfg, "Port");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 65535) {
			errfmt(err, errlen,
			       "udp: Backend.Port must be an integer 0..65535 (0: default 8285)");
			return -EINVAL;
		}
		if (json_integer_value(v) != 0)
			o.port = (uint16_t)json_integer_value(v);
	}
	v = subnet_config_backend_opt(cfg, "Naive");
	if (v) {
		if (!json_is_boolean(v)) {
			errfmt(err, errlen, "udp: Backend.Naive must be true or false");
			return -EINVAL;
		}
		o.naive = json_is_true(v);
	}
	if (set && set->udp_naive)
		o.naive = true;
	if (set && set->udp_no_gro)
		o.gro = false;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	o.workers = ncpu < 1 ? 1 : ncpu > 4 ? 4 : (unsigned)ncpu;
	if (set && set->udp_workers)
		o.workers = set->udp_workers;
	if (set && set->udp_busy_poll_set)
		o.busy_poll_us = set->udp_busy_poll_us;
	if (o.naive) {
		o.workers = 1;
		o.busy_poll_us = 0;
	}
	*ret = o;
	return 0;
}

/* ---- Table maintenance (event loop thread) ---- */

/* Publish a new forwarding table; 0 or -errno (not logged: the callers say what it was for). */
static int rebuild(struct backend *be)
{
	struct udp_table *t = udp_table_new_ds(
		&be->network, be->has_own ? &be->own : NULL, be->ipv6 ? &be->network6 : NULL,
		be->has_own6 ? &be->own6 : NULL, be->peers, be->npeers);
	size_t i, v4only = 0;

	if (!t)
		return errno ? -errno : -ENOMEM;
	if (t->skipped)
		log_debug("udp: %zu lease(s) left out of the table (overlap or outside Network)",
		          t->skipped);
	for (i = 0; be->ipv6 && i < be->npeers; i++)
		v4only += !be->peers[i].ipv6_ok;
	be->v6_peers = 0;
	for (i = 0; i < t->nroutes6; i++)
		be->v6_peers += t->routes6[i].peer_be != 0;
	atomic_store(&be->table_routes, t->nroutes);
	atomic_store(&be->table_routes6, t->nroutes6);
	atomic_store(&be->peers_v4only, v4only);
	udp_rcu_publish(&be->rcu, t);
	atomic_fetch_add(&be->table_updates, 1);
	return 0;
}

static bool lease_is_udp(const struct lease *l)
{
	return l->has_ipv4 && l->attrs.public_ip.family == AF_INET &&
	       (l->attrs.backend_type[0] == '\0' || strcasecmp(l->attrs.backend_type, "udp") == 0);
}

static ssize_t peer_find(const struct backend *be, const struct ipam_prefix *subnet)
{
	size_t i;

	for (i = 0; i < be->npeers; i++)
		if (ipam_prefix_equal(&be->peers[i].subnet, subnet))
			return (ssize_t)i;
	return -1;
}

static int peer_reserve(struct backend *be, size_t n)
{
	struct udp_peer *p;
	size_t cap;

	if (n <= be->cap)
		return 0;
	cap = be->cap ? be->cap : 16;
	while (cap < n)
		cap *= 2;
	p = realloc(be->peers, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	be->peers = p;
	be->cap = cap;
	return 0;
}

bool udp_lease_takes_ipv6(const struct lease *l)
{
	const char *d = l ? l->attrs.backend_v6_data : NULL;

	return l && l->has_ipv6 && l->ipv6_subnet.addr.family == AF_INET6 && d && d[0] == '{';
}

/* Was @ip (host order) logged as IPv4-only? If not, remember it; true when it was. */
static bool v4only_seen(struct backend *be, uint32_t ip)
{
	size_t lo = 0, hi = be->nlogged;
	uint32_t *p;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (be->logged[mid] == ip)
			return true;
		if (be->logged[mid] < ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (be->nlogged == be->logcap) {
		size_t cap = be->logcap ? 2 * be->logcap : 16;

		p = realloc(be->logged, cap * sizeof(*p));
		if (!p)
			return true; /* not logged, but nothing lost */
		be->logged = p;
		be->logcap = cap;
	}
	memmove(be->logged + lo + 1, be->logged + lo, (be->nlogged - lo) * sizeof(*be->logged));
	be->logged[lo] = ip;
	be->nlogged++;
	return false;
}

/* With IPv6 on: say once per peer (PublicIP) that it gets no IPv6, and why. */
static void log_v4only(struct backend *be, const struct udp_peer *p)
{
	char ip[IPAM_ADDR_STRLEN], sn[IPAM_PREFIX_STRLEN], sn6[IPAM_PREFIX_STRLEN];
	uint32_t v;

	memcpy(&v, p->public_ip.bytes, 4);
	if (v4only_seen(be, ntohl(v)))
		return;
	ipam_addr_format(&p->public_ip, ip);
	ipam_prefix_format(&p->subnet, sn);
	if (p->has_ipv6)
		log_warnx("udp: peer %s (%s) takes IPv4 only (no BackendV6Data in its lease: "
		          "flanneld or a twill without IPv6 over udp); IPv6 to %s is dropped",
		          ip, sn, ipam_prefix_format(&p->subnet6, sn6));
	else
		log_warnx("udp: peer %s (%s) takes IPv4 only (its lease has no IPv6 subnet)", ip,
		          sn);
}

static void peer_fill(struct backend *be, struct udp_peer *p, const struct lease *l)
{
	memset(p, 0, sizeof(*p));
	p->subnet = ipam_prefix_network(&l->subnet);
	p->public_ip = l->attrs.public_ip;
	if (!be->ipv6)
		return;
	p->has_ipv6 = l->has_ipv6 && l->ipv6_subnet.addr.family == AF_INET6;
	if (p->has_ipv6)
		p->subnet6 = ipam_prefix_network(&l->ipv6_subnet);
	p->ipv6_ok = udp_lease_takes_ipv6(l);
	if (!p->ipv6_ok)
		log_v4only(be, p);
}

static bool peer_equal(const struct udp_peer *a, const struct udp_peer *b)
{
	return ipam_addr_equal(&a->public_ip, &b->public_ip) && a->has_ipv6 == b->has_ipv6 &&
	       a->ipv6_ok == b->ipv6_ok &&
	       (!a->has_ipv6 || ipam_prefix_equal(&a->subnet6, &b->subnet6));
}

static void log_ignored(const struct lease *l)
{
	char buf[IPAM_PREFIX_STRLEN];

	log_warnx("udp: ignoring lease %s with backend type \"%s\"",
	          l->has_ipv4 ? ipam_prefix_format(&l->subnet, buf) : "(no IPv4)",
	          l->attrs.backend_type);
}

/* A lease operation failed with @r: logged here, once (backend_ops: callers do not log it). */
static int lease_failed(const char *what, const struct lease *l, int r)
{
	char buf[IPAM_PREFIX_STRLEN];

	log_warnx("udp: %s%s%s: cannot update the forwarding table: %s", what, l ? " " : "",
	          l ? (l->has_ipv4 ? ipam_prefix_format(&l->subnet, buf) : "(no IPv4)") : "",
	          strerror(-r));
	return r;
}

static int udp_lease_added(struct backend *be, const struct lease *l)
{
	struct udp_peer p;
	ssize_t i;
	int r;

	if (!be || !l)
		return -EINVAL;
	if (!lease_is_udp(l)) {
		log_ignored(l);
		return 0;
	}
	peer_fill(be, &p, l);
	i = peer_find(be, &p.subnet);
	if (i < 0) {
		r = peer_reserve(be, be->npeers + 1);
		if (r < 0)
			return lease_failed("lease", l, r);
		i = (ssize_t)be->npeers++;
	} else if (peer_equal(&be->peers[i], &p)) {
		return 0;
	}
	be->peers[i] = p;
	r = rebuild(be);
	return r < 0 ? lease_failed("lease", l, r) : 0;
}

static int udp_lease_removed(struct backend *be, const struct lease *l)
{
	struct ipam_prefix net;
	ssize_t i;
	int r;

	if (!be || !l)
		return -EINVAL;
	if (!l->has_ipv4)
		return 0;
	net = ipam_prefix_network(&l->subnet);
	i = peer_find(be, &net);
	if (i < 0)
		return 0;
	be->peers[i] = be->peers[--be->npeers];
	r = rebuild(be);
	return r < 0 ? lease_failed("removing lease", l, r) : 0;
}

static int udp_resync(struct backend *be, const struct lease *leases, size_t n)
{
	size_t i;
	int r;

	if (!be)
		return -EINVAL;
	r = peer_reserve(be, n);
	if (r < 0)
		return lease_failed("resync", NULL, r);
	be->npeers = 0;
	for (i = 0; i < n; i++) {
		if (!lease_is_udp(&leases[i])) {
			log_ignored(&leases[i]);
			continue;
		}
		peer_fill(be, &be->peers[be->npeers++], &leases[i]);
	}
	r = rebuild(be);
	return r < 0 ? lease_failed("resync", NULL, r) : 0;
}

static void on_timer(struct ev_timer *t, void *ctx)
{
	struct backend *be = ctx;

	(void)t;
	udp_rcu_reclaim(&be->rcu);
	if (be->stats_file)
		udp_write_stats_file(be);
}

/* ---- Ops ---- */

static void udp_stop(struct backend *be);

static struct backend *be_new(const struct subnet_config *cfg, const struct be_extif *ext)
{
	struct backend *be = calloc(1, sizeof(*be));
	size_t i, k;

	if (!be)
		return NULL;
	be->stop_fd = -1;
	for (i = 0; i < UDP_MAX_WORKERS; i++) {
		be->workers[i].tun_fd = be->workers[i].sock = -1;
		be->workers[i].be = be;
		be->workers[i].idx = i;
		for (k = 0; k < CTR_MAX; k++)
			atomic_init(&be->ctr[i].c[k], 0);
	}
	atomic_init(&be->table_updates, 0);
	atomic_init(&be->table_routes, 0);
	atomic_init(&be->table_routes6, 0);
	atomic_init(&be->peers_v4only, 0);
	be->ext = *ext;
	be->network = ipam_prefix_network(&cfg->network);
	if (cfg->enable_ipv6 && cfg->ipv6_network.addr.family == AF_INET6) {
		be->ipv6 = true;
		be->network6 = ipam_prefix_network(&cfg->ipv6_network);
	}
	be->mtu = ext->mtu - UDP_OVERHEAD;
	return be;
}

/*
 * The lease's backend fields: no BackendType and no BackendData (as flannel's udp);
 * with IPv6, BackendV6Data {"Port":N} tells other twill nodes that this one takes
 * IPv6 (udp_lease_takes_ipv6; flanneld ignores the field for udp leases).
 */
static int set_attrs(struct backend *be, struct lease_attrs *a)
{
	char *v6 = NULL;

	if (be->ipv6 && asprintf(&v6, "{\"Port\":%u}", be->opt.port) < 0)
		return -ENOMEM;
	a->backend_type[0] = '\0';
	lease_attrs_set_backend_data(a, NULL); /* cannot fail */
	free(a->backend_v6_data);
	a->backend_v6_data = v6;
	return 0;
}

/* The parts of init that can fail after the checks: 0 or -errno with the reason in @err. */
static int init_parts(struct backend *be, const struct be_settings *set, char *err, size_t errlen)
{
	const char *sf;
	size_t i;
	int r;

	for (i = 0; i < be->nworkers; i++) {
		r = udp_worker_alloc_bufs(&be->workers[i]);
		if (r < 0)
			return r;
	}
	r = udp_open_tun(be, err, errlen);
	if (r == 0)
		r = udp_open_sockets(be, err, errlen);
	if (r < 0)
		return r;
	r = rebuild(be);
	if (r < 0)
		return r;
	sf = set ? set->udp_stats_file : NULL;
	if (sf && *sf && !(be->stats_file = strdup(sf)))
		return -ENOMEM;
	if (be->loop) {
		be->timer = ev_timer_new(be->loop, on_timer, be);
		if (!be->timer || ev_timer_start(be->timer, 250, 250) < 0)
			return -ENOMEM;
	}
	return 0;
}

static struct backend *udp_init(struct ev_loop *loop, const struct subnet_config *cfg,
                                const struct be_extif *ext, const struct be_settings *set,
                                struct lease_attrs *ret_attrs, char *err, size_t errlen)
{
	struct backend *be;
	char none[1];
	int r;

	if (!err || !errlen) {
		err = none;
		errlen = sizeof(none);
	}
	err[0] = '\0';
	if (!cfg || !ext || !ret_attrs) {
		errfmt(err, errlen, "udp: init called without config, interface or attributes");
		errno = EINVAL;
		return NULL;
	}
	if (!cfg->enable_ipv4 || cfg->network.addr.family != AF_INET) {
		errfmt(err, errlen, "udp: the udp backend needs an IPv4 Network");
		errno = EINVAL;
		return NULL;
	}
	if (ext->mtu <= UDP_OVERHEAD + 68) {
		errfmt(err, errlen, "udp: external interface %s MTU %d is too small (%d needed)",
		       ext->name, ext->mtu, UDP_OVERHEAD + 69);
		errno = EINVAL;
		return NULL;
	}
	be = be_new(cfg, ext);
	if (!be) {
		errfmt(err, errlen, "udp: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	be->loop = loop;
	r = udp_parse_options(cfg, set, &be->opt, err, errlen);
	if (r < 0)
		goto fail;
	be->nworkers = be->opt.workers;
	udp_rcu_init(&be->rcu, be->nworkers);
	be->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = be->stop_fd < 0 ? -errno : init_parts(be, set, err, errlen);
	if (r == 0)
		r = set_attrs(be, ret_attrs);
	if (r < 0)
		goto fail;
	log_info("udp %s: %s mode, %zu worker(s), port %u, MTU %d", UDP_DEVICE,
	         be->opt.naive ? "naive" : "offload", be->nworkers, be->opt.port, be->mtu);
	return be;
fail:
	if (!err[0])
		errfmt(err, errlen, "udp %s: %s", UDP_DEVICE, strerror(-r));
	udp_stop(be);
	errno = -r;
	return NULL;
}

static int udp_start(struct backend *be, const struct lease *own, char *err, size_t errlen)
{
	char none[1];
	int r;

	if (!err || !errlen) {
		err = none;
		errlen = sizeof(none);
	}
	if (!be || !own || !own->has_ipv4) {
		errfmt(err, errlen, "udp %s: the own lease has no IPv4 subnet", UDP_DEVICE);
		return -EINVAL;
	}
	be->own = ipam_prefix_network(&own->subnet);
	be->has_own = true;
	be->has_own6 = be->ipv6 && own->has_ipv6 && own->ipv6_subnet.addr.family == AF_INET6;
	if (be->has_own6)
		be->own6 = ipam_prefix_network(&own->ipv6_subnet);
	else if (be->ipv6 && !be->warned_no_own6) /* once, not at each retry of start */
		log_warnx("udp %s: EnableIPv6 but the own lease has no IPv6 subnet: IPv4 only",
		          UDP_DEVICE);
	be->warned_no_own6 = be->ipv6 && !be->has_own6;
	r = udp_configure_device(be, err, errlen);
	if (r < 0)
		return r;
	r = rebuild(be);
	if (r < 0) {
		errfmt(err, errlen, "udp %s: cannot build the forwarding table: %s", UDP_DEVICE,
		       strerror(-r));
		return r;
	}
	if (!be->running) {
		r = udp_start_workers(be, err, errlen);
		if (r < 0)
			return r;
	}
	return be->mtu;
}

static void udp_stop(struct backend *be)
{
	size_t i;

	if (!be)
		return;
	udp_stop_workers(be);
	udp_close_fds(be);
	if (be->stop_fd >= 0)
		close(be->stop_fd);
	ev_timer_free(be->timer);
	udp_rcu_destroy(&be->rcu);
	for (i = 0; i < UDP_MAX_WORKERS; i++)
		udp_worker_free_bufs(&be->workers[i]);
	free(be->peers);
	free(be->logged);
	free(be->stats_file);
	free(be);
}

/*
 * For /readyz and /metrics: the IPv6 half is configured with EnableIPv6, works once
 * flannel0 has the own IPv6 address and route; its leases are the peers that take
 * IPv6; peers logged as IPv4-only count as unusable IPv6 halves.
 */
/* backend_ops.stats: the data path counters (drops summed over both directions), IPv6 half. */
static void udp_stats_be(struct backend *be, struct be_stats *ret)
{
	struct udp_stats us;

	memset(ret, 0, sizeof(*ret));
	if (!be)
		return;
	memset(&us, 0, sizeof(us));
	udp_backend_stats(be, &us);
	ret->has_datapath = true;
	ret->tx_packets = us.tx_packets;
	ret->tx_bytes = us.tx_bytes;
	ret->rx_packets = us.rx_packets;
	ret->rx_bytes = us.rx_bytes;
	for (unsigned v = 1; v < UDP_VERDICT_MAX && ret->n_drops < BE_DROPS_MAX; v++) {
		ret->drops[ret->n_drops].reason = udp_verdict_name((enum udp_verdict)v);
		ret->drops[ret->n_drops++].n = us.drop_tun[v] + us.drop_wire[v];
	}
	for (size_t i = 0; i < us.n_peer_drops && ret->n_peer_drops < BE_PEER_DROPS_MAX; i++) {
		struct in_addr a = { .s_addr = us.peer_drops[i].addr_be };

		inet_ntop(AF_INET, &a, ret->peer_drops[ret->n_peer_drops].addr,
		          sizeof(ret->peer_drops[0].addr));
		ret->peer_drops[ret->n_peer_drops].reason =
			udp_verdict_name(us.peer_drops[i].reason);
		ret->peer_drops[ret->n_peer_drops++].n = us.peer_drops[i].n;
	}
	if (!be->ipv6)
		return;
	ret->v6_configured = true;
	ret->v6_working = be->v6_up;
	ret->v6_leases = be->v6_peers;
	ret->v6_objects = be->v6_up ? 2 : 0; /* the address and the route on flannel0 */
	ret->v6_bad_leases = be->nlogged;
}

const struct backend_ops udp_backend_ops = {
	.name = "udp",
	.init = udp_init,
	.start = udp_start,
	.lease_added = udp_lease_added,
	.lease_removed = udp_lease_removed,
	.resync = udp_resync,
	.stop = udp_stop,
	.stats = udp_stats_be,
};
