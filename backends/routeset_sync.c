/*
 * The route set, kernel side: reconcile (dump, compare, repair in one batch), resync,
 * hold/release, and self-healing from netlink events. See routeset.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include "backends/routeset.h"
#include "backends/routeset_int.h"
#include "lib/ev.h"
#include "lib/log.h"
#include "lib/nl.h"

/* ---- Reconcile: dump, compare, repair ---- */

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	void *p;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 64;
	p = realloc(*arr, c * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

static bool in_network(const struct routeset *rs, const union rs_ip *dst, uint8_t len)
{
	struct ipam_prefix p = { .addr = { .family = rs->family }, .len = len };

	memcpy(p.addr.bytes, dst->b, 16);
	return len > rs->p.network.len && ipam_prefix_contains(&rs->p.network, &p);
}

/* The metric the kernel gives a route added without one (IPv6: IP6_RT_PRIO_USER). */
static uint32_t route_metric(const struct routeset *rs)
{
	return rs->family == AF_INET6 ? 1024 : 0;
}

static int route_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct routeset *rs = ctx;
	struct nl_route r;
	struct rs_entry *e;
	union rs_ip dst;

	if (nl_parse_route(nlh, &r) < 0 || r.family != rs->family || r.table != RT_TABLE_MAIN ||
	    r.type != RTN_UNICAST || r.protocol == RTPROT_KERNEL || !r.dst_len)
		return 0;
	if (!((rs->dev && r.oif == rs->dev) || r.oif == rs->p.ext_ifindex))
		return 0;
	dst = rs_ip_of(rs, &r.dst6);
	e = rs_net_find(rs, &dst);
	if (e && e->wanted && e->len == r.dst_len) {
		struct nl_route w;

		rs_e_route(rs, e, &w);
		if (r.priority == route_metric(rs) &&
		    (w.nh_id ? r.nh_id == w.nh_id
		             : (!r.nh_id && r.has_gw && !memcmp(&r.gw6, &w.gw6, 16) &&
		                r.oif == w.oif &&
		                !(r.flags & RTNH_F_ONLINK) == !(w.flags & RTNH_F_ONLINK))))
			e->k_route = true;
		return 0;
	}
	if (e && e->wanted)
		return 0; /* same address, other length: not ours to judge */
	if ((rs->dev && r.oif == rs->dev) ||
	    ((r.has_gw || r.nh_id) && in_network(rs, &dst, r.dst_len))) {
		if (grow((void **)&rs->stale.routes, &rs->stale.croutes, rs->stale.nroutes,
		         sizeof(r)) < 0)
			return -ENOMEM;
		rs->stale.routes[rs->stale.nroutes++] = r;
	}
	return 0;
}

static int neigh_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct routeset *rs = ctx;
	struct nl_neigh n;
	struct rs_entry *e;
	union rs_ip dst;

	if (nl_parse_neigh(nlh, &n) < 0 || n.ifindex != rs->dev)
		return 0;
	dst = rs_ip_of(rs, &n.dst6);
	if (n.family == rs->family) {
		if (!n.has_dst || !(n.state & NUD_PERMANENT))
			return 0;
		e = rs_net_find(rs, &dst);
		if (e && e->wanted && rs_e_l2(e)) {
			if (n.has_lladdr && memcmp(n.lladdr, e->mac, 6) == 0)
				e->k_neigh = true;
			return 0;
		}
	} else if (n.family == AF_BRIDGE) {
		if (!(n.flags & NTF_SELF) || !n.has_lladdr || (n.lladdr[0] & 1))
			return 0;
		e = rs_mac_find(rs, n.lladdr, NULL);
		if (e) {
			if (n.has_dst && n.dst_family == rs->family && rs_ip_eq(&dst, &e->pub))
				e->k_fdb = true;
			return 0;
		}
	} else {
		return 0;
	}
	if (grow((void **)&rs->stale.neighs, &rs->stale.cneighs, rs->stale.nneighs, sizeof(n)) < 0)
		return -ENOMEM;
	rs->stale.neighs[rs->stale.nneighs++] = n;
	return 0;
}

static int nh_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct routeset *rs = ctx;
	struct nl_nexthop x;
	struct rs_entry *e;
	union rs_ip nid;

	if (nl_parse_nexthop(nlh, &x) < 0 || x.id < rs->p.nh_base ||
	    x.id - rs->p.nh_base >= RS_NH_RANGE)
		return 0;
	nid = rs_id_net(rs, x.id);
	e = rs_net_find(rs, &nid);
	if (e && e->wanted && rs_e_nh(rs, e) == x.id) {
		struct nl_nexthop w;

		rs_e_nexthop(rs, e, &w);
		if (!x.group && !x.blackhole && x.family == rs->family && x.oif == w.oif &&
		    x.has_gw && !memcmp(&x.gw6, &w.gw6, 16) &&
		    !(x.flags & RTNH_F_ONLINK) == !(w.flags & RTNH_F_ONLINK))
			e->k_nh = true;
		return 0;
	}
	if (grow((void **)&rs->stale.nhs, &rs->stale.cnhs, rs->stale.nnhs, sizeof(x.id)) < 0)
		return -ENOMEM;
	rs->stale.nhs[rs->stale.nnhs++] = x.id;
	return 0;
}

static void drop_dirty(struct routeset *rs)
{
	struct rs_entry *e, *next;

	for (e = rs->dirty; e; e = next) {
		next = e->next_dirty;
		e->dirty = false;
		e->next_dirty = NULL;
		if (!e->wanted)
			rs_entry_free(rs, e);
	}
	rs->dirty = NULL;
}

int rs_ensure_dev(struct routeset *rs)
{
	int ret;

	if (!rs->p.ensure_dev)
		return 0;
	ret = rs->p.ensure_dev(rs->p.ctx);
	if (ret < 0)
		return ret;
	rs->dev = ret;
	return 0;
}

/* @e was programmed as it is wanted now: what the kernel lacks was removed or changed by others. */
static bool entry_was_programmed(const struct routeset *rs, const struct rs_entry *e)
{
	return e->p_valid && e->p_l2 == rs_e_l2(e) && memcmp(e->p_mac, e->mac, 6) == 0 &&
	       e->p_nh == rs_e_nh(rs, e);
}

/* Reconcile, step 1: the device, queued changes dropped (a full comparison follows), lookups. */
static int rc_prepare(struct routeset *rs)
{
	int ret;

	if (!rs->started)
		return -EAGAIN;
	rs->reconciles++;
	if (rs->heal_timer)
		ev_timer_stop(rs->heal_timer);
	if (rs->flush_timer)
		ev_timer_stop(rs->flush_timer);
	ret = rs_ensure_dev(rs);
	if (ret < 0)
		return ret;
	drop_dirty(rs);
	rs->stale.nroutes = rs->stale.nneighs = rs->stale.nnhs = 0;
	ret = rs_lookup_direct(rs, true);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < rs->by_net.nb; i++)
		for (struct rs_entry *e = rs->by_net.b[i]; e; e = e->next_net)
			e->k_route = e->k_neigh = e->k_fdb = false, e->k_nh = !rs_e_nh(rs, e),
			e->failed = false;
	return 0;
}

/* Step 2: read what the kernel has (before anything of the batch is sent). 0 or -errno. */
static int rc_dump(struct routeset *rs)
{
	struct nl_sock *sk = rs->rb->sk;
	int ret = nl_dump(sk, RTM_GETROUTE, rs->family, route_cb, rs);

	if (!ret && rs->dev)
		ret = nl_dump(sk, RTM_GETNEIGH, rs->family, neigh_cb, rs);
	if (!ret && rs->dev)
		ret = nl_dump(sk, RTM_GETNEIGH, AF_BRIDGE, neigh_cb, rs);
	if (!ret && rs->nh_kernel)
		ret = nl_dump(sk, RTM_GETNEXTHOP, AF_UNSPEC, nh_cb, rs);
	if (ret < 0)
		log_warnx("%s: reading kernel state failed: %s%s%s", rs->name, strerror(-ret),
		          *nl_sock_errmsg(sk) ? ": " : "", nl_sock_errmsg(sk));
	return ret;
}

/* Step 3: queue the removal of stale objects and the repair of missing or changed ones. */
static int rc_emit(struct routeset *rs)
{
	int ret = 0;

	for (size_t i = 0; i < rs->stale.nroutes && ret >= 0; i++) {
		union rs_ip d = rs_ip_of(rs, &rs->stale.routes[i].dst6);

		ret = rs_emit_del_route(rs, NULL, &d, rs->stale.routes[i].dst_len);
	}
	for (size_t i = 0; i < rs->stale.nnhs && ret >= 0; i++)
		ret = rs_emit_del_nh(rs, NULL, rs->stale.nhs[i]);
	for (size_t i = 0; i < rs->stale.nneighs && ret >= 0; i++) {
		const struct nl_neigh *n = &rs->stale.neighs[i];
		union rs_ip d = rs_ip_of(rs, &n->dst6);

		if (n->family == AF_BRIDGE)
			ret = rs_emit_del_fdb(rs, NULL, n->lladdr);
		else
			ret = rs_emit_del_neigh(rs, NULL, &d);
	}
	for (size_t i = 0; i < rs->by_net.nb && ret >= 0; i++) {
		for (struct rs_entry *e = rs->by_net.b[i]; e && ret >= 0; e = e->next_net) {
			if (!e->k_route || !e->k_nh || (rs_e_l2(e) && (!e->k_neigh || !e->k_fdb))) {
				rs->repairs += entry_was_programmed(rs, e);
				ret = rs_emit_entry(rs, e, !e->k_nh, !e->k_neigh, !e->k_fdb,
				                    !e->k_route || !e->k_nh);
			}
		}
	}
	return ret;
}

/* Step 4, after the batch (@ret: its result): record what the kernel has now. */
static void rc_finish(struct routeset *rs, int ret)
{
	for (size_t i = 0; i < rs->by_net.nb; i++) {
		for (struct rs_entry *e = rs->by_net.b[i]; e; e = e->next_net) {
			rs_entry_programmed(rs, e);
			e->p_valid = ret >= 0 && !e->failed;
		}
	}
	log_debug(
		"%s: reconciled %zu leases (%zu stale routes, %zu stale neighbours/fdb, %zu stale nexthops)",
		rs->name, rs->by_net.n, rs->stale.nroutes, rs->stale.nneighs, rs->stale.nnhs);
}

/* Reconcile the @n sets @ms (which share one batch) with one batch for their repairs. */
static int reconcile_sets(struct routeset *const *ms, size_t n)
{
	bool ok[2] = { false, false };
	int ret = 0, r = 0;

	for (size_t i = 0; i < n; i++) {
		int x = rc_prepare(ms[i]);

		if (x == 0)
			x = rc_dump(ms[i]);
		ok[i] = x == 0;
		if (x < 0 && !ret)
			ret = x;
	}
	for (size_t i = 0; i < n && r >= 0; i++)
		if (ok[i])
			r = rc_emit(ms[i]);
	if (!ok[0] && (n < 2 || !ok[1]))
		return ret;
	if (r >= 0)
		r = rs_commit(ms[ok[0] ? 0 : 1]);
	else
		nl_batch_commit(ms[0]->rb->batch);
	for (size_t i = 0; i < n; i++)
		if (ok[i])
			rc_finish(ms[i], r);
	return ret ? ret : r;
}

int routeset_reconcile(struct routeset *rs)
{
	return reconcile_sets(&rs, 1);
}

int routeset_resync(struct routeset *rs, const struct rs_lease *ls, size_t n)
{
	int ret = 0;

	for (size_t i = 0; i < rs->by_net.nb; i++)
		for (struct rs_entry *e = rs->by_net.b[i]; e; e = e->next_net)
			if (e->wanted) {
				e->wanted = false;
				rs_mark_dirty(rs, e);
			}
	for (size_t i = 0; i < n; i++) {
		int r = rs_set_entry(rs, &ls[i]);

		if (r == -ENOMEM)
			return r;
		if (r < 0 && !ret)
			ret = r;
	}
	rs->synced = true;
	if (!rs->started)
		return ret;
	if (rs->rb->hold) {
		rs->want_reconcile = true;
		return ret;
	}
	{
		int r = routeset_reconcile(rs);

		return r ? r : ret;
	}
}

void routeset_hold(struct routeset *rs)
{
	rs->rb->hold++;
}

int routeset_release(struct routeset *rs)
{
	struct rs_batch *rb = rs->rb;
	struct routeset *ms[2];
	size_t n = 0;
	int ret = 0, r;

	if (!rb->hold || --rb->hold)
		return 0;
	for (size_t i = 0; i < rb->nmembers; i++) {
		if (rb->members[i]->want_reconcile && rb->members[i]->started) {
			rb->members[i]->want_reconcile = false;
			ms[n++] = rb->members[i];
		}
	}
	if (n)
		ret = reconcile_sets(ms, n);
	/* With a loop, the flush timer (armed while held) sends the burst once per iteration. */
	r = rs->p.loop ? 0 : routeset_flush(rs);
	return ret ? ret : r;
}

/* ---- Self-healing ---- */

void rs_heal_cb(struct ev_timer *t, void *ctx)
{
	struct routeset *rs = ctx;
	int ret;

	(void)t;
	if (!rs->synced) {
		ret = rs_ensure_dev(rs);
	} else {
		log_debug("%s: kernel state changed under us, reconciling", rs->name);
		ret = routeset_reconcile(rs);
	}
	if (ret < 0) {
		log_warnx("%s: repair failed, retrying in %ds", rs->name, RS_RETRY_DELAY_MS / 1000);
		ev_timer_start(rs->heal_timer, RS_RETRY_DELAY_MS, 0);
	}
}

static void trigger_heal(struct routeset *rs)
{
	if (!ev_timer_active(rs->heal_timer))
		ev_timer_start(rs->heal_timer, RS_HEAL_DELAY_MS, 0);
}

/* True when the event removed or broke something we want. */
static bool event_hurts(struct routeset *rs, const struct nlmsghdr *nlh)
{
	switch (nlh->nlmsg_type) {
	case RTM_NEWLINK:
	case RTM_DELLINK: {
		struct nl_link l;

		if (nl_parse_link(nlh, &l) < 0)
			return false;
		if (rs->dev && l.ifindex == rs->dev)
			return nlh->nlmsg_type == RTM_DELLINK || !(l.flags & IFF_UP);
		if (l.ifindex == rs->p.ext_ifindex) {
			bool up = nlh->nlmsg_type == RTM_NEWLINK && (l.flags & IFF_UP);
			bool came_up = up && !rs->ext_up;

			rs->ext_up = up;
			return came_up; /* routes via ext vanished when it went down */
		}
		return false;
	}
	case RTM_DELADDR: {
		struct nl_addr a;

		return rs->dev && nl_parse_addr(nlh, &a) == 0 && a.ifindex == rs->dev &&
		       a.family == rs->family && a.scope != RT_SCOPE_LINK;
	}
	case RTM_DELROUTE: {
		struct nl_route r;
		struct rs_entry *e;
		union rs_ip d;

		if (nl_parse_route(nlh, &r) < 0 || r.family != rs->family ||
		    r.table != RT_TABLE_MAIN)
			return false;
		d = rs_ip_of(rs, &r.dst6);
		e = rs_net_find(rs, &d);
		return e && e->wanted && e->len == r.dst_len;
	}
	case RTM_DELNEIGH: {
		struct nl_neigh n;
		struct rs_entry *e;
		union rs_ip d;

		if (!rs->dev || nl_parse_neigh(nlh, &n) < 0 || n.ifindex != rs->dev)
			return false;
		if (n.family == AF_BRIDGE)
			return n.has_lladdr && rs_mac_find(rs, n.lladdr, NULL);
		d = rs_ip_of(rs, &n.dst6);
		e = n.has_dst && n.family == rs->family ? rs_net_find(rs, &d) : NULL;
		return e && e->wanted && rs_e_l2(e);
	}
	case RTM_DELNEXTHOP: {
		struct nl_nexthop x;
		struct rs_entry *e;
		union rs_ip d;

		if (nl_parse_nexthop(nlh, &x) < 0 || x.id < rs->p.nh_base ||
		    x.id - rs->p.nh_base >= RS_NH_RANGE)
			return false;
		d = rs_id_net(rs, x.id);
		e = rs_net_find(rs, &d);
		return e && e->wanted && rs_e_nh(rs, e) == x.id;
	}
	default:
		return false;
	}
}

static int event_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct routeset *rs = ctx;

	if (event_hurts(rs, nlh))
		trigger_heal(rs);
	return 0;
}

void rs_io_cb(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct routeset *rs = ctx;
	int ret;

	(void)io;
	(void)fd;
	(void)revents;
	ret = nl_recv_events(rs->evsk, event_cb, rs);
	if (ret == -ENOBUFS) {
		log_info("%s: netlink events were lost (ENOBUFS), resyncing", rs->name);
		trigger_heal(rs);
	} else if (ret < 0) {
		log_warnx("%s: reading netlink events failed: %s", rs->name, strerror(-ret));
	}
}
