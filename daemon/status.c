#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/rtnetlink.h>

#include "backends/udp.h"
#include "daemon/iptables.h"
#include "daemon/metrics_daemon.h"
#include "daemon/status.h"
#include "lib/ev.h"
#include "lib/nl.h"
#include "subnet/config.h"
#include "subnet/leasemgr.h"
#include "subnet/store.h"

/* ---- The document (pure) ---- */

static json_t *jstr(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *jprefix(bool has, const struct ipam_prefix *p)
{
	char buf[IPAM_PREFIX_STRLEN];

	return has ? json_string(ipam_prefix_format(p, buf)) : json_null();
}

static json_t *jaddr(const struct ipam_addr *a)
{
	char buf[IPAM_ADDR_STRLEN];

	return a->family ? json_string(ipam_addr_format(a, buf)) : json_null();
}

static json_t *build_lease(const struct status_input *in)
{
	json_t *o;

	if (!in->has_lease)
		return json_null();
	o = json_pack("{s:o,s:o,s:o,s:o}", "subnet", jprefix(in->has_ipv4, &in->subnet),
	              "ipv6_subnet", jprefix(in->has_ipv6, &in->ipv6_subnet), "public_ip",
	              jaddr(&in->public_ip), "subnet_file", jstr(in->subnet_file));
	if (!o)
		return NULL;
	if (in->expires_at > 0) {
		json_object_set_new(o, "expires_at", json_integer(in->expires_at));
		json_object_set_new(o, "expires_in_s", json_integer(in->expires_at - in->now_s));
	} else {
		/* a reservation (key without an etcd lease) never expires */
		json_object_set_new(o, "expires_at", json_null());
		json_object_set_new(o, "expires_in_s", json_null());
	}
	return o;
}

static json_t *build_backend(const struct status_input *in)
{
	json_t *devs = json_array(), *o;

	for (size_t i = 0; devs && i < in->n_devices; i++) {
		const struct status_device *d = &in->devices[i];

		json_array_append_new(devs, json_pack("{s:s,s:s,s:b,s:i,s:b}", "name", d->name,
		                                      "kind", d->kind, "present", d->present, "mtu",
		                                      d->mtu, "up", d->up));
	}
	o = json_pack("{s:o,s:b,s:o,s:o,s:o,s:o}", "type", jstr(in->backend), "started",
	              in->started, "mtu", in->mtu > 0 ? json_integer(in->mtu) : json_null(),
	              "interface", jstr(in->ext_name), "interface_ip", jaddr(&in->ext_addr),
	              "devices", devs ? devs : json_null());
	return o;
}

static json_t *build_etcd(const struct status_input *in)
{
	json_t *o = json_pack("{s:o,s:o}", "store", jstr(in->store_kind), "endpoint",
	                      jstr(in->endpoint)),
	       *err;
	uint64_t nreq = 0;

	if (!o || !in->has_store_stats)
		return o;
	err = json_object();
	for (unsigned i = 0; i < STORE_STAT_OP_COUNT; i++)
		nreq += in->stats.requests[i];
	for (unsigned i = 0; err && i < STORE_STAT_ERR_COUNT; i++)
		json_object_set_new(err, store_stat_err_name(i),
		                    json_integer((json_int_t)in->stats.errors[i]));
	json_object_set_new(o, "requests", json_integer((json_int_t)nreq));
	json_object_set_new(o, "connections", json_integer((json_int_t)in->stats.connects));
	json_object_set_new(o, "errors", err ? err : json_null());
	json_object_set_new(o, "last_ok_ms_ago",
	                    in->stats.last_ok_ms && in->now_ms >= in->stats.last_ok_ms
	                            ? json_integer((json_int_t)(in->now_ms - in->stats.last_ok_ms))
	                            : json_null());
	return o;
}

static json_t *build_leases(const struct status_input *in)
{
	json_t *o = json_pack("{s:I,s:I,s:I}", "remote", (json_int_t)in->remote_leases, "renewals",
	                      (json_int_t)in->renewals, "skipped", (json_int_t)in->skipped);

	if (!o)
		return NULL;
	json_object_set_new(o, "routes_programmed",
	                    in->has_routes ? json_integer((json_int_t)in->routes_programmed)
	                                   : json_null());
	json_object_set_new(o, "routes_source", jstr(in->has_routes ? in->routes_source : NULL));
	json_object_set_new(o, "kernel_reconciles",
	                    in->has_be_stats ? json_integer((json_int_t)in->be.reconciles)
	                                     : json_null());
	json_object_set_new(o, "kernel_repairs",
	                    in->has_be_stats ? json_integer((json_int_t)in->be.repairs)
	                                     : json_null());
	return o;
}

static json_t *build_iptables(const struct status_input *in)
{
	if (!in->ipt_on)
		return json_pack("{s:b,s:b,s:b,s:n}", "active", false, "masquerade", in->masq,
		                 "forward_rules", in->forward_rules, "last_error");
	return json_pack(
		"{s:b,s:b,s:b,s:b,s:o}", "active", true, "masquerade", in->masq, "forward_rules",
		in->forward_rules, "random_fully", in->random_fully, "last_error",
		in->ipt_error && *in->ipt_error ? json_string(in->ipt_error) : json_null());
}

/* The per-peer drop table: [{"address", "reason", "packets"}], most packets first. */
static json_t *build_peer_drops(const struct status_input *in)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < in->be.n_peer_drops && i < BE_PEER_DROPS_MAX; i++) {
		json_t *e = json_pack(
			"{s:s,s:s,s:I}", "address", in->be.peer_drops[i].addr, "reason",
			in->be.peer_drops[i].reason ? in->be.peer_drops[i].reason : "unknown",
			"packets", (json_int_t)in->be.peer_drops[i].n);

		if (!e || json_array_append_new(a, e) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *build_udp(const struct status_input *in)
{
	json_t *drops, *peers;

	if (!in->has_be_stats || !in->be.has_datapath)
		return json_null();
	drops = json_object();
	for (size_t i = 0; drops && i < in->be.n_drops && i < BE_DROPS_MAX; i++)
		if (in->be.drops[i].n && in->be.drops[i].reason)
			json_object_set_new(drops, in->be.drops[i].reason,
			                    json_integer((json_int_t)in->be.drops[i].n));
	peers = build_peer_drops(in);
	return json_pack("{s:I,s:I,s:o,s:o}", "tx_packets", (json_int_t)in->be.tx_packets,
	                 "rx_packets", (json_int_t)in->be.rx_packets, "drops",
	                 drops ? drops : json_null(), "peer_drops", peers ? peers : json_null());
}

json_t *status_build(const struct status_input *in)
{
	json_t *o, *net;

	net = in->has_config ? json_pack("{s:o,s:i,s:o}", "network", jprefix(true, &in->network),
	                                 "subnet_len", (int)in->subnet_len, "ipv6_network",
	                                 jprefix(in->has_ipv6_network, &in->ipv6_network))
	                     : json_null();
	o = json_pack("{s:s,s:s,s:I,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "schema",
	              STATUS_SCHEMA, "version", TWILL_VERSION, "time", (json_int_t)in->now_s,
	              "ready", in->ready, "ready_reason",
	              in->ready || !in->ready_reason ? json_null() : json_string(in->ready_reason),
	              "last_error",
	              in->last_error && *in->last_error ? json_string(in->last_error) : json_null(),
	              "network", net, "lease", build_lease(in), "backend", build_backend(in),
	              "etcd", build_etcd(in), "leases", build_leases(in), "iptables",
	              build_iptables(in), "udp", build_udp(in));
	if (!o)
		errno = ENOMEM;
	return o;
}

/* ---- Collecting from the daemon ---- */

struct twilld_status {
	struct twilld_status_src src;
};

struct twilld_status *twilld_status_new(const struct twilld_status_src *src)
{
	struct twilld_status *st;

	if (!src) {
		errno = EINVAL;
		return NULL;
	}
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->src = *src;
	return st;
}

void twilld_status_free(struct twilld_status *st)
{
	free(st);
}

#define SRC(st, f) ((st)->src.f ? *(st)->src.f : NULL)

struct dump_ctx {
	struct status_input *in;
	const char *want[STATUS_DEVICES_MAX];
	size_t n_want;
	const struct ipam_prefix *network, *own;
	size_t routes;
};

static int link_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct dump_ctx *x = ctx;
	struct nl_link l;

	if (nl_parse_link(nlh, &l) < 0)
		return 0;
	for (size_t i = 0; i < x->n_want; i++) {
		struct status_device *d = &x->in->devices[i];

		if (strcmp(l.name, x->want[i]) != 0)
			continue;
		d->present = true;
		d->mtu = l.mtu;
		d->up = (l.flags & IFF_UP) != 0;
		snprintf(d->kind, sizeof(d->kind), "%s", l.kind);
	}
	return 0;
}

/* Routes of the main table inside the network, more specific than it, other than our own. */
static int route_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct dump_ctx *x = ctx;
	struct ipam_prefix p = { 0 };
	struct nl_route r;

	if (nl_parse_route(nlh, &r) < 0 || r.table != RT_TABLE_MAIN || r.type != RTN_UNICAST)
		return 0;
	p.addr.family = AF_INET;
	memcpy(p.addr.bytes, &r.dst, 4);
	p.len = r.dst_len;
	if (p.len > x->network->len && ipam_prefix_contains(x->network, &p) &&
	    !(x->own && ipam_prefix_equal(x->own, &p)) && (r.has_gw || r.nh_id))
		x->routes++;
	return 0;
}

/* The backend's devices (and, for vxlan and host-gw, the routes programmed) from the kernel. */
static void collect_kernel(struct twilld_status *st, struct status_input *in,
                           const struct subnet_config *cfg)
{
	struct dump_ctx x = { .in = in };
	char vx[16];
	struct nl_sock *sk;

	if (!in->backend)
		return;
	if (strcmp(in->backend, "vxlan") == 0) {
		json_t *vni = subnet_config_backend_opt(cfg, "VNI");

		snprintf(vx, sizeof(vx), "flannel.%lld",
		         json_is_integer(vni) ? (long long)json_integer_value(vni) : 1LL);
		x.want[x.n_want++] = vx;
	} else if (strcmp(in->backend, "udp") == 0) {
		x.want[x.n_want++] = UDP_DEVICE;
	}
	if (st->src.ext && st->src.ext->name[0])
		x.want[x.n_want++] = st->src.ext->name;
	for (size_t i = 0; i < x.n_want; i++)
		snprintf(in->devices[i].name, sizeof(in->devices[i].name), "%s", x.want[i]);
	in->n_devices = x.n_want;
	sk = nl_sock_open(NULL, 0);
	if (!sk)
		return;
	nl_dump(sk, RTM_GETLINK, AF_UNSPEC, link_cb, &x);
	if (cfg->enable_ipv4 && strcmp(in->backend, "udp") != 0) {
		x.network = &cfg->network;
		x.own = in->has_ipv4 ? &in->subnet : NULL;
		if (nl_dump(sk, RTM_GETROUTE, AF_INET, route_cb, &x) == 0) {
			in->has_routes = true;
			in->routes_programmed = x.routes;
			in->routes_source = "kernel";
		}
	}
	nl_sock_close(sk);
}

static void collect_lease(struct twilld_status *st, struct status_input *in)
{
	struct leasemgr *lm = SRC(st, lm);
	const struct lease *own = lm ? leasemgr_own(lm) : NULL;

	if (own) {
		in->has_lease = true;
		in->has_ipv4 = own->has_ipv4;
		in->subnet = own->subnet;
		in->has_ipv6 = own->has_ipv6;
		in->ipv6_subnet = own->ipv6_subnet;
		in->public_ip = own->attrs.public_ip;
		in->expires_at = own->expires_at;
	}
	in->subnet_file = st->src.subnet_file;
	if (lm) {
		leasemgr_remote(lm, &in->remote_leases);
		in->renewals = leasemgr_renewals(lm);
		in->skipped = leasemgr_skipped(lm);
	}
}

static void collect_backend(struct twilld_status *st, struct status_input *in)
{
	const struct backend_ops *ops = SRC(st, be_ops);
	struct backend *be = SRC(st, be);
	struct udp_stats us;

	in->started = st->src.started && *st->src.started;
	in->mtu = in->started && st->src.mtu ? *st->src.mtu : 0;
	if (st->src.ext) {
		in->ext_name = st->src.ext->name[0] ? st->src.ext->name : NULL;
		in->ext_addr = st->src.ext->iface_addr;
	}
	if (ops && be && ops->stats) {
		ops->stats(be, &in->be);
		in->has_be_stats = true;
	}
	/* the udp backend's forwarding table stands for its kernel routes (one route to the
	 * network through flannel0) */
	if (ops == &udp_backend_ops && be) {
		memset(&us, 0, sizeof(us));
		udp_backend_stats(be, &us);
		in->has_routes = true;
		in->routes_programmed = us.table_routes;
		in->routes_source = "udp table";
	}
}

int twilld_status_render(void *ctx, char **ret_text, size_t *ret_len)
{
	struct twilld_status *st = ctx;
	struct status_input in = { 0 };
	struct subnet_config *cfg;
	struct store *s;
	struct ipt *ipt;
	char reason[256] = "";
	struct timespec ts;
	json_t *doc;
	char *text;

	if (!st)
		return -EINVAL;
	clock_gettime(CLOCK_REALTIME, &ts);
	in.now_s = ts.tv_sec;
	in.now_ms = ev_now_ms();
	in.last_error = st->src.last_error;
	cfg = SRC(st, cfg);
	if (cfg) {
		in.has_config = true;
		in.network = cfg->network;
		in.subnet_len = cfg->subnet_len;
		in.has_ipv6_network = cfg->enable_ipv6;
		in.ipv6_network = cfg->ipv6_network;
		in.backend = cfg->backend_type;
	}
	collect_lease(st, &in);
	collect_backend(st, &in);
	if (cfg)
		collect_kernel(st, &in, cfg);
	in.ready = in.started && twilld_metrics_ready(SRC(st, tm), reason, sizeof(reason));
	if (!in.started)
		snprintf(reason, sizeof(reason), "%s",
		         !cfg            ? "no valid network config yet"
		         : !in.has_lease ? "no lease yet"
		                         : "backend not started yet");
	in.ready_reason = reason;
	s = SRC(st, store);
	if (s) {
		in.store_kind = s->ops->name;
		in.endpoint = s->ops->endpoint ? s->ops->endpoint(s) : NULL;
		in.has_store_stats = store_etcd_stats(s, &in.stats) == 0;
	}
	ipt = SRC(st, ipt);
	in.ipt_on = ipt != NULL;
	in.masq = st->src.masq;
	in.forward_rules = st->src.forward_rules;
	in.random_fully = ipt && ipt_random_fully(ipt);
	in.ipt_error = st->src.ipt_last_err;
	doc = status_build(&in);
	if (!doc)
		return -ENOMEM;
	text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (!text)
		return -ENOMEM;
	*ret_len = strlen(text);
	/* a trailing newline for curl users; json_dumps left room only for the NUL */
	{
		char *t = realloc(text, *ret_len + 2);

		if (!t) {
			free(text);
			return -ENOMEM;
		}
		text = t;
		text[(*ret_len)++] = '\n';
		text[*ret_len] = '\0';
	}
	*ret_text = text;
	return 0;
}
