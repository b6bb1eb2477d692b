/* The udp backend: wire -> TUN (recvmmsg, checks, coalescing). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <linux/virtio_net.h>

#include "backends/udp_int.h"
#include "lib/log.h"

void udp_tun_write(struct udp_worker *w, const struct virtio_net_hdr *vh, struct iovec *iov,
                   int iovcnt)
{
	/* iov[0] is reserved for the virtio-net header. */
	ssize_t r;

	if (w->be->opt.naive) {
		r = writev(w->tun_fd, iov + 1, iovcnt - 1);
	} else {
		iov[0].iov_base = (void *)(uintptr_t)vh;
		iov[0].iov_len = VNET_LEN;
		r = writev(w->tun_fd, iov, iovcnt);
	}
	if (r < 0)
		ctr_add(w, CTR_DROP_WIRE + UDP_DROP_TX_ERROR, 1);
}

static void write_inner(struct udp_worker *w, const uint8_t **pkts, size_t *lens, size_t n)
{
	static const struct virtio_net_hdr zero;
	struct udp_gro_run run;
	size_t i = 0, k;

	while (i < n) {
		struct iovec *iov = w->rx_wiov;

		if (w->be->opt.gro && !w->be->opt.naive && n - i > 1) {
			udp_gro_run(pkts + i, lens + i, n - i, &run);
		} else {
			run.count = 1;
		}
		if (run.count == 1) {
			iov[1].iov_base = (void *)(uintptr_t)pkts[i];
			iov[1].iov_len = lens[i];
			udp_tun_write(w, &zero, iov, 2);
			ctr_add(w, CTR_RX_BYTES, lens[i]);
			i++;
		} else {
			size_t hl = run.hdr_len;

			iov[1].iov_base = run.hdr;
			iov[1].iov_len = hl;
			for (k = 0; k < run.count; k++) {
				iov[2 + k].iov_base = (void *)(uintptr_t)(pkts[i + k] + hl);
				iov[2 + k].iov_len = lens[i + k] - hl;
				ctr_add(w, CTR_RX_BYTES, lens[i + k]);
			}
			udp_tun_write(w, &run.vh, iov, (int)(2 + run.count));
			i += run.count;
		}
		ctr_add(w, CTR_RX_PACKETS, run.count);
		ctr_add(w, CTR_RX_WRITES, 1);
	}
}

static void flush_rx(struct udp_worker *w)
{
	write_inner(w, w->rx_pkts, w->rx_lens, w->rx_n);
	w->rx_n = 0;
}

/*
 * A datagram of @len bytes (@gso: size of each coalesced datagram) from @src_be: its
 * inner packets are checked and queued; flush_rx() writes them (runs of TCP segments
 * may span datagrams of one batch).
 */
static void handle_datagram(struct udp_worker *w, uint8_t *buf, size_t len, size_t gso,
                            uint32_t src_be)
{
	struct backend *be = w->be;
	const struct udp_table *t;
	size_t off, n;

	if (gso == 0 || gso > len)
		gso = len;
	if (len == 0) {
		ctr_add(w, CTR_DROP_WIRE + UDP_DROP_SHORT, 1);
		pdrop_note(w, src_be, UDP_DROP_SHORT);
		return;
	}
	/* Only packets of >= 20 bytes are queued: room for len / 20 + 1 more is enough. */
	if (w->rx_n + len / 20 + 1 > RX_PKTS_MAX)
		flush_rx(w);
	n = w->rx_n;
	t = udp_rcu_online(&be->rcu, w->idx);
	for (off = 0; off < len; off += gso) {
		size_t clen = len - off < gso ? len - off : gso, tot = 0;
		enum udp_verdict v = udp_classify_from_wire(buf + off, clen, t, src_be, &tot);

		if (v != UDP_FORWARD) {
			ctr_add(w, CTR_DROP_WIRE + v, 1);
			pdrop_note(w, src_be, v);
			continue;
		}
		if (!udp_hop_decrement(buf + off)) {
			ctr_add(w, CTR_DROP_WIRE + UDP_DROP_TTL, 1);
			continue;
		}
		w->rx_pkts[n] = buf + off;
		w->rx_lens[n] = tot;
		n++;
	}
	udp_rcu_offline(&be->rcu, w->idx);
	w->rx_n = n;
}

void udp_wire_to_tun(struct udp_worker *w)
{
	int iter, i;
	unsigned nslots = w->be->opt.naive ? 1 : RX_SLOTS;

	for (iter = 0; iter < 16; iter++) {
		int n;

		for (i = 0; i < (int)nslots; i++) {
			struct msghdr *mh = &w->rx_msgs[i].msg_hdr;

			mh->msg_name = &w->rx_addr[i];
			mh->msg_namelen = sizeof(w->rx_addr[i]);
			mh->msg_iov = &w->rx_iov[i];
			mh->msg_iovlen = 1;
			mh->msg_control = w->be->opt.naive ? NULL : w->rx_ctl[i].buf;
			mh->msg_controllen = w->be->opt.naive ? 0 : sizeof(w->rx_ctl[i].buf);
			mh->msg_flags = 0;
			w->rx_iov[i].iov_base = w->rx_buf[i];
			w->rx_iov[i].iov_len = PKT_BUF;
		}
		if (w->be->opt.naive) {
			ssize_t r = recvmsg(w->sock, &w->rx_msgs[0].msg_hdr, 0);

			n = r < 0 ? -1 : 1;
			if (r >= 0)
				w->rx_msgs[0].msg_len = (unsigned)r;
		} else {
			n = recvmmsg(w->sock, w->rx_msgs, nslots, 0, NULL);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (i = 0; i < n; i++) {
			struct msghdr *mh = &w->rx_msgs[i].msg_hdr;
			struct cmsghdr *cm;
			size_t gso = 0;

			if (mh->msg_namelen < sizeof(struct sockaddr_in) ||
			    w->rx_addr[i].sin_family != AF_INET || (mh->msg_flags & MSG_TRUNC)) {
				ctr_add(w, CTR_DROP_WIRE + UDP_DROP_BAD_TOTLEN, 1);
				continue;
			}
			for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
				if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
					int g;

					memcpy(&g, CMSG_DATA(cm), sizeof(g));
					if (g > 0)
						gso = (size_t)g;
				}
			}
			handle_datagram(w, w->rx_buf[i], w->rx_msgs[i].msg_len, gso,
			                w->rx_addr[i].sin_addr.s_addr);
		}
		flush_rx(w);
		if (w->be->opt.naive || n < (int)nslots)
			return;
	}
}
