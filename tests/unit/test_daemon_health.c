#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/health.h"
#include "lib/ev.h"
#include "lib/metrics.h"

/* ---- Fixture: a server on 127.0.0.1, driven by ev_loop_run_once between steps ---- */

struct fx {
	struct ev_loop *loop;
	struct health *h;
	struct metrics *reg;
	bool ready;
	int ready_calls;
	bool status_fails;
	uint16_t port;
};

static int status_cb(void *ctx, char **ret_text, size_t *ret_len)
{
	struct fx *f = ctx;

	if (f->status_fails)
		return -ENOMEM;
	*ret_text = strdup("{\"schema\":\"twill.status/v1\"}\n");
	*ret_len = strlen(*ret_text);
	return 0;
}

static bool is_ready(void *ctx, char *reason, size_t len)
{
	struct fx *f = ctx;

	f->ready_calls++;
	if (!f->ready)
		snprintf(reason, len, "no lease yet");
	return f->ready;
}

static void fx_start(struct fx *f, unsigned max_conns, unsigned timeout_ms)
{
	struct health_opts o = { 0 };
	char err[HEALTH_ERR_MAX];

	memset(f, 0, sizeof(*f));
	f->loop = ev_loop_new();
	cr_assert_not_null(f->loop);
	f->reg = metrics_new();
	metric_set(metrics_register(f->reg, METRIC_GAUGE, "twill_lease_held", "1 while held.", NULL,
	                            NULL),
	           NULL, NULL, 1);
	metric_add(metrics_register(f->reg, METRIC_COUNTER, "twill_etcd_requests_total",
	                            "etcd requests by operation.", "op", NULL),
	           "range", NULL, 7);
	metric_inc(metrics_find(f->reg, "twill_etcd_requests_total"), "txn \"q\"\\", NULL);
	metric_set(metrics_register(f->reg, METRIC_GAUGE, "twill_etcd_endpoint_info",
	                            "Configured etcd endpoints.", "endpoint", NULL),
	           "http://127.0.0.1:2379", NULL, 1);
	o.ip = "127.0.0.1";
	o.port = 0;
	o.metrics = f->reg;
	o.ready = is_ready;
	o.ready_ctx = f;
	o.status = status_cb;
	o.status_ctx = f;
	o.max_conns = max_conns;
	o.timeout_ms = timeout_ms;
	f->h = health_new(f->loop, &o, err, sizeof(err));
	cr_assert_not_null(f->h, "health_new: %s", err);
	f->port = health_port(f->h);
	cr_assert_neq(f->port, 0);
}

static void fx_stop(struct fx *f)
{
	health_free(f->h);
	ev_loop_free(f->loop);
	metrics_free(f->reg);
}

static int client(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "connect: %s",
	             strerror(errno));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static void send_all(struct fx *f, int fd, const char *s, size_t n)
{
	size_t off = 0;
	uint64_t deadline = ev_now_ms() + 3000;

	while (off < n) {
		ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);

		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN)
			return; /* the server closed on us: the caller checks the response */
		cr_assert_lt(ev_now_ms(), deadline, "send timed out");
		ev_loop_run_once(f->loop, 10);
	}
}

struct resp {
	int status;
	char head[2048];
	char *body;
	size_t body_len;
	long content_length;
	bool closed; /* EOF seen after the response */
};

/*
 * Read one response (headers + Content-Length bytes; @head_only: no body),
 * driving the server's loop. With @want_close, also wait for EOF.
 */
static void read_resp(struct fx *f, int fd, struct resp *r, bool head_only, bool want_close)
{
	static char buf[1 << 20];
	size_t len = 0;
	uint64_t deadline = ev_now_ms() + 3000;
	char *end = NULL;

	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	buf[0] = '\0';
	for (;;) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);

		if (n > 0) {
			len += (size_t)n;
			buf[len] = '\0';
		} else if (n == 0 || (n < 0 && errno != EAGAIN)) {
			r->closed = true;
		}
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			char *cl;

			cr_assert_lt((size_t)(end - buf), sizeof(r->head));
			memcpy(r->head, buf, (size_t)(end - buf) + 2);
			cr_assert_eq(sscanf(buf, "HTTP/1.1 %d ", &r->status), 1, "%s", buf);
			cl = strcasestr(r->head, "\r\nContent-Length: ");
			cr_assert_not_null(cl, "%s", r->head);
			r->content_length = strtol(cl + 18, NULL, 10);
		}
		if (end) {
			size_t have = len - (size_t)(end + 4 - buf);
			size_t need = head_only ? 0 : (size_t)r->content_length;

			if (have >= need && (!want_close || r->closed)) {
				cr_assert_eq(have, need,
				             "extra bytes after the response: %zu %zu [%s]", have,
				             need, buf);
				r->body = end + 4;
				r->body_len = need;
				return;
			}
		}
		if (r->closed && (!end || !want_close))
			cr_assert_fail("connection closed early: [%s]", buf);
		cr_assert_lt(ev_now_ms(), deadline, "no response: [%s]", buf);
		ev_loop_run_once(f->loop, 5);
	}
}

static void get(struct fx *f, const char *req, struct resp *r)
{
	int fd = client(f->port);

	send_all(f, fd, req, strlen(req));
	read_resp(f, fd, r, strncmp(req, "HEAD", 4) == 0, false);
	close(fd);
}

/* Wait until the server closes @fd (EOF or reset), driving the loop. */
static void wait_closed(struct fx *f, int fd, int timeout_ms)
{
	uint64_t deadline = ev_now_ms() + (uint64_t)timeout_ms;
	char buf[4096];

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n == 0 || (n < 0 && errno != EAGAIN))
			return;
		cr_assert_lt(ev_now_ms(), deadline, "the server did not close the connection");
		ev_loop_run_once(f->loop, 10);
	}
}

/* Drive the loop until the server has @n connections open. */
static void wait_conns(struct fx *f, unsigned n)
{
	uint64_t deadline = ev_now_ms() + 3000;

	while (health_conns(f->h) != n) {
		cr_assert_lt(ev_now_ms(), deadline, "%u connections, want %u", health_conns(f->h),
		             n);
		ev_loop_run_once(f->loop, 5);
	}
}

/* Send a string literal. */
#define SENDS(f, fd, lit) send_all(f, fd, lit, sizeof(lit) - 1)

#define REQ(path) "GET " path " HTTP/1.1\r\nHost: x\r\n\r\n"

/* ---- A strict Prometheus text-format (0.0.4) parser ---- */

static bool prom_name(const char **p, bool colon)
{
	const char *s = *p;

	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
	      (colon && *s == ':')))
		return false;
	for (s++; (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
	          (*s >= '0' && *s <= '9') || (colon && *s == ':');
	     s++)
		;
	*p = s;
	return true;
}

static bool prom_value(const char *s)
{
	char *end;

	if (!strcmp(s, "NaN") || !strcmp(s, "+Inf") || !strcmp(s, "-Inf"))
		return true;
	if (!*s || *s == ' ')
		return false;
	errno = 0;
	strtod(s, &end);
	return *end == '\0' && errno == 0;
}

static char perr[2048];

#define CHECK(cond, ...)                                           \
	do {                                                       \
		if (!(cond)) {                                     \
			snprintf(perr, sizeof(perr), __VA_ARGS__); \
			return -1;                                 \
		}                                                  \
	} while (0)

/* The number of samples, or -1 with the violation in perr. */
static int prom_parse(const char *text, const char *want_family[], int nwant)
{
	char fam[128] = "", type[16] = "", seen[64][128], series[256][256];
	int nseen = 0, nseries = 0, samples = 0, found = 0, i;
	bool help = false;
	const char *p = text;

	CHECK(*text == '\0' || text[strlen(text) - 1] == '\n', "no final newline");
	while (*p) {
		const char *nl = strchr(p, '\n');
		char line[1024];
		size_t n = (size_t)(nl - p);

		CHECK(n < sizeof(line), "line too long");
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl + 1;
		CHECK(n > 0, "empty line");
		if (!strncmp(line, "# HELP ", 7)) {
			const char *s = line + 7, *q;

			CHECK(prom_name(&s, true) && *s == ' ', "bad HELP: %s", line);
			snprintf(fam, sizeof(fam), "%.*s", (int)(s - line - 7), line + 7);
			for (i = 0; i < nseen; i++)
				CHECK(strcmp(seen[i], fam) != 0, "family %s twice", fam);
			CHECK(nseen < 64, "too many families");
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", fam);
			for (q = s + 1; *q; q++)
				if (*q == '\\') {
					CHECK(q[1] == '\\' || q[1] == 'n', "bad escape: %s", line);
					q++;
				}
			help = true;
			type[0] = '\0';
			continue;
		}
		if (!strncmp(line, "# TYPE ", 7)) {
			const char *s = line + 7;

			CHECK(help, "TYPE without HELP: %s", line);
			CHECK(prom_name(&s, true) && *s == ' ', "bad TYPE: %s", line);
			CHECK(!strncmp(line + 7, fam, strlen(fam)) &&
			              (size_t)(s - line - 7) == strlen(fam),
			      "TYPE for another family: %s", line);
			CHECK(!strcmp(s + 1, "counter") || !strcmp(s + 1, "gauge"), "bad type: %s",
			      line);
			CHECK(type[0] == '\0', "second TYPE: %s", line);
			snprintf(type, sizeof(type), "%s", s + 1);
			continue;
		}
		CHECK(line[0] != '#', "stray comment: %s", line);
		{
			const char *s = line, *key_end;
			char lnames[4][64];
			int nl_ = 0, k;

			CHECK(type[0], "sample before TYPE: %s", line);
			CHECK(prom_name(&s, true), "bad name: %s", line);
			CHECK((size_t)(s - line) == strlen(fam) && !strncmp(line, fam, strlen(fam)),
			      "sample outside its family %s: %s", fam, line);
			if (!strcmp(type, "counter"))
				CHECK(strstr(fam, "_total") &&
				              !strcmp(fam + strlen(fam) - 6, "_total"),
				      "counter without _total: %s", fam);
			if (*s == '{') {
				s++;
				while (*s != '}') {
					const char *ln = s;

					CHECK(prom_name(&s, false), "bad label name: %s", line);
					CHECK(nl_ < 4, "too many labels");
					snprintf(lnames[nl_], sizeof(lnames[0]), "%.*s",
					         (int)(s - ln), ln);
					for (k = 0; k < nl_; k++)
						CHECK(strcmp(lnames[k], lnames[nl_]) != 0,
						      "dup label: %s", line);
					nl_++;
					CHECK(s[0] == '=' && s[1] == '"', "bad label: %s", line);
					for (s += 2; *s != '"'; s++) {
						CHECK(*s, "unterminated label value: %s", line);
						if (*s == '\\') {
							CHECK(s[1] == '\\' || s[1] == '"' ||
							              s[1] == 'n',
							      "bad escape: %s", line);
							s++;
						}
					}
					s++;
					if (*s == ',')
						s++;
					else
						CHECK(*s == '}', "bad label list: %s", line);
				}
				s++;
			}
			key_end = s;
			CHECK(*s == ' ', "no value: %s", line);
			CHECK(prom_value(s + 1), "bad value: %s", line);
			CHECK(nseries < 256, "too many series");
			snprintf(series[nseries], sizeof(series[0]), "%.*s", (int)(key_end - line),
			         line);
			for (k = 0; k < nseries; k++)
				CHECK(strcmp(series[k], series[nseries]) != 0, "dup series: %s",
				      line);
			nseries++;
			samples++;
		}
	}
	for (i = 0; i < nwant; i++)
		for (int k = 0; k < nseen; k++)
			if (!strcmp(seen[k], want_family[i]))
				found++;
	CHECK(found == nwant, "families missing");
	return samples;
}

/* ---- Routes ---- */

Test(health, healthz_is_ok)
{
	struct fx f;
	struct resp r;

	fx_start(&f, 0, 0);
	get(&f, REQ("/healthz"), &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.body_len, 3);
	cr_assert_eq(memcmp(r.body, "ok\n", 3), 0);
	cr_assert(strstr(r.head, "Content-Type: text/plain"), "%s", r.head);
	get(&f, REQ("/healthz?verbose=1"), &r);
	cr_assert_eq(r.status, 200);
	fx_stop(&f);
}

Test(health, head_has_length_but_no_body)
{
	struct fx f;
	struct resp r;

	fx_start(&f, 0, 0);
	get(&f, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.content_length, 3);
	cr_assert_eq(r.body_len, 0);
	fx_stop(&f);
}

Test(health, readyz_follows_the_callback)
{
	struct fx f;
	struct resp r;

	fx_start(&f, 0, 0);
	get(&f, REQ("/readyz"), &r);
	cr_assert_eq(r.status, 503);
	cr_assert_eq(r.body_len, strlen("not ready: no lease yet\n"));
	cr_assert_eq(memcmp(r.body, "not ready: no lease yet\n", r.body_len), 0);
	f.ready = true;
	get(&f, REQ("/readyz"), &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(memcmp(r.body, "ok\n", 3), 0);
	f.ready = false;
	get(&f, REQ("/readyz"), &r);
	cr_assert_eq(r.status, 503);
	/* /healthz does not depend on readiness */
	get(&f, REQ("/healthz"), &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(f.ready_calls, 3);
	fx_stop(&f);
}

Test(health, metrics_is_strict_prometheus_text)
{
	static const char *fams[] = { "twill_lease_held", "twill_etcd_requests_total",
		                      "twill_etcd_endpoint_info" };
	struct fx f;
	struct resp r;
	char *body;

	fx_start(&f, 0, 0);
	get(&f, REQ("/metrics"), &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.head, "\r\nContent-Type: text/plain; version=0.0.4"), "%s", r.head);
	body = strndup(r.body, r.body_len);
	cr_assert_eq(prom_parse(body, fams, 3), 4, "%s: %s", perr, body);
	cr_assert(strstr(body, "\ntwill_etcd_requests_total{op=\"range\"} 7\n"), "%s", body);
	cr_assert(strstr(body, "{op=\"txn \\\"q\\\"\\\\\"} 1\n"), "%s", body);
	cr_assert(strstr(body, "twill_etcd_endpoint_info{endpoint=\"http://127.0.0.1:2379\"} 1\n"));
	free(body);
	fx_stop(&f);
}

Test(health, prometheus_parser_is_strict)
{
	static const char *none[] = { NULL };
	static const char *bad[] = {
		"# HELP a x\na 1\n",                                  /* no TYPE */
		"# HELP a x\n# TYPE a gauge\na 1",                    /* no final newline */
		"# HELP a x\n# TYPE a gauge\nb 1\n",                  /* outside its family */
		"# HELP a x\n# TYPE a counter\na 1\n",                /* counter without _total */
		"# HELP a x\n# TYPE a gauge\na{b=\"c} 1\n",           /* unterminated */
		"# HELP a x\n# TYPE a gauge\na{b=\"\\q\"} 1\n",       /* bad escape */
		"# HELP a x\n# TYPE a gauge\na{b=\"1\",b=\"2\"} 1\n", /* duplicate label */
		"# HELP a x\n# TYPE a gauge\na 1\na 2\n",             /* duplicate series */
		"# HELP a x\n# TYPE a gauge\na one\n",                /* bad value */
		"# HELP a x\n# TYPE a gauge\n\na 1\n",                /* empty line */
		"# HELP a x\n# TYPE a histogram\na 1\n",              /* unsupported type */
		"# HELP a x\n# TYPE a gauge\n# HELP a y\n# TYPE a gauge\n", /* family twice */
	};
	size_t i;

	cr_assert_eq(prom_parse("# HELP a_total x\n# TYPE a_total counter\na_total{b=\"c\"} 1\n",
	                        none, 0),
	             1, "%s", perr);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(prom_parse(bad[i], none, 0), -1, "accepted: %s", bad[i]);
}

Test(health, status_is_json_from_the_callback)
{
	struct fx f;
	struct resp r;

	fx_start(&f, 0, 0);
	get(&f, REQ("/v1/status"), &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.head, "\r\nContent-Type: application/json\r\n"), "%s", r.head);
	cr_assert_eq(r.body_len, strlen("{\"schema\":\"twill.status/v1\"}\n"));
	cr_assert_eq(memcmp(r.body, "{\"schema\"", 9), 0);
	f.status_fails = true;
	get(&f, REQ("/v1/status"), &r);
	cr_assert_eq(r.status, 500);
	get(&f, REQ("/v1/statusx"), &r);
	cr_assert_eq(r.status, 404);
	fx_stop(&f);
}

Test(health, unknown_paths_and_methods)
{
	struct fx f;
	struct resp r;

	fx_start(&f, 0, 0);
	get(&f, REQ("/nope"), &r);
	cr_assert_eq(r.status, 404);
	get(&f, "POST /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	cr_assert_eq(r.status, 405);
	cr_assert(strstr(r.head, "\r\nAllow: GET, HEAD"), "%s", r.head);
	get(&f, "get /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &r); /* methods are case-sensitive */
	cr_assert_eq(r.status, 405);
	fx_stop(&f);
}

Test(health, keep_alive_and_pipelining)
{
	struct fx f;
	struct resp r;
	int fd;
	const char *two = REQ("/healthz") REQ("/readyz");

	fx_start(&f, 0, 0);
	fd = client(f.port);
	send_all(&f, fd, REQ("/healthz"), strlen(REQ("/healthz")));
	read_resp(&f, fd, &r, false, false);
	cr_assert_eq(r.status, 200);
	send_all(&f, fd, two, strlen(two));
	{
		char all[4096] = "", *a, *b;
		size_t len = 0;
		uint64_t deadline = ev_now_ms() + 3000;

		/* both responses, in order, on the same connection */
		while (!strstr(all, "not ready: no lease yet\n")) {
			ssize_t n = recv(fd, all + len, sizeof(all) - 1 - len, 0);

			if (n > 0) {
				len += (size_t)n;
				all[len] = '\0';
			}
			cr_assert_lt(ev_now_ms(), deadline, "[%s]", all);
			ev_loop_run_once(f.loop, 5);
		}
		a = strstr(all, "HTTP/1.1 200 OK\r\n");
		b = strstr(all, "HTTP/1.1 503 Service Unavailable\r\n");
		cr_assert(a && b && a == all && b > a, "[%s]", all);
	}
	/* Connection: close is honoured */
	SENDS(&f, fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	read_resp(&f, fd, &r, false, true);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.head, "Connection: close"));
	close(fd);
	/* HTTP/1.0: closes by default */
	fd = client(f.port);
	SENDS(&f, fd, "GET /healthz HTTP/1.0\r\n\r\n");
	read_resp(&f, fd, &r, false, true);
	cr_assert_eq(r.status, 200);
	close(fd);
	fx_stop(&f);
}

/* ---- Hostile clients ---- */

static void assert_still_serving(struct fx *f)
{
	struct resp r;

	get(f, REQ("/healthz"), &r);
	cr_assert_eq(r.status, 200);
}

Test(health, garbage_gets_400_and_close)
{
	struct fx f;
	struct resp r;
	char junk[512];
	unsigned seed = 1234;
	int fd, i, round;

	fx_start(&f, 0, 0);
	for (round = 0; round < 20; round++) {
		for (i = 0; i < (int)sizeof(junk); i++)
			junk[i] = (char)(rand_r(&seed) & 0xff);
		junk[0] = (char)0x80; /* never a method character */
		fd = client(f.port);
		send_all(&f, fd, junk, sizeof(junk));
		read_resp(&f, fd, &r, false, true);
		cr_assert_eq(r.status, 400);
		close(fd);
	}
	fd = client(f.port);
	SENDS(&f, fd, "GET /healthz HTTP/1.1\r\n\r\n"); /* no Host */
	read_resp(&f, fd, &r, false, true);
	cr_assert_eq(r.status, 400);
	close(fd);
	fd = client(f.port);
	SENDS(&f, fd, "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n");
	read_resp(&f, fd, &r, false, true);
	cr_assert_eq(r.status, 505);
	close(fd);
	fd = client(f.port);
	SENDS(&f, fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
	read_resp(&f, fd, &r, false, true);
	cr_assert_eq(r.status, 400);
	close(fd);
	assert_still_serving(&f);
	wait_conns(&f, 0);
	fx_stop(&f);
}

Test(health, oversized_head_gets_413)
{
	struct fx f;
	struct resp r;
	char *big = malloc(20000);
	int fd;

	fx_start(&f, 0, 0);
	strcpy(big, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(big + strlen(big), 'a', 19000);
	big[19040] = '\0';
	fd = client(f.port);
	send_all(&f, fd, big, strlen(big));
	read_resp(&f, fd, &r, false, true);
	cr_assert_eq(r.status, 413);
	close(fd);
	free(big);
	assert_still_serving(&f);
	fx_stop(&f);
}

Test(health, slowloris_is_cut_at_the_deadline)
{
	struct fx f;
	uint64_t t0;
	int fd;

	fx_start(&f, 0, 300);
	fd = client(f.port);
	t0 = ev_now_ms();
	SENDS(&f, fd, "GET /healthz HTTP/1.1\r\n");
	/* one header byte at a time keeps trickling in, but the deadline is per request */
	for (int i = 0; i < 5; i++) {
		send(fd, "X", 1, MSG_NOSIGNAL);
		for (int k = 0; k < 5; k++)
			ev_loop_run_once(f.loop, 10);
		assert_still_serving(&f); /* others are served meanwhile */
	}
	wait_closed(&f, fd, 2000);
	cr_assert_geq(ev_now_ms() - t0, 250);
	close(fd);
	fx_stop(&f);
}

Test(health, idle_keepalive_connections_time_out)
{
	struct fx f;
	struct resp r;
	int fd;

	fx_start(&f, 0, 200);
	fd = client(f.port);
	send_all(&f, fd, REQ("/healthz"), strlen(REQ("/healthz")));
	read_resp(&f, fd, &r, false, false);
	cr_assert_eq(health_conns(f.h), 1);
	wait_closed(&f, fd, 2000);
	close(fd);
	wait_conns(&f, 0);
	fx_stop(&f);
}

Test(health, connection_cap_evicts_the_oldest)
{
	struct fx f;
	int idle[10], i;

	fx_start(&f, 4, 5000);
	for (i = 0; i < 10; i++) {
		idle[i] = client(f.port);
		for (int k = 0; k < 3; k++)
			ev_loop_run_once(f.loop, 5);
		cr_assert_leq(health_conns(f.h), 4);
	}
	assert_still_serving(&f);
	cr_assert_leq(health_conns(f.h), 4);
	wait_closed(&f, idle[0], 1000); /* the oldest went first */
	for (i = 0; i < 10; i++)
		close(idle[i]);
	fx_stop(&f);
}

Test(health, client_vanishing_mid_request_is_harmless)
{
	struct fx f;
	int fd, i;

	fx_start(&f, 0, 0);
	for (i = 0; i < 10; i++) {
		fd = client(f.port);
		SENDS(&f, fd, "GET /met");
		ev_loop_run_once(f.loop, 5);
		close(fd);
	}
	/* a client that asks for a big response and never reads, then resets */
	fd = client(f.port);
	{
		struct linger lg = { 1, 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	for (i = 0; i < 50; i++)
		send(fd, REQ("/metrics"), strlen(REQ("/metrics")), MSG_NOSIGNAL);
	ev_loop_run_once(f.loop, 5);
	close(fd);
	for (i = 0; i < 10; i++)
		ev_loop_run_once(f.loop, 5);
	assert_still_serving(&f);
	fx_stop(&f);
}

Test(health, bind_failure_is_reported)
{
	struct fx f;
	struct health_opts o = { .ip = "127.0.0.1" };
	char err[HEALTH_ERR_MAX];

	fx_start(&f, 0, 0);
	o.port = f.port;
	errno = 0;
	cr_assert_null(health_new(f.loop, &o, err, sizeof(err)));
	cr_assert_eq(errno, EADDRINUSE);
	cr_assert(strstr(err, "127.0.0.1:"), "%s", err);
	o.ip = "not-an-ip";
	cr_assert_null(health_new(f.loop, &o, err, sizeof(err)));
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(err, "not-an-ip"), "%s", err);
	o.ip = "[::1]";
	o.port = 0;
	{
		struct health *h6 = health_new(f.loop, &o, err, sizeof(err));

		/* IPv6 loopback may be absent in a sandbox; when present it must work */
		if (h6)
			cr_assert_neq(health_port(h6), 0);
		health_free(h6);
	}
	health_free(NULL);
	fx_stop(&f);
}

/* ---- The parser, directly ---- */

struct pcase {
	const char *in;
	int want; /* > 0: complete, the whole input; 0: incomplete; < 0: error */
	enum http_method method;
	const char *path;
	bool keep_alive;
};

static const struct pcase pcases[] = {
	{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, HTTP_GET, "/", true },
	{ "GET /healthz HTTP/1.0\r\n\r\n", 1, HTTP_GET, "/healthz", false },
	{ "GET /healthz HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1, HTTP_GET, "/healthz",
	  true },
	{ "HEAD /m?x=1 HTTP/1.1\nHost: a\n\n", 1, HTTP_HEAD, "/m", true },
	{ "\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", 1, HTTP_GET, "/",
	  false },
	{ "DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n", 1, HTTP_OTHER, "/x", true },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 000\r\n\r\n", 1, HTTP_GET, "/", true },
	{ "GET / HTTP/1.1\r\nHost:\r\nX: \xc3\xa9\t \r\n\r\n", 1, HTTP_GET, "/", true },
	{ "", 0, 0, NULL, false },
	{ "GET", 0, 0, NULL, false },
	{ "GET /healthz HTTP/1.1\r\nHost: a\r\n", 0, 0, NULL, false },
	{ "GET /healthz HT", 0, 0, NULL, false },
	{ "\x16\x03\x01", -EINVAL, 0, NULL, false }, /* TLS ClientHello */
	{ " GET / HTTP/1.1\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET  / HTTP/1.1\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET * HTTP/1.1\r\nHost: a\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET / HTTP/1.1\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET / HTTP/1.1\r\nHost a\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET / HTTP/1.1\r\nHo st: a\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n", -ENOTSUP, 0, NULL, false },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", -ENOTSUP, 0, NULL,
	  false },
	{ "GET / HTTP/2.0\r\n\r\n", -EPROTONOSUPPORT, 0, NULL, false },
	{ "GET / HTTP/1.2\r\n\r\n", -EPROTONOSUPPORT, 0, NULL, false },
	{ "GET / HTTP/1.x\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET /\x7f HTTP/1.1\r\n\r\n", -EINVAL, 0, NULL, false },
	{ "GET /a\rb HTTP/1.1\r\n\r\n", -EINVAL, 0, NULL, false },
};

Test(health_parse, table)
{
	size_t i;

	for (i = 0; i < sizeof(pcases) / sizeof(pcases[0]); i++) {
		const struct pcase *c = &pcases[i];
		struct http_request r;
		char err[128];
		size_t len = strlen(c->in);
		int n = health_http_parse(c->in, len, 8192, &r, err, sizeof(err));

		if (c->want > 0) {
			cr_assert_eq(n, (int)len, "case %zu: %d (%s)", i, n, err);
			cr_assert_eq(r.method, c->method, "case %zu", i);
			cr_assert_eq(r.path_len, strlen(c->path), "case %zu", i);
			cr_assert_eq(memcmp(r.path, c->path, r.path_len), 0, "case %zu", i);
			cr_assert_eq(r.keep_alive, c->keep_alive, "case %zu", i);
		} else {
			cr_assert_eq(n, c->want, "case %zu: got %d (%s)", i, n, err);
			if (n < 0)
				cr_assert_neq(err[0], '\0', "case %zu: no reason", i);
		}
	}
}

Test(health_parse, stops_at_the_first_request)
{
	const char *two = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\n";
	struct http_request r;

	cr_assert_eq(health_http_parse(two, strlen(two), 8192, &r, NULL, 0), 28);
	cr_assert_eq(r.path_len, 2);
}

Test(health_parse, size_cap)
{
	char buf[600];
	struct http_request r;

	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "GET /", 5);
	cr_assert_eq(health_http_parse(buf, 299, 300, &r, NULL, 0), 0);
	cr_assert_eq(health_http_parse(buf, 300, 300, &r, NULL, 0), -E2BIG);
	cr_assert_eq(health_http_parse(buf, sizeof(buf), 300, &r, NULL, 0), -E2BIG);
	/* a request that fits exactly */
	snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
	cr_assert_eq(health_http_parse(buf, strlen(buf), strlen(buf), &r, NULL, 0),
	             (int)strlen(buf));
}
