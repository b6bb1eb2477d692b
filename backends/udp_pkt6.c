/*
 * IPv6 packet functions of the udp backend (same rules as udp_pkt.c: pure, no I/O,
 * any bytes accepted). IPv6 travels only between twill nodes, inside the same
 * IPv4 datagrams as IPv4 (docs/compat.md, "udp and IPv6").
 */
#include <string.h>

#include "backends/udp_pkt.h"

#define IPV6_HDR      40
#define NH_FRAGMENT   44
#define NH_ICMPV6     58
#define ICMP6_UNREACH 1

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

enum udp_verdict udp_ipv6_check(const uint8_t *buf, size_t len, size_t *ret_len)
{
	size_t plen;

	if (len < IPV6_HDR)
		return UDP_DROP_SHORT;
	if (buf[0] >> 4 != 6)
		return UDP_DROP_NOT_IPV4;
	plen = rd16(buf + 4);
	/* Payload length 0 is a jumbogram (RFC 2675): never on a 1500-byte path. */
	if (plen == 0 || IPV6_HDR + plen > len)
		return UDP_DROP_BAD_TOTLEN;
	*ret_len = IPV6_HDR + plen;
	return UDP_FORWARD;
}

static bool in_range(udp_u128 a, udp_u128 first, udp_u128 last)
{
	return a >= first && a <= last;
}

enum udp_verdict udp_classify6_from_wire(const uint8_t *buf, size_t len, const struct udp_table *t,
                                         size_t *ret_len)
{
	enum udp_verdict v;
	udp_u128 dst;
	size_t tot;

	if (!t->has_net6)
		return UDP_DROP_NOT_IPV4;
	v = udp_ipv6_check(buf, len, &tot);
	if (v != UDP_FORWARD)
		return v;
	dst = udp_u128_load(buf + 24);
	if (!in_range(dst, t->net6_first, t->net6_last) ||
	    (t->has_own6 && !in_range(dst, t->own6_first, t->own6_last)))
		return UDP_DROP_DST_OUTSIDE;
	if (buf[7] <= 1)
		return UDP_DROP_TTL;
	*ret_len = tot;
	return UDP_FORWARD;
}

enum udp_verdict udp_classify6_from_tun(const uint8_t *buf, size_t len, const struct udp_table *t,
                                        uint32_t *ret_peer_be, size_t *ret_len)
{
	const struct udp_route6 *r;
	enum udp_verdict v;
	size_t tot;

	if (!t->has_net6)
		return UDP_DROP_NOT_IPV4;
	v = udp_ipv6_check(buf, len, &tot);
	if (v != UDP_FORWARD)
		return v;
	*ret_len = tot;
	r = udp_table_lookup6(t, buf + 24);
	if (!r)
		return UDP_DROP_NO_ROUTE;
	if (!r->ipv6_ok) {
		*ret_peer_be = r->peer_be; /* for the per-peer drop table */
		return UDP_DROP_PEER_V4ONLY;
	}
	if (buf[7] <= 1)
		return UDP_DROP_TTL;
	*ret_peer_be = r->peer_be;
	return UDP_FORWARD;
}

enum udp_verdict udp_classify_any_from_tun(const uint8_t *buf, size_t len,
                                           const struct udp_table *t, uint32_t *ret_peer_be,
                                           size_t *ret_len)
{
	const struct udp_route *r = NULL;
	enum udp_verdict v;

	if (!t)
		return UDP_DROP_NO_TABLE;
	if (len >= 1 && buf[0] >> 4 == 6)
		return udp_classify6_from_tun(buf, len, t, ret_peer_be, ret_len);
	v = udp_classify_from_tun(buf, len, t, &r, ret_len);
	if (v == UDP_FORWARD)
		*ret_peer_be = r->peer_be;
	return v;
}

bool udp_hop_decrement(uint8_t *pkt)
{
	if (pkt[0] >> 4 == 6) {
		if (pkt[7] <= 1)
			return false;
		pkt[7]--; /* no header checksum in IPv6 */
		return true;
	}
	return udp_ttl_decrement(pkt);
}

static bool no_icmp6_due(const uint8_t *pkt, size_t len)
{
	static const uint8_t unspec[16];

	if (pkt[8] == 0xff || pkt[24] == 0xff) /* multicast source or destination */
		return true;
	if (memcmp(pkt + 8, unspec, 16) == 0)
		return true;
	/* Never an error about an error (RFC 4443 2.4 (e)); nor about a later fragment. */
	if (pkt[6] == NH_ICMPV6 && (len <= IPV6_HDR || pkt[IPV6_HDR] < 128))
		return true;
	if (pkt[6] == NH_FRAGMENT && (len < IPV6_HDR + 8 || (rd16(pkt + IPV6_HDR + 2) & 0xfff8)))
		return true;
	return false;
}

size_t udp_icmp6_unreach(const uint8_t *pkt, size_t len, uint8_t *out)
{
	size_t quote, mlen;
	uint64_t sum;
	uint16_t c;

	if (len < IPV6_HDR || pkt[0] >> 4 != 6 || no_icmp6_due(pkt, len))
		return 0;
	/* As much of the offender as fits in the minimum MTU (RFC 4443 3.1). */
	quote = len < UDP_ICMP6_MAX - IPV6_HDR - 8 ? len : UDP_ICMP6_MAX - IPV6_HDR - 8;
	mlen = 8 + quote;
	memset(out, 0, IPV6_HDR + 8);
	out[0] = 0x60;
	wr16(out + 4, (uint16_t)mlen);
	out[6] = NH_ICMPV6;
	out[7] = 64;
	memcpy(out + 8, pkt + 24, 16); /* from the unreachable destination, as for IPv4 */
	memcpy(out + 24, pkt + 8, 16);
	out[IPV6_HDR] = ICMP6_UNREACH;
	out[IPV6_HDR + 1] = 0; /* no route to destination */
	memcpy(out + IPV6_HDR + 8, pkt, quote);
	/* Pseudo-header: addresses, upper-layer length, next header. */
	sum = udp_csum_add(0, out + 8, 32);
	sum += __builtin_bswap32((uint32_t)mlen);
	sum += __builtin_bswap32(NH_ICMPV6);
	sum = udp_csum_add(sum, out + IPV6_HDR, mlen);
	c = udp_csum_fold(sum);
	memcpy(out + IPV6_HDR + 2, &c, 2);
	return IPV6_HDR + mlen;
}

/* ---- TCP over IPv6: segmentation (TSO6 from the TUN) and coalescing ---- */

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Pseudo-header sum for TCP over IPv6 (RFC 8200 8.1). */
static uint64_t pseudo6_sum(const uint8_t *ip6, uint32_t l4len)
{
	uint64_t sum = udp_csum_add(0, ip6 + 8, 32);

	sum += __builtin_bswap32(l4len);
	sum += __builtin_bswap32(6);
	return sum;
}

enum udp_verdict udp_gso_segment6(const uint8_t *pkt, size_t len, const struct virtio_net_hdr *vh,
                                  unsigned mtu, size_t first, struct udp_gso_out *out)
{
	size_t tot, thl, hl, payload, mss, nseg, i, end;
	enum udp_verdict v;
	uint32_t seq0;

	out->total = out->n = 0;
	v = udp_ipv6_check(pkt, len, &tot);
	if (v != UDP_FORWARD)
		return v;
	/* TCP right after the fixed header: the kernel's TSO6 packets from a TUN are so. */
	if (tot != len || pkt[6] != 6 || len < IPV6_HDR + 20)
		return UDP_DROP_BAD_GSO;
	thl = (size_t)(pkt[IPV6_HDR + 12] >> 4) * 4;
	if (thl < 20 || IPV6_HDR + thl > len)
		return UDP_DROP_BAD_GSO;
	hl = IPV6_HDR + thl;
	payload = len - hl;
	if (!udp_gso_plan(hl, payload, vh->gso_size, mtu, first, out, &mss, &end))
		return UDP_DROP_BAD_GSO;
	nseg = out->total;
	seq0 = rd32(pkt + IPV6_HDR + 4);
	for (i = first; i < end; i++) {
		uint8_t *h = out->hdrs[i - first], *th = h + IPV6_HDR;
		struct udp_seg *s = &out->segs[i - first];
		size_t off = i * mss, plen = payload - off < mss ? payload - off : mss;

		memcpy(h, pkt, hl);
		wr16(h + 4, (uint16_t)(thl + plen));
		udp_gso_tcp_fill(th, thl, seq0, i, nseg, off,
		                 pseudo6_sum(h, (uint32_t)(thl + plen)), pkt + hl + off, plen, hl,
		                 s);
	}
	out->n = end - first;
	return UDP_FORWARD;
}

/* A plain IPv6 (no extension header) TCP data segment with ACK (maybe PSH), checksum valid. */
static bool gro6_eligible(const uint8_t *p, size_t l, size_t *ret_thl)
{
	size_t thl;
	uint8_t fl;

	if (l < IPV6_HDR + 20 || p[0] >> 4 != 6 || p[6] != 6 || (size_t)rd16(p + 4) + IPV6_HDR != l)
		return false;
	thl = (size_t)(p[IPV6_HDR + 12] >> 4) * 4;
	if (thl < 20 || IPV6_HDR + thl >= l)
		return false;
	fl = p[IPV6_HDR + 13];
	if (fl != TCP_ACK && fl != (TCP_ACK | TCP_PSH))
		return false;
	if (rd16(p + IPV6_HDR + 18) != 0) /* urgent pointer */
		return false;
	if (udp_csum_fold(udp_csum_add(pseudo6_sum(p, (uint32_t)(l - IPV6_HDR)), p + IPV6_HDR,
	                               l - IPV6_HDR)))
		return false;
	*ret_thl = thl;
	return true;
}

/* Same flow and TCP state as @p0 apart from sequence number, flags and checksum. */
static bool gro6_same(const uint8_t *q, const uint8_t *p0, size_t thl)
{
	const uint8_t *tq = q + IPV6_HDR, *t0 = p0 + IPV6_HDR;

	/* Version/class/flow label; hop limit; addresses; ports; ack; doff; window; options. */
	return memcmp(q, p0, 4) == 0 && q[7] == p0[7] && memcmp(q + 8, p0 + 8, 32) == 0 &&
	       memcmp(tq, t0, 4) == 0 && memcmp(tq + 8, t0 + 8, 5) == 0 &&
	       memcmp(tq + 14, t0 + 14, 2) == 0 && memcmp(tq + 20, t0 + 20, thl - 20) == 0;
}

void udp_gro_run6(const uint8_t *const *pkts, const size_t *lens, size_t n, struct udp_gro_run *ret)
{
	const uint8_t *p0 = pkts[0], *prev;
	size_t thl0, thl, mss, total, plen_prev, count = 1;
	uint8_t *h = ret->hdr;
	uint16_t c;

	if (n < 2 || !gro6_eligible(p0, lens[0], &thl0) || p0[IPV6_HDR + 13] != TCP_ACK)
		return;
	mss = lens[0] - IPV6_HDR - thl0;
	total = lens[0];
	prev = p0;
	plen_prev = mss;
	while (count < n && count < 64) {
		const uint8_t *q = pkts[count];
		size_t lq = lens[count], plen;

		if (!gro6_eligible(q, lq, &thl) || thl != thl0 || !gro6_same(q, p0, thl))
			break;
		plen = lq - IPV6_HDR - thl;
		if (plen > mss || total + plen - IPV6_HDR > 65535)
			break;
		if (rd32(q + IPV6_HDR + 4) != rd32(prev + IPV6_HDR + 4) + (uint32_t)plen_prev)
			break;
		count++;
		total += plen;
		prev = q;
		plen_prev = plen;
		if (plen < mss || (q[IPV6_HDR + 13] & TCP_PSH))
			break;
	}
	if (count == 1)
		return;
	memcpy(h, p0, IPV6_HDR + thl0);
	wr16(h + 4, (uint16_t)(total - IPV6_HDR));
	h[IPV6_HDR + 13] = prev[IPV6_HDR + 13];
	/* CHECKSUM_PARTIAL convention: the field holds the folded pseudo-header sum. */
	c = (uint16_t)~udp_csum_fold(pseudo6_sum(h, (uint32_t)(total - IPV6_HDR)));
	memcpy(h + IPV6_HDR + 16, &c, 2);
	ret->count = count;
	ret->hdr_len = (uint16_t)(IPV6_HDR + thl0);
	ret->total_len = (uint32_t)total;
	ret->vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	ret->vh.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
	ret->vh.hdr_len = (uint16_t)(IPV6_HDR + thl0);
	ret->vh.gso_size = (uint16_t)mss;
	ret->vh.csum_start = IPV6_HDR;
	ret->vh.csum_offset = 16;
}
