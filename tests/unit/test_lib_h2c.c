/*
 * lib/http.c's h2c path (lib/h2c.c) against a small HTTP/2 server on the same loop, built on
 * nghttp2's server side: connection sharing, GOAWAY, a peer that never speaks, a connection
 * that breaks, streamed bodies and cancel, and freeing the client from a callback.
 * Paths: /hello answers "hello"; /silent never answers; /goaway answers with a GOAWAY that
 * refuses the stream; /close closes the connection; /echo answers each request DATA chunk
 * with the same bytes and never ends. Names (localhost, from /etc/hosts: no DNS query leaves
 * the machine) are resolved off the loop (lib/resolve.c).
 */
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
#include <nghttp2/nghttp2.h>

#include "lib/ev.h"
#include "lib/http.h"

static struct ev_loop *loop;
static const char *req_host = "127.0.0.1"; /* the host of the requests' URLs */

/* ---- the server ---- */

struct sconn {
	bool mute;
	int fd;
	struct ev_io *io;
	nghttp2_session *ng;
	bool closed;
};

static struct srv {
	int lfd;
	int port;
	bool mute; /* accept and never speak (a frozen process's backlog) */
	struct ev_io *lio;
	int accepted;
	int cancelled; /* streams the client reset */
	struct sconn *conns[16];
	int n;
	char path[64][64]; /* by stream id / 2 */
} srv;

static nghttp2_nv hv(const char *n, const char *v)
{
	nghttp2_nv h = { (uint8_t *)(uintptr_t)n, (uint8_t *)(uintptr_t)v, strlen(n), strlen(v),
		         NGHTTP2_NV_FLAG_NONE };

	return h;
}

static ssize_t hello_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                          uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	(void)ng, (void)id, (void)src, (void)ud, (void)len;
	memcpy(buf, "hello", 5);
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	return 5;
}

static void sconn_close(struct sconn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	ev_io_free(c->io);
	close(c->fd);
}

static void sflush(struct sconn *c)
{
	const uint8_t *d;
	ssize_t n;

	while (!c->closed && (n = nghttp2_session_mem_send(c->ng, &d)) > 0)
		cr_assert_eq(write(c->fd, d, (size_t)n), n);
}

static int s_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                    const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	(void)ng, (void)flags, (void)ud;
	if (nl == 5 && !memcmp(name, ":path", 5) && f->hd.stream_id / 2 < 64)
		snprintf(srv.path[f->hd.stream_id / 2], 64, "%.*s", (int)vl, (const char *)value);
	return 0;
}

/* /echo: bytes received and not yet sent back (one echo stream at a time) */
static char echo_buf[4096];
static size_t echo_len;

static ssize_t echo_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
	size_t n = echo_len < len ? echo_len : len;

	(void)ng, (void)id, (void)flags, (void)src, (void)ud;
	if (n == 0)
		return NGHTTP2_ERR_DEFERRED;
	memcpy(buf, echo_buf, n);
	memmove(echo_buf, echo_buf + n, echo_len - n);
	echo_len -= n;
	return (ssize_t)n;
}

static void respond(nghttp2_session *ng, int32_t id, const char *path)
{
	nghttp2_nv h[] = { hv(":status", "200") };
	nghttp2_data_provider hello = { .read_callback = hello_read };
	nghttp2_data_provider echo = { .read_callback = echo_read };

	if (!strcmp(path, "/hello"))
		nghttp2_submit_response(ng, id, h, 1, &hello);
	else if (!strcmp(path, "/goaway")) /* this stream is beyond the last one taken */
		nghttp2_submit_goaway(ng, NGHTTP2_FLAG_NONE, id - 2, NGHTTP2_NO_ERROR, NULL, 0);
	else if (!strcmp(path, "/echo"))
		nghttp2_submit_response(ng, id, h, 1, &echo);
}

static const char *path_of(int32_t id)
{
	return id > 0 && id / 2 < 64 ? srv.path[id / 2] : "";
}

static int s_frame(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct sconn *c = ud;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (!strcmp(path_of(f->hd.stream_id), "/close"))
		sconn_close(c);
	else
		respond(ng, f->hd.stream_id, path_of(f->hd.stream_id));
	return 0;
}

static int s_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                  void *ud)
{
	(void)flags, (void)ud;
	if (strcmp(path_of(id), "/echo") != 0)
		return 0;
	cr_assert_lt(echo_len + len, sizeof(echo_buf));
	memcpy(echo_buf + echo_len, data, len);
	echo_len += len;
	nghttp2_session_resume_data(ng, id);
	return 0;
}

static int s_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	(void)ng, (void)id, (void)ud;
	if (code == NGHTTP2_CANCEL)
		srv.cancelled++;
	return 0;
}

static void sconn_io(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct sconn *c = ctx;
	uint8_t buf[16384];
	ssize_t n;

	(void)io, (void)revents;
	n = read(fd, buf, sizeof(buf));
	if (n <= 0) {
		sconn_close(c);
		return;
	}
	if (c->mute)
		return;
	cr_assert_geq(nghttp2_session_mem_recv(c->ng, buf, (size_t)n), 0);
	sflush(c);
}

static void accept_cb(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct sconn *c;
	nghttp2_session_callbacks *cb;

	(void)io, (void)revents, (void)ctx;
	cr_assert_lt(srv.n, 16);
	c = calloc(1, sizeof(*c));
	cr_assert(c);
	c->fd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	c->mute = srv.mute;
	cr_assert_geq(c->fd, 0);
	srv.accepted++;
	srv.conns[srv.n++] = c;
	cr_assert_eq(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, s_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, s_frame);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, s_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, s_close);
	cr_assert_eq(nghttp2_session_server_new(&c->ng, cb, c), 0);
	nghttp2_session_callbacks_del(cb);
	if (!srv.mute) {
		nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, NULL, 0);
		sflush(c);
	}
	c->io = ev_io_new(loop, c->fd, EPOLLIN, sconn_io, c);
	cr_assert(c->io);
}

static void setup(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	memset(&srv, 0, sizeof(srv));
	echo_len = 0;
	loop = ev_loop_new();
	cr_assert(loop);
	srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	cr_assert_geq(srv.lfd, 0);
	cr_assert_eq(bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(srv.lfd, 16), 0);
	cr_assert_eq(getsockname(srv.lfd, (struct sockaddr *)&a, &al), 0);
	srv.port = ntohs(a.sin_port);
	srv.lio = ev_io_new(loop, srv.lfd, EPOLLIN, accept_cb, NULL);
	cr_assert(srv.lio);
}

static void teardown(void)
{
	for (int i = 0; i < srv.n; i++) {
		sconn_close(srv.conns[i]);
		nghttp2_session_del(srv.conns[i]->ng);
		free(srv.conns[i]);
	}
	ev_io_free(srv.lio);
	close(srv.lfd);
	ev_loop_free(loop);
}

TestSuite(lib_h2c, .init = setup, .fini = teardown, .timeout = 30);

/* ---- the client side ---- */

struct res {
	bool done;
	int calls, rc;
	long status;
	char body[256];
	char data[256];
	size_t data_len;
	struct http_client *free_me;
};

static void on_done(void *ctx, const struct http_response *resp)
{
	struct res *x = ctx;

	x->calls++;
	x->done = true;
	x->rc = resp->err;
	x->status = resp->status;
	snprintf(x->body, sizeof(x->body), "%s", resp->body ? resp->body : "");
	if (x->free_me) {
		http_client_free(x->free_me);
		x->free_me = NULL;
	}
}

static void on_data(void *ctx, const char *data, size_t len)
{
	struct res *x = ctx;

	cr_assert_lt(x->data_len + len, sizeof(x->data));
	memcpy(x->data + x->data_len, data, len);
	x->data_len += len;
}

static struct http_req *req(struct http_client *c, const char *path, long timeout_ms, bool stream,
                            struct res *x)
{
	char url[128];
	struct http_request_opts o = { .url = url,
		                       .body = "q",
		                       .body_len = 1,
		                       .stream_body = stream,
		                       .h2 = true,
		                       .timeout_ms = timeout_ms,
		                       .on_data = stream ? on_data : NULL };
	struct http_req *r;

	snprintf(url, sizeof(url), "http://%s:%d%s", req_host, srv.port, path);
	r = http_request(c, &o, on_done, x);
	cr_assert(r, "http_request: %s", strerror(errno));
	cr_assert(!x->done, "callback ran from inside http_request");
	return r;
}

static void wait_done(struct res *x)
{
	cr_assert_eq(ev_loop_run_until(loop, &x->done, 5000), 0, "no completion in 5 s");
}

Test(lib_h2c, concurrent_requests_share_one_connection)
{
	struct http_client *c = http_client_new(loop);
	struct res x[20] = { 0 }, y = { 0 };

	cr_assert(c);
	for (int i = 0; i < 20; i++)
		req(c, "/hello", 3000, false, &x[i]);
	cr_assert_eq(http_client_active(c), 20);
	for (int i = 0; i < 20; i++) {
		wait_done(&x[i]);
		cr_assert_eq(x[i].rc, 0, "request %d: %d", i, x[i].rc);
		cr_assert_eq(x[i].status, 200);
		cr_assert_str_eq(x[i].body, "hello");
		cr_assert_eq(x[i].calls, 1);
	}
	req(c, "/hello", 3000, false, &y);
	wait_done(&y);
	cr_assert_eq(y.rc, 0);
	cr_assert_eq(srv.accepted, 1, "%d connections", srv.accepted);
	cr_assert_eq(http_client_connects(c), 1);
	cr_assert_eq(http_client_active(c), 0);
	http_client_free(c);
}

Test(lib_h2c, goaway_refuses_then_a_new_connection)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 }, b = { 0 }, d = { 0 };

	req(c, "/hello", 3000, false, &a);
	wait_done(&a);
	req(c, "/goaway", 3000, false, &b);
	wait_done(&b);
	cr_assert_eq(b.rc, -ECONNREFUSED, "refused stream: %d", b.rc);
	req(c, "/hello", 3000, false, &d);
	wait_done(&d);
	cr_assert_eq(d.rc, 0);
	cr_assert_str_eq(d.body, "hello");
	cr_assert_eq(srv.accepted, 2, "after a GOAWAY the next request needs a new connection");
	http_client_free(c);
}

Test(lib_h2c, a_peer_that_never_speaks_is_left_after_a_timeout)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 }, b = { 0 };
	uint64_t t0 = ev_now_ms();

	srv.mute = true;
	req(c, "/hello", 300, false, &a);
	/* the connect completes a few ms after the request began, as it does over a network:
	 * an accepted connection alone must not count as a sign of life */
	usleep(5000);
	wait_done(&a);
	cr_assert_eq(a.rc, -ETIMEDOUT);
	cr_assert_geq(ev_now_ms() - t0, 290);
	srv.mute = false;
	req(c, "/hello", 3000, false, &b);
	wait_done(&b);
	cr_assert_eq(b.rc, 0, "the second request went to the dead connection: %d", b.rc);
	cr_assert_eq(srv.accepted, 2);
	http_client_free(c);
}

Test(lib_h2c, a_silent_stream_times_out_alone)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 }, b = { 0 };

	req(c, "/hello", 3000, false, &b);
	wait_done(&b);
	memset(&b, 0, sizeof(b));
	req(c, "/silent", 300, false, &a);
	req(c, "/hello", 3000, false, &b);
	wait_done(&b);
	cr_assert_eq(b.rc, 0);
	wait_done(&a);
	cr_assert_eq(a.rc, -ETIMEDOUT);
	for (uint64_t end = ev_now_ms() + 3000; srv.cancelled < 1 && ev_now_ms() < end;)
		ev_loop_run_once(loop, 20);
	cr_assert_eq(srv.cancelled, 1, "the timed-out stream was not reset");
	cr_assert_eq(srv.accepted, 1, "a live connection was dropped for one slow stream");
	http_client_free(c);
}

Test(lib_h2c, a_broken_connection_fails_its_streams)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 }, b = { 0 }, d = { 0 };

	req(c, "/silent", 3000, false, &a);
	req(c, "/close", 3000, false, &b);
	wait_done(&a);
	wait_done(&b);
	cr_assert_eq(a.rc, -ECONNRESET);
	cr_assert_eq(b.rc, -ECONNRESET);
	req(c, "/hello", 3000, false, &d);
	wait_done(&d);
	cr_assert_eq(d.rc, 0);
	cr_assert_eq(srv.accepted, 2);
	http_client_free(c);
}

Test(lib_h2c, streamed_body_echo_and_cancel)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 };
	struct http_req *r = req(c, "/echo", 0, true, &a);
	uint64_t end = ev_now_ms() + 5000;

	while (a.data_len < 1 && ev_now_ms() < end)
		ev_loop_run_once(loop, 20);
	cr_assert_eq(a.data_len, 1, "the first body byte came back");
	cr_assert_eq(http_req_send(r, "abc", 3), 0);
	while (a.data_len < 4 && ev_now_ms() < end)
		ev_loop_run_once(loop, 20);
	cr_assert_eq(a.data_len, 4);
	cr_assert_eq(memcmp(a.data, "qabc", 4), 0);
	http_cancel(r);
	while (srv.cancelled < 1 && ev_now_ms() < end)
		ev_loop_run_once(loop, 20);
	cr_assert_eq(srv.cancelled, 1, "the server did not see the cancel");
	cr_assert(!a.done, "a cancelled request completed");
	cr_assert_eq(http_client_active(c), 0);
	http_client_free(c);
}

Test(lib_h2c, free_client_from_a_callback)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 }, b = { 0 };
	uint64_t end;

	req(c, "/silent", 3000, false, &b);
	a.free_me = c;
	req(c, "/hello", 3000, false, &a);
	wait_done(&a);
	end = ev_now_ms() + 500;
	while (ev_now_ms() < end)
		ev_loop_run_once(loop, 20);
	cr_assert(!b.done, "a request of a freed client completed");
}

Test(lib_h2c, connect_refused)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 };

	ev_io_free(srv.lio);
	srv.lio = NULL;
	close(srv.lfd);
	srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	req(c, "/hello", 2000, false, &a);
	wait_done(&a);
	cr_assert_eq(a.rc, -ECONNREFUSED);
	cr_assert_eq(a.status, 0);
	cr_assert_eq(http_client_connects(c), 0);
	http_client_free(c);
}

Test(lib_h2c, a_name_is_resolved_off_the_loop_and_shared)
{
	struct http_client *c = http_client_new(loop);
	struct res x[5] = { 0 };

	req_host = "localhost";
	for (int i = 0; i < 5; i++)
		req(c, "/hello", 3000, false, &x[i]);
	for (int i = 0; i < 5; i++) {
		wait_done(&x[i]);
		cr_assert_eq(x[i].rc, 0, "request %d: %d", i, x[i].rc);
		cr_assert_str_eq(x[i].body, "hello");
	}
	cr_assert_eq(srv.accepted, 1, "%d connections", srv.accepted);
	cr_assert_eq(http_client_connects(c), 1);
	http_client_free(c);
}

Test(lib_h2c, free_client_while_resolving)
{
	struct http_client *c = http_client_new(loop);
	struct res a = { 0 };
	uint64_t end;

	req_host = "localhost";
	req(c, "/hello", 3000, false, &a);
	http_client_free(c); /* the lookup thread finishes on its own and frees the job */
	end = ev_now_ms() + 300;
	while (ev_now_ms() < end)
		ev_loop_run_once(loop, 20);
	cr_assert(!a.done, "a request of a freed client completed");
	cr_assert_eq(srv.accepted, 0, "a freed client connected");
}
