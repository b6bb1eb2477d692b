/*
 * rtnetlink helpers on libmnl: a socket with extended ACKs, batches (many
 * messages per sendmsg, one sequence number and ACK each, errors mapped back to
 * a caller cookie), dumps, single requests, an event socket, and one builder and
 * one parser per object kind (link, address, route, neighbour/fdb, nexthop).
 * IPv4 and IPv6: each address field is a union of struct in_addr (the IPv4
 * name, used when family is 0 or AF_INET) and struct in6_addr (the name with a
 * 6 suffix), so IPv4 callers stay as they are and a 16-byte copy into the 6
 * member carries either family (IPv4 in the first 4 bytes, the rest zero).
 * Nothing here logs above debug; errors carry the kernel's text.
 */
#ifndef TWILL_LIB_NL_H
#define TWILL_LIB_NL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/netlink.h>

#define NL_ERRMSG_MAX 256

struct nl_sock;
struct nl_batch;

/* Called for each message of a dump or reply; return 0 to go on, <0 to stop with that error. */
typedef int (*nl_msg_cb)(const struct nlmsghdr *nlh, void *ctx);

/* Counters over every socket of the process (tests and benchmarks read them). */
struct nl_stats {
	uint64_t sendmsg_calls; /* sendmsg() calls, all sockets */
	uint64_t messages;      /* netlink messages sent */
	uint64_t errors;        /* ACKs carrying an error */
};
void nl_stats_get(struct nl_stats *ret);
void nl_stats_reset(void);

/*
 * A NETLINK_ROUTE socket with NETLINK_EXT_ACK and NETLINK_CAP_ACK, a large
 * receive buffer and a receive timeout (a lost ACK never hangs the caller).
 * @groups: RTNLGRP_* numbers to join (event socket, non-blocking), or none.
 * NULL with errno on failure.
 */
struct nl_sock *nl_sock_open(const unsigned *groups, size_t ngroups);
/* Closes and frees; NULL-safe. */
void nl_sock_close(struct nl_sock *sk);
int nl_sock_fd(const struct nl_sock *sk);
/* The kernel's extended-ACK text of the last failed request/dump on @sk ("" when none). */
const char *nl_sock_errmsg(const struct nl_sock *sk);

/*
 * Send one request (NLM_F_REQUEST|NLM_F_ACK added, sequence number set), call
 * @cb for each reply message, and wait for its ACK. 0, or the kernel's -errno
 * (text in nl_sock_errmsg()).
 */
int nl_request(struct nl_sock *sk, struct nlmsghdr *nlh, nl_msg_cb cb, void *ctx);
/*
 * Dump @type (RTM_GETLINK, RTM_GETROUTE, ...) for @family and call @cb for each
 * message. 0 or -errno.
 */
int nl_dump(struct nl_sock *sk, uint16_t type, uint8_t family, nl_msg_cb cb, void *ctx);
/*
 * Read every pending message of an event socket (non-blocking) and call @cb for
 * each. 0 when drained; -ENOBUFS when the kernel dropped events (the caller must
 * resync from a dump; later reads go on); other -errno on failure.
 */
int nl_recv_events(struct nl_sock *sk, nl_msg_cb cb, void *ctx);

/* ---- Batches ---- */

/* An error ACK: @cookie as given for the message, @err = -errno, @extack text or "". */
typedef void (*nl_batch_err_cb)(void *ctx, void *cookie, int err, const char *extack);
/* A non-ACK reply (e.g. to RTM_GETROUTE) for the message sent with @cookie. */
typedef void (*nl_batch_reply_cb)(void *ctx, void *cookie, const struct nlmsghdr *nlh);

/*
 * At most this many messages of a batch are queued or awaiting their ACK at once: queueing
 * one more first sends them and drains their ACKs (it bounds the ACKs queued in the receive
 * buffer per send). A cookie is never passed to a callback again once its message's ACK was
 * drained, so callers may reuse cookies in a ring of NL_BATCH_MSGS + 1 slots.
 */
#define NL_BATCH_MSGS 1024

/*
 * A batch on @sk: messages accumulate in a buffer (NL_BATCH_BYTES) and are sent
 * many per sendmsg when it fills or on nl_batch_commit(); ACKs are drained per
 * sequence number and errors reported through @err_cb (may be NULL), replies
 * through @reply_cb (may be NULL). NULL with errno on failure.
 */
struct nl_batch *nl_batch_new(struct nl_sock *sk, nl_batch_err_cb err_cb,
                              nl_batch_reply_cb reply_cb, void *ctx);
/*
 * Send what is queued and drain every ACK. Returns the number of messages the
 * kernel refused since the last commit (>= 0), or -errno when the socket failed
 * (-ENOBUFS: ACKs were lost; the caller should resync). The batch is reusable.
 */
int nl_batch_commit(struct nl_batch *b);
/* Number of messages queued and not yet sent. */
size_t nl_batch_pending(const struct nl_batch *b);
/* Frees without sending; NULL-safe. */
void nl_batch_free(struct nl_batch *b);

enum nl_op {
	NL_OP_REPLACE, /* NLM_F_CREATE|NLM_F_REPLACE: idempotent add */
	NL_OP_DELETE,
};

struct nl_route {
	uint8_t family; /* AF_INET (also 0 on build) or AF_INET6 */
	union {
		struct in_addr dst;
		struct in6_addr dst6;
	};
	uint8_t dst_len;
	uint8_t table;    /* RT_TABLE_MAIN when 0 on build */
	uint8_t protocol; /* RTPROT_BOOT when 0 on build */
	uint8_t type;     /* RTN_UNICAST when 0 on build */
	uint8_t scope;
	uint32_t flags; /* RTNH_F_ONLINK */
	int oif;        /* 0: none */
	bool has_gw;
	union {
		struct in_addr gw;
		struct in6_addr gw6;
	};
	uint32_t nh_id; /* RTA_NH_ID; 0: none (then oif/gw are used) */
	uint32_t priority;
};

struct nl_neigh {
	uint8_t family; /* AF_INET or AF_INET6: neighbour; AF_BRIDGE: fdb entry */
	int ifindex;
	uint16_t state; /* NUD_* */
	uint8_t flags;  /* NTF_SELF for fdb */
	bool has_dst;
	uint8_t dst_family; /* family of dst: AF_INET (also 0 on build) or AF_INET6 */
	union {
		struct in_addr dst; /* neighbour address, or fdb remote (NDA_DST) */
		struct in6_addr dst6;
	};
	bool has_lladdr;
	uint8_t lladdr[6];
};

struct nl_nexthop {
	uint32_t id;
	uint8_t family; /* AF_INET (also 0 on build) or AF_INET6 */
	int oif;
	bool has_gw;
	union {
		struct in_addr gw;
		struct in6_addr gw6;
	};
	uint32_t flags; /* RTNH_F_ONLINK */
	bool blackhole;
	bool group;
};

/* Queue one message; 0, or -errno when the batch could not be sent to make room. */
int nl_batch_route(struct nl_batch *b, enum nl_op op, const struct nl_route *r, void *cookie);
/* Neighbour (AF_INET) or fdb entry (AF_BRIDGE; deleted by lladdr only). */
int nl_batch_neigh(struct nl_batch *b, enum nl_op op, const struct nl_neigh *n, void *cookie);
/* Nexthop object; delete uses the id only. */
int nl_batch_nexthop(struct nl_batch *b, enum nl_op op, const struct nl_nexthop *nh, void *cookie);
/* Route lookup (ip route get @dst); the answer comes through the batch's reply callback. */
int nl_batch_getroute(struct nl_batch *b, struct in_addr dst, void *cookie);
/* The same for @family (AF_INET or AF_INET6) and @dst (4 or 16 bytes). */
int nl_batch_getroute_af(struct nl_batch *b, uint8_t family, const void *dst, void *cookie);

/* ---- Parsers: 0, -EAFNOSUPPORT (another family: skip it) or -EINVAL ---- */
int nl_parse_route(const struct nlmsghdr *nlh, struct nl_route *ret);
int nl_parse_neigh(const struct nlmsghdr *nlh, struct nl_neigh *ret);
int nl_parse_nexthop(const struct nlmsghdr *nlh, struct nl_nexthop *ret);

struct nl_addr {
	int ifindex;
	uint8_t family; /* AF_INET (also 0 on build) or AF_INET6 */
	union {
		struct in_addr local;
		struct in6_addr local6;
	};
	uint8_t prefixlen;
	uint8_t scope;  /* RT_SCOPE_* */
	uint32_t flags; /* IFA_F_* (IFA_FLAGS when present) */
};
int nl_parse_addr(const struct nlmsghdr *nlh, struct nl_addr *ret);

struct nl_vxlan {
	uint32_t vni;
	uint8_t family; /* of local: AF_INET (also 0 on build) or AF_INET6 */
	union {
		struct in_addr local;
		struct in6_addr local6;
	};
	int link;      /* underlay ifindex */
	uint16_t port; /* host order */
	bool learning;
	bool gbp;
};

struct nl_link {
	int ifindex;
	unsigned flags; /* IFF_* */
	int mtu;
	char name[IF_NAMESIZE];
	bool has_mac;
	uint8_t mac[6];
	char kind[16]; /* IFLA_INFO_KIND, "" when none */
	bool is_vxlan;
	struct nl_vxlan vxlan;
};
int nl_parse_link(const struct nlmsghdr *nlh, struct nl_link *ret);

/* ---- Synchronous link and address requests (a handful per start-up) ---- */

/* The link named @name (when @ifindex is 0) or with @ifindex. 0, -ENODEV or -errno. */
int nl_link_get(struct nl_sock *sk, const char *name, int ifindex, struct nl_link *ret);
/*
 * Create vxlan link @name (NLM_F_CREATE|NLM_F_EXCL) with @mac and @mtu (0: kernel
 * default). 0, -EEXIST when the name is taken, or -errno.
 */
int nl_link_vxlan_create(struct nl_sock *sk, const char *name, const struct nl_vxlan *v,
                         const uint8_t mac[6], int mtu);
int nl_link_del(struct nl_sock *sk, int ifindex);
/* Set the MTU (when @mtu > 0) and bring the link up. 0 or -errno. */
int nl_link_set_up(struct nl_sock *sk, int ifindex, int mtu);
/* Every IPv4 address on @ifindex into @ret (caller's array of @max); the count or -errno. */
int nl_addr_list(struct nl_sock *sk, int ifindex, struct nl_addr *ret, size_t max);
/* The same for @family (AF_INET or AF_INET6); @ifindex 0 lists every interface. */
int nl_addr_list_af(struct nl_sock *sk, uint8_t family, int ifindex, struct nl_addr *ret,
                    size_t max);
/* Add (create|replace) or delete @a. 0 or -errno. */
int nl_addr_set(struct nl_sock *sk, enum nl_op op, const struct nl_addr *a);
/* Whether the kernel has nexthop objects (a nexthop dump succeeds). */
bool nl_nexthops_supported(struct nl_sock *sk);

#endif
