/* The udp backend: TUN <-> UDP forwarder (see udp.h for the design). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>

#include "backends/udp.h"
#include "lib/ev.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/nl.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define VNET_LEN        ((int)sizeof(struct virtio_net_hdr))
#define PKT_BUF         (65536 + 64)
#define TX_SLOTS        16 /* TUN reads batched into one sendmmsg */
#define TX_MSGS         (2 * TX_SLOTS)
#define TX_IOVS         (TX_SLOTS * 2 * UDP_GSO_BATCH)
#define RX_SLOTS        8 /* datagrams per recvmmsg */
#define RX_PKTS_MAX     (RX_SLOTS * (65536 / 20 + 1))
#define GSO_MAX_SEGS    64
#define UDP_MAX_PAYLOAD 65507
#define ICMP_BURST      10
#define ICMP_EVERY_MS   10 /* one token per 10 ms: 100 errors/s per worker */
#define SOCK_BUF        (4 << 20)

enum udp_ctr {
	CTR_TX_PACKETS,
	CTR_TX_BYTES,
	CTR_TX_CALLS,
	CTR_RX_PACKETS,
	CTR_RX_BYTES,
	CTR_RX_WRITES,
	CTR_ICMP_SENT,
	CTR_ICMP_RL,
	CTR_DROP_TUN,
	CTR_DROP_WIRE = CTR_DROP_TUN + UDP_VERDICT_MAX,
	CTR_MAX = CTR_DROP_WIRE + UDP_VERDICT_MAX,
};

struct udp_counters {
	_Atomic uint64_t c[CTR_MAX];
} __attribute__((aligned(64)));

struct udp_worker {
	struct backend *be;
	size_t idx;
	pthread_t thr;
	bool started;
	int tun_fd;
	int sock;
	bool no_udp_gso;
	uint64_t icmp_tokens;
	uint64_t icmp_last_ms;
	/* TUN -> wire */
	uint8_t *tx_buf[TX_SLOTS]; /* TUN reads, kept until the batch is sent */
	size_t tx_pending;         /* slots in use */
	struct udp_gso_out *gso;   /* TX_SLOTS of them: segment headers per slot */
	struct mmsghdr tx_msgs[TX_MSGS];
	uint16_t tx_segs[TX_MSGS]; /* datagrams per message */
	struct sockaddr_in tx_addr[TX_MSGS];
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} tx_ctl[TX_MSGS];
	size_t tx_nmsgs;
	struct iovec *tx_iov; /* TX_IOVS */
	size_t tx_niov;
	struct mmsghdr *seg_msgs; /* UDP_GSO_BATCH, for sending without UDP GSO */
	/* wire -> TUN */
	uint8_t *rx_buf[RX_SLOTS];
	struct mmsghdr rx_msgs[RX_SLOTS];
	struct iovec rx_iov[RX_SLOTS];
	struct sockaddr_in rx_addr[RX_SLOTS];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} rx_ctl[RX_SLOTS];
	const uint8_t **rx_pkts; /* checked inner packets of the current recvmmsg batch */
	size_t *rx_lens;
	size_t rx_n;
	struct iovec *rx_wiov; /* 2 + GSO_MAX_SEGS */
};

struct backend {
	struct ev_loop *loop;
	struct udp_options opt;
	struct ipam_prefix network;
	bool has_own;
	struct ipam_prefix own;
	struct be_extif ext;
	int mtu;
	int ifindex;
	int stop_fd;
	bool running;
	size_t nworkers;
	struct udp_worker workers[UDP_MAX_WORKERS];
	struct udp_counters ctr[UDP_MAX_WORKERS];
	struct udp_rcu rcu;
	_Atomic uint64_t table_updates;
	_Atomic uint64_t table_routes;
	struct udp_peer *peers; /* event loop thread only */
	size_t npeers, cap;
	struct ev_timer *timer;
	char *stats_file;
	char last_stats[4096];
	bool stats_failed; /* the last write failed (logged once) */
};

/* ---- Counters ---- */

static inline void ctr_add(struct udp_worker *w, int i, uint64_t n)
{
	_Atomic uint64_t *c = &w->be->ctr[w->idx].c[i];

	/* One writer per counter: a relaxed load and store, no locked instruction. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	                      memory_order_relaxed);
}

void udp_backend_stats(struct backend *be, struct udp_stats *ret)
{
	uint64_t sum[CTR_MAX] = { 0 };
	size_t i, k;

	memset(ret, 0, sizeof(*ret));
	if (!be)
		return;
	for (i = 0; i < UDP_MAX_WORKERS; i++)
		for (k = 0; k < CTR_MAX; k++)
			sum[k] += atomic_load_explicit(&be->ctr[i].c[k], memory_order_relaxed);
	ret->tx_packets = sum[CTR_TX_PACKETS];
	ret->tx_bytes = sum[CTR_TX_BYTES];
	ret->tx_datagrams_calls = sum[CTR_TX_CALLS];
	ret->rx_packets = sum[CTR_RX_PACKETS];
	ret->rx_bytes = sum[CTR_RX_BYTES];
	ret->rx_tun_writes = sum[CTR_RX_WRITES];
	ret->icmp_sent = sum[CTR_ICMP_SENT];
	ret->icmp_ratelimited = sum[CTR_ICMP_RL];
	for (k = 0; k < UDP_VERDICT_MAX; k++) {
		ret->drop_tun[k] = sum[CTR_DROP_TUN + k];
		ret->drop_wire[k] = sum[CTR_DROP_WIRE + k];
	}
	ret->table_routes = atomic_load(&be->table_routes);
	ret->table_updates = atomic_load(&be->table_updates);
}

size_t udp_stats_format(const struct udp_stats *s, char *buf, size_t len)
{
	static const char *const dirs[2] = { "tun", "wire" };
	size_t off = 0;
	int k, d, n;

#define EMIT(...)                                                                      \
	do {                                                                           \
		n = snprintf(buf + (off < len ? off : len), off < len ? len - off : 0, \
		             __VA_ARGS__);                                             \
		if (n > 0)                                                             \
			off += (size_t)n;                                              \
	} while (0)

	EMIT("twill_udp_tx_packets_total %" PRIu64 "\n", s->tx_packets);
	EMIT("twill_udp_tx_bytes_total %" PRIu64 "\n", s->tx_bytes);
	EMIT("twill_udp_tx_syscalls_total %" PRIu64 "\n", s->tx_datagrams_calls);
	EMIT("twill_udp_rx_packets_total %" PRIu64 "\n", s->rx_packets);
	EMIT("twill_udp_rx_bytes_total %" PRIu64 "\n", s->rx_bytes);
	EMIT("twill_udp_rx_tun_writes_total %" PRIu64 "\n", s->rx_tun_writes);
	EMIT("twill_udp_icmp_unreach_sent_total %" PRIu64 "\n", s->icmp_sent);
	EMIT("twill_udp_icmp_unreach_ratelimited_total %" PRIu64 "\n", s->icmp_ratelimited);
	EMIT("twill_udp_table_routes %" PRIu64 "\n", s->table_routes);
	EMIT("twill_udp_table_updates_total %" PRIu64 "\n", s->table_updates);
	for (d = 0; d < 2; d++)
		for (k = 1; k < UDP_VERDICT_MAX; k++)
			EMIT("twill_udp_drops_total{dir=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
			     dirs[d], udp_verdict_name((enum udp_verdict)k),
			     d ? s->drop_wire[k] : s->drop_tun[k]);
#undef EMIT
	return off;
}

/* ---- Options ---- */

static bool env_true(const char *name)
{
	const char *v = getenv(name);

	return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
}

int udp_parse_options(const struct subnet_config *cfg, struct udp_options *ret)
{
	struct udp_options o = { .port = UDP_DEFAULT_PORT, .gro = true };
	json_t *v;
	const char *w;
	long ncpu;

	v = subnet_config_backend_opt(cfg, "Port");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 65535) {
			log_error(
				"udp: Backend.Port must be an integer 0..65535 (0: default 8285)");
			return -EINVAL;
		}
		if (json_integer_value(v) != 0)
			o.port = (uint16_t)json_integer_value(v);
	}
	v = subnet_config_backend_opt(cfg, "Naive");
	if (v) {
		if (!json_is_boolean(v)) {
			log_error("udp: Backend.Naive must be true or false");
			return -EINVAL;
		}
		o.naive = json_is_true(v);
	}
	if (env_true("TWILL_UDP_NAIVE"))
		o.naive = true;
	if (env_true("TWILL_UDP_NO_GRO"))
		o.gro = false;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	o.workers = ncpu < 1 ? 1 : ncpu > 4 ? 4 : (unsigned)ncpu;
	w = getenv("TWILL_UDP_WORKERS");
	if (w && *w) {
		char *end;
		long n = strtol(w, &end, 10);

		if (*end || n < 1 || n > UDP_MAX_WORKERS) {
			log_error("udp: TWILL_UDP_WORKERS=%s: must be 1..%d", w, UDP_MAX_WORKERS);
			return -EINVAL;
		}
		o.workers = (unsigned)n;
	}
	if (o.naive)
		o.workers = 1;
	*ret = o;
	return 0;
}

/* ---- Kernel objects ---- */

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

static void close_fds(struct backend *be)
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

static int open_tun(struct backend *be)
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

static int open_sockets(struct backend *be)
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

/* ---- Workers ---- */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void tun_write(struct udp_worker *w, const struct virtio_net_hdr *vh, struct iovec *iov,
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

static void send_icmp(struct udp_worker *w, const uint8_t *pkt, size_t len)
{
	static const struct virtio_net_hdr zero;
	uint8_t out[UDP_ICMP_MAX];
	struct iovec iov[2];
	uint64_t now = mono_ms();
	size_t n;

	if (now > w->icmp_last_ms) {
		w->icmp_tokens += (now - w->icmp_last_ms) / ICMP_EVERY_MS;
		if (w->icmp_tokens > ICMP_BURST)
			w->icmp_tokens = ICMP_BURST;
		w->icmp_last_ms = now - (now - w->icmp_last_ms) % ICMP_EVERY_MS;
	}
	n = udp_icmp_net_unreach(pkt, len, out);
	if (!n)
		return;
	if (w->icmp_tokens == 0) {
		ctr_add(w, CTR_ICMP_RL, 1);
		return;
	}
	w->icmp_tokens--;
	iov[1].iov_base = out;
	iov[1].iov_len = n;
	tun_write(w, &zero, iov, 2);
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
	const struct udp_route *route = NULL;
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
	v = udp_classify_from_tun(pkt, len, t, &route, &tot);
	if (v == UDP_FORWARD)
		dst_be = route->peer_be;
	udp_rcu_offline(&be->rcu, w->idx);
	if (v == UDP_DROP_NO_ROUTE)
		send_icmp(w, pkt, tot);
	if (v != UDP_FORWARD) {
		ctr_add(w, CTR_DROP_TUN + v, 1);
		return;
	}
	udp_ttl_decrement(pkt);
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
static int tun_to_wire(struct udp_worker *w)
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

/* Write the @n checked inner packets of one datagram to the TUN (TTL handled here). */
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
			tun_write(w, &zero, iov, 2);
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
			tun_write(w, &run.vh, iov, (int)(2 + run.count));
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
			continue;
		}
		if (!udp_ttl_decrement(buf + off)) {
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

static void wire_to_tun(struct udp_worker *w)
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

static void *worker_main(void *arg)
{
	struct udp_worker *w = arg;
	struct pollfd pfd[3] = {
		{ .fd = w->tun_fd, .events = POLLIN },
		{ .fd = w->sock, .events = POLLIN },
		{ .fd = w->be->stop_fd, .events = POLLIN },
	};

	for (;;) {
		int n = poll(pfd, 3, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[2].revents)
			break;
		if (pfd[0].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) {
			int r = tun_to_wire(w);

			if (r < 0) {
				/* Detached (flannel0 deleted under us): stop reading, do not spin. */
				log_warnx(
					"udp %s: TUN queue %zu failed: %s; no more packets from it",
					UDP_DEVICE, w->idx, strerror(-r));
				pfd[0].fd = -1;
			}
		}
		if (pfd[1].revents & (POLLIN | POLLERR))
			wire_to_tun(w);
	}
	return NULL;
}

static void worker_free_bufs(struct udp_worker *w)
{
	size_t i;

	for (i = 0; i < TX_SLOTS; i++) {
		free(w->tx_buf[i]);
		w->tx_buf[i] = NULL;
	}
	for (i = 0; i < RX_SLOTS; i++) {
		free(w->rx_buf[i]);
		w->rx_buf[i] = NULL;
	}
	free(w->gso);
	free(w->tx_iov);
	free(w->seg_msgs);
	free(w->rx_pkts);
	free(w->rx_lens);
	free(w->rx_wiov);
	w->gso = NULL;
	w->tx_iov = NULL;
	w->seg_msgs = NULL;
	w->rx_pkts = NULL;
	w->rx_lens = NULL;
	w->rx_wiov = NULL;
}

static int worker_alloc_bufs(struct udp_worker *w)
{
	size_t i;

	for (i = 0; i < TX_SLOTS; i++)
		if (!(w->tx_buf[i] = malloc(PKT_BUF)))
			return -ENOMEM;
	for (i = 0; i < RX_SLOTS; i++)
		if (!(w->rx_buf[i] = malloc(PKT_BUF)))
			return -ENOMEM;
	w->gso = calloc(TX_SLOTS, sizeof(*w->gso));
	w->tx_iov = calloc(TX_IOVS, sizeof(*w->tx_iov));
	w->seg_msgs = calloc(UDP_GSO_BATCH, sizeof(*w->seg_msgs));
	w->rx_pkts = calloc(RX_PKTS_MAX, sizeof(*w->rx_pkts));
	w->rx_lens = calloc(RX_PKTS_MAX, sizeof(*w->rx_lens));
	w->rx_wiov = calloc(2 + GSO_MAX_SEGS, sizeof(*w->rx_wiov));
	if (!w->gso || !w->tx_iov || !w->seg_msgs || !w->rx_pkts || !w->rx_lens || !w->rx_wiov)
		return -ENOMEM;
	return 0;
}

static void stop_workers(struct backend *be)
{
	uint64_t one = 1;
	size_t i;

	if (be->stop_fd >= 0 && write(be->stop_fd, &one, sizeof(one)) < 0)
		log_debug("udp: stop eventfd: %s", strerror(errno));
	for (i = 0; i < be->nworkers; i++) {
		if (be->workers[i].started)
			pthread_join(be->workers[i].thr, NULL);
		be->workers[i].started = false;
	}
	be->running = false;
}

static int start_workers(struct backend *be)
{
	size_t i;
	int r;

	for (i = 0; i < be->nworkers; i++) {
		struct udp_worker *w = &be->workers[i];

		w->icmp_tokens = ICMP_BURST;
		w->icmp_last_ms = mono_ms();
		r = pthread_create(&w->thr, NULL, worker_main, w);
		if (r != 0) {
			log_error("udp: cannot start worker %zu: %s", i, strerror(r));
			stop_workers(be);
			return -r;
		}
		w->started = true;
	}
	be->running = true;
	return 0;
}

/* ---- Table maintenance (event loop thread) ---- */

static int rebuild(struct backend *be)
{
	struct udp_table *t =
		udp_table_new(&be->network, be->has_own ? &be->own : NULL, be->peers, be->npeers);

	if (!t) {
		log_warn("udp: cannot build the forwarding table");
		return -errno;
	}
	if (t->skipped)
		log_debug("udp: %zu lease(s) left out of the table (overlap or outside Network)",
		          t->skipped);
	atomic_store(&be->table_routes, t->nroutes);
	udp_rcu_publish(&be->rcu, t);
	atomic_fetch_add(&be->table_updates, 1);
	return 0;
}

static bool lease_is_udp(const struct lease *l)
{
	return l->has_ipv4 && l->attrs.public_ip.family == AF_INET &&
	       (l->attrs.backend_type[0] == '\0' || strcasecmp(l->attrs.backend_type, "udp") == 0);
}

static ssize_t peer_find(const struct backend *be, const struct ipam_prefix *subnet)
{
	size_t i;

	for (i = 0; i < be->npeers; i++)
		if (ipam_prefix_equal(&be->peers[i].subnet, subnet))
			return (ssize_t)i;
	return -1;
}

static int peer_reserve(struct backend *be, size_t n)
{
	struct udp_peer *p;
	size_t cap;

	if (n <= be->cap)
		return 0;
	cap = be->cap ? be->cap : 16;
	while (cap < n)
		cap *= 2;
	p = realloc(be->peers, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	be->peers = p;
	be->cap = cap;
	return 0;
}

static void log_ignored(const struct lease *l)
{
	char buf[IPAM_PREFIX_STRLEN];

	log_warnx("udp: ignoring lease %s with backend type \"%s\"",
	          l->has_ipv4 ? ipam_prefix_format(&l->subnet, buf) : "(no IPv4)",
	          l->attrs.backend_type);
}

static int udp_lease_added(struct backend *be, const struct lease *l)
{
	struct ipam_prefix net;
	ssize_t i;
	int r;

	if (!be || !l)
		return -EINVAL;
	if (!lease_is_udp(l)) {
		log_ignored(l);
		return 0;
	}
	net = ipam_prefix_network(&l->subnet);
	i = peer_find(be, &net);
	if (i < 0) {
		r = peer_reserve(be, be->npeers + 1);
		if (r < 0)
			return r;
		i = (ssize_t)be->npeers++;
		be->peers[i].subnet = net;
	} else if (ipam_addr_equal(&be->peers[i].public_ip, &l->attrs.public_ip)) {
		return 0;
	}
	be->peers[i].public_ip = l->attrs.public_ip;
	return rebuild(be);
}

static int udp_lease_removed(struct backend *be, const struct lease *l)
{
	struct ipam_prefix net;
	ssize_t i;

	if (!be || !l)
		return -EINVAL;
	if (!l->has_ipv4)
		return 0;
	net = ipam_prefix_network(&l->subnet);
	i = peer_find(be, &net);
	if (i < 0)
		return 0;
	be->peers[i] = be->peers[--be->npeers];
	return rebuild(be);
}

static int udp_resync(struct backend *be, const struct lease *leases, size_t n)
{
	size_t i;
	int r;

	if (!be)
		return -EINVAL;
	r = peer_reserve(be, n);
	if (r < 0)
		return r;
	be->npeers = 0;
	for (i = 0; i < n; i++) {
		if (!lease_is_udp(&leases[i])) {
			log_ignored(&leases[i]);
			continue;
		}
		be->peers[be->npeers].subnet = ipam_prefix_network(&leases[i].subnet);
		be->peers[be->npeers].public_ip = leases[i].attrs.public_ip;
		be->npeers++;
	}
	return rebuild(be);
}

static void write_stats_file(struct backend *be)
{
	struct udp_stats s;
	char buf[4096], err[512];
	size_t n;
	int r;

	udp_backend_stats(be, &s);
	n = udp_stats_format(&s, buf, sizeof(buf));
	if (n >= sizeof(buf) || strcmp(buf, be->last_stats) == 0)
		return;
	r = file_write_atomic(be->stats_file, buf, n, 0644, 0, err, sizeof(err));
	if (r == 0)
		memcpy(be->last_stats, buf, n + 1);
	else if (!be->stats_failed) /* once, not every second; retried each tick */
		log_warnx("udp %s: stats file: %s, retrying", UDP_DEVICE, err);
	be->stats_failed = r < 0;
}

static void on_timer(struct ev_timer *t, void *ctx)
{
	struct backend *be = ctx;

	(void)t;
	udp_rcu_reclaim(&be->rcu);
	if (be->stats_file)
		write_stats_file(be);
}

/* ---- Ops ---- */

static void udp_stop(struct backend *be);

static struct backend *udp_init(struct ev_loop *loop, const struct subnet_config *cfg,
                                const struct be_extif *ext, struct lease_attrs *ret_attrs)
{
	struct backend *be;
	const char *sf;
	size_t i;
	int r;

	if (!cfg || !ext || !ret_attrs) {
		errno = EINVAL;
		return NULL;
	}
	if (!cfg->enable_ipv4 || cfg->network.addr.family != AF_INET) {
		log_error("udp: the udp backend needs an IPv4 Network");
		errno = EINVAL;
		return NULL;
	}
	if (ext->mtu <= UDP_OVERHEAD + 68) {
		log_error("udp: external interface %s MTU %d is too small", ext->name, ext->mtu);
		errno = EINVAL;
		return NULL;
	}
	be = calloc(1, sizeof(*be));
	if (!be)
		return NULL;
	be->stop_fd = -1;
	for (i = 0; i < UDP_MAX_WORKERS; i++) {
		be->workers[i].tun_fd = be->workers[i].sock = -1;
		be->workers[i].be = be;
		be->workers[i].idx = i;
		for (size_t k = 0; k < CTR_MAX; k++)
			atomic_init(&be->ctr[i].c[k], 0);
	}
	atomic_init(&be->table_updates, 0);
	atomic_init(&be->table_routes, 0);
	be->loop = loop;
	be->ext = *ext;
	be->network = ipam_prefix_network(&cfg->network);
	be->mtu = ext->mtu - UDP_OVERHEAD;
	r = udp_parse_options(cfg, &be->opt);
	if (r < 0)
		goto fail;
	be->nworkers = be->opt.workers;
	udp_rcu_init(&be->rcu, be->nworkers);
	be->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (be->stop_fd < 0) {
		r = -errno;
		goto fail;
	}
	for (i = 0; i < be->nworkers; i++) {
		r = worker_alloc_bufs(&be->workers[i]);
		if (r < 0)
			goto fail;
	}
	r = open_tun(be);
	if (r < 0)
		goto fail;
	r = open_sockets(be);
	if (r < 0)
		goto fail;
	r = rebuild(be);
	if (r < 0)
		goto fail;
	sf = getenv("TWILL_UDP_STATS_FILE");
	if (sf && *sf && !(be->stats_file = strdup(sf))) {
		r = -ENOMEM;
		goto fail;
	}
	if (loop) {
		be->timer = ev_timer_new(loop, on_timer, be);
		if (!be->timer || ev_timer_start(be->timer, 250, 250) < 0) {
			r = -ENOMEM;
			goto fail;
		}
	}
	ret_attrs->backend_type[0] = '\0';
	lease_attrs_set_backend_data(ret_attrs, NULL); /* cannot fail */
	log_info("udp %s: %s mode, %zu worker(s), port %u, MTU %d", UDP_DEVICE,
	         be->opt.naive ? "naive" : "offload", be->nworkers, be->opt.port, be->mtu);
	return be;
fail:
	udp_stop(be);
	errno = -r;
	return NULL;
}

static int configure_device(struct backend *be)
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

static int udp_start(struct backend *be, const struct lease *own)
{
	int r;

	if (!be || !own || !own->has_ipv4)
		return -EINVAL;
	be->own = ipam_prefix_network(&own->subnet);
	be->has_own = true;
	r = configure_device(be);
	if (r < 0)
		return r;
	r = rebuild(be);
	if (r < 0)
		return r;
	if (!be->running) {
		r = start_workers(be);
		if (r < 0)
			return r;
	}
	return be->mtu;
}

static void udp_stop(struct backend *be)
{
	size_t i;

	if (!be)
		return;
	stop_workers(be);
	close_fds(be);
	if (be->stop_fd >= 0)
		close(be->stop_fd);
	ev_timer_free(be->timer);
	udp_rcu_destroy(&be->rcu);
	for (i = 0; i < UDP_MAX_WORKERS; i++)
		worker_free_bufs(&be->workers[i]);
	free(be->peers);
	free(be->stats_file);
	free(be);
}

const struct backend_ops udp_backend_ops = {
	.name = "udp",
	.init = udp_init,
	.start = udp_start,
	.lease_added = udp_lease_added,
	.lease_removed = udp_lease_removed,
	.resync = udp_resync,
	.stop = udp_stop,
};
