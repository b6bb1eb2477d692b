#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "lib/ev.h"

struct counter {
	int n;
	bool done;
	struct ev_timer *self;
};

static void count_timer(struct ev_timer *t, void *ctx)
{
	struct counter *c = ctx;

	(void)t;
	if (++c->n == 3)
		c->done = true;
}

Test(ev, periodic_timer_fires_repeatedly)
{
	struct ev_loop *loop = ev_loop_new();
	struct counter c = { 0 };
	struct ev_timer *t = ev_timer_new(loop, count_timer, &c);

	cr_assert_eq(ev_timer_start(t, 1, 1), 0);
	cr_assert_eq(ev_loop_run_until(loop, &c.done, 2000), 0);
	cr_assert_eq(c.n, 3);
	ev_loop_free(loop);
}

static void free_self(struct ev_timer *t, void *ctx)
{
	struct counter *c = ctx;

	c->n++;
	ev_timer_free(t);
	c->done = true;
}

Test(ev, timer_may_free_itself)
{
	struct ev_loop *loop = ev_loop_new();
	struct counter c = { 0 };
	struct ev_timer *t = ev_timer_new(loop, free_self, &c);

	ev_timer_start(t, 0, 1);
	cr_assert_eq(ev_loop_run_until(loop, &c.done, 2000), 0);
	cr_assert_eq(ev_loop_run_once(loop, 20), 0);
	cr_assert_eq(c.n, 1);
	ev_loop_free(loop);
}

Test(ev, stopped_timer_never_fires)
{
	struct ev_loop *loop = ev_loop_new();
	struct counter c = { 0 };
	struct ev_timer *t = ev_timer_new(loop, count_timer, &c);

	ev_timer_start(t, 0, 0);
	ev_timer_stop(t);
	cr_assert_eq(ev_loop_run_until(loop, &c.done, 50), -ETIMEDOUT);
	cr_assert_eq(c.n, 0);
	cr_assert(!ev_timer_active(t));
	ev_loop_free(loop);
}

static void on_readable(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct counter *c = ctx;
	char b;

	(void)io;
	cr_assert(revents & EPOLLIN);
	cr_assert_eq(read(fd, &b, 1), 1);
	c->n = b;
	c->done = true;
}

Test(ev, io_watcher_sees_data)
{
	struct ev_loop *loop = ev_loop_new();
	struct counter c = { 0 };
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_not_null(ev_io_new(loop, p[0], EPOLLIN, on_readable, &c));
	cr_assert_eq(write(p[1], "\x07", 1), 1);
	cr_assert_eq(ev_loop_run_until(loop, &c.done, 2000), 0);
	cr_assert_eq(c.n, 7);
	ev_loop_free(loop);
	close(p[0]);
	close(p[1]);
}

static void on_signal(struct ev_signal *s, int signo, void *ctx)
{
	struct counter *c = ctx;

	(void)s;
	c->n = signo;
	c->done = true;
}

Test(ev, signal_is_delivered_through_the_loop)
{
	struct ev_loop *loop = ev_loop_new();
	struct counter c = { 0 };

	cr_assert_not_null(ev_signal_new(loop, SIGUSR1, on_signal, &c));
	kill(getpid(), SIGUSR1);
	cr_assert_eq(ev_loop_run_until(loop, &c.done, 2000), 0);
	cr_assert_eq(c.n, SIGUSR1);
	ev_loop_free(loop);
}

static void deferred(void *ctx)
{
	struct counter *c = ctx;

	c->n++;
	c->done = true;
}

Test(ev, deferred_call_runs_once)
{
	struct ev_loop *loop = ev_loop_new();
	struct counter c = { 0 };

	cr_assert_eq(ev_defer(loop, deferred, &c), 0);
	cr_assert_eq(c.n, 0);
	cr_assert_eq(ev_loop_run_until(loop, &c.done, 2000), 0);
	ev_loop_run_once(loop, 0);
	cr_assert_eq(c.n, 1);
	ev_loop_free(loop);
}
