/* Dual-stack create races on the local store (leasemgr_race.h). */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/ev.h"
#include "subnet/store.h"
#include "tests/support/store_local_test.h"
#include "leasemgr_testutil.h"
#include "leasemgr_race.h"

static char dir[64], path[PATH_MAX];

static struct store *race_other_store(struct ev_loop *l)
{
	struct store *s = store_local_new(l, path);

	cr_assert_not_null(s);
	return s;
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/twill-lr-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.json", dir);
	loop = ev_loop_new();
	cr_assert_not_null(loop);
	st = store_local_new(loop, path);
	cr_assert_not_null(st);
	/* Listings in pages of 2: the check after a create reads several pages. */
	cr_assert_eq(store_local_set_page_size(st, 2), 0);
}

static void teardown(void)
{
	char cmd[128];

	uint64_t deadline = ev_now_ms() + 10000;

	/* Requests of freed managers land first: freeing the store would cancel them. */
	for (int i = 0; i < 5 || (leasemgr_zombies() > 0 && ev_now_ms() < deadline); i++)
		ev_loop_run_once(loop, 1);
	cr_assert_eq(leasemgr_zombies(), 0, "requests of a freed lease manager never completed");
	store_free(st);
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(leasemgr_race, .init = setup, .fini = teardown, .timeout = 60);

Test(leasemgr_race, create_guarded_by_ipv4_part)
{
	race_store_guarded();
}

Test(leasemgr_race, same_ipv4_other_ipv6_second_picks_again)
{
	race_same_ipv4();
}

Test(leasemgr_race, same_ipv6_other_ipv4_later_gives_back)
{
	race_same_ipv6();
}

Test(leasemgr_race, eight_at_once_tiny_network_distinct_halves)
{
	race_many(10);
}
