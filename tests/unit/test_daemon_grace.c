/* daemon/grace: deferred withdrawal of expired remote leases, one burst per timer. */
#include <criterion/criterion.h>
#include <string.h>

#include "daemon/grace.h"
#include "lib/ev.h"
#include "subnet/lease.h"

struct burst {
	int calls;
	size_t n;
	char subnets[8][32];
};

static void withdraw(void *ctx, const struct lease *const *leases, size_t n)
{
	struct burst *b = ctx;
	char p[IPAM_PREFIX_STRLEN];

	b->calls++;
	for (size_t i = 0; i < n && b->n < 8; i++)
		snprintf(b->subnets[b->n++], sizeof(b->subnets[0]), "%s",
		         ipam_prefix_format(&leases[i]->subnet, p));
}

static struct lease mk(const char *key, const char *ip)
{
	struct lease l;
	char json[128], err[256];

	cr_assert_eq(lease_key_parse(key, &l), 0);
	snprintf(json, sizeof(json), "{\"PublicIP\":\"%s\"}", ip);
	cr_assert_eq(lease_attrs_parse(json, strlen(json), &l.attrs, err, sizeof(err)), 0);
	l.store_lease_id = 7;
	return l;
}

Test(grace, burst_cancel_and_changed_attrs)
{
	struct ev_loop *loop = ev_loop_new();
	struct burst b = { 0 };
	struct grace *g = grace_new(loop, 100, 20, withdraw, &b);
	struct lease a = mk("198.18.1.0-24", "192.0.2.1"), c = mk("198.18.2.0-24", "192.0.2.2");
	struct lease c2 = mk("198.18.2.0-24", "192.0.2.9"), d = mk("198.18.3.0-24", "192.0.2.3");
	bool same = true, never = false;
	uint64_t t0 = ev_now_ms();

	cr_assert_not_null(g);
	cr_assert_eq(grace_add(g, &a), 0);
	cr_assert_eq(grace_add(g, &c), 0);
	cr_assert_eq(grace_add(g, &d), 0);
	cr_assert(grace_cancel(g, &a, &same), "a was pending");
	cr_assert(same, "same attributes: nothing to do in the kernel");
	cr_assert(grace_cancel(g, &c2, &same));
	cr_assert_not(same, "another public IP: the caller updates the kernel");
	cr_assert_not(grace_cancel(g, &a, &same), "no longer pending");
	ev_loop_run_until(loop, &never, 400);
	cr_assert_eq(b.calls, 1, "one burst");
	cr_assert_eq(b.n, 1);
	cr_assert_str_eq(b.subnets[0], "198.18.3.0/24");
	cr_assert_geq(ev_now_ms() - t0, 100);

	/* After a reset nothing is withdrawn. */
	cr_assert_eq(grace_add(g, &a), 0);
	grace_reset(g);
	ev_loop_run_until(loop, &never, 250);
	cr_assert_eq(b.calls, 1);
	grace_free(g);
	grace_free(NULL);
	lease_clear(&a);
	lease_clear(&c);
	lease_clear(&c2);
	lease_clear(&d);
	ev_loop_free(loop);
}
