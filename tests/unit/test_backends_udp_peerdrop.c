/* The udp backend's per-peer drop table (backends/udp_peerdrop.h). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "backends/udp_peerdrop.h"

static uint32_t be32(const char *s)
{
	struct in_addr a;

	cr_assert_eq(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

/* 192.0.2.<i> in network byte order. */
static uint32_t host(unsigned i)
{
	return htonl(0xc0000200u | (i & 0xff));
}

Test(udp_peerdrop, counts_pairs_and_sorts_by_count)
{
	static struct udp_peer_drops d;
	struct udp_peer_drop out[UDP_PEER_DROPS];

	memset(&d, 0, sizeof(d));
	cr_assert_eq(udp_peer_drops_merge(&d, 1, out, UDP_PEER_DROPS), 0, "empty table");
	udp_peer_drops_note(&d, be32("192.0.2.99"), UDP_DROP_UNKNOWN_SRC, 1);
	udp_peer_drops_note(&d, be32("192.0.2.12"), UDP_DROP_BAD_CSUM, 2);
	udp_peer_drops_note(&d, be32("192.0.2.99"), UDP_DROP_UNKNOWN_SRC, 4);
	udp_peer_drops_note(&d, be32("192.0.2.99"), UDP_DROP_SHORT, 2);
	cr_assert_eq(udp_peer_drops_merge(&d, 1, out, UDP_PEER_DROPS), 3);
	cr_assert_eq(out[0].addr_be, be32("192.0.2.99"));
	cr_assert_eq(out[0].reason, UDP_DROP_UNKNOWN_SRC);
	cr_assert_eq(out[0].n, 5);
	/* equal counts: lower address first */
	cr_assert_eq(out[1].addr_be, be32("192.0.2.12"));
	cr_assert_eq(out[1].reason, UDP_DROP_BAD_CSUM);
	cr_assert_eq(out[2].addr_be, be32("192.0.2.99"));
	cr_assert_eq(out[2].reason, UDP_DROP_SHORT);
	cr_assert_eq(out[2].n, 2);
	cr_assert_eq(udp_peer_drops_merge(&d, 1, out, 1), 1, "at most max entries");
	cr_assert_eq(out[0].n, 5);
}

Test(udp_peerdrop, keeps_the_last_pairs_when_full)
{
	static struct udp_peer_drops d;
	struct udp_peer_drop out[UDP_PEER_DROPS];
	unsigned i;

	memset(&d, 0, sizeof(d));
	for (i = 1; i <= UDP_PEER_DROPS + 3; i++)
		udp_peer_drops_note(&d, host(i), UDP_DROP_UNKNOWN_SRC, i);
	cr_assert_eq(udp_peer_drops_merge(&d, 1, out, UDP_PEER_DROPS), UDP_PEER_DROPS);
	for (i = 0; i < UDP_PEER_DROPS; i++) {
		cr_assert_eq(out[i].addr_be, host(UDP_PEER_DROPS + 3 - i), "slot %u", i);
		cr_assert_eq(out[i].n, UDP_PEER_DROPS + 3 - i);
	}
	/* a pair that took a reused slot counts from 0, not from the evicted pair's count */
	udp_peer_drops_note(&d, host(200), UDP_DROP_SHORT, 1);
	cr_assert_eq(udp_peer_drops_merge(&d, 1, out, UDP_PEER_DROPS), UDP_PEER_DROPS);
	cr_assert_eq(out[UDP_PEER_DROPS - 1].addr_be, host(200));
	cr_assert_eq(out[UDP_PEER_DROPS - 1].n, 1);
}

Test(udp_peerdrop, merges_the_workers_tables)
{
	static struct udp_peer_drops d[3];
	struct udp_peer_drop out[UDP_PEER_DROPS];

	memset(d, 0, sizeof(d));
	udp_peer_drops_note(&d[0], be32("192.0.2.99"), UDP_DROP_UNKNOWN_SRC, 3);
	udp_peer_drops_note(&d[2], be32("192.0.2.99"), UDP_DROP_UNKNOWN_SRC, 4);
	udp_peer_drops_note(&d[1], be32("192.0.2.13"), UDP_DROP_PEER_V4ONLY, 6);
	cr_assert_eq(udp_peer_drops_merge(d, 3, out, UDP_PEER_DROPS), 2);
	cr_assert_eq(out[0].addr_be, be32("192.0.2.99"));
	cr_assert_eq(out[0].n, 7, "one entry for the pair, counts summed over workers");
	cr_assert_eq(out[1].addr_be, be32("192.0.2.13"));
	cr_assert_eq(out[1].reason, UDP_DROP_PEER_V4ONLY);
	cr_assert_eq(udp_peer_drops_merge(d, 2, out, UDP_PEER_DROPS), 2, "only ntabs tables");
	cr_assert_eq(out[0].n, 6);
	cr_assert_eq(udp_peer_drops_merge(NULL, 3, out, UDP_PEER_DROPS), 0);
	cr_assert_eq(udp_peer_drops_merge(d, 3, out, 0), 0);
}

static struct udp_peer_drops race_tab;
static atomic_bool race_stop;
static atomic_ulong race_writes;

/* The writer gives each of 40 addresses (more than the slots, so each new pair evicts one)
 * the count 1000 * its last byte, in a single note. */
static void *race_writer(void *arg)
{
	unsigned i = 0;

	(void)arg;
	while (!atomic_load(&race_stop)) {
		unsigned b = 1 + i++ % 40;

		udp_peer_drops_note(&race_tab, host(b), UDP_DROP_UNKNOWN_SRC, 1000 * b);
		atomic_fetch_add_explicit(&race_writes, 1, memory_order_relaxed);
	}
	return NULL;
}

Test(udp_peerdrop, a_reader_never_sees_a_count_of_another_pair)
{
	struct udp_peer_drop out[UDP_PEER_DROPS];
	pthread_t thr;
	size_t n, k, seen = 0;
	int round;

	memset(&race_tab, 0, sizeof(race_tab));
	atomic_store(&race_stop, false);
	atomic_store(&race_writes, 0);
	cr_assert_eq(pthread_create(&thr, NULL, race_writer, NULL), 0);
	/* until the writer has replaced slots many times while being read */
	for (round = 0; round < 2000 || atomic_load(&race_writes) < 200000; round++) {
		n = udp_peer_drops_merge(&race_tab, 1, out, UDP_PEER_DROPS);
		/* A pair evicted and noted again in another slot during one read may be counted
		 * in both (the read is no snapshot), but never with another pair's count. */
		for (k = 0; k < n; k++)
			cr_assert(out[k].n > 0 &&
			                  out[k].n % (1000 * (ntohl(out[k].addr_be) & 0xff)) == 0,
			          "round %d: %u packets under 192.0.2.%u", round,
			          (unsigned)out[k].n, ntohl(out[k].addr_be) & 0xff);
		seen += n;
	}
	atomic_store(&race_stop, true);
	pthread_join(thr, NULL);
	cr_log_info("%zu entries read in %d rounds", seen, round);
	/* at rest every slot holds one of the last pairs with its count */
	cr_assert_eq(udp_peer_drops_merge(&race_tab, 1, out, UDP_PEER_DROPS), UDP_PEER_DROPS);
	for (k = 0; k < UDP_PEER_DROPS; k++)
		cr_assert_eq(out[k].n, 1000 * (ntohl(out[k].addr_be) & 0xff));
}
