/*
 * Prefix arithmetic for IPv4 and IPv6 and the candidate choice of lease
 * allocation. Addresses are handled as unsigned 128-bit integers (IPv4 uses
 * the low 32 bits), so every operation is the same code for both families.
 */
#include "ipam/ipam.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

/* --- 128-bit helpers ---------------------------------------------------- */

static u128 shr(u128 v, unsigned s)
{
	return s >= 128 ? 0 : v >> s;
}

static u128 shl(u128 v, unsigned s)
{
	return s >= 128 ? 0 : v << s;
}

/* All ones in the low @bits bits (bits 0..128). */
static u128 ones(unsigned bits)
{
	return bits >= 128 ? ~(u128)0 : ((u128)1 << bits) - 1;
}

static unsigned family_bytes(uint8_t family)
{
	return family == AF_INET ? 4 : 16;
}

static u128 addr_to_u128(const struct ipam_addr *a)
{
	unsigned n = family_bytes(a->family);
	u128 v = 0;

	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | a->bytes[i];
	return v;
}

static struct ipam_addr u128_to_addr(uint8_t family, u128 v)
{
	struct ipam_addr a;
	unsigned n = family_bytes(family);

	memset(&a, 0, sizeof(a));
	a.family = family;
	for (unsigned i = n; i-- > 0;) {
		a.bytes[i] = (uint8_t)v;
		v >>= 8;
	}
	return a;
}

static bool prefix_valid(const struct ipam_prefix *p)
{
	unsigned bits = ipam_family_bits(p->addr.family);

	return bits != 0 && p->len <= bits;
}

/* Host bits mask of a valid prefix. */
static u128 host_mask(const struct ipam_prefix *p)
{
	return ones(ipam_family_bits(p->addr.family) - p->len);
}

static u128 prefix_start(const struct ipam_prefix *p)
{
	return addr_to_u128(&p->addr) & ~host_mask(p);
}

static u128 prefix_end(const struct ipam_prefix *p)
{
	return addr_to_u128(&p->addr) | host_mask(p);
}

/* --- parse and format ---------------------------------------------------- */

int ipam_addr_parse(const char *s, struct ipam_addr *ret)
{
	struct ipam_addr a;
	size_t n;

	if (!s || !ret)
		return -EINVAL;
	n = strnlen(s, IPAM_ADDR_STRLEN);
	if (n == 0 || n >= IPAM_ADDR_STRLEN)
		return -EINVAL;
	memset(&a, 0, sizeof(a));
	a.family = strchr(s, ':') ? AF_INET6 : AF_INET;
	/* glibc's inet_pton rejects empty parts, leading zeros in IPv4, junk and zones. */
	if (inet_pton(a.family, s, a.bytes) != 1)
		return -EINVAL;
	*ret = a;
	return 0;
}

int ipam_prefix_parse(const char *s, struct ipam_prefix *ret)
{
	char buf[IPAM_ADDR_STRLEN];
	struct ipam_prefix p;
	const char *slash, *d;
	unsigned len = 0;
	size_t n;
	int r;

	if (!s || !ret)
		return -EINVAL;
	slash = strchr(s, '/');
	if (!slash)
		return -EINVAL;
	n = (size_t)(slash - s);
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	r = ipam_addr_parse(buf, &p.addr);
	if (r < 0)
		return r;
	/* 1 to 3 decimal digits, no sign, no leading zero except "0" itself. */
	d = slash + 1;
	if (d[0] < '0' || d[0] > '9' || (d[0] == '0' && d[1] != '\0'))
		return -EINVAL;
	for (n = 0; d[n]; n++) {
		if (n >= 3 || d[n] < '0' || d[n] > '9')
			return -EINVAL;
		len = len * 10 + (unsigned)(d[n] - '0');
	}
	if (len > ipam_family_bits(p.addr.family))
		return -EINVAL;
	p.len = (uint8_t)len;
	*ret = p;
	return 0;
}

char *ipam_addr_format(const struct ipam_addr *a, char *buf)
{
	int family = a->family;

	if ((family != AF_INET && family != AF_INET6) ||
	    !inet_ntop(family, a->bytes, buf, IPAM_ADDR_STRLEN))
		strcpy(buf, "<invalid>");
	return buf;
}

char *ipam_prefix_format(const struct ipam_prefix *p, char *buf)
{
	size_t n;
	unsigned len = p->len;

	ipam_addr_format(&p->addr, buf);
	n = strlen(buf); /* <= IPAM_ADDR_STRLEN - 1, leaving room for "/255" + NUL */
	buf[n++] = '/';
	if (len >= 100)
		buf[n++] = (char)('0' + len / 100);
	if (len >= 10)
		buf[n++] = (char)('0' + len / 10 % 10);
	buf[n++] = (char)('0' + len % 10);
	buf[n] = '\0';
	return buf;
}

/* --- comparison ------------------------------------------------------------ */

int ipam_addr_cmp(const struct ipam_addr *a, const struct ipam_addr *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->bytes, b->bytes, family_bytes(a->family));
}

bool ipam_addr_equal(const struct ipam_addr *a, const struct ipam_addr *b)
{
	return ipam_addr_cmp(a, b) == 0;
}

int ipam_prefix_cmp(const struct ipam_prefix *a, const struct ipam_prefix *b)
{
	int r = ipam_addr_cmp(&a->addr, &b->addr);

	if (r != 0)
		return r;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return 0;
}

bool ipam_prefix_equal(const struct ipam_prefix *a, const struct ipam_prefix *b)
{
	return ipam_prefix_cmp(a, b) == 0;
}

/* --- arithmetic ------------------------------------------------------------- */

unsigned ipam_family_bits(uint8_t family)
{
	switch (family) {
	case AF_INET:
		return 32;
	case AF_INET6:
		return 128;
	default:
		return 0;
	}
}

struct ipam_prefix ipam_prefix_network(const struct ipam_prefix *p)
{
	struct ipam_prefix r = *p;

	if (prefix_valid(p))
		r.addr = u128_to_addr(p->addr.family, prefix_start(p));
	return r;
}

bool ipam_prefix_is_network(const struct ipam_prefix *p)
{
	return prefix_valid(p) && (addr_to_u128(&p->addr) & host_mask(p)) == 0;
}

int ipam_prefix_first_host(const struct ipam_prefix *p, struct ipam_addr *ret)
{
	if (!prefix_valid(p) || p->len + 1u >= ipam_family_bits(p->addr.family))
		return -EINVAL;
	*ret = u128_to_addr(p->addr.family, prefix_start(p) + 1);
	return 0;
}

struct ipam_addr ipam_prefix_last(const struct ipam_prefix *p)
{
	if (!prefix_valid(p))
		return p->addr;
	return u128_to_addr(p->addr.family, prefix_end(p));
}

bool ipam_prefix_contains(const struct ipam_prefix *outer, const struct ipam_prefix *inner)
{
	if (!prefix_valid(outer) || !prefix_valid(inner) ||
	    outer->addr.family != inner->addr.family || outer->len > inner->len)
		return false;
	return (addr_to_u128(&inner->addr) & ~host_mask(outer)) == prefix_start(outer);
}

bool ipam_prefix_contains_addr(const struct ipam_prefix *p, const struct ipam_addr *a)
{
	if (!prefix_valid(p) || p->addr.family != a->family)
		return false;
	return (addr_to_u128(a) & ~host_mask(p)) == prefix_start(p);
}

bool ipam_prefix_overlaps(const struct ipam_prefix *a, const struct ipam_prefix *b)
{
	/* Two prefixes overlap exactly when the shorter one contains the longer. */
	return a->len <= b->len ? ipam_prefix_contains(a, b) : ipam_prefix_contains(b, a);
}

int ipam_prefix_next(const struct ipam_prefix *p, struct ipam_prefix *ret)
{
	unsigned bits;
	u128 end;

	if (!prefix_valid(p))
		return -EINVAL;
	bits = ipam_family_bits(p->addr.family);
	end = prefix_end(p);
	if (end == ones(bits))
		return -ERANGE;
	ret->addr = u128_to_addr(p->addr.family, end + 1);
	ret->len = p->len;
	return 0;
}

uint64_t ipam_prefix_count(const struct ipam_prefix *min, const struct ipam_prefix *max,
                           uint8_t len)
{
	u128 lo, hi, n;

	if (!prefix_valid(min) || min->addr.family != max->addr.family || min->len != len ||
	    max->len != len)
		return 0;
	lo = prefix_start(min);
	hi = prefix_start(max);
	if (hi < lo)
		return 0;
	n = shr(hi - lo, ipam_family_bits(min->addr.family) - len);
	/* n + 1 subnets; saturate. */
	return n >= UINT64_MAX ? UINT64_MAX : (uint64_t)n + 1;
}

/* --- the taken set ------------------------------------------------------------ */

struct interval {
	u128 start, end; /* inclusive */
};

/* Sorted disjoint, non-adjacent intervals [0, merged) then unsorted adds up to n. */
struct interval_set {
	struct interval *v;
	size_t n, cap;
	size_t merged;
};

struct taken_index {
	struct interval_set v4, v6;
};

struct ipam_taken {
	/* Behind a pointer so that const queries may build the index lazily. */
	struct taken_index *idx;
	size_t count;
};

struct ipam_taken *ipam_taken_new(void)
{
	struct ipam_taken *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->idx = calloc(1, sizeof(*t->idx));
	if (!t->idx) {
		free(t);
		errno = ENOMEM;
		return NULL;
	}
	return t;
}

void ipam_taken_free(struct ipam_taken *t)
{
	if (!t)
		return;
	free(t->idx->v4.v);
	free(t->idx->v6.v);
	free(t->idx);
	free(t);
}

static struct interval_set *set_of(struct taken_index *idx, uint8_t family)
{
	return family == AF_INET ? &idx->v4 : &idx->v6;
}

int ipam_taken_add(struct ipam_taken *t, const struct ipam_prefix *p)
{
	struct interval_set *s;

	if (!t || !p || !prefix_valid(p))
		return -EINVAL;
	s = set_of(t->idx, p->addr.family);
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct interval *v;

		if (cap > SIZE_MAX / sizeof(*v))
			return -ENOMEM;
		v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n].start = prefix_start(p);
	s->v[s->n].end = prefix_end(p);
	s->n++;
	t->count++;
	return 0;
}

size_t ipam_taken_count(const struct ipam_taken *t)
{
	return t ? t->count : 0;
}

static int interval_cmp(const void *a, const void *b)
{
	const struct interval *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

/* Sort everything and merge overlapping or adjacent intervals, in place. */
static void set_build(struct interval_set *s)
{
	size_t out = 0;

	if (s->merged == s->n)
		return;
	qsort(s->v, s->n, sizeof(*s->v), interval_cmp);
	for (size_t i = 0; i < s->n; i++) {
		struct interval *cur = out ? &s->v[out - 1] : NULL;

		/* start - 1 == end: adjacent (no overflow, start > 0 there). */
		if (cur && (s->v[i].start <= cur->end || s->v[i].start - 1 == cur->end)) {
			if (s->v[i].end > cur->end)
				cur->end = s->v[i].end;
			continue;
		}
		s->v[out++] = s->v[i];
	}
	s->n = out;
	s->merged = out;
}

void ipam_taken_build(struct ipam_taken *t)
{
	if (!t)
		return;
	set_build(&t->idx->v4);
	set_build(&t->idx->v6);
}

/*
 * The interval overlapping [start, end] with the highest end, if any. Since the
 * intervals are sorted and disjoint, it is the last one starting at or before @end.
 */
static const struct interval *set_find(const struct interval_set *s, u128 start, u128 end)
{
	size_t lo = 0, hi = s->n; /* first index whose start > end is in [lo, hi] */

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].start <= end)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || s->v[lo - 1].end < start)
		return NULL;
	return &s->v[lo - 1];
}

static const struct interval_set *taken_set(const struct ipam_taken *t, uint8_t family)
{
	struct interval_set *s;

	if (!t)
		return NULL;
	s = set_of(t->idx, family);
	set_build(s);
	return s;
}

bool ipam_taken_overlaps(const struct ipam_taken *t, const struct ipam_prefix *p)
{
	const struct interval_set *s;

	if (!p || !prefix_valid(p))
		return false;
	s = taken_set(t, p->addr.family);
	return s && set_find(s, prefix_start(p), prefix_end(p));
}

/* --- candidates ------------------------------------------------------------------ */

static bool range_valid(const struct ipam_prefix *min, const struct ipam_prefix *max, uint8_t len)
{
	return min && max && prefix_valid(min) && min->addr.family == max->addr.family &&
	       min->len == len && max->len == len && prefix_start(min) <= prefix_start(max);
}

size_t ipam_candidates(const struct ipam_prefix *min, const struct ipam_prefix *max, uint8_t len,
                       const struct ipam_taken *taken, struct ipam_prefix *ret_cands,
                       size_t max_candidates)
{
	const struct interval_set *s;
	uint8_t family;
	unsigned shift;
	u128 cur, last, mask, top;
	size_t n = 0;

	if (!range_valid(min, max, len) || (!ret_cands && max_candidates))
		return 0;
	family = min->addr.family;
	shift = ipam_family_bits(family) - len;
	mask = ones(shift);
	top = shr(ones(ipam_family_bits(family)), shift); /* index of the last subnet */
	cur = prefix_start(min);
	last = prefix_start(max);
	s = taken_set(taken, family);

	while (n < max_candidates && cur <= last) {
		u128 end = cur | mask;
		const struct interval *hit = s ? set_find(s, cur, end) : NULL;
		u128 idx;

		if (hit) {
			/* Jump to the first subnet after the taken interval. */
			idx = shr(hit->end, shift);
		} else {
			ret_cands[n].addr = u128_to_addr(family, cur);
			ret_cands[n].len = len;
			n++;
			idx = shr(cur, shift);
		}
		if (idx >= top)
			break; /* the end of the address space */
		cur = shl(idx + 1, shift);
	}
	return n;
}

int ipam_pick(const struct ipam_prefix *min, const struct ipam_prefix *max, uint8_t len,
              const struct ipam_taken *taken, ipam_rand_fn rnd, void *rnd_ctx,
              struct ipam_prefix *ret)
{
	struct ipam_prefix cands[IPAM_CANDIDATES_MAX];
	uint64_t i;
	size_t n;

	if (!rnd || !ret || !range_valid(min, max, len))
		return -EINVAL;
	n = ipam_candidates(min, max, len, taken, cands, IPAM_CANDIDATES_MAX);
	if (n == 0)
		return -ENOSPC;
	i = rnd(rnd_ctx, n);
	if (i >= n)
		return -EINVAL;
	*ret = cands[i];
	return 0;
}
