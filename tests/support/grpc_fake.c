/* A misbehaving gRPC server for tests: see grpc_fake.h. Raw HTTP/2 frames (RFC 9113). */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "lib/ev.h"
#include "tests/support/grpc_fake.h"

#define PREFACE_LEN 24
#define F_DATA      0
#define F_HEADERS   1
#define F_SETTINGS  4
#define F_PING      6
#define END_STREAM  0x1
#define END_HEADERS 0x4

struct grpc_fake_conn {
	struct grpc_fake *f;
	int fd;
	struct ev_io *io;
	uint8_t buf[65536];
	size_t len;
	bool preface;
	struct grpc_fake_conn *next;
};

static void frame(int fd, uint8_t type, uint8_t flags, uint32_t sid, const void *p, size_t n)
{
	uint8_t h[9] = {
		(uint8_t)(n >> 16),   (uint8_t)(n >> 8),    (uint8_t)n,          type,        flags,
		(uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid
	};

	if (write(fd, h, 9) != 9 || (n && write(fd, p, n) != (ssize_t)n))
		return; /* the client went away: nothing to do */
}

/* HPACK: a literal header field without indexing, new name, no Huffman coding. */
static size_t lit(uint8_t *out, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value), n = 0;

	out[n++] = 0x00;
	out[n++] = (uint8_t)nl;
	memcpy(out + n, name, nl);
	n += nl;
	out[n++] = (uint8_t)vl;
	memcpy(out + n, value, vl);
	return n + vl;
}

/* :status 200 (static index 8) and content-type (static name 31) application/grpc. */
static size_t head(uint8_t *out)
{
	static const char ct[] = "application/grpc";
	size_t n = 0;

	out[n++] = 0x88;
	out[n++] = 0x0f;
	out[n++] = 0x10;
	out[n++] = (uint8_t)(sizeof(ct) - 1);
	memcpy(out + n, ct, sizeof(ct) - 1);
	return n + sizeof(ct) - 1;
}

static void trailers(int fd, uint32_t sid, const char *status, const char *msg)
{
	uint8_t b[256];
	size_t n = lit(b, "grpc-status", status);

	if (msg)
		n += lit(b + n, "grpc-message", msg);
	frame(fd, F_HEADERS, END_STREAM | END_HEADERS, sid, b, n);
}

static void answer(struct grpc_fake_conn *c, uint32_t sid)
{
	static const uint8_t trunc[] = { 0, 0, 0, 0, 100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	static const uint8_t huge[] = { 0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5 };
	static const uint8_t empty[] = { 0, 0, 0, 0, 0 };
	static const uint8_t half[] = { 0, 0, 0, 0, 100, 1, 2, 3 };
	static const uint8_t garbage[] = { 0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff };
	uint8_t b[256];
	size_t n = head(b);

	switch (c->f->mode) {
	case GRPC_FAKE_UNAVAILABLE:
	case GRPC_FAKE_PERCENT:
		if (c->f->mode == GRPC_FAKE_UNAVAILABLE) {
			n += lit(b + n, "grpc-status", "14");
			n += lit(b + n, "grpc-message", "etcdserver: request timed out");
		} else {
			n += lit(b + n, "grpc-status", "7");
			n += lit(b + n, "grpc-message", "etcdserver: permission%20denied");
		}
		frame(c->fd, F_HEADERS, END_STREAM | END_HEADERS, sid, b, n);
		return;
	default:
		break;
	}
	frame(c->fd, F_HEADERS, END_HEADERS, sid, b, n);
	switch (c->f->mode) {
	case GRPC_FAKE_TRUNCATED:
		frame(c->fd, F_DATA, 0, sid, trunc, sizeof(trunc));
		trailers(c->fd, sid, "0", NULL);
		break;
	case GRPC_FAKE_OVERSIZE:
		frame(c->fd, F_DATA, 0, sid, huge, sizeof(huge));
		trailers(c->fd, sid, "0", NULL);
		break;
	case GRPC_FAKE_NO_STATUS:
		frame(c->fd, F_DATA, END_STREAM, sid, empty, sizeof(empty));
		break;
	case GRPC_FAKE_CLOSE:
		frame(c->fd, F_DATA, 0, sid, half, sizeof(half));
		shutdown(c->fd, SHUT_RDWR);
		break;
	default:
		frame(c->fd, F_DATA, 0, sid, garbage, sizeof(garbage));
		trailers(c->fd, sid, "0", NULL);
		break;
	}
}

static void conn_close(struct grpc_fake_conn *c)
{
	struct grpc_fake *f = c->f;

	for (struct grpc_fake_conn **p = &f->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	ev_io_free(c->io);
	close(c->fd);
	free(c);
}

/* Whole frames in c->buf: answer HEADERS, ack SETTINGS and PING; false when closed. */
static bool frames(struct grpc_fake_conn *c)
{
	size_t off = 0;

	if (!c->preface) {
		if (c->len < PREFACE_LEN)
			return true;
		off = PREFACE_LEN;
		c->preface = true;
	}
	while (c->len - off >= 9) {
		const uint8_t *h = c->buf + off;
		size_t n = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
		uint32_t sid =
			((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) &
			0x7fffffffu;

		if (c->len - off < 9 + n)
			break;
		if (h[3] == F_SETTINGS && !(h[4] & 1))
			frame(c->fd, F_SETTINGS, 1, 0, NULL, 0);
		else if (h[3] == F_PING && !(h[4] & 1))
			frame(c->fd, F_PING, 1, 0, h + 9, n);
		else if (h[3] == F_HEADERS) {
			c->f->requests++;
			answer(c, sid);
			if (c->f->mode == GRPC_FAKE_CLOSE) {
				conn_close(c);
				return false;
			}
		}
		off += 9 + n;
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	return true;
}

static void conn_io(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct grpc_fake_conn *c = ctx;
	ssize_t n;

	(void)io;
	(void)revents;
	n = read(fd, c->buf + c->len, sizeof(c->buf) - c->len);
	if (n <= 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)n;
	frames(c);
}

static void accept_io(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct grpc_fake *f = ctx;
	struct grpc_fake_conn *c;
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

	(void)io;
	(void)revents;
	if (cfd < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		return;
	}
	c->f = f;
	c->fd = cfd;
	c->io = ev_io_new(f->loop, cfd, EPOLLIN, conn_io, c);
	c->next = f->conns;
	f->conns = c;
	frame(cfd, F_SETTINGS, 0, 0, NULL, 0); /* the server preface */
}

struct grpc_fake *grpc_fake_start(struct ev_loop *loop, enum grpc_fake_mode mode)
{
	struct grpc_fake *f = calloc(1, sizeof(*f));
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);

	if (!f)
		return NULL;
	f->loop = loop;
	f->mode = mode;
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(f->lfd, 16) < 0 || getsockname(f->lfd, (struct sockaddr *)&sa, &sl) < 0)
		goto fail;
	f->port = ntohs(sa.sin_port);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->port);
	f->lio = ev_io_new(loop, f->lfd, EPOLLIN, accept_io, f);
	if (!f->lio)
		goto fail;
	return f;
fail:
	if (f->lfd >= 0)
		close(f->lfd);
	free(f);
	return NULL;
}

void grpc_fake_stop(struct grpc_fake *f)
{
	if (!f)
		return;
	while (f->conns)
		conn_close(f->conns);
	ev_io_free(f->lio);
	close(f->lfd);
	free(f);
}
