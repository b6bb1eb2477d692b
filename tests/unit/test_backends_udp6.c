/* The udp backend's IPv6 half: table, checks, hop limit, ICMPv6, the peer capability mark. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "backends/udp.h"
#include "backends/udp_pkt.h"
#include "backends/udp_table.h"

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

/* IPv6 + UDP header + @plen pattern bytes, next header 17 unless @nh. */
static size_t mk_ip6(uint8_t *b, const char *src, const char *dst, uint8_t nh, uint8_t hop,
                     size_t plen)
{
	size_t i;

	memset(b, 0, 40);
	b[0] = 0x60;
	b[4] = (uint8_t)(plen >> 8);
	b[5] = (uint8_t)plen;
	b[6] = nh;
	b[7] = hop;
	cr_assert_eq(inet_pton(AF_INET6, src, b + 8), 1);
	cr_assert_eq(inet_pton(AF_INET6, dst, b + 24), 1);
	for (i = 0; i < plen; i++)
		b[40 + i] = (uint8_t)(i * 5 + 1);
	return 40 + plen;
}

/* h1 (own 198.18.1.0/24, 2001:db8:100:1::/64); h2 takes IPv6; h3 is IPv4-only; h4 no IPv6. */
static struct udp_table *mk_table(void)
{
	struct udp_peer peers[] = {
		{ .subnet = pfx("198.18.2.0/24"),
		  .public_ip = addr("192.0.2.12"),
		  .has_ipv6 = true,
		  .ipv6_ok = true,
		  .subnet6 = pfx("2001:db8:100:2::/64") },
		{ .subnet = pfx("198.18.3.0/24"),
		  .public_ip = addr("192.0.2.13"),
		  .has_ipv6 = true,
		  .ipv6_ok = false,
		  .subnet6 = pfx("2001:db8:100:3::/64") },
		{ .subnet = pfx("198.18.4.0/24"), .public_ip = addr("192.0.2.14") },
		/* IPv6 subnets that get no route: outside, own, overlapping h2. */
		{ .subnet = pfx("198.18.5.0/24"),
		  .public_ip = addr("192.0.2.15"),
		  .has_ipv6 = true,
		  .ipv6_ok = true,
		  .subnet6 = pfx("2001:db8:200::/64") },
		{ .subnet = pfx("198.18.6.0/24"),
		  .public_ip = addr("192.0.2.16"),
		  .has_ipv6 = true,
		  .ipv6_ok = true,
		  .subnet6 = pfx("2001:db8:100:1::/64") },
		{ .subnet = pfx("198.18.7.0/24"),
		  .public_ip = addr("192.0.2.17"),
		  .has_ipv6 = true,
		  .ipv6_ok = true,
		  .subnet6 = pfx("2001:db8:100:2:8000::/65") },
	};
	struct ipam_prefix net = pfx("198.18.0.0/16"), own = pfx("198.18.1.0/24");
	struct ipam_prefix net6 = pfx("2001:db8:100::/48"), own6 = pfx("2001:db8:100:1::/64");
	struct udp_table *t = udp_table_new_ds(&net, &own, &net6, &own6, peers, 6);

	cr_assert_not_null(t);
	return t;
}

static const uint8_t *a6(const char *s)
{
	static uint8_t b[4][16];
	static int k;

	k = (k + 1) % 4;
	cr_assert_eq(inet_pton(AF_INET6, s, b[k]), 1);
	return b[k];
}

Test(udp_table6, routes_only_valid_ipv6_subnets_and_marks_ipv4_only_peers)
{
	struct udp_table *t = mk_table();
	const struct udp_route6 *r;

	cr_assert(t->has_net6);
	cr_assert_eq(t->nroutes6, 2);
	cr_assert_eq(t->nroutes, 6);
	cr_assert_eq(t->skipped, 3);
	r = udp_table_lookup6(t, a6("2001:db8:100:2::99"));
	cr_assert_not_null(r);
	cr_assert_eq(r->peer_be, be32("192.0.2.12"));
	cr_assert(r->ipv6_ok);
	r = udp_table_lookup6(t, a6("2001:db8:100:3:ffff:ffff:ffff:ffff"));
	cr_assert_not_null(r);
	cr_assert_not(r->ipv6_ok, "an IPv4-only peer's route is marked");
	cr_assert_eq(r->peer_be, be32("192.0.2.13"), "with the PublicIP, for the per-peer drops");
	cr_assert_null(udp_table_lookup6(t, a6("2001:db8:100:4::1")));
	cr_assert_null(udp_table_lookup6(t, a6("2001:db8:100:1::2")));
	cr_assert_null(udp_table_lookup6(t, a6("2001:db8:200::1")));
	cr_assert_null(udp_table_lookup6(t, a6("::")));
	cr_assert_null(udp_table_lookup6(t, a6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
	udp_table_free(t);
}

Test(udp_table6, ipv6_off_ignores_the_ipv6_halves)
{
	struct udp_peer p = { .subnet = pfx("198.18.2.0/24"),
		              .public_ip = addr("192.0.2.12"),
		              .has_ipv6 = true,
		              .ipv6_ok = true,
		              .subnet6 = pfx("2001:db8:100:2::/64") };
	struct ipam_prefix net = pfx("198.18.0.0/16"), bad = pfx("198.19.0.0/16");
	struct udp_table *t = udp_table_new(&net, NULL, &p, 1);

	cr_assert_not_null(t);
	cr_assert_not(t->has_net6);
	cr_assert_eq(t->nroutes6, 0);
	cr_assert_null(udp_table_lookup6(t, a6("2001:db8:100:2::1")));
	udp_table_free(t);
	cr_assert_null(udp_table_new_ds(&net, NULL, &bad, NULL, &p, 1), "IPv4 as the IPv6 Network");
}

Test(udp_pkt6, tun_packets_by_destination)
{
	struct udp_table *t = mk_table();
	uint8_t b[200];
	uint32_t peer = 0;
	size_t len, tot = 0;

	len = mk_ip6(b, "2001:db8:100:1::2", "2001:db8:100:2::2", 17, 64, 30);
	cr_assert_eq(udp_classify_any_from_tun(b, len + 7, t, &peer, &tot), UDP_FORWARD);
	cr_assert_eq(peer, be32("192.0.2.12"));
	cr_assert_eq(tot, len, "trailing bytes are not part of the packet");
	len = mk_ip6(b, "2001:db8:100:1::2", "2001:db8:100:3::2", 17, 64, 30);
	cr_assert_eq(udp_classify_any_from_tun(b, len, t, &peer, &tot), UDP_DROP_PEER_V4ONLY);
	cr_assert_eq(peer, be32("192.0.2.13"), "the IPv4-only peer the packet was for");
	len = mk_ip6(b, "2001:db8:100:1::2", "2001:db8:100:9::2", 17, 64, 30);
	cr_assert_eq(udp_classify_any_from_tun(b, len, t, &peer, &tot), UDP_DROP_NO_ROUTE);
	cr_assert_eq(tot, len);
	len = mk_ip6(b, "2001:db8:100:1::2", "2001:db8:100:2::2", 17, 1, 30);
	cr_assert_eq(udp_classify_any_from_tun(b, len, t, &peer, &tot), UDP_DROP_TTL);
	len = mk_ip6(b, "2001:db8:100:1::2", "2001:db8:100:2::2", 17, 64, 30);
	cr_assert_eq(udp_classify_any_from_tun(b, len - 1, t, &peer, &tot), UDP_DROP_BAD_TOTLEN);
	cr_assert_eq(udp_classify_any_from_tun(b, 39, t, &peer, &tot), UDP_DROP_SHORT);
	b[4] = b[5] = 0; /* jumbogram */
	cr_assert_eq(udp_classify_any_from_tun(b, len, t, &peer, &tot), UDP_DROP_BAD_TOTLEN);
	cr_assert_eq(udp_classify_any_from_tun(b, len, NULL, &peer, &tot), UDP_DROP_NO_TABLE);
	udp_table_free(t);
	/* IPv6 off: an IPv6 packet is "not IPv4". */
	{
		struct ipam_prefix net = pfx("198.18.0.0/16");
		struct udp_table *t4 = udp_table_new(&net, NULL, NULL, 0);

		len = mk_ip6(b, "2001:db8:100:1::2", "2001:db8:100:2::2", 17, 64, 30);
		cr_assert_eq(udp_classify_any_from_tun(b, len, t4, &peer, &tot), UDP_DROP_NOT_IPV4);
		udp_table_free(t4);
	}
}

Test(udp_pkt6, wire_packets_checked)
{
	struct udp_table *t = mk_table();
	uint8_t b[200];
	size_t len, tot = 0;
	uint32_t h2 = be32("192.0.2.12");

	len = mk_ip6(b, "2001:db8:100:2::2", "2001:db8:100:1::2", 6, 64, 20);
	cr_assert_eq(udp_classify_from_wire(b, len, t, h2, &tot), UDP_FORWARD);
	cr_assert_eq(tot, len);
	cr_assert_eq(udp_classify_from_wire(b, len, t, be32("192.0.2.99"), &tot),
	             UDP_DROP_UNKNOWN_SRC);
	len = mk_ip6(b, "2001:db8:100:2::2", "2001:db8:100:3::2", 6, 64, 20);
	cr_assert_eq(udp_classify_from_wire(b, len, t, h2, &tot), UDP_DROP_DST_OUTSIDE);
	len = mk_ip6(b, "2001:db8:100:2::2", "2001:db8:300::2", 6, 64, 20);
	cr_assert_eq(udp_classify_from_wire(b, len, t, h2, &tot), UDP_DROP_DST_OUTSIDE);
	len = mk_ip6(b, "2001:db8:100:2::2", "2001:db8:100:1::2", 6, 1, 20);
	cr_assert_eq(udp_classify_from_wire(b, len, t, h2, &tot), UDP_DROP_TTL);
	udp_table_free(t);
}

Test(udp_pkt6, hop_limit_decrement)
{
	uint8_t b[100];

	mk_ip6(b, "2001:db8:100:2::2", "2001:db8:100:1::2", 17, 2, 10);
	cr_assert(udp_hop_decrement(b));
	cr_assert_eq(b[7], 1);
	cr_assert_not(udp_hop_decrement(b));
	cr_assert_eq(b[7], 1, "unchanged when it would reach 0");
}

/* Reference: 16-bit big-endian sum with the IPv6 pseudo-header. */
static bool icmp6_csum_valid(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	size_t i;

	for (i = 8; i < 40; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	s += (uint32_t)(n - 40) + 58;
	for (i = 40; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s == 0xffff;
}

Test(udp_pkt6, icmp6_unreachable_is_valid_quotes_and_fits_the_minimum_mtu)
{
	uint8_t pkt[1500], out[UDP_ICMP6_MAX];
	size_t len, n;

	len = mk_ip6(pkt, "2001:db8:100:1::2", "2001:db8:100:9::9", 17, 64, 23);
	n = udp_icmp6_unreach(pkt, len, out);
	cr_assert_eq(n, 40 + 8 + len);
	cr_assert_eq(out[0] >> 4, 6);
	cr_assert_eq(out[6], 58);
	cr_assert_eq(out[40], 1);
	cr_assert_eq(out[41], 0);
	cr_assert_eq(memcmp(out + 8, pkt + 24, 16), 0, "from the unreachable destination");
	cr_assert_eq(memcmp(out + 24, pkt + 8, 16), 0, "to the sender");
	cr_assert_eq(memcmp(out + 48, pkt, len), 0, "quotes the packet");
	cr_assert(icmp6_csum_valid(out, n));
	len = mk_ip6(pkt, "2001:db8:100:1::2", "2001:db8:100:9::9", 17, 64, 1400);
	n = udp_icmp6_unreach(pkt, len, out);
	cr_assert_eq(n, UDP_ICMP6_MAX);
	cr_assert(icmp6_csum_valid(out, n));
	/* None due: an ICMPv6 error, multicast, unspecified source, a later fragment. */
	len = mk_ip6(pkt, "2001:db8:100:1::2", "2001:db8:100:9::9", 58, 64, 8);
	pkt[40] = 1;
	cr_assert_eq(udp_icmp6_unreach(pkt, len, out), 0);
	pkt[40] = 128; /* echo request: answered */
	cr_assert_gt(udp_icmp6_unreach(pkt, len, out), 0);
	len = mk_ip6(pkt, "2001:db8:100:1::2", "ff02::1", 17, 64, 8);
	cr_assert_eq(udp_icmp6_unreach(pkt, len, out), 0);
	len = mk_ip6(pkt, "::", "2001:db8:100:9::9", 17, 64, 8);
	cr_assert_eq(udp_icmp6_unreach(pkt, len, out), 0);
	len = mk_ip6(pkt, "2001:db8:100:1::2", "2001:db8:100:9::9", 44, 64, 16);
	pkt[42] = 0x01; /* fragment offset 32 */
	cr_assert_eq(udp_icmp6_unreach(pkt, len, out), 0);
	pkt[42] = 0;
	pkt[43] = 1; /* first fragment (M set): answered */
	cr_assert_gt(udp_icmp6_unreach(pkt, len, out), 0);
	cr_assert_eq(udp_icmp6_unreach(pkt, 39, out), 0);
}

Test(udp_lease6, takes_ipv6_needs_an_ipv6_subnet_and_backend_v6_data)
{
	struct lease l = { 0 };

	cr_assert_not(udp_lease_takes_ipv6(NULL));
	cr_assert_eq(lease_key_parse("198.18.2.0-24&2001:db8:100:2::-64", &l), 0);
	{
		const char *v = "{\"PublicIP\":\"192.0.2.12\",\"PublicIPv6\":null}";

		cr_assert_eq(lease_attrs_parse(v, strlen(v), &l.attrs, NULL, 0), 0);
	}
	cr_assert_not(udp_lease_takes_ipv6(&l), "flanneld's udp lease");
	lease_attrs_clear(&l.attrs);
	{
		const char *v = "{\"PublicIP\":\"192.0.2.12\",\"PublicIPv6\":null,"
				"\"BackendV6Data\":{\"Port\":8285}}";

		cr_assert_eq(lease_attrs_parse(v, strlen(v), &l.attrs, NULL, 0), 0);
	}
	cr_assert(udp_lease_takes_ipv6(&l), "twill's udp lease with IPv6");
	l.has_ipv6 = false;
	cr_assert_not(udp_lease_takes_ipv6(&l), "no IPv6 subnet in the key");
	lease_clear(&l);
}

Test(udp_stats6, format_names_the_new_counters)
{
	struct udp_stats s = { 0 };
	char buf[8192];

	s.table_routes6 = 3;
	s.peers_ipv4_only = 2;
	s.drop_tun[UDP_DROP_PEER_V4ONLY] = 9;
	cr_assert_lt(udp_stats_format(&s, buf, sizeof(buf)), sizeof(buf));
	cr_assert_not_null(strstr(buf, "twill_udp_table_routes6 3\n"));
	cr_assert_not_null(strstr(buf, "twill_udp_peers_ipv4_only 2\n"));
	cr_assert_not_null(
		strstr(buf, "twill_udp_drops_total{dir=\"tun\",reason=\"peer_ipv4_only\"} 9\n"));
}

/* IPv6/TCP with 12 bytes of options and @plen payload; valid TCP checksum. */
static size_t mk_tcp6(uint8_t *b, size_t plen, uint32_t seq, uint8_t flags)
{
	size_t i, thl = 32, len;
	uint8_t *t = b + 40;

	len = mk_ip6(b, "2001:db8:100:1::2", "2001:db8:100:2::3", 6, 64, thl + plen);
	memset(t, 0, thl);
	t[0] = 0x9c;
	t[1] = 0x40;
	t[2] = 0x14;
	t[3] = 0x51;
	for (i = 0; i < 4; i++)
		t[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
	t[8] = 0xab;
	t[12] = (uint8_t)((thl / 4) << 4);
	t[13] = flags;
	t[14] = 1;
	t[20] = 1;
	t[21] = 1;
	t[22] = 8;
	t[23] = 10;
	t[27] = 7;
	for (i = 0; i < plen; i++)
		t[thl + i] = (uint8_t)(i * 13 + 5);
	cr_assert(udp_csum_complete(b, len, 40, 16));
	return len;
}

static bool tcp6_csum_valid(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	size_t i;

	for (i = 8; i < 40; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	s += (uint32_t)(n - 40) + 6;
	for (i = 40; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s == 0xffff;
}

Test(udp_pkt6, gso_segments_and_gro_merges_them_back)
{
	static uint8_t b[70000], segs[64][1600], merged[70000];
	static struct udp_gso_out o;
	struct virtio_net_hdr vh = { .gso_type = VIRTIO_NET_HDR_GSO_TCPV6, .gso_size = 1400 };
	const uint8_t *pk[64];
	size_t lens[64], len, i, n, off, hl = 72;
	struct udp_gro_run run;

	/* (mk_tcp6's checksum lacks the pseudo-header: segmentation recomputes it anyway.) */
	len = mk_tcp6(b, 20000, 0xfffff000u, 0x18);
	cr_assert_eq(udp_gso_segment(b, len, &vh, 1472, 0, &o), UDP_FORWARD);
	n = o.n;
	cr_assert_eq(n, 15);
	cr_assert_eq(o.total, 15);
	for (i = 0, off = 0; i < n; i++) {
		size_t sl = o.segs[i].hdr_len + o.segs[i].pay_len;

		memcpy(segs[i], o.hdrs[i], o.segs[i].hdr_len);
		memcpy(segs[i] + o.segs[i].hdr_len, b + o.segs[i].pay_off, o.segs[i].pay_len);
		cr_assert_leq(sl, 1472);
		cr_assert_eq((size_t)(segs[i][4] << 8 | segs[i][5]), sl - 40, "payload length");
		cr_assert(tcp6_csum_valid(segs[i], sl), "segment %zu checksum", i);
		cr_assert_eq(segs[i][53] & 0x08, i == n - 1 ? 0x08 : 0, "PSH on the last only");
		pk[i] = segs[i];
		lens[i] = sl;
		off += o.segs[i].pay_len;
	}
	cr_assert_eq(off, 20000);
	udp_gro_run(pk, lens, n, &run);
	cr_assert_eq(run.count, n);
	cr_assert_eq(run.total_len, len);
	cr_assert_eq(run.vh.gso_type, VIRTIO_NET_HDR_GSO_TCPV6);
	cr_assert_eq(run.vh.gso_size, 1400);
	cr_assert_eq(run.vh.csum_start, 40);
	cr_assert_eq(run.vh.csum_offset, 16);
	cr_assert_eq(run.hdr_len, hl);
	memcpy(merged, run.hdr, hl);
	for (i = 0, off = hl; i < n; i++) {
		memcpy(merged + off, pk[i] + hl, lens[i] - hl);
		off += lens[i] - hl;
	}
	cr_assert_eq(off, len);
	cr_assert(udp_csum_complete(merged, off, 40, 16));
	cr_assert(tcp6_csum_valid(merged, off), "completed checksum of the merged packet");
	cr_assert_eq(memcmp(merged, b, 56), 0, "headers up to the TCP checksum");
	cr_assert_eq(memcmp(merged + 58, b + 58, len - 58), 0, "the rest is the original");
	/* A bad checksum or another hop limit ends the run. */
	segs[3][100] ^= 0xff;
	udp_gro_run(pk, lens, n, &run);
	cr_assert_eq(run.count, 3);
	segs[3][100] ^= 0xff;
	segs[5][7] = 9;
	udp_gro_run(pk, lens, n, &run);
	cr_assert_eq(run.count, 5);
	/* Inconsistent input is refused. */
	cr_assert_eq(udp_gso_segment(b, len + 1, &vh, 1472, 0, &o), UDP_DROP_BAD_GSO);
	b[6] = 17;
	cr_assert_eq(udp_gso_segment(b, len, &vh, 1472, 0, &o), UDP_DROP_BAD_GSO);
}
