/* Dual-stack create races on a real etcd (tests/support/etcd_fixture.h, leasemgr_race.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/ev.h"
#include "subnet/store.h"
#include "tests/support/etcd_fixture.h"

#define LM_WAIT_MS 10000
#include "leasemgr_testutil.h"
#include "leasemgr_race.h"

static struct etcd_fixture *fx;

static struct store *race_other_store(struct ev_loop *l)
{
	struct store_opts o = { .endpoints = fx->endpoints, .request_timeout_ms = 5000 };
	struct store *s = store_etcd_new(l, &o);

	cr_assert_not_null(s);
	return s;
}

static void setup(void)
{
	fx = etcd_fixture_start(&(struct etcd_fixture_opts){ .members = 1 });
	cr_assert_not_null(fx, "etcd did not start");
	loop = ev_loop_new();
	cr_assert_not_null(loop);
	st = race_other_store(loop);
}

static void teardown(void)
{
	uint64_t deadline = ev_now_ms() + 10000;

	/* Requests of freed managers land first: freeing the store would cancel them. */
	for (int i = 0; i < 5 || (leasemgr_zombies() > 0 && ev_now_ms() < deadline); i++)
		ev_loop_run_once(loop, 10);
	cr_assert_eq(leasemgr_zombies(), 0, "requests of a freed lease manager never completed");
	store_free(st);
	ev_loop_free(loop);
	etcd_fixture_stop(fx);
}

TestSuite(leasemgr_race_etcd, .init = setup, .fini = teardown, .timeout = 90);

/* etcd's Compare over a range (docs/etcd.md): the IPv4 part guards the whole key. */
Test(leasemgr_race_etcd, create_guarded_by_ipv4_part)
{
	race_store_guarded();
}

Test(leasemgr_race_etcd, same_ipv4_other_ipv6_second_picks_again)
{
	race_same_ipv4();
}

Test(leasemgr_race_etcd, same_ipv6_other_ipv4_later_gives_back)
{
	race_same_ipv6();
}

Test(leasemgr_race_etcd, eight_at_once_tiny_network_distinct_halves)
{
	race_many(10);
}
