#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "tests/support/etcd_fixture.h"

#define ETCD_BIN "/usr/bin/etcd"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* @n free loopback TCP ports, all bound at once so they differ. 0 or -errno. */
static int free_ports(int *ports, int n)
{
	int fds[2 * ETCD_FIXTURE_MAX];
	int r = 0, i;

	for (i = 0; i < n; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
			                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t sl = sizeof(sa);

		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    getsockname(fds[i], (struct sockaddr *)&sa, &sl) < 0) {
			r = -errno;
			if (fds[i] >= 0)
				close(fds[i]);
			break;
		}
		ports[i] = ntohs(sa.sin_port);
	}
	while (i-- > 0)
		close(fds[i]);
	return r;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void etcd_fixture_dump_log(const struct etcd_fixture *f, int i, int lines)
{
	FILE *fp;
	char **ring;
	char buf[1024];
	int n = 0;

	if (!f || i < 0 || i >= f->n || lines <= 0)
		return;
	fp = fopen(f->m[i].log, "r");
	if (!fp)
		return;
	ring = calloc((size_t)lines, sizeof(*ring));
	if (!ring) {
		fclose(fp);
		return;
	}
	while (fgets(buf, sizeof(buf), fp)) {
		free(ring[n % lines]);
		ring[n % lines] = strdup(buf);
		n++;
	}
	fclose(fp);
	fprintf(stderr, "---- etcd member %d log (%s), last lines ----\n", i, f->m[i].log);
	for (int k = n > lines ? n - lines : 0; k < n; k++)
		if (ring[k % lines])
			fputs(ring[k % lines], stderr);
	for (int k = 0; k < lines; k++)
		free(ring[k]);
	free(ring);
}

/* Run argv, wait; 0 when it exited 0. */
static int run_wait(const char *const argv[], const char *log)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static const char cert_script[] =
	"set -e\n"
	"cd \"$1\"\n"
	"printf 'basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature\\n"
	"extendedKeyUsage=serverAuth,clientAuth\\nsubjectAltName=IP:127.0.0.1,DNS:localhost\\n' "
	"> server.ext\n"
	"printf 'basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature\\n"
	"extendedKeyUsage=clientAuth\\n' > client.ext\n"
	"EC='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
	"openssl req -x509 $EC -keyout ca.key -out ca.crt -days 2 -subj /CN=twill-test-ca\n"
	"openssl req $EC -keyout server.key -out server.csr -subj /CN=etcd-server\n"
	"openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
	"-out server.crt -days 2 -extfile server.ext\n"
	/* no CN: with auth on, etcd's gateway rejects client certs that have one (docs/etcd.md) */
	"openssl req $EC -keyout client.key -out client.csr -subj /O=twill-test\n"
	"openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
	"-out client.crt -days 2 -extfile client.ext\n";

static int make_certs(struct etcd_fixture *f)
{
	char tlsdir[300], log[320];
	const char *argv[] = { "/bin/sh", "-c", cert_script, "sh", tlsdir, NULL };

	snprintf(tlsdir, sizeof(tlsdir), "%s/tls", f->dir);
	snprintf(log, sizeof(log), "%s/openssl.log", f->dir);
	if (mkdir(tlsdir, 0700) < 0)
		return -errno;
	if (run_wait(argv, log) < 0) {
		fprintf(stderr, "etcd fixture: certificate generation failed, see %s\n", log);
		return -EIO;
	}
	snprintf(f->cafile, sizeof(f->cafile), "%s/tls/ca.crt", f->dir);
	snprintf(f->certfile, sizeof(f->certfile), "%s/tls/client.crt", f->dir);
	snprintf(f->keyfile, sizeof(f->keyfile), "%s/tls/client.key", f->dir);
	return 0;
}

static size_t body_cb(char *p, size_t sz, size_t nm, void *ud)
{
	char **bp = ud;
	size_t n = sz * nm, old = *bp ? strlen(*bp) : 0;
	char *nb = realloc(*bp, old + n + 1);

	if (!nb)
		return 0;
	memcpy(nb + old, p, n);
	nb[old + n] = '\0';
	*bp = nb;
	return n;
}

/* Blocking request (GET when @json is NULL); HTTP status or -errno. */
static long easy_req(const struct etcd_fixture *f, const char *url, const char *json,
                     const char *token, long timeout_ms, char **ret_body)
{
	CURL *e = curl_easy_init();
	struct curl_slist *h = NULL;
	char *body = NULL, auth[512];
	long status = 0;
	CURLcode rc;

	if (!e)
		return -ENOMEM;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	if (f->tls) {
		curl_easy_setopt(e, CURLOPT_CAINFO, f->cafile);
		curl_easy_setopt(e, CURLOPT_SSLCERT, f->certfile);
		curl_easy_setopt(e, CURLOPT_SSLKEY, f->keyfile);
	}
	if (json) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, json);
		h = curl_slist_append(h, "Content-Type: application/json");
	}
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: %s", token);
		h = curl_slist_append(h, auth);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	rc = curl_easy_perform(e);
	if (rc == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	if (rc != CURLE_OK) {
		free(body);
		return rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
	}
	if (ret_body)
		*ret_body = body ? body : strdup("");
	else
		free(body);
	return status;
}

static bool member_alive(struct etcd_fixture_member *m)
{
	int st;

	if (m->pid <= 0)
		return false;
	if (waitpid(m->pid, &st, WNOHANG) == m->pid) {
		m->pid = 0;
		return false;
	}
	return true;
}

static int spawn_member(struct etcd_fixture *f, const struct etcd_fixture_opts *o, int i,
                        const char *cluster, const char *token)
{
	struct etcd_fixture_member *m = &f->m[i];
	char name[16], datadir[300], peer[64], ttl[32], prog[32], tlsdir[300];
	char certf[330], keyf[330], caf[330];
	const char *argv[40];
	int a = 0;
	pid_t pid;

	snprintf(name, sizeof(name), "m%d", i);
	snprintf(datadir, sizeof(datadir), "%s/%s.etcd", f->dir, name);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", m->peer_port);
	snprintf(m->url, sizeof(m->url), "%s://127.0.0.1:%d", f->tls ? "https" : "http",
	         m->client_port);
	snprintf(m->log, sizeof(m->log), "%s/%s.log", f->dir, name);
	argv[a++] = ETCD_BIN;
	argv[a++] = "--name";
	argv[a++] = name;
	argv[a++] = "--data-dir";
	argv[a++] = datadir;
	argv[a++] = "--listen-client-urls";
	argv[a++] = m->url;
	argv[a++] = "--advertise-client-urls";
	argv[a++] = m->url;
	argv[a++] = "--listen-peer-urls";
	argv[a++] = peer;
	argv[a++] = "--initial-advertise-peer-urls";
	argv[a++] = peer;
	argv[a++] = "--initial-cluster";
	argv[a++] = cluster;
	argv[a++] = "--initial-cluster-state";
	argv[a++] = "new";
	argv[a++] = "--initial-cluster-token";
	argv[a++] = token;
	argv[a++] = "--heartbeat-interval";
	argv[a++] = "50";
	argv[a++] = "--election-timeout";
	argv[a++] = "500";
	if (o->auth_token_ttl_s > 0) {
		snprintf(ttl, sizeof(ttl), "%d", o->auth_token_ttl_s);
		argv[a++] = "--auth-token-ttl";
		argv[a++] = ttl;
	}
	if (o->progress_ms > 0) {
		snprintf(prog, sizeof(prog), "%dms", o->progress_ms);
		argv[a++] = "--experimental-watch-progress-notify-interval";
		argv[a++] = prog;
	}
	if (f->tls) {
		snprintf(tlsdir, sizeof(tlsdir), "%s/tls", f->dir);
		snprintf(certf, sizeof(certf), "%s/server.crt", tlsdir);
		snprintf(keyf, sizeof(keyf), "%s/server.key", tlsdir);
		snprintf(caf, sizeof(caf), "%s/tls/ca.crt", f->dir);
		argv[a++] = "--cert-file";
		argv[a++] = certf;
		argv[a++] = "--key-file";
		argv[a++] = keyf;
		argv[a++] = "--trusted-ca-file";
		argv[a++] = caf;
		argv[a++] = "--client-cert-auth";
	}
	argv[a] = NULL;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(m->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(ETCD_BIN, (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	m->pid = pid;
	return 0;
}

static void kill_all(struct etcd_fixture *f, int sig)
{
	for (int i = 0; i < f->n; i++)
		if (f->m[i].pid > 0)
			kill(f->m[i].pid, sig);
}

static void reap_all(struct etcd_fixture *f, unsigned deadline_ms)
{
	uint64_t end = now_ms() + deadline_ms;

	for (;;) {
		bool any = false;

		for (int i = 0; i < f->n; i++)
			if (member_alive(&f->m[i]))
				any = true;
		if (!any)
			return;
		if (now_ms() >= end)
			break;
		sleep_ms(20);
	}
	kill_all(f, SIGKILL);
	for (int i = 0; i < f->n; i++) {
		if (f->m[i].pid > 0) {
			while (waitpid(f->m[i].pid, NULL, 0) < 0 && errno == EINTR)
				;
			f->m[i].pid = 0;
		}
	}
}

/* 0 when every member is healthy; -EAGAIN while not yet; -ECHILD when one died. */
static int check_health(struct etcd_fixture *f)
{
	for (int i = 0; i < f->n; i++) {
		char url[128], *body = NULL;
		long st;
		bool ok;

		if (!member_alive(&f->m[i]))
			return -ECHILD;
		snprintf(url, sizeof(url), "%s/health", f->m[i].url);
		st = easy_req(f, url, NULL, NULL, 1000, &body);
		ok = st == 200 && body && strstr(body, "\"health\":\"true\"");
		free(body);
		if (!ok)
			return -EAGAIN;
	}
	return 0;
}

static long post_token(struct etcd_fixture *f, const char *path, const char *json,
                       const char *token, char **ret_body)
{
	for (int i = 0; i < f->n; i++) {
		char url[512];

		if (f->m[i].pid <= 0)
			continue;
		snprintf(url, sizeof(url), "%s%s", f->m[i].url, path);
		return easy_req(f, url, json, token, 5000, ret_body);
	}
	return -ESRCH;
}

static char *b64(const char *s)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = strlen(s), o = 0;
	char *out = malloc(len / 3 * 4 + 5);

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned char)s[i] << 16;

		if (i + 1 < len)
			v |= (unsigned char)s[i + 1] << 8;
		if (i + 2 < len)
			v |= (unsigned char)s[i + 2];
		out[o++] = al[v >> 18 & 63];
		out[o++] = al[v >> 12 & 63];
		out[o++] = i + 1 < len ? al[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? al[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static int setup_auth(struct etcd_fixture *f, const char *prefix)
{
	char end[256], perm[1024];
	char *k, *e;
	size_t l = strlen(prefix);

	if (l == 0 || l >= sizeof(end))
		return -EINVAL;
	memcpy(end, prefix, l + 1);
	end[l - 1]++;
	k = b64(prefix);
	e = b64(end);
	if (!k || !e) {
		free(k);
		free(e);
		return -ENOMEM;
	}
	snprintf(perm, sizeof(perm),
	         "{\"name\":\"user\",\"perm\":{\"permType\":\"READWRITE\",\"key\":\"%s\","
	         "\"range_end\":\"%s\"}}",
	         k, e);
	free(k);
	free(e);
	const char *steps[][2] = {
		{ "/v3/auth/user/add", "{\"name\":\"root\",\"password\":\"rootpw\"}" },
		{ "/v3/auth/role/add", "{\"name\":\"root\"}" },
		{ "/v3/auth/user/grant", "{\"user\":\"root\",\"role\":\"root\"}" },
		{ "/v3/auth/user/add", "{\"name\":\"user\",\"password\":\"userpw\"}" },
		{ "/v3/auth/role/add", "{\"name\":\"user\"}" },
		{ "/v3/auth/role/grant", perm },
		{ "/v3/auth/user/grant", "{\"user\":\"user\",\"role\":\"user\"}" },
		{ "/v3/auth/enable", "{}" },
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		char *body = NULL;
		long st = post_token(f, steps[i][0], steps[i][1], NULL, &body);

		if (st != 200) {
			fprintf(stderr, "etcd fixture: %s -> %ld %s\n", steps[i][0], st,
			        body ? body : "");
			free(body);
			return -EIO;
		}
		free(body);
	}
	f->username = "user";
	f->password = "userpw";
	f->root_username = "root";
	f->root_password = "rootpw";
	return 0;
}

static struct etcd_fixture *try_start(const struct etcd_fixture_opts *o, int *ret_err)
{
	struct etcd_fixture *f = calloc(1, sizeof(*f));
	int ports[2 * ETCD_FIXTURE_MAX];
	char cluster[512] = "", token[64];
	uint64_t deadline;
	int r;

	*ret_err = -ENOMEM;
	if (!f)
		return NULL;
	f->n = o->members > 0 ? o->members : 1;
	f->tls = o->tls;
	f->auth = o->auth;
	snprintf(f->dir, sizeof(f->dir), "/tmp/twill-etcd-XXXXXX");
	if (!mkdtemp(f->dir)) {
		*ret_err = -errno;
		f->dir[0] = '\0';
		goto fail;
	}
	if (f->tls && (r = make_certs(f)) < 0) {
		*ret_err = r;
		goto fail;
	}
	r = free_ports(ports, 2 * f->n);
	if (r < 0) {
		*ret_err = r;
		goto fail;
	}
	for (int i = 0; i < f->n; i++) {
		size_t l = strlen(cluster);

		f->m[i].client_port = ports[2 * i];
		f->m[i].peer_port = ports[2 * i + 1];
		snprintf(cluster + l, sizeof(cluster) - l, "%sm%d=http://127.0.0.1:%d",
		         i ? "," : "", i, f->m[i].peer_port);
	}
	snprintf(token, sizeof(token), "tw%d-%d", (int)getpid(), ports[0]);
	for (int i = 0; i < f->n; i++) {
		r = spawn_member(f, o, i, cluster, token);
		if (r < 0) {
			*ret_err = r;
			goto fail;
		}
		f->endpoints[i] = f->m[i].url;
	}
	deadline = now_ms() + 20000;
	for (;;) {
		r = check_health(f);
		if (r == 0)
			break;
		if (r == -ECHILD || now_ms() >= deadline) {
			*ret_err = r == -ECHILD ? -EADDRINUSE : -ETIMEDOUT;
			for (int i = 0; i < f->n; i++)
				etcd_fixture_dump_log(f, i, 20);
			goto fail;
		}
		sleep_ms(30);
	}
	if (f->auth) {
		r = setup_auth(f, o->auth_prefix ? o->auth_prefix : "/coreos.com/network/");
		if (r < 0) {
			*ret_err = r;
			goto fail;
		}
	}
	*ret_err = 0;
	return f;
fail:
	etcd_fixture_stop(f);
	return NULL;
}

struct etcd_fixture *etcd_fixture_start(const struct etcd_fixture_opts *opts)
{
	struct etcd_fixture_opts def = { .members = 1 };
	const struct etcd_fixture_opts *o = opts ? opts : &def;
	int err = 0;

	if (o->members != 0 && o->members != 1 && o->members != 3) {
		errno = EINVAL;
		return NULL;
	}
	if (access(ETCD_BIN, X_OK) < 0) {
		fprintf(stderr, "etcd fixture: %s not found\n", ETCD_BIN);
		return NULL;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* a port taken between probing and etcd's bind makes etcd exit: try again */
	for (int attempt = 0; attempt < 3; attempt++) {
		struct etcd_fixture *f = try_start(o, &err);

		if (f)
			return f;
		if (err != -EADDRINUSE)
			break;
	}
	fprintf(stderr, "etcd fixture: start failed: %s\n", strerror(-err));
	errno = -err;
	return NULL;
}

void etcd_fixture_stop(struct etcd_fixture *f)
{
	if (!f)
		return;
	kill_all(f, SIGCONT);
	kill_all(f, SIGTERM);
	reap_all(f, 1500);
	rm_rf(f->dir);
	free(f);
}

static int signal_member(struct etcd_fixture *f, int i, int sig)
{
	if (!f || i < 0 || i >= f->n || f->m[i].pid <= 0)
		return -ESRCH;
	if (kill(f->m[i].pid, sig) < 0)
		return -errno;
	return 0;
}

int etcd_fixture_kill(struct etcd_fixture *f, int i)
{
	int r = signal_member(f, i, SIGKILL);

	if (r < 0)
		return r;
	while (waitpid(f->m[i].pid, NULL, 0) < 0 && errno == EINTR)
		;
	f->m[i].pid = 0;
	return 0;
}

int etcd_fixture_freeze(struct etcd_fixture *f, int i)
{
	return signal_member(f, i, SIGSTOP);
}

int etcd_fixture_thaw(struct etcd_fixture *f, int i)
{
	return signal_member(f, i, SIGCONT);
}

long etcd_fixture_post(struct etcd_fixture *f, const char *path, const char *json, char **ret_body)
{
	char *token = NULL;
	long st;

	if (ret_body)
		*ret_body = NULL;
	if (f->auth) {
		char *body = NULL, *p, *q;

		st = post_token(f, "/v3/auth/authenticate",
		                "{\"name\":\"root\",\"password\":\"rootpw\"}", NULL, &body);
		p = body ? strstr(body, "\"token\":\"") : NULL;
		if (st != 200 || !p) {
			free(body);
			return st < 0 ? st : -EACCES;
		}
		p += 9;
		q = strchr(p, '"');
		token = q ? strndup(p, (size_t)(q - p)) : NULL;
		free(body);
		if (!token)
			return -EPROTO;
	}
	st = post_token(f, path, json, token, ret_body);
	free(token);
	return st;
}

int64_t etcd_fixture_revision(struct etcd_fixture *f)
{
	char *body = NULL, *p;
	long st = etcd_fixture_post(f, "/v3/kv/range", "{\"key\":\"AA==\",\"count_only\":true}",
	                            &body);
	int64_t rev = -EPROTO;

	if (st != 200) {
		free(body);
		return st < 0 ? st : -EIO;
	}
	p = body ? strstr(body, "\"revision\":\"") : NULL;
	if (p)
		rev = strtoll(p + 12, NULL, 10);
	free(body);
	return rev;
}

int etcd_fixture_compact(struct etcd_fixture *f, int64_t rev)
{
	char json[96];
	long st;

	snprintf(json, sizeof(json), "{\"revision\":\"%" PRId64 "\",\"physical\":true}", rev);
	st = etcd_fixture_post(f, "/v3/kv/compaction", json, NULL);
	if (st < 0)
		return (int)st;
	return st == 200 ? 0 : -EIO;
}
