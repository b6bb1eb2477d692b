/* lib/http.c against a tiny HTTP/1.1 server running on the same event loop. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lib/ev.h"
#include "lib/http.h"

static struct ev_loop *loop;

/* ---- the server ---- */

struct conn {
	int fd;
	struct ev_io *io;
	char buf[8192];
	size_t len;
};

static struct srv {
	int lfd;
	int port;
	struct ev_io *lio;
	int accepted;
	struct conn *conns[32];
	int n;
} srv;

static void send_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void respond(struct conn *c, const char *path, const char *body, size_t blen)
{
	char hdr[256];

	if (!strcmp(path, "/hello")) {
		const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";

		send_all(c->fd, r, strlen(r));
	} else if (!strcmp(path, "/echo")) {
		snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", blen);
		send_all(c->fd, hdr, strlen(hdr));
		send_all(c->fd, body, blen);
	} else if (!strcmp(path, "/stream")) {
		const char *r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				"6\r\nline1\n\r\n"
				"4\r\nli\nl\r\n";

		send_all(c->fd, r, strlen(r));
	} else if (!strcmp(path, "/unavailable")) {
		const char *r = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy";

		send_all(c->fd, r, strlen(r));
	}
	/* /silent: no answer */
}

static void conn_cb(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct conn *c = ctx;
	ssize_t n;
	char *end, path[128];
	size_t clen = 0, hlen;
	const char *cl;

	(void)revents;
	n = read(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (n <= 0) {
		ev_io_free(io);
		close(fd);
		c->fd = -1;
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	end = strstr(c->buf, "\r\n\r\n");
	if (!end)
		return;
	hlen = (size_t)(end - c->buf) + 4;
	cl = strcasestr(c->buf, "Content-Length:");
	if (cl && cl < end)
		clen = strtoul(cl + 15, NULL, 10);
	if (c->len < hlen + clen)
		return;
	cr_assert_eq(sscanf(c->buf, "%*s %127s", path), 1);
	respond(c, path, c->buf + hlen, clen);
	memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
	c->len -= hlen + clen;
}

static void accept_cb(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct conn *c;
	int cfd;

	(void)io;
	(void)revents;
	(void)ctx;
	cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	srv.accepted++;
	c = calloc(1, sizeof(*c));
	cr_assert(c && srv.n < 32);
	c->fd = cfd;
	c->io = ev_io_new(loop, cfd, EPOLLIN, conn_cb, c);
	srv.conns[srv.n++] = c;
}

static void setup(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);

	loop = ev_loop_new();
	cr_assert(loop);
	memset(&srv, 0, sizeof(srv));
	srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(srv.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(srv.lfd, 16), 0);
	cr_assert_eq(getsockname(srv.lfd, (struct sockaddr *)&sa, &sl), 0);
	srv.port = ntohs(sa.sin_port);
	srv.lio = ev_io_new(loop, srv.lfd, EPOLLIN, accept_cb, NULL);
}

static void teardown(void)
{
	for (int i = 0; i < srv.n; i++) {
		if (srv.conns[i]->fd >= 0)
			close(srv.conns[i]->fd);
		free(srv.conns[i]);
	}
	close(srv.lfd);
	ev_loop_free(loop);
}

TestSuite(lib_http, .init = setup, .fini = teardown);

/* ---- client side helpers ---- */

struct res {
	bool done;
	int rc;
	long status;
	char body[256];
	char data[256];
	size_t data_len;
	uint64_t at;
	int calls;
	char clen[16]; /* the Content-Length response header, as handed over */
	struct http_client *free_me; /* freed from the data callback */
	struct http_req *cancel_me;
};

static void on_done(void *ctx, const struct http_response *r)
{
	struct res *x = ctx;

	x->calls++;
	x->done = true;
	x->rc = r->err;
	if (!http_header_get(r->headers, "content-length", x->clen, sizeof(x->clen)))
		x->clen[0] = '\0';
	x->status = r->status;
	x->at = ev_now_ms();
	if (r->body)
		snprintf(x->body, sizeof(x->body), "%s", r->body);
}

static void on_data(void *ctx, const char *d, size_t n)
{
	struct res *x = ctx;

	cr_assert_lt(x->data_len + n, sizeof(x->data));
	memcpy(x->data + x->data_len, d, n);
	x->data_len += n;
	if (x->cancel_me) {
		http_cancel(x->cancel_me);
		x->cancel_me = NULL;
		x->done = true;
	}
	if (x->free_me) {
		http_client_free(x->free_me);
		x->free_me = NULL;
		x->done = true;
	}
}

static struct http_req *req(struct http_client *c, const char *path, const char *body,
                            long timeout_ms, long idle_ms, bool stream, struct res *x)
{
	char url[128];
	struct http_request_opts o = { .url = url,
		                       .body = body,
		                       .body_len = body ? strlen(body) : 0,
		                       .timeout_ms = timeout_ms,
		                       .idle_ms = idle_ms,
		                       .on_data = stream ? on_data : NULL };
	struct http_req *r;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", srv.port, path);
	r = http_request(c, &o, on_done, x);
	cr_assert(r, "http_request: %s", strerror(errno));
	cr_assert(!x->done, "callback ran from inside http_request");
	return r;
}

Test(lib_http, get_post_and_reuse)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 }, b = { 0 }, d = { 0 };

	cr_assert(c);
	req(c, "/hello", NULL, 2000, 0, false, &a);
	cr_assert_eq(http_client_active(c), 1);
	cr_assert_eq(ev_loop_run_until(loop, &a.done, 3000), 0);
	cr_assert_eq(a.rc, 0);
	cr_assert_eq(a.status, 200);
	cr_assert_str_eq(a.body, "hello world");
	cr_assert_str_eq(a.clen, "11");
	req(c, "/echo", "{\"key\":\"Zm9v\"}", 2000, 0, false, &b);
	cr_assert_eq(ev_loop_run_until(loop, &b.done, 3000), 0);
	cr_assert_eq(b.status, 200);
	cr_assert_str_eq(b.body, "{\"key\":\"Zm9v\"}");
	req(c, "/unavailable", "{}", 2000, 0, false, &d);
	cr_assert_eq(ev_loop_run_until(loop, &d.done, 3000), 0);
	cr_assert_eq(d.rc, 0);
	cr_assert_eq(d.status, 503);
	cr_assert_eq(srv.accepted, 1, "connection not reused");
	cr_assert_eq(http_client_connects(c), 1);
	cr_assert_eq(http_client_active(c), 0);
	cr_assert_eq(a.calls + b.calls + d.calls, 3);
	http_client_free(c);
}

Test(lib_http, connect_refused)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 };
	struct http_request_opts o = { .timeout_ms = 2000 };
	char url[64];
	int port = srv.port;

	/* closing the listener makes the port refuse */
	ev_io_free(srv.lio);
	close(srv.lfd);
	srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hello", port);
	o.url = url;
	cr_assert(http_request(c, &o, on_done, &a));
	cr_assert(!a.done);
	cr_assert_eq(ev_loop_run_until(loop, &a.done, 3000), 0);
	cr_assert_eq(a.rc, -ECONNREFUSED);
	cr_assert_eq(a.status, 0);
	http_client_free(c);
}

Test(lib_http, total_timeout)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 };
	uint64_t t0 = ev_now_ms();

	req(c, "/silent", "{}", 300, 0, false, &a);
	cr_assert_eq(ev_loop_run_until(loop, &a.done, 3000), 0);
	cr_assert_eq(a.rc, -ETIMEDOUT);
	cr_assert_geq(a.at - t0, 290);
	cr_assert_lt(a.at - t0, 1500);
	http_client_free(c);
}

Test(lib_http, stream_then_idle_timeout)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 };
	uint64_t t0 = ev_now_ms();

	req(c, "/stream", "{}", 0, 400, true, &a);
	cr_assert_eq(ev_loop_run_until(loop, &a.done, 3000), 0);
	cr_assert_eq(a.rc, -ETIMEDOUT);
	cr_assert_eq(a.status, 200);
	cr_assert_eq(a.data_len, 10);
	cr_assert_eq(memcmp(a.data, "line1\nli\nl", 10), 0);
	cr_assert_geq(a.at - t0, 390);
	cr_assert_lt(a.at - t0, 2000);
	http_client_free(c);
}

Test(lib_http, cancel_means_no_callback)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 }, b = { 0 }, d = { 0 };
	struct http_req *r;

	r = req(c, "/silent", "{}", 500, 0, false, &a);
	http_cancel(r);
	cr_assert_eq(http_client_active(c), 0);
	/* cancel a stream from inside its own data callback */
	b.cancel_me = req(c, "/stream", "{}", 0, 0, true, &b);
	cr_assert_eq(ev_loop_run_until(loop, &b.done, 3000), 0);
	for (int i = 0; i < 10; i++)
		ev_loop_run_once(loop, 70);
	cr_assert_eq(a.calls, 0);
	cr_assert_eq(b.calls, 0);
	cr_assert_eq(http_client_active(c), 0);
	/* a pending request left at free: no callback either */
	req(c, "/silent", "{}", 5000, 0, false, &d);
	http_client_free(c);
	for (int i = 0; i < 5; i++)
		ev_loop_run_once(loop, 10);
	cr_assert_eq(d.calls, 0);
}

Test(lib_http, free_client_from_callback)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 }, b = { 0 };

	a.free_me = c;
	req(c, "/stream", "{}", 0, 0, true, &a);
	req(c, "/silent", "{}", 5000, 0, false, &b);
	cr_assert_eq(ev_loop_run_until(loop, &a.done, 3000), 0);
	for (int i = 0; i < 5; i++)
		ev_loop_run_once(loop, 10);
	cr_assert_eq(a.calls + b.calls, 0);
}

Test(lib_http, bad_options)
{
	struct http_client *c = http_client_new(loop);
	struct http_request_opts o = { 0 };
	struct res a = { 0 };

	errno = 0;
	cr_assert_null(http_request(c, &o, on_done, &a));
	cr_assert_eq(errno, EINVAL);
	o.url = "ftp://127.0.0.1/x";
	cr_assert(http_request(c, &o, on_done, &a)); /* refused by curl at run time */
	cr_assert_eq(ev_loop_run_until(loop, &a.done, 3000), 0);
	cr_assert_neq(a.rc, 0);
	http_client_free(c);
	http_client_free(NULL);
	http_cancel(NULL);
}

Test(lib_http, header_lookup)
{
	static const char h[] = "HTTP/2 200\r\ncontent-type: application/grpc\r\n"
	                        "grpc-status: 0\r\n\r\nGrpc-Status:  14 \r\n"
	                        "grpc-message: etcdserver: request timed out\r\n";
	char b[8];

	cr_assert_str_eq(http_header_get(h, "grpc-status", b, sizeof(b)), "14"); /* the trailer */
	cr_assert_str_eq(http_header_get(h, "GRPC-MESSAGE", b, sizeof(b)), "etcdser");
	cr_assert_null(http_header_get(h, "grpc", b, sizeof(b)));
	cr_assert_null(http_header_get(h, "te", b, sizeof(b)));
	cr_assert_null(http_header_get("", "grpc-status", b, sizeof(b)));
	cr_assert_null(http_header_get(NULL, "grpc-status", b, sizeof(b)));
}
