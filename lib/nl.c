/*
 * rtnetlink on libmnl: sockets, batches, dumps, events, builders (parsers: nl_parse.c).
 * See nl.h for the contracts.
 */
#define _GNU_SOURCE /* recvmmsg */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <stdio.h>
#include <net/if.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/nexthop.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>

#include "lib/nl.h"

#define NL_RX_BYTES    (256 * 1024)
#define NL_RX_SLOTS    32
#define NL_RX_SLOT     (NL_RX_BYTES / NL_RX_SLOTS)
#define NL_RCVBUF      (8 * 1024 * 1024)
#define NL_BATCH_BYTES (128 * 1024)
#define NL_MSG_MAX     1024 /* room reserved per batched message; ours are < 200 bytes */
#define NL_RCV_TIMEOUT 10   /* seconds */

struct nl_sock {
	struct mnl_socket *mnl;
	int fd;
	uint32_t seq;
	char *rx;
	char errmsg[NL_ERRMSG_MAX];
};

struct nl_batch {
	struct nl_sock *sk;
	nl_batch_err_cb err_cb;
	nl_batch_reply_cb reply_cb;
	void *ctx;
	char *buf;
	size_t len;           /* bytes of finished messages */
	struct nlmsghdr *cur; /* message being built, or NULL */
	unsigned count;       /* messages in buf (cur included) */
	uint32_t seq0;        /* sequence number of the first message in buf */
	unsigned failed;      /* refused messages since the last commit */
	int fatal;            /* socket failure since the last commit */
	void *cookies[NL_BATCH_MSGS];
};

static struct nl_stats stats;

void nl_stats_get(struct nl_stats *ret)
{
	*ret = stats;
}

void nl_stats_reset(void)
{
	memset(&stats, 0, sizeof(stats));
}

struct nl_sock *nl_sock_open(const unsigned *groups, size_t ngroups)
{
	struct nl_sock *sk = calloc(1, sizeof(*sk));
	int one = 1, rcvbuf = NL_RCVBUF, err;
	struct timeval tv = { .tv_sec = NL_RCV_TIMEOUT };

	if (!sk)
		return NULL;
	sk->rx = malloc(NL_RX_BYTES);
	if (!sk->rx)
		goto fail;
	sk->mnl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | (ngroups ? SOCK_NONBLOCK : 0));
	if (!sk->mnl)
		goto fail;
	sk->fd = mnl_socket_get_fd(sk->mnl);
	/* Extended ACKs are best effort: old kernels just lack the text. */
	setsockopt(sk->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(sk->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	if (setsockopt(sk->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(sk->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (setsockopt(sk->fd, SOL_SOCKET, SO_SNDBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(sk->fd, SOL_SOCKET, SO_SNDBUF, &rcvbuf, sizeof(rcvbuf));
	if (!ngroups && setsockopt(sk->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		goto fail;
	if (mnl_socket_bind(sk->mnl, 0, MNL_SOCKET_AUTOPID) < 0)
		goto fail;
	for (size_t i = 0; i < ngroups; i++) {
		int g = (int)groups[i];

		if (setsockopt(sk->fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof(g)) < 0)
			goto fail;
	}
	sk->seq = (uint32_t)time(NULL);
	return sk;
fail:
	err = errno;
	nl_sock_close(sk);
	errno = err ? err : ENOMEM;
	return NULL;
}

void nl_sock_close(struct nl_sock *sk)
{
	if (!sk)
		return;
	if (sk->mnl)
		mnl_socket_close(sk->mnl);
	free(sk->rx);
	free(sk);
}

int nl_sock_fd(const struct nl_sock *sk)
{
	return sk->fd;
}

const char *nl_sock_errmsg(const struct nl_sock *sk)
{
	return sk->errmsg;
}

static int send_buf(struct nl_sock *sk, const void *buf, size_t len, unsigned nmsgs)
{
	ssize_t n;

	do
		n = mnl_socket_sendto(sk->mnl, buf, len);
	while (n < 0 && errno == EINTR);
	stats.sendmsg_calls++;
	stats.messages += nmsgs;
	if (n < 0)
		return -errno;
	return 0;
}

/* The error of an NLMSG_ERROR message, with the extended-ACK text copied into @msg. */
static int parse_ack(const struct nlmsghdr *nlh, char *msg, size_t msglen)
{
	const struct nlmsgerr *e;
	struct nlattr *attr;
	size_t off = sizeof(*e);

	msg[0] = '\0';
	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(*e))
		return -EBADMSG;
	e = mnl_nlmsg_get_payload(nlh);
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return e->error;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len > sizeof(struct nlmsghdr)
		               ? MNL_ALIGN(e->msg.nlmsg_len - sizeof(struct nlmsghdr))
		               : 0;
	if (NLMSG_HDRLEN + off > nlh->nlmsg_len)
		return e->error;
	mnl_attr_for_each(attr, nlh, off) {
		if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
			snprintf(msg, msglen, "%s", mnl_attr_get_str(attr));
			break;
		}
	}
	return e->error;
}

/* Receive one datagram into sk->rx (blocking unless @dontwait). Length or -errno. */
static ssize_t recv_one(struct nl_sock *sk, bool dontwait)
{
	ssize_t n;

	do
		n = recv(sk->fd, sk->rx, NL_RX_BYTES, dontwait ? MSG_DONTWAIT : 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN && !dontwait ? -ETIMEDOUT : -errno;
	return n;
}

/* Header flags of a change: replace-or-create (idempotent), none for a delete. */
static uint16_t new_flags(enum nl_op op)
{
	return op == NL_OP_DELETE ? 0 : NLM_F_CREATE | NLM_F_REPLACE;
}

/* Room for one request on the stack, aligned for its header. */
union msgbuf {
	char buf[NL_MSG_MAX];
	struct nlmsghdr h;
};

/*
 * Start a request of @type with @flags in @m, zeroed first: libmnl <= 1.0.4 leaves attribute
 * padding uninitialised.
 */
static struct nlmsghdr *msg_start(union msgbuf *m, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh;

	memset(m, 0, sizeof(*m));
	nlh = mnl_nlmsg_put_header(m->buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	return nlh;
}

/*
 * Send @nlh as request @seq and read its answers, each to @cb, up to its ACK or, for a @dump,
 * NLMSG_DONE. The first error of @cb, or -errno (a dump's ACK is -EBADMSG).
 */
static int transact(struct nl_sock *sk, struct nlmsghdr *nlh, uint32_t seq, bool dump, nl_msg_cb cb,
                    void *ctx)
{
	int cb_err = 0, ret;

	sk->errmsg[0] = '\0';
	nlh->nlmsg_seq = seq;
	ret = send_buf(sk, nlh, nlh->nlmsg_len, 1);
	if (ret < 0)
		return ret;
	for (;;) {
		ssize_t got = recv_one(sk, false);
		const struct nlmsghdr *m;
		int n = (int)got;

		if (got < 0)
			return (int)got;
		for (m = (const struct nlmsghdr *)sk->rx; mnl_nlmsg_ok(m, n);
		     m = mnl_nlmsg_next(m, &n)) {
			if (m->nlmsg_seq != seq)
				continue;
			if (dump && m->nlmsg_type == NLMSG_DONE)
				return cb_err;
			if (m->nlmsg_type == NLMSG_ERROR) {
				ret = parse_ack(m, sk->errmsg, sizeof(sk->errmsg));
				if (dump)
					return ret < 0 ? ret : -EBADMSG;
				if (ret < 0)
					stats.errors++;
				return ret < 0 ? ret : cb_err;
			}
			if (cb && !cb_err && m->nlmsg_type >= NLMSG_MIN_TYPE)
				cb_err = cb(m, ctx);
		}
	}
}

int nl_request(struct nl_sock *sk, struct nlmsghdr *nlh, nl_msg_cb cb, void *ctx)
{
	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	return transact(sk, nlh, ++sk->seq, false, cb, ctx);
}

static size_t family_hdr_len(uint16_t type)
{
	switch (type) {
	case RTM_GETLINK:
		return sizeof(struct ifinfomsg);
	case RTM_GETADDR:
		return sizeof(struct ifaddrmsg);
	case RTM_GETROUTE:
		return sizeof(struct rtmsg);
	case RTM_GETNEIGH:
		return sizeof(struct ndmsg);
	case RTM_GETNEXTHOP:
		return sizeof(struct nhmsg);
	default:
		return sizeof(struct rtgenmsg);
	}
}

int nl_dump(struct nl_sock *sk, uint16_t type, uint8_t family, nl_msg_cb cb, void *ctx)
{
	union msgbuf u;
	struct nlmsghdr *nlh = msg_start(&u, type, NLM_F_REQUEST | NLM_F_DUMP);
	uint8_t *hdr;

	hdr = mnl_nlmsg_put_extra_header(nlh, family_hdr_len(type));
	hdr[0] = family; /* every rtnetlink header starts with the family */
	return transact(sk, nlh, ++sk->seq, true, cb, ctx);
}

int nl_recv_events(struct nl_sock *sk, nl_msg_cb cb, void *ctx)
{
	for (;;) {
		ssize_t got = recv_one(sk, true);
		const struct nlmsghdr *m;
		int n = (int)got;

		if (got == -EAGAIN)
			return 0;
		if (got < 0)
			return (int)got;
		for (m = (const struct nlmsghdr *)sk->rx; mnl_nlmsg_ok(m, n);
		     m = mnl_nlmsg_next(m, &n)) {
			if (m->nlmsg_type >= NLMSG_MIN_TYPE && cb)
				cb(m, ctx);
		}
	}
}

/* ---- Batches ---- */

struct nl_batch *nl_batch_new(struct nl_sock *sk, nl_batch_err_cb err_cb,
                              nl_batch_reply_cb reply_cb, void *ctx)
{
	struct nl_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->buf = malloc(NL_BATCH_BYTES);
	if (!b->buf) {
		free(b);
		errno = ENOMEM;
		return NULL;
	}
	b->sk = sk;
	b->err_cb = err_cb;
	b->reply_cb = reply_cb;
	b->ctx = ctx;
	return b;
}

void nl_batch_free(struct nl_batch *b)
{
	if (!b)
		return;
	free(b->buf);
	free(b);
}

size_t nl_batch_pending(const struct nl_batch *b)
{
	return b->count;
}

static void batch_close_cur(struct nl_batch *b)
{
	if (b->cur) {
		b->len += MNL_ALIGN(b->cur->nlmsg_len);
		b->cur = NULL;
	}
}

/* Drain the ACKs of the @b->count messages just sent. */
static int batch_drain(struct nl_batch *b)
{
	struct nl_sock *sk = b->sk;
	struct mmsghdr msgs[NL_RX_SLOTS];
	struct iovec iov[NL_RX_SLOTS];
	unsigned acked = 0;
	char text[NL_ERRMSG_MAX];

	for (unsigned i = 0; i < NL_RX_SLOTS; i++) {
		iov[i].iov_base = sk->rx + (size_t)i * NL_RX_SLOT;
		iov[i].iov_len = NL_RX_SLOT;
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	while (acked < b->count) {
		int got = recvmmsg(sk->fd, msgs, NL_RX_SLOTS, MSG_WAITFORONE, NULL);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		for (int i = 0; i < got; i++) {
			int n = (int)msgs[i].msg_len;
			const struct nlmsghdr *m;

			for (m = iov[i].iov_base; mnl_nlmsg_ok(m, n); m = mnl_nlmsg_next(m, &n)) {
				uint32_t idx = m->nlmsg_seq - b->seq0;
				int err;

				if (idx >= b->count)
					continue; /* stale reply of an earlier, failed batch */
				if (m->nlmsg_type != NLMSG_ERROR) {
					if (b->reply_cb && m->nlmsg_type >= NLMSG_MIN_TYPE)
						b->reply_cb(b->ctx, b->cookies[idx], m);
					continue;
				}
				acked++;
				err = parse_ack(m, text, sizeof(text));
				if (err < 0) {
					stats.errors++;
					b->failed++;
					if (b->err_cb)
						b->err_cb(b->ctx, b->cookies[idx], err, text);
				}
			}
		}
	}
	return 0;
}

static int batch_send(struct nl_batch *b)
{
	int ret;

	batch_close_cur(b);
	if (!b->count)
		return 0;
	ret = send_buf(b->sk, b->buf, b->len, b->count);
	if (ret == 0)
		ret = batch_drain(b);
	b->len = 0;
	b->count = 0;
	if (ret < 0 && !b->fatal)
		b->fatal = ret;
	return ret;
}

int nl_batch_commit(struct nl_batch *b)
{
	int ret = batch_send(b);

	if (!ret)
		ret = b->fatal;
	if (!ret)
		ret = (int)b->failed;
	b->failed = 0;
	b->fatal = 0;
	return ret;
}

static struct nlmsghdr *batch_begin(struct nl_batch *b, uint16_t type, uint16_t flags, void *cookie)
{
	struct nlmsghdr *nlh;

	batch_close_cur(b);
	if (b->count == NL_BATCH_MSGS || NL_BATCH_BYTES - b->len < NL_MSG_MAX) {
		int ret = batch_send(b);

		if (ret < 0) {
			errno = -ret;
			return NULL;
		}
	}
	if (!b->count)
		b->seq0 = b->sk->seq + 1;
	/* libmnl <= 1.0.4 leaves attribute padding uninitialised: zero the message's room */
	memset(b->buf + b->len, 0, NL_MSG_MAX);
	nlh = mnl_nlmsg_put_header(b->buf + b->len);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++b->sk->seq;
	b->cookies[b->count++] = cookie;
	b->cur = nlh;
	return nlh;
}

static void put_in_addr(struct nlmsghdr *nlh, uint16_t type, struct in_addr a)
{
	mnl_attr_put(nlh, type, sizeof(a), &a);
}

static bool is6(uint8_t family)
{
	return family == AF_INET6;
}

static uint8_t fam(uint8_t family)
{
	return is6(family) ? AF_INET6 : AF_INET;
}

/* An address of @family from a 16-byte union (IPv4 in the first 4 bytes). */
static void put_ip(struct nlmsghdr *nlh, uint16_t type, uint8_t family, const void *a)
{
	mnl_attr_put(nlh, type, is6(family) ? 16 : 4, a);
}

static void build_route(struct nlmsghdr *nlh, enum nl_op op, const struct nl_route *r)
{
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));

	rtm->rtm_family = fam(r->family);
	rtm->rtm_dst_len = r->dst_len;
	rtm->rtm_table = r->table ? r->table : RT_TABLE_MAIN;
	if (op == NL_OP_DELETE) {
		rtm->rtm_scope = RT_SCOPE_NOWHERE;
	} else {
		rtm->rtm_protocol = r->protocol ? r->protocol : RTPROT_BOOT;
		rtm->rtm_scope = r->scope;
		rtm->rtm_type = r->type ? r->type : RTN_UNICAST;
		rtm->rtm_flags = r->nh_id ? 0 : r->flags;
	}
	put_ip(nlh, RTA_DST, r->family, &r->dst6);
	if (r->priority)
		mnl_attr_put_u32(nlh, RTA_PRIORITY, r->priority);
	if (op == NL_OP_DELETE)
		return;
	if (r->nh_id) {
		mnl_attr_put_u32(nlh, RTA_NH_ID, r->nh_id);
		return;
	}
	if (r->oif)
		mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)r->oif);
	if (r->has_gw)
		put_ip(nlh, RTA_GATEWAY, r->family, &r->gw6);
}

int nl_batch_route(struct nl_batch *b, enum nl_op op, const struct nl_route *r, void *cookie)
{
	struct nlmsghdr *nlh = batch_begin(b, op == NL_OP_DELETE ? RTM_DELROUTE : RTM_NEWROUTE,
	                                   new_flags(op), cookie);

	if (!nlh)
		return -errno;
	build_route(nlh, op, r);
	return 0;
}

int nl_batch_neigh(struct nl_batch *b, enum nl_op op, const struct nl_neigh *n, void *cookie)
{
	struct nlmsghdr *nlh = batch_begin(b, op == NL_OP_DELETE ? RTM_DELNEIGH : RTM_NEWNEIGH,
	                                   new_flags(op), cookie);
	struct ndmsg *ndm;
	bool fdb = n->family == AF_BRIDGE;

	if (!nlh)
		return -errno;
	ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));
	ndm->ndm_family = n->family;
	ndm->ndm_ifindex = n->ifindex;
	ndm->ndm_state = n->state ? n->state : NUD_PERMANENT;
	ndm->ndm_flags = n->flags;
	if (n->has_dst && (!fdb || op != NL_OP_DELETE))
		put_ip(nlh, NDA_DST, fdb ? n->dst_family : n->family, &n->dst6);
	if (n->has_lladdr && (fdb || op != NL_OP_DELETE))
		mnl_attr_put(nlh, NDA_LLADDR, 6, n->lladdr);
	return 0;
}

int nl_batch_nexthop(struct nl_batch *b, enum nl_op op, const struct nl_nexthop *nh, void *cookie)
{
	struct nlmsghdr *nlh = batch_begin(b, op == NL_OP_DELETE ? RTM_DELNEXTHOP : RTM_NEWNEXTHOP,
	                                   new_flags(op), cookie);
	struct nhmsg *nhm;

	if (!nlh)
		return -errno;
	nhm = mnl_nlmsg_put_extra_header(nlh, sizeof(*nhm));
	mnl_attr_put_u32(nlh, NHA_ID, nh->id);
	if (op == NL_OP_DELETE)
		return 0;
	nhm->nh_family = fam(nh->family);
	nhm->nh_flags = nh->flags;
	mnl_attr_put_u32(nlh, NHA_OIF, (uint32_t)nh->oif);
	if (nh->has_gw)
		put_ip(nlh, NHA_GATEWAY, nh->family, &nh->gw6);
	return 0;
}

int nl_batch_getroute_af(struct nl_batch *b, uint8_t family, const void *dst, void *cookie)
{
	struct nlmsghdr *nlh = batch_begin(b, RTM_GETROUTE, 0, cookie);
	struct rtmsg *rtm;

	if (!nlh)
		return -errno;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = fam(family);
	rtm->rtm_dst_len = is6(family) ? 128 : 32;
	put_ip(nlh, RTA_DST, family, dst);
	return 0;
}

int nl_batch_getroute(struct nl_batch *b, struct in_addr dst, void *cookie)
{
	return nl_batch_getroute_af(b, AF_INET, &dst, cookie);
}

/* ---- Synchronous requests ---- */

struct link_ctx {
	struct nl_link *link;
	bool found;
};

static int link_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct link_ctx *lc = ctx;

	if (nlh->nlmsg_type != RTM_NEWLINK || nl_parse_link(nlh, lc->link) < 0)
		return 0;
	lc->found = true;
	return 0;
}

int nl_link_get(struct nl_sock *sk, const char *name, int ifindex, struct nl_link *ret)
{
	union msgbuf u;
	struct nlmsghdr *nlh = msg_start(&u, RTM_GETLINK, 0);
	struct ifinfomsg *ifi;
	struct nl_link link;
	struct link_ctx lc = { .link = &link };
	int r;

	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	if (ifindex > 0) {
		ifi->ifi_index = ifindex;
	} else {
		if (!name || strlen(name) >= IF_NAMESIZE)
			return -EINVAL;
		mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	}
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	r = nl_request(sk, nlh, link_cb, &lc);
	if (r < 0)
		return r;
	if (!lc.found)
		return -ENODEV;
	*ret = link;
	return 0;
}

int nl_link_vxlan_create(struct nl_sock *sk, const char *name, const struct nl_vxlan *v,
                         const uint8_t mac[6], int mtu)
{
	union msgbuf u;
	struct nlmsghdr *nlh = msg_start(&u, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	struct ifinfomsg *ifi;
	struct nlattr *linkinfo, *data;

	if (!name || strlen(name) >= IF_NAMESIZE)
		return -EINVAL;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	if (mac)
		mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	if (mtu > 0)
		mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
	linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "vxlan");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	mnl_attr_put_u32(nlh, IFLA_VXLAN_ID, v->vni);
	if (is6(v->family))
		put_ip(nlh, IFLA_VXLAN_LOCAL6, AF_INET6, &v->local6);
	else if (v->local.s_addr)
		put_in_addr(nlh, IFLA_VXLAN_LOCAL, v->local);
	if (v->link > 0)
		mnl_attr_put_u32(nlh, IFLA_VXLAN_LINK, (uint32_t)v->link);
	mnl_attr_put_u16(nlh, IFLA_VXLAN_PORT, htons(v->port));
	mnl_attr_put_u8(nlh, IFLA_VXLAN_LEARNING, v->learning ? 1 : 0);
	if (v->gbp)
		mnl_attr_put(nlh, IFLA_VXLAN_GBP, 0, NULL);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, linkinfo);
	return nl_request(sk, nlh, NULL, NULL);
}

int nl_link_del(struct nl_sock *sk, int ifindex)
{
	union msgbuf u;
	struct nlmsghdr *nlh = msg_start(&u, RTM_DELLINK, 0);
	struct ifinfomsg *ifi;

	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_index = ifindex;
	return nl_request(sk, nlh, NULL, NULL);
}

int nl_link_set_up(struct nl_sock *sk, int ifindex, int mtu)
{
	union msgbuf u;
	struct nlmsghdr *nlh = msg_start(&u, RTM_NEWLINK, 0);
	struct ifinfomsg *ifi;

	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_index = ifindex;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	if (mtu > 0)
		mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
	return nl_request(sk, nlh, NULL, NULL);
}

struct addr_ctx {
	uint8_t family;
	int ifindex;
	struct nl_addr *out;
	size_t max, n;
};

static int addr_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct addr_ctx *ac = ctx;
	struct nl_addr a;

	if (nlh->nlmsg_type != RTM_NEWADDR || nl_parse_addr(nlh, &a) < 0)
		return 0;
	if ((ac->ifindex && a.ifindex != ac->ifindex) || a.family != ac->family)
		return 0;
	if (ac->n < ac->max)
		ac->out[ac->n] = a;
	ac->n++;
	return 0;
}

int nl_addr_list_af(struct nl_sock *sk, uint8_t family, int ifindex, struct nl_addr *ret,
                    size_t max)
{
	struct addr_ctx ac = { .family = fam(family), .ifindex = ifindex, .out = ret, .max = max };
	int r = nl_dump(sk, RTM_GETADDR, ac.family, addr_cb, &ac);

	if (r < 0)
		return r;
	return (int)(ac.n < max ? ac.n : max);
}

int nl_addr_list(struct nl_sock *sk, int ifindex, struct nl_addr *ret, size_t max)
{
	return ifindex ? nl_addr_list_af(sk, AF_INET, ifindex, ret, max) : 0;
}

int nl_addr_set(struct nl_sock *sk, enum nl_op op, const struct nl_addr *a)
{
	union msgbuf u;
	struct nlmsghdr *nlh =
		msg_start(&u, op == NL_OP_DELETE ? RTM_DELADDR : RTM_NEWADDR, new_flags(op));
	struct ifaddrmsg *ifa;

	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = fam(a->family);
	ifa->ifa_prefixlen = a->prefixlen;
	ifa->ifa_index = (uint32_t)a->ifindex;
	if (is6(a->family) && op != NL_OP_DELETE)
		mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD); /* a /128 on a tunnel: no DAD */
	put_ip(nlh, IFA_LOCAL, a->family, &a->local6);
	put_ip(nlh, IFA_ADDRESS, a->family, &a->local6);
	return nl_request(sk, nlh, NULL, NULL);
}

bool nl_nexthops_supported(struct nl_sock *sk)
{
	return nl_dump(sk, RTM_GETNEXTHOP, AF_UNSPEC, NULL, NULL) == 0;
}
