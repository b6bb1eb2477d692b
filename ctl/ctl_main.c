/* twillctl's command line: flags, the command table look-up, the checks, the store. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "lib/ev.h"
#include "lib/flags.h"
#include "subnet/store.h"
#include "subnet/store_flags.h"

static const char *const usage_head =
	"usage: twillctl [flags] COMMAND [args]\n"
	"\n"
	"Inspect and edit flannel's network config and leases in etcd (v3 API).\n"
	"\n"
	"commands:\n";
static const char *const usage_tail =
	"\n"
	"SUBNET is a network like 198.18.3.0/24 (or the key form 198.18.3.0-24; dual-stack:\n"
	"198.18.3.0-24&2001:db8:100:3::-64).\n"
	"`twillctl COMMAND --help` describes one command.\n"
	"\n"
	"flags (also from the environment, like flanneld):\n";

/* The command-specific flags and which CTL_OPT_* each one is. */
static const struct {
	unsigned opt;
	const char *flag;
} opt_names[] = {
	{ CTL_OPT_JSON, "--json" },
	{ CTL_OPT_PUBLIC_IP, "--public-ip" },
	{ CTL_OPT_COUNT, "--count" },
	{ CTL_OPT_HEALTHZ, "--healthz" },
	{ CTL_OPT_PUBLIC_IPV6, "--public-ipv6" },
	{ CTL_OPT_IPV6_SUBNET, "--ipv6-subnet" },
};

struct cli {
	struct store_flags sf;
	struct flag_def defs[STORE_FLAGS_NDEFS + 12];
	size_t ndefs;
	struct ctl_opts o;
	bool help, version;
	char **pos;
	int npos;
};

static void add_def(struct cli *a, const char *name, enum flag_type type, void *target,
                    const char *help, int64_t max)
{
	a->defs[a->ndefs++] = (struct flag_def){ .name = name,
		                                 .type = type,
		                                 .target = target,
		                                 .help = help,
		                                 .max = max,
		                                 .no_env = true };
}

static void cli_defs(struct cli *a)
{
	store_flags_init(&a->sf);
	store_flags_add_defs(&a->sf, a->defs, &a->ndefs, sizeof(a->defs) / sizeof(a->defs[0]));
	add_def(a, "json", FLAG_BOOL, &a->o.json, "leases, lease show, status: JSON output", 0);
	add_def(a, "public-ip", FLAG_STRING, &a->o.public_ip, "reserve: the public IP of the node",
	        0);
	add_def(a, "public-ipv6", FLAG_STRING, &a->o.public_ipv6,
	        "reserve: the public IPv6 address of the node (dual-stack)", 0);
	add_def(a, "ipv6-subnet", FLAG_STRING, &a->o.ipv6_subnet,
	        "reserve: the IPv6 subnet beside SUBNET (dual-stack)", 0);
	add_def(a, "count", FLAG_INT, &a->o.count, "watch: stop after this many changes",
	        INT32_MAX);
	add_def(a, "healthz", FLAG_STRING, &a->o.healthz,
	        "status: twilld's health URL (default " CTL_HEALTHZ_DEFAULT ")", 0);
	add_def(a, "help", FLAG_BOOL, &a->help, "show help", 0);
	add_def(a, "h", FLAG_BOOL, &a->help, "show help", 0);
	add_def(a, "version", FLAG_BOOL, &a->version, "print the version", 0);
}

static void usage(FILE *f, const struct cli *a)
{
	fputs(usage_head, f);
	for (size_t i = 0; i < ctl_ncmds; i++) {
		const struct ctl_cmd *cmd = &ctl_cmds[i];
		char line[128];

		snprintf(line, sizeof(line), "%s%s%s", cmd->name, cmd->synopsis ? " " : "",
		         cmd->synopsis ? cmd->synopsis : "");
		fprintf(f, "  %-30s %s\n", line, cmd->summary);
	}
	fputs(usage_tail, f);
	flags_usage(a->defs, a->ndefs, "FLANNELD_", f);
}

/* Whether @word names a group of commands ("config" of "config get"). */
static bool is_group(const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; i < ctl_ncmds; i++)
		if (strncmp(ctl_cmds[i].name, word, n) == 0 && ctl_cmds[i].name[n] == ' ')
			return true;
	return false;
}

/* The command the positional arguments name; *ret_words: how many words its name took. */
static const struct ctl_cmd *find_cmd(const struct cli *a, char *name, size_t len, int *ret_words)
{
	int words = 1;

	if (is_group(a->pos[0])) {
		words = 2;
		snprintf(name, len, "%s %s", a->pos[0], a->npos > 1 ? a->pos[1] : "");
	} else {
		snprintf(name, len, "%s", a->pos[0]);
	}
	*ret_words = a->npos > 1 ? words : 1;
	for (size_t i = 0; i < ctl_ncmds; i++)
		if (strcmp(ctl_cmds[i].name, name) == 0)
			return &ctl_cmds[i];
	return NULL;
}

static unsigned opts_given(const struct ctl_opts *o)
{
	return (o->json ? CTL_OPT_JSON : 0) | (o->public_ip ? CTL_OPT_PUBLIC_IP : 0) |
	       (o->count ? CTL_OPT_COUNT : 0) | (o->healthz ? CTL_OPT_HEALTHZ : 0) |
	       (o->public_ipv6 ? CTL_OPT_PUBLIC_IPV6 : 0) | (o->ipv6_subnet ? CTL_OPT_IPV6_SUBNET : 0);
}

/* Arity, flags not valid for @cmd, flags it needs: 0, or 2 after a message. */
static int check_usage(const struct ctl_cmd *cmd, const struct cli *a, int nargs, FILE *err)
{
	unsigned given = opts_given(&a->o);

	if (nargs != cmd->nargs) {
		fprintf(err, "twillctl %s: expected %d argument%s, got %d\n", cmd->name, cmd->nargs,
		        cmd->nargs == 1 ? "" : "s", nargs);
		fprintf(err, "Run `twillctl %s --help` for usage.\n", cmd->name);
		return 2;
	}
	for (size_t i = 0; i < sizeof(opt_names) / sizeof(opt_names[0]); i++)
		if (given & opt_names[i].opt & ~cmd->opts) {
			fprintf(err, "twillctl %s: %s is not valid here\n", cmd->name,
			        opt_names[i].flag);
			return 2;
		}
	if (cmd->required & CTL_OPT_PUBLIC_IP && !a->o.public_ip) {
		fprintf(err, "twillctl %s: --public-ip IP is required\n", cmd->name);
		return 2;
	}
	return 0;
}

/* Open the store the flags name and run @cmd; the exit status. */
static int run_cmd(const struct ctl_cmd *cmd, struct cli *a, char **args, FILE *out, FILE *err)
{
	struct ctl c = { .out = out, .err = err };
	char errbuf[512], pfx[256];
	int ret = 1;

	if (cmd->no_store)
		return cmd->run(&c, &a->o, args);
	if (!store_flags_prefix(&a->sf, pfx, sizeof(pfx))) {
		fprintf(err, "twillctl: bad --etcd-prefix\n");
		return 1;
	}
	snprintf(c.prefix, sizeof(c.prefix), "%s", strcmp(pfx, "/") ? pfx : "");
	c.endpoints = a->sf.endpoints ? a->sf.endpoints : STORE_FLAGS_DEFAULT_ENDPOINTS;
	c.loop = ev_loop_new();
	if (!c.loop) {
		fprintf(err, "twillctl: cannot create the event loop: %s\n", strerror(errno));
		return 1;
	}
	errbuf[0] = '\0';
	c.store = store_flags_open(c.loop, &a->sf, errbuf, sizeof(errbuf));
	if (!c.store)
		fprintf(err, "twillctl: %s\n", errbuf[0] ? errbuf : strerror(errno));
	else
		ret = cmd->run(&c, &a->o, args);
	store_free(c.store);
	ev_loop_free(c.loop);
	return ret;
}

/* After the flags: help, version, the command; the exit status. */
static int dispatch(struct cli *a, FILE *out, FILE *err)
{
	const struct ctl_cmd *cmd;
	char name[64];
	int words, ret;

	if (a->version) {
		fprintf(out, "twillctl %s\n", TWILL_VERSION);
		return 0;
	}
	if (a->npos == 0 || strcmp(a->pos[0], "help") == 0) {
		bool asked = a->npos > 0 || a->help;

		a->help = false; /* flags_usage() prints current values as defaults */
		usage(asked ? out : err, a);
		return asked ? 0 : 2;
	}
	cmd = find_cmd(a, name, sizeof(name), &words);
	if (!cmd) {
		fprintf(err, "twillctl: unknown command \"%s\"\n", name);
		fprintf(err, "Run `twillctl --help` for usage.\n");
		return 2;
	}
	if (a->help) {
		fputs(cmd->help, out);
		return 0;
	}
	ret = check_usage(cmd, a, a->npos - words, err);
	if (ret)
		return ret;
	return run_cmd(cmd, a, a->pos + words, out, err);
}

int ctl_main(int argc, char **argv, FILE *out, FILE *err)
{
	struct cli *a = calloc(1, sizeof(*a));
	char errbuf[512];
	int ret = 2;

	if (a)
		a->pos = calloc((size_t)argc + 1, sizeof(*a->pos));
	if (!a || !a->pos) {
		fprintf(err, "twillctl: out of memory\n");
		goto out;
	}
	cli_defs(a);
	if (flags_parse_interspersed(a->defs, a->ndefs, argc, argv, "FLANNELD_", a->pos, &a->npos,
	                             errbuf, sizeof(errbuf)) < 0) {
		fprintf(err, "twillctl: %s\n", errbuf);
		fprintf(err, "Run `twillctl --help` for usage.\n");
	} else {
		ret = dispatch(a, out, err);
	}
	flags_free(a->defs, a->ndefs);
out:
	if (a)
		free(a->pos);
	free(a);
	return ret;
}
