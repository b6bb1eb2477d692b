/*
 * The route set's error records against the real kernel, in a private network namespace:
 * an IPv4 set (host-gw routes and vxlan-like overlay leases on a VXLAN device) and an IPv6
 * set share one netlink batch of several thousand messages (several sends of NL_BATCH_MSGS),
 * and the kernel refuses the objects of some leases in every part of it (gateways off the
 * underlay). Each refusal must be logged once, with its own lease and family, and while a
 * batch with removals is built and sent, entries that are removed (and freed after it) must
 * not be reached by the ACKs (ASan in the sanitizer build).
 */
#include "tests/unit/nltest.h"

#include <fcntl.h>
#include <arpa/inet.h>

#include "backends/routeset.h"
#include "lib/log.h"
#include "lib/nl.h"

#define N4 1500       /* IPv4 leases: 198.18.0.0/16 in /28 steps from 198.18.1.0 */
#define N6 600        /* IPv6 leases: 2001:db8:100:<i + 1>::/64 */
#define NT (N4 + 300) /* and the IPv4 leases added in the second batch */

static struct be_extif ext;
static int vx;
static int saved_stderr = -1;
static char logfile[64];

static void setup(void)
{
	log_init("test", LOG_LVL_WARN);
	netns_underlay(&ext);
	cr_assert_eq(sh("ip -6 addr add 2001:db8::1/64 dev ul nodad && "
	                "ip link add vx0 type vxlan id 7 dstport 4789 local 192.0.2.1 dev ul && "
	                "ip link set vx0 up"),
	             0);
	vx = (int)if_nametoindex("vx0");
	cr_assert(vx > 0);
}

TestSuite(routeset, .init = setup, .timeout = 120);

static int ensure_vx(void *ctx)
{
	(void)ctx;
	return vx;
}

/* Lease @i of the IPv4 set: overlay when i % 3 == 0; refused (gateway off the underlay) when
 * @bad. Host-gw leases' gateways are on the underlay's /24. */
static struct rs_lease lease4(unsigned i, bool bad)
{
	struct rs_lease l = { .overlay = i % 3 == 0 };
	char s[64];

	snprintf(s, sizeof(s), "198.18.%u.%u/28", (i + 16) >> 4, ((i + 16) & 15) << 4);
	cr_assert_eq(ipam_prefix_parse(s, &l.subnet), 0);
	snprintf(s, sizeof(s), bad ? "198.51.100.%u" : "192.0.2.%u", 2 + i % 200);
	cr_assert_eq(ipam_addr_parse(s, &l.public_ip), 0);
	l.mac[0] = 2, l.mac[4] = (uint8_t)(i >> 8), l.mac[5] = (uint8_t)i;
	if (bad)
		l.overlay = false; /* overlay objects are onlink: the kernel takes them all */
	return l;
}

static struct rs_lease lease6(unsigned i, bool bad)
{
	struct rs_lease l = { 0 };
	char s[64];

	snprintf(s, sizeof(s), "2001:db8:100:%x::/64", i + 1);
	cr_assert_eq(ipam_prefix_parse(s, &l.subnet), 0);
	snprintf(s, sizeof(s), bad ? "2001:db8:1::%x" : "2001:db8::%x", i + 2);
	cr_assert_eq(ipam_addr_parse(s, &l.public_ip), 0);
	return l;
}

/* The leases refused in the first batch: some in every 1024 messages. */
static bool bad4(unsigned i)
{
	return i % 97 == 50;
}

static bool bad6(unsigned i)
{
	return i % 89 == 10;
}

static struct routeset *new_set(uint8_t family, bool nh, struct routeset *share)
{
	struct rs_params p = { .name = family == AF_INET6 ? "t6" : "t4",
		               .family = family,
		               .ext_ifindex = ext.ifindex,
		               .nh_base = family == AF_INET6 ? 2u << 24 : 1u << 24,
		               .nexthops = nh,
		               .ensure_dev = family == AF_INET6 ? NULL : ensure_vx,
		               .share = share };
	struct routeset *rs;

	cr_assert_eq(ipam_prefix_parse(family == AF_INET6 ? "2001:db8:100::/48" : "198.18.0.0/16",
	                               &p.network),
	             0);
	rs = routeset_new(&p);
	cr_assert(rs, "routeset_new: %s", strerror(errno));
	cr_assert_eq(routeset_start(rs), 0);
	cr_assert_eq(routeset_uses_nexthops(rs), nh, "this kernel has no nexthop objects");
	return rs;
}

static void capture_log(void)
{
	int fd;

	snprintf(logfile, sizeof(logfile), "/tmp/twill-be-routeset-XXXXXX");
	fd = mkstemp(logfile);
	cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	cr_assert(saved_stderr >= 0);
	cr_assert_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* Stop capturing; what was logged meanwhile (to free). */
static char *captured_log(void)
{
	char *buf = calloc(1, 1 << 20);
	size_t n;
	FILE *f;

	cr_assert(buf);
	fflush(stderr);
	cr_assert_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(saved_stderr);
	f = fopen(logfile, "r");
	cr_assert(f);
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	unlink(logfile);
	cr_assert(n < (1 << 20) - 1, "log too long");
	return buf;
}

/* Lines of @log containing @needle. */
static unsigned count_in(const char *log, const char *needle)
{
	unsigned n = 0;

	for (const char *p = log; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* @l's refusal of @what was logged exactly @times times by set @set; and nothing else about it
 * when @times is 0. */
static void assert_logged(const char *log, const char *set, const struct rs_lease *l,
                          const char *what, unsigned times)
{
	char a[INET6_ADDRSTRLEN], needle[160];

	inet_ntop(l->subnet.addr.family, l->subnet.addr.bytes, a, sizeof(a));
	snprintf(needle, sizeof(needle), "%s: lease %s-%u: %s", set, a, l->subnet.len,
	         times ? what : "");
	cr_assert_eq(count_in(log, needle), times, "`%s` logged %u times, not %u:\n%.2000s", needle,
	             count_in(log, needle), times, log);
}

/* The kernel routes of the wanted leases: @want[i] says whether lease i is routed. */
static void assert_routes(int family, const bool *want, unsigned n)
{
	json_t *routes = shj("ip -j %s route show root %s", family == AF_INET6 ? "-6" : "-4",
	                     family == AF_INET6 ? "2001:db8:100::/48" : "198.18.0.0/16");
	unsigned expect = 0;

	for (unsigned i = 0; i < n; i++) {
		struct rs_lease l = family == AF_INET6 ? lease6(i, false) : lease4(i, false);
		char dst[IPAM_PREFIX_STRLEN];

		ipam_prefix_format(&l.subnet, dst);
		cr_assert_eq(find_by(routes, "dst", dst) != NULL, want[i], "route %s: %s", dst,
		             want[i] ? "missing" : "there");
		expect += want[i];
	}
	cr_assert_eq(json_array_size(routes), expect, "%zu routes for %u leases",
	             json_array_size(routes), expect);
	json_decref(routes);
}

/* Phase 2's new IPv4 lease @i (>= N4) is refused; or set and removed before the batch. */
static bool bad_new(unsigned i)
{
	return i % 97 == 20;
}

static bool gone_new(unsigned i)
{
	return i % 7 == 0;
}

static void refusals_and_removals(bool nh)
{
	struct rs_lease *v4 = calloc(NT, sizeof(*v4)), *v6 = calloc(N6, sizeof(*v6));
	bool *w4 = calloc(NT, sizeof(bool)), *w6 = calloc(N6, sizeof(bool));
	unsigned nbad = 0, objs = nh ? 2 : 1, nneigh = 0;
	struct routeset *rs4 = new_set(AF_INET, nh, NULL), *rs6 = new_set(AF_INET6, nh, rs4);
	char *log;
	int r;

	cr_assert(v4 && v6 && w4 && w6);
	/* 1. One batch for both families: install everything; the kernel refuses the bad ones. */
	for (unsigned i = 0; i < N4; i++) {
		v4[i] = lease4(i, bad4(i)), w4[i] = !bad4(i), nbad += bad4(i);
		nneigh += v4[i].overlay;
	}
	for (unsigned i = 0; i < N6; i++)
		v6[i] = lease6(i, bad6(i)), w6[i] = !bad6(i), nbad += bad6(i);
	capture_log();
	routeset_hold(rs4);
	cr_assert_eq(routeset_resync(rs4, v4, N4), 0);
	cr_assert_eq(routeset_resync(rs6, v6, N6), 0);
	r = routeset_release(rs4);
	log = captured_log();
	cr_assert_eq(r, (int)(nbad * objs), "%d refusals for %u bad leases", r, nbad);
	for (unsigned i = 0; i < N4; i++) {
		assert_logged(log, "t4", &v4[i], "installing route failed", bad4(i));
		if (nh)
			assert_logged(log, "t4", &v4[i], "installing nexthop failed", bad4(i));
	}
	for (unsigned i = 0; i < N6; i++) {
		assert_logged(log, "t6", &v6[i], "installing route failed", bad6(i));
		if (nh)
			assert_logged(log, "t6", &v6[i], "installing nexthop failed", bad6(i));
	}
	free(log);
	assert_routes(AF_INET, w4, NT);
	assert_routes(AF_INET6, w6, N6);
	cr_assert_eq(shj_count("ip -j neigh show dev vx0 nud permanent"), nneigh);

	/*
	 * 2. One batch that removes leases (programmed and refused ones), installs the refused
	 * ones of IPv6 again (accepted now), adds new IPv4 leases (some refused) and removes some
	 * of them again before the batch (entries freed after it). Only the new bad leases are
	 * refused (removing what is not there is no error), each logged once.
	 */
	capture_log();
	routeset_hold(rs4);
	for (unsigned i = 0; i < N4; i++) {
		if (i % 10 == 3 || (bad4(i) && i % 2)) {
			cr_assert_eq(routeset_unset(rs4, &v4[i].subnet), 0);
			w4[i] = false;
		} else if (bad4(i)) {
			v4[i] = lease4(i, false);
			cr_assert_eq(routeset_set(rs4, &v4[i]), 0);
			w4[i] = true;
		}
	}
	for (unsigned i = 0; i < N6; i++) {
		if (i % 10 == 7) {
			cr_assert_eq(routeset_unset(rs6, &v6[i].subnet), 0);
			w6[i] = false;
		} else if (bad6(i)) {
			v6[i] = lease6(i, false);
			cr_assert_eq(routeset_set(rs6, &v6[i]), 0);
			w6[i] = true;
		}
	}
	for (unsigned i = N4; i < NT; i++) {
		v4[i] = lease4(i, bad_new(i));
		cr_assert_eq(routeset_set(rs4, &v4[i]), 0);
		w4[i] = !bad_new(i);
	}
	for (unsigned i = N4; i < NT; i++) {
		if (gone_new(i)) {
			cr_assert_eq(routeset_unset(rs4, &v4[i].subnet), 0);
			w4[i] = false;
		}
	}
	r = routeset_release(rs4);
	log = captured_log();
	nbad = 0;
	for (unsigned i = 0; i < NT; i++) {
		bool refused = i >= N4 && bad_new(i) && !gone_new(i);

		nbad += refused;
		assert_logged(log, "t4", &v4[i], refused ? "installing route failed" : "", refused);
		if (nh)
			assert_logged(log, "t4", &v4[i], "installing nexthop failed", refused);
	}
	for (unsigned i = 0; i < N6; i++)
		assert_logged(log, "t6", &v6[i], "", 0);
	/* (the count includes the removals of what is not there, not logged) */
	cr_assert(r >= (int)(nbad * objs), "%d refusals for %u bad leases:\n%.2000s", r, nbad, log);
	free(log);
	assert_routes(AF_INET, w4, NT);
	assert_routes(AF_INET6, w6, N6);

	/* 3. A reconcile finds nothing to change but the refused leases (tried again). */
	capture_log();
	r = routeset_reconcile(rs4);
	free(captured_log());
	cr_assert_eq(r, (int)(nbad * objs), "reconcile: %d", r);
	cr_assert_eq(routeset_reconcile(rs6), 0);
	assert_routes(AF_INET, w4, NT);
	assert_routes(AF_INET6, w6, N6);
	if (nh)
		cr_assert_eq(shj_count("ip -j nexthop show"),
		             shj_count("ip -j route show root 198.18.0.0/16") +
		                     shj_count("ip -j -6 route show root 2001:db8:100::/48"));
	routeset_free(rs4);
	routeset_free(rs6);
	free(v4), free(v6), free(w4), free(w6);
}

Test(routeset, refusals_and_removals_nexthops)
{
	refusals_and_removals(true);
}

Test(routeset, refusals_and_removals_plain_routes)
{
	refusals_and_removals(false);
}
