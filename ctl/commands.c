/*
 * The twillctl command table: one entry per command, with its arguments, the
 * flags it takes, its help and its handler. Adding a command is one entry here
 * (and its handler).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "lib/ev.h"
#include "lib/fileio.h"

/* Read FILE or "-" (stdin) completely; NULL with a message. */
static char *read_doc(struct ctl *c, const char *path, size_t *ret_len)
{
	char *buf = NULL;
	int r;

	if (strcmp(path, "-") == 0)
		r = file_read_stream(stdin, FILE_READ_MAX, &buf, ret_len);
	else
		r = file_read_all(path, FILE_READ_MAX, &buf, ret_len);
	if (r == -EFBIG)
		fprintf(c->err, "twillctl: %s: larger than 16 MiB\n", path);
	else if (r < 0)
		fprintf(c->err, "twillctl: cannot read %s: %s\n", path, strerror(-r));
	return r < 0 ? NULL : buf;
}

static const char *doc_name(const char *path)
{
	return strcmp(path, "-") ? path : "stdin";
}

static int run_config_get(struct ctl *c, const struct ctl_opts *o, char **args)
{
	(void)o;
	(void)args;
	return ctl_config_get(c);
}

static int run_config_set(struct ctl *c, const struct ctl_opts *o, char **args)
{
	size_t len;
	char *doc = read_doc(c, args[0], &len);
	int ret = doc ? ctl_config_set(c, doc, len, doc_name(args[0])) : 1;

	(void)o;
	free(doc);
	return ret;
}

static int run_config_validate(struct ctl *c, const struct ctl_opts *o, char **args)
{
	size_t len;
	char *doc = read_doc(c, args[0], &len);
	int ret = doc ? ctl_config_validate(c, doc, len, doc_name(args[0])) : 1;

	(void)o;
	free(doc);
	return ret;
}

static int run_leases(struct ctl *c, const struct ctl_opts *o, char **args)
{
	(void)args;
	return ctl_leases(c, o->json);
}

static int run_lease_show(struct ctl *c, const struct ctl_opts *o, char **args)
{
	return ctl_lease_show(c, args[0], o->json);
}

static int run_reserve(struct ctl *c, const struct ctl_opts *o, char **args)
{
	return ctl_reserve6(c, args[0], o->ipv6_subnet, o->public_ip, o->public_ipv6);
}

static int run_release(struct ctl *c, const struct ctl_opts *o, char **args)
{
	(void)o;
	return ctl_release(c, args[0]);
}

static void on_signal(struct ev_signal *s, int signo, void *ctx)
{
	bool *stop = ctx;

	(void)s;
	(void)signo;
	*stop = true;
}

static int run_watch(struct ctl *c, const struct ctl_opts *o, char **args)
{
	bool stop = false;
	struct ev_signal *sigint = ev_signal_new(c->loop, SIGINT, on_signal, &stop);
	struct ev_signal *sigterm = ev_signal_new(c->loop, SIGTERM, on_signal, &stop);
	int ret = ctl_watch(c, (size_t)o->count, &stop);

	(void)args;
	ev_signal_free(sigint);
	ev_signal_free(sigterm);
	return ret;
}

static int run_status(struct ctl *c, const struct ctl_opts *o, char **args)
{
	(void)args;
	return ctl_status(c, o->healthz, o->json);
}

const struct ctl_cmd ctl_cmds[] = {
	{ .name = "config get",
	  .summary = "print the network config (<prefix>/config)",
	  .help = "usage: twillctl config get\n"
	          "Print the network config document stored at <prefix>/config.\n",
	  .run = run_config_get },
	{ .name = "config set",
	  .synopsis = "FILE|-",
	  .summary = "validate a config document, then store it",
	  .help = "usage: twillctl config set FILE|-\n"
	          "Read a network config document from FILE (or stdin for -), validate it as twilld\n"
	          "and flannel would, and store it at <prefix>/config. An invalid document is refused\n"
	          "with the reason and nothing is written.\n",
	  .nargs = 1,
	  .run = run_config_set },
	{ .name = "config validate",
	  .synopsis = "FILE|-",
	  .summary = "check a config document and say what it means",
	  .help = "usage: twillctl config validate FILE|-\n"
	          "Check a network config document without writing it, and print the subnet range\n"
	          "and backend it selects. Exit status 1 when it is invalid.\n",
	  .nargs = 1,
	  .no_store = true,
	  .run = run_config_validate },
	{ .name = "leases",
	  .synopsis = "[--json]",
	  .summary = "every lease, sorted by subnet",
	  .help = "usage: twillctl leases [--json]\n"
	          "List every lease sorted by subnet: subnet, public IP, backend, VTEP MAC and\n"
	          "the time left (\"reserved\" for a key with no etcd lease). When a lease has an\n"
	          "IPv6 half (dual-stack), the IPv6 subnet and the public IPv6 address get columns\n"
	          "of their own (\"-\" where a lease has none). --json prints an array of objects\n"
	          "with the same fields (ipv6_subnet, public_ipv6 and vtep_mac_v6 null when absent)\n"
	          "and the raw lease (attrs).\n",
	  .opts = CTL_OPT_JSON,
	  .run = run_leases },
	{ .name = "lease show",
	  .synopsis = "SUBNET [--json]",
	  .summary = "one lease in detail",
	  .help = "usage: twillctl lease show SUBNET [--json]\n"
	          "Print one lease in detail (both subnets, both public IPs and both VTEP MACs of\n"
	          "a dual-stack lease), with its raw flannel JSON value. SUBNET: the IPv4 subnet\n"
	          "finds a dual-stack lease too.\n",
	  .nargs = 1,
	  .opts = CTL_OPT_JSON,
	  .run = run_lease_show },
	{ .name = "reserve",
	  .synopsis = "SUBNET --public-ip IP [--ipv6-subnet SUBNET6] [--public-ipv6 IP6]",
	  .summary = "keep SUBNET for the node IP (a key with no etcd lease)",
	  .help = "usage: twillctl reserve SUBNET --public-ip IP [--ipv6-subnet SUBNET6] [--public-ipv6 IP6]\n"
	          "Reserve SUBNET for the node with public IP: a lease key with no etcd lease, which\n"
	          "never expires and is never given to another node. Refused when another node holds\n"
	          "SUBNET or an overlapping subnet, or when SUBNET is not a SubnetLen subnet inside\n"
	          "the Network. The node's own current lease is turned into a reservation.\n"
	          "Dual-stack network (EnableIPv6): the IPv6 subnet is required too, as\n"
	          "--ipv6-subnet 2001:db8:100:3::/64 or in the key form\n"
	          "198.18.3.0-24&2001:db8:100:3::-64 (flanneld deletes a reservation without it);\n"
	          "--public-ipv6 records the node's public IPv6 address in the value.\n",
	  .nargs = 1,
	  .opts = CTL_OPT_PUBLIC_IP | CTL_OPT_PUBLIC_IPV6 | CTL_OPT_IPV6_SUBNET,
	  .required = CTL_OPT_PUBLIC_IP,
	  .run = run_reserve },
	{ .name = "release",
	  .synopsis = "SUBNET",
	  .summary = "delete the lease or reservation of SUBNET",
	  .help = "usage: twillctl release SUBNET\n"
	          "Delete the lease or reservation of SUBNET (an IPv4 subnet names a dual-stack\n"
	          "lease too). A running node whose lease it was acquires one again.\n",
	  .nargs = 1,
	  .run = run_release },
	{ .name = "watch",
	  .summary = "print lease changes as they happen",
	  .help = "usage: twillctl watch [--count N]\n"
	          "Print one line per lease change until interrupted (or N changes):\n"
	          "  added SUBNET PUBLICIP BACKEND VTEPMAC\n"
	          "  changed SUBNET PUBLICIP BACKEND VTEPMAC\n"
	          "  removed SUBNET PUBLICIP\n",
	  .opts = CTL_OPT_COUNT,
	  .run = run_watch },
	{ .name = "status",
	  .synopsis = "[--healthz URL] [--json]",
	  .summary = "a node's state, from twilld's health port",
	  .help = "usage: twillctl status [--healthz URL] [--json]\n"
	          "Print the state of the node whose twilld serves URL (its --healthz-ip and\n"
	          "--healthz-port; default " CTL_HEALTHZ_DEFAULT
	          "): lease and expiry, backend and\n"
	          "devices, the etcd endpoint and its errors, remote leases against the routes\n"
	          "programmed, repairs, iptables, udp drops. --json prints the /v1/status document.\n"
	          "Exit status 1 when the daemon cannot be reached. Needs no etcd.\n",
	  .opts = CTL_OPT_JSON | CTL_OPT_HEALTHZ,
	  .no_store = true,
	  .run = run_status },
};

const size_t ctl_ncmds = sizeof(ctl_cmds) / sizeof(ctl_cmds[0]);
