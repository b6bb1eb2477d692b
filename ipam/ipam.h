/*
 * Prefix arithmetic for IPv4 and IPv6, and the candidate choice of lease
 * allocation (docs/compat.md §3 step 3). Pure: no I/O, no logging, no globals.
 *
 * Addresses are kept in network byte order in a 16-byte array; IPv4 uses the
 * first 4 bytes and leaves the rest zero, so structs compare with memcmp.
 */
#ifndef TWILL_IPAM_IPAM_H
#define TWILL_IPAM_IPAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h> /* AF_INET, AF_INET6 */

#define IPAM_ADDR_STRLEN   46 /* INET6_ADDRSTRLEN */
#define IPAM_PREFIX_STRLEN (IPAM_ADDR_STRLEN + 4)

struct ipam_addr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t bytes[16];
};

struct ipam_prefix {
	struct ipam_addr addr; /* as written; ipam_prefix_network() clears the host bits */
	uint8_t len;           /* 0..32 or 0..128 */
};

/* Parse a dotted-quad or RFC 4291 text address; 0 or -EINVAL. */
int ipam_addr_parse(const char *s, struct ipam_addr *ret);
/* Parse "ADDR/LEN"; host bits may be set (kept as written). 0 or -EINVAL. */
int ipam_prefix_parse(const char *s, struct ipam_prefix *ret);
/* Canonical text (inet_ntop); returns @buf, which holds IPAM_ADDR_STRLEN bytes. */
char *ipam_addr_format(const struct ipam_addr *a, char *buf);
/* "ADDR/LEN" with the address as stored; @buf holds IPAM_PREFIX_STRLEN bytes. */
char *ipam_prefix_format(const struct ipam_prefix *p, char *buf);

/* Same family and same address (only the family's bytes are compared). */
bool ipam_addr_equal(const struct ipam_addr *a, const struct ipam_addr *b);
/* Total order: family, then address bytes (then length for prefixes); <0, 0, >0. */
int ipam_addr_cmp(const struct ipam_addr *a, const struct ipam_addr *b);
int ipam_prefix_cmp(const struct ipam_prefix *a, const struct ipam_prefix *b);
/* Same address as stored (host bits included) and same length. */
bool ipam_prefix_equal(const struct ipam_prefix *a, const struct ipam_prefix *b);

/* Maximum prefix length of the family: 32 or 128; 0 for any other family. */
unsigned ipam_family_bits(uint8_t family);
/* @p with its host bits cleared. */
struct ipam_prefix ipam_prefix_network(const struct ipam_prefix *p);
/* True when the host bits of @p are all zero. */
bool ipam_prefix_is_network(const struct ipam_prefix *p);
/* Network address + 1 (the gateway/bridge address of a lease); -EINVAL for /31, /32, /127, /128. */
int ipam_prefix_first_host(const struct ipam_prefix *p, struct ipam_addr *ret);
/* Last address of the prefix (broadcast for IPv4). */
struct ipam_addr ipam_prefix_last(const struct ipam_prefix *p);
/* Same family and @outer covers every address of @inner (a prefix contains itself). */
bool ipam_prefix_contains(const struct ipam_prefix *outer, const struct ipam_prefix *inner);
bool ipam_prefix_contains_addr(const struct ipam_prefix *p, const struct ipam_addr *a);
/* Same family and at least one address in common. */
bool ipam_prefix_overlaps(const struct ipam_prefix *a, const struct ipam_prefix *b);
/*
 * The next prefix of the same length after @p (from its network address); -ERANGE past
 * the end of the address space (always for /0), -EINVAL for a bad family or length.
 */
int ipam_prefix_next(const struct ipam_prefix *p, struct ipam_prefix *ret);
/*
 * Number of prefixes of length @len from @min to @max inclusive (both of length @len),
 * saturated at UINT64_MAX; 0 when max < min or the arguments disagree.
 */
uint64_t ipam_prefix_count(const struct ipam_prefix *min, const struct ipam_prefix *max,
                           uint8_t len);

/*
 * The set of prefixes already taken (leases and reservations), for overlap
 * tests against candidates without an O(n) scan per candidate. Internally the
 * prefixes of each family are merged into sorted disjoint address intervals,
 * built lazily by the first query after adds (or by ipam_taken_build()).
 * A NULL set is a valid empty set for every query. Not thread-safe while
 * adds are pending; after ipam_taken_build(), concurrent queries are safe.
 */
struct ipam_taken;

/* An empty set; NULL with errno ENOMEM. */
struct ipam_taken *ipam_taken_new(void);
/* Frees @t; accepts NULL. */
void ipam_taken_free(struct ipam_taken *t);
/* Adds a copy of @p (host bits cleared); 0, -EINVAL (bad family/length) or -ENOMEM. */
int ipam_taken_add(struct ipam_taken *t, const struct ipam_prefix *p);
/* Number of prefixes added (duplicates and nested ones included). */
size_t ipam_taken_count(const struct ipam_taken *t);
/* Sorts and merges pending adds now; O(n log n). Queries do it lazily otherwise. */
void ipam_taken_build(struct ipam_taken *t);
/* True when @p overlaps any prefix of the set; O(log n) after the set is built. */
bool ipam_taken_overlaps(const struct ipam_taken *t, const struct ipam_prefix *p);

/* Random source: returns a uniformly random integer in [0, bound). */
typedef uint64_t (*ipam_rand_fn)(void *ctx, uint64_t bound);

#define IPAM_CANDIDATES_MAX 100

/*
 * Walk @min..@max (both of length @len; host bits ignored) in @len steps, skip every
 * candidate that overlaps @taken (jumping over taken ranges), collect up to
 * @max_candidates free ones in order into @ret_cands (caller's array). Returns the
 * number collected (0 = full, or bad arguments).
 */
size_t ipam_candidates(const struct ipam_prefix *min, const struct ipam_prefix *max, uint8_t len,
                       const struct ipam_taken *taken, struct ipam_prefix *ret_cands,
                       size_t max_candidates);
/*
 * docs/compat.md §3 step 3: the first IPAM_CANDIDATES_MAX free candidates, one picked with
 * @rnd(@rnd_ctx, count). 0, or -ENOSPC when no subnet is free, -EINVAL for bad
 * arguments (families/lengths disagree, min > max, no @rnd, @rnd out of range).
 */
int ipam_pick(const struct ipam_prefix *min, const struct ipam_prefix *max, uint8_t len,
              const struct ipam_taken *taken, ipam_rand_fn rnd, void *rnd_ctx,
              struct ipam_prefix *ret);

#endif
