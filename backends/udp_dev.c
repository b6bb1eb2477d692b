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
#include <linux/if_tun.h>

#include "backends/udp_int.h"
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

int udp_open_tun(struct backend *be)
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
		log_error("udp %s: cannot open the TUN device: %s", UDP_DEVICE, strerror(-r));
		return r;
	}
	if (ioctl(be->workers[0].tun_fd, TUNSETPERSIST, one) < 0) {
		r = -errno;
		log_error("udp %s: TUNSETPERSIST: %s", UDP_DEVICE, strerror(errno));
		return r;
	}
	for (i = 1; i < be->nworkers; i++) {
		r = tun_open_queue(UDP_DEVICE, mq, &be->workers[i].tun_fd);
		if (r < 0) {
			log_error("udp %s: cannot open queue %zu: %s", UDP_DEVICE, i, strerror(-r));
			return r;
		}
	}
	if (mq) {
		unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN;

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
		log_error("udp %s: no ifindex: %s", UDP_DEVICE, strerror(errno));
		return r;
	}
	return 0;
}

int udp_open_sockets(struct backend *be)
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

		if (s < 0)
			return -errno;
		be->workers[i].sock = s;
		if (!be->opt.naive &&
		    setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
			return -errno;
		if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
			setsockopt(s, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
			setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		if (!be->opt.naive && setsockopt(s, SOL_UDP, UDP_GRO, &one, sizeof(one)) < 0)
			log_debug("udp: UDP_GRO: %s", strerror(errno));
		if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			r = -errno;
			log_error("udp: cannot bind %s:%u: %s",
			          inet_ntop(AF_INET, &sa.sin_addr, abuf, sizeof(abuf)),
			          be->opt.port, strerror(errno));
			return r;
		}
	}
	return 0;
}

int udp_configure_device(struct backend *be)
{
	struct nl_sock *sk = nl_sock_open(NULL, 0);
	struct nl_batch *b = NULL;
	struct nl_addr addrs[16], own = { .ifindex = be->ifindex, .prefixlen = 32 };
	struct nl_route rt = { 0 };
	int r, n, i;

	if (!sk)
		return -errno;
	r = nl_link_set_up(sk, be->ifindex, be->mtu);
	if (r < 0) {
		log_error("udp %s: cannot set MTU %d and bring it up: %s %s", UDP_DEVICE, be->mtu,
		          strerror(-r), nl_sock_errmsg(sk));
		goto out;
	}
	memcpy(&own.local, be->own.addr.bytes, 4);
	n = nl_addr_list(sk, be->ifindex, addrs, 16);
	for (i = 0; i < n; i++)
		if (addrs[i].local.s_addr != own.local.s_addr || addrs[i].prefixlen != 32)
			nl_addr_set(sk, NL_OP_DELETE, &addrs[i]);
	r = nl_addr_set(sk, NL_OP_REPLACE, &own);
	if (r < 0) {
		log_error("udp %s: cannot add address: %s %s", UDP_DEVICE, strerror(-r),
		          nl_sock_errmsg(sk));
		goto out;
	}
	b = nl_batch_new(sk, NULL, NULL, NULL);
	if (!b) {
		r = -errno;
		goto out;
	}
	memcpy(&rt.dst, be->network.addr.bytes, 4);
	rt.dst_len = be->network.len;
	rt.oif = be->ifindex;
	r = nl_batch_route(b, NL_OP_REPLACE, &rt, NULL);
	if (r == 0)
		r = nl_batch_commit(b);
	if (r != 0) {
		log_error("udp %s: cannot add the route to the Network", UDP_DEVICE);
		r = r < 0 ? r : -EIO;
	}
out:
	nl_batch_free(b);
	nl_sock_close(sk);
	return r;
}
