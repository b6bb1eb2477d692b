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

struct udp_table *udp_table_new(const struct ipam_prefix *network, const struct ipam_prefix *own,
                                const struct udp_peer *peers, size_t n)
{
	struct udp_table *t;
	struct udp_route *routes;
	uint32_t *pubs;
	size_t i, nr = 0, np = 0, skipped = 0;
	uint32_t nf, nl, of = 0, ol = 0;
	bool has_own = false;

	if (!network || !prefix_range(network, &nf, &nl)) {
		errno = EINVAL;
		return NULL;
	}
	if (own && prefix_range(own, &of, &ol))
		has_own = true;
	if (n > (SIZE_MAX - sizeof(*t)) / (sizeof(*routes) + sizeof(*pubs))) {
		errno = ENOMEM;
		return NULL;
	}
	t = calloc(1, sizeof(*t) + n * (sizeof(*routes) + sizeof(*pubs)));
	if (!t)
		return NULL;
	routes = (struct udp_route *)(t + 1);
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
