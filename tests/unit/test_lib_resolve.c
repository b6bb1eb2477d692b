/*
 * lib/resolve.c: getaddrinfo off the loop. Names come from /etc/hosts (localhost): no DNS
 * query leaves the machine.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lib/ev.h"
#include "lib/resolve.h"

static struct ev_loop *loop;

static void setup(void)
{
	loop = ev_loop_new();
	cr_assert(loop);
}

static void teardown(void)
{
	ev_loop_free(loop);
}

TestSuite(lib_resolve, .init = setup, .fini = teardown, .timeout = 30);

struct out {
	bool done;
	int calls, rc;
	bool has_v4_loopback;
	int port;
};

static void on_resolved(void *ctx, int rc, struct addrinfo *ai)
{
	struct out *o = ctx;

	o->calls++;
	o->done = true;
	o->rc = rc;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		if (a->ai_family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)a->ai_addr;

			o->port = ntohs(sin->sin_port);
			if (sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
				o->has_v4_loopback = true;
		}
	}
	if (ai)
		freeaddrinfo(ai);
}

static const struct addrinfo hints = { .ai_family = AF_INET,
	                               .ai_socktype = SOCK_STREAM,
	                               .ai_flags = AI_NUMERICSERV };

Test(lib_resolve, a_name_resolves_from_the_loop)
{
	struct out o = { 0 };
	struct resolve_job *j = resolve_start(loop, "localhost", "2379", &hints, on_resolved, &o);

	cr_assert(j, "resolve_start: %s", strerror(errno));
	cr_assert(!o.done, "the callback ran inside resolve_start");
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 5000), 0, "no answer in 5 s");
	cr_assert_eq(o.rc, 0, "getaddrinfo: %s", gai_strerror(o.rc));
	cr_assert(o.has_v4_loopback, "localhost is not 127.0.0.1");
	cr_assert_eq(o.port, 2379);
	cr_assert_eq(o.calls, 1);
}

Test(lib_resolve, a_bad_service_is_reported)
{
	struct out o = { 0 };

	cr_assert(resolve_start(loop, "localhost", "no-such-port", &hints, on_resolved, &o));
	cr_assert_eq(ev_loop_run_until(loop, &o.done, 5000), 0, "no answer in 5 s");
	cr_assert_neq(o.rc, 0, "a non-numeric service with AI_NUMERICSERV resolved");
	cr_assert_eq(o.calls, 1);
}

Test(lib_resolve, over_long_names_are_refused_at_once)
{
	char name[300];
	struct out o = { 0 };

	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	cr_assert_null(resolve_start(loop, name, "80", &hints, on_resolved, &o));
	cr_assert_eq(errno, ENAMETOOLONG);
}

/* Cancelled jobs never call back, whether the thread had finished or not (ASan checks the
 * clean-up that each side leaves to the other). */
Test(lib_resolve, cancelled_jobs_never_call_back)
{
	struct out o[64] = { 0 }, last = { 0 };

	for (int i = 0; i < 64; i++) {
		struct resolve_job *j =
			resolve_start(loop, "localhost", "80", &hints, on_resolved, &o[i]);

		cr_assert(j);
		if (i % 2) /* let some threads finish first (the loop does not run: no callback) */
			usleep(2000);
		resolve_cancel(j);
	}
	cr_assert(resolve_start(loop, "localhost", "80", &hints, on_resolved, &last));
	cr_assert_eq(ev_loop_run_until(loop, &last.done, 5000), 0);
	for (int i = 0; i < 20; i++)
		ev_loop_run_once(loop, 10);
	for (int i = 0; i < 64; i++)
		cr_assert_eq(o[i].calls, 0, "cancelled job %d called back", i);
}
