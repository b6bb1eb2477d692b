/*
 * A misbehaving gRPC server for tests: a loopback HTTP/2 (h2c) listener on the caller's
 * ev_loop that answers every request with the reply its mode says, written as raw HTTP/2
 * frames (HPACK literals): etcd's error answers, and the broken replies a client must
 * survive. Never a stand-in for etcd on a tested success path: it only fails.
 */
#ifndef TWILL_TESTS_GRPC_FAKE_H
#define TWILL_TESTS_GRPC_FAKE_H

#include <stdbool.h>

struct ev_loop;

enum grpc_fake_mode {
	GRPC_FAKE_UNAVAILABLE, /* trailers-only: grpc-status 14 "etcdserver: request timed out" */
	GRPC_FAKE_TRUNCATED,   /* a frame announcing 100 bytes, 10 sent, then grpc-status 0 */
	GRPC_FAKE_OVERSIZE,    /* a frame announcing 2 GiB, then grpc-status 0 */
	GRPC_FAKE_NO_STATUS,   /* a whole message, then the stream ends without trailers */
	GRPC_FAKE_CLOSE,       /* response headers and half a frame, then the connection closes */
	GRPC_FAKE_GARBAGE,     /* a whole frame of bytes that are no protobuf message */
	GRPC_FAKE_PERCENT,     /* grpc-status 7 with a percent-encoded grpc-message */
};

struct grpc_fake {
	struct ev_loop *loop;
	enum grpc_fake_mode mode;
	int lfd;
	int port;
	char url[64]; /* http://127.0.0.1:<port> */
	int requests; /* HEADERS frames received */
	struct ev_io *lio;
	struct grpc_fake_conn *conns;
};

/* Listen on a free loopback port; NULL on failure. */
struct grpc_fake *grpc_fake_start(struct ev_loop *loop, enum grpc_fake_mode mode);
/* Close everything. NULL-safe. */
void grpc_fake_stop(struct grpc_fake *f);

#endif
