/*
 * The IPv6 half of flannel's rules: daemon/iptables.c with family AF_INET6
 * (ip6tables-save/-restore) and daemon/ip6tables.c, against the real
 * ip6tables, each test in its own network namespace (unshare(CLONE_NEWNET) in
 * Criterion's per-test process).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/ip6tables.h"
#include "daemon/iptables.h"
#include "lib/ev.h"

#define NET6  "2001:db8:100::/48"
#define SUB6  "2001:db8:100:5::/64"
#define NET4  "198.18.0.0/16"
#define SUB4  "198.18.5.0/24"
#define NET6B "2001:db8:180::/48"
#define SUB6B "2001:db8:180:7::/64"

struct fx {
	struct ev_loop *loop;
	struct ipt *ipt;
	char dir[64];
	char state[128];
	bool done;
	struct ipt_result last;
	char last_msg[IPT_ERR_MAX];
};

static void on_done(void *ctx, const struct ipt_result *res)
{
	struct fx *f = ctx;

	f->last = *res;
	snprintf(f->last_msg, sizeof(f->last_msg), "%s", res->msg ? res->msg : "");
	f->last.msg = f->last_msg;
	f->done = true;
}

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s (run as root)",
	             strerror(errno));
	snprintf(f->dir, sizeof(f->dir), "/tmp/twill-ip6t-XXXXXX");
	cr_assert_not_null(mkdtemp(f->dir));
	snprintf(f->state, sizeof(f->state), "%s/%s", f->dir, IPT6_STATE_NAME);
	f->loop = ev_loop_new();
	cr_assert_not_null(f->loop);
}

static void fx_fini(struct fx *f)
{
	char cmd[256];

	ipt_free(f->ipt);
	ev_loop_free(f->loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	cr_assert_eq(system(cmd), 0);
}

static struct ipam_prefix pfx(const char *s)
{
	struct ipam_prefix p;

	cr_assert_eq(ipam_prefix_parse(s, &p), 0, "%s", s);
	return p;
}

static void fx_new(struct fx *f, int family, bool fwd, bool masq, unsigned resync_s)
{
	struct ipt_opts o = { 0 };
	char err[IPT_ERR_MAX];

	o.family = family;
	o.forward_rules = fwd;
	o.masq = masq;
	o.random_fully = 0;
	o.resync_s = resync_s;
	o.state_file = f->state;
	o.done = on_done;
	o.ctx = f;
	ipt_free(f->ipt);
	f->ipt = ipt_new(f->loop, &o, err, sizeof(err));
	cr_assert_not_null(f->ipt, "ipt_new: %s", err);
}

static void fx_apply(struct fx *f, const char *net, const char *sub)
{
	struct ipam_prefix n, s;

	f->done = false;
	if (net) {
		n = pfx(net);
		s = pfx(sub);
	}
	cr_assert_eq(ipt_set_lease(f->ipt, net ? &n : NULL, net ? &s : NULL), 0);
	cr_assert_eq(ev_loop_run_until(f->loop, &f->done, 15000), 0, "no result");
	cr_assert_eq(f->last.err, 0, "sync failed: %s", f->last.msg);
}

static void fx_sync(struct fx *f)
{
	f->done = false;
	cr_assert_eq(ipt_sync(f->ipt), 0);
	cr_assert_eq(ev_loop_run_until(f->loop, &f->done, 15000), 0, "no result");
	cr_assert_eq(f->last.err, 0, "sync failed: %s", f->last.msg);
}

static void sh(const char *cmd)
{
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* FLANNEL lines and every FORWARD/POSTROUTING rule of @tool-save -t @table. */
static char *save(const char *tool, const char *table)
{
	char cmd[256], line[1024];
	static char out[8192];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "/usr/sbin/%s-save -t %s", tool, table);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	out[0] = '\0';
	while (fgets(line, sizeof(line), p))
		if (strstr(line, "FLANNEL") || !strncmp(line, "-A FORWARD", 10) ||
		    !strncmp(line, "-A POSTROUTING", 14))
			snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s", line);
	cr_assert_eq(pclose(p), 0);
	return out;
}

/* flannel's MasqIP6Rules and ForwardRules for the IPv6 network, as ip6tables-save prints them. */
static const char *want6_filter(const char *net)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf),
	         ":FLANNEL-FWD - [0:0]\n"
	         "-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD\n"
	         "-A FLANNEL-FWD -s %s -m comment --comment \"flanneld forward\" -j ACCEPT\n"
	         "-A FLANNEL-FWD -d %s -m comment --comment \"flanneld forward\" -j ACCEPT\n",
	         net, net);
	return buf;
}

static const char *want6_nat(const char *net, const char *sub, bool rf)
{
	static char buf[2048];
	const char *r = rf ? " --random-fully" : "";

	snprintf(
		buf, sizeof(buf),
		":FLANNEL-POSTRTG - [0:0]\n"
		"-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG\n"
		"-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment \"flanneld masq\" -j RETURN\n"
		"-A FLANNEL-POSTRTG -s %s -d %s -m comment --comment \"flanneld masq\" -j RETURN\n"
		"-A FLANNEL-POSTRTG -s %s ! -d ff00::/8 -m comment --comment \"flanneld masq\" -j MASQUERADE%s\n"
		"-A FLANNEL-POSTRTG ! -s %s -d %s -m comment --comment \"flanneld masq\" -j RETURN\n"
		"-A FLANNEL-POSTRTG ! -s %s -d %s -m comment --comment \"flanneld masq\" -j MASQUERADE%s\n",
		net, net, net, r, net, sub, net, net, r);
	return buf;
}

/* ---- Pure ---- */

Test(ip6tables, render_rules_match_flannel)
{
	struct ipam_prefix n = pfx(NET6), s = pfx("2001:db8:100:5::1/64"), s4 = pfx(SUB4);
	char buf[2048];

	cr_assert_eq(ipt_render_rules("filter", &n, &s, false, buf, sizeof(buf)), 3);
	cr_assert_str_eq(buf, strchr(want6_filter(NET6), '\n') + 1);
	cr_assert_eq(ipt_render_rules("nat", &n, &s, true, buf, sizeof(buf)), 6);
	cr_assert_str_eq(buf, strchr(want6_nat(NET6, SUB6, true), '\n') + 1);
	/* mixed families are refused */
	cr_assert_eq(ipt_render_rules("nat", &n, &s4, false, buf, sizeof(buf)), -EINVAL);
}

Test(ip6tables, state_path_is_its_own)
{
	char buf[256];

	cr_assert_eq(ipt6_state_path("/run/flannel/subnet.env", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/run/flannel/twill-ip6tables.state");
	cr_assert_eq(ipt6_state_path("/run/flannel/subnet.env", buf, 10), -ENAMETOOLONG);
}

Test(ip6tables, missing_binaries_are_a_clear_error)
{
	struct ev_loop *loop = ev_loop_new();
	struct ipt_opts o = {
		.family = AF_INET6, .masq = true, .path = "/nonexistent", .random_fully = -1
	};
	struct ipam_prefix n4 = pfx(NET4), s4 = pfx(SUB4);
	char err[IPT_ERR_MAX];
	struct ipt *ipt;

	errno = 0;
	cr_assert_null(ipt_new(loop, &o, err, sizeof(err)));
	cr_assert_eq(errno, ENOENT);
	cr_assert(strstr(err, "ip6tables-save/ip6tables-restore not found in /nonexistent") &&
	                  strstr(err, "--ip-masq"),
	          "%s", err);
	o.family = 12345;
	cr_assert_null(ipt_new(loop, &o, err, sizeof(err)));
	/* an IPv4 lease is refused by an IPv6 instance; NULL only when nothing is wanted */
	o.family = AF_INET6;
	o.masq = false;
	ipt = ipt_new(loop, &o, err, sizeof(err));
	cr_assert_not_null(ipt, "%s", err);
	cr_assert_eq(ipt_set_lease(ipt, &n4, &s4), -EINVAL);
	cr_assert_eq(ipt_set_lease(ipt, NULL, NULL), 0);
	ipt_free(ipt);
	ev_loop_free(loop);
}

/* ---- Against the kernel ---- */

Test(ip6tables, apply_repair_and_leave_ipv4_alone)
{
	struct fx f;
	struct fx f4;

	fx_init(&f);
	fx_new(&f, AF_INET6, true, true, 0);
	fx_apply(&f, NET6, "2001:db8:100:5::1/64");
	cr_assert(f.last.first);
	cr_assert_eq(f.last.repaired, 3 + 6);
	cr_assert_str_eq(save("ip6tables", "filter"), want6_filter(NET6));
	cr_assert_str_eq(save("ip6tables", "nat"), want6_nat(NET6, SUB6, false));
	/* nothing in the IPv4 tables */
	cr_assert_str_eq(save("iptables", "filter"), "");
	cr_assert_str_eq(save("iptables", "nat"), "");

	/* deleted by hand: restored, in order */
	sh("ip6tables -t nat -D FLANNEL-POSTRTG 3 && ip6tables -D FORWARD 1");
	fx_sync(&f);
	cr_assert_eq(f.last.repaired, 2);
	cr_assert_str_eq(save("ip6tables", "filter"), want6_filter(NET6));
	cr_assert_str_eq(save("ip6tables", "nat"), want6_nat(NET6, SUB6, false));

	/* an IPv4 instance beside it: each family keeps its own rules and state file */
	memset(&f4, 0, sizeof(f4));
	f4.loop = f.loop;
	snprintf(f4.state, sizeof(f4.state), "%s/%s", f.dir, IPT_STATE_NAME);
	fx_new(&f4, AF_INET, true, false, 0);
	fx_apply(&f4, NET4, SUB4);
	cr_assert(strstr(save("iptables", "filter"), "-A FLANNEL-FWD -s " NET4));
	cr_assert_str_eq(save("ip6tables", "filter"), want6_filter(NET6));
	cr_assert_eq(access(f4.state, F_OK), 0);
	cr_assert_eq(access(f.state, F_OK), 0);
	ipt_free(f4.ipt);
	fx_fini(&f);
}

Test(ip6tables, turned_off_chains_go_through_the_state_file)
{
	struct fx f;
	char st[512] = "";
	FILE *fp;

	fx_init(&f);
	fx_new(&f, AF_INET6, true, true, 0);
	fx_apply(&f, NET6, SUB6);
	fp = fopen(f.state, "r");
	cr_assert_not_null(fp);
	st[fread(st, 1, sizeof(st) - 1, fp)] = '\0';
	fclose(fp);
	cr_assert(strstr(st, "\nnat FLANNEL-POSTRTG " NET6 " " SUB6 "\n"), "%s", st);

	/* a new IPv6 network: the old rules go with the rebuild */
	fx_new(&f, AF_INET6, true, true, 0);
	fx_apply(&f, NET6B, SUB6B);
	cr_assert_str_eq(save("ip6tables", "filter"), want6_filter(NET6B));
	cr_assert_str_eq(save("ip6tables", "nat"), want6_nat(NET6B, SUB6B, false));

	/* EnableIPv6 turned off: nothing wanted, no lease; both chains and the state file go */
	fx_new(&f, AF_INET6, false, false, 0);
	fx_apply(&f, NULL, NULL);
	cr_assert_eq(f.last.removed, 2);
	cr_assert_str_eq(save("ip6tables", "filter"), "");
	cr_assert_str_eq(save("ip6tables", "nat"), "");
	cr_assert_neq(access(f.state, F_OK), 0);
	fx_fini(&f);
}

Test(ip6tables, periodic_resync_restores_deleted_rules)
{
	struct fx f;
	uint64_t t0;

	fx_init(&f);
	fx_new(&f, AF_INET6, true, true, 1);
	fx_apply(&f, NET6, SUB6);
	sh("ip6tables -t nat -F FLANNEL-POSTRTG");
	t0 = ev_now_ms();
	f.last.repaired = 0;
	while (f.last.repaired == 0) {
		f.done = false;
		cr_assert_eq(ev_loop_run_until(f.loop, &f.done, 5000), 0, "no periodic sync");
		cr_assert_eq(f.last.err, 0, "%s", f.last.msg);
	}
	cr_assert_lt(ev_now_ms() - t0, 3000);
	cr_assert_eq(f.last.repaired, 5);
	cr_assert_str_eq(save("ip6tables", "nat"), want6_nat(NET6, SUB6, false));
	fx_fini(&f);
}

/* ---- daemon/ip6tables.c ---- */

Test(ip6tables, twilld_glue_follows_enable_ipv6)
{
	struct ev_loop *loop;
	struct ip6t *t = NULL;
	struct ipam_prefix n = pfx(NET6), s = pfx(SUB6);
	char dir[64] = "/tmp/twill-ip6t-XXXXXX", subnet_file[128], state[160], cmd[128];
	struct ip6t_opts o = { .enable_ipv6 = true, .forward_rules = true, .masq = true };
	uint64_t t0;

	cr_assert_eq(unshare(CLONE_NEWNET), 0, "%s", strerror(errno));
	cr_assert_not_null(mkdtemp(dir));
	snprintf(subnet_file, sizeof(subnet_file), "%s/subnet.env", dir);
	snprintf(state, sizeof(state), "%s/" IPT6_STATE_NAME, dir);
	o.subnet_file = subnet_file;
	loop = ev_loop_new();
	cr_assert_not_null(loop);

	/* --ip-masq with EnableIPv6 and no ip6tables: fatal */
	o.path = "/nonexistent";
	cr_assert_eq(ip6t_start(loop, &o, &t), -ENOENT);
	cr_assert_null(t);
	/* forward rules alone: logged, not fatal */
	o.masq = false;
	cr_assert_eq(ip6t_start(loop, &o, &t), 0);
	cr_assert_null(t);

	/* the real thing: rules appear after the lease is set */
	o.path = NULL;
	o.masq = true;
	cr_assert_eq(ip6t_start(loop, &o, &t), 0);
	cr_assert_not_null(t);
	cr_assert_eq(ip6t_set_lease(t, &n, &s), 0);
	t0 = ev_now_ms();
	/* the state file is written once the restore has exited: poll for both */
	while ((!strstr(save("ip6tables", "nat"), "MASQUERADE") || access(state, F_OK) != 0) &&
	       ev_now_ms() - t0 < 10000)
		ev_loop_run_until(loop, &(bool){ false }, 50);
	/* random-fully in auto mode: Debian 12's iptables is 1.8.9 and the kernel accepts it */
	cr_assert_str_eq(save("ip6tables", "nat"), want6_nat(NET6, SUB6, true));
	cr_assert(strstr(save("ip6tables", "filter"), "-A FLANNEL-FWD -s " NET6));
	cr_assert_eq(access(state, F_OK), 0);
	ip6t_free(t);

	/* EnableIPv6 off: the recorded chains are removed without a lease */
	o.enable_ipv6 = false;
	cr_assert_eq(ip6t_start(loop, &o, &t), 0);
	t0 = ev_now_ms();
	while (access(state, F_OK) == 0 && ev_now_ms() - t0 < 10000)
		ev_loop_run_until(loop, &(bool){ false }, 50);
	cr_assert_str_eq(save("ip6tables", "filter"), "");
	cr_assert_str_eq(save("ip6tables", "nat"), "");
	cr_assert_neq(access(state, F_OK), 0);
	ip6t_free(t);
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}
