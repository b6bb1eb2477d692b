/* Test hooks for the local file store (see store_local_test.h). */
#include <errno.h>
#include <stdint.h>

#include "subnet/store_local_int.h"
#include "tests/support/store_local_test.h"

#define TICK_MS 250 /* store_local.c's check interval */

bool store_is_local(const struct store *s)
{
	return store_local_of((struct store *)(uintptr_t)s) != NULL;
}

int64_t store_local_revision(struct store *st)
{
	if (!store_is_local(st))
		return -EINVAL;
	store_local_refresh(store_local_of(st), false);
	return store_local_of(st)->m.rev;
}

int store_local_compact(struct store *st, int64_t rev)
{
	struct local_store *s;

	if (!store_is_local(st))
		return -EINVAL;
	s = store_local_of(st);
	store_local_refresh(s, false);
	if (rev == 0)
		rev = s->m.rev;
	if (rev > s->m.rev || rev < 0)
		return -EINVAL;
	lmap_log_trim(&s->m, rev);
	store_local_kick(s);
	return 0;
}

int store_local_expire(struct store *st, int64_t lease_id)
{
	struct local_store *s;
	struct llease *l;
	int r = 0;

	if (!store_is_local(st))
		return -EINVAL;
	s = store_local_of(st);
	lfile_txn_begin(&s->f, &s->m);
	l = lmap_lease_find(&s->m, lease_id);
	if (l)
		l->expires_ms = 0;
	else
		r = -ENOENT;
	lmap_expire_due(&s->m, lfile_now_ms());
	lfile_txn_end(&s->f, &s->m);
	store_local_kick(s);
	return r;
}

int store_local_break_watches(struct store *st, int err)
{
	struct local_store *s;

	if (!store_is_local(st) || err >= 0)
		return -EINVAL;
	s = store_local_of(st);
	for (struct store_watch *w = s->watches; w; w = w->next)
		if (!w->dead)
			w->err = err;
	store_local_kick(s);
	return 0;
}

int store_local_set_time_unit(struct store *st, int64_t ms)
{
	int64_t tick;

	if (!store_is_local(st) || ms <= 0)
		return -EINVAL;
	store_local_of(st)->m.unit_ms = ms;
	/* Expire at a quarter of a unit at most, as etcd checks every 0.5 s. */
	tick = ms / 4 < TICK_MS ? (ms / 4 > 2 ? ms / 4 : 2) : TICK_MS;
	store_local_set_tick(store_local_of(st), (uint64_t)tick);
	return 0;
}

int store_local_fail_next(struct store *st, int err, int count)
{
	if (!store_is_local(st) || err >= 0 || count < 0)
		return -EINVAL;
	store_local_of(st)->fail_err = err;
	store_local_of(st)->fail_count = count;
	return 0;
}

int store_local_lease_ttl(struct store *st, int64_t lease_id, int64_t *ret_ttl_s)
{
	struct local_store *s;
	struct llease *l;

	if (!store_is_local(st))
		return -EINVAL;
	s = store_local_of(st);
	lfile_txn_begin(&s->f, &s->m);
	l = lmap_lease_find(&s->m, lease_id);
	if (l) {
		*ret_ttl_s = lmap_lease_left_s(&s->m, l, lfile_now_ms());
	}
	lfile_txn_end(&s->f, &s->m);
	store_local_kick(s); /* deliver what the re-read found */
	return l ? 0 : -ENOENT;
}

int store_local_set_page_size(struct store *st, size_t n)
{
	if (!store_is_local(st) || n == 0)
		return -EINVAL;
	store_local_of(st)->page_size = n;
	return 0;
}
