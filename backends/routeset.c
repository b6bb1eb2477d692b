/*
 * The route set: wanted kernel objects per remote lease, batched programming,
 * reconcile from dumps, self-healing from netlink events. See routeset.h.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include "backends/routeset.h"
#include "lib/ev.h"
#include "lib/log.h"
#include "lib/nl.h"
#include "subnet/lease.h"

#define RS_HEAL_DELAY_MS  100  /* debounce of self-healing */
#define RS_RETRY_DELAY_MS 1000 /* after a failed reconcile */

struct rs_entry {
	struct rs_entry *next_net, *next_mac, *next_dirty;
	struct in_addr net; /* subnet network address */
	uint8_t len;
	struct in_addr pub;
	uint8_t mac[6];
	bool overlay;
	bool wanted; /* false: removal queued */
	bool dirty;
	bool in_mac;
	bool direct, direct_known; /* DirectRouting verdict */
	bool failed;               /* a message of the current batch was refused */
	/* what the kernel has, as far as we know */
	bool p_valid, p_l2;
	uint8_t p_mac[6];
	uint32_t p_nh;
	/* seen correct in the last dump */
	bool k_route, k_neigh, k_fdb, k_nh;
};

struct rs_table {
	struct rs_entry **b;
	size_t nb, n;
	bool by_mac;
};

enum rs_what { W_ROUTE, W_NEIGH, W_FDB, W_NH, W_LOOKUP };

/* One message of the current batch, found again from its cookie (index + 1). */
struct rs_op {
	struct rs_entry *e; /* NULL for stale objects */
	uint8_t what;
	bool del;
	struct in_addr addr;
	uint8_t len;
	uint8_t mac[6];
	uint32_t id;
};

struct rs_stale {
	struct nl_route *routes;
	size_t nroutes, croutes;
	struct nl_neigh *neighs; /* neighbours and fdb entries */
	size_t nneighs, cneighs;
	uint32_t *nhs;
	size_t nnhs, cnhs;
};

struct routeset {
	struct rs_params p;
	char name[64];
	struct nl_sock *sk, *evsk;
	struct nl_batch *batch;
	struct ev_io *io;
	struct ev_timer *flush_timer, *heal_timer;
	struct rs_table by_net, by_mac;
	struct rs_entry *dirty;
	struct rs_op *ops;
	size_t nops, cops;
	struct rs_stale stale;
	int dev;
	bool started, synced, nh_kernel, nh, ext_up;
	uint64_t reconciles;
	uint64_t repairs; /* entries found missing or changed in a reconcile after programming */
};

/* ---- Hash tables (chained, intrusive) ---- */

static struct rs_entry **next_of(struct rs_entry *e, bool by_mac)
{
	return by_mac ? &e->next_mac : &e->next_net;
}

static uint32_t hash_net(struct in_addr a)
{
	uint32_t x = a.s_addr;

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
	return (t->by_mac ? hash_mac(e->mac) : hash_net(e->net)) & (t->nb - 1);
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

static struct rs_entry *net_find(const struct routeset *rs, struct in_addr net)
{
	struct rs_entry *e;

	if (!rs->by_net.nb)
		return NULL;
	for (e = rs->by_net.b[hash_net(net) & (rs->by_net.nb - 1)]; e; e = e->next_net)
		if (e->net.s_addr == net.s_addr)
			return e;
	return NULL;
}

static bool e_l2(const struct rs_entry *e)
{
	return e->overlay && !e->direct;
}

/* A wanted entry with neighbour/fdb for @mac, other than @skip. */
static struct rs_entry *mac_find(const struct routeset *rs, const uint8_t *mac,
                                 const struct rs_entry *skip)
{
	struct rs_entry *e;

	if (!rs->by_mac.nb)
		return NULL;
	for (e = rs->by_mac.b[hash_mac(mac) & (rs->by_mac.nb - 1)]; e; e = e->next_mac)
		if (e != skip && e->wanted && e_l2(e) && memcmp(e->mac, mac, 6) == 0)
			return e;
	return NULL;
}

static void entry_free(struct routeset *rs, struct rs_entry *e)
{
	tbl_remove(&rs->by_net, e);
	if (e->in_mac)
		tbl_remove(&rs->by_mac, e);
	free(e);
}

/* ---- Wanted kernel objects of an entry ---- */

static uint32_t network_base(const struct routeset *rs)
{
	const uint8_t *b = rs->p.network.addr.bytes;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Deterministic nexthop id: the subnet's offset in Network in /30 units; 0 = plain route. */
static uint32_t e_nh(const struct routeset *rs, const struct rs_entry *e)
{
	uint32_t net = ntohl(e->net.s_addr), base = network_base(rs), idx;

	if (!rs->nh || e->len > 30 || net < base)
		return 0;
	idx = (net - base) >> 2;
	return idx < RS_NH_RANGE ? rs->p.nh_base + idx : 0;
}

static struct in_addr id_net(const struct routeset *rs, uint32_t id)
{
	struct in_addr a = { .s_addr = htonl(network_base(rs) + ((id - rs->p.nh_base) << 2)) };

	return a;
}

static void e_nexthop(const struct routeset *rs, const struct rs_entry *e, struct nl_nexthop *nh)
{
	memset(nh, 0, sizeof(*nh));
	nh->id = e_nh(rs, e);
	nh->has_gw = true;
	if (e_l2(e)) {
		nh->oif = rs->dev;
		nh->gw = e->net;
		nh->flags = RTNH_F_ONLINK;
	} else {
		nh->oif = rs->p.ext_ifindex;
		nh->gw = e->pub;
	}
}

static void e_route(const struct routeset *rs, const struct rs_entry *e, struct nl_route *r)
{
	struct nl_nexthop nh;

	e_nexthop(rs, e, &nh);
	memset(r, 0, sizeof(*r));
	r->dst = e->net;
	r->dst_len = e->len;
	r->nh_id = nh.id;
	r->oif = nh.oif;
	r->has_gw = true;
	r->gw = nh.gw;
	r->flags = nh.flags;
}

/* ---- Batch bookkeeping and error reporting ---- */

static void *push_op(struct routeset *rs, struct rs_entry *e, enum rs_what what, bool del)
{
	struct rs_op *op;

	if (rs->nops == rs->cops) {
		size_t c = rs->cops ? rs->cops * 2 : 256;
		struct rs_op *ops = realloc(rs->ops, c * sizeof(*ops));

		if (!ops)
			return NULL;
		rs->ops = ops;
		rs->cops = c;
	}
	op = &rs->ops[rs->nops++];
	memset(op, 0, sizeof(*op));
	op->e = e;
	op->what = (uint8_t)what;
	op->del = del;
	if (e) {
		op->addr = e->net;
		op->len = e->len;
	}
	return (void *)((uintptr_t)rs->nops << 1);
}

/*
 * The cookie of an install or lookup message of entry @e: the entry's address with bit 0 set
 * and @what in bits 1-3, so these messages (all of the initial sync: 3-4 per lease) need no
 * struct rs_op (that array reached 2 MB at 10,000 leases, bench/RESULTS.md). Entries come
 * from calloc, aligned for max_align_t, so their low 4 bits are 0; push_op's cookies are even.
 */
static void *ent_cookie(struct rs_entry *e, enum rs_what what)
{
	return (void *)((uintptr_t)e | (uintptr_t)what << 1 | 1u);
}

_Static_assert(_Alignof(max_align_t) >= 16, "entry cookies need 4 free low bits");

static struct rs_op *op_of(struct routeset *rs, void *cookie)
{
	uintptr_t i = (uintptr_t)cookie;

	if (i & 1u)
		return NULL;
	i >>= 1;
	return i && i <= rs->nops ? &rs->ops[i - 1] : NULL;
}

/* The operation behind @cookie (push_op's or ent_cookie's) into *ret_op; false if unknown. */
static bool op_get(struct routeset *rs, void *cookie, struct rs_op *ret_op)
{
	uintptr_t c = (uintptr_t)cookie;
	struct rs_op *op;

	if (c & 1u) {
		struct rs_entry *e = (struct rs_entry *)(c & ~(uintptr_t)15u);

		*ret_op = (struct rs_op){
			.e = e, .what = (uint8_t)((c >> 1) & 7u), .addr = e->net, .len = e->len
		};
		return true;
	}
	op = op_of(rs, cookie);
	if (op)
		*ret_op = *op;
	return op != NULL;
}

static const char *what_name(uint8_t what)
{
	static const char *const names[] = { "route", "neighbour", "fdb entry", "nexthop",
		                             "route lookup" };

	return what < sizeof(names) / sizeof(names[0]) ? names[what] : "object";
}

static void batch_err(void *ctx, void *cookie, int err, const char *extack)
{
	struct routeset *rs = ctx;
	struct rs_op opv, *op = op_get(rs, cookie, &opv) ? &opv : NULL;
	char a[INET_ADDRSTRLEN];

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
	inet_ntop(AF_INET, &op->addr, a, sizeof(a));
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
	struct routeset *rs = ctx;
	struct rs_op opv, *op = op_get(rs, cookie, &opv) ? &opv : NULL;
	struct nl_route r;

	if (!op || op->what != W_LOOKUP || !op->e || nlh->nlmsg_type != RTM_NEWROUTE ||
	    nl_parse_route(nlh, &r) < 0)
		return;
	op->e->direct = r.type == RTN_UNICAST && !r.has_gw && r.oif == rs->p.ext_ifindex;
	op->e->direct_known = true;
}

/* Queue the messages that install the parts of @e selected by the flags. */
static int emit_entry(struct routeset *rs, struct rs_entry *e, bool nh, bool neigh, bool fdb,
                      bool route)
{
	struct nl_nexthop x;
	struct nl_route r;
	struct nl_neigh n;
	int ret = 0;

	e_nexthop(rs, e, &x);
	if (nh && x.id)
		ret = nl_batch_nexthop(rs->batch, NL_OP_REPLACE, &x, ent_cookie(e, W_NH));
	if (!ret && e_l2(e) && neigh) {
		n = (struct nl_neigh){ .family = AF_INET,
			               .ifindex = rs->dev,
			               .state = NUD_PERMANENT,
			               .has_dst = true,
			               .dst = e->net,
			               .has_lladdr = true };
		memcpy(n.lladdr, e->mac, 6);
		ret = nl_batch_neigh(rs->batch, NL_OP_REPLACE, &n, ent_cookie(e, W_NEIGH));
	}
	if (!ret && e_l2(e) && fdb) {
		n = (struct nl_neigh){ .family = AF_BRIDGE,
			               .ifindex = rs->dev,
			               .state = NUD_PERMANENT,
			               .flags = NTF_SELF,
			               .has_dst = true,
			               .dst = e->pub,
			               .has_lladdr = true };
		memcpy(n.lladdr, e->mac, 6);
		ret = nl_batch_neigh(rs->batch, NL_OP_REPLACE, &n, ent_cookie(e, W_FDB));
	}
	if (!ret && route) {
		e_route(rs, e, &r);
		ret = nl_batch_route(rs->batch, NL_OP_REPLACE, &r, ent_cookie(e, W_ROUTE));
	}
	return ret;
}

static int emit_del_neigh(struct routeset *rs, struct rs_entry *e, struct in_addr dst)
{
	struct nl_neigh n = { .family = AF_INET, .ifindex = rs->dev, .has_dst = true, .dst = dst };
	struct rs_op *op;
	void *c = push_op(rs, e, W_NEIGH, true);

	if ((op = op_of(rs, c)))
		op->addr = dst, op->len = 32;
	return nl_batch_neigh(rs->batch, NL_OP_DELETE, &n, c);
}

static int emit_del_fdb(struct routeset *rs, struct rs_entry *e, const uint8_t *mac)
{
	struct nl_neigh n = {
		.family = AF_BRIDGE, .ifindex = rs->dev, .flags = NTF_SELF, .has_lladdr = true
	};
	struct rs_op *op;
	void *c = push_op(rs, e, W_FDB, true);

	memcpy(n.lladdr, mac, 6);
	if ((op = op_of(rs, c)))
		memcpy(op->mac, mac, 6);
	return nl_batch_neigh(rs->batch, NL_OP_DELETE, &n, c);
}

static int emit_del_nh(struct routeset *rs, struct rs_entry *e, uint32_t id)
{
	struct nl_nexthop x = { .id = id };
	struct rs_op *op;
	void *c = push_op(rs, e, W_NH, true);

	if ((op = op_of(rs, c)))
		op->id = id;
	return nl_batch_nexthop(rs->batch, NL_OP_DELETE, &x, c);
}

static int emit_del_route(struct routeset *rs, struct rs_entry *e, struct in_addr dst, uint8_t len)
{
	struct nl_route r = { .dst = dst, .dst_len = len };
	struct rs_op *op;
	void *c = push_op(rs, e, W_ROUTE, true);

	if ((op = op_of(rs, c)))
		op->addr = dst, op->len = len;
	return nl_batch_route(rs->batch, NL_OP_DELETE, &r, c);
}

/* Send the batch; the count of refused objects, or -errno (logged). */
static int commit(struct routeset *rs)
{
	int ret = nl_batch_commit(rs->batch);

	rs->nops = 0;
	if (ret >= 0)
		return ret;
	if (rs->heal_timer && rs->synced) {
		log_warnx("%s: netlink batch failed: %s, resyncing in %ds", rs->name,
		          strerror(-ret), RS_RETRY_DELAY_MS / 1000);
		ev_timer_start(rs->heal_timer, RS_RETRY_DELAY_MS, 0);
	} else {
		log_warnx("%s: netlink batch failed: %s", rs->name, strerror(-ret));
	}
	return ret;
}

static void entry_programmed(const struct routeset *rs, struct rs_entry *e)
{
	e->p_valid = true;
	e->p_l2 = e_l2(e);
	memcpy(e->p_mac, e->mac, 6);
	e->p_nh = e_nh(rs, e);
}

/* DirectRouting: ask the kernel for the route to every PublicIP in one batch. */
static int lookup_direct(struct routeset *rs, bool all)
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
			ret = nl_batch_getroute(rs->batch, e->pub, ent_cookie(e, W_LOOKUP));
			if (ret < 0)
				return ret;
			any = true;
		}
	}
	if (!any)
		return 0;
	ret = commit(rs);
	return ret < 0 ? ret : 0;
}

/* ---- Flush: queued changes ---- */

int routeset_flush(struct routeset *rs)
{
	struct rs_entry *e, *next;
	int ret;

	if (!rs->started || !rs->dirty)
		return 0;
	if (rs->flush_timer)
		ev_timer_stop(rs->flush_timer);
	rs->nops = 0;
	ret = lookup_direct(rs, false);
	for (e = rs->dirty; e && ret >= 0; e = e->next_dirty) {
		e->failed = false;
		if (!e->wanted) {
			/* Without a record of what is installed, remove what it would be. */
			bool l2 = e->p_valid ? e->p_l2 : e_l2(e);
			const uint8_t *mac = e->p_valid ? e->p_mac : e->mac;
			uint32_t nh = e->p_valid ? e->p_nh : e_nh(rs, e);

			if (l2 && rs->dev) {
				ret = emit_del_neigh(rs, e, e->net);
				if (ret >= 0 && !mac_find(rs, mac, e))
					ret = emit_del_fdb(rs, e, mac);
			}
			if (ret >= 0)
				ret = emit_del_route(rs, e, e->net, e->len);
			if (ret >= 0 && nh)
				ret = emit_del_nh(rs, e, nh);
		} else if (e->p_valid) {
			bool want_l2 = e_l2(e);

			if (e->p_l2 && !want_l2)
				ret = emit_del_neigh(rs, e, e->net);
			if (ret >= 0 && e->p_l2 && (!want_l2 || memcmp(e->p_mac, e->mac, 6)) &&
			    !mac_find(rs, e->p_mac, e))
				ret = emit_del_fdb(rs, e, e->p_mac);
			if (ret >= 0 && e->p_nh && e->p_nh != e_nh(rs, e))
				ret = emit_del_nh(rs, e, e->p_nh);
		}
	}
	for (e = rs->dirty; e && ret >= 0; e = e->next_dirty)
		if (e->wanted)
			ret = emit_entry(rs, e, true, true, true, true);
	if (ret >= 0)
		ret = commit(rs);
	else
		nl_batch_commit(rs->batch);
	for (e = rs->dirty; e; e = next) {
		next = e->next_dirty;
		e->dirty = false;
		e->next_dirty = NULL;
		if (!e->wanted) {
			entry_free(rs, e);
			continue;
		}
		entry_programmed(rs, e);
		e->p_valid = ret >= 0 && !e->failed;
	}
	rs->dirty = NULL;
	return ret;
}

static void flush_cb(struct ev_timer *t, void *ctx)
{
	(void)t;
	routeset_flush(ctx);
}

static void mark_dirty(struct routeset *rs, struct rs_entry *e)
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
static int set_entry(struct routeset *rs, const struct rs_lease *l)
{
	struct in_addr net, pub;
	struct ipam_prefix np;
	struct rs_entry *e;
	char buf[IPAM_PREFIX_STRLEN];
	int ret;

	if (l->subnet.addr.family != AF_INET || l->public_ip.family != AF_INET ||
	    l->subnet.len > 32) {
		log_warnx("%s: lease %s: not an IPv4 lease, ignored", rs->name,
		          ipam_prefix_format(&l->subnet, buf));
		return -EINVAL;
	}
	np = ipam_prefix_network(&l->subnet);
	memcpy(&net, np.addr.bytes, 4);
	memcpy(&pub, l->public_ip.bytes, 4);
	e = net_find(rs, net);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->net = net;
		ret = tbl_insert(&rs->by_net, e);
		if (ret < 0) {
			free(e);
			return ret;
		}
	} else if (e->wanted && e->len == np.len && e->pub.s_addr == pub.s_addr &&
	           e->overlay == l->overlay && (!l->overlay || !memcmp(e->mac, l->mac, 6))) {
		return 0; /* unchanged */
	}
	if (e->pub.s_addr != pub.s_addr)
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
			return ret;
		e->in_mac = true;
	}
	e->wanted = true;
	mark_dirty(rs, e);
	return 0;
}

int routeset_set(struct routeset *rs, const struct rs_lease *l)
{
	int ret = set_entry(rs, l);

	if (ret == 0)
		schedule_flush(rs);
	return ret;
}

int routeset_unset(struct routeset *rs, const struct ipam_prefix *subnet)
{
	struct ipam_prefix np = ipam_prefix_network(subnet);
	struct in_addr net;
	struct rs_entry *e;

	if (np.addr.family != AF_INET)
		return 0;
	memcpy(&net, np.addr.bytes, 4);
	e = net_find(rs, net);
	if (!e || !e->wanted || e->len != np.len)
		return 0;
	e->wanted = false;
	mark_dirty(rs, e);
	schedule_flush(rs);
	return 0;
}

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

static bool in_network(const struct routeset *rs, struct in_addr dst, uint8_t len)
{
	struct ipam_prefix p = { .addr = { .family = AF_INET }, .len = len };

	memcpy(p.addr.bytes, &dst, 4);
	return len > rs->p.network.len && ipam_prefix_contains(&rs->p.network, &p);
}

static int route_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct routeset *rs = ctx;
	struct nl_route r;
	struct rs_entry *e;

	if (nl_parse_route(nlh, &r) < 0 || r.table != RT_TABLE_MAIN || r.type != RTN_UNICAST ||
	    r.protocol == RTPROT_KERNEL || !r.dst_len)
		return 0;
	if (!((rs->dev && r.oif == rs->dev) || r.oif == rs->p.ext_ifindex))
		return 0;
	e = net_find(rs, r.dst);
	if (e && e->wanted && e->len == r.dst_len) {
		struct nl_route w;

		e_route(rs, e, &w);
		if (r.priority == 0 &&
		    (w.nh_id ? r.nh_id == w.nh_id
		             : (!r.nh_id && r.has_gw && r.gw.s_addr == w.gw.s_addr &&
		                r.oif == w.oif &&
		                !(r.flags & RTNH_F_ONLINK) == !(w.flags & RTNH_F_ONLINK))))
			e->k_route = true;
		return 0;
	}
	if (e && e->wanted)
		return 0; /* same address, other length: not ours to judge */
	if ((rs->dev && r.oif == rs->dev) ||
	    ((r.has_gw || r.nh_id) && in_network(rs, r.dst, r.dst_len))) {
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

	if (nl_parse_neigh(nlh, &n) < 0 || n.ifindex != rs->dev)
		return 0;
	if (n.family == AF_INET) {
		if (!n.has_dst || !(n.state & NUD_PERMANENT))
			return 0;
		e = net_find(rs, n.dst);
		if (e && e->wanted && e_l2(e)) {
			if (n.has_lladdr && memcmp(n.lladdr, e->mac, 6) == 0)
				e->k_neigh = true;
			return 0;
		}
	} else {
		if (!(n.flags & NTF_SELF) || !n.has_lladdr || (n.lladdr[0] & 1))
			return 0;
		e = mac_find(rs, n.lladdr, NULL);
		if (e) {
			if (n.has_dst && n.dst.s_addr == e->pub.s_addr)
				e->k_fdb = true;
			return 0;
		}
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

	if (nl_parse_nexthop(nlh, &x) < 0 || x.id < rs->p.nh_base ||
	    x.id - rs->p.nh_base >= RS_NH_RANGE)
		return 0;
	e = net_find(rs, id_net(rs, x.id));
	if (e && e->wanted && e_nh(rs, e) == x.id) {
		struct nl_nexthop w;

		e_nexthop(rs, e, &w);
		if (!x.group && !x.blackhole && x.oif == w.oif && x.has_gw &&
		    x.gw.s_addr == w.gw.s_addr &&
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
			entry_free(rs, e);
	}
	rs->dirty = NULL;
}

static int ensure_dev(struct routeset *rs)
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
	return e->p_valid && e->p_l2 == e_l2(e) && memcmp(e->p_mac, e->mac, 6) == 0 &&
	       e->p_nh == e_nh(rs, e);
}

int routeset_reconcile(struct routeset *rs)
{
	int ret;

	if (!rs->started)
		return -EAGAIN;
	rs->reconciles++;
	if (rs->heal_timer)
		ev_timer_stop(rs->heal_timer);
	if (rs->flush_timer)
		ev_timer_stop(rs->flush_timer);
	ret = ensure_dev(rs);
	if (ret < 0)
		return ret;
	drop_dirty(rs);
	rs->nops = 0;
	rs->stale.nroutes = rs->stale.nneighs = rs->stale.nnhs = 0;
	ret = lookup_direct(rs, true);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < rs->by_net.nb; i++)
		for (struct rs_entry *e = rs->by_net.b[i]; e; e = e->next_net)
			e->k_route = e->k_neigh = e->k_fdb = false, e->k_nh = !e_nh(rs, e),
			e->failed = false;

	ret = nl_dump(rs->sk, RTM_GETROUTE, AF_INET, route_cb, rs);
	if (!ret && rs->dev)
		ret = nl_dump(rs->sk, RTM_GETNEIGH, AF_INET, neigh_cb, rs);
	if (!ret && rs->dev)
		ret = nl_dump(rs->sk, RTM_GETNEIGH, AF_BRIDGE, neigh_cb, rs);
	if (!ret && rs->nh_kernel)
		ret = nl_dump(rs->sk, RTM_GETNEXTHOP, AF_UNSPEC, nh_cb, rs);
	if (ret < 0) {
		log_warnx("%s: reading kernel state failed: %s%s%s", rs->name, strerror(-ret),
		          *nl_sock_errmsg(rs->sk) ? ": " : "", nl_sock_errmsg(rs->sk));
		return ret;
	}

	for (size_t i = 0; i < rs->stale.nroutes && ret >= 0; i++)
		ret = emit_del_route(rs, NULL, rs->stale.routes[i].dst,
		                     rs->stale.routes[i].dst_len);
	for (size_t i = 0; i < rs->stale.nnhs && ret >= 0; i++)
		ret = emit_del_nh(rs, NULL, rs->stale.nhs[i]);
	for (size_t i = 0; i < rs->stale.nneighs && ret >= 0; i++) {
		const struct nl_neigh *n = &rs->stale.neighs[i];

		if (n->family == AF_BRIDGE)
			ret = emit_del_fdb(rs, NULL, n->lladdr);
		else
			ret = emit_del_neigh(rs, NULL, n->dst);
	}
	for (size_t i = 0; i < rs->by_net.nb && ret >= 0; i++) {
		for (struct rs_entry *e = rs->by_net.b[i]; e && ret >= 0; e = e->next_net) {
			if (!e->k_route || !e->k_nh || (e_l2(e) && (!e->k_neigh || !e->k_fdb))) {
				rs->repairs += entry_was_programmed(rs, e);
				ret = emit_entry(rs, e, !e->k_nh, !e->k_neigh, !e->k_fdb,
				                 !e->k_route || !e->k_nh);
			}
		}
	}
	if (ret >= 0)
		ret = commit(rs);
	else
		nl_batch_commit(rs->batch);
	for (size_t i = 0; i < rs->by_net.nb; i++) {
		for (struct rs_entry *e = rs->by_net.b[i]; e; e = e->next_net) {
			entry_programmed(rs, e);
			e->p_valid = ret >= 0 && !e->failed;
		}
	}
	log_debug(
		"%s: reconciled %zu leases (%zu stale routes, %zu stale neighbours/fdb, %zu stale nexthops)",
		rs->name, rs->by_net.n, rs->stale.nroutes, rs->stale.nneighs, rs->stale.nnhs);
	return ret;
}

int routeset_resync(struct routeset *rs, const struct rs_lease *ls, size_t n)
{
	int ret = 0;

	for (size_t i = 0; i < rs->by_net.nb; i++)
		for (struct rs_entry *e = rs->by_net.b[i]; e; e = e->next_net)
			if (e->wanted) {
				e->wanted = false;
				mark_dirty(rs, e);
			}
	for (size_t i = 0; i < n; i++) {
		int r = set_entry(rs, &ls[i]);

		if (r == -ENOMEM)
			return r;
		if (r < 0 && !ret)
			ret = r;
	}
	rs->synced = true;
	if (!rs->started)
		return ret;
	{
		int r = routeset_reconcile(rs);

		return r ? r : ret;
	}
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
	if (!l->has_ipv4)
		return 0;
	return routeset_unset(rs, &l->subnet);
}

int routeset_lease_resync(struct routeset *rs, const struct lease *leases, size_t n,
                          rs_lease_fn conv, void *ctx)
{
	struct rs_lease *v = calloc(n ? n : 1, sizeof(*v));
	size_t k = 0;
	int r;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (conv(ctx, &leases[i], &v[k]) == 0)
			k++;
	r = routeset_resync(rs, v, k);
	free(v);
	return r < 0 ? r : 0;
}

/* ---- Self-healing ---- */

static void heal_cb(struct ev_timer *t, void *ctx)
{
	struct routeset *rs = ctx;
	int ret;

	(void)t;
	if (!rs->synced) {
		ret = ensure_dev(rs);
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

		return rs->dev && nl_parse_addr(nlh, &a) == 0 && a.ifindex == rs->dev;
	}
	case RTM_DELROUTE: {
		struct nl_route r;
		struct rs_entry *e;

		if (nl_parse_route(nlh, &r) < 0 || r.table != RT_TABLE_MAIN)
			return false;
		e = net_find(rs, r.dst);
		return e && e->wanted && e->len == r.dst_len;
	}
	case RTM_DELNEIGH: {
		struct nl_neigh n;
		struct rs_entry *e;

		if (!rs->dev || nl_parse_neigh(nlh, &n) < 0 || n.ifindex != rs->dev)
			return false;
		if (n.family == AF_BRIDGE)
			return n.has_lladdr && mac_find(rs, n.lladdr, NULL);
		e = n.has_dst ? net_find(rs, n.dst) : NULL;
		return e && e->wanted && e_l2(e);
	}
	case RTM_DELNEXTHOP: {
		struct nl_nexthop x;
		struct rs_entry *e;

		if (nl_parse_nexthop(nlh, &x) < 0 || x.id < rs->p.nh_base ||
		    x.id - rs->p.nh_base >= RS_NH_RANGE)
			return false;
		e = net_find(rs, id_net(rs, x.id));
		return e && e->wanted && e_nh(rs, e) == x.id;
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

static void io_cb(struct ev_io *io, int fd, uint32_t revents, void *ctx)
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

/* ---- Life cycle ---- */

struct routeset *routeset_new(const struct rs_params *p)
{
	struct routeset *rs = calloc(1, sizeof(*rs));
	int err = ENOMEM;

	if (!rs)
		return NULL;
	rs->p = *p;
	rs->p.network = ipam_prefix_network(&p->network);
	snprintf(rs->name, sizeof(rs->name), "%s", p->name ? p->name : "routes");
	rs->p.name = rs->name;
	rs->by_mac.by_mac = true;
	rs->sk = nl_sock_open(NULL, 0);
	if (!rs->sk)
		goto fail_errno;
	rs->batch = nl_batch_new(rs->sk, batch_err, batch_reply, rs);
	if (!rs->batch)
		goto fail_errno;
	rs->nh_kernel = nl_nexthops_supported(rs->sk);
	rs->nh = p->nexthops && rs->nh_kernel;
	if (p->loop) {
		rs->flush_timer = ev_timer_new(p->loop, flush_cb, rs);
		rs->heal_timer = ev_timer_new(p->loop, heal_cb, rs);
		if (!rs->flush_timer || !rs->heal_timer)
			goto fail_errno;
	}
	return rs;
fail_errno:
	err = errno ? errno : ENOMEM;
	routeset_free(rs);
	errno = err;
	return NULL;
}

int routeset_start(struct routeset *rs)
{
	static const unsigned groups[] = { RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR,
		                           RTNLGRP_IPV4_ROUTE, RTNLGRP_NEXTHOP };
	int ret;

	if (rs->p.loop && !rs->evsk) {
		/* Joining RTNLGRP_NEXTHOP fails on kernels without nexthops: then go without. */
		rs->evsk = nl_sock_open(groups, rs->nh_kernel ? 5 : 4);
		if (!rs->evsk)
			return -errno;
		rs->io = ev_io_new(rs->p.loop, nl_sock_fd(rs->evsk), EPOLLIN, io_cb, rs);
		if (!rs->io)
			return -errno;
	}
	ret = ensure_dev(rs);
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
	nl_batch_free(rs->batch);
	nl_sock_close(rs->sk);
	for (size_t i = 0; i < rs->by_net.nb; i++) {
		struct rs_entry *e = rs->by_net.b[i], *next;

		for (; e; e = next) {
			next = e->next_net;
			free(e);
		}
	}
	free(rs->by_net.b);
	free(rs->by_mac.b);
	free(rs->ops);
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

uint64_t routeset_reconciles(const struct routeset *rs)
{
	return rs->reconciles;
}

uint64_t routeset_repairs(const struct routeset *rs)
{
	return rs ? rs->repairs : 0;
}
