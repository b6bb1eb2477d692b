/* The udp backend's per-peer drop table (see udp_peerdrop.h). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "backends/udp_peerdrop.h"

#define PEERDROP_USED (1ULL << 40)

static uint64_t make_key(uint32_t addr_be, enum udp_verdict reason)
{
	return PEERDROP_USED | (uint64_t)ntohl(addr_be) << 8 | ((uint64_t)reason & 0xff);
}

void udp_peer_drops_note(struct udp_peer_drops *d, uint32_t addr_be, enum udp_verdict reason,
                         uint64_t n)
{
	uint64_t key = make_key(addr_be, reason);
	struct udp_peer_drop_slot *s;
	size_t i;

	for (i = 0; i < UDP_PEER_DROPS; i++) {
		s = &d->s[i];
		if (atomic_load_explicit(&s->key, memory_order_relaxed) == key) {
			/* One writer: a load and a store, no locked instruction. */
			atomic_store_explicit(&s->n,
			                      atomic_load_explicit(&s->n, memory_order_relaxed) + n,
			                      memory_order_release);
			return;
		}
	}
	s = &d->s[d->next];
	d->next = (d->next + 1) % UDP_PEER_DROPS;
	/* Count 0 before the new key, the count after it: a reader that sees the new key with
	 * the old pair's count reads a count of 0 (skipped) or rereads a changed key. */
	atomic_store_explicit(&s->n, 0, memory_order_relaxed);
	atomic_store_explicit(&s->key, key, memory_order_release);
	atomic_store_explicit(&s->n, n, memory_order_release);
}

static int drop_cmp(const void *a, const void *b)
{
	const struct udp_peer_drop *x = a, *y = b;
	uint32_t xa = ntohl(x->addr_be), ya = ntohl(y->addr_be);

	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	if (xa != ya)
		return xa < ya ? -1 : 1;
	return (int)x->reason - (int)y->reason;
}

/* Add the pair of @key with @n to @all (of *@nall entries), merging an equal pair. */
static void merge_one(struct udp_peer_drop *all, size_t *nall, uint64_t key, uint64_t n)
{
	uint32_t addr_be = htonl((uint32_t)(key >> 8));
	enum udp_verdict reason = (enum udp_verdict)(key & 0xff);
	size_t j;

	for (j = 0; j < *nall; j++)
		if (all[j].addr_be == addr_be && all[j].reason == reason) {
			all[j].n += n;
			return;
		}
	all[*nall].addr_be = addr_be;
	all[*nall].reason = reason;
	all[*nall].n = n;
	(*nall)++;
}

size_t udp_peer_drops_merge(const struct udp_peer_drops *tabs, size_t ntabs,
                            struct udp_peer_drop *ret, size_t max)
{
	struct udp_peer_drop *all;
	size_t t, i, nall = 0;

	if (!tabs || ntabs == 0 || !ret || max == 0)
		return 0;
	all = calloc(ntabs * UDP_PEER_DROPS, sizeof(*all));
	if (!all)
		return 0;
	for (t = 0; t < ntabs; t++)
		for (i = 0; i < UDP_PEER_DROPS; i++) {
			const struct udp_peer_drop_slot *s = &tabs[t].s[i];
			uint64_t k1 = atomic_load_explicit(&s->key, memory_order_acquire);
			uint64_t n = atomic_load_explicit(&s->n, memory_order_acquire);
			uint64_t k2 = atomic_load_explicit(&s->key, memory_order_acquire);

			if (k1 == 0 || k1 != k2 || n == 0)
				continue; /* empty, or being replaced */
			merge_one(all, &nall, k1, n);
		}
	qsort(all, nall, sizeof(*all), drop_cmp);
	if (nall > max)
		nall = max;
	memcpy(ret, all, nall * sizeof(*all));
	free(all);
	return nall;
}
