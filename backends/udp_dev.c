/* The udp backend's kernel objects: TUN queues, UDP sockets, flannel0's address and route. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>

#include "backends/udp_int.h"
#include "lib/errfmt.h"
#include "lib/log.h"
#include "lib/nl.h"

static int tun_open_queue(const char *name, bool mq, int *ret_fd)
{
	struct ifreq ifr;
	int fd, r;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	if (mq)
		ifr.ifr_flags |= IFF_MULTI_QUEUE | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (mq) {
		int sz = VNET_LEN;

		if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
			r = -errno;
			close(fd);
			return r;
		}
	}
	*ret_fd = fd;
	return 0;
}

static int link_ioctl(unsigned long req, struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;

	if (s < 0)
		return -errno;
	if (ioctl(s, req, ifr) < 0)
		r = -errno;
	close(s);
	return r;
}

static int tun_delete(const char *name)
{
	struct nl_sock *sk = nl_sock_open(NULL, 0);
	struct nl_link l;
	int r;

	if (!sk)
		return -errno;
	r = nl_link_get(sk, name, 0, &l);
	if (r == 0)
		r = nl_link_del(sk, l.ifindex);
	nl_sock_close(sk);
	return r;
}

void udp_close_fds(struct backend *be)
{
	size_t i;

	for (i = 0; i < UDP_MAX_WORKERS; i++) {
		if (be->workers[i].tun_fd >= 0)
			close(be->workers[i].tun_fd);
		if (be->workers[i].sock >= 0)
			close(be->workers[i].sock);
		be->workers[i].tun_fd = be->workers[i].sock = -1;
	}
}

int udp_open_tun(struct backend *be, char *err, size_t errlen)
{
	bool mq = !be->opt.naive;
	struct ifreq ifr;
	size_t i;
	int r, one = 1;

	r = tun_open_queue(UDP_DEVICE, mq, &be->workers[0].tun_fd);
	if (r == -EINVAL || r == -EBUSY) {
		/*
		 * A persistent flannel0 of the other kind (single/multi-queue) cannot be
		 * attached: delete it and create ours. EBUSY may also mean another
		 * process holds it; then the delete succeeds only for a detached device.
		 */
		log_info("udp %s: existing device cannot be attached (%s), recreating it",
		         UDP_DEVICE, strerror(-r));
		if (tun_delete(UDP_DEVICE) == 0)
			r = tun_open_queue(UDP_DEVICE, mq, &be->workers[0].tun_fd);
	}
	if (r < 0) {
		errfmt(err, errlen, "udp %s: cannot open the TUN device (/dev/net/tun): %s%s",
		       UDP_DEVICE, strerror(-r),
		       r == -EBUSY    ? ": another process holds it (a flanneld or twilld running?)"
		       : r == -ENOENT ? ": load the tun module"
		                      : "");
		return r;
	}
	if (ioctl(be->workers[0].tun_fd, TUNSETPERSIST, one) < 0) {
		r = -errno;
		errfmt(err, errlen, "udp %s: cannot make the TUN device persistent: %s", UDP_DEVICE,
		       strerror(-r));
		return r;
	}
	for (i = 1; i < be->nworkers; i++) {
		r = tun_open_queue(UDP_DEVICE, mq, &be->workers[i].tun_fd);
		if (r < 0) {
			errfmt(err, errlen, "udp %s: cannot open TUN queue %zu: %s", UDP_DEVICE, i,
			       strerror(-r));
			return r;
		}
	}
	if (mq) {
		unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;

		for (i = 0; i < be->nworkers; i++)
			if (ioctl(be->workers[i].tun_fd, TUNSETOFFLOAD, off) < 0)
				log_debug("udp %s: TUNSETOFFLOAD: %s (no offloads)", UDP_DEVICE,
				          strerror(errno));
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", UDP_DEVICE);
	ifr.ifr_qlen = UDP_TXQUEUELEN;
	r = link_ioctl(SIOCSIFTXQLEN, &ifr);
	if (r < 0)
		log_debug("udp %s: txqueuelen: %s", UDP_DEVICE, strerror(-r));
	be->ifindex = (int)if_nametoindex(UDP_DEVICE);
	if (be->ifindex == 0) {
		r = -errno;
		errfmt(err, errlen, "udp %s: the TUN device has no ifindex: %s", UDP_DEVICE,
		       strerror(-r));
		return r;
	}
	return 0;
}

/*
 * Spread received datagrams over the workers by the inner flow (a classic BPF
 * program run by SO_REUSEPORT on the UDP payload, i.e. the inner IP header):
 * flannel's wire format has one outer 4-tuple per pair of hosts, so the kernel's
 * own 4-tuple hash would hand everything from one peer to one worker. The hash
 * covers the inner addresses (last 32 bits for IPv6) and, for TCP/UDP that is not
 * a fragment, the ports, folded before the multiplication (Linux picks even local
 * ports for connect(), so the low bits of a port alone do not spread flows); other
 * versions fall back to the kernel's choice.
 * (The TUN's flow table then sends the reverse direction to the same worker.)
 */
static void steer_flows(struct backend *be)
{
	const uint32_t n = (uint32_t)be->nworkers, golden = 0x9e3779b1;
	struct sock_filter f[] = {
		/* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
		BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 4, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 25, 46),
		/* 4: IPv4 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 12),
		BPF_STMT(BPF_MISC | BPF_TAX, 0),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 16),
		BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
		BPF_STMT(BPF_ST, 0),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 6),
		BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x3fff), /* fragment: addresses only */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 9),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_TCP, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 6),
		/* 15 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),
		BPF_STMT(BPF_LD | BPF_W | BPF_IND, 0),
		BPF_STMT(BPF_MISC | BPF_TAX, 0),
		BPF_STMT(BPF_LD | BPF_MEM, 0),
		BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
		BPF_STMT(BPF_ST, 0),
		/* 21: h ^= h >> 16; h *= golden; (h >> 24) % n */
		BPF_STMT(BPF_LD | BPF_MEM, 0),
		BPF_STMT(BPF_MISC | BPF_TAX, 0),
		BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
		BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
		BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, golden),
		BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 24),
		BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
		BPF_STMT(BPF_RET | BPF_A, 0),
		/* 29: IPv6 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 20),
		BPF_STMT(BPF_MISC | BPF_TAX, 0),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 36),
		BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
		BPF_STMT(BPF_ST, 0),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 6),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_TCP, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 5),
		/* 37 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 40),
		BPF_STMT(BPF_MISC | BPF_TAX, 0),
		BPF_STMT(BPF_LD | BPF_MEM, 0),
		BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
		BPF_STMT(BPF_ST, 0),
		/* 42 */ BPF_STMT(BPF_LD | BPF_MEM, 0),
		BPF_STMT(BPF_MISC | BPF_TAX, 0),
		BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
		BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
		BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, golden),
		BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 24),
		BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
		BPF_STMT(BPF_RET | BPF_A, 0),
		/* 50: not IP: the kernel's hash */ BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
	};
	struct sock_fprog prog;

	memset(&prog, 0, sizeof(prog)); /* the padding after len goes to the kernel too */
	prog.len = sizeof(f) / sizeof(f[0]);
	prog.filter = f;

	if (setsockopt(be->workers[0].sock, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog,
	               sizeof(prog)) < 0)
		log_debug("udp: SO_ATTACH_REUSEPORT_CBPF: %s (one worker per peer)",
		          strerror(errno));
}

int udp_open_sockets(struct backend *be, char *err, size_t errlen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(be->opt.port) };
	char abuf[IPAM_ADDR_STRLEN];
	size_t i;
	int r;

	if (be->ext.iface_addr.family == AF_INET)
		memcpy(&sa.sin_addr, be->ext.iface_addr.bytes, 4);
	for (i = 0; i < be->nworkers; i++) {
		int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1, sz = SOCK_BUF;

		if (s < 0) {
			r = -errno;
			errfmt(err, errlen, "udp: cannot open a UDP socket: %s", strerror(-r));
			return r;
		}
		be->workers[i].sock = s;
		if (!be->opt.naive &&
		    setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
			r = -errno;
			errfmt(err, errlen, "udp: SO_REUSEPORT: %s", strerror(-r));
			return r;
		}
		if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
			setsockopt(s, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
			setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		if (!be->opt.naive && setsockopt(s, SOL_UDP, UDP_GRO, &one, sizeof(one)) < 0)
			log_debug("udp: UDP_GRO: %s", strerror(errno));
		if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			r = -errno;
			errfmt(err, errlen, "udp: cannot bind %s:%u: %s%s",
			       inet_ntop(AF_INET, &sa.sin_addr, abuf, sizeof(abuf)), be->opt.port,
			       strerror(-r),
			       r == -EADDRINUSE ? ": another program uses the port; stop it or set "
			                          "another Backend.Port"
			                        : "");
			return r;
		}
	}
	if (be->nworkers > 1)
		steer_flows(be);
	return 0;
}

/* ---- IPv6 on flannel0 (its own messages: lib/nl speaks IPv4 only) ---- */

struct addr6_scan {
	int ifindex;
	const uint8_t *keep; /* the own IPv6 subnet address, /128 */
	size_t n;
	uint8_t stale[8][17]; /* address + prefix length */
};

static int addr6_attr(const struct nlattr *a, void *data)
{
	const void **ret = data;

	if (mnl_attr_get_type(a) == IFA_ADDRESS && mnl_attr_get_payload_len(a) == 16)
		*ret = mnl_attr_get_payload(a);
	return MNL_CB_OK;
}

static int addr6_collect(const struct nlmsghdr *nlh, void *ctx)
{
	struct addr6_scan *sc = ctx;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const void *addr = NULL;

	if (nlh->nlmsg_type != RTM_NEWADDR || ifa->ifa_family != AF_INET6 ||
	    (int)ifa->ifa_index != sc->ifindex || ifa->ifa_scope != RT_SCOPE_UNIVERSE)
		return 0;
	if (mnl_attr_parse(nlh, sizeof(*ifa), addr6_attr, &addr) < 0 || !addr)
		return 0;
	if ((ifa->ifa_prefixlen == 128 && memcmp(addr, sc->keep, 16) == 0) ||
	    sc->n == sizeof(sc->stale) / sizeof(sc->stale[0]))
		return 0;
	memcpy(sc->stale[sc->n], addr, 16);
	sc->stale[sc->n++][16] = ifa->ifa_prefixlen;
	return 0;
}

static int addr6_req(struct nl_sock *sk, uint16_t type, int ifindex, const uint8_t *a, uint8_t plen)
{
	char buf[512]; /* MNL_SOCKET_BUFFER_SIZE is a runtime value (STYLE.md) */
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_REPLACE : 0;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET6;
	ifa->ifa_prefixlen = plen;
	ifa->ifa_flags = IFA_F_NODAD; /* usable at once; nobody else is on a TUN */
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)ifindex;
	mnl_attr_put(nlh, IFA_LOCAL, 16, a);
	mnl_attr_put(nlh, IFA_ADDRESS, 16, a);
	return nl_request(sk, nlh, NULL, NULL);
}

static int route6_replace(struct nl_sock *sk, int ifindex, const struct ipam_prefix *dst)
{
	char buf[512]; /* MNL_SOCKET_BUFFER_SIZE is a runtime value (STYLE.md) */
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;

	nlh->nlmsg_type = RTM_NEWROUTE;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_INET6;
	rtm->rtm_dst_len = dst->len;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = RTPROT_BOOT;
	rtm->rtm_scope = RT_SCOPE_UNIVERSE;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put(nlh, RTA_DST, 16, dst->addr.bytes);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
	return nl_request(sk, nlh, NULL, NULL);
}

/* The own IPv6 subnet address (/128) on flannel0, stale ones removed, the IPv6 Network routed. */
static int configure_ipv6(struct backend *be, struct nl_sock *sk, char *err, size_t errlen)
{
	struct addr6_scan sc = { .ifindex = be->ifindex, .keep = be->own6.addr.bytes };
	size_t i;
	int r;

	if (nl_dump(sk, RTM_GETADDR, AF_INET6, addr6_collect, &sc) == 0)
		for (i = 0; i < sc.n; i++)
			addr6_req(sk, RTM_DELADDR, be->ifindex, sc.stale[i], sc.stale[i][16]);
	r = addr6_req(sk, RTM_NEWADDR, be->ifindex, be->own6.addr.bytes, 128);
	if (r < 0) {
		errfmt(err, errlen, "udp %s: cannot add the IPv6 address: %s %s", UDP_DEVICE,
		       strerror(-r), nl_sock_errmsg(sk));
		return r;
	}
	r = route6_replace(sk, be->ifindex, &be->network6);
	if (r < 0)
		errfmt(err, errlen, "udp %s: cannot add the route to the IPv6 Network: %s %s",
		       UDP_DEVICE, strerror(-r), nl_sock_errmsg(sk));
	return r;
}

int udp_configure_device(struct backend *be, char *err, size_t errlen)
{
	struct nl_sock *sk = nl_sock_open(NULL, 0);
	struct nl_batch *b = NULL;
	struct nl_addr addrs[16], own = { .ifindex = be->ifindex, .prefixlen = 32 };
	struct nl_route rt = { 0 };
	char abuf[INET_ADDRSTRLEN];
	int r, n, i;

	if (!sk) {
		r = -errno;
		errfmt(err, errlen, "udp %s: netlink socket: %s", UDP_DEVICE, strerror(-r));
		return r;
	}
	r = nl_link_set_up(sk, be->ifindex, be->mtu);
	if (r < 0) {
		errfmt(err, errlen, "udp %s: cannot set MTU %d and bring it up: %s %s", UDP_DEVICE,
		       be->mtu, strerror(-r), nl_sock_errmsg(sk));
		goto out;
	}
	memcpy(&own.local, be->own.addr.bytes, 4);
	n = nl_addr_list(sk, be->ifindex, addrs, 16);
	for (i = 0; i < n; i++)
		if (addrs[i].local.s_addr != own.local.s_addr || addrs[i].prefixlen != 32)
			nl_addr_set(sk, NL_OP_DELETE, &addrs[i]);
	r = nl_addr_set(sk, NL_OP_REPLACE, &own);
	if (r < 0) {
		errfmt(err, errlen, "udp %s: cannot add the address %s/32: %s %s", UDP_DEVICE,
		       inet_ntop(AF_INET, &own.local, abuf, sizeof(abuf)), strerror(-r),
		       nl_sock_errmsg(sk));
		goto out;
	}
	b = nl_batch_new(sk, NULL, NULL, NULL);
	if (!b) {
		r = -errno;
		errfmt(err, errlen, "udp %s: %s", UDP_DEVICE, strerror(-r));
		goto out;
	}
	memcpy(&rt.dst, be->network.addr.bytes, 4);
	rt.dst_len = be->network.len;
	rt.oif = be->ifindex;
	r = nl_batch_route(b, NL_OP_REPLACE, &rt, NULL);
	if (r == 0)
		r = nl_batch_commit(b);
	if (r != 0) {
		r = r < 0 ? r : -EIO;
		errfmt(err, errlen, "udp %s: cannot add the route to the Network: %s", UDP_DEVICE,
		       strerror(-r));
	}
	if (r == 0 && be->has_own6) {
		r = configure_ipv6(be, sk, err, errlen);
		be->v6_up = r == 0;
	}
out:
	nl_batch_free(b);
	nl_sock_close(sk);
	return r;
}
