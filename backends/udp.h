/*
 * The udp backend (docs/compat.md §5): a TUN device flannel0 whose IPv4 packets travel
 * as the whole payload of UDP datagrams to the PublicIP of the lease covering their
 * destination (flannel's wire format). Worker threads move packets; the event loop
 * thread only changes the forwarding table (published atomically, see udp_table.h).
 *
 * Kernel state: flannel0 is made persistent (TUNSETPERSIST), so stop() and a crash
 * leave the device, its address and the route in place (traffic pauses, nothing is
 * rerouted); the next init() re-attaches to it. A device created in the other mode
 * (naive vs. multi-queue) cannot be attached and is deleted and recreated.
 *
 * Options: Backend.Port (default 8285), Backend.Naive (bool, default false: one
 * thread, one packet per syscall, no offloads; also TWILL_UDP_NAIVE=1), and the
 * environment TWILL_UDP_WORKERS (worker threads, default min(CPUs, 4)),
 * TWILL_UDP_BUSY_POLL_US (after traffic, a worker polls without sleeping this long,
 * default 0: off) and TWILL_UDP_STATS_FILE (a file rewritten with udp_stats_format()
 * every 250 ms). Received datagrams are spread over the workers by inner flow
 * (a reuseport BPF program, see udp_dev.c), not by the outer 4-tuple.
 */
#ifndef TWILL_BACKENDS_UDP_H
#define TWILL_BACKENDS_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "backends/udp_peerdrop.h"
#include "backends/udp_pkt.h"

#define UDP_DEFAULT_PORT         8285
#define UDP_DEVICE               "flannel0"
#define UDP_MAX_WORKERS          16
#define UDP_OVERHEAD             28 /* outer IPv4 + UDP headers */
#define UDP_TXQUEUELEN           5000
#define UDP_DEFAULT_BUSY_POLL_US 0

extern const struct backend_ops udp_backend_ops;

struct udp_options {
	uint16_t port;    /* Port */
	bool naive;       /* Naive, or TWILL_UDP_NAIVE=1 */
	unsigned workers; /* TWILL_UDP_WORKERS, default min(CPUs, 4); 1 when naive */
	bool gro;         /* coalesce received TCP segments (TWILL_UDP_NO_GRO=1 turns it off) */
	unsigned
		busy_poll_us; /* poll without sleeping this long after traffic (TWILL_UDP_BUSY_POLL_US) */
};

/*
 * Read and check the udp options of @cfg->backend and the daemon's @set (may be NULL); 0 or
 * -EINVAL with the reason in @err.
 */
int udp_parse_options(const struct subnet_config *cfg, const struct be_settings *set,
                      struct udp_options *ret, char *err, size_t errlen);

/* Data path counters, summed over the workers. */
struct udp_stats {
	uint64_t tx_packets, tx_bytes;       /* inner packets TUN -> wire (after segmentation) */
	uint64_t tx_datagrams_calls;         /* send syscalls (sendmsg/sendmmsg/sendto) */
	uint64_t rx_packets, rx_bytes;       /* inner packets wire -> TUN */
	uint64_t rx_tun_writes;              /* TUN write syscalls (coalesced writes count once) */
	uint64_t icmp_sent;                  /* net unreachable written to the TUN */
	uint64_t icmp_ratelimited;           /* net unreachable suppressed by the rate limit */
	uint64_t drop_tun[UDP_VERDICT_MAX];  /* packets read from the TUN and dropped, by reason */
	uint64_t drop_wire[UDP_VERDICT_MAX]; /* inner packets from the wire dropped, by reason */
	uint64_t table_routes;               /* routes in the current table */
	uint64_t table_routes6;              /* IPv6 routes in it (peers that take IPv6 or not) */
	uint64_t peers_ipv4_only;            /* with IPv6 on: peers that get no IPv6 */
	size_t nworkers;
	uint64_t worker_rx[UDP_MAX_WORKERS]; /* inner packets wire -> TUN per worker (balance) */
	uint64_t table_updates;              /* tables published */
	/* the underlay addresses most dropped from/for among the workers' last ones */
	struct udp_peer_drop peer_drops[UDP_PEER_DROPS];
	size_t n_peer_drops;
};

/*
 * True when the remote lease @l says its node carries IPv6 over udp: an IPv6
 * subnet in the key and a BackendV6Data object in the value (twill writes
 * {"Port":N}; flanneld's udp never writes BackendV6Data, and ignores it). For
 * listings (twillctl leases): false means "IPv4 only" for a udp lease.
 */
bool udp_lease_takes_ipv6(const struct lease *l);

/* Sum of the counters of @be (a udp backend) into @ret. Any thread; never blocks. */
void udp_backend_stats(struct backend *be, struct udp_stats *ret);
/*
 * Prometheus text exposition of @s (twill_udp_* metrics; drops as
 * twill_udp_drops_total{dir="tun"|"wire",reason="..."}) into @buf; returns the
 * length it needed (as snprintf), so a result >= @len means truncated.
 */
size_t udp_stats_format(const struct udp_stats *s, char *buf, size_t len);

#endif
