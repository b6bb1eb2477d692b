/* The udp backend: TUN -> wire (segmentation, batching, sendmmsg). */
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

static void send_icmp(struct udp_worker *w, const uint8_t *pkt, size_t len)
{
	static const struct virtio_net_hdr zero;
	uint8_t out[UDP_ICMP6_MAX]; /* >= UDP_ICMP_MAX */
	struct iovec iov[2];
	uint64_t now = udp_mono_ms();
	size_t n;

	if (now > w->icmp_last_ms) {
		w->icmp_tokens += (now - w->icmp_last_ms) / ICMP_EVERY_MS;
		if (w->icmp_tokens > ICMP_BURST)
			w->icmp_tokens = ICMP_BURST;
		w->icmp_last_ms = now - (now - w->icmp_last_ms) % ICMP_EVERY_MS;
	}
	n = pkt[0] >> 4 == 6 ? udp_icmp6_unreach(pkt, len, out)
	                     : udp_icmp_net_unreach(pkt, len, out);
	if (!n)
		return;
	if (w->icmp_tokens == 0) {
		ctr_add(w, CTR_ICMP_RL, 1);
		return;
	}
	w->icmp_tokens--;
	iov[1].iov_base = out;
	iov[1].iov_len = n;
	udp_tun_write(w, &zero, iov, 2);
	ctr_add(w, CTR_ICMP_SENT, 1);
}

/* Wait (briefly) until the socket can take more; false after the deadline. */
static bool wait_writable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	return poll(&p, 1, 20) > 0;
}

static void send_singly(struct udp_worker *w, const struct msghdr *mh, size_t nseg);

/* sendmmsg() until all of @msgs went out; @segs[i]: datagrams in message i (NULL: 1 each). */
static void sendmmsg_all(struct udp_worker *w, struct mmsghdr *msgs, const uint16_t *segs, size_t n)
{
	size_t done = 0;
	bool waited = false;

	while (done < n) {
		int r = sendmmsg(w->sock, msgs + done, (unsigned)(n - done), 0);

		ctr_add(w, CTR_TX_CALLS, 1);
		if (r > 0) {
			for (int k = 0; k < r; k++) {
				ctr_add(w, CTR_TX_BYTES, msgs[done + (size_t)k].msg_len);
				ctr_add(w, CTR_TX_PACKETS, segs ? segs[done + (size_t)k] : 1);
			}
			done += (size_t)r;
			waited = false;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == ENOBUFS) && !waited) {
			waited = true;
			if (wait_writable(w->sock))
				continue;
		}
		if (r < 0 && segs && segs[done] > 1 && !w->no_udp_gso &&
		    (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT ||
		     errno == EOPNOTSUPP)) {
			/* No UDP GSO on this path: send datagrams one by one from now on. */
			log_debug("udp: UDP_SEGMENT failed (%s), sending segments singly",
			          strerror(errno));
			w->no_udp_gso = true;
			send_singly(w, &msgs[done].msg_hdr, segs[done]);
			done++;
			continue;
		}
		/* This message cannot be sent (or the socket stays full): drop it. */
		ctr_add(w, CTR_DROP_TUN + UDP_DROP_TX_ERROR, segs ? segs[done] : 1);
		done++;
		waited = false;
	}
}

/* The @nseg datagrams of GSO message @mh (iov pairs: header, payload), one per message. */
static void send_singly(struct udp_worker *w, const struct msghdr *mh, size_t nseg)
{
	size_t i;

	for (i = 0; i < nseg; i++) {
		struct mmsghdr *m = &w->seg_msgs[i];

		memset(m, 0, sizeof(*m));
		m->msg_hdr.msg_name = mh->msg_name;
		m->msg_hdr.msg_namelen = mh->msg_namelen;
		m->msg_hdr.msg_iov = &mh->msg_iov[2 * i];
		m->msg_hdr.msg_iovlen = 2;
	}
	sendmmsg_all(w, w->seg_msgs, NULL, nseg);
}

static void flush_tx(struct udp_worker *w)
{
	if (w->tx_nmsgs)
		sendmmsg_all(w, w->tx_msgs, w->tx_segs, w->tx_nmsgs);
	w->tx_nmsgs = 0;
	w->tx_niov = 0;
	w->tx_pending = 0;
}

/* Queue one message of @niov iovecs from w->tx_iov + w->tx_niov (@nseg datagrams). */
static void queue_msg(struct udp_worker *w, uint32_t dst_be, size_t niov, size_t nseg,
                      size_t segsize)
{
	size_t i = w->tx_nmsgs++;
	struct mmsghdr *m = &w->tx_msgs[i];

	w->tx_addr[i].sin_family = AF_INET;
	w->tx_addr[i].sin_port = htons(w->be->opt.port);
	w->tx_addr[i].sin_addr.s_addr = dst_be;
	memset(m, 0, sizeof(*m));
	m->msg_hdr.msg_name = &w->tx_addr[i];
	m->msg_hdr.msg_namelen = sizeof(w->tx_addr[i]);
	m->msg_hdr.msg_iov = &w->tx_iov[w->tx_niov];
	m->msg_hdr.msg_iovlen = niov;
	w->tx_segs[i] = (uint16_t)nseg;
	if (nseg > 1) {
		struct cmsghdr *cm;
		uint16_t gs = (uint16_t)segsize;

		m->msg_hdr.msg_control = w->tx_ctl[i].buf;
		m->msg_hdr.msg_controllen = sizeof(w->tx_ctl[i].buf);
		cm = CMSG_FIRSTHDR(&m->msg_hdr);
		cm->cmsg_level = SOL_UDP;
		cm->cmsg_type = UDP_SEGMENT;
		cm->cmsg_len = CMSG_LEN(sizeof(gs));
		memcpy(CMSG_DATA(cm), &gs, sizeof(gs));
	}
	w->tx_niov += niov;
}

/*
 * Segment the GSO packet @pkt (in tx slot @slot) and queue it as UDP GSO messages
 * (one per UDP_MAX_PAYLOAD bytes); packets of more than UDP_GSO_BATCH segments, or
 * without UDP GSO, are sent at once (after what is queued).
 */
static void queue_gso(struct udp_worker *w, size_t slot, const uint8_t *pkt, size_t len,
                      const struct virtio_net_hdr *vh, uint32_t dst_be)
{
	struct udp_gso_out *o = &w->gso[slot];
	size_t first = 0;
	bool direct = false;

	do {
		enum udp_verdict v = udp_gso_segment(pkt, len, vh, (unsigned)w->be->mtu, first, o);
		size_t i, k, segsize, per;

		if (v != UDP_FORWARD) {
			ctr_add(w, CTR_DROP_TUN + v, 1);
			return;
		}
		if (o->n == 0)
			return;
		if (first == 0 && (o->total > o->n || w->no_udp_gso)) {
			flush_tx(w);
			direct = true;
		}
		segsize = (size_t)o->segs[0].hdr_len + o->segs[0].pay_len;
		per = UDP_MAX_PAYLOAD / segsize;
		if (per > GSO_MAX_SEGS)
			per = GSO_MAX_SEGS;
		if (per == 0)
			per = 1;
		for (k = 0; k < o->n; k += per) {
			size_t cnt = o->n - k < per ? o->n - k : per;
			struct iovec *iov = &w->tx_iov[w->tx_niov];

			for (i = 0; i < cnt; i++) {
				const struct udp_seg *sg = &o->segs[k + i];

				iov[2 * i].iov_base = o->hdrs[k + i];
				iov[2 * i].iov_len = sg->hdr_len;
				iov[2 * i + 1].iov_base = (void *)(uintptr_t)(pkt + sg->pay_off);
				iov[2 * i + 1].iov_len = sg->pay_len;
			}
			if (w->no_udp_gso && cnt > 1) {
				struct sockaddr_in sa = { .sin_family = AF_INET,
					                  .sin_port = htons(w->be->opt.port),
					                  .sin_addr.s_addr = dst_be };
				struct msghdr mh = { .msg_name = &sa,
					             .msg_namelen = sizeof(sa),
					             .msg_iov = iov,
					             .msg_iovlen = 2 * cnt };

				send_singly(w, &mh, cnt);
			} else {
				queue_msg(w, dst_be, 2 * cnt, cnt, segsize);
			}
		}
		if (direct)
			flush_tx(w);
		first += o->n;
	} while (first < o->total);
}

/* One packet read from the TUN into tx slot w->tx_pending (@r bytes incl. vnet header). */
static void handle_tun_packet(struct udp_worker *w, size_t r)
{
	struct backend *be = w->be;
	size_t slot = w->tx_pending;
	uint8_t *buf = w->tx_buf[slot];
	size_t hl = be->opt.naive ? 0 : (size_t)VNET_LEN;
	struct virtio_net_hdr vh = { 0 };
	const struct udp_table *t;
	enum udp_verdict v;
	uint32_t dst_be = 0;
	uint8_t *pkt;
	size_t len, tot = 0;

	if (r < hl) {
		ctr_add(w, CTR_DROP_TUN + UDP_DROP_SHORT, 1);
		return;
	}
	if (hl)
		memcpy(&vh, buf, sizeof(vh));
	pkt = buf + hl;
	len = r - hl;
	t = udp_rcu_online(&be->rcu, w->idx);
	v = udp_classify_any_from_tun(pkt, len, t, &dst_be, &tot);
	udp_rcu_offline(&be->rcu, w->idx);
	if (v == UDP_DROP_NO_ROUTE || v == UDP_DROP_PEER_V4ONLY)
		send_icmp(w, pkt, tot);
	if (v != UDP_FORWARD) {
		ctr_add(w, CTR_DROP_TUN + v, 1);
		if (v == UDP_DROP_PEER_V4ONLY) /* the peer it was for */
			pdrop_note(w, dst_be, v);
		return;
	}
	udp_hop_decrement(pkt);
	/* The slot's buffer is referenced by queued messages until flush_tx(). */
	w->tx_pending++;
	if (vh.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
		queue_gso(w, slot, pkt, tot, &vh, dst_be);
		return;
	}
	if ((vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    !udp_csum_complete(pkt, tot, vh.csum_start, vh.csum_offset)) {
		ctr_add(w, CTR_DROP_TUN + UDP_DROP_BAD_GSO, 1);
		return;
	}
	w->tx_iov[w->tx_niov].iov_base = pkt;
	w->tx_iov[w->tx_niov].iov_len = tot;
	queue_msg(w, dst_be, 1, 1, 0);
}

/* Read and forward what the TUN queue has; -errno when the queue failed (device gone). */
int udp_tun_to_wire(struct udp_worker *w)
{
	int i, err = 0;

	for (i = 0; i < 64; i++) {
		ssize_t r;

		/* Room for the worst case of one more packet: 2 messages, 2 * 64 iovecs. */
		if (w->tx_pending == TX_SLOTS || w->tx_nmsgs + 2 > TX_MSGS ||
		    w->tx_niov + 2 * UDP_GSO_BATCH > TX_IOVS)
			flush_tx(w);
		r = read(w->tun_fd, w->tx_buf[w->tx_pending], PKT_BUF);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				err = -errno;
			break;
		}
		handle_tun_packet(w, (size_t)r);
		if (w->be->opt.naive) {
			flush_tx(w);
			break;
		}
	}
	flush_tx(w);
	return err;
}
