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
	if (r->peer_be == 0)
		return UDP_DROP_PEER_V4ONLY;
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
