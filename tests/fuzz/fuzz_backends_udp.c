/*
 * The udp backend's packet functions on arbitrary bytes: datagrams from the wire
 * (classification, TTL, coalescing), packets from the TUN (classification, ICMP),
 * GSO packets with arbitrary virtio-net headers (segmentation), partial checksums.
 * Byte 0 picks the path; invariants are checked with abort().
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "backends/udp_pkt.h"
#include "backends/udp_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct udp_table *table(void)
{
	static struct udp_table *t;

	if (!t) {
		struct udp_peer peers[3] = { 0 };
		struct ipam_prefix net, own, net6, own6;
		const char *subs[3] = { "198.18.2.0/24", "198.18.3.0/24", "198.18.128.0/17" };
		const char *subs6[3] = { "2001:db8:100:2::/64", "2001:db8:100:3::/64",
			                 "2001:db8:100:8000::/49" };

		/* Dual-stack: peer 0 and 2 take IPv6, peer 1 is IPv4-only. */
		for (int i = 0; i < 3; i++) {
			ipam_prefix_parse(subs[i], &peers[i].subnet);
			ipam_addr_parse("192.0.2.12", &peers[i].public_ip);
			peers[i].public_ip.bytes[3] = (uint8_t)(12 + i);
			ipam_prefix_parse(subs6[i], &peers[i].subnet6);
			peers[i].has_ipv6 = true;
			peers[i].ipv6_ok = i != 1;
		}
		ipam_prefix_parse("198.18.0.0/16", &net);
		ipam_prefix_parse("198.18.1.0/24", &own);
		ipam_prefix_parse("2001:db8:100::/48", &net6);
		ipam_prefix_parse("2001:db8:100:1::/64", &own6);
		t = udp_table_new_ds(&net, &own, &net6, &own6, peers, 3);
		if (!t)
			abort();
	}
	return t;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void check_ip_csum(const uint8_t *p)
{
	if (p[0] >> 4 == 4 && !udp_csum_ok(p, (size_t)(p[0] & 15) * 4))
		abort();
}

/* An ICMPv6 message of @n bytes at @out: consistent length, valid checksum. */
static void check_icmp6(const uint8_t *out, size_t n)
{
	uint64_t sum;

	if (n < 48 || n > UDP_ICMP6_MAX || out[0] >> 4 != 6 || rd16(out + 4) != n - 40 ||
	    out[6] != 58 || out[40] != 1)
		abort();
	sum = udp_csum_add(0, out + 8, 32);
	sum += htonl((uint32_t)(n - 40));
	sum += htonl(58);
	if (udp_csum_fold(udp_csum_add(sum, out + 40, n - 40)) != 0)
		abort();
}

static void from_wire(uint8_t *buf, size_t len)
{
	const uint8_t *pkts[64];
	size_t lens[64], n = 0, off, gso;
	uint32_t src = htonl(0xc0000200u | (len ? buf[0] % 16 : 0));

	if (len < 2)
		return;
	gso = (size_t)buf[1] * 8 + 20;
	buf += 2;
	len -= 2;
	for (off = 0; off < len && n < 64; off += gso) {
		size_t clen = len - off < gso ? len - off : gso, tot = 0;

		if (udp_classify_from_wire(buf + off, clen, table(), src, &tot) != UDP_FORWARD)
			continue;
		if (tot > clen || tot < 20 || (buf[off] >> 4 == 6 && tot < 40))
			abort();
		if (!udp_hop_decrement(buf + off))
			abort(); /* classification already refused TTL/hop limit <= 1 */
		check_ip_csum(buf + off);
		pkts[n] = buf + off;
		lens[n] = tot;
		n++;
	}
	for (off = 0; off < n;) {
		struct udp_gro_run run;

		udp_gro_run(pkts + off, lens + off, n - off, &run);
		if (run.count < 1 || run.count > n - off)
			abort();
		if (run.count > 1) {
			size_t total = run.hdr_len;

			for (size_t k = 0; k < run.count; k++)
				total += lens[off + k] - run.hdr_len;
			if (total != run.total_len || total > 65535 || rd16(run.hdr + 2) != total)
				abort();
			check_ip_csum(run.hdr);
		}
		off += run.count;
	}
}

static void from_tun(const uint8_t *buf, size_t len)
{
	uint8_t out[UDP_ICMP6_MAX];
	uint32_t peer = 0;
	size_t tot = 0, n;
	enum udp_verdict v = udp_classify_any_from_tun(buf, len, table(), &peer, &tot);

	if (v == UDP_FORWARD && (!peer || tot > len))
		abort();
	if ((v == UDP_DROP_NO_ROUTE || v == UDP_DROP_PEER_V4ONLY) && buf[0] >> 4 == 6) {
		n = udp_icmp6_unreach(buf, tot, out);
		if (n)
			check_icmp6(out, n);
		return;
	}
	if (v == UDP_DROP_PEER_V4ONLY)
		abort(); /* IPv4 never has that verdict */
	if (v == UDP_DROP_NO_ROUTE) {
		n = udp_icmp_net_unreach(buf, tot, out);
		if (n > UDP_ICMP_MAX || (n && (n < 28 || rd16(out + 2) != n)))
			abort();
		if (n) {
			check_ip_csum(out);
			if (!udp_csum_ok(out + 20, n - 20))
				abort();
		}
	}
}

static void gso(const uint8_t *buf, size_t len)
{
	static struct udp_gso_out o;
	struct virtio_net_hdr vh;
	unsigned mtu;
	size_t first = 0, segs = 0;

	if (len < sizeof(vh) + 2)
		return;
	memcpy(&vh, buf, sizeof(vh));
	mtu = 68u + (unsigned)rd16(buf + sizeof(vh)) % 9000u;
	buf += sizeof(vh) + 2;
	len -= sizeof(vh) + 2;
	do {
		if (udp_gso_segment(buf, len, &vh, mtu, first, &o) != UDP_FORWARD)
			return;
		for (size_t i = 0; i < o.n; i++) {
			const struct udp_seg *s = &o.segs[i];
			const uint8_t *h = o.hdrs[i];

			if (s->hdr_len + s->pay_len > mtu || s->pay_off + s->pay_len > len)
				abort();
			if (h[0] >> 4 == 6) { /* GSO_TCPV6: payload length, no header checksum */
				if (s->hdr_len < 40 || rd16(h + 4) != s->hdr_len + s->pay_len - 40)
					abort();
				continue;
			}
			if (h[0] >> 4 != 4 || rd16(h + 2) != s->hdr_len + s->pay_len)
				abort();
			check_ip_csum(h);
		}
		segs += o.n;
		first += o.n;
		if (o.n == 0 && first < o.total)
			abort();
	} while (first < o.total);
	if (segs != o.total)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;

	if (size < 1)
		return 0;
	buf = malloc(size);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	switch (data[0] % 4) {
	case 0:
		from_wire(buf, size - 1);
		break;
	case 1:
		from_tun(buf, size - 1);
		break;
	case 2:
		gso(buf, size - 1);
		break;
	default:
		if (size >= 5)
			udp_csum_complete(buf + 4, size - 5, rd16(buf), rd16(buf + 2));
		break;
	}
	free(buf);
	return 0;
}
