#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backends/udp_table.h"

static uint32_t addr_host(const struct ipam_addr *a)
{
	uint32_t v;

	memcpy(&v, a->bytes, 4);
	return ntohl(v);
}

static bool prefix_range(const struct ipam_prefix *p, uint32_t *first, uint32_t *last)
{
	uint32_t mask;

	if (p->addr.family != AF_INET || p->len > 32)
		return false;
	mask = p->len ? ~(uint32_t)0 << (32 - p->len) : 0;
	*first = addr_host(&p->addr) & mask;
	*last = *first | ~mask;
	return true;
}

static int route_cmp(const void *a, const void *b)
{
	const struct udp_route *x = a, *y = b;

	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	/* Same start: the shorter range (longer prefix) first; the other is dropped. */
	if (x->last != y->last)
		return x->last < y->last ? -1 : 1;
	return 0;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

udp_u128 udp_u128_load(const uint8_t *a)
{
	udp_u128 v = 0;
	int i;

	for (i = 0; i < 16; i++)
		v = v << 8 | a[i];
	return v;
}

static bool prefix6_range(const struct ipam_prefix *p, udp_u128 *first, udp_u128 *last)
{
	udp_u128 mask;

	if (!p || p->addr.family != AF_INET6 || p->len > 128)
		return false;
	mask = p->len ? ~(udp_u128)0 << (128 - p->len) : 0;
	*first = udp_u128_load(p->addr.bytes) & mask;
	*last = *first | ~mask;
	return true;
}

static int route6_cmp(const void *a, const void *b)
{
	const struct udp_route6 *x = a, *y = b;

	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	if (x->last != y->last)
		return x->last < y->last ? -1 : 1;
	return 0;
}

/* The IPv6 routes of @peers into @routes6 (room for @n); returns how many, counts skips. */
static size_t build_routes6(struct udp_table *t, struct udp_route6 *routes6,
                            const struct udp_peer *peers, size_t n, size_t *skipped)
{
	size_t i, nr = 0;

	for (i = 0; i < n; i++) {
		udp_u128 f, l;

		if (!peers[i].has_ipv6)
			continue;
		if (!prefix6_range(&peers[i].subnet6, &f, &l) || f < t->net6_first ||
		    l > t->net6_last || (t->has_own6 && f <= t->own6_last && t->own6_first <= l) ||
		    peers[i].public_ip.family != AF_INET) {
			(*skipped)++;
			continue;
		}
		routes6[nr].first = f;
		routes6[nr].last = l;
		memcpy(&routes6[nr].peer_be, peers[i].public_ip.bytes, 4);
		routes6[nr].ipv6_ok = peers[i].ipv6_ok;
		nr++;
	}
	qsort(routes6, nr, sizeof(*routes6), route6_cmp);
	if (nr > 1) {
		size_t k = 1;

		for (i = 1; i < nr; i++) {
			if (routes6[i].first <= routes6[k - 1].last) {
				(*skipped)++;
				continue;
			}
			routes6[k++] = routes6[i];
		}
		nr = k;
	}
	return nr;
}

struct udp_table *udp_table_new(const struct ipam_prefix *network, const struct ipam_prefix *own,
                                const struct udp_peer *peers, size_t n)
{
	return udp_table_new_ds(network, own, NULL, NULL, peers, n);
}

struct udp_table *udp_table_new_ds(const struct ipam_prefix *network, const struct ipam_prefix *own,
                                   const struct ipam_prefix *network6,
                                   const struct ipam_prefix *own6, const struct udp_peer *peers,
                                   size_t n)
{
	struct udp_table *t;
	struct udp_route *routes;
	struct udp_route6 *routes6;
	uint32_t *pubs;
	size_t i, nr = 0, np = 0, skipped = 0;
	uint32_t nf, nl, of = 0, ol = 0;
	bool has_own = false;

	if (!network || !prefix_range(network, &nf, &nl) ||
	    (network6 && network6->addr.family != AF_INET6)) {
		errno = EINVAL;
		return NULL;
	}
	if (own && prefix_range(own, &of, &ol))
		has_own = true;
	if (n > (SIZE_MAX - sizeof(*t)) / (sizeof(*routes6) + sizeof(*routes) + sizeof(*pubs))) {
		errno = ENOMEM;
		return NULL;
	}
	/* One block: the table, IPv6 routes (16-byte aligned), IPv4 routes, PublicIPs. */
	t = calloc(1, sizeof(*t) + n * (sizeof(*routes6) + sizeof(*routes) + sizeof(*pubs)));
	if (!t)
		return NULL;
	routes6 = (struct udp_route6 *)(t + 1);
	routes = (struct udp_route *)(routes6 + n);
	pubs = (uint32_t *)(routes + n);
	for (i = 0; i < n; i++) {
		uint32_t f, l;

		if (!prefix_range(&peers[i].subnet, &f, &l) ||
		    peers[i].public_ip.family != AF_INET || f < nf || l > nl ||
		    (has_own && f <= ol && of <= l)) {
			skipped++;
			continue;
		}
		routes[nr].first = f;
		routes[nr].last = l;
		memcpy(&routes[nr].peer_be, peers[i].public_ip.bytes, 4);
		nr++;
	}
	qsort(routes, nr, sizeof(*routes), route_cmp);
	/* Keep disjoint ranges only: an entry overlapping the previous kept one is dropped. */
	if (nr > 1) {
		size_t k = 1;

		for (i = 1; i < nr; i++) {
			if (routes[i].first <= routes[k - 1].last) {
				skipped++;
				continue;
			}
			routes[k++] = routes[i];
		}
		nr = k;
	}
	for (i = 0; i < nr; i++)
		pubs[i] = ntohl(routes[i].peer_be);
	qsort(pubs, nr, sizeof(*pubs), u32_cmp);
	for (i = 0; i < nr; i++)
		if (np == 0 || pubs[np - 1] != pubs[i])
			pubs[np++] = pubs[i];
	t->net_first = nf;
	t->net_last = nl;
	t->has_own = has_own;
	t->own_first = of;
	t->own_last = ol;
	t->routes = routes;
	t->nroutes = nr;
	t->peers = pubs;
	t->npeers = np;
	if (network6 && prefix6_range(network6, &t->net6_first, &t->net6_last)) {
		t->has_net6 = true;
		t->has_own6 = prefix6_range(own6, &t->own6_first, &t->own6_last);
		t->nroutes6 = build_routes6(t, routes6, peers, n, &skipped);
		t->routes6 = routes6;
	}
	t->skipped = skipped;
	return t;
}

void udp_table_free(struct udp_table *t)
{
	free(t);
}

const struct udp_route *udp_table_lookup(const struct udp_table *t, uint32_t dst_be)
{
	uint32_t d = ntohl(dst_be);
	size_t lo = 0, hi;

	if (!t)
		return NULL;
	hi = t->nroutes;
	/* The last route with first <= d. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->routes[mid].first <= d)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	return d <= t->routes[lo - 1].last ? &t->routes[lo - 1] : NULL;
}

const struct udp_route6 *udp_table_lookup6(const struct udp_table *t, const uint8_t *dst)
{
	udp_u128 d;
	size_t lo = 0, hi;

	if (!t || !t->nroutes6)
		return NULL;
	d = udp_u128_load(dst);
	hi = t->nroutes6;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->routes6[mid].first <= d)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	return d <= t->routes6[lo - 1].last ? &t->routes6[lo - 1] : NULL;
}

bool udp_table_is_peer(const struct udp_table *t, uint32_t src_be)
{
	uint32_t s = ntohl(src_be);
	size_t lo = 0, hi;

	if (!t)
		return false;
	hi = t->npeers;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->peers[mid] == s)
			return true;
		if (t->peers[mid] < s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

void udp_rcu_init(struct udp_rcu *r, size_t nreaders)
{
	size_t i;

	memset(r, 0, sizeof(*r));
	atomic_init(&r->cur, NULL);
	atomic_init(&r->epoch, 1);
	r->nreaders = nreaders > UDP_RCU_MAX_READERS ? UDP_RCU_MAX_READERS : nreaders;
	for (i = 0; i < UDP_RCU_MAX_READERS; i++)
		atomic_init(&r->readers[i].epoch, 0);
	r->retired = NULL;
}

static bool rcu_safe(struct udp_rcu *r, uint64_t retire_epoch)
{
	size_t i;

	for (i = 0; i < r->nreaders; i++) {
		uint64_t e = atomic_load(&r->readers[i].epoch);

		if (e != 0 && e < retire_epoch)
			return false;
	}
	return true;
}

size_t udp_rcu_reclaim(struct udp_rcu *r)
{
	struct udp_table **pp = &r->retired;
	size_t left = 0;

	while (*pp) {
		struct udp_table *t = *pp;

		if (rcu_safe(r, t->retire_epoch)) {
			*pp = t->next_retired;
			udp_table_free(t);
		} else {
			left++;
			pp = &t->next_retired;
		}
	}
	return left;
}

void udp_rcu_publish(struct udp_rcu *r, struct udp_table *t)
{
	/*
	 * All sequentially consistent: a reader stores its epoch, then loads cur; we
	 * exchange cur, then bump the epoch and read the readers' epochs. A reader
	 * that still sees the old table has an epoch below the new one.
	 */
	struct udp_table *old = atomic_exchange(&r->cur, t);
	uint64_t e = atomic_fetch_add(&r->epoch, 1) + 1;

	if (old) {
		old->retire_epoch = e;
		old->next_retired = r->retired;
		r->retired = old;
	}
	udp_rcu_reclaim(r);
}

void udp_rcu_destroy(struct udp_rcu *r)
{
	struct udp_table *t = atomic_exchange(&r->cur, NULL);

	udp_table_free(t);
	while (r->retired) {
		t = r->retired;
		r->retired = t->next_retired;
		udp_table_free(t);
	}
}

const struct udp_table *udp_rcu_online(struct udp_rcu *r, size_t i)
{
	atomic_store(&r->readers[i].epoch, atomic_load(&r->epoch));
	return atomic_load(&r->cur);
}

void udp_rcu_offline(struct udp_rcu *r, size_t i)
{
	atomic_store_explicit(&r->readers[i].epoch, 0, memory_order_release);
}
