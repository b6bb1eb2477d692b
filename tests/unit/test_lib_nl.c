/* lib/nl against the real kernel, each test in a private network namespace. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/wait.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include "lib/nl.h"

static int ul;

static int sh(const char *cmd)
{
	int r = system(cmd);

	return r == -1 ? -1 : WEXITSTATUS(r);
}

static void setup(void)
{
	cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare: %s", strerror(errno));
	cr_assert_eq(
		sh("ip link set lo up && ip link add ul type veth peer name ulp && "
	           "ip addr add 192.0.2.1/24 dev ul && ip link set ul up && ip link set ulp up"),
		0);
	ul = (int)if_nametoindex("ul");
}

TestSuite(nl, .init = setup, .timeout = 30);

static struct in_addr ip4(const char *s)
{
	struct in_addr a;

	cr_assert_eq(inet_pton(AF_INET, s, &a), 1);
	return a;
}

struct errs {
	int n;
	uintptr_t cookie[8];
	int err[8];
	char text[8][NL_ERRMSG_MAX];
};

static void on_err(void *ctx, void *cookie, int err, const char *extack)
{
	struct errs *e = ctx;

	if (e->n < 8) {
		e->cookie[e->n] = (uintptr_t)cookie;
		e->err[e->n] = err;
		snprintf(e->text[e->n], NL_ERRMSG_MAX, "%s", extack);
	}
	e->n++;
}

struct count {
	int routes, ours;
};

static int count_routes(const struct nlmsghdr *nlh, void *ctx)
{
	struct count *c = ctx;
	struct nl_route r;

	if (nl_parse_route(nlh, &r) < 0 || r.table != RT_TABLE_MAIN)
		return 0;
	c->routes++;
	if (r.oif == ul && r.has_gw && (ntohl(r.dst.s_addr) >> 16) == ((198u << 8) | 18u))
		c->ours++;
	return 0;
}

Test(nl, batch_maps_errors_to_cookies)
{
	struct nl_sock *sk = nl_sock_open(NULL, 0);
	struct errs e = { 0 };
	struct nl_batch *b = nl_batch_new(sk, on_err, NULL, &e);
	struct nl_route r = { .dst_len = 24, .oif = ul, .has_gw = true };
	struct count c = { 0 };

	cr_assert(sk && b);
	r.dst = ip4("198.18.1.0");
	r.gw = ip4("192.0.2.11");
	cr_assert_eq(nl_batch_route(b, NL_OP_REPLACE, &r, (void *)1), 0);
	r.dst = ip4("198.18.2.0");
	r.gw = ip4("203.0.113.1"); /* not on any segment: refused */
	cr_assert_eq(nl_batch_route(b, NL_OP_REPLACE, &r, (void *)2), 0);
	r.dst = ip4("198.18.3.0");
	r.gw = ip4("192.0.2.13");
	cr_assert_eq(nl_batch_route(b, NL_OP_REPLACE, &r, (void *)3), 0);
	r.dst = ip4("198.18.4.0");
	cr_assert_eq(nl_batch_route(b, NL_OP_DELETE, &r, (void *)4), 0); /* absent: -ESRCH */
	cr_assert_eq(nl_batch_pending(b), 4);
	cr_assert_eq(nl_batch_commit(b), 2);
	cr_assert_eq(e.n, 2);
	cr_assert_eq(e.cookie[0], 2);
	cr_assert_eq(e.err[0], -ENETUNREACH);
	cr_assert_eq(e.cookie[1], 4);
	cr_assert_eq(e.err[1], -ESRCH);
	cr_assert_eq(nl_dump(sk, RTM_GETROUTE, AF_INET, count_routes, &c), 0);
	cr_assert_eq(c.ours, 2);
	/* reusable, and idempotent (replace) */
	r.dst = ip4("198.18.1.0");
	r.gw = ip4("192.0.2.11");
	cr_assert_eq(nl_batch_route(b, NL_OP_REPLACE, &r, (void *)5), 0);
	cr_assert_eq(nl_batch_commit(b), 0);
	nl_batch_free(b);
	nl_sock_close(sk);
}

Test(nl, extended_ack_text)
{
	struct nl_sock *sk = nl_sock_open(NULL, 0);
	struct errs e = { 0 };
	struct nl_batch *b = nl_batch_new(sk, on_err, NULL, &e);
	struct nl_nexthop nh = { .id = 7, .oif = ul, .has_gw = true };

	nh.gw = ip4("203.0.113.1"); /* not on link: the kernel explains */
	cr_assert_eq(nl_batch_nexthop(b, NL_OP_REPLACE, &nh, (void *)9), 0);
	cr_assert_eq(nl_batch_commit(b), 1);
	cr_assert_eq(e.cookie[0], 9);
	cr_assert_neq(e.text[0][0], '\0', "no extended ACK text");
	nl_batch_free(b);
	nl_sock_close(sk);
}

Test(nl, many_messages_few_sendmsg)
{
	enum { N = 5000 };
	struct nl_sock *sk = nl_sock_open(NULL, 0);
	struct errs e = { 0 };
	struct nl_batch *b = nl_batch_new(sk, on_err, NULL, &e);
	struct nl_stats st;
	struct count c = { 0 };

	nl_stats_reset();
	for (unsigned i = 0; i < N; i++) {
		struct nl_route r = { .dst_len = 30, .oif = ul, .has_gw = true };

		r.dst.s_addr = htonl((198u << 24) | (18u << 16) | (i << 2));
		r.gw = ip4("192.0.2.50");
		cr_assert_eq(nl_batch_route(b, NL_OP_REPLACE, &r, NULL), 0);
	}
	cr_assert_eq(nl_batch_commit(b), 0);
	nl_stats_get(&st);
	cr_assert_eq(st.messages, N);
	cr_assert_leq(st.sendmsg_calls, 10, "%llu sendmsg", (unsigned long long)st.sendmsg_calls);
	cr_assert_eq(nl_dump(sk, RTM_GETROUTE, AF_INET, count_routes, &c), 0);
	cr_assert_eq(c.ours, N);
	nl_batch_free(b);
	nl_sock_close(sk);
}

struct lookup {
	int replies;
	struct nl_route r;
};

static void on_reply(void *ctx, void *cookie, const struct nlmsghdr *nlh)
{
	struct lookup *l = ctx;

	cr_assert_eq((uintptr_t)cookie, 1);
	cr_assert_eq(nl_parse_route(nlh, &l->r), 0);
	l->replies++;
}

Test(nl, getroute_in_batch)
{
	struct nl_sock *sk = nl_sock_open(NULL, 0);
	struct lookup l = { 0 };
	struct nl_batch *b = nl_batch_new(sk, NULL, on_reply, &l);

	cr_assert_eq(sh("ip route add 198.51.100.0/24 via 192.0.2.254"), 0);
	cr_assert_eq(nl_batch_getroute(b, ip4("192.0.2.7"), (void *)1), 0);
	cr_assert_eq(nl_batch_commit(b), 0);
	cr_assert_eq(l.replies, 1);
	cr_assert(!l.r.has_gw);
	cr_assert_eq(l.r.oif, ul);
	cr_assert_eq(nl_batch_getroute(b, ip4("198.51.100.7"), (void *)1), 0);
	cr_assert_eq(nl_batch_commit(b), 0);
	cr_assert_eq(l.replies, 2);
	cr_assert(l.r.has_gw);
	cr_assert_eq(l.r.gw.s_addr, ip4("192.0.2.254").s_addr);
	nl_batch_free(b);
	nl_sock_close(sk);
}

Test(nl, vxlan_link_create_get_and_addresses)
{
	struct nl_sock *sk = nl_sock_open(NULL, 0);
	struct nl_vxlan v = { .vni = 42, .link = ul, .port = 4789, .gbp = true };
	const uint8_t mac[6] = { 2, 9, 8, 7, 6, 5 };
	struct nl_link l;
	struct nl_addr a = { .prefixlen = 32 }, list[4];

	v.local = ip4("192.0.2.1");
	cr_assert_eq(nl_link_get(sk, "nope0", 0, &l), -ENODEV);
	cr_assert_eq(nl_link_vxlan_create(sk, "vx42", &v, mac, 1400), 0);
	cr_assert_eq(nl_link_vxlan_create(sk, "vx42", &v, mac, 1400), -EEXIST);
	cr_assert_eq(nl_link_get(sk, "vx42", 0, &l), 0);
	cr_assert(l.is_vxlan);
	cr_assert_eq(l.vxlan.vni, 42);
	cr_assert_eq(l.vxlan.port, 4789);
	cr_assert_eq(l.vxlan.link, ul);
	cr_assert_eq(l.vxlan.local.s_addr, v.local.s_addr);
	cr_assert(l.vxlan.gbp);
	cr_assert(!l.vxlan.learning);
	cr_assert_eq(l.mtu, 1400);
	cr_assert_eq(memcmp(l.mac, mac, 6), 0);
	cr_assert_eq(l.flags & IFF_UP, 0);
	cr_assert_eq(nl_link_set_up(sk, l.ifindex, 1300), 0);
	cr_assert_eq(nl_link_get(sk, NULL, l.ifindex, &l), 0);
	cr_assert_str_eq(l.name, "vx42");
	cr_assert_eq(l.mtu, 1300);
	cr_assert(l.flags & IFF_UP);
	a.ifindex = l.ifindex;
	a.local = ip4("198.18.5.0");
	cr_assert_eq(nl_addr_set(sk, NL_OP_REPLACE, &a), 0);
	cr_assert_eq(nl_addr_list(sk, l.ifindex, list, 4), 1);
	cr_assert_eq(list[0].local.s_addr, a.local.s_addr);
	cr_assert_eq(list[0].prefixlen, 32);
	cr_assert_eq(nl_addr_set(sk, NL_OP_DELETE, &a), 0);
	cr_assert_eq(nl_addr_list(sk, l.ifindex, list, 4), 0);
	cr_assert_eq(nl_link_del(sk, l.ifindex), 0);
	cr_assert_eq(nl_link_get(sk, "vx42", 0, &l), -ENODEV);
	nl_sock_close(sk);
}

static int count_msgs(const struct nlmsghdr *nlh, void *ctx)
{
	int *n = ctx;

	if (nlh->nlmsg_type == RTM_NEWLINK)
		(*n)++;
	return 0;
}

Test(nl, event_socket_sees_links)
{
	unsigned groups[] = { RTNLGRP_LINK };
	struct nl_sock *ev = nl_sock_open(groups, 1);
	int n = 0;

	cr_assert(ev);
	cr_assert_eq(nl_recv_events(ev, count_msgs, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(sh("ip link add v1 type veth peer name v2"), 0);
	cr_assert_eq(nl_recv_events(ev, count_msgs, &n), 0);
	cr_assert_geq(n, 2);
	nl_sock_close(ev);
}

static int parse_neigh(const struct nlmsghdr *nlh, void *ctx)
{
	struct nl_neigh *out = ctx, n;

	if (nl_parse_neigh(nlh, &n) == 0 && n.family == AF_BRIDGE && n.has_dst && n.lladdr[0] == 2)
		*out = n;
	return 0;
}

Test(nl, neighbours_and_fdb)
{
	struct nl_sock *sk = nl_sock_open(NULL, 0);
	struct nl_batch *b = nl_batch_new(sk, NULL, NULL, NULL);
	struct nl_vxlan v = { .vni = 1, .link = ul, .port = 8472 };
	struct nl_link l;
	struct nl_neigh n = { .family = AF_BRIDGE,
		              .flags = NTF_SELF,
		              .has_dst = true,
		              .has_lladdr = true,
		              .lladdr = { 2, 1, 1, 1, 1, 1 } };
	struct nl_neigh got = { 0 };

	v.local = ip4("192.0.2.1");
	cr_assert_eq(nl_link_vxlan_create(sk, "vx1", &v, NULL, 0), 0);
	cr_assert_eq(nl_link_get(sk, "vx1", 0, &l), 0);
	n.ifindex = l.ifindex;
	n.dst = ip4("192.0.2.44");
	cr_assert_eq(nl_batch_neigh(b, NL_OP_REPLACE, &n, NULL), 0);
	cr_assert_eq(nl_batch_commit(b), 0);
	cr_assert_eq(nl_dump(sk, RTM_GETNEIGH, AF_BRIDGE, parse_neigh, &got), 0);
	cr_assert_eq(got.ifindex, l.ifindex);
	cr_assert_eq(got.dst.s_addr, n.dst.s_addr);
	cr_assert(got.state & NUD_PERMANENT);
	cr_assert_eq(nl_batch_neigh(b, NL_OP_DELETE, &n, NULL), 0);
	cr_assert_eq(nl_batch_commit(b), 0);
	memset(&got, 0, sizeof(got));
	cr_assert_eq(nl_dump(sk, RTM_GETNEIGH, AF_BRIDGE, parse_neigh, &got), 0);
	cr_assert_eq(got.ifindex, 0);
	nl_batch_free(b);
	nl_sock_close(sk);
}

Test(nl, nexthop_probe)
{
	struct nl_sock *sk = nl_sock_open(NULL, 0);

	cr_assert(nl_nexthops_supported(sk)); /* CI kernels have them */
	nl_sock_close(sk);
}
