/*
 * daemon/iptables.c against the real iptables, each test in its own network
 * namespace (unshare(CLONE_NEWNET) in Criterion's per-test process: iptables
 * there touches only that namespace). Runs with the default backend (nft on
 * Debian) and with iptables-legacy when it is installed.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/iptables.h"
#include "lib/ev.h"

#define NET  "198.18.0.0/16"
#define SUB  "198.18.5.0/24"
#define NET2 "198.19.0.0/16"
#define SUB2 "198.19.7.0/24"

struct fx {
	struct ev_loop *loop;
	struct ipt *ipt;
	char dir[64];
	char state[128];
	char bindir[128]; /* legacy: symlinks to iptables-legacy-* */
	bool done;
	int nresults;
	struct ipt_result last;
	char last_msg[IPT_ERR_MAX];
};

static void on_done(void *ctx, const struct ipt_result *res)
{
	struct fx *f = ctx;

	f->last = *res;
	snprintf(f->last_msg, sizeof(f->last_msg), "%s", res->msg ? res->msg : "");
	f->last.msg = f->last_msg;
	f->nresults++;
	f->done = true;
}

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s (run as root)",
	             strerror(errno));
	snprintf(f->dir, sizeof(f->dir), "/tmp/twill-ipt-XXXXXX");
	cr_assert_not_null(mkdtemp(f->dir));
	snprintf(f->state, sizeof(f->state), "%s/%s", f->dir, IPT_STATE_NAME);
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

static bool have_legacy(void)
{
	return access("/usr/sbin/iptables-legacy-save", X_OK) == 0 &&
	       access("/usr/sbin/iptables-legacy-restore", X_OK) == 0 &&
	       access("/usr/sbin/iptables-legacy", X_OK) == 0;
}

/* A private bin dir in which iptables* are the legacy tools. */
static void use_legacy(struct fx *f)
{
	char p[256];

	snprintf(f->bindir, sizeof(f->bindir), "%s/bin", f->dir);
	cr_assert_eq(mkdir(f->bindir, 0755), 0);
	snprintf(p, sizeof(p), "%s/iptables-save", f->bindir);
	cr_assert_eq(symlink("/usr/sbin/iptables-legacy-save", p), 0);
	snprintf(p, sizeof(p), "%s/iptables-restore", f->bindir);
	cr_assert_eq(symlink("/usr/sbin/iptables-legacy-restore", p), 0);
	snprintf(p, sizeof(p), "%s/iptables", f->bindir);
	cr_assert_eq(symlink("/usr/sbin/iptables-legacy", p), 0);
}

static struct ipam_prefix pfx(const char *s)
{
	struct ipam_prefix p;

	cr_assert_eq(ipam_prefix_parse(s, &p), 0, "%s", s);
	return p;
}

static void fx_new(struct fx *f, bool fwd, bool masq, int rf, unsigned resync_s, bool state)
{
	struct ipt_opts o = { 0 };
	char err[IPT_ERR_MAX];

	o.forward_rules = fwd;
	o.masq = masq;
	o.random_fully = rf;
	o.resync_s = resync_s;
	o.state_file = state ? f->state : NULL;
	o.path = f->bindir[0] ? f->bindir : NULL;
	o.done = on_done;
	o.ctx = f;
	ipt_free(f->ipt);
	f->ipt = ipt_new(f->loop, &o, err, sizeof(err));
	cr_assert_not_null(f->ipt, "ipt_new: %s", err);
}

/* Set the lease and wait for the sync to finish. */
static void fx_apply(struct fx *f, const char *net, const char *sub)
{
	struct ipam_prefix n = pfx(net), s = pfx(sub);

	f->done = false;
	cr_assert_eq(ipt_set_lease(f->ipt, &n, &s), 0);
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

static void sh(const struct fx *f, const char *cmd)
{
	char full[1024];

	snprintf(full, sizeof(full), "%s%s%s", f->bindir[0] ? "export PATH=" : "",
	         f->bindir[0] ? f->bindir : "", f->bindir[0] ? ":$PATH; " : "");
	snprintf(full + strlen(full), sizeof(full) - strlen(full), "%s", cmd);
	cr_assert_eq(system(full), 0, "%s", full);
}

/*
 * The rules of @table that mention FLANNEL, plus every FORWARD/POSTROUTING rule,
 * as iptables-save prints them, sorted by nothing: iptables-save order.
 */
static char *save(const struct fx *f, const char *table)
{
	char cmd[512], line[1024];
	static char out[8192];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s/iptables-save -t %s", f->bindir[0] ? f->bindir : "/usr/sbin",
	         table);
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

static const char *want_filter(const char *net)
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

static const char *want_nat(const char *net, const char *sub, bool rf)
{
	static char buf[2048];
	const char *r = rf ? " --random-fully" : "";

	snprintf(
		buf, sizeof(buf),
		":FLANNEL-POSTRTG - [0:0]\n"
		"-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG\n"
		"-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment \"flanneld masq\" -j RETURN\n"
		"-A FLANNEL-POSTRTG -s %s -d %s -m comment --comment \"flanneld masq\" -j RETURN\n"
		"-A FLANNEL-POSTRTG -s %s ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" -j MASQUERADE%s\n"
		"-A FLANNEL-POSTRTG ! -s %s -d %s -m comment --comment \"flanneld masq\" -j RETURN\n"
		"-A FLANNEL-POSTRTG ! -s %s -d %s -m comment --comment \"flanneld masq\" -j MASQUERADE%s\n",
		net, net, net, r, net, sub, net, net, r);
	return buf;
}

static void read_file(const char *path, char *buf, size_t len)
{
	FILE *fp = fopen(path, "r");
	size_t n;

	buf[0] = '\0';
	if (!fp)
		return;
	n = fread(buf, 1, len - 1, fp);
	buf[n] = '\0';
	fclose(fp);
}

/* ---- Pure ---- */

Test(iptables, render_rules_match_flannel)
{
	struct ipam_prefix n = pfx("10.5.0.0/16"), s = pfx("10.5.34.1/24");
	char buf[2048];

	cr_assert_eq(ipt_render_rules("filter", &n, &s, false, buf, sizeof(buf)), 3);
	cr_assert_str_eq(buf, strchr(want_filter("10.5.0.0/16"), '\n') + 1);
	cr_assert_eq(ipt_render_rules("nat", &n, &s, true, buf, sizeof(buf)), 6);
	cr_assert_str_eq(buf, strchr(want_nat("10.5.0.0/16", "10.5.34.0/24", true), '\n') + 1);
	cr_assert_eq(ipt_render_rules("nat", &n, &s, false, buf, 100), -ENOSPC);
	cr_assert_eq(ipt_render_rules("raw", &n, &s, false, buf, sizeof(buf)), -EINVAL);
	n = pfx("fc00::/48");
	cr_assert_eq(ipt_render_rules("nat", &n, &s, false, buf, sizeof(buf)), -EINVAL);
}

Test(iptables, state_path_is_next_to_the_subnet_file)
{
	char buf[256];

	cr_assert_eq(ipt_state_path("/run/flannel/subnet.env", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/run/flannel/twill-iptables.state");
	cr_assert_eq(ipt_state_path("subnet.env", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "twill-iptables.state");
	cr_assert_eq(ipt_state_path("/run/flannel/subnet.env", buf, 10), -ENAMETOOLONG);
}

Test(iptables, missing_binaries_are_a_clear_error)
{
	struct ev_loop *loop = ev_loop_new();
	struct ipt_opts o = { .masq = true, .path = "/nonexistent", .random_fully = -1 };
	char err[IPT_ERR_MAX];

	errno = 0;
	cr_assert_null(ipt_new(loop, &o, err, sizeof(err)));
	cr_assert_eq(errno, ENOENT);
	cr_assert(strstr(err, "iptables-restore") && strstr(err, "--ip-masq") &&
	                  strstr(err, "/nonexistent"),
	          "%s", err);
	/* nothing to do: the binaries are not needed */
	o.masq = false;
	{
		struct ipt *ipt = ipt_new(loop, &o, err, sizeof(err));
		struct ipam_prefix n = pfx(NET), s = pfx(SUB);

		cr_assert_not_null(ipt, "%s", err);
		cr_assert_eq(ipt_set_lease(ipt, &n, &s), 0);
		cr_assert_not(ipt_busy(ipt));
		ipt_free(ipt);
	}
	ev_loop_free(loop);
}

/* ---- Against the kernel ---- */

static void apply_and_repair(struct fx *f)
{
	bool rf;

	fx_new(f, true, true, -1, 0, true);
	fx_apply(f, NET, SUB);
	rf = ipt_random_fully(f->ipt);
	cr_assert(f->last.first);
	cr_assert_eq(f->last.repaired, 3 + 6);
	cr_assert_str_eq(save(f, "filter"), want_filter(NET));
	cr_assert_str_eq(save(f, "nat"), want_nat(NET, SUB, rf));

	/* in place: nothing to do */
	fx_sync(f);
	cr_assert_not(f->last.first);
	cr_assert_eq(f->last.repaired, 0);

	/* someone deletes a rule and a jump: both come back, in order */
	sh(f, "iptables -t nat -D FLANNEL-POSTRTG 3");
	sh(f, "iptables -D FORWARD 1");
	fx_sync(f);
	cr_assert_eq(f->last.repaired, 2);
	cr_assert_str_eq(save(f, "filter"), want_filter(NET));
	cr_assert_str_eq(save(f, "nat"), want_nat(NET, SUB, rf));

	/* a flushed chain, a deleted chain */
	sh(f, "iptables -t nat -F FLANNEL-POSTRTG");
	sh(f, "iptables -D FORWARD 1 && iptables -F FLANNEL-FWD && iptables -X FLANNEL-FWD");
	fx_sync(f);
	cr_assert_eq(f->last.repaired, 3 + 5);
	cr_assert_str_eq(save(f, "filter"), want_filter(NET));
	cr_assert_str_eq(save(f, "nat"), want_nat(NET, SUB, rf));
}

Test(iptables, apply_then_repair)
{
	struct fx f;

	fx_init(&f);
	apply_and_repair(&f);
	fx_fini(&f);
}

Test(iptables, apply_then_repair_legacy)
{
	struct fx f;

	fx_init(&f);
	cr_assert(have_legacy(), "iptables-legacy is part of Debian's iptables package");
	use_legacy(&f);
	apply_and_repair(&f);
	fx_fini(&f);
}

Test(iptables, foreign_rules_are_kept_and_ours_normalised)
{
	struct fx f;

	fx_init(&f);
	sh(&f, "iptables -A FORWARD -s 192.0.2.0/24 -j ACCEPT");
	sh(&f, "iptables -t nat -A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE");
	fx_new(&f, true, true, 0, 0, false);
	fx_apply(&f, NET, SUB);
	/* our jump first, the foreign rule kept after it */
	cr_assert_str_eq(
		save(&f, "filter"),
		":FLANNEL-FWD - [0:0]\n"
		"-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD\n"
		"-A FORWARD -s 192.0.2.0/24 -j ACCEPT\n"
		"-A FLANNEL-FWD -s " NET " -m comment --comment \"flanneld forward\" -j ACCEPT\n"
		"-A FLANNEL-FWD -d " NET " -m comment --comment \"flanneld forward\" -j ACCEPT\n");
	/* a rule slipped into our chain and a duplicate jump: removed */
	sh(&f, "iptables -A FLANNEL-FWD -j DROP");
	sh(&f, "iptables -A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD");
	sh(&f, "iptables -t nat -I FLANNEL-POSTRTG 1 -j ACCEPT");
	fx_sync(&f);
	cr_assert_geq(f.last.repaired, 1);
	cr_assert_str_eq(
		save(&f, "filter"),
		":FLANNEL-FWD - [0:0]\n"
		"-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD\n"
		"-A FORWARD -s 192.0.2.0/24 -j ACCEPT\n"
		"-A FLANNEL-FWD -s " NET " -m comment --comment \"flanneld forward\" -j ACCEPT\n"
		"-A FLANNEL-FWD -d " NET " -m comment --comment \"flanneld forward\" -j ACCEPT\n");
	cr_assert(strstr(save(&f, "nat"), "-A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE\n"));
	{
		char want[4096];

		/* want_nat's jump line, then the foreign POSTROUTING rule, then the chain */
		snprintf(want, sizeof(want), "%s", want_nat(NET, SUB, false));
		cr_assert_str_eq(strstr(save(&f, "nat"), "-A FLANNEL-POSTRTG"),
		                 strstr(want, "-A FLANNEL-POSTRTG"));
	}
	fx_fini(&f);
}

Test(iptables, network_change_replaces_the_old_rules)
{
	struct fx f;

	fx_init(&f);
	fx_new(&f, true, true, 0, 0, true);
	fx_apply(&f, NET, SUB);
	cr_assert_str_eq(save(&f, "nat"), want_nat(NET, SUB, false));
	/* a new lease in a new network (same process) */
	fx_apply(&f, NET2, SUB2);
	cr_assert(f.last.first);
	cr_assert_str_eq(save(&f, "filter"), want_filter(NET2));
	cr_assert_str_eq(save(&f, "nat"), want_nat(NET2, SUB2, false));
	/* and across a restart: a new object, another subnet */
	fx_new(&f, true, true, 0, 0, true);
	fx_apply(&f, NET2, "198.19.8.0/24");
	cr_assert_str_eq(save(&f, "filter"), want_filter(NET2));
	cr_assert_str_eq(save(&f, "nat"), want_nat(NET2, "198.19.8.0/24", false));
	cr_assert_eq(f.last.repaired, 1); /* only the RETURN for the own subnet was missing */
	fx_fini(&f);
}

Test(iptables, turning_masq_off_removes_what_twilld_installed)
{
	struct fx f;
	char st[512];

	fx_init(&f);
	fx_new(&f, true, true, 0, 0, true);
	fx_apply(&f, NET, SUB);
	read_file(f.state, st, sizeof(st));
	cr_assert(strstr(st, "\nfilter FLANNEL-FWD " NET "\n"), "%s", st);
	cr_assert(strstr(st, "\nnat FLANNEL-POSTRTG " NET " " SUB "\n"), "%s", st);

	/* restart without --ip-masq: the nat chain goes, the forward rules stay */
	fx_new(&f, true, false, 0, 0, true);
	fx_apply(&f, NET, SUB);
	cr_assert_eq(f.last.removed, 1);
	cr_assert_str_eq(save(&f, "nat"), "");
	cr_assert_str_eq(save(&f, "filter"), want_filter(NET));
	read_file(f.state, st, sizeof(st));
	cr_assert_null(strstr(st, "nat "), "%s", st);

	/* restart with nothing: the state file goes too */
	fx_new(&f, false, false, 0, 0, true);
	fx_apply(&f, NET, SUB);
	cr_assert_eq(f.last.removed, 1);
	cr_assert_str_eq(save(&f, "filter"), "");
	cr_assert_neq(access(f.state, F_OK), 0);
	fx_fini(&f);
}

Test(iptables, chains_twilld_did_not_install_are_left_alone)
{
	struct fx f;

	fx_init(&f);
	/* flanneld's masquerade chain; twilld runs without --ip-masq and without state */
	sh(&f, "iptables -t nat -N FLANNEL-POSTRTG");
	sh(&f, "iptables -t nat -A FLANNEL-POSTRTG -j RETURN");
	sh(&f, "iptables -t nat -I POSTROUTING -j FLANNEL-POSTRTG");
	fx_new(&f, true, false, 0, 0, true);
	fx_apply(&f, NET, SUB);
	cr_assert_str_eq(save(&f, "nat"), ":FLANNEL-POSTRTG - [0:0]\n"
	                                  "-A POSTROUTING -j FLANNEL-POSTRTG\n"
	                                  "-A FLANNEL-POSTRTG -j RETURN\n");
	fx_fini(&f);
}

Test(iptables, periodic_resync_restores_deleted_rules)
{
	struct fx f;
	uint64_t t0;

	fx_init(&f);
	fx_new(&f, true, true, 0, 1, false);
	fx_apply(&f, NET, SUB);
	sh(&f, "iptables -t nat -D FLANNEL-POSTRTG 1");
	t0 = ev_now_ms();
	f.last.repaired = 0;
	while (f.last.repaired == 0) {
		f.done = false;
		cr_assert_eq(ev_loop_run_until(f.loop, &f.done, 5000), 0, "no periodic sync");
		cr_assert_eq(f.last.err, 0, "%s", f.last.msg);
	}
	cr_assert_lt(ev_now_ms() - t0, 3000);
	cr_assert_eq(f.last.repaired, 1);
	cr_assert_str_eq(save(&f, "nat"), want_nat(NET, SUB, false));
	fx_fini(&f);
}

Test(iptables, random_fully_auto_follows_iptables)
{
	struct fx f;

	fx_init(&f);
	fx_new(&f, false, true, -1, 0, false);
	fx_apply(&f, NET, SUB);
	/* Debian 12's iptables is 1.8.9 and the kernel accepts it */
	cr_assert(ipt_random_fully(f.ipt));
	cr_assert_str_eq(save(&f, "nat"), want_nat(NET, SUB, true));
	fx_fini(&f);
}

Test(iptables, queued_sync_and_free_while_busy)
{
	struct fx f;
	struct ipam_prefix n = pfx(NET), s = pfx(SUB);
	int status;

	fx_init(&f);
	fx_new(&f, true, true, 0, 0, false);
	cr_assert_eq(ipt_sync(f.ipt), -EAGAIN); /* no lease yet */
	cr_assert_eq(ipt_set_lease(f.ipt, &n, &s), 0);
	cr_assert(ipt_busy(f.ipt));
	cr_assert_eq(ipt_sync(f.ipt), 0); /* queued behind the running one */
	while (f.nresults < 2) {
		f.done = false;
		cr_assert_eq(ev_loop_run_until(f.loop, &f.done, 15000), 0);
		cr_assert_eq(f.last.err, 0, "%s", f.last.msg);
	}
	cr_assert_not(ipt_busy(f.ipt));
	cr_assert_eq(f.last.repaired, 0);
	/* free with a child running: killed and reaped, no zombie left */
	cr_assert_eq(ipt_sync(f.ipt), 0);
	cr_assert(ipt_busy(f.ipt));
	ipt_free(f.ipt);
	f.ipt = NULL;
	cr_assert_eq(waitpid(-1, &status, WNOHANG), -1);
	cr_assert_eq(errno, ECHILD);
	fx_fini(&f);
}

Test(iptables, failure_is_reported_with_iptables_message)
{
	struct fx f;
	char p[256];
	FILE *fp;

	fx_init(&f);
	/* an iptables-restore that fails like a real one does */
	snprintf(f.bindir, sizeof(f.bindir), "%s/bin", f.dir);
	cr_assert_eq(mkdir(f.bindir, 0755), 0);
	snprintf(p, sizeof(p), "%s/iptables-save", f.bindir);
	cr_assert_eq(symlink("/usr/sbin/iptables-save", p), 0);
	snprintf(p, sizeof(p), "%s/iptables-restore", f.bindir);
	fp = fopen(p, "w");
	fprintf(fp,
	        "#!/bin/sh\ncat >/dev/null\necho 'iptables-restore: line 3 failed' >&2\nexit 1\n");
	fclose(fp);
	chmod(p, 0755);
	fx_new(&f, true, false, 0, 0, false);
	{
		struct ipam_prefix n = pfx(NET), s = pfx(SUB);

		f.done = false;
		cr_assert_eq(ipt_set_lease(f.ipt, &n, &s), 0);
		cr_assert_eq(ev_loop_run_until(f.loop, &f.done, 15000), 0);
	}
	cr_assert_eq(f.last.err, -EIO);
	cr_assert(strstr(f.last.msg, "exit status 1: iptables-restore: line 3 failed"), "%s",
	          f.last.msg);
	f.bindir[0] = '\0';
	fx_fini(&f);
}
