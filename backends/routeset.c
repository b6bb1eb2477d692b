/*
 * The route set: wanted kernel objects per remote lease, batched programming,
 * reconcile from dumps, self-healing from netlink events. See routeset.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include "backends/routeset.h"
#include "backends/routeset_int.h"
#include "lib/ev.h"
#include "lib/log.h"
#include "lib/nl.h"
#include "subnet/lease.h"

/* ---- Hash tables (chained, intrusive) ---- */

static struct rs_entry **next_of(struct rs_entry *e, bool by_mac)
{
	return by_mac ? &e->next_mac : &e->next_net;
}

static uint32_t hash_net(const union rs_ip *a)
{
	uint32_t w[4], x;

	memcpy(w, a->b, sizeof(w));
	x = w[0] ^ (w[1] * 0x9e3779b1u) ^ (w[2] * 0x85ebca77u) ^ (w[3] * 0xc2b2ae3du);

	x ^= x >> 16;
	x *= 0x45d9f3bu;
	x ^= x >> 16;
	return x;
}

static uint32_t hash_mac(const uint8_t *m)
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 6; i++)
		h = (h ^ m[i]) * 16777619u;
	return h;
}

static size_t bucket_of(const struct rs_table *t, const struct rs_entry *e)
{
	return (t->by_mac ? hash_mac(e->mac) : hash_net(&e->net)) & (t->nb - 1);
}

static int tbl_insert(struct rs_table *t, struct rs_entry *e)
{
	if (t->n + 1 > t->nb) {
		size_t nb = t->nb ? t->nb * 2 : 64;
		struct rs_entry **b = calloc(nb, sizeof(*b));
		struct rs_table nt = { .b = b, .nb = nb, .by_mac = t->by_mac };

		if (!b)
			return -ENOMEM;
		for (size_t i = 0; i < t->nb; i++) {
			struct rs_entry *x = t->b[i], *next;

			for (; x; x = next) {
				size_t k = bucket_of(&nt, x);

				next = *next_of(x, t->by_mac);
				*next_of(x, t->by_mac) = b[k];
				b[k] = x;
			}
		}
		free(t->b);
		t->b = b;
		t->nb = nb;
	}
	size_t k = bucket_of(t, e);

	*next_of(e, t->by_mac) = t->b[k];
	t->b[k] = e;
	t->n++;
	return 0;
}

static void tbl_remove(struct rs_table *t, struct rs_entry *e)
{
	struct rs_entry **pp;

	if (!t->nb)
		return;
	for (pp = &t->b[bucket_of(t, e)]; *pp; pp = next_of(*pp, t->by_mac)) {
		if (*pp == e) {
			*pp = *next_of(e, t->by_mac);
			t->n--;
			return;
		}
	}
}

bool rs_ip_eq(const union rs_ip *a, const union rs_ip *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

/* @src (4 or 16 bytes, by the set's family) as a union. */
union rs_ip rs_ip_of(const struct routeset *rs, const void *src)
{
	union rs_ip a;

	memset(&a, 0, sizeof(a));
	memcpy(a.b, src, rs->family == AF_INET6 ? 16 : 4);
	return a;
}

struct rs_entry *rs_net_find(const struct routeset *rs, const union rs_ip *net)
{
	struct rs_entry *e;

	if (!rs->by_net.nb)
		return NULL;
	for (e = rs->by_net.b[hash_net(net) & (rs->by_net.nb - 1)]; e; e = e->next_net)
		if (rs_ip_eq(&e->net, net))
			return e;
	return NULL;
}

bool rs_e_l2(const struct rs_entry *e)
{
	return e->overlay && !e->direct;
}

/* A wanted entry with neighbour/fdb for @mac, other than @skip. */
struct rs_entry *rs_mac_find(const struct routeset *rs, const uint8_t *mac,
                             const struct rs_entry *skip)
{
	struct rs_entry *e;

	if (!rs->by_mac.nb)
		return NULL;
	for (e = rs->by_mac.b[hash_mac(mac) & (rs->by_mac.nb - 1)]; e; e = e->next_mac)
		if (e != skip && e->wanted && rs_e_l2(e) && memcmp(e->mac, mac, 6) == 0)
			return e;
	return NULL;
}

void rs_entry_free(struct routeset *rs, struct rs_entry *e)
{
	tbl_remove(&rs->by_net, e);
	if (e->in_mac)
		tbl_remove(&rs->by_mac, e);
	free(e);
}

/* ---- Wanted kernel objects of an entry ---- */

/* The first 4 (IPv4) or 8 (IPv6) bytes of @b as a number. */
static uint64_t ip_head(const struct routeset *rs, const uint8_t *b)
{
	unsigned n = rs->family == AF_INET6 ? 8 : 4;
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | b[i];
	return v;
}

/*
 * Deterministic nexthop id: the subnet's offset in Network in /30 units (IPv4) or /64
 * units (IPv6: leases are /64 or shorter); 0 = plain route.
 */
uint32_t rs_e_nh(const struct routeset *rs, const struct rs_entry *e)
{
	bool v6 = rs->family == AF_INET6;
	uint64_t net = ip_head(rs, e->net.b), base = ip_head(rs, rs->p.network.addr.bytes), idx;

	if (!rs->nh || e->len > (v6 ? 64 : 30) || net < base)
		return 0;
	idx = v6 ? net - base : (net - base) >> 2;
	return idx < RS_NH_RANGE ? rs->p.nh_base + (uint32_t)idx : 0;
}

union rs_ip rs_id_net(const struct routeset *rs, uint32_t id)
{
	bool v6 = rs->family == AF_INET6;
	uint64_t v = ip_head(rs, rs->p.network.addr.bytes) +
	             ((uint64_t)(id - rs->p.nh_base) << (v6 ? 0 : 2));
	union rs_ip a;
	int n = v6 ? 8 : 4;

	memset(&a, 0, sizeof(a));
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		a.b[i] = (uint8_t)v;
	return a;
}

void rs_e_nexthop(const struct routeset *rs, const struct rs_entry *e, struct nl_nexthop *nh)
{
	memset(nh, 0, sizeof(*nh));
	nh->family = rs->family;
	nh->id = rs_e_nh(rs, e);
	nh->has_gw = true;
	if (rs_e_l2(e)) {
		nh->oif = rs->dev;
		memcpy(&nh->gw6, e->net.b, 16);
		nh->flags = RTNH_F_ONLINK;
	} else {
		nh->oif = rs->p.ext_ifindex;
		memcpy(&nh->gw6, e->pub.b, 16);
	}
}

void rs_e_route(const struct routeset *rs, const struct rs_entry *e, struct nl_route *r)
{
	struct nl_nexthop nh;

	rs_e_nexthop(rs, e, &nh);
	memset(r, 0, sizeof(*r));
	r->family = rs->family;
	memcpy(&r->dst6, e->net.b, 16);
	r->dst_len = e->len;
	r->nh_id = nh.id;
	r->oif = nh.oif;
	r->has_gw = true;
	r->gw6 = nh.gw6;
	r->flags = nh.flags;
}

/* ---- Batch bookkeeping and error reporting ---- */

static void *push_op(struct routeset *rs, struct rs_entry *e, enum rs_what what, bool del)
{
	struct rs_batch *rb = rs->rb;
	size_t slot = rb->nops++ % RS_OPS;
	struct rs_op *op;

	if (!rb->ops && !(rb->ops = calloc(RS_OPS, sizeof(*rb->ops))))
		return NULL; /* no record: a refusal is logged without its lease */
	op = &rb->ops[slot];
	memset(op, 0, sizeof(*op));
	op->rs = rs;
	op->e = e;
	op->what = (uint8_t)what;
	op->del = del;
	if (e) {
		op->addr = e->net;
		op->len = e->len;
	}
	return (void *)(uintptr_t)(slot + 1);
}

static struct rs_op *rb_op(struct rs_batch *rb, void *cookie)
{
	uintptr_t i = (uintptr_t)cookie;

	return rb->ops && i && i <= RS_OPS ? &rb->ops[i - 1] : NULL;
}

static struct rs_op *op_of(struct routeset *rs, void *cookie)
{
	return rb_op(rs->rb, cookie);
}

static const char *what_name(uint8_t what)
{
	static const char *const names[] = { "route", "neighbour", "fdb entry", "nexthop",
		                             "route lookup" };

	return what < sizeof(names) / sizeof(names[0]) ? names[what] : "object";
}

static void batch_err(void *ctx, void *cookie, int err, const char *extack)
{
	struct rs_batch *rb = ctx;
	struct rs_op *op = rb_op(rb, cookie);
	struct routeset *rs = op ? op->rs : rb->members[0];
	char a[INET6_ADDRSTRLEN];

	if (!op) {
		log_warnx("%s: netlink request failed: %s%s%s", rs->name, strerror(-err),
		          *extack ? ": " : "", extack);
		return;
	}
	if (op->what == W_LOOKUP) {
		if (op->e) {
			op->e->direct = false;
			op->e->direct_known = true;
		}
		return;
	}
	/* Removing what is already gone is success. */
	if (op->del && (err == -ENOENT || err == -ESRCH || err == -ENODEV))
		return;
	inet_ntop(rs->family, op->addr.b, a, sizeof(a));
	if (op->e) {
		op->e->failed = true;
		log_warnx("%s: lease %s-%u: %s %s failed: %s%s%s", rs->name, a, op->len,
		          op->del ? "removing" : "installing", what_name(op->what), strerror(-err),
		          *extack ? ": " : "", extack);
	} else if (op->what == W_FDB) {
		log_warnx(
			"%s: removing stale fdb entry %02x:%02x:%02x:%02x:%02x:%02x failed: %s%s%s",
			rs->name, op->mac[0], op->mac[1], op->mac[2], op->mac[3], op->mac[4],
			op->mac[5], strerror(-err), *extack ? ": " : "", extack);
	} else if (op->what == W_NH) {
		log_warnx("%s: removing stale nexthop %u failed: %s%s%s", rs->name, op->id,
		          strerror(-err), *extack ? ": " : "", extack);
	} else {
		log_warnx("%s: removing stale %s %s/%u failed: %s%s%s", rs->name,
		          what_name(op->what), a, op->len, strerror(-err), *extack ? ": " : "",
		          extack);
	}
}

static void batch_reply(void *ctx, void *cookie, const struct nlmsghdr *nlh)
{
	struct rs_op *op = rb_op(ctx, cookie);
	struct routeset *rs = op ? op->rs : NULL;
	struct nl_route r;

	if (!op || op->what != W_LOOKUP || !op->e || nlh->nlmsg_type != RTM_NEWROUTE ||
	    nl_parse_route(nlh, &r) < 0 || r.family != rs->family)
		return;
	op->e->direct = r.type == RTN_UNICAST && !r.has_gw && r.oif == rs->p.ext_ifindex;
	op->e->direct_known = true;
}

/* Queue the messages that install the parts of @e selected by the flags. */
int rs_emit_entry(struct routeset *rs, struct rs_entry *e, bool nh, bool neigh, bool fdb,
                  bool route)
{
	struct nl_nexthop x;
	struct nl_route r;
	struct nl_neigh n;
	int ret = 0;

	rs_e_nexthop(rs, e, &x);
	if (nh && x.id)
		ret = nl_batch_nexthop(rs->rb->batch, NL_OP_REPLACE, &x,
		                       push_op(rs, e, W_NH, false));
	if (!ret && rs_e_l2(e) && neigh) {
		n = (struct nl_neigh){ .family = rs->family,
			               .ifindex = rs->dev,
			               .state = NUD_PERMANENT,
			               .has_dst = true,
			               .dst_family = rs->family,
			               .has_lladdr = true };
		memcpy(&n.dst6, e->net.b, 16);
		memcpy(n.lladdr, e->mac, 6);
		ret = nl_batch_neigh(rs->rb->batch, NL_OP_REPLACE, &n,
		                     push_op(rs, e, W_NEIGH, false));
	}
	if (!ret && rs_e_l2(e) && fdb) {
		n = (struct nl_neigh){ .family = AF_BRIDGE,
			               .ifindex = rs->dev,
			               .state = NUD_PERMANENT,
			               .flags = NTF_SELF,
			               .has_dst = true,
			               .dst_family = rs->family,
			               .has_lladdr = true };
		memcpy(&n.dst6, e->pub.b, 16);
		memcpy(n.lladdr, e->mac, 6);
		ret = nl_batch_neigh(rs->rb->batch, NL_OP_REPLACE, &n,
		                     push_op(rs, e, W_FDB, false));
	}
	if (!ret && route) {
		rs_e_route(rs, e, &r);
		ret = nl_batch_route(rs->rb->batch, NL_OP_REPLACE, &r,
		                     push_op(rs, e, W_ROUTE, false));
	}
	return ret;
}

int rs_emit_del_neigh(struct routeset *rs, struct rs_entry *e, const union rs_ip *dst)
{
	struct nl_neigh n = {
		.family = rs->family, .ifindex = rs->dev, .has_dst = true, .dst_family = rs->family
	};
	struct rs_op *op;
	void *c = push_op(rs, e, W_NEIGH, true);

	memcpy(&n.dst6, dst->b, 16);
	if ((op = op_of(rs, c)))
		op->addr = *dst, op->len = (uint8_t)ipam_family_bits(rs->family);
	return nl_batch_neigh(rs->rb->batch, NL_OP_DELETE, &n, c);
}

int rs_emit_del_fdb(struct routeset *rs, struct rs_entry *e, const uint8_t *mac)
{
	struct nl_neigh n = {
		.family = AF_BRIDGE, .ifindex = rs->dev, .flags = NTF_SELF, .has_lladdr = true
	};
	struct rs_op *op;
	void *c = push_op(rs, e, W_FDB, true);

	memcpy(n.lladdr, mac, 6);
	if ((op = op_of(rs, c)))
		memcpy(op->mac, mac, 6);
	return nl_batch_neigh(rs->rb->batch, NL_OP_DELETE, &n, c);
}

int rs_emit_del_nh(struct routeset *rs, struct rs_entry *e, uint32_t id)
{
	struct nl_nexthop x = { .id = id };
	struct rs_op *op;
	void *c = push_op(rs, e, W_NH, true);

	if ((op = op_of(rs, c)))
		op->id = id;
	return nl_batch_nexthop(rs->rb->batch, NL_OP_DELETE, &x, c);
}

int rs_emit_del_route(struct routeset *rs, struct rs_entry *e, const union rs_ip *dst, uint8_t len)
{
	struct nl_route r = { .family = rs->family, .dst_len = len };
	struct rs_op *op;
	void *c = push_op(rs, e, W_ROUTE, true);

	memcpy(&r.dst6, dst->b, 16);
	if ((op = op_of(rs, c)))
		op->addr = *dst, op->len = len;
	return nl_batch_route(rs->rb->batch, NL_OP_DELETE, &r, c);
}

/* Send the batch (of every set sharing it); the count of refused objects, or -errno (logged). */
int rs_commit(struct routeset *rs)
{
	struct rs_batch *rb = rs->rb;
	int ret = nl_batch_commit(rb->batch);
	bool retry = false;

	if (ret >= 0)
		return ret;
	for (size_t i = 0; i < rb->nmembers; i++) {
		struct routeset *m = rb->members[i];

		if (m->heal_timer && m->synced) {
			ev_timer_start(m->heal_timer, RS_RETRY_DELAY_MS, 0);
			retry = true;
		}
	}
	if (retry)
		log_warnx("%s: netlink batch failed: %s, resyncing in %ds", rs->name,
		          strerror(-ret), RS_RETRY_DELAY_MS / 1000);
	else
		log_warnx("%s: netlink batch failed: %s", rs->name, strerror(-ret));
	return ret;
}

void rs_entry_programmed(const struct routeset *rs, struct rs_entry *e)
{
	e->p_valid = true;
	e->p_l2 = rs_e_l2(e);
	memcpy(e->p_mac, e->mac, 6);
	e->p_nh = rs_e_nh(rs, e);
}

/* DirectRouting: ask the kernel for the route to every PublicIP in one batch. */
int rs_lookup_direct(struct routeset *rs, bool all)
{
	bool any = false;
	int ret;

	if (!rs->p.direct_routing)
		return 0;
	for (size_t i = 0; i < rs->by_net.nb; i++) {
		for (struct rs_entry *e = rs->by_net.b[i]; e; e = e->next_net) {
			if (!e->wanted || !e->overlay || (!all && (!e->dirty || e->direct_known)))
				continue;
			e->direct = false;
			e->direct_known = false;
			ret = nl_batch_getroute_af(rs->rb->batch, rs->family, e->pub.b,
			                           push_op(rs, e, W_LOOKUP, false));
			if (ret < 0)
				return ret;
			any = true;
		}
	}
	if (!any)
		return 0;
	ret = rs_commit(rs);
	return ret < 0 ? ret : 0;
}

/* ---- Flush: queued changes ---- */

/* Queue the messages of @rs's dirty entries: removals and moves first, then what is wanted. */
static int emit_dirty(struct routeset *rs)
{
	struct rs_entry *e;
	int ret = 0;

	for (e = rs->dirty; e && ret >= 0; e = e->next_dirty) {
		e->failed = false;
		if (!e->wanted) {
			/* Without a record of what is installed, remove what it would be. */
			bool l2 = e->p_valid ? e->p_l2 : rs_e_l2(e);
			const uint8_t *mac = e->p_valid ? e->p_mac : e->mac;
			uint32_t nh = e->p_valid ? e->p_nh : rs_e_nh(rs, e);

			if (l2 && rs->dev) {
				ret = rs_emit_del_neigh(rs, e, &e->net);
				if (ret >= 0 && !rs_mac_find(rs, mac, e))
					ret = rs_emit_del_fdb(rs, e, mac);
			}
			if (ret >= 0)
				ret = rs_emit_del_route(rs, e, &e->net, e->len);
			if (ret >= 0 && nh)
				ret = rs_emit_del_nh(rs, e, nh);
		} else if (e->p_valid) {
			bool want_l2 = rs_e_l2(e);

			if (e->p_l2 && !want_l2)
				ret = rs_emit_del_neigh(rs, e, &e->net);
			if (ret >= 0 && e->p_l2 && (!want_l2 || memcmp(e->p_mac, e->mac, 6)) &&
			    !rs_mac_find(rs, e->p_mac, e))
				ret = rs_emit_del_fdb(rs, e, e->p_mac);
			if (ret >= 0 && e->p_nh && e->p_nh != rs_e_nh(rs, e))
				ret = rs_emit_del_nh(rs, e, e->p_nh);
		}
	}
	for (e = rs->dirty; e && ret >= 0; e = e->next_dirty)
		if (e->wanted)
			ret = rs_emit_entry(rs, e, true, true, true, true);
	return ret;
}

/* After the batch (@ret: its result): forget removed entries, record what was installed. */
static void finish_dirty(struct routeset *rs, int ret)
{
	struct rs_entry *e, *next;

	for (e = rs->dirty; e; e = next) {
		next = e->next_dirty;
		e->dirty = false;
		e->next_dirty = NULL;
		if (!e->wanted) {
			rs_entry_free(rs, e);
			continue;
		}
		rs_entry_programmed(rs, e);
		e->p_valid = ret >= 0 && !e->failed;
	}
	rs->dirty = NULL;
}

/* The changes of every set sharing @rs's batch go out together. */
int routeset_flush(struct routeset *rs)
{
	struct rs_batch *rb = rs->rb;
	bool go[2] = { false, false }, any = false;
	int ret = 0;

	if (rb->hold)
		return 0;
	for (size_t i = 0; i < rb->nmembers; i++) {
		struct routeset *m = rb->members[i];

		if (m->flush_timer)
			ev_timer_stop(m->flush_timer);
		go[i] = m->started && m->dirty;
		any |= go[i];
	}
	if (!any)
		return 0;
	/* DirectRouting's route lookups are batches of their own, sent before the changes. */
	for (size_t i = 0; i < rb->nmembers && ret >= 0; i++)
		if (go[i])
			ret = rs_lookup_direct(rb->members[i], false);
	for (size_t i = 0; i < rb->nmembers && ret >= 0; i++)
		if (go[i])
			ret = emit_dirty(rb->members[i]);
	if (ret >= 0)
		ret = rs_commit(rs);
	else
		nl_batch_commit(rb->batch);
	for (size_t i = 0; i < rb->nmembers; i++)
		if (go[i])
			finish_dirty(rb->members[i], ret);
	return ret;
}

static void rs_flush_cb(struct ev_timer *t, void *ctx)
{
	(void)t;
	routeset_flush(ctx);
}

void rs_mark_dirty(struct routeset *rs, struct rs_entry *e)
{
	if (!e->dirty) {
		e->dirty = true;
		e->next_dirty = rs->dirty;
		rs->dirty = e;
	}
}

static void schedule_flush(struct routeset *rs)
{
	if (!rs->p.loop) {
		routeset_flush(rs);
		return;
	}
	if (rs->started && !ev_timer_active(rs->flush_timer))
		ev_timer_start(rs->flush_timer, 0, 0);
}

/* Update or create the entry for @l; no flush. */
int rs_set_entry(struct routeset *rs, const struct rs_lease *l)
{
	union rs_ip net, pub;
	struct ipam_prefix np;
	struct rs_entry *e;
	char buf[IPAM_PREFIX_STRLEN];
	int ret;

	if (l->subnet.addr.family != rs->family || l->public_ip.family != rs->family ||
	    l->subnet.len > ipam_family_bits(rs->family)) {
		log_warnx("%s: lease %s: not an %s lease, ignored", rs->name,
		          ipam_prefix_format(&l->subnet, buf),
		          rs->family == AF_INET6 ? "IPv6" : "IPv4");
		return -EINVAL;
	}
	np = ipam_prefix_network(&l->subnet);
	net = rs_ip_of(rs, np.addr.bytes);
	pub = rs_ip_of(rs, l->public_ip.bytes);
	e = rs_net_find(rs, &net);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			ret = -ENOMEM;
			goto nomem;
		}
		e->net = net;
		ret = tbl_insert(&rs->by_net, e);
		if (ret < 0) {
			free(e);
			goto nomem;
		}
	} else if (e->wanted && e->len == np.len && rs_ip_eq(&e->pub, &pub) &&
	           e->overlay == l->overlay && (!l->overlay || !memcmp(e->mac, l->mac, 6))) {
		return 0; /* unchanged */
	}
	if (!rs_ip_eq(&e->pub, &pub))
		e->direct_known = false;
	if (e->in_mac && (!l->overlay || memcmp(e->mac, l->mac, 6))) {
		tbl_remove(&rs->by_mac, e);
		e->in_mac = false;
	}
	e->len = np.len;
	e->pub = pub;
	e->overlay = l->overlay;
	if (l->overlay)
		memcpy(e->mac, l->mac, 6);
	if (l->overlay && !e->in_mac) {
		ret = tbl_insert(&rs->by_mac, e);
		if (ret < 0)
			goto nomem;
		e->in_mac = true;
	}
	e->wanted = true;
	rs_mark_dirty(rs, e);
	return 0;
nomem: /* logged here: the backends' callers do not log lease failures (backend_ops) */
	log_warnx("%s: lease %s: cannot queue it: %s", rs->name,
	          ipam_prefix_format(&l->subnet, buf), strerror(-ret));
	return ret;
}

int routeset_set(struct routeset *rs, const struct rs_lease *l)
{
	int ret = rs_set_entry(rs, l);

	if (ret == 0)
		schedule_flush(rs);
	return ret;
}

int routeset_unset(struct routeset *rs, const struct ipam_prefix *subnet)
{
	struct ipam_prefix np = ipam_prefix_network(subnet);
	union rs_ip net;
	struct rs_entry *e;

	if (np.addr.family != rs->family)
		return 0;
	net = rs_ip_of(rs, np.addr.bytes);
	e = rs_net_find(rs, &net);
	if (!e || !e->wanted || e->len != np.len)
		return 0;
	e->wanted = false;
	rs_mark_dirty(rs, e);
	schedule_flush(rs);
	return 0;
}

/* ---- Leases ---- */

int routeset_lease_added(struct routeset *rs, const struct lease *l, rs_lease_fn conv, void *ctx)
{
	struct rs_lease rl;
	int r = conv(ctx, l, &rl);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	return routeset_set(rs, &rl);
}

int routeset_lease_removed(struct routeset *rs, const struct lease *l)
{
	if (rs->family == AF_INET6)
		return l->has_ipv6 ? routeset_unset(rs, &l->ipv6_subnet) : 0;
	if (!l->has_ipv4)
		return 0;
	return routeset_unset(rs, &l->subnet);
}

uint8_t routeset_family(const struct routeset *rs)
{
	return rs->family;
}

int routeset_lease_resync(struct routeset *rs, const struct lease *leases, size_t n,
                          rs_lease_fn conv, void *ctx)
{
	struct rs_lease *v = calloc(n ? n : 1, sizeof(*v));
	size_t k = 0;
	int r;

	if (!v) {
		log_warnx("%s: resync of %zu leases: out of memory", rs->name, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (conv(ctx, &leases[i], &v[k]) == 0)
			k++;
	r = routeset_resync(rs, v, k);
	free(v);
	return r < 0 ? r : 0;
}

/* ---- Life cycle ---- */

struct routeset *routeset_new(const struct rs_params *p)
{
	struct routeset *rs = calloc(1, sizeof(*rs));
	int err = ENOMEM;

	if (!rs)
		return NULL;
	rs->p = *p;
	rs->family = p->family == AF_INET6 ? AF_INET6 : AF_INET;
	rs->p.network = ipam_prefix_network(&p->network);
	snprintf(rs->name, sizeof(rs->name), "%s", p->name ? p->name : "routes");
	rs->p.name = rs->name;
	rs->by_mac.by_mac = true;
	if (p->share) {
		if (p->share->rb->nmembers >= 2 || p->share->family == rs->family) {
			err = EINVAL;
			goto fail;
		}
		rs->rb = p->share->rb;
	} else {
		rs->rb = calloc(1, sizeof(*rs->rb));
		if (!rs->rb)
			goto fail;
		rs->rb->sk = nl_sock_open(NULL, 0);
		if (!rs->rb->sk)
			goto fail_errno;
		rs->rb->batch = nl_batch_new(rs->rb->sk, batch_err, batch_reply, rs->rb);
		if (!rs->rb->batch)
			goto fail_errno;
	}
	rs->rb->members[rs->rb->nmembers++] = rs;
	rs->nh_kernel = nl_nexthops_supported(rs->rb->sk);
	rs->nh = p->nexthops && rs->nh_kernel;
	if (p->loop) {
		rs->flush_timer = ev_timer_new(p->loop, rs_flush_cb, rs);
		rs->heal_timer = ev_timer_new(p->loop, rs_heal_cb, rs);
		if (!rs->flush_timer || !rs->heal_timer)
			goto fail_errno;
	}
	return rs;
fail_errno:
	err = errno ? errno : ENOMEM;
fail:
	routeset_free(rs);
	errno = err;
	return NULL;
}

/* Leave the shared batch; the last member frees it. */
static void rb_leave(struct routeset *rs)
{
	struct rs_batch *rb = rs->rb;
	size_t k = 0;

	if (!rb)
		return;
	for (size_t i = 0; i < rb->nmembers; i++)
		if (rb->members[i] != rs)
			rb->members[k++] = rb->members[i];
	rb->nmembers = k;
	rs->rb = NULL;
	if (k)
		return;
	nl_batch_free(rb->batch);
	nl_sock_close(rb->sk);
	free(rb->ops);
	free(rb);
}

int routeset_start(struct routeset *rs)
{
	static const unsigned groups4[] = { RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR,
		                            RTNLGRP_IPV4_ROUTE, RTNLGRP_NEXTHOP };
	static const unsigned groups6[] = { RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV6_IFADDR,
		                            RTNLGRP_IPV6_ROUTE, RTNLGRP_NEXTHOP };
	const unsigned *groups = rs->family == AF_INET6 ? groups6 : groups4;
	int ret;

	if (rs->p.loop && !rs->evsk) {
		/* Joining RTNLGRP_NEXTHOP fails on kernels without nexthops: then go without. */
		rs->evsk = nl_sock_open(groups, rs->nh_kernel ? 5 : 4);
		if (!rs->evsk)
			return -errno;
		rs->io = ev_io_new(rs->p.loop, nl_sock_fd(rs->evsk), EPOLLIN, rs_io_cb, rs);
		if (!rs->io)
			return -errno;
	}
	ret = rs_ensure_dev(rs);
	if (ret < 0)
		return ret;
	rs->ext_up = true;
	rs->started = true;
	if (rs->synced)
		return routeset_reconcile(rs) < 0 ? -EIO : 0;
	if (rs->dirty)
		schedule_flush(rs);
	return 0;
}

void routeset_free(struct routeset *rs)
{
	if (!rs)
		return;
	ev_io_free(rs->io);
	ev_timer_free(rs->flush_timer);
	ev_timer_free(rs->heal_timer);
	nl_sock_close(rs->evsk);
	rb_leave(rs);
	for (size_t i = 0; i < rs->by_net.nb; i++) {
		struct rs_entry *e = rs->by_net.b[i], *next;

		for (; e; e = next) {
			next = e->next_net;
			free(e);
		}
	}
	free(rs->by_net.b);
	free(rs->by_mac.b);
	free(rs->stale.routes);
	free(rs->stale.neighs);
	free(rs->stale.nhs);
	free(rs);
}

bool routeset_uses_nexthops(const struct routeset *rs)
{
	return rs->nh;
}

size_t routeset_count(const struct routeset *rs)
{
	size_t n = 0;

	for (size_t i = 0; i < rs->by_net.nb; i++)
		for (struct rs_entry *e = rs->by_net.b[i]; e; e = e->next_net)
			n += e->wanted;
	return n;
}

size_t routeset_objects(const struct routeset *rs)
{
	size_t n = 0;

	for (size_t i = 0; i < rs->by_net.nb; i++)
		for (struct rs_entry *e = rs->by_net.b[i]; e; e = e->next_net)
			n += e->wanted ? (rs_e_l2(e) ? 3 : 1) : 0;
	return n;
}

uint64_t routeset_reconciles(const struct routeset *rs)
{
	return rs->reconciles;
}

uint64_t routeset_repairs(const struct routeset *rs)
{
	return rs ? rs->repairs : 0;
}
