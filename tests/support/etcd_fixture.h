/*
 * A real etcd (/usr/bin/etcd) for tests: one or three members on free loopback
 * ports, a fresh temporary data dir, optional TLS (client certificates) and
 * auth. Every process is started and stopped by PID; members die with the test
 * process (PR_SET_PDEATHSIG). Blocking calls: for test code only.
 *
 *   struct etcd_fixture *f = etcd_fixture_start(&(struct etcd_fixture_opts){ .members = 1 });
 *   ... opts.endpoints = f->endpoints ...
 *   etcd_fixture_stop(f);
 */
#ifndef TWILL_TESTS_ETCD_FIXTURE_H
#define TWILL_TESTS_ETCD_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define ETCD_FIXTURE_MAX 3

struct etcd_fixture_opts {
	int members; /* 1 (default when 0) or 3 */
	bool tls;    /* https + --client-cert-auth; certs made with openssl in the data dir */
	bool auth;   /* users root/rootpw and user/userpw (READWRITE on auth_prefix), auth on */
	const char *auth_prefix; /* default "/coreos.com/network/" */
	int auth_token_ttl_s;    /* --auth-token-ttl (0 = etcd's default, 300 s) */
	int progress_ms; /* --experimental-watch-progress-notify-interval (0 = default 10 min) */
};

struct etcd_fixture_member {
	pid_t pid; /* 0 once killed or stopped */
	int client_port;
	int peer_port;
	char url[64];  /* http(s)://127.0.0.1:<client_port> */
	char log[300]; /* its stdout+stderr */
};

struct etcd_fixture {
	char dir[256]; /* the temporary data dir (removed by etcd_fixture_stop) */
	int n;
	bool tls, auth;
	struct etcd_fixture_member m[ETCD_FIXTURE_MAX];
	char *endpoints[ETCD_FIXTURE_MAX +
	                1]; /* NULL-terminated client URLs (point into m[].url) */
	char cafile[300], certfile[300], keyfile[300]; /* TLS: CA and a client cert without CN */
	const char *username, *password;               /* auth: "user"/"userpw"; else NULL */
	const char *root_username, *root_password;     /* auth: "root"/"rootpw"; else NULL */
	pid_t proxy_pid;      /* etcd_fixture_proxy(): the grpc-proxy, 0 = none */
	char proxy_url[64];   /* http://127.0.0.1:<port> of the proxy */
	char proxy_log[300];
};

/* Start etcd and wait until every member reports healthy (deadline 20 s). NULL (log tail printed) on failure. */
struct etcd_fixture *etcd_fixture_start(const struct etcd_fixture_opts *opts);
/* SIGCONT + SIGTERM every member, SIGKILL after 1.5 s, reap, remove the data dir, free. NULL-safe. */
void etcd_fixture_stop(struct etcd_fixture *f);
/* SIGKILL member @i and reap it. 0 or -errno. */
int etcd_fixture_kill(struct etcd_fixture *f, int i);
/* SIGSTOP member @i (its port still accepts connections, nothing answers). 0 or -errno. */
int etcd_fixture_freeze(struct etcd_fixture *f, int i);
/* SIGCONT member @i. 0 or -errno. */
int etcd_fixture_thaw(struct etcd_fixture *f, int i);
/*
 * Blocking POST of @json to @path (e.g. "/v3/kv/compaction") on the first live member,
 * as root when auth is on. The HTTP status (or -errno); the body in *@ret_body when
 * non-NULL (free it). 5 s timeout.
 */
long etcd_fixture_post(struct etcd_fixture *f, const char *path, const char *json, char **ret_body);
/* Current store revision (from a range of "\0"), or -errno. */
int64_t etcd_fixture_revision(struct etcd_fixture *f);
/* Compact the history up to @rev (physical). 0 or -errno. */
int etcd_fixture_compact(struct etcd_fixture *f, int64_t rev);
/*
 * Start an `etcd grpc-proxy` in front of every member (plain http only), listening on a
 * free loopback port; f->proxy_url then names it. Stopped with the fixture. 0 or -errno.
 */
int etcd_fixture_proxy(struct etcd_fixture *f);
/* Print the last @lines lines of member @i's log to stderr. */
void etcd_fixture_dump_log(const struct etcd_fixture *f, int i, int lines);

#endif
