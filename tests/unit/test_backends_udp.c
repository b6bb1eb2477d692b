#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "backends/udp.h"
#include "backends/udp_pkt.h"
#include "backends/udp_table.h"
#include "lib/nl.h"

/* ---- helpers ---- */

static struct ipam_prefix pfx(const char *s)
{
	struct ipam_prefix p;

	cr_assert_eq(ipam_prefix_parse(s, &p), 0, "%s", s);
	return p;
}

static struct ipam_addr addr(const char *s)
{
	struct ipam_addr a;

	cr_assert_eq(ipam_addr_parse(s, &a), 0, "%s", s);
	return a;
}

static uint32_t be32(const char *s)
{
	struct in_addr a;

	cr_assert_eq(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A reference checksum: plain 16-bit big-endian sum (RFC 1071), no tricks. */
static uint16_t ref_sum(const uint8_t *p, size_t n, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static bool ip_csum_valid(const uint8_t *p)
{
	return ref_sum(p, (size_t)(p[0] & 15) * 4, 0) == 0xffff;
}

static bool l4_csum_valid(const uint8_t *ip)
{
	size_t ihl = (size_t)(ip[0] & 15) * 4, tot = get16(ip + 2);
	uint32_t s = 0;

	s += get16(ip + 12) + get16(ip + 14) + get16(ip + 16) + get16(ip + 18);
	s += ip[9];
	s += (uint32_t)(tot - ihl);
	return ref_sum(ip + ihl, tot - ihl, s) == 0xffff;
}

/* IPv4 header (no options) + @plen payload bytes of pattern; valid header checksum. */
static size_t mk_ip(uint8_t *b, const char *src, const char *dst, uint8_t proto, uint8_t ttl,
                    size_t plen)
{
	size_t i;
	uint16_t c;

	memset(b, 0, 20);
	b[0] = 0x45;
	put16(b + 2, (uint16_t)(20 + plen));
	put16(b + 4, 0x1234);
	b[8] = ttl;
	b[9] = proto;
	memcpy(b + 12, &(uint32_t){ be32(src) }, 4);
	memcpy(b + 16, &(uint32_t){ be32(dst) }, 4);
	c = udp_ipv4_hdr_csum(b, 20);
	memcpy(b + 10, &c, 2);
	for (i = 0; i < plen; i++)
		b[20 + i] = (uint8_t)(i * 7 + 3);
	return 20 + plen;
}

/* IPv4/TCP with 12 bytes of options (timestamps) and @plen payload; valid checksums. */
static size_t mk_tcp(uint8_t *b, size_t plen, uint32_t seq, uint8_t flags)
{
	size_t i, thl = 32, len = 20 + thl + plen;
	uint64_t sum;
	uint16_t c;

	mk_ip(b, "198.18.1.2", "198.18.2.3", 6, 64, thl + plen);
	b[6] = 0x40; /* DF */
	c = udp_ipv4_hdr_csum(b, 20);
	memcpy(b + 10, &c, 2);
	uint8_t *t = b + 20;
	memset(t, 0, thl);
	put16(t, 40000);
	put16(t + 2, 5201);
	put32(t + 4, seq);
	put32(t + 8, 0xabcdef01);
	t[12] = (uint8_t)((thl / 4) << 4);
	t[13] = flags;
	put16(t + 14, 501);
	t[20] = 1;
	t[21] = 1;
	t[22] = 8;
	t[23] = 10;
	put32(t + 24, 111);
	put32(t + 28, 222);
	for (i = 0; i < plen; i++)
		t[thl + i] = (uint8_t)(i * 13 + 5);
	sum = udp_pseudo_sum(b, 6, (uint32_t)(thl + plen));
	c = udp_csum_fold(udp_csum_add(sum, t, thl + plen));
	memcpy(t + 16, &c, 2);
	return len;
}

static struct udp_table *mk_table(void)
{
	struct udp_peer peers[] = {
		{ .subnet = pfx("198.18.2.0/24"), .public_ip = addr("192.0.2.12") },
		{ .subnet = pfx("198.18.3.0/24"), .public_ip = addr("192.0.2.13") },
		{ .subnet = pfx("198.18.9.0/24"), .public_ip = addr("192.0.2.12") },
	};
	struct ipam_prefix net = pfx("198.18.0.0/16"), own = pfx("198.18.1.0/24");
	struct udp_table *t = udp_table_new(&net, &own, peers, 3);

	cr_assert_not_null(t);
	return t;
}

/* ---- checksums ---- */

Test(udp_csum, matches_reference_for_all_lengths_and_offsets)
{
	uint8_t buf[300];
	size_t len, off;

	srand(1);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	for (off = 0; off < 4; off++)
		for (len = 0; len < 260; len++) {
			uint16_t mine = udp_csum_fold(udp_csum_add(0, buf + off, len));
			uint16_t ref = (uint16_t)~ref_sum(buf + off, len, 0);
			uint8_t b[2];

			memcpy(b, &mine, 2);
			cr_assert_eq(get16(b), ref, "off %zu len %zu", off, len);
		}
}

/* ---- table ---- */

Test(udp_table, lookup_finds_the_covering_lease_only)
{
	struct udp_table *t = mk_table();
	const struct udp_route *r;

	cr_assert_eq(t->nroutes, 3);
	cr_assert_eq(t->npeers, 2);
	r = udp_table_lookup(t, be32("198.18.2.0"));
	cr_assert_not_null(r);
	cr_assert_eq(r->peer_be, be32("192.0.2.12"));
	r = udp_table_lookup(t, be32("198.18.3.255"));
	cr_assert_not_null(r);
	cr_assert_eq(r->peer_be, be32("192.0.2.13"));
	cr_assert_null(udp_table_lookup(t, be32("198.18.4.0")));
	cr_assert_null(udp_table_lookup(t, be32("198.18.1.5")));
	cr_assert_null(udp_table_lookup(t, be32("198.18.1.255")));
	cr_assert_null(udp_table_lookup(t, be32("10.0.0.1")));
	cr_assert_null(udp_table_lookup(t, be32("255.255.255.255")));
	cr_assert_null(udp_table_lookup(t, be32("0.0.0.0")));
	cr_assert_not_null(udp_table_lookup(t, be32("198.18.9.77")));
	cr_assert(udp_table_is_peer(t, be32("192.0.2.12")));
	cr_assert(udp_table_is_peer(t, be32("192.0.2.13")));
	cr_assert_not(udp_table_is_peer(t, be32("192.0.2.14")));
	cr_assert_null(udp_table_lookup(NULL, be32("198.18.2.1")));
	cr_assert_not(udp_table_is_peer(NULL, be32("192.0.2.12")));
	udp_table_free(t);
}

Test(udp_table, skips_own_outside_overlapping_and_non_ipv4)
{
	struct udp_peer peers[] = {
		{ .subnet = pfx("198.18.1.0/24"), .public_ip = addr("192.0.2.11") }, /* own */
		{ .subnet = pfx("10.1.0.0/24"),
		  .public_ip = addr("192.0.2.14") }, /* outside the Network */
		{ .subnet = pfx("198.18.2.0/24"), .public_ip = addr("192.0.2.12") },
		{ .subnet = pfx("198.18.2.128/25"),
		  .public_ip = addr("192.0.2.15") },                             /* overlaps */
		{ .subnet = pfx("fc00::/64"), .public_ip = addr("192.0.2.16") }, /* not IPv4 */
		{ .subnet = pfx("198.18.5.0/24"),
		  .public_ip = addr("fc00::1") }, /* PublicIP not IPv4 */
	};
	struct ipam_prefix net = pfx("198.18.0.0/16"), own = pfx("198.18.1.0/24");
	struct udp_table *t = udp_table_new(&net, &own, peers, 6);

	cr_assert_not_null(t);
	cr_assert_eq(t->nroutes, 1);
	cr_assert_eq(t->skipped, 5);
	cr_assert_eq(udp_table_lookup(t, be32("198.18.2.200"))->peer_be, be32("192.0.2.12"));
	cr_assert_not(udp_table_is_peer(t, be32("192.0.2.15")));
	udp_table_free(t);
	cr_assert_null(udp_table_new(NULL, NULL, NULL, 0));
	t = udp_table_new(&net, NULL, NULL, 0);
	cr_assert_not_null(t);
	cr_assert_null(udp_table_lookup(t, be32("198.18.2.1")));
	udp_table_free(t);
}

Test(udp_table, matches_linear_scan_on_many_random_leases)
{
	enum { N = 3000 };
	struct udp_peer *peers = calloc(N, sizeof(*peers));
	struct ipam_prefix net = pfx("198.18.0.0/15");
	struct udp_table *t;
	size_t i, k;

	srand(7);
	/* Distinct /26 prefixes of 198.18.0.0/15 at random positions: 2048 of them. */
	for (i = 0; i < N; i++) {
		uint32_t a = (198u << 24 | 18u << 16) + ((uint32_t)rand() % 2048) * 64;
		uint32_t abe = htonl(a), pub = htonl(0xc0000200u | (uint32_t)(i % 200));

		peers[i].subnet.addr.family = AF_INET;
		memcpy(peers[i].subnet.addr.bytes, &abe, 4);
		peers[i].subnet.len = 26;
		peers[i].public_ip.family = AF_INET;
		memcpy(peers[i].public_ip.bytes, &pub, 4);
	}
	t = udp_table_new(&net, NULL, peers, N);
	cr_assert_not_null(t);
	for (k = 0; k < 20000; k++) {
		uint32_t d =
			(198u << 24 | 18u << 16) - 1000 + ((uint32_t)rand() % (1u << 17)) + 2000;
		const struct udp_route *r = udp_table_lookup(t, htonl(d));
		bool found = false;

		/* Reference: the first (after sorting: smallest index) lease covering d. */
		for (i = 0; i < t->nroutes; i++)
			if (t->routes[i].first <= d && d <= t->routes[i].last) {
				cr_assert_eq(r, &t->routes[i]);
				found = true;
			}
		if (!found)
			cr_assert_null(r);
	}
	for (i = 1; i < t->nroutes; i++)
		cr_assert_gt(t->routes[i].first, t->routes[i - 1].last);
	udp_table_free(t);
	free(peers);
}

Test(udp_rcu, old_table_freed_only_after_readers_pass)
{
	static struct udp_rcu r;
	struct ipam_prefix net = pfx("198.18.0.0/16");
	const struct udp_table *seen;

	udp_rcu_init(&r, 2);
	udp_rcu_publish(&r, udp_table_new(&net, NULL, NULL, 0));
	seen = udp_rcu_online(&r, 0);
	cr_assert_not_null(seen);
	udp_rcu_publish(&r, mk_table());
	/* Reader 0 may still use the first table. */
	cr_assert_eq(udp_rcu_reclaim(&r), 1);
	cr_assert_eq(seen->nroutes, 0);
	udp_rcu_offline(&r, 0);
	cr_assert_eq(udp_rcu_reclaim(&r), 0);
	/* Online again: it sees the new table and does not hold back a later retire. */
	seen = udp_rcu_online(&r, 1);
	cr_assert_eq(seen->nroutes, 3);
	udp_rcu_publish(&r, udp_table_new(&net, NULL, NULL, 0));
	cr_assert_eq(udp_rcu_reclaim(&r), 1);
	udp_rcu_offline(&r, 1);
	cr_assert_eq(udp_rcu_reclaim(&r), 0);
	udp_rcu_destroy(&r);
}

struct rcu_stress {
	struct udp_rcu *r;
	size_t idx;
	_Atomic bool stop;
	unsigned long lookups;
};

static void *rcu_reader(void *arg)
{
	struct rcu_stress *s = arg;

	while (!atomic_load(&s->stop)) {
		const struct udp_table *t = udp_rcu_online(s->r, s->idx);
		const struct udp_route *rt = udp_table_lookup(t, be32("198.18.2.7"));

		/* Every table published here has 198.18.2.0/24 -> 192.0.2.12. */
		if (!rt || rt->peer_be != be32("192.0.2.12"))
			abort();
		s->lookups++;
		udp_rcu_offline(s->r, s->idx);
	}
	return NULL;
}

Test(udp_rcu, concurrent_readers_never_see_freed_tables)
{
	static struct udp_rcu r;
	struct rcu_stress s[2];
	pthread_t th[2];
	int i;

	udp_rcu_init(&r, 2);
	udp_rcu_publish(&r, mk_table());
	for (i = 0; i < 2; i++) {
		s[i].r = &r;
		s[i].idx = (size_t)i;
		s[i].lookups = 0;
		atomic_init(&s[i].stop, false);
		cr_assert_eq(pthread_create(&th[i], NULL, rcu_reader, &s[i]), 0);
	}
	for (i = 0; i < 3000; i++)
		udp_rcu_publish(&r, mk_table());
	for (i = 0; i < 2; i++) {
		atomic_store(&s[i].stop, true);
		pthread_join(th[i], NULL);
	}
	cr_assert_eq(udp_rcu_reclaim(&r), 0);
	udp_rcu_destroy(&r);
}

/* ---- IPv4, TTL ---- */

Test(udp_pkt, ttl_decrement_keeps_checksum_valid)
{
	uint8_t b[64];
	int ttl, k;

	srand(3);
	for (k = 0; k < 2000; k++) {
		mk_ip(b, "198.18.1.2", "198.18.2.3", 17, 2, 8);
		put16(b + 4, (uint16_t)rand());
		b[1] = (uint8_t)rand();
		b[9] = (uint8_t)rand();
		ttl = 2 + rand() % 254;
		b[8] = (uint8_t)ttl;
		b[10] = b[11] = 0;
		uint16_t c = udp_ipv4_hdr_csum(b, 20);
		memcpy(b + 10, &c, 2);
		cr_assert(ip_csum_valid(b));
		cr_assert(udp_ttl_decrement(b));
		cr_assert_eq(b[8], ttl - 1);
		cr_assert(ip_csum_valid(b), "ttl %d", ttl);
	}
	/* Also across the 0xffff/0x0000 checksum boundary: try every checksum start. */
	for (k = 0; k < 65536; k += 1) {
		mk_ip(b, "198.18.1.2", "198.18.2.3", 17, 64, 8);
		put16(b + 4, (uint16_t)k);
		b[10] = b[11] = 0;
		uint16_t c = udp_ipv4_hdr_csum(b, 20);
		memcpy(b + 10, &c, 2);
		cr_assert(udp_ttl_decrement(b));
		cr_assert(ip_csum_valid(b), "id %d", k);
	}
	mk_ip(b, "198.18.1.2", "198.18.2.3", 17, 1, 8);
	cr_assert_not(udp_ttl_decrement(b));
	cr_assert_eq(b[8], 1);
	b[8] = 0;
	cr_assert_not(udp_ttl_decrement(b));
	cr_assert_eq(b[8], 0);
}

/* ---- classification ---- */

Test(udp_pkt, wire_datagrams_rejected_with_the_right_reason)
{
	struct udp_table *t = mk_table();
	uint32_t peer = be32("192.0.2.12"), stranger = be32("192.0.2.99");
	uint8_t b[200];
	size_t len, tot = 0;

	len = mk_ip(b, "198.18.2.3", "198.18.1.5", 17, 64, 30);
	cr_assert_eq(udp_classify_from_wire(b, len, t, peer, &tot), UDP_FORWARD);
	cr_assert_eq(tot, len);
	/* Trailing bytes beyond the total length are ignored. */
	cr_assert_eq(udp_classify_from_wire(b, len + 10, t, peer, &tot), UDP_FORWARD);
	cr_assert_eq(tot, len);
	cr_assert_eq(udp_classify_from_wire(b, len, NULL, peer, &tot), UDP_DROP_NO_TABLE);
	cr_assert_eq(udp_classify_from_wire(b, len, t, stranger, &tot), UDP_DROP_UNKNOWN_SRC);
	cr_assert_eq(udp_classify_from_wire(b, 19, t, peer, &tot), UDP_DROP_SHORT);
	cr_assert_eq(udp_classify_from_wire(b, 0, t, peer, &tot), UDP_DROP_SHORT);
	/* Lying total length. */
	cr_assert_eq(udp_classify_from_wire(b, len - 1, t, peer, &tot), UDP_DROP_BAD_TOTLEN);
	b[0] = 0x65;
	cr_assert_eq(udp_classify_from_wire(b, len, t, peer, &tot), UDP_DROP_NOT_IPV4);
	b[0] = 0x44;
	cr_assert_eq(udp_classify_from_wire(b, len, t, peer, &tot), UDP_DROP_BAD_HDRLEN);
	b[0] = 0x4f; /* 60-byte header in a 21-byte buffer */
	cr_assert_eq(udp_classify_from_wire(b, 21, t, peer, &tot), UDP_DROP_BAD_HDRLEN);
	b[0] = 0x45;
	put16(b + 2, 12);
	cr_assert_eq(udp_classify_from_wire(b, len, t, peer, &tot), UDP_DROP_BAD_TOTLEN);
	len = mk_ip(b, "198.18.2.3", "198.18.1.5", 17, 64, 30);
	b[10] ^= 1;
	cr_assert_eq(udp_classify_from_wire(b, len, t, peer, &tot), UDP_DROP_BAD_CSUM);
	len = mk_ip(b, "198.18.2.3", "10.1.2.3", 17, 64, 30);
	cr_assert_eq(udp_classify_from_wire(b, len, t, peer, &tot), UDP_DROP_DST_OUTSIDE);
	len = mk_ip(b, "198.18.2.3", "198.18.3.3", 17, 64, 30);
	cr_assert_eq(udp_classify_from_wire(b, len, t, peer, &tot), UDP_DROP_DST_OUTSIDE);
	len = mk_ip(b, "198.18.2.3", "198.18.1.5", 17, 1, 30);
	cr_assert_eq(udp_classify_from_wire(b, len, t, peer, &tot), UDP_DROP_TTL);
	udp_table_free(t);
	cr_assert_str_eq(udp_verdict_name(UDP_DROP_UNKNOWN_SRC), "unknown_src");
	cr_assert_str_eq(udp_verdict_name(UDP_VERDICT_MAX), "unknown");
}

Test(udp_pkt, tun_packets_routed_to_the_lease_public_ip)
{
	struct udp_table *t = mk_table();
	const struct udp_route *r = NULL;
	uint8_t b[200];
	size_t len, tot = 0;

	len = mk_ip(b, "198.18.1.5", "198.18.3.9", 1, 64, 30);
	cr_assert_eq(udp_classify_from_tun(b, len, t, &r, &tot), UDP_FORWARD);
	cr_assert_eq(r->peer_be, be32("192.0.2.13"));
	cr_assert_eq(tot, len);
	len = mk_ip(b, "198.18.1.5", "198.18.4.9", 1, 64, 30);
	cr_assert_eq(udp_classify_from_tun(b, len, t, &r, &tot), UDP_DROP_NO_ROUTE);
	len = mk_ip(b, "198.18.1.5", "198.18.3.9", 1, 1, 30);
	cr_assert_eq(udp_classify_from_tun(b, len, t, &r, &tot), UDP_DROP_TTL);
	cr_assert_eq(udp_classify_from_tun(b, 10, t, &r, &tot), UDP_DROP_SHORT);
	b[0] = 0x60;
	cr_assert_eq(udp_classify_from_tun(b, len, t, &r, &tot), UDP_DROP_NOT_IPV4);
	udp_table_free(t);
}

/* ---- ICMP ---- */

Test(udp_pkt, icmp_net_unreachable_is_valid_and_quotes_the_offender)
{
	uint8_t b[200], out[UDP_ICMP_MAX];
	size_t len, n;

	len = mk_ip(b, "198.18.1.5", "198.18.77.9", 17, 63, 40);
	n = udp_icmp_net_unreach(b, len, out);
	cr_assert_eq(n, 20 + 8 + 20 + 8);
	cr_assert_eq(out[0], 0x45);
	cr_assert_eq(get16(out + 2), n);
	cr_assert_eq(out[9], 1);
	cr_assert(ip_csum_valid(out));
	cr_assert_eq(memcmp(out + 12, b + 16, 4), 0);
	cr_assert_eq(memcmp(out + 16, b + 12, 4), 0);
	cr_assert_eq(out[20], 3);
	cr_assert_eq(out[21], 0);
	cr_assert_eq(ref_sum(out + 20, n - 20, 0), 0xffff);
	cr_assert_eq(memcmp(out + 28, b, 28), 0);

	/* Short offender: quote what there is. */
	len = mk_ip(b, "198.18.1.5", "198.18.77.9", 17, 63, 3);
	n = udp_icmp_net_unreach(b, len, out);
	cr_assert_eq(n, 28 + 23);
	cr_assert_eq(ref_sum(out + 20, n - 20, 0), 0xffff);

	/* Echo request: answered. */
	len = mk_ip(b, "198.18.1.5", "198.18.77.9", 1, 63, 16);
	b[20] = 8;
	cr_assert_gt(udp_icmp_net_unreach(b, len, out), 0);
	/* ICMP errors: never. */
	static const uint8_t errs[] = { 3, 4, 5, 11, 12 };
	for (size_t i = 0; i < sizeof(errs); i++) {
		b[20] = errs[i];
		cr_assert_eq(udp_icmp_net_unreach(b, len, out), 0, "type %u", errs[i]);
	}
	/* Non-first fragment: no; first fragment (MF, offset 0): yes. */
	len = mk_ip(b, "198.18.1.5", "198.18.77.9", 17, 63, 40);
	put16(b + 6, 0x0005);
	cr_assert_eq(udp_icmp_net_unreach(b, len, out), 0);
	put16(b + 6, 0x2000);
	cr_assert_gt(udp_icmp_net_unreach(b, len, out), 0);
	/* Multicast destination / zero source: no. */
	len = mk_ip(b, "198.18.1.5", "224.0.0.5", 17, 63, 40);
	cr_assert_eq(udp_icmp_net_unreach(b, len, out), 0);
	len = mk_ip(b, "0.0.0.0", "198.18.77.9", 17, 63, 40);
	cr_assert_eq(udp_icmp_net_unreach(b, len, out), 0);
	cr_assert_eq(udp_icmp_net_unreach(b, 12, out), 0);
}

/* ---- offloads ---- */

Test(udp_pkt, csum_complete_fills_partial_checksums)
{
	uint8_t b[2000];
	size_t len = mk_tcp(b, 1000, 1, 0x18);
	uint16_t c;

	/* Make it CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum. */
	c = (uint16_t)~udp_csum_fold(udp_pseudo_sum(b, 6, (uint32_t)(len - 20)));
	memcpy(b + 36, &c, 2);
	cr_assert_not(l4_csum_valid(b));
	cr_assert(udp_csum_complete(b, len, 20, 16));
	cr_assert(l4_csum_valid(b));
	cr_assert_not(udp_csum_complete(b, len, (uint16_t)len, 0));
	cr_assert_not(udp_csum_complete(b, len, 20, (uint16_t)(len - 21)));
	cr_assert_not(udp_csum_complete(b, len, 0xffff, 0xffff));
}

static void check_segments(const uint8_t *pkt, size_t len, const struct virtio_net_hdr *vh,
                           unsigned mtu, size_t want_segs)
{
	static struct udp_gso_out o;
	size_t first = 0, paysum = 0, hl = 20 + 32, idx = 0;
	uint32_t seq0 = get32(pkt + 24);
	uint8_t seg[70000];

	do {
		cr_assert_eq(udp_gso_segment(pkt, len, vh, mtu, first, &o), UDP_FORWARD);
		cr_assert_eq(o.total, want_segs);
		for (size_t i = 0; i < o.n; i++, idx++) {
			const struct udp_seg *s = &o.segs[i];
			size_t sl = s->hdr_len + s->pay_len;
			uint8_t fl;

			memcpy(seg, o.hdrs[i], s->hdr_len);
			memcpy(seg + s->hdr_len, pkt + s->pay_off, s->pay_len);
			cr_assert_leq(sl, mtu);
			cr_assert_eq(get16(seg + 2), sl);
			cr_assert(ip_csum_valid(seg), "seg %zu", idx);
			cr_assert(l4_csum_valid(seg), "seg %zu", idx);
			cr_assert_eq(get16(seg + 4), (uint16_t)(0x1234 + idx));
			cr_assert_eq(get32(seg + 24), seq0 + (uint32_t)paysum);
			cr_assert_eq(memcmp(seg + 20 + 20, pkt + 40, 12), 0); /* options kept */
			cr_assert_eq(memcmp(seg + hl, pkt + hl + paysum, s->pay_len), 0);
			fl = seg[33];
			cr_assert_eq(fl & 0x10, 0x10);
			if (idx == want_segs - 1) {
				cr_assert_eq(fl & 0x09, pkt[33] & 0x09, "FIN/PSH on the last");
			} else {
				cr_assert_eq(fl & 0x09, 0, "no FIN/PSH on segment %zu", idx);
				cr_assert_eq(s->pay_len, o.segs[0].pay_len, "equal sizes");
			}
			if (idx > 0)
				cr_assert_eq(fl & 0x80, 0, "CWR on the first only");
			else
				cr_assert_eq(fl & 0x80, pkt[33] & 0x80);
			paysum += s->pay_len;
		}
		first += o.n;
	} while (first < o.total);
	cr_assert_eq(paysum, len - hl);
}

Test(udp_pkt, gso_segmentation_produces_valid_tcp_segments)
{
	static uint8_t b[70000];
	struct virtio_net_hdr vh = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		                     .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
		                     .hdr_len = 52,
		                     .gso_size = 1400,
		                     .csum_start = 20,
		                     .csum_offset = 16 };
	size_t len;

	len = mk_tcp(b, 10000, 0xfffff000u, 0x80 | 0x10 | 0x08 | 0x01); /* CWR ACK PSH FIN */
	b[36] = b[37] = 0x55; /* garbage in the checksum field: recomputed anyway */
	check_segments(b, len, &vh, 1472, 8);
	/* The MTU is smaller than gso_size + headers: segments shrink to fit. */
	check_segments(b, len, &vh, 1000, (10000 + 947) / 948);
	/* Many segments: several calls. */
	vh.gso_size = 100;
	len = mk_tcp(b, 64000, 5, 0x18);
	check_segments(b, len, &vh, 1472, 640);
	/* Exactly one segment, and odd sizes. */
	vh.gso_size = 1333;
	len = mk_tcp(b, 1333, 5, 0x10);
	check_segments(b, len, &vh, 1500, 1);
	len = mk_tcp(b, 4001, 5, 0x10);
	check_segments(b, len, &vh, 1500, 4);
}

Test(udp_pkt, gso_rejects_inconsistent_packets)
{
	static uint8_t b[4000];
	static struct udp_gso_out o;
	struct virtio_net_hdr vh = { .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .gso_size = 1000 };
	size_t len = mk_tcp(b, 3000, 5, 0x10);

	cr_assert_eq(udp_gso_segment(b, len, &vh, 1500, 0, &o), UDP_FORWARD);
	vh.gso_type = VIRTIO_NET_HDR_GSO_UDP;
	cr_assert_eq(udp_gso_segment(b, len, &vh, 1500, 0, &o), UDP_DROP_BAD_GSO);
	vh.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	vh.gso_size = 0;
	cr_assert_eq(udp_gso_segment(b, len, &vh, 1500, 0, &o), UDP_DROP_BAD_GSO);
	vh.gso_size = 1000;
	cr_assert_eq(udp_gso_segment(b, len, &vh, 40, 0, &o), UDP_DROP_BAD_GSO);
	cr_assert_eq(udp_gso_segment(b, len - 1, &vh, 1500, 0, &o), UDP_DROP_BAD_TOTLEN);
	cr_assert_eq(udp_gso_segment(b, len + 1, &vh, 1500, 0, &o), UDP_DROP_BAD_GSO);
	b[9] = 17;
	cr_assert_eq(udp_gso_segment(b, len, &vh, 1500, 0, &o), UDP_DROP_BAD_GSO);
	b[9] = 6;
	b[32] = 0x40; /* doff 4 */
	cr_assert_eq(udp_gso_segment(b, len, &vh, 1500, 0, &o), UDP_DROP_BAD_GSO);
	b[32] = 0xf0;
	cr_assert_eq(udp_gso_segment(b, 70, &vh, 1500, 0, &o), UDP_DROP_BAD_TOTLEN);
}

Test(udp_pkt, gro_merges_what_gso_split)
{
	static uint8_t b[70000], segs[64][1600];
	static struct udp_gso_out o;
	struct virtio_net_hdr vh = { .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .gso_size = 1400 };
	const uint8_t *pk[64];
	size_t lens[64], len, i, n;
	struct udp_gro_run run;
	uint8_t merged[70000];

	len = mk_tcp(b, 20000, 77, 0x18);
	cr_assert_eq(udp_gso_segment(b, len, &vh, 1472, 0, &o), UDP_FORWARD);
	n = o.n;
	cr_assert_eq(n, 15);
	for (i = 0; i < n; i++) {
		memcpy(segs[i], o.hdrs[i], o.segs[i].hdr_len);
		memcpy(segs[i] + o.segs[i].hdr_len, b + o.segs[i].pay_off, o.segs[i].pay_len);
		pk[i] = segs[i];
		lens[i] = o.segs[i].hdr_len + o.segs[i].pay_len;
	}
	udp_gro_run(pk, lens, n, &run);
	cr_assert_eq(run.count, n);
	cr_assert_eq(run.total_len, len);
	cr_assert_eq(run.vh.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	cr_assert_eq(run.vh.gso_size, 1400);
	cr_assert_eq(run.vh.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	cr_assert_eq(run.vh.csum_start, 20);
	cr_assert_eq(run.vh.csum_offset, 16);
	cr_assert_eq(run.hdr_len, 52);
	/* Reassemble: the merged packet, once its checksum is completed, is the original. */
	memcpy(merged, run.hdr, run.hdr_len);
	size_t off = run.hdr_len;
	for (i = 0; i < n; i++) {
		memcpy(merged + off, pk[i] + 52, lens[i] - 52);
		off += lens[i] - 52;
	}
	cr_assert_eq(off, len);
	cr_assert(ip_csum_valid(merged));
	cr_assert(udp_csum_complete(merged, off, 20, 16));
	cr_assert_eq(merged[33], 0x18);
	cr_assert_eq(memcmp(merged + 20, b + 20, 32), 0);
	cr_assert_eq(memcmp(merged + 52, b + 52, len - 52), 0);

	/* A gap in sequence numbers ends the run. */
	uint32_t s = get32(segs[5] + 24);
	put32(segs[5] + 24, s + 1);
	udp_gro_run(pk, lens, n, &run);
	cr_assert_eq(run.count, 5);
	put32(segs[5] + 24, s);
	/* A bad TCP checksum ends it too. */
	segs[3][100] ^= 0xff;
	udp_gro_run(pk, lens, n, &run);
	cr_assert_eq(run.count, 3);
	segs[3][100] ^= 0xff;
	/* A packet with PSH first: nothing to merge. */
	udp_gro_run(pk + 14, lens + 14, 1, &run);
	cr_assert_eq(run.count, 1);
	segs[0][33] = 0x18;
	udp_gro_run(pk, lens, n, &run);
	cr_assert_eq(run.count, 1);
}

/* ---- stats ---- */

Test(udp_stats, format_names_every_reason)
{
	struct udp_stats s = { 0 };
	char buf[8192];
	size_t n;

	s.tx_packets = 5;
	s.drop_wire[UDP_DROP_UNKNOWN_SRC] = 7;
	n = udp_stats_format(&s, buf, sizeof(buf));
	cr_assert_lt(n, sizeof(buf));
	cr_assert_not_null(strstr(buf, "twill_udp_tx_packets_total 5\n"));
	cr_assert_not_null(
		strstr(buf, "twill_udp_drops_total{dir=\"wire\",reason=\"unknown_src\"} 7\n"));
	cr_assert_not_null(strstr(buf, "twill_udp_drops_total{dir=\"tun\",reason=\"ttl\"} 0\n"));
	cr_assert_eq(udp_stats_format(&s, buf, 10), n);
	cr_assert_eq(strlen(buf), 9);
}
