/*
 * lib/h2c.c against a server that sends arbitrary bytes: the input is everything the
 * server writes on the connection (its preface, frames, garbage) before it closes. The
 * request must complete exactly once, with an error or a response, and never crash.
 * Even first byte: the body is buffered (limit 4 KiB); odd: streamed to on_data.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/ev.h"
#include "lib/http.h"
#include "lib/log.h"

static struct ev_loop *loop;
static int lfd = -1;
static char url[64];

struct outcome {
	bool done;
	int calls;
	size_t streamed;
};

static void on_done(void *ctx, const struct http_response *resp)
{
	struct outcome *o = ctx;

	if (o->calls++)
		abort(); /* a completion ran twice */
	if (resp->err && !resp->errmsg[0])
		abort(); /* a failure without a reason */
	o->done = true;
}

static void on_data(void *ctx, const char *data, size_t len)
{
	struct outcome *o = ctx;

	(void)data;
	o->streamed += len;
}

static int setup(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	log_init("fuzz", LOG_LVL_ERROR);
	loop = ev_loop_new();
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!loop || lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(lfd, 16) < 0 || getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/etcdserverpb.KV/Range", ntohs(a.sin_port));
	return 0;
}

/* The client's connection, accepted while the loop runs its connect; -1 after 2 s. */
static int accept_client(void)
{
	uint64_t end = ev_now_ms() + 2000;

	while (ev_now_ms() < end) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd >= 0)
			return fd;
		ev_loop_run_once(loop, 5);
	}
	return -1;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			return; /* the client closed on a protocol error: fine */
		p += w;
		n -= (size_t)w;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome o = { 0 };
	const char *hdrs[] = { "Content-Type: application/grpc", "TE: trailers", NULL };
	struct http_request_opts opt = { .url = url,
		                         .body = "\0\0\0\0\0",
		                         .body_len = 5,
		                         .h2 = true,
		                         .headers = hdrs,
		                         .timeout_ms = 2000,
		                         .max_body = 4096 };
	struct http_client *c;
	int sfd;

	if (!loop && setup() < 0)
		abort();
	if (size > 0 && (data[0] & 1))
		opt.on_data = on_data;
	c = http_client_new(loop);
	if (!c || !http_request(c, &opt, on_done, &o))
		abort();
	sfd = accept_client();
	if (sfd < 0)
		abort();
	write_all(sfd, data, size);
	shutdown(sfd, SHUT_WR);
	if (ev_loop_run_until(loop, &o.done, 5000) < 0)
		abort(); /* neither an answer nor an error: a hang */
	close(sfd);
	http_client_free(c);
	return 0;
}
