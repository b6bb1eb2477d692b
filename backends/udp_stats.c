/* The udp backend's counters: sums, text format, stats file. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/udp_int.h"
#include "lib/fileio.h"
#include "lib/log.h"

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
	ret->nworkers = be->nworkers;
	for (i = 0; i < be->nworkers; i++)
		ret->worker_rx[i] =
			atomic_load_explicit(&be->ctr[i].c[CTR_RX_PACKETS], memory_order_relaxed);
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
	ret->table_routes6 = atomic_load(&be->table_routes6);
	ret->peers_ipv4_only = atomic_load(&be->peers_v4only);
	ret->n_peer_drops =
		udp_peer_drops_merge(be->pdrops, be->nworkers, ret->peer_drops, UDP_PEER_DROPS);
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
	EMIT("twill_udp_table_routes6 %" PRIu64 "\n", s->table_routes6);
	EMIT("twill_udp_peers_ipv4_only %" PRIu64 "\n", s->peers_ipv4_only);
	for (k = 0; k < (int)s->nworkers && k < UDP_MAX_WORKERS; k++)
		EMIT("twill_udp_worker_rx_packets_total{worker=\"%d\"} %" PRIu64 "\n", k,
		     s->worker_rx[k]);
	for (d = 0; d < 2; d++)
		for (k = 1; k < UDP_VERDICT_MAX; k++)
			EMIT("twill_udp_drops_total{dir=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
			     dirs[d], udp_verdict_name((enum udp_verdict)k),
			     d ? s->drop_wire[k] : s->drop_tun[k]);
#undef EMIT
	return off;
}

void udp_write_stats_file(struct backend *be)
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
	else if (!be->stats_failed) /* once, not every tick; retried each tick */
		log_warnx("udp %s: stats file: %s, retrying", UDP_DEVICE, err);
	be->stats_failed = r < 0;
}
