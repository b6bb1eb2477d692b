/*
 * twilld's wiring end to end in one process tree: a forked child in its own
 * network namespace runs twilld_run() on a file:// store; the parent writes the
 * network config late (the child must wait for it), waits for the subnet file,
 * then stops the child with SIGTERM and checks the exit status and the lease.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/opts.h"
#include "daemon/twilld.h"
#include "lib/ev.h"
#include "lib/log.h"
#include "subnet/store.h"
#include "subnet/subnetfile.h"

struct done {
	bool done;
	int err;
	size_t n;
	char key[128];
};

static void on_result(void *ctx, const struct store_result *res)
{
	struct done *d = ctx;

	d->err = res->err;
	d->n = res->n_kvs;
	if (res->n_kvs > 0)
		snprintf(d->key, sizeof(d->key), "%s", res->kvs[0].key);
	d->done = true;
}

static pid_t start_twilld(const char *dir)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct twilld_opts o;
		char ep[256], sf[256], err[512], prog[] = "twilld", iface[] = "--iface=tw-a",
						 ttl[] = "--subnet-lease-ttl=60";
		char *argv[] = { prog, ep, sf, iface, ttl, NULL };
		int r;

		snprintf(ep, sizeof(ep), "--etcd-endpoints=file://%s/store.json", dir);
		snprintf(sf, sizeof(sf), "--subnet-file=%s/run/subnet.env", dir);
		if (unshare(CLONE_NEWNET) < 0 ||
		    system("sh -c 'set -e; ip link set lo up; "
		           "ip link add tw-a type veth peer name tw-b; "
		           "ip addr add 192.0.2.1/24 dev tw-a; ip link set tw-a up; ip link set tw-b up'") !=
		            0)
			_exit(3);
		twilld_opts_init(&o);
		if (twilld_opts_parse(&o, 5, argv, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			_exit(2);
		}
		log_init("twilld-test", LOG_LVL_DEBUG);
		r = twilld_run(&o);
		twilld_opts_free(&o);
		_exit(r < 0 ? 1 : 0);
	}
	return pid;
}

static int wait_exit(pid_t pid, int timeout_ms)
{
	uint64_t end = ev_now_ms() + (uint64_t)timeout_ms;
	int st;

	while (ev_now_ms() < end) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

Test(twilld, waits_for_config_writes_subnet_file_and_exits_on_sigterm, .timeout = 30)
{
	char dir[] = "/tmp/twill-d-XXXXXX", path[256], err[256];
	static const char config[] =
		"{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"host-gw\"}}";
	struct ev_loop *loop = ev_loop_new();
	struct store *s;
	struct subnetfile sf;
	struct done d = { 0 };
	char buf[IPAM_PREFIX_STRLEN];
	uint64_t end;
	pid_t pid;
	int r = -ENOENT;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.json", dir);
	s = store_local_new(loop, path);
	cr_assert_not_null(s);
	pid = start_twilld(dir);

	/* the child finds no config and keeps retrying; give it one round */
	usleep(300000);
	cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "twilld exited without a config");
	cr_assert_eq(s->ops->put(s, "/coreos.com/network/config", config, strlen(config), 0,
	                         on_result, &d),
	             0);
	cr_assert_eq(ev_loop_run_until(loop, &d.done, 5000), 0);
	cr_assert_eq(d.err, 0);

	snprintf(path, sizeof(path), "%s/run/subnet.env", dir);
	end = ev_now_ms() + 10000;
	while (ev_now_ms() < end && (r = subnetfile_read(path, &sf, err, sizeof(err))) == -ENOENT)
		usleep(20000);
	cr_assert_eq(r, 0, "subnet file: %s (%d)", err, r);
	cr_expect_str_eq(ipam_prefix_format(&sf.network, buf), "198.18.0.0/16");
	cr_expect_eq(sf.subnet.len, 24);
	cr_expect_eq(sf.mtu, 1500); /* host-gw: the veth's MTU */
	cr_expect(sf.has_ipmasq);
	cr_expect_not(sf.ipmasq);

	/* SIGHUP re-reads the config and keeps running */
	cr_assert_eq(kill(pid, SIGHUP), 0);
	usleep(100000);
	cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "twilld died on SIGHUP");

	cr_assert_eq(kill(pid, SIGTERM), 0);
	cr_expect_eq(wait_exit(pid, 5000), 0);

	/* the lease stays in the store */
	d.done = false;
	cr_assert_eq(s->ops->list(s, "/coreos.com/network/subnets/", on_result, &d), 0);
	cr_assert_eq(ev_loop_run_until(loop, &d.done, 5000), 0);
	cr_expect_eq(d.n, 1, "leases left: %zu", d.n);
	cr_expect(strncmp(d.key, "/coreos.com/network/subnets/198.18.", 35) == 0, "%s", d.key);

	store_free(s);
	ev_loop_free(loop);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	cr_expect_eq(system(path), 0);
}

Test(twilld, no_interface_is_a_start_up_error, .timeout = 10)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct twilld_opts o;
		char err[512], prog[] = "twilld", iface[] = "--iface=nonexistent0",
			       ep[] = "--etcd-endpoints=file:///nonexistent/store.json";
		char *argv[] = { prog, iface, ep, NULL };

		if (unshare(CLONE_NEWNET) < 0)
			_exit(3);
		twilld_opts_init(&o);
		if (twilld_opts_parse(&o, 3, argv, err, sizeof(err)) < 0)
			_exit(2);
		log_init("twilld-test", LOG_LVL_ERROR);
		_exit(twilld_run(&o) == -ENODEV ? 0 : 1);
	}
	cr_expect_eq(wait_exit(pid, 5000), 0);
}
