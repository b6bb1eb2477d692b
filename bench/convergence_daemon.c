/*
 * Helper of bench/convergence_daemon.sh (daemon-level convergence of twilld).
 * Runs inside the benchmark's network namespace.
 *
 *   bench_convergence_daemon converge N TIMEOUT_MS LOGFILE -- CMD [ARG...]
 *       Joins the route and neighbour multicast groups, then forks and execs CMD
 *       (twilld; stdout+stderr to LOGFILE) and counts what appears in the kernel:
 *       routes of table main to 198.18.0.0/15 /29, permanent IPv4 neighbours in
 *       198.18.0.0/15, fdb entries with a remote for the benchmark's VtepMACs
 *       (02:00:00:xx:xx:xx). When all three reach N it checks them with a dump
 *       and prints converge_ms (from just before the fork), the child's CPU ms and
 *       VmHWM at that moment, and its pid; the child keeps running until the caller
 *       stops it, and its exit status becomes this program's. On timeout or failure
 *       the child is stopped here (exit 2).
 *       Events lost to a full socket buffer (ENOBUFS) switch to dump polling.
 *
 *   bench_convergence_daemon latency FIRST K URL PREFIX [OWN]
 *       Puts K leases (index FIRST.., the same lease generator as bench_convergence,
 *       skipping the /29 that holds OWN, twilld's FLANNEL_SUBNET)
 *       one by one into etcd at URL (v3 JSON gateway, one keep-alive connection) and
 *       measures from just before each put to the arrival of its route in the
 *       kernel (RTM_NEWROUTE event). Prints p50/p99/max in ms, and p50/p99 measured
 *       from etcd's reply to the put instead (0 when the route came first).
 *
 * Leases: lease i is 198.18.0.0 + (i + 1) * 8 /29, VtepMAC 02:00:00:<i>, PublicIP
 * 192.0.2.(2 + i % 200), VNI 1: exactly bench_convergence's and preload_leases.py's.
 * With BENCH_DUALSTACK=1 in the environment (preload_leases.py --dualstack), converge also
 * waits for the IPv6 half of each lease: route 2001:db8:100:<i+1>::/64, its neighbour and
 * the fdb entry of VtepMAC 02:01:00:<i> (6N objects in all).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include <curl/curl.h>

#include "lib/base64.h"
#include "lib/nl.h"

#define MAX_LEASES 16383
#define NET_BASE   ((198u << 24) | (18u << 16)) /* 198.18.0.0/15 */
#define EV_RCVBUF  (256 * 1024 * 1024)

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Index of the /29 that holds @a (host order) in 198.18.0.0/15, or -1. */
static int slot_of(uint32_t a)
{
	if ((a & 0xfffe0000u) != NET_BASE)
		return -1;
	return (int)((a - NET_BASE) >> 3);
}

struct seen {
	uint8_t route[MAX_LEASES + 2], neigh[MAX_LEASES + 2], fdb[1u << 16];
	unsigned n_route, n_neigh, n_fdb;
	uint8_t route6[1u << 16], neigh6[1u << 16], fdb6[1u << 16];
	unsigned n_route6, n_neigh6, n_fdb6;
};

static bool dualstack;

/* Lease index of 2001:db8:100:<i+1>::/64 (@a: 16 bytes), or -1. */
static int slot6_of(const uint8_t *a)
{
	static const uint8_t pfx[6] = { 0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00 };
	int i = (a[6] << 8 | a[7]) - 1;

	if (memcmp(a, pfx, 6) != 0 || i < 0)
		return -1;
	for (int k = 8; k < 16; k++)
		if (a[k])
			return -1;
	return i;
}

static bool all_seen(const struct seen *s, unsigned n)
{
	return s->n_route >= n && s->n_neigh >= n && s->n_fdb >= n &&
	       (!dualstack || (s->n_route6 >= n && s->n_neigh6 >= n && s->n_fdb6 >= n));
}

static void mark(uint8_t *set, unsigned *n, int i, bool on)
{
	if (i < 0)
		return;
	if (on && !set[i]) {
		set[i] = 1;
		(*n)++;
	} else if (!on && set[i]) {
		set[i] = 0;
		(*n)--;
	}
}

static int count_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct seen *s = ctx;
	struct nl_route r;
	struct nl_neigh n;
	bool add;

	switch (nlh->nlmsg_type) {
	case RTM_NEWROUTE:
	case RTM_DELROUTE:
		add = nlh->nlmsg_type == RTM_NEWROUTE;
		if (nl_parse_route(nlh, &r) < 0 || r.table != RT_TABLE_MAIN)
			break;
		if (r.family == AF_INET && r.dst_len == 29)
			mark(s->route, &s->n_route, slot_of(ntohl(r.dst.s_addr)), add);
		else if (r.family == AF_INET6 && r.dst_len == 64)
			mark(s->route6, &s->n_route6, slot6_of(r.dst6.s6_addr), add);
		break;
	case RTM_NEWNEIGH:
	case RTM_DELNEIGH:
		if (nl_parse_neigh(nlh, &n) < 0)
			break;
		if (n.family == AF_INET && n.has_dst) {
			add = nlh->nlmsg_type == RTM_NEWNEIGH && (n.state & NUD_PERMANENT);
			mark(s->neigh, &s->n_neigh, slot_of(ntohl(n.dst.s_addr)), add);
		} else if (n.family == AF_INET6 && n.has_dst) {
			add = nlh->nlmsg_type == RTM_NEWNEIGH && (n.state & NUD_PERMANENT);
			mark(s->neigh6, &s->n_neigh6, slot6_of(n.dst6.s6_addr), add);
		} else if (n.family == AF_BRIDGE && n.has_lladdr && n.lladdr[0] == 2 &&
		           n.lladdr[1] == 1 && n.lladdr[2] == 0 && n.lladdr[3] == 0) {
			add = nlh->nlmsg_type == RTM_NEWNEIGH && n.has_dst;
			mark(s->fdb6, &s->n_fdb6, (n.lladdr[4] << 8) | n.lladdr[5], add);
		} else if (n.family == AF_BRIDGE && n.has_lladdr && n.lladdr[0] == 2 &&
		           n.lladdr[1] == 0 && n.lladdr[2] == 0 && n.lladdr[3] == 0) {
			add = nlh->nlmsg_type == RTM_NEWNEIGH && n.has_dst;
			mark(s->fdb, &s->n_fdb, (n.lladdr[4] << 8) | n.lladdr[5], add);
		}
		break;
	default:
		break;
	}
	return 0;
}

static int dump_all(struct nl_sock *sk, struct seen *s)
{
	int r;

	memset(s, 0, sizeof(*s));
	r = nl_dump(sk, RTM_GETROUTE, AF_INET, count_cb, s);
	if (r == 0)
		r = nl_dump(sk, RTM_GETNEIGH, AF_INET, count_cb, s);
	if (r == 0)
		r = nl_dump(sk, RTM_GETNEIGH, AF_BRIDGE, count_cb, s);
	if (r == 0 && dualstack)
		r = nl_dump(sk, RTM_GETROUTE, AF_INET6, count_cb, s);
	if (r == 0 && dualstack)
		r = nl_dump(sk, RTM_GETNEIGH, AF_INET6, count_cb, s);
	return r;
}

/* utime + stime of @pid in ms, and VmHWM in kB; -1 when unreadable. */
static void proc_usage(pid_t pid, double *ret_cpu_ms, long *ret_hwm_kb)
{
	char path[64], buf[4096], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	*ret_cpu_ms = -1;
	*ret_hwm_kb = -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f) {
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
		    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
		           &st) == 2)
			*ret_cpu_ms = (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f) {
		while (fgets(buf, sizeof(buf), f))
			if (sscanf(buf, "VmHWM: %ld", ret_hwm_kb) == 1)
				break;
		fclose(f);
	}
}

static struct nl_sock *event_sock(const unsigned *groups, size_t n)
{
	struct nl_sock *sk = nl_sock_open(groups, n);
	int sz = EV_RCVBUF;

	if (!sk) {
		perror("netlink event socket");
		return NULL;
	}
	if (setsockopt(nl_sock_fd(sk), SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		perror("SO_RCVBUFFORCE (continuing)");
	return sk;
}

static void stop_child(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int converge(unsigned n, unsigned timeout_ms, const char *logfile, char **cmd)
{
	static const unsigned groups[] = { RTNLGRP_IPV4_ROUTE, RTNLGRP_NEIGH, RTNLGRP_IPV6_ROUTE };
	static struct seen s, chk;
	struct nl_sock *ev = event_sock(groups, dualstack ? 3 : 2), *dsk = nl_sock_open(NULL, 0);
	uint64_t t0, t1 = 0, deadline, last_dump = 0;
	bool polling = false;
	unsigned enobufs = 0;
	int status;
	double cpu;
	long hwm;
	pid_t pid;
	int fd;

	if (!ev || !dsk) {
		perror("netlink");
		return 1;
	}
	fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(logfile);
		return 1;
	}
	t0 = now_us();
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(cmd[0], cmd);
		perror(cmd[0]);
		_exit(127);
	}
	close(fd);
	deadline = t0 + (uint64_t)timeout_ms * 1000u;
	for (;;) {
		struct pollfd p = { .fd = nl_sock_fd(ev), .events = POLLIN };
		uint64_t now = now_us();
		int r;

		if (all_seen(&s, n)) {
			t1 = now;
			break;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid) { /* reaped: nothing to stop */
			fprintf(stderr,
			        "converge: twilld exited after %.0f ms: routes %u neigh %u fdb %u of %u\n",
			        (double)(now - t0) / 1e3, s.n_route, s.n_neigh, s.n_fdb, n);
			return 2;
		}
		if (now >= deadline) {
			fprintf(stderr,
			        "converge: timeout after %.0f ms: routes %u neigh %u fdb %u of %u\n",
			        (double)(now - t0) / 1e3, s.n_route, s.n_neigh, s.n_fdb, n);
			stop_child(pid);
			return 2;
		}
		if (polling) {
			if (now - last_dump >= 5000) {
				dump_all(dsk, &s);
				last_dump = now_us();
			}
			poll(&p, 1, 2);
			nl_recv_events(ev, NULL, NULL); /* keep the socket drained */
			continue;
		}
		poll(&p, 1, 10);
		r = nl_recv_events(ev, count_cb, &s);
		if (r == -ENOBUFS) {
			enobufs++;
			polling = true;
		}
	}
	proc_usage(pid, &cpu, &hwm);
	if (dump_all(dsk, &chk) < 0 || chk.n_route != n || chk.n_neigh != n || chk.n_fdb != n ||
	    (dualstack && (chk.n_route6 != n || chk.n_neigh6 != n || chk.n_fdb6 != n))) {
		fprintf(stderr,
		        "converge: check dump: routes %u neigh %u fdb %u, IPv6 %u %u %u, want %u each\n",
		        chk.n_route, chk.n_neigh, chk.n_fdb, chk.n_route6, chk.n_neigh6, chk.n_fdb6,
		        n);
		stop_child(pid);
		return 2;
	}
	printf("converge_ms=%.1f cpu_ms=%.0f hwm_kb=%ld pid=%d routes=%u neighs=%u fdb=%u "
	       "routes6=%u neighs6=%u fdb6=%u enobufs=%u\n",
	       (double)(t1 - t0) / 1e3, cpu, hwm, (int)pid, chk.n_route, chk.n_neigh, chk.n_fdb,
	       chk.n_route6, chk.n_neigh6, chk.n_fdb6, enobufs);
	fflush(stdout);
	nl_sock_close(ev);
	nl_sock_close(dsk);
	/* The caller stops the child; its exit status becomes ours. */
	if (waitpid(pid, &status, 0) != pid)
		return 3;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void lease_n(unsigned i, char key[32], char val[160], uint32_t *ret_net)
{
	uint32_t a = NET_BASE + (i + 1) * 8;

	snprintf(key, 32, "%u.%u.%u.%u-29", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
	snprintf(val, 160,
	         "{\"PublicIP\":\"192.0.2.%u\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\","
	         "\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"02:00:00:%02x:%02x:%02x\"}}",
	         2 + i % 200, (i >> 16) & 255, (i >> 8) & 255, i & 255);
	*ret_net = a;
}

struct want {
	uint32_t net;
	bool got;
};

static int route_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct want *w = ctx;
	struct nl_route r;

	if (nlh->nlmsg_type == RTM_NEWROUTE && nl_parse_route(nlh, &r) == 0 &&
	    r.table == RT_TABLE_MAIN && r.dst_len == 29 && ntohl(r.dst.s_addr) == w->net)
		w->got = true;
	return 0;
}

static size_t sink(char *p, size_t sz, size_t nm, void *ctx)
{
	(void)p;
	(void)ctx;
	return sz * nm;
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The JSON body of the v3 put of @key (under @prefix/subnets/) = @val into *@body; 0 or -1. */
static int put_body(const char *prefix, const char *key, const char *val, char **body)
{
	char full[512], *bk, *bv;

	snprintf(full, sizeof(full), "%s/subnets/%s", prefix, key);
	bk = base64_encode(full, strlen(full));
	bv = base64_encode(val, strlen(val));
	free(*body);
	*body = NULL;
	if (!bk || !bv || asprintf(body, "{\"key\":\"%s\",\"value\":\"%s\"}", bk, bv) < 0) {
		free(bk);
		free(bv);
		*body = NULL;
		return -1;
	}
	free(bk);
	free(bv);
	return 0;
}

static int latency(unsigned first, unsigned k, const char *url, const char *prefix, uint32_t own)
{
	static const unsigned groups[] = { RTNLGRP_IPV4_ROUTE };
	struct nl_sock *ev = event_sock(groups, 1);
	char key[32], val[160], ep[512], *body = NULL;
	double *lat = calloc(k, sizeof(*lat)), *lat_ack = calloc(k, sizeof(*lat)), sum = 0;
	struct curl_slist *hdr = NULL;
	CURL *c = curl_easy_init();
	int ret = 1;

	if (!ev || !lat || !lat_ack || !c)
		goto out;
	snprintf(ep, sizeof(ep), "%s/v3/kv/put", url);
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, ep);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	for (unsigned j = 0, idx = first; j < k; j++, idx++) {
		struct want w = { 0 };
		uint64_t t0, tack, t1, deadline;
		long code = 0;
		CURLcode cr;

		lease_n(idx, key, val, &w.net);
		if (w.net == own) /* twilld's own subnet: the next one */
			lease_n(++idx, key, val, &w.net);
		if (put_body(prefix, key, val, &body) < 0)
			goto out;
		nl_recv_events(ev, NULL, NULL); /* drop anything older */
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		t0 = now_us();
		cr = curl_easy_perform(c);
		tack = now_us();
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (cr != CURLE_OK || code != 200) {
			fprintf(stderr, "latency: put %s: %s (HTTP %ld)\n", key,
			        curl_easy_strerror(cr), code);
			goto out;
		}
		deadline = t0 + 5000000u;
		while (!w.got) {
			struct pollfd p = { .fd = nl_sock_fd(ev), .events = POLLIN };

			if (now_us() >= deadline) {
				fprintf(stderr, "latency: no route for %s after 5 s\n", key);
				goto out;
			}
			poll(&p, 1, 5);
			if (nl_recv_events(ev, route_cb, &w) == -ENOBUFS) {
				fprintf(stderr, "latency: events lost (ENOBUFS)\n");
				goto out;
			}
		}
		t1 = now_us();
		if (getenv("LAT_DUMP")) {
			struct timespec rt;

			clock_gettime(CLOCK_REALTIME, &rt);
			fprintf(stderr,
			        "lease %s: route %.2f ms after the put, %.2f after its reply, at %ld.%06ld\n",
			        key, (double)(t1 - t0) / 1e3,
			        t1 > tack ? (double)(t1 - tack) / 1e3 : 0.0, (long)rt.tv_sec % 60,
			        (long)rt.tv_nsec / 1000);
		}
		lat[j] = (double)(t1 - t0) / 1e3;
		/* from etcd's reply to the put (the route may even come first: then 0) */
		lat_ack[j] = t1 > tack ? (double)(t1 - tack) / 1e3 : 0;
		sum += lat[j];
		usleep(10000); /* one event at a time */
	}
	qsort(lat, k, sizeof(*lat), dcmp);
	qsort(lat_ack, k, sizeof(*lat_ack), dcmp);
	/* nearest-rank percentiles */
	printf("latency_n=%u p50_ms=%.2f p99_ms=%.2f max_ms=%.2f mean_ms=%.2f ack_p50_ms=%.2f "
	       "ack_p99_ms=%.2f\n",
	       k, lat[(k * 50 + 99) / 100 - 1], lat[(k * 99 + 99) / 100 - 1], lat[k - 1], sum / k,
	       lat_ack[(k * 50 + 99) / 100 - 1], lat_ack[(k * 99 + 99) / 100 - 1]);
	ret = 0;
out:
	free(body);
	free(lat);
	free(lat_ack);
	curl_slist_free_all(hdr);
	if (c)
		curl_easy_cleanup(c);
	nl_sock_close(ev);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned long n;

	dualstack = getenv("BENCH_DUALSTACK") && strcmp(getenv("BENCH_DUALSTACK"), "1") == 0;
	if (argc >= 6 && strcmp(argv[1], "converge") == 0 && strcmp(argv[5], "--") == 0 &&
	    argc > 6) {
		n = strtoul(argv[2], NULL, 10);
		if (n == 0 || n > MAX_LEASES)
			goto usage;
		return converge((unsigned)n, (unsigned)strtoul(argv[3], NULL, 10), argv[4],
		                argv + 6);
	}
	if ((argc == 6 || argc == 7) && strcmp(argv[1], "latency") == 0) {
		unsigned long first = strtoul(argv[2], NULL, 10), k = strtoul(argv[3], NULL, 10);
		struct in_addr own = { 0 };

		if (k == 0 || first + k + 1 > MAX_LEASES)
			goto usage;
		if (argc == 7) {
			char ip[32];

			snprintf(ip, sizeof(ip), "%.*s", (int)strcspn(argv[6], "/"), argv[6]);
			if (inet_pton(AF_INET, ip, &own) != 1)
				goto usage;
		}
		return latency((unsigned)first, (unsigned)k, argv[4], argv[5],
		               ntohl(own.s_addr) & ~7u);
	}
usage:
	fprintf(stderr,
	        "usage: %s converge N TIMEOUT_MS LOGFILE -- CMD [ARG...]\n"
	        "       %s latency FIRST K URL PREFIX [OWN_SUBNET]\n",
	        argv[0], argv[0]);
	return 1;
}
