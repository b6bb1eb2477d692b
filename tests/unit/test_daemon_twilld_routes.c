/*
 * twilld's kernel state across restarts and lease expiry, end to end on a file:// store and
 * the host-gw backend in a named network namespace made here ("tw<pid>r", removed at the
 * end): `ip monitor route` proves that no route to a remote subnet is withdrawn
 *  - when twilld restarts (the first resync waits for the remote listing), and
 *  - when a remote lease expires and its owner re-acquires the same subnet at once (the
 *    withdrawal waits REMOVE_GRACE_MS),
 * while a lease that stays gone is still withdrawn within 1 s.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
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

#define NET    "/coreos.com/network/"
#define REMOTE NET "subnets/198.18.77.0-24"
#define ROUTE  "198.18.77.0/24"

static char ns[32], dir[64] = "/tmp/twill-dr-XXXXXX";
static struct ev_loop *loop;
static struct store *st;
static pid_t mon_pid;

struct done {
	bool done;
	int err;
};

static void on_result(void *ctx, const struct store_result *res)
{
	struct done *d = ctx;

	d->err = res->err;
	d->done = true;
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void setup(void)
{
	snprintf(ns, sizeof(ns), "tw%dr", (int)getpid());
	cr_assert_not_null(mkdtemp(dir));
	sh("ip netns add %s && ip -n %s link set lo up && "
	   "ip -n %s link add tw-a type veth peer name tw-b && "
	   "ip -n %s addr add 192.0.2.1/24 dev tw-a && ip -n %s link set tw-a up && "
	   "ip -n %s link set tw-b up",
	   ns, ns, ns, ns, ns, ns);
	loop = ev_loop_new();
	cr_assert(loop);
	{
		char path[128];

		snprintf(path, sizeof(path), "%s/store.json", dir);
		st = store_local_new(loop, path);
		cr_assert(st);
	}
}

static void teardown(void)
{
	char cmd[256];

	if (mon_pid > 0) {
		kill(mon_pid, SIGTERM);
		waitpid(mon_pid, NULL, 0);
		mon_pid = 0;
	}
	store_free(st);
	ev_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; rm -rf '%s'", ns, dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed: %s\n", cmd);
}

static void store_do(bool create, const char *key, const char *value, int64_t ttl)
{
	struct done d = { 0 };
	int r = create ? st->ops->create(st, key, value, strlen(value), ttl, on_result, &d)
	               : st->ops->del(st, key, 0, on_result, &d);

	cr_assert_eq(r, 0);
	cr_assert_eq(ev_loop_run_until(loop, &d.done, 5000), 0);
	cr_assert_eq(d.err, 0, "%s %s: %d", create ? "create" : "delete", key, d.err);
}

/* twilld (host-gw, TTL 60 s) in the namespace, its log in dir/twilld.log. */
static pid_t start_twilld(void)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct twilld_opts o;
		char ep[128], sf[128], err[512], nspath[64], logf[128],
			prog[] = "twilld", iface[] = "--iface=tw-a",
			ttl[] = "--subnet-lease-ttl=60";
		char *argv[] = { prog, ep, sf, iface, ttl, NULL };
		int fd;

		snprintf(ep, sizeof(ep), "--etcd-endpoints=file://%s/store.json", dir);
		snprintf(sf, sizeof(sf), "--subnet-file=%s/subnet.env", dir);
		snprintf(nspath, sizeof(nspath), "/run/netns/%s", ns);
		snprintf(logf, sizeof(logf), "%s/twilld.log", dir);
		fd = open(nspath, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
			_exit(3);
		close(fd);
		fd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0)
			dup2(fd, 2);
		twilld_opts_init(&o);
		if (twilld_opts_parse(&o, 5, argv, err, sizeof(err)) < 0)
			_exit(2);
		log_init("twilld-test", LOG_LVL_DEBUG);
		_exit(twilld_run(&o) < 0 ? 1 : 0);
	}
	return pid;
}

static int stop_twilld(pid_t pid)
{
	uint64_t end = ev_now_ms() + 5000;
	int stat;

	kill(pid, SIGTERM);
	while (ev_now_ms() < end) {
		if (waitpid(pid, &stat, WNOHANG) == pid)
			return WIFEXITED(stat) ? WEXITSTATUS(stat) : 128 + WTERMSIG(stat);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static bool route_present(void)
{
	char cmd[256], line[256] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ip -n %s -4 route show %s 2>/dev/null", ns, ROUTE);
	p = popen(cmd, "r");
	cr_assert(p);
	if (!fgets(line, sizeof(line), p))
		line[0] = '\0';
	pclose(p);
	return strncmp(line, ROUTE, strlen(ROUTE)) == 0;
}

/* Poll until the route is (@want) or is not there; the time it took in ms, or -1. */
static int64_t wait_route(bool want, int timeout_ms)
{
	uint64_t t0 = ev_now_ms();

	while (ev_now_ms() - t0 < (uint64_t)timeout_ms) {
		if (route_present() == want)
			return (int64_t)(ev_now_ms() - t0);
		usleep(10000);
	}
	return -1;
}

/* `ip monitor route` in the namespace, into dir/monitor.log. */
static void monitor_start(void)
{
	char logf[128];

	snprintf(logf, sizeof(logf), "%s/monitor.log", dir);
	mon_pid = fork();
	cr_assert_geq(mon_pid, 0);
	if (mon_pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd < 0)
			_exit(3);
		dup2(fd, 1);
		execlp("ip", "ip", "-n", ns, "-4", "monitor", "route", (char *)NULL);
		_exit(4);
	}
	usleep(200000); /* the monitor subscribes */
}

static bool monitor_saw_deletion(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "grep -q '^Deleted %s' '%s/monitor.log'", ROUTE, dir);
	return system(cmd) == 0;
}

static void wait_ready(void)
{
	char cmd[256];
	uint64_t end = ev_now_ms() + 10000;

	snprintf(cmd, sizeof(cmd), "grep -q 'remote leases: .* known' '%s/twilld.log'", dir);
	while (ev_now_ms() < end && system(cmd) != 0)
		usleep(20000);
	cr_assert_eq(system(cmd), 0, "twilld did not list the remote leases");
}

Test(twilld_routes, restart_and_expiry_keep_remote_routes, .init = setup, .fini = teardown,
     .timeout = 60)
{
	static const char config[] =
		"{\"Network\":\"198.18.0.0/16\",\"Backend\":{\"Type\":\"host-gw\"}}";
	static const char remote[] = "{\"PublicIP\":\"192.0.2.2\",\"BackendType\":\"host-gw\"}";
	char cmd[256];
	pid_t pid;
	int64_t ms;

	{
		struct done d = { 0 };

		cr_assert_eq(
			st->ops->put(st, NET "config", config, strlen(config), 0, on_result, &d),
			0);
		cr_assert_eq(ev_loop_run_until(loop, &d.done, 5000), 0);
	}
	store_do(true, REMOTE, remote, 60);
	pid = start_twilld();
	cr_assert_geq(wait_route(true, 10000), 0, "the remote lease's route never came");
	monitor_start();

	/* 1. restart: the kernel state stays (no resync with a remote set not listed yet) */
	cr_assert_eq(stop_twilld(pid), 0);
	snprintf(cmd, sizeof(cmd), ": > '%s/twilld.log'", dir);
	cr_assert_eq(system(cmd), 0);
	pid = start_twilld();
	wait_ready();
	usleep(200000);
	cr_expect_not(monitor_saw_deletion(), "restart withdrew the remote route");
	cr_expect(route_present());

	/* 2. the remote lease expires and comes back at once: no withdrawal */
	store_do(false, REMOTE, NULL, 0);
	usleep(50000);
	store_do(true, REMOTE, remote, 60);
	usleep(800000);
	cr_expect_not(monitor_saw_deletion(), "a lease back within the grace period was withdrawn");
	cr_expect(route_present());

	/* 3. it stays gone: withdrawn within 1 s */
	store_do(false, REMOTE, NULL, 0);
	ms = wait_route(false, 3000);
	cr_expect(ms >= 0 && ms < 1000, "route withdrawn after %lld ms (-1: never)", (long long)ms);

	cr_expect_eq(stop_twilld(pid), 0);
}
