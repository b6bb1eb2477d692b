#include <arpa/inet.h>
#include <string.h>

#include "backends/udp_pkt.h"

#define IP_MF      0x2000
#define IP_DF      0x4000
#define IP_OFFMASK 0x1fff

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80

static const char *const verdict_names[UDP_VERDICT_MAX] = {
	[UDP_FORWARD] = "forward",
	[UDP_DROP_UNKNOWN_SRC] = "unknown_src",
	[UDP_DROP_SHORT] = "short",
	[UDP_DROP_NOT_IPV4] = "not_ipv4",
	[UDP_DROP_BAD_HDRLEN] = "bad_hdrlen",
	[UDP_DROP_BAD_TOTLEN] = "bad_totlen",
	[UDP_DROP_BAD_CSUM] = "bad_csum",
	[UDP_DROP_DST_OUTSIDE] = "dst_outside",
	[UDP_DROP_TTL] = "ttl",
	[UDP_DROP_NO_ROUTE] = "no_route",
	[UDP_DROP_BAD_GSO] = "bad_gso",
	[UDP_DROP_NO_TABLE] = "no_table",
	[UDP_DROP_TX_ERROR] = "tx_error",
	[UDP_DROP_PEER_V4ONLY] = "peer_ipv4_only",
};

const char *udp_verdict_name(enum udp_verdict v)
{
	if ((unsigned)v >= UDP_VERDICT_MAX)
		return "unknown";
	return verdict_names[v];
}

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = (v >> 16) & 0xff;
	p[2] = (v >> 8) & 0xff;
	p[3] = v & 0xff;
}

/* ---- Checksums ---- */

uint64_t udp_csum_add(uint64_t sum, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	/*
	 * 64-bit words into a 128-bit accumulator (add/adc): the ones' complement sum
	 * of 16-bit words equals the 128-bit total folded, since 2^64 = 1 mod 0xffff.
	 */
	unsigned __int128 acc = sum;
	uint64_t lo, hi, r;

	while (len >= 64) {
		uint64_t w[8];

		memcpy(w, p, 64);
		acc += w[0];
		acc += w[1];
		acc += w[2];
		acc += w[3];
		acc += w[4];
		acc += w[5];
		acc += w[6];
		acc += w[7];
		p += 64;
		len -= 64;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		acc += w;
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		uint32_t w;

		memcpy(&w, p, 4);
		acc += w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t w;

		memcpy(&w, p, 2);
		acc += w;
		p += 2;
		len -= 2;
	}
	if (len) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		acc += p[0];
#else
		acc += (uint32_t)p[0] << 8;
#endif
	}
	lo = (uint64_t)acc;
	hi = (uint64_t)(acc >> 64);
	r = lo + hi;
	if (r < lo)
		r++;
	/* Keep headroom for callers that add a few small terms to the result. */
	r = (r & 0xffffffffu) + (r >> 32);
	return r;
}

uint16_t udp_csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint16_t udp_ipv4_hdr_csum(const uint8_t *hdr, size_t ihl_bytes)
{
	uint64_t sum = udp_csum_add(0, hdr, 10);

	sum = udp_csum_add(sum, hdr + 12, ihl_bytes - 12);
	return udp_csum_fold(sum);
}

bool udp_csum_ok(const void *buf, size_t len)
{
	return udp_csum_fold(udp_csum_add(0, buf, len)) == 0;
}

uint64_t udp_pseudo_sum(const uint8_t *iph, uint8_t proto, uint32_t l4len)
{
	uint64_t sum = udp_csum_add(0, iph + 12, 8);

	sum += htons(proto);
	sum += htons((uint16_t)l4len);
	return sum;
}

static void ipv4_set_csum(uint8_t *iph, size_t ihl)
{
	uint16_t c;

	iph[10] = iph[11] = 0;
	c = udp_ipv4_hdr_csum(iph, ihl);
	memcpy(iph + 10, &c, 2);
}

/* ---- IPv4 ---- */

enum udp_verdict udp_ipv4_check(const uint8_t *buf, size_t len, size_t *ret_len)
{
	size_t ihl, tot;

	if (len < 20)
		return UDP_DROP_SHORT;
	if (buf[0] >> 4 != 4)
		return UDP_DROP_NOT_IPV4;
	ihl = (size_t)(buf[0] & 0x0f) * 4;
	if (ihl < 20 || ihl > len)
		return UDP_DROP_BAD_HDRLEN;
	tot = rd16(buf + 2);
	if (tot < ihl || tot > len)
		return UDP_DROP_BAD_TOTLEN;
	*ret_len = tot;
	return UDP_FORWARD;
}

bool udp_ttl_decrement(uint8_t *iph)
{
	uint16_t old, new, hc;
	uint32_t sum;

	if (iph[8] <= 1)
		return false;
	old = rd16(iph + 8);
	new = old - 0x0100;
	hc = rd16(iph + 10);
	/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') */
	sum = (uint16_t)~hc + (uint32_t)(uint16_t)~old + new;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	iph[8]--;
	wr16(iph + 10, (uint16_t)~sum);
	return true;
}

enum udp_verdict udp_classify_from_wire(const uint8_t *buf, size_t len, const struct udp_table *t,
                                        uint32_t src_be, size_t *ret_len)
{
	enum udp_verdict v;
	size_t tot;
	uint32_t dst;

	if (!t)
		return UDP_DROP_NO_TABLE;
	if (!udp_table_is_peer(t, src_be))
		return UDP_DROP_UNKNOWN_SRC;
	if (len >= 1 && buf[0] >> 4 == 6)
		return udp_classify6_from_wire(buf, len, t, ret_len);
	v = udp_ipv4_check(buf, len, &tot);
	if (v != UDP_FORWARD)
		return v;
	if (!udp_csum_ok(buf, (size_t)(buf[0] & 0x0f) * 4))
		return UDP_DROP_BAD_CSUM;
	dst = rd32(buf + 16);
	if (dst < t->net_first || dst > t->net_last)
		return UDP_DROP_DST_OUTSIDE;
	if (t->has_own && (dst < t->own_first || dst > t->own_last))
		return UDP_DROP_DST_OUTSIDE;
	if (buf[8] <= 1)
		return UDP_DROP_TTL;
	*ret_len = tot;
	return UDP_FORWARD;
}

enum udp_verdict udp_classify_from_tun(const uint8_t *buf, size_t len, const struct udp_table *t,
                                       const struct udp_route **ret_route, size_t *ret_len)
{
	const struct udp_route *r;
	enum udp_verdict v;
	size_t tot;
	uint32_t dst_be;

	if (!t)
		return UDP_DROP_NO_TABLE;
	v = udp_ipv4_check(buf, len, &tot);
	if (v != UDP_FORWARD)
		return v;
	*ret_len = tot;
	memcpy(&dst_be, buf + 16, 4);
	r = udp_table_lookup(t, dst_be);
	if (!r)
		return UDP_DROP_NO_ROUTE;
	if (buf[8] <= 1)
		return UDP_DROP_TTL;
	*ret_route = r;
	return UDP_FORWARD;
}

static bool icmp_type_is_error(uint8_t type)
{
	/* Destination unreachable, source quench, redirect, time exceeded, parameter problem. */
	return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

size_t udp_icmp_net_unreach(const uint8_t *pkt, size_t len, uint8_t *out)
{
	size_t ihl, quote;
	uint32_t src, dst;
	uint16_t c;

	if (len < 20 || pkt[0] >> 4 != 4)
		return 0;
	ihl = (size_t)(pkt[0] & 0x0f) * 4;
	if (ihl < 20 || ihl > len)
		return 0;
	if (rd16(pkt + 6) & IP_OFFMASK)
		return 0;
	if (pkt[9] == 1 && (len <= ihl || icmp_type_is_error(pkt[ihl])))
		return 0;
	src = rd32(pkt + 12);
	dst = rd32(pkt + 16);
	if (src == 0 || src == 0xffffffffu || (src >> 28) == 0xe || (dst >> 28) == 0xe ||
	    dst == 0xffffffffu)
		return 0;
	quote = ihl + (len - ihl < 8 ? len - ihl : 8);

	memset(out, 0, 28);
	out[0] = 0x45;
	wr16(out + 2, (uint16_t)(28 + quote));
	memcpy(out + 4, pkt + 4, 2); /* id: the offender's, as flannel does */
	out[8] = 64;
	out[9] = 1;
	memcpy(out + 12, pkt + 16, 4);
	memcpy(out + 16, pkt + 12, 4);
	ipv4_set_csum(out, 20);
	out[20] = 3; /* destination unreachable */
	out[21] = 0; /* net unreachable */
	memcpy(out + 28, pkt, quote);
	c = udp_csum_fold(udp_csum_add(0, out + 20, 8 + quote));
	memcpy(out + 22, &c, 2);
	return 28 + quote;
}

/* ---- Offloads ---- */

bool udp_csum_complete(uint8_t *pkt, size_t len, uint16_t start, uint16_t off)
{
	uint16_t c;

	if (start > len || (size_t)off + 2 > len - start)
		return false;
	c = udp_csum_fold(udp_csum_add(0, pkt + start, len - start));
	memcpy(pkt + start + off, &c, 2);
	return true;
}

bool udp_gso_plan(size_t hl, size_t payload, uint16_t gso_size, unsigned mtu, size_t first,
                  struct udp_gso_out *out, size_t *ret_mss, size_t *ret_end)
{
	size_t mss = gso_size, nseg;

	if (mss == 0 || mtu <= hl)
		return false;
	if (hl + mss > mtu)
		mss = mtu - hl;
	nseg = payload == 0 ? 1 : (payload + mss - 1) / mss;
	out->total = nseg;
	*ret_mss = mss;
	if (first >= nseg)
		*ret_end = first; /* nothing left in this call */
	else
		*ret_end = nseg - first > UDP_GSO_BATCH ? first + UDP_GSO_BATCH : nseg;
	return true;
}

void udp_gso_tcp_fill(uint8_t *th, size_t thl, uint32_t seq0, size_t i, size_t nseg, size_t off,
                      uint64_t pseudo, const uint8_t *pay, size_t plen, size_t hl,
                      struct udp_seg *s)
{
	uint64_t sum;
	uint16_t c;

	wr32(th + 4, seq0 + (uint32_t)off);
	if (i != nseg - 1)
		th[13] &= (uint8_t) ~(TCP_FIN | TCP_PSH);
	if (i != 0)
		th[13] &= (uint8_t)~TCP_CWR;
	th[16] = th[17] = 0;
	sum = udp_csum_add(pseudo, th, thl);
	sum = udp_csum_add(sum, pay, plen);
	c = udp_csum_fold(sum);
	memcpy(th + 16, &c, 2);
	s->hdr_len = (uint16_t)hl;
	s->pay_off = (uint32_t)(hl + off);
	s->pay_len = (uint32_t)plen;
}

enum udp_verdict udp_gso_segment(const uint8_t *pkt, size_t len, const struct virtio_net_hdr *vh,
                                 unsigned mtu, size_t first, struct udp_gso_out *out)
{
	size_t tot, ihl, thl, hl, payload, mss, nseg, i, end;
	enum udp_verdict v;
	uint32_t seq0;
	uint16_t id0;

	out->total = out->n = 0;
	if ((vh->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_TCPV6)
		return udp_gso_segment6(pkt, len, vh, mtu, first, out);
	if ((vh->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_TCPV4)
		return UDP_DROP_BAD_GSO;
	v = udp_ipv4_check(pkt, len, &tot);
	if (v != UDP_FORWARD)
		return v;
	if (tot != len)
		return UDP_DROP_BAD_GSO;
	ihl = (size_t)(pkt[0] & 0x0f) * 4;
	if (pkt[9] != 6 || (rd16(pkt + 6) & (IP_MF | IP_OFFMASK)) || len < ihl + 20)
		return UDP_DROP_BAD_GSO;
	thl = (size_t)(pkt[ihl + 12] >> 4) * 4;
	if (thl < 20 || ihl + thl > len)
		return UDP_DROP_BAD_GSO;
	hl = ihl + thl;
	payload = len - hl;
	if (!udp_gso_plan(hl, payload, vh->gso_size, mtu, first, out, &mss, &end))
		return UDP_DROP_BAD_GSO;
	nseg = out->total;
	id0 = rd16(pkt + 4);
	seq0 = rd32(pkt + ihl + 4);
	for (i = first; i < end; i++) {
		uint8_t *h = out->hdrs[i - first];
		struct udp_seg *s = &out->segs[i - first];
		size_t off = i * mss;
		size_t plen = payload - off < mss ? payload - off : mss;
		uint8_t *th = h + ihl;

		memcpy(h, pkt, hl);
		wr16(h + 2, (uint16_t)(hl + plen));
		wr16(h + 4, (uint16_t)(id0 + i));
		ipv4_set_csum(h, ihl);
		udp_gso_tcp_fill(th, thl, seq0, i, nseg, off,
		                 udp_pseudo_sum(h, 6, (uint32_t)(thl + plen)), pkt + hl + off, plen,
		                 hl, s);
	}
	out->n = end - first;
	return UDP_FORWARD;
}

/* A plain IPv4 (no options, not a fragment) TCP data segment with ACK (and maybe PSH). */
static bool gro_eligible(const uint8_t *p, size_t l, size_t *ret_thl)
{
	size_t thl;
	uint8_t fl;

	if (l < 40 || p[0] != 0x45 || p[9] != 6 || (rd16(p + 6) & (IP_MF | IP_OFFMASK)) ||
	    rd16(p + 2) != l)
		return false;
	thl = (size_t)(p[32] >> 4) * 4;
	if (thl < 20 || 20 + thl >= l)
		return false;
	fl = p[33];
	if (fl != TCP_ACK && fl != (TCP_ACK | TCP_PSH))
		return false;
	if (rd16(p + 38) != 0) /* urgent pointer */
		return false;
	if (udp_csum_fold(udp_csum_add(udp_pseudo_sum(p, 6, (uint32_t)(l - 20)), p + 20, l - 20)))
		return false;
	*ret_thl = thl;
	return true;
}

void udp_gro_run(const uint8_t *const *pkts, const size_t *lens, size_t n, struct udp_gro_run *ret)
{
	const uint8_t *p0 = pkts[0], *prev;
	size_t thl0, thl, mss, total, plen_prev, count = 1;
	uint8_t *h = ret->hdr;
	uint16_t c;

	memset(&ret->vh, 0, sizeof(ret->vh));
	ret->count = 1;
	ret->hdr_len = 0;
	ret->total_len = n ? (uint32_t)lens[0] : 0;
	if (n >= 2 && lens[0] >= 1 && p0[0] >> 4 == 6) {
		udp_gro_run6(pkts, lens, n, ret);
		return;
	}
	if (n < 2 || !gro_eligible(p0, lens[0], &thl0) || p0[33] != TCP_ACK)
		return;
	mss = lens[0] - 20 - thl0;
	total = lens[0];
	prev = p0;
	plen_prev = mss;
	while (count < n && count < 64) {
		const uint8_t *q = pkts[count];
		size_t lq = lens[count], plen;

		if (!gro_eligible(q, lq, &thl) || thl != thl0)
			break;
		plen = lq - 20 - thl;
		if (plen > mss || total + plen > 65535)
			break;
		/* tos; DF bit; ttl and protocol; addresses; ports; ack; doff; window; options. */
		if (q[1] != p0[1] || ((q[6] ^ p0[6]) & 0x40) || q[8] != p0[8] ||
		    memcmp(q + 12, p0 + 12, 8) || memcmp(q + 20, p0 + 20, 4) ||
		    memcmp(q + 28, p0 + 28, 5) || memcmp(q + 34, p0 + 34, 2) ||
		    memcmp(q + 40, p0 + 40, thl - 20))
			break;
		if (rd32(q + 24) != rd32(prev + 24) + (uint32_t)plen_prev)
			break;
		if (!(q[6] & 0x40) && rd16(q + 4) != (uint16_t)(rd16(prev + 4) + 1))
			break;
		count++;
		total += plen;
		prev = q;
		plen_prev = plen;
		if (plen < mss || (q[33] & TCP_PSH))
			break;
	}
	if (count == 1)
		return;
	memcpy(h, p0, 20 + thl0);
	wr16(h + 2, (uint16_t)total);
	ipv4_set_csum(h, 20);
	h[33] = prev[33];
	h[36] = h[37] = 0;
	/* CHECKSUM_PARTIAL convention: the field holds the folded pseudo-header sum. */
	c = (uint16_t)~udp_csum_fold(udp_pseudo_sum(h, 6, (uint32_t)(total - 20)));
	memcpy(h + 36, &c, 2);
	ret->count = count;
	ret->hdr_len = (uint16_t)(20 + thl0);
	ret->total_len = (uint32_t)total;
	ret->vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	ret->vh.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	ret->vh.hdr_len = (uint16_t)(20 + thl0);
	ret->vh.gso_size = (uint16_t)mss;
	ret->vh.csum_start = 20;
	ret->vh.csum_offset = 16;
}
