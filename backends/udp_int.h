/*
 * Internals of the udp backend shared by its files (not an interface for anyone else):
 *   udp.c         options, lease -> table maintenance, the backend ops
 *   udp_dev.c     kernel objects: the TUN queues, the sockets, flannel0's address and route
 *   udp_worker.c  worker threads: start, stop, buffers, the poll loop
 *   udp_tx.c      TUN -> wire (segmentation, batching, sendmmsg)
 *   udp_rx.c      wire -> TUN (recvmmsg, checks, coalescing)
 *   udp_stats.c   counters, their text format and the stats file
 */
#ifndef TWILL_BACKENDS_UDP_INT_H
#define TWILL_BACKENDS_UDP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <linux/virtio_net.h>

#include "backends/udp.h"
#include "backends/udp_peerdrop.h"
#include "lib/ev.h"

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
	struct udp_peer_drops pdrops[UDP_MAX_WORKERS]; /* per worker (udp_peerdrop.h) */
	struct udp_rcu rcu;
	_Atomic uint64_t table_updates;
	_Atomic uint64_t table_routes;
	_Atomic uint64_t table_routes6;
	_Atomic uint64_t peers_v4only;
	bool ipv6; /* EnableIPv6: IPv6 between twill nodes (docs/compat.md) */
	struct ipam_prefix network6;
	bool has_own6;
	struct ipam_prefix own6;
	bool v6_up;             /* flannel0 got the own IPv6 address and the IPv6 Network route */
	bool warned_no_own6;    /* start warned that the own lease has no IPv6 subnet */
	size_t v6_peers;        /* IPv6 routes to peers that take IPv6 (event loop thread) */
	struct udp_peer *peers; /* event loop thread only */
	size_t npeers, cap;
	uint32_t *logged; /* PublicIPs (host order, sorted) already logged as IPv4-only */
	size_t nlogged, logcap;
	struct ev_timer *timer;
	char *stats_file;
	bool stats_failed; /* the last stats file write failed (logged once) */
	char last_stats[4096];
};

/* ---- Counters ---- */

static inline void ctr_add(struct udp_worker *w, int i, uint64_t n)
{
	_Atomic uint64_t *c = &w->be->ctr[w->idx].c[i];

	/* One writer per counter: a relaxed load and store, no locked instruction. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	                      memory_order_relaxed);
}

/* A drop of @v from (wire) or for (TUN) the underlay address @addr_be, in the worker's
 * per-peer drop table; the caller counts it by reason with ctr_add() as well. */
static inline void pdrop_note(struct udp_worker *w, uint32_t addr_be, enum udp_verdict v)
{
	udp_peer_drops_note(&w->be->pdrops[w->idx], addr_be, v, 1);
}

/* udp_dev.c */
int udp_open_tun(struct backend *be, char *err, size_t errlen);
int udp_open_sockets(struct backend *be, char *err, size_t errlen);
void udp_close_fds(struct backend *be);
int udp_configure_device(struct backend *be, char *err, size_t errlen);
/* udp_worker.c */
int udp_start_workers(struct backend *be, char *err, size_t errlen);
void udp_stop_workers(struct backend *be);
int udp_worker_alloc_bufs(struct udp_worker *w);
void udp_worker_free_bufs(struct udp_worker *w);
uint64_t udp_mono_ms(void);
/* udp_tx.c: read and forward what the TUN queue has; -errno when the queue failed. */
int udp_tun_to_wire(struct udp_worker *w);
/* udp_rx.c */
void udp_wire_to_tun(struct udp_worker *w);
void udp_tun_write(struct udp_worker *w, const struct virtio_net_hdr *vh, struct iovec *iov,
                   int iovcnt);
/* udp_stats.c */
void udp_write_stats_file(struct backend *be);

#endif
