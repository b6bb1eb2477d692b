/* The removal grace (see grace.h): deferred withdrawals, one timer, indexed by subnets. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/grace.h"
#include "lib/ev.h"

/* A remote lease whose withdrawal is deferred; !live once it came back (the slot is kept). */
struct gone {
	struct lease l;
	uint64_t since_ms; /* when it was removed (ev_now_ms) */
	bool live;
};

struct grace {
	uint64_t grace_ms, slack_ms;
	grace_withdraw_cb cb;
	void *ctx;
	struct ev_timer *timer;
	struct gone *gone;          /* in arrival order: the burst goes out in that order */
	const struct lease **burst; /* room for every entry of gone */
	size_t n_gone, n_live;
	uint32_t *idx;  /* open addressing by subnets: index + 1, 0 = free */
	size_t idx_cap; /* a power of two, >= 2 * n_gone */
};

static bool same_subnets(const struct lease *a, const struct lease *b)
{
	return a->has_ipv4 == b->has_ipv4 && a->has_ipv6 == b->has_ipv6 &&
	       (!a->has_ipv4 || ipam_prefix_equal(&a->subnet, &b->subnet)) &&
	       (!a->has_ipv6 || ipam_prefix_equal(&a->ipv6_subnet, &b->ipv6_subnet));
}

static uint64_t subnets_hash(const struct lease *l)
{
	const struct ipam_prefix *p[2] = { l->has_ipv4 ? &l->subnet : NULL,
		                           l->has_ipv6 ? &l->ipv6_subnet : NULL };
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (size_t k = 0; k < 2; k++) {
		size_t n;

		h = (h ^ (p[k] ? 1u : 0u)) * 1099511628211ULL;
		if (!p[k])
			continue;
		n = p[k]->addr.family == AF_INET ? 4 : 16;
		for (size_t i = 0; i < n; i++)
			h = (h ^ p[k]->addr.bytes[i]) * 1099511628211ULL;
		h = (h ^ p[k]->len) * 1099511628211ULL;
	}
	return h;
}

/* The slot of @l's subnets in idx: the one holding it, or the free one to take. */
static size_t slot_of(const struct grace *g, const struct lease *l)
{
	size_t mask = g->idx_cap - 1, i = (size_t)subnets_hash(l) & mask;

	while (g->idx[i] && !same_subnets(&g->gone[g->idx[i] - 1].l, l))
		i = (i + 1) & mask;
	return i;
}

static void reindex(struct grace *g)
{
	memset(g->idx, 0, g->idx_cap * sizeof(*g->idx));
	for (size_t i = 0; i < g->n_gone; i++)
		g->idx[slot_of(g, &g->gone[i].l)] = (uint32_t)i + 1;
}

void grace_reset(struct grace *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_gone; i++)
		lease_clear(&g->gone[i].l);
	free(g->gone);
	free(g->burst);
	free(g->idx);
	g->gone = NULL;
	g->burst = NULL;
	g->idx = NULL;
	g->n_gone = g->n_live = g->idx_cap = 0;
	ev_timer_stop(g->timer);
}

/* Room for one more entry; 0 or -ENOMEM (nothing lost). */
static int grow(struct grace *g)
{
	size_t cap = g->idx_cap ? 2 * g->idx_cap : 64;
	struct gone *ng;
	const struct lease **nb;
	uint32_t *ni;

	if (2 * (g->n_gone + 1) <= g->idx_cap)
		return 0;
	ng = realloc(g->gone, cap / 2 * sizeof(*ng));
	if (!ng)
		return -ENOMEM;
	g->gone = ng;
	nb = realloc(g->burst, cap / 2 * sizeof(*nb));
	if (!nb)
		return -ENOMEM;
	g->burst = nb;
	ni = calloc(cap, sizeof(*ni));
	if (!ni)
		return -ENOMEM;
	free(g->idx);
	g->idx = ni;
	g->idx_cap = cap;
	reindex(g);
	return 0;
}

int grace_add(struct grace *g, const struct lease *l)
{
	struct gone *e;
	size_t slot;
	int r = grow(g);

	if (r < 0)
		return r;
	slot = slot_of(g, l);
	if (g->idx[slot]) {
		/* withdrawn before and back since (or deferred twice): the new copy wins */
		e = &g->gone[g->idx[slot] - 1];
		lease_clear(&e->l);
		g->n_live -= e->live;
	} else {
		e = &g->gone[g->n_gone];
		g->idx[slot] = (uint32_t)++g->n_gone;
	}
	lease_copy(&e->l, l);
	e->since_ms = ev_now_ms();
	e->live = true;
	g->n_live++;
	if (!ev_timer_active(g->timer) && ev_timer_start(g->timer, g->grace_ms, 0) < 0) {
		e->live = false;
		g->n_live--;
		return -errno;
	}
	return 0;
}

bool grace_cancel(struct grace *g, const struct lease *l, bool *ret_same)
{
	struct gone *e;
	size_t slot;

	if (!g || g->n_live == 0)
		return false;
	slot = slot_of(g, l);
	if (!g->idx[slot])
		return false;
	e = &g->gone[g->idx[slot] - 1];
	if (!e->live)
		return false;
	e->live = false;
	g->n_live--;
	*ret_same = lease_attrs_equal(&e->l.attrs, &l->attrs);
	if (g->n_live == 0)
		grace_reset(g);
	return true;
}

/* The grace period is over: withdraw every lease still gone, as one burst. */
static void on_timer(struct ev_timer *t, void *ctx)
{
	struct grace *g = ctx;
	uint64_t now = ev_now_ms(), next = 0;
	size_t n = 0, keep = 0;

	(void)t;
	for (size_t i = 0; i < g->n_gone; i++) {
		struct gone *e = &g->gone[i];
		uint64_t age = now - e->since_ms;

		if (!e->live)
			continue;
		/* removed later than the burst that armed the timer: its own grace still runs */
		if (age + g->slack_ms < g->grace_ms) {
			if (!keep || g->grace_ms - age < next)
				next = g->grace_ms - age;
			keep++;
			continue;
		}
		e->live = false;
		g->n_live--;
		g->burst[n++] = &e->l;
	}
	if (n)
		g->cb(g->ctx, g->burst, n);
	if (!keep) {
		grace_reset(g);
		return;
	}
	/* keep only the pending ones (the set does not grow under steady churn) */
	for (size_t i = 0, j = 0; i < g->n_gone; i++) {
		if (g->gone[i].live)
			g->gone[j++] = g->gone[i];
		else
			lease_clear(&g->gone[i].l);
	}
	g->n_gone = keep;
	reindex(g);
	if (ev_timer_start(g->timer, next, 0) < 0)
		ev_timer_start(g->timer, 0, 0);
}

struct grace *grace_new(struct ev_loop *loop, uint64_t grace_ms, uint64_t slack_ms,
                        grace_withdraw_cb cb, void *ctx)
{
	struct grace *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->grace_ms = grace_ms;
	g->slack_ms = slack_ms;
	g->cb = cb;
	g->ctx = ctx;
	g->timer = ev_timer_new(loop, on_timer, g);
	if (!g->timer) {
		free(g);
		return NULL;
	}
	return g;
}

void grace_free(struct grace *g)
{
	if (!g)
		return;
	grace_reset(g);
	ev_timer_free(g->timer);
	free(g);
}
