/*
 * Packet functions of the udp backend's data path. Pure: they work on a buffer
 * and its length (and a forwarding table), do no I/O, keep no state, never log,
 * and accept any bytes (unit-tested and fuzzed). Multi-byte header fields are in
 * network byte order in the buffers; the virtio-net header is in host order (the
 * TUN legacy format on little-endian hosts).
 */
#ifndef TWILL_BACKENDS_UDP_PKT_H
#define TWILL_BACKENDS_UDP_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_net.h>

#include "backends/udp_table.h"

/* Why a packet was not forwarded (also the index of its drop counter). */
enum udp_verdict {
	UDP_FORWARD = 0,
	UDP_DROP_UNKNOWN_SRC, /* wire: outer source is not the PublicIP of a lease */
	UDP_DROP_SHORT,       /* shorter than an IPv4 header */
	UDP_DROP_NOT_IPV4,    /* version is not 4 (nor 6 with IPv6 on) */
	UDP_DROP_BAD_HDRLEN,  /* IHL < 5 or header beyond the buffer */
	UDP_DROP_BAD_TOTLEN,  /* total length below the header or beyond the buffer */
	UDP_DROP_BAD_CSUM,    /* wire: IPv4 header checksum wrong */
	UDP_DROP_DST_OUTSIDE, /* wire: destination outside the Network or the own subnet */
	UDP_DROP_TTL,         /* TTL would reach 0 */
	UDP_DROP_NO_ROUTE,    /* TUN: no lease covers the destination */
	UDP_DROP_BAD_GSO,     /* TUN: virtio-net header inconsistent with the packet */
	UDP_DROP_NO_TABLE,    /* no forwarding table yet (before start) */
	UDP_DROP_TX_ERROR,    /* sendmsg/write failed (e.g. buffer full) */
	UDP_DROP_PEER_V4ONLY, /* TUN: IPv6 for a peer that takes IPv4 only (flanneld, old twill) */
	UDP_VERDICT_MAX,
};

/* Short stable name of @v for logs and metrics ("unknown_src", ...). */
const char *udp_verdict_name(enum udp_verdict v);

/* ---- Checksums (RFC 1071) ---- */

/* Add @len bytes at @buf (treated as starting at an even offset) to the running sum @sum. */
uint64_t udp_csum_add(uint64_t sum, const void *buf, size_t len);
/* Fold @sum to 16 bits and complement: the value to store (memcpy) in a checksum field. */
uint16_t udp_csum_fold(uint64_t sum);
/* The IPv4 header checksum of @hdr (@ihl_bytes long), with its checksum field counted as 0. */
uint16_t udp_ipv4_hdr_csum(const uint8_t *hdr, size_t ihl_bytes);
/* True when the 16-bit ones' complement sum over @buf is 0xffff (a valid checksum inside). */
bool udp_csum_ok(const void *buf, size_t len);
/* Pseudo-header sum for TCP/UDP over IPv4 (addresses as in the header, @l4len host order). */
uint64_t udp_pseudo_sum(const uint8_t *iph, uint8_t proto, uint32_t l4len);

/* ---- IPv4 ---- */

/*
 * Check that @buf holds an IPv4 header with a sane IHL and total length (trailing
 * bytes beyond the total length are allowed and ignored). UDP_FORWARD and
 * *@ret_len = total length, or the drop reason.
 */
enum udp_verdict udp_ipv4_check(const uint8_t *buf, size_t len, size_t *ret_len);
/*
 * Decrement the TTL of the IPv4 header at @iph with an incremental checksum update
 * (RFC 1624). false (and nothing changed) when the TTL is 0 or 1 (it would reach 0).
 */
bool udp_ttl_decrement(uint8_t *iph);

/*
 * A datagram from the wire, from outer source @src_be, checked against table @t
 * (NULL: UDP_DROP_NO_TABLE): the source must be a lease's PublicIP, the payload a
 * complete IPv4 packet with a valid header checksum, its destination inside the
 * Network and the own subnet, its TTL above 1. UDP_FORWARD and *@ret_len = the
 * inner total length, or the reason. Does not modify @buf.
 */
enum udp_verdict udp_classify_from_wire(const uint8_t *buf, size_t len, const struct udp_table *t,
                                        uint32_t src_be, size_t *ret_len);
/*
 * A packet read from the TUN (without its virtio-net header): UDP_FORWARD with
 * *@ret_route set, UDP_DROP_NO_ROUTE (the caller may answer with
 * udp_icmp_net_unreach()), or another reason. *@ret_len = IPv4 total length.
 * Does not modify @buf.
 */
enum udp_verdict udp_classify_from_tun(const uint8_t *buf, size_t len, const struct udp_table *t,
                                       const struct udp_route **ret_route, size_t *ret_len);

/* Room for the ICMP error built by udp_icmp_net_unreach(). */
#define UDP_ICMP_MAX (20 + 8 + 60 + 8)

/*
 * Build the ICMP destination unreachable (type 3, code 0) that answers the IPv4
 * packet @pkt (@len bytes, already checked) into @out (UDP_ICMP_MAX bytes): from
 * the offending destination (as flannel does: the kernel accepts it on flannel0)
 * to its source, quoting its header and first 8 data bytes. Returns the length,
 * or 0 when no error is due: ICMP errors, non-first fragments, broadcast/multicast
 * or zero source.
 */
size_t udp_icmp_net_unreach(const uint8_t *pkt, size_t len, uint8_t *out);

/* ---- IPv6 (udp_pkt6.c) ---- */

/* Room for the ICMPv6 error built by udp_icmp6_unreach(): the IPv6 minimum MTU. */
#define UDP_ICMP6_MAX 1280

/* Version 6, a whole header, payload length (not 0) within @len: *@ret_len = 40 + it. */
enum udp_verdict udp_ipv6_check(const uint8_t *buf, size_t len, size_t *ret_len);
/*
 * IPv6 counterparts of udp_classify_from_wire/_from_tun (@t not NULL, the outer
 * source already checked): UDP_DROP_NOT_IPV4 when @t has no IPv6 Network; from the
 * TUN, UDP_DROP_PEER_V4ONLY for a route whose peer takes no IPv6 (*@ret_peer_be set to
 * that peer, for the per-peer drop table), else *@ret_peer_be.
 */
enum udp_verdict udp_classify6_from_wire(const uint8_t *buf, size_t len, const struct udp_table *t,
                                         size_t *ret_len);
enum udp_verdict udp_classify6_from_tun(const uint8_t *buf, size_t len, const struct udp_table *t,
                                        uint32_t *ret_peer_be, size_t *ret_len);
/* From the TUN, either family: the peer's PublicIP in *@ret_peer_be (network order). */
enum udp_verdict udp_classify_any_from_tun(const uint8_t *buf, size_t len,
                                           const struct udp_table *t, uint32_t *ret_peer_be,
                                           size_t *ret_len);
/* TTL (IPv4, checksum updated) or hop limit (IPv6) minus one; false when it would reach 0. */
bool udp_hop_decrement(uint8_t *pkt);
/*
 * ICMPv6 destination unreachable (type 1, code 0) answering @pkt (@len bytes,
 * checked) into @out (UDP_ICMP6_MAX bytes), from its destination to its source,
 * quoting as much of it as fits. 0 when none is due: ICMPv6 errors, later
 * fragments, multicast or unspecified addresses.
 */
size_t udp_icmp6_unreach(const uint8_t *pkt, size_t len, uint8_t *out);
/* udp_gso_segment() for VIRTIO_NET_HDR_GSO_TCPV6 (TCP right after the IPv6 header). */
struct udp_gso_out;
struct udp_gro_run;
struct virtio_net_hdr;
enum udp_verdict udp_gso_segment6(const uint8_t *pkt, size_t len, const struct virtio_net_hdr *vh,
                                  unsigned mtu, size_t first, struct udp_gso_out *out);
/* udp_gro_run() when @pkts[0] is IPv6 (@ret already reset to a run of 1). */
void udp_gro_run6(const uint8_t *const *pkts, const size_t *lens, size_t n,
                  struct udp_gro_run *ret);

/* ---- Offloads ---- */

/*
 * Complete a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM): sum from @start to
 * @len and store it at @start + @off. false when the offsets do not fit.
 */
bool udp_csum_complete(uint8_t *pkt, size_t len, uint16_t start, uint16_t off);

/* At most this many segments per udp_gso_segment() call (the caller loops). */
#define UDP_GSO_BATCH   64
#define UDP_GSO_HDR_MAX 120 /* IPv4 header (<= 60) + TCP header (<= 60) */

struct udp_seg {
	uint16_t hdr_len; /* header bytes at udp_gso_out.hdrs[i] */
	uint32_t pay_off; /* payload offset in the input packet */
	uint32_t pay_len;
};

struct udp_gso_out {
	size_t total; /* segments of the whole packet */
	size_t n;     /* segments produced by this call */
	uint8_t hdrs[UDP_GSO_BATCH][UDP_GSO_HDR_MAX];
	struct udp_seg segs[UDP_GSO_BATCH];
};

/*
 * Split the IPv4/TCP (or IPv6/TCP: udp_gso_segment6) GSO packet @pkt (@len bytes, described by @vh) into segments
 * whose IPv4 packets are at most @mtu bytes (and at most vh->gso_size payload):
 * segments @first .. @first + UDP_GSO_BATCH - 1 go to @out (headers with their
 * IP id, total length, checksums, TCP sequence number, flags (FIN/PSH on the last
 * segment only, CWR on the first only) and TCP checksum; payload by reference
 * into @pkt, which is not modified). All segments but the last have the same
 * size. UDP_FORWARD, or UDP_DROP_BAD_GSO / a header reason.
 */
enum udp_verdict udp_gso_segment(const uint8_t *pkt, size_t len, const struct virtio_net_hdr *vh,
                                 unsigned mtu, size_t first, struct udp_gso_out *out);

/*
 * What udp_gso_segment() and udp_gso_segment6() share. udp_gso_plan: @hl header bytes (IP +
 * TCP) and @payload bytes, cut in segments of @gso_size (smaller if @mtu needs): sets
 * out->total, *ret_mss and *ret_end (the batch is @first .. *ret_end - 1); false when the
 * packet cannot be cut. udp_gso_tcp_fill: segment @i of out->total, whose header copy has its
 * IP header done and its TCP header at @th (@thl bytes): sequence number seq0 + @off, flags,
 * and the TCP checksum over @pseudo (the IP pseudo-header sum) and the @plen payload bytes at
 * @pay; then the segment's record @s.
 */
bool udp_gso_plan(size_t hl, size_t payload, uint16_t gso_size, unsigned mtu, size_t first,
                  struct udp_gso_out *out, size_t *ret_mss, size_t *ret_end);
void udp_gso_tcp_fill(uint8_t *th, size_t thl, uint32_t seq0, size_t i, size_t nseg, size_t off,
                      uint64_t pseudo, const uint8_t *pay, size_t plen, size_t hl,
                      struct udp_seg *s);

/* A run of TCP segments that can be written to the TUN as one GSO packet. */
struct udp_gro_run {
	size_t count;             /* packets in the run (>= 1) */
	struct virtio_net_hdr vh; /* header for the merged packet (zero when count == 1) */
	uint16_t hdr_len;         /* bytes of the merged IPv4+TCP header in hdr */
	uint8_t hdr[UDP_GSO_HDR_MAX];
	uint32_t total_len; /* merged IPv4 total length */
};

/*
 * Coalesce: starting at @pkts[0] (checked IPv4 packets, TTL already handled),
 * find how many consecutive packets (up to @n) are segments of one TCP stream that
 * Linux GRO would merge (same addresses, ports, options, ack and window; plain
 * ACK (PSH allowed on the last); contiguous sequence numbers; every payload but
 * the last equal in size; valid TCP checksums; at most 64 KiB in all) and describe
 * the merged packet in @ret. ret->count is 1 when nothing can be merged.
 */
void udp_gro_run(const uint8_t *const *pkts, const size_t *lens, size_t n, struct udp_gro_run *ret);

#endif
