#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/health.h"
#include "lib/ev.h"
#include "lib/log.h"
#include "lib/metrics.h"

#define DRAIN_MS      1000 /* lingering close: how long unread input is drained */
#define ACCEPT_BURST  16
#define READ_CHUNK    4096
#define METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"
#define TEXT_CTYPE    "text/plain; charset=utf-8"

/* ---- The request parser ---- */

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_vchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e;
}

/* Field values: VCHAR, SP, HTAB and obs-text. */
static bool is_fchar(unsigned char c)
{
	return is_vchar(c) || c == ' ' || c == '\t' || c >= 0x80;
}

static bool token_eq(const char *p, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

/* One line [p, p+n) without its line end. */
static int parse_request_line(const char *p, size_t n, struct http_request *r, char *err,
                              size_t errlen)
{
	size_t i = 0, m, t0;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i == n || p[i] != ' ')
		return fail(err, errlen, "malformed request line (method)");
	m = i;
	if (token_eq(p, m, "GET") && memcmp(p, "GET", 3) == 0)
		r->method = HTTP_GET;
	else if (token_eq(p, m, "HEAD") && memcmp(p, "HEAD", 4) == 0)
		r->method = HTTP_HEAD;
	else
		r->method = HTTP_OTHER;
	t0 = ++i;
	while (i < n && is_vchar((unsigned char)p[i]))
		i++;
	if (i == t0 || i == n || p[i] != ' ')
		return fail(err, errlen, "malformed request line (target)");
	if (p[t0] != '/')
		return fail(err, errlen, "request target is not an absolute path");
	r->path = p + t0;
	r->path_len = i - t0;
	for (m = 0; m < r->path_len; m++)
		if (r->path[m] == '?') {
			r->path_len = m;
			break;
		}
	i++;
	if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 5] < '0' || p[i + 5] > '9' ||
	    p[i + 6] != '.' || p[i + 7] < '0' || p[i + 7] > '9')
		return fail(err, errlen, "malformed request line (version)");
	if (p[i + 5] != '1' || p[i + 7] > '1') {
		fail(err, errlen, "HTTP version %c.%c not supported", p[i + 5], p[i + 7]);
		return -EPROTONOSUPPORT;
	}
	r->minor = p[i + 7] - '0';
	r->keep_alive = r->minor == 1;
	return 0;
}

/* Comma-separated tokens of a Connection header. */
static void parse_connection(const char *v, size_t n, struct http_request *r)
{
	size_t i = 0, s;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		if (token_eq(v + s, i - s, "close"))
			r->keep_alive = false;
		else if (token_eq(v + s, i - s, "keep-alive") && r->minor == 0)
			r->keep_alive = true;
	}
}

static int parse_header(const char *p, size_t n, struct http_request *r, char *err, size_t errlen)
{
	size_t i = 0, name_len, vs, ve, k;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i == n || p[i] != ':')
		return fail(err, errlen, "malformed header line");
	name_len = i++;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	vs = i;
	for (; i < n; i++)
		if (!is_fchar((unsigned char)p[i]))
			return fail(err, errlen, "control character in header value");
	ve = n;
	while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
		ve--;
	if (token_eq(p, name_len, "Host")) {
		if (r->has_host)
			return fail(err, errlen, "duplicate Host header");
		r->has_host = true;
	} else if (token_eq(p, name_len, "Connection")) {
		parse_connection(p + vs, ve - vs, r);
	} else if (token_eq(p, name_len, "Transfer-Encoding")) {
		fail(err, errlen, "request bodies are not accepted");
		return -ENOTSUP;
	} else if (token_eq(p, name_len, "Content-Length")) {
		if (ve == vs)
			return fail(err, errlen, "empty Content-Length");
		for (k = vs; k < ve; k++) {
			if (p[k] < '0' || p[k] > '9')
				return fail(err, errlen, "malformed Content-Length");
			if (p[k] != '0') {
				fail(err, errlen, "request bodies are not accepted");
				return -ENOTSUP;
			}
		}
	}
	return 0;
}

/* Early rejection of an incomplete request line: garbage should not wait for a full buffer. */
static int check_partial_line(const char *p, size_t n, char *err, size_t errlen)
{
	size_t i = 0;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == n)
		return 0;
	if (i == 0 || p[i] != ' ')
		return fail(err, errlen, "malformed request line (method)");
	for (i++; i < n; i++)
		if (!is_vchar((unsigned char)p[i]) && p[i] != ' ' && p[i] != '\r')
			return fail(err, errlen, "control character in request line");
	return 0;
}

int health_http_parse(const char *buf, size_t len, size_t max, struct http_request *ret, char *err,
                      size_t errlen)
{
	struct http_request r = { 0 };
	size_t pos = 0, lim = len < max ? len : max;
	bool first = true;
	int e;

	if (err && errlen)
		err[0] = '\0';
	/* RFC 9112 2.2: ignore empty lines before the request line */
	while (pos < lim && (buf[pos] == '\r' || buf[pos] == '\n')) {
		if (buf[pos] == '\r' && (pos + 1 >= lim || buf[pos + 1] != '\n'))
			break;
		pos++;
	}
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', lim - pos);
		size_t n;

		if (!nl) {
			if (first) {
				e = check_partial_line(buf + pos, lim - pos, err, errlen);
				if (e < 0)
					return e;
			}
			if (len >= max) {
				fail(err, errlen, "request head larger than %zu bytes", max);
				return -E2BIG;
			}
			return 0;
		}
		n = (size_t)(nl - (buf + pos));
		if (n > 0 && buf[pos + n - 1] == '\r')
			n--;
		if (first) {
			e = parse_request_line(buf + pos, n, &r, err, errlen);
			first = false;
		} else if (n == 0) {
			pos = (size_t)(nl - buf) + 1;
			break;
		} else if (buf[pos] == ' ' || buf[pos] == '\t') {
			e = fail(err, errlen, "obsolete header line folding");
		} else {
			e = parse_header(buf + pos, n, &r, err, errlen);
		}
		if (e < 0)
			return e;
		pos = (size_t)(nl - buf) + 1;
	}
	if (r.minor == 1 && !r.has_host)
		return fail(err, errlen, "HTTP/1.1 request without Host header");
	*ret = r;
	return (int)pos;
}

/* ---- The server ---- */

enum conn_state {
	CONN_READING,
	CONN_WRITING,
	CONN_DRAINING, /* response sent, write side shut: discard input until EOF */
};

struct conn {
	struct health *h;
	struct conn *prev, *next; /* in accept order: the head is the oldest */
	int fd;
	struct ev_io *io;
	enum conn_state state;
	bool close_after; /* after the current response */
	uint64_t deadline_ms;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_off;
};

struct health {
	struct ev_loop *loop;
	struct health_opts o;
	int lfd;
	uint16_t port;
	struct ev_io *lio;
	struct ev_timer *sweep;
	struct conn *head, *tail;
	unsigned nconns;
};

static void conn_close(struct conn *c)
{
	struct health *h = c->h;

	if (c->prev)
		c->prev->next = c->next;
	else
		h->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		h->tail = c->prev;
	h->nconns--;
	ev_io_free(c->io);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
	if (!h->head && h->sweep)
		ev_timer_stop(h->sweep);
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

/* Queue a response; the body is copied (left out for HEAD, Content-Length kept). */
static int conn_respond(struct conn *c, int status, const char *ctype, const char *body,
                        size_t body_len, bool head_only)
{
	char hdr[512];
	int n;

	n = snprintf(hdr, sizeof(hdr),
	             "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	             "Cache-Control: no-store\r\n%s%s\r\n",
	             status, reason_phrase(status), ctype, body_len,
	             status == 405 ? "Allow: GET, HEAD\r\n" : "",
	             c->close_after ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(hdr))
		return -EINVAL;
	if (head_only)
		body_len = 0;
	free(c->out);
	c->out = malloc((size_t)n + body_len);
	if (!c->out) {
		c->out_len = 0;
		return -ENOMEM;
	}
	memcpy(c->out, hdr, (size_t)n);
	if (body_len)
		memcpy(c->out + n, body, body_len);
	c->out_len = (size_t)n + body_len;
	c->out_off = 0;
	c->state = CONN_WRITING;
	return 0;
}

static int respond_text(struct conn *c, int status, const char *text, bool head_only)
{
	return conn_respond(c, status, TEXT_CTYPE, text, strlen(text), head_only);
}

static bool path_is(const struct http_request *r, const char *p)
{
	return r->path_len == strlen(p) && memcmp(r->path, p, r->path_len) == 0;
}

static int route(struct conn *c, const struct http_request *r)
{
	struct health *h = c->h;
	bool head = r->method == HTTP_HEAD;
	char reason[HEALTH_ERR_MAX], body[HEALTH_ERR_MAX + 32];

	if (!path_is(r, "/healthz") && !path_is(r, "/readyz") &&
	    !(path_is(r, "/metrics") && h->o.metrics) && !(path_is(r, "/v1/status") && h->o.status))
		return respond_text(c, 404, "not found\n", head);
	if (r->method == HTTP_OTHER)
		return respond_text(c, 405, "method not allowed\n", false);
	if (path_is(r, "/healthz"))
		return respond_text(c, 200, "ok\n", head);
	if (path_is(r, "/readyz")) {
		reason[0] = '\0';
		if (!h->o.ready || h->o.ready(h->o.ready_ctx, reason, sizeof(reason)))
			return respond_text(c, 200, "ok\n", head);
		reason[sizeof(reason) - 1] = '\0';
		snprintf(body, sizeof(body), "not ready: %s\n", reason[0] ? reason : "unknown");
		return respond_text(c, 503, body, head);
	}
	if (path_is(r, "/v1/status")) {
		char *text = NULL;
		size_t len = 0;
		int e = h->o.status(h->o.status_ctx, &text, &len);

		if (e < 0)
			return respond_text(c, 500, "status unavailable\n", head);
		e = conn_respond(c, 200, "application/json", text, len, head);
		free(text);
		return e;
	}
	{
		char *text = NULL;
		size_t len = 0;
		int e = metrics_render(h->o.metrics, &text, &len);

		if (e < 0)
			return respond_text(c, 500, "metrics unavailable\n", head);
		e = conn_respond(c, 200, METRICS_CTYPE, text, len, head);
		free(text);
		return e;
	}
}

enum flush_result {
	FLUSH_DONE,    /* response written, reading again */
	FLUSH_PENDING, /* waiting for EPOLLOUT, draining, or closed */
};

static void conn_start_drain(struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
	c->state = CONN_DRAINING;
	c->deadline_ms = ev_now_ms() + DRAIN_MS;
	ev_io_set_events(c->io, EPOLLIN);
}

/* Write what is queued; on completion go back to reading (or drain and close). */
static enum flush_result conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ev_io_set_events(c->io, EPOLLOUT);
				return FLUSH_PENDING;
			}
			conn_close(c);
			return FLUSH_PENDING;
		}
		c->out_off += (size_t)w;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	if (c->close_after) {
		conn_start_drain(c);
		return FLUSH_PENDING;
	}
	c->state = CONN_READING;
	c->deadline_ms = ev_now_ms() + c->h->o.timeout_ms;
	ev_io_set_events(c->io, EPOLLIN);
	return FLUSH_DONE;
}

/* Serve every complete request buffered (pipelining), until one needs more input or output. */
static void conn_process(struct conn *c)
{
	struct health *h = c->h;
	struct http_request r;
	char err[128];
	int n, e, status;

	while (c->state == CONN_READING && c->in_len) {
		n = health_http_parse(c->in, c->in_len, h->o.max_request, &r, err, sizeof(err));
		if (n == 0)
			return;
		if (n > 0) {
			c->close_after = !r.keep_alive;
			e = route(c, &r); /* before the memmove: r.path points into c->in */
			memmove(c->in, c->in + n, c->in_len - (size_t)n);
			c->in_len -= (size_t)n;
		} else {
			log_debug("healthz: fd %d: %s", c->fd, err);
			status = n == -E2BIG ? 413 : n == -EPROTONOSUPPORT ? 505 : 400;
			c->close_after = true;
			c->in_len = 0;
			snprintf(err + strlen(err), sizeof(err) - strlen(err), "\n");
			e = respond_text(c, status, err, false);
		}
		if (e < 0) {
			conn_close(c);
			return;
		}
		if (conn_flush(c) != FLUSH_DONE)
			return;
	}
}

static void conn_read(struct conn *c)
{
	size_t room = c->h->o.max_request - c->in_len;
	char junk[READ_CHUNK];
	ssize_t r;

	if (c->state == CONN_DRAINING) {
		r = recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			conn_close(c);
		return;
	}
	if (room == 0) {
		conn_process(c);
		return;
	}
	if (room > READ_CHUNK)
		room = READ_CHUNK;
	r = recv(c->fd, c->in + c->in_len, room, MSG_DONTWAIT);
	if (r < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_close(c);
		return;
	}
	if (r == 0) {
		conn_close(c);
		return;
	}
	c->in_len += (size_t)r;
	conn_process(c);
}

static void on_conn(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct conn *c = ctx;

	(void)io;
	(void)fd;
	if (c->state == CONN_WRITING) {
		if ((revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && conn_flush(c) == FLUSH_DONE)
			conn_process(c); /* pipelined requests */
		return;
	}
	if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_read(c);
}

/* At the cap, the oldest connection makes room: a slow client cannot lock others out. */
static void evict_oldest(struct health *h)
{
	if (h->head) {
		log_debug("healthz: %u connections: closing the oldest (fd %d)", h->nconns,
		          h->head->fd);
		conn_close(h->head);
	}
}

static void on_accept(struct ev_io *io, int lfd, uint32_t revents, void *ctx)
{
	struct health *h = ctx;
	struct conn *c;
	int i, fd;

	(void)io;
	(void)revents;
	for (i = 0; i < ACCEPT_BURST; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_debug("healthz: accept: %s", strerror(errno));
			return;
		}
		if (h->nconns >= h->o.max_conns)
			evict_oldest(h);
		c = calloc(1, sizeof(*c));
		if (c)
			c->in = malloc(h->o.max_request);
		if (!c || !c->in) {
			if (c)
				free(c);
			close(fd);
			continue;
		}
		c->h = h;
		c->fd = fd;
		c->state = CONN_READING;
		c->deadline_ms = ev_now_ms() + h->o.timeout_ms;
		c->io = ev_io_new(h->loop, fd, EPOLLIN, on_conn, c);
		if (!c->io) {
			free(c->in);
			free(c);
			close(fd);
			continue;
		}
		c->prev = h->tail;
		if (h->tail)
			h->tail->next = c;
		else
			h->head = c;
		h->tail = c;
		h->nconns++;
		if (!ev_timer_active(h->sweep)) {
			uint64_t every = h->o.timeout_ms / 4;

			if (every < 20)
				every = 20;
			if (every > 1000)
				every = 1000;
			ev_timer_start(h->sweep, every, every);
		}
	}
}

static void on_sweep(struct ev_timer *t, void *ctx)
{
	struct health *h = ctx;
	struct conn *c = h->head, *next;
	uint64_t now = ev_now_ms();

	(void)t;
	for (; c; c = next) {
		next = c->next;
		if (now >= c->deadline_ms) {
			log_debug("healthz: fd %d: timed out", c->fd);
			conn_close(c);
		}
	}
}

static int listen_on(const char *ip, uint16_t port, uint16_t *ret_port, char *err, size_t errlen)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	char host[INET6_ADDRSTRLEN + 2];
	socklen_t sl;
	size_t n;
	int fd, one = 1, e;

	if (!ip || !*ip)
		ip = "0.0.0.0";
	n = strlen(ip);
	if (n >= 2 && ip[0] == '[' && ip[n - 1] == ']' && n - 2 < sizeof(host)) {
		memcpy(host, ip + 1, n - 2);
		host[n - 2] = '\0';
	} else {
		snprintf(host, sizeof(host), "%s", ip);
	}
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sl = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sl = sizeof(*sin6);
	} else {
		snprintf(err, errlen, "--healthz-ip \"%s\": not an IPv4 or IPv6 address", ip);
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		e = -errno;
		snprintf(err, errlen, "socket: %s", strerror(-e));
		return e;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0) {
		e = -errno;
		snprintf(err, errlen, "listen on %s%s%s:%u: %s",
		         ss.ss_family == AF_INET6 ? "[" : "", host,
		         ss.ss_family == AF_INET6 ? "]" : "", port, strerror(-e));
		close(fd);
		return e;
	}
	sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		*ret_port = ntohs(ss.ss_family == AF_INET6 ? sin6->sin6_port : sin->sin_port);
	else
		*ret_port = port;
	return fd;
}

struct health *health_new(struct ev_loop *loop, const struct health_opts *opts, char *err,
                          size_t errlen)
{
	struct health *h;
	char dummy[HEALTH_ERR_MAX];
	int e;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!loop || !opts) {
		snprintf(err, errlen, "invalid arguments");
		errno = EINVAL;
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	h->loop = loop;
	h->o = *opts;
	h->o.ip = NULL; /* not kept */
	if (!h->o.max_conns)
		h->o.max_conns = HEALTH_CONNS_MAX;
	if (!h->o.timeout_ms)
		h->o.timeout_ms = HEALTH_TIMEOUT_MS;
	if (!h->o.max_request)
		h->o.max_request = HEALTH_REQUEST_MAX;
	if (h->o.max_request < 256)
		h->o.max_request = 256;
	if (h->o.max_request > INT32_MAX)
		h->o.max_request = INT32_MAX;
	h->lfd = listen_on(opts->ip, opts->port, &h->port, err, errlen);
	if (h->lfd < 0) {
		e = -h->lfd;
		free(h);
		errno = e;
		return NULL;
	}
	h->sweep = ev_timer_new(loop, on_sweep, h);
	h->lio = ev_io_new(loop, h->lfd, EPOLLIN, on_accept, h);
	if (!h->sweep || !h->lio) {
		e = errno ? errno : ENOMEM;
		snprintf(err, errlen, "event loop: %s", strerror(e));
		health_free(h);
		errno = e;
		return NULL;
	}
	return h;
}

uint16_t health_port(const struct health *h)
{
	return h ? h->port : 0;
}

unsigned health_conns(const struct health *h)
{
	return h ? h->nconns : 0;
}

void health_free(struct health *h)
{
	if (!h)
		return;
	while (h->head)
		conn_close(h->head);
	ev_io_free(h->lio);
	ev_timer_free(h->sweep);
	if (h->lfd >= 0)
		close(h->lfd);
	free(h);
}
