/*
 * Convergence helper for bench/convergence.sh. Runs inside a fresh network
 * namespace that already has the underlay veth "ul" (192.0.2.1/24).
 *
 *   bench_convergence run N      vxlan backend: init, start, resync N remote leases;
 *                                prints wall ms, CPU ms, peak RSS, sendmsg calls,
 *                                and checks that all N routes/neigh/fdb are there.
 *   bench_convergence emit N DIR writes DIR/ip.batch (neighbours + routes) and
 *                                DIR/bridge.batch (fdb) for the same N leases.
 *
 * Leases: 198.18.0.0/15 in /29 steps (up to 16383), VtepMAC 02:00:00:xx:xx:xx,
 * PublicIP 192.0.2.2-201. Set TWILL_NEXTHOPS=0 for plain routes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <net/if.h>
#include <sys/resource.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include "backends/backend.h"
#include "lib/log.h"
#include "lib/nl.h"

#define MAX_LEASES 16383

static void lease_n(unsigned i, char subnet[32], char net[20], char pub[20], uint8_t mac[6])
{
	uint32_t a = (198u << 24) | (18u << 16);

	a += (i + 1) * 8;
	snprintf(net, 20, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
	snprintf(subnet, 32, "%s/29", net);
	snprintf(pub, 20, "192.0.2.%u", 2 + i % 200);
	mac[0] = 0x02;
	mac[1] = 0;
	mac[2] = 0;
	mac[3] = (uint8_t)(i >> 16);
	mac[4] = (uint8_t)(i >> 8);
	mac[5] = (uint8_t)i;
}

static int emit(unsigned n, const char *dir)
{
	char path[512], subnet[32], net[20], pub[20];
	uint8_t m[6];
	FILE *ip, *br;

	snprintf(path, sizeof(path), "%s/ip.batch", dir);
	ip = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/bridge.batch", dir);
	br = fopen(path, "w");
	if (!ip || !br) {
		perror("fopen");
		return 1;
	}
	for (unsigned i = 0; i < n; i++) {
		lease_n(i, subnet, net, pub, m);
		fprintf(ip,
		        "neigh replace %s lladdr %02x:%02x:%02x:%02x:%02x:%02x dev flannel.1 nud permanent\n",
		        net, m[0], m[1], m[2], m[3], m[4], m[5]);
		fprintf(br,
		        "fdb replace %02x:%02x:%02x:%02x:%02x:%02x dev flannel.1 dst %s self permanent\n",
		        m[0], m[1], m[2], m[3], m[4], m[5], pub);
	}
	for (unsigned i = 0; i < n; i++) {
		lease_n(i, subnet, net, pub, m);
		fprintf(ip, "route replace %s via %s dev flannel.1 onlink\n", subnet, net);
	}
	fclose(ip);
	fclose(br);
	return 0;
}

struct counts {
	int ifindex;
	unsigned routes, neighs, fdb;
};

static int count_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct counts *c = ctx;
	struct nl_route r;
	struct nl_neigh n;

	if (nlh->nlmsg_type == RTM_NEWROUTE && nl_parse_route(nlh, &r) == 0 &&
	    r.table == RT_TABLE_MAIN && r.oif == c->ifindex && r.has_gw)
		c->routes++;
	if (nlh->nlmsg_type == RTM_NEWNEIGH && nl_parse_neigh(nlh, &n) == 0 &&
	    n.ifindex == c->ifindex && (n.state & NUD_PERMANENT)) {
		if (n.family == AF_INET)
			c->neighs++;
		else if (n.flags & NTF_SELF && n.has_dst)
			c->fdb++;
	}
	return 0;
}

static double ms_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static double cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static int run(unsigned n)
{
	static const char cfgjson[] = "{\"Network\":\"198.18.0.0/15\",\"SubnetLen\":29,"
				      "\"Backend\":{\"Type\":\"vxlan\"}}";
	const struct backend_ops *ops = backend_lookup("vxlan");
	char err[SUBNET_ERR_MAX], subnet[32], net[20], pub[20];
	struct subnet_config *cfg = subnet_config_parse(cfgjson, strlen(cfgjson), err, sizeof(err));
	struct lease_attrs attrs = { 0 };
	struct be_extif ext = { .mtu = 1500 };
	struct be_settings set;
	struct lease own = { .has_ipv4 = true }, *ls;
	struct backend *be = NULL;
	struct timespec t0, t1;
	struct nl_stats st;
	struct counts c = { 0 };
	struct nl_sock *sk;
	struct rusage ru;
	double c0, c1;
	int ret = 1;

	if (!cfg || !ops) {
		fprintf(stderr, "config: %s\n", err);
		return 1;
	}
	snprintf(ext.name, sizeof(ext.name), "ul");
	ext.ifindex = (int)if_nametoindex("ul");
	ipam_addr_parse("192.0.2.1", &ext.iface_addr);
	ext.public_ip = ext.iface_addr;
	ipam_prefix_parse("198.18.0.0/29", &own.subnet);
	ls = calloc(n, sizeof(*ls));
	for (unsigned i = 0; i < n; i++) {
		uint8_t m[6];

		lease_n(i, subnet, net, pub, m);
		ls[i].has_ipv4 = true;
		ipam_prefix_parse(subnet, &ls[i].subnet);
		ipam_addr_parse(pub, &ls[i].attrs.public_ip);
		snprintf(ls[i].attrs.backend_type, sizeof(ls[i].attrs.backend_type), "vxlan");
		lease_attrs_set_vxlan(&ls[i].attrs, 1, m);
	}
	if (be_settings_from_env(&set, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	c0 = cpu_ms();
	be = ops->init(NULL, cfg, &ext, &set, &attrs, err, sizeof(err));
	if (!be || ops->start(be, &own, err, sizeof(err)) < 0) {
		fprintf(stderr, "backend %s: %s\n", be ? "start" : "init", err);
		goto out;
	}
	nl_stats_reset();
	if (ops->resync(be, ls, n) < 0) {
		fprintf(stderr, "resync failed\n");
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	c1 = cpu_ms();
	nl_stats_get(&st);
	getrusage(RUSAGE_SELF, &ru);

	sk = nl_sock_open(NULL, 0);
	c.ifindex = (int)if_nametoindex("flannel.1");
	nl_dump(sk, RTM_GETROUTE, AF_INET, count_cb, &c);
	nl_dump(sk, RTM_GETNEIGH, AF_INET, count_cb, &c);
	nl_dump(sk, RTM_GETNEIGH, AF_BRIDGE, count_cb, &c);
	nl_sock_close(sk);
	printf("twill_ms=%.1f cpu_ms=%.1f maxrss_kb=%ld sendmsg=%llu messages=%llu errors=%llu "
	       "routes=%u neighs=%u fdb=%u\n",
	       ms_between(&t0, &t1), c1 - c0, ru.ru_maxrss, (unsigned long long)st.sendmsg_calls,
	       (unsigned long long)st.messages, (unsigned long long)st.errors, c.routes, c.neighs,
	       c.fdb);
	ret = c.routes == n && c.neighs == n && c.fdb == n ? 0 : 2;
	if (ret)
		fprintf(stderr, "kernel state incomplete\n");
out:
	if (be)
		ops->stop(be);
	for (unsigned i = 0; i < n; i++)
		lease_clear(&ls[i]);
	free(ls);
	lease_attrs_clear(&attrs);
	subnet_config_free(cfg);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned long n;

	log_init("bench_convergence", LOG_LVL_WARN);
	if (argc < 3 || (n = strtoul(argv[2], NULL, 10)) == 0 || n > MAX_LEASES) {
		fprintf(stderr, "usage: %s run N | emit N DIR   (1 <= N <= %u)\n", argv[0],
		        MAX_LEASES);
		return 1;
	}
	if (strcmp(argv[1], "run") == 0)
		return run((unsigned)n);
	if (strcmp(argv[1], "emit") == 0 && argc == 4)
		return emit((unsigned)n, argv[3]);
	fprintf(stderr, "usage: %s run N | emit N DIR\n", argv[0]);
	return 1;
}
