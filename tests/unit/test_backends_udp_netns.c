/* The udp backend in a private network namespace (unshare(CLONE_NEWNET): needs root). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "backends/udp.h"
#include "backends/udp_pkt.h"
#include "backends/udp_table.h"
#include "lib/nl.h"
#include "tests/unit/be_testenv.h"

/* ---- helpers ---- */

static struct ipam_prefix pfx(const char *s)
{
	struct ipam_prefix p;

	cr_assert_eq(ipam_prefix_parse(s, &p), 0, "%s", s);
	return p;
}

static struct ipam_addr addr(const char *s)
{
	struct ipam_addr a;

	cr_assert_eq(ipam_addr_parse(s, &a), 0, "%s", s);
	return a;
}

static uint32_t be32(const char *s)
{
	struct in_addr a;

	cr_assert_eq(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static uint16_t ref_sum(const uint8_t *p, size_t n, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static bool ip_csum_valid(const uint8_t *p)
{
	return ref_sum(p, (size_t)(p[0] & 15) * 4, 0) == 0xffff;
}

static size_t mk_ip(uint8_t *b, const char *src, const char *dst, uint8_t proto, uint8_t ttl,
                    size_t plen)
{
	size_t i;
	uint16_t c;

	memset(b, 0, 20);
	b[0] = 0x45;
	put16(b + 2, (uint16_t)(20 + plen));
	put16(b + 4, 0x1234);
	b[8] = ttl;
	b[9] = proto;
	memcpy(b + 12, &(uint32_t){ be32(src) }, 4);
	memcpy(b + 16, &(uint32_t){ be32(dst) }, 4);
	c = udp_ipv4_hdr_csum(b, 20);
	memcpy(b + 10, &c, 2);
	for (i = 0; i < plen; i++)
		b[20 + i] = (uint8_t)(i * 7 + 3);
	return 20 + plen;
}

/* ---- the backend in a private network namespace ---- */

static void run_cmd_ok(const char *cmd)
{
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* Poll the counter at byte offset @off of struct udp_stats until it reaches @want (3 s). */
static void wait_stat(struct backend *be, size_t off, uint64_t want, const char *what)
{
	struct udp_stats s;
	struct timespec ts = { 0, 5 * 1000 * 1000 };

	for (int i = 0; i < 600; i++) {
		udp_backend_stats(be, &s);
		if (*(const uint64_t *)((const char *)&s + off) >= want)
			return;
		nanosleep(&ts, NULL);
	}
	cr_assert_fail("%s: still %lu after 3 s, want %lu", what,
	               (unsigned long)*(const uint64_t *)((const char *)&s + off),
	               (unsigned long)want);
}

#define WAIT_STAT(be, field, want) wait_stat(be, offsetof(struct udp_stats, field), want, #field)

static int udp_sock(const char *ip, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { 3, 0 };

	cr_assert_geq(s, 0);
	sa.sin_addr.s_addr = be32(ip);
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s:%u: %s", ip, port,
	             strerror(errno));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return s;
}

static void send_to(int s, const char *ip, uint16_t port, const void *buf, size_t len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };

	sa.sin_addr.s_addr = be32(ip);
	cr_assert_eq(sendto(s, buf, len, 0, (struct sockaddr *)&sa, sizeof(sa)), (ssize_t)len);
}

static struct lease mk_lease(const char *subnet, const char *pub, const char *type)
{
	struct lease l = { 0 };

	l.has_ipv4 = true;
	l.subnet = pfx(subnet);
	l.attrs.public_ip = addr(pub);
	snprintf(l.attrs.backend_type, sizeof(l.attrs.backend_type), "%s", type);
	return l;
}

static void netns_world(void)
{
	if (unshare(CLONE_NEWNET) < 0)
		cr_assert_fail("unshare(CLONE_NEWNET): %s (run as root)", strerror(errno));
	run_cmd_ok("ip link set lo up && ip addr add 192.0.2.1/24 dev lo");
}

static struct backend *start_backend(bool naive, struct subnet_config **ret_cfg)
{
	static const char json[] = "{\"Network\":\"198.18.0.0/16\",\"SubnetLen\":24,"
				   "\"Backend\":{\"Type\":\"udp\"}}";
	char err[SUBNET_ERR_MAX];
	struct subnet_config *cfg = subnet_config_parse(json, sizeof(json) - 1, err, sizeof(err));
	struct be_extif ext = { .name = "lo", .ifindex = 1, .mtu = 1500 };
	struct lease_attrs attrs = { 0 };
	struct lease own = mk_lease("198.18.1.0/24", "192.0.2.1", "");
	struct backend *be;

	cr_assert_not_null(cfg, "%s", err);
	ext.iface_addr = addr("192.0.2.1");
	ext.public_ip = ext.iface_addr;
	setenv("TWILL_UDP_NAIVE", naive ? "1" : "0", 1);
	setenv("TWILL_UDP_WORKERS", "2", 1);
	be = udp_backend_ops.init(NULL, cfg, &ext, env_settings(), &attrs, err, sizeof(err));
	cr_assert_not_null(be, "init: %s", err);
	cr_assert_str_eq(attrs.backend_type, "");
	cr_assert_null(attrs.backend_data);
	cr_assert_eq(udp_backend_ops.start(be, &own, err, sizeof(err)), 1500 - 28, "%s", err);
	*ret_cfg = cfg;
	return be;
}

static void dataplane_checks(bool naive)
{
	struct subnet_config *cfg;
	struct backend *be;
	struct lease l2 = mk_lease("198.18.2.0/24", "192.0.2.2", "udp");
	struct lease l3 = mk_lease("198.18.3.0/24", "192.0.2.3", "");
	struct lease lv = mk_lease("198.18.4.0/24", "192.0.2.4", "vxlan");
	uint8_t pkt[200], got[2000];
	struct udp_stats s;
	int peer2, stranger, local, app;
	ssize_t n;

	netns_world();
	run_cmd_ok("ip addr add 192.0.2.2/24 dev lo && ip addr add 192.0.2.3/24 dev lo && "
	           "ip addr add 192.0.2.9/24 dev lo");
	be = start_backend(naive, &cfg);
	run_cmd_ok("ip -o link show flannel0 | grep -q 'mtu 1472'");
	run_cmd_ok("ip -o link show flannel0 | grep -q 'qlen 5000'");
	run_cmd_ok("ip -o addr show dev flannel0 | grep -q 'inet 198.18.1.0/32'");
	run_cmd_ok("ip route show 198.18.0.0/16 | grep -q 'dev flannel0'");
	cr_assert_eq(udp_backend_ops.resync(be, (struct lease[]){ l2, lv }, 2), 0);
	cr_assert_eq(udp_backend_ops.lease_added(be, &l3), 0);
	udp_backend_stats(be, &s);
	cr_assert_eq(s.table_routes, 2);

	/* TUN -> wire: a packet to 198.18.2.5 arrives at 192.0.2.2:8285 as the bare IPv4 packet. */
	peer2 = udp_sock("192.0.2.2", 8285);
	app = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	send_to(app, "198.18.2.5", 7777, "hello", 5);
	n = recv(peer2, got, sizeof(got), 0);
	if (n < 0) {
		char sb[8192];

		udp_backend_stats(be, &s);
		udp_stats_format(&s, sb, sizeof(sb));
		if (system("ip -s link show flannel0; ip route; ip addr") != 0)
			cr_log_warn("ip failed");
		fprintf(stderr, "%s", sb);
		cr_assert_fail("recv: %s", strerror(errno));
	}
	cr_assert_eq(n, 20 + 8 + 5);
	cr_assert_eq(got[0], 0x45);
	cr_assert_eq(got[8], 63, "TTL decremented once");
	cr_assert(ip_csum_valid(got));
	cr_assert_eq(memcmp(got + 16, &(uint32_t){ be32("198.18.2.5") }, 4), 0);
	cr_assert_eq(memcmp(got + 12, &(uint32_t){ be32("198.18.1.0") }, 4), 0);
	cr_assert_eq(memcmp(got + 28, "hello", 5), 0);

	/* Wire -> TUN: from a peer to our flannel0 address, delivered to a local socket. */
	local = udp_sock("198.18.1.0", 6000);
	stranger = udp_sock("192.0.2.9", 0);
	size_t len = mk_ip(pkt, "198.18.2.5", "198.18.1.0", 17, 64, 8 + 4);
	put16(pkt + 20, 7777);
	put16(pkt + 22, 6000);
	put16(pkt + 24, 12);
	put16(pkt + 26, 0); /* no UDP checksum */
	memcpy(pkt + 28, "ping", 4);
	send_to(peer2, "192.0.2.1", 8285, pkt, len);
	n = recv(local, got, sizeof(got), 0);
	cr_assert_eq(n, 4, "recv: %s", strerror(errno));
	cr_assert_eq(memcmp(got, "ping", 4), 0);
	WAIT_STAT(be, rx_packets, 1);

	/* From an unknown source: dropped and counted, nothing delivered. */
	send_to(stranger, "192.0.2.1", 8285, pkt, len);
	WAIT_STAT(be, drop_wire[UDP_DROP_UNKNOWN_SRC], 1);
	/* Malformed: random bytes, truncated, lying length, outside the subnet. */
	send_to(peer2, "192.0.2.1", 8285, "\x45garbage", 8);
	send_to(peer2, "192.0.2.1", 8285, pkt, 19);
	send_to(peer2, "192.0.2.1", 8285, pkt, len - 1);
	send_to(peer2, "192.0.2.1", 8285, "", 0);
	WAIT_STAT(be, drop_wire[UDP_DROP_SHORT], 3);
	WAIT_STAT(be, drop_wire[UDP_DROP_BAD_TOTLEN], 1);
	/* Forwarding goes on. */
	send_to(peer2, "192.0.2.1", 8285, pkt, len);
	n = recv(local, got, sizeof(got), 0);
	cr_assert_eq(n, 4);

	/* Lease removed: the route goes, and the peer becomes a stranger. */
	cr_assert_eq(udp_backend_ops.lease_removed(be, &l2), 0);
	send_to(peer2, "192.0.2.1", 8285, pkt, len);
	WAIT_STAT(be, drop_wire[UDP_DROP_UNKNOWN_SRC], 2);

	/* No lease: ICMP net unreachable back to the sender (a connected socket sees it). */
	{
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(9) };
		int c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct timeval tv = { 3, 0 };
		char x;

		int one = 1;

		/* Net unreachable is a soft error: reported only with IP_RECVERR. */
		setsockopt(c, IPPROTO_IP, IP_RECVERR, &one, sizeof(one));
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		sa.sin_addr.s_addr = be32("198.18.2.5");
		cr_assert_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
		cr_assert_eq(send(c, "x", 1, 0), 1);
		cr_assert_eq(recv(c, &x, 1, 0), -1);
		cr_assert_eq(errno, ENETUNREACH, "errno %s", strerror(errno));
		close(c);
	}
	WAIT_STAT(be, icmp_sent, 1);
	udp_backend_stats(be, &s);
	cr_assert_geq(s.drop_tun[UDP_DROP_NO_ROUTE], 1);

	/* TTL 1 from the host itself: dropped. */
	{
		int c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ttl = 1;

		setsockopt(c, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(9) };
		sa.sin_addr.s_addr = be32("198.18.3.5");
		cr_assert_eq(sendto(c, "x", 1, 0, (struct sockaddr *)&sa, sizeof(sa)), 1);
		close(c);
	}
	WAIT_STAT(be, drop_tun[UDP_DROP_TTL], 1);

	/* Stop leaves flannel0, its address and the route; init re-attaches. */
	udp_backend_ops.stop(be);
	run_cmd_ok("ip -o addr show dev flannel0 | grep -q 'inet 198.18.1.0/32'");
	run_cmd_ok("ip route show 198.18.0.0/16 | grep -q 'dev flannel0'");
	subnet_config_free(cfg);
	be = start_backend(!naive, &cfg);
	cr_assert_eq(udp_backend_ops.resync(be, &l2, 1), 0);
	send_to(app, "198.18.2.6", 7777, "again", 5);
	n = recv(peer2, got, sizeof(got), 0);
	cr_assert_eq(n, 20 + 8 + 5, "recv after restart: %s", strerror(errno));
	udp_backend_ops.stop(be);
	subnet_config_free(cfg);
	close(peer2);
	close(stranger);
	close(local);
	close(app);
}

Test(udp_netns, offload_mode_forwards_and_drops, .timeout = 30)
{
	dataplane_checks(false);
}

Test(udp_netns, naive_mode_forwards_and_drops, .timeout = 30)
{
	dataplane_checks(true);
}
