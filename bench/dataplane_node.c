/*
 * bench_dataplane_node: run the udp backend alone, without etcd or twilld, for the
 * dataplane benchmark and the udp integration test. Leases come from the command
 * line and from commands on stdin:
 *
 *   bench_dataplane_node --iface eth0 --network 198.18.0.0/16 --subnet 198.18.1.0/24
 *                        [--network6 2001:db8:100::/48 --subnet6 2001:db8:100:1::/64]
 *                        [--port 8285] [--naive] [--lease 198.18.2.0/24=192.0.2.12[,V6]]...
 *   stdin: "add SUBNET PUBLICIP [TYPE [V6]]", "del SUBNET", "stats", "quit"
 *
 * V6 is a lease's IPv6 subnet, "2001:db8:100:2::/64" (the peer takes IPv6 over udp:
 * BackendV6Data {"Port":8285}) or "2001:db8:100:2::/64/v4only" (no BackendV6Data).
 *
 * "stats" prints udp_stats_format() followed by a line ".". Prints "ready" once the
 * backend started. Stops on SIGTERM/SIGINT or "quit"; stdin EOF is not a stop.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "backends/udp.h"
#include "lib/ev.h"
#include "lib/log.h"

struct node {
	struct ev_loop *loop;
	struct backend *be;
	struct ev_io *in;
	char line[512];
	size_t used;
};

static void usage(void)
{
	fprintf(stderr, "usage: bench_dataplane_node --iface IF --network CIDR --subnet CIDR "
	                "[--network6 CIDR --subnet6 CIDR] [--port N] [--naive] "
	                "[--lease SUBNET=IP[,V6[/v4only]]]... [-v]\n");
}

/* "PREFIX" or "PREFIX/v4only": the IPv6 half of @ret. */
static int mk_lease6(const char *v6, struct lease *ret)
{
	char buf[128], *tag;

	snprintf(buf, sizeof(buf), "%s", v6);
	tag = strstr(buf, "/v4only");
	if (tag)
		*tag = '\0';
	if (ipam_prefix_parse(buf, &ret->ipv6_subnet) < 0 ||
	    ret->ipv6_subnet.addr.family != AF_INET6)
		return -EINVAL;
	ret->ipv6_subnet = ipam_prefix_network(&ret->ipv6_subnet);
	ret->has_ipv6 = true;
	if (!tag && !(ret->attrs.backend_v6_data = strdup("{\"Port\":8285}")))
		return -ENOMEM;
	return 0;
}

static int mk_lease(const char *subnet, const char *ip, const char *type, struct lease *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (ipam_prefix_parse(subnet, &ret->subnet) < 0 || ret->subnet.addr.family != AF_INET)
		return -EINVAL;
	ret->subnet = ipam_prefix_network(&ret->subnet);
	ret->has_ipv4 = true;
	if (ip && ipam_addr_parse(ip, &ret->attrs.public_ip) < 0)
		return -EINVAL;
	snprintf(ret->attrs.backend_type, sizeof(ret->attrs.backend_type), "%s", type ? type : "");
	return 0;
}

static void command(struct node *n, char *line)
{
	char *argv[5] = { 0 }, *save = NULL, *tok;
	struct lease l;
	int argc = 0, r;

	for (tok = strtok_r(line, " \t", &save); tok && argc < 5;
	     tok = strtok_r(NULL, " \t", &save))
		argv[argc++] = tok;
	if (argc == 0)
		return;
	if (strcmp(argv[0], "add") == 0 && argc >= 3) {
		r = mk_lease(argv[1], argv[2], argv[3], &l);
		if (r == 0 && argv[3] && argv[4])
			r = mk_lease6(argv[4], &l);
		if (r == 0)
			r = udp_backend_ops.lease_added(n->be, &l);
		lease_clear(&l);
		printf("%s\n", r == 0 ? "ok" : "error");
	} else if (strcmp(argv[0], "del") == 0 && argc >= 2) {
		r = mk_lease(argv[1], NULL, NULL, &l);
		if (r == 0)
			r = udp_backend_ops.lease_removed(n->be, &l);
		printf("%s\n", r == 0 ? "ok" : "error");
	} else if (strcmp(argv[0], "stats") == 0) {
		struct udp_stats s;
		char buf[8192];

		udp_backend_stats(n->be, &s);
		udp_stats_format(&s, buf, sizeof(buf));
		printf("%s.\n", buf);
	} else if (strcmp(argv[0], "quit") == 0) {
		ev_loop_stop(n->loop);
	} else {
		printf("error: unknown command\n");
	}
	fflush(stdout);
}

static void on_stdin(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct node *n = ctx;
	ssize_t r;
	char *nl;

	(void)revents;
	r = read(fd, n->line + n->used, sizeof(n->line) - 1 - n->used);
	if (r <= 0) {
		ev_io_free(io);
		n->in = NULL;
		return;
	}
	n->used += (size_t)r;
	n->line[n->used] = '\0';
	while ((nl = strchr(n->line, '\n'))) {
		*nl = '\0';
		command(n, n->line);
		memmove(n->line, nl + 1, n->used - (size_t)(nl + 1 - n->line) + 1);
		n->used -= (size_t)(nl + 1 - n->line);
	}
	if (n->used == sizeof(n->line) - 1)
		n->used = 0;
}

static void on_signal(struct ev_signal *s, int signo, void *ctx)
{
	struct node *n = ctx;

	(void)s;
	(void)signo;
	ev_loop_stop(n->loop);
}

static int extif(const char *name, struct be_extif *ret)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = -1;

	memset(ret, 0, sizeof(*ret));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	snprintf(ret->name, sizeof(ret->name), "%s", name);
	ret->ifindex = (int)if_nametoindex(name);
	if (s < 0 || ret->ifindex == 0)
		goto out;
	if (ioctl(s, SIOCGIFMTU, &ifr) < 0)
		goto out;
	ret->mtu = ifr.ifr_mtu;
	if (ioctl(s, SIOCGIFADDR, &ifr) < 0)
		goto out;
	ret->iface_addr.family = AF_INET;
	memcpy(ret->iface_addr.bytes, &((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr, 4);
	ret->public_ip = ret->iface_addr;
	r = 0;
out:
	if (s >= 0)
		close(s);
	return r;
}

struct args {
	const char *iface, *network, *subnet, *network6, *subnet6;
	struct lease leases[64];
	size_t nleases;
	unsigned port;
	bool naive;
	int verbose;
};

/* "SUBNET=IP[,V6]" */
static int parse_lease_arg(const char *v, struct lease *ret)
{
	char buf[160], *eq, *comma;

	snprintf(buf, sizeof(buf), "%s", v);
	eq = strchr(buf, '=');
	if (!eq)
		return -EINVAL;
	*eq = '\0';
	comma = strchr(eq + 1, ',');
	if (comma)
		*comma = '\0';
	if (mk_lease(buf, eq + 1, "", ret) < 0)
		return -EINVAL;
	return comma ? mk_lease6(comma + 1, ret) : 0;
}

static int parse_args(int argc, char **argv, struct args *o)
{
	int i;

	o->port = 8285;
	o->verbose = LOG_LVL_INFO;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char **dst = strcmp(a, "--iface") == 0      ? &o->iface
		                   : strcmp(a, "--network") == 0  ? &o->network
		                   : strcmp(a, "--subnet") == 0   ? &o->subnet
		                   : strcmp(a, "--network6") == 0 ? &o->network6
		                   : strcmp(a, "--subnet6") == 0  ? &o->subnet6
		                                                  : NULL;

		if (dst && v) {
			*dst = argv[++i];
		} else if (strcmp(a, "--port") == 0 && v) {
			o->port = (unsigned)atoi(argv[++i]);
		} else if (strcmp(a, "--naive") == 0) {
			o->naive = true;
		} else if (strcmp(a, "-v") == 0) {
			o->verbose = LOG_LVL_DEBUG;
		} else if (strcmp(a, "--lease") == 0 && v && o->nleases < 64) {
			if (parse_lease_arg(v, &o->leases[o->nleases++]) < 0) {
				fprintf(stderr, "bad --lease %s\n", v);
				return -EINVAL;
			}
			i++;
		} else {
			return -EINVAL;
		}
	}
	if (!o->iface || !o->network || !o->subnet || o->port > 65535 ||
	    !o->network6 != !o->subnet6)
		return -EINVAL;
	return 0;
}

static struct subnet_config *mk_config(const struct args *o)
{
	char json[512], v6[160] = "", err[SUBNET_ERR_MAX];
	struct subnet_config *cfg;

	if (o->network6)
		snprintf(v6, sizeof(v6), ",\"EnableIPv6\":true,\"IPv6Network\":\"%s\"",
		         o->network6);
	snprintf(json, sizeof(json),
	         "{\"Network\":\"%s\"%s,\"Backend\":{\"Type\":\"udp\",\"Port\":%u%s}}", o->network,
	         v6, o->port, o->naive ? ",\"Naive\":true" : "");
	cfg = subnet_config_parse(json, strlen(json), err, sizeof(err));
	if (!cfg)
		fprintf(stderr, "config: %s\n", err);
	return cfg;
}

int main(int argc, char **argv)
{
	struct args o = { 0 };
	struct lease own;
	int rc = 1, mtu;
	size_t i;
	struct node n = { 0 };
	struct subnet_config *cfg = NULL;
	struct lease_attrs attrs = { 0 };
	struct be_extif ext;
	struct be_settings set;
	char err[SUBNET_ERR_MAX];

	if (parse_args(argc, argv, &o) < 0) {
		usage();
		return 2;
	}
	log_init("dataplane-node", o.verbose);
	if (extif(o.iface, &ext) < 0) {
		fprintf(stderr, "interface %s: %s\n", o.iface, strerror(errno));
		return 1;
	}
	cfg = mk_config(&o);
	if (!cfg)
		return 1;
	if (mk_lease(o.subnet, NULL, NULL, &own) < 0 ||
	    (o.subnet6 && mk_lease6(o.subnet6, &own) < 0)) {
		fprintf(stderr, "bad --subnet/--subnet6\n");
		goto out;
	}
	n.loop = ev_loop_new();
	if (!n.loop)
		goto out;
	ev_signal_new(n.loop, SIGTERM, on_signal, &n);
	ev_signal_new(n.loop, SIGINT, on_signal, &n);
	if (be_settings_from_env(&set, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	n.be = udp_backend_ops.init(n.loop, cfg, &ext, &set, &attrs, err, sizeof(err));
	if (!n.be) {
		fprintf(stderr, "init: %s\n", err);
		goto out;
	}
	mtu = udp_backend_ops.start(n.be, &own, err, sizeof(err));
	if (mtu < 0) {
		fprintf(stderr, "start: %s\n", err);
		goto out;
	}
	if (udp_backend_ops.resync(n.be, o.leases, o.nleases) < 0)
		goto out;
	n.in = ev_io_new(n.loop, STDIN_FILENO, EPOLLIN, on_stdin, &n);
	printf("ready mtu %d\n", mtu);
	fflush(stdout);
	ev_loop_run(n.loop);
	rc = 0;
out:
	udp_backend_ops.stop(n.be);
	ev_loop_free(n.loop);
	subnet_config_free(cfg);
	lease_attrs_clear(&attrs);
	lease_clear(&own);
	for (i = 0; i < o.nleases; i++)
		lease_clear(&o.leases[i]);
	return rc;
}
