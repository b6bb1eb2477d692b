#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "lib/ev.h"

enum ev_kind { EV_IO, EV_TIMER, EV_SIGNALFD };

/* Common head of every epoll-registered object; epoll_data.ptr points here. */
struct ev_src {
	enum ev_kind kind;
	bool dead;
	struct ev_src *next_dead;
	struct ev_src *next_all, *prev_all;
};

struct ev_io {
	struct ev_src src;
	struct ev_loop *loop;
	int fd;
	ev_io_cb cb;
	void *ctx;
};

struct ev_timer {
	struct ev_src src;
	struct ev_loop *loop;
	int tfd;
	bool active;
	bool periodic;
	ev_timer_cb cb;
	void *ctx;
};

struct ev_signal {
	struct ev_loop *loop;
	int signo;
	ev_signal_cb cb;
	void *ctx;
	struct ev_signal *next;
};

struct ev_deferred {
	ev_defer_cb cb;
	void *ctx;
	struct ev_deferred *next;
};

struct ev_loop {
	int epfd;
	bool stop;
	struct ev_src sigsrc; /* the loop's signalfd */
	int sfd;
	sigset_t sigmask;
	struct ev_signal *signals;
	struct ev_src *all;
	struct ev_src *dead;
	struct ev_deferred *defer_head, *defer_tail;
};

uint64_t ev_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void src_link(struct ev_loop *loop, struct ev_src *src)
{
	src->next_all = loop->all;
	src->prev_all = NULL;
	if (loop->all)
		loop->all->prev_all = src;
	loop->all = src;
}

static void src_kill(struct ev_loop *loop, struct ev_src *src)
{
	if (src->dead)
		return;
	src->dead = true;
	if (src->prev_all)
		src->prev_all->next_all = src->next_all;
	else
		loop->all = src->next_all;
	if (src->next_all)
		src->next_all->prev_all = src->prev_all;
	src->next_dead = loop->dead;
	loop->dead = src;
}

static void reap(struct ev_loop *loop)
{
	while (loop->dead) {
		struct ev_src *src = loop->dead;

		loop->dead = src->next_dead;
		free(src); /* ev_src is the first member of every kind */
	}
}

struct ev_loop *ev_loop_new(void)
{
	struct ev_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->sfd = -1;
	loop->sigsrc.kind = EV_SIGNALFD;
	sigemptyset(&loop->sigmask);
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int err = errno;

		free(loop);
		errno = err;
		return NULL;
	}
	return loop;
}

void ev_loop_free(struct ev_loop *loop)
{
	if (!loop)
		return;
	while (loop->all) {
		struct ev_src *src = loop->all;

		if (src->kind == EV_TIMER)
			ev_timer_free((struct ev_timer *)src);
		else
			ev_io_free((struct ev_io *)src);
	}
	while (loop->signals) {
		struct ev_signal *s = loop->signals;

		loop->signals = s->next;
		free(s);
	}
	while (loop->defer_head) {
		struct ev_deferred *d = loop->defer_head;

		loop->defer_head = d->next;
		free(d);
	}
	reap(loop);
	if (loop->sfd >= 0)
		close(loop->sfd);
	close(loop->epfd);
	free(loop);
}

void ev_loop_stop(struct ev_loop *loop)
{
	loop->stop = true;
}

static void run_deferred(struct ev_loop *loop)
{
	struct ev_deferred *d = loop->defer_head;

	/* Calls deferred while running these wait for the next iteration. */
	loop->defer_head = loop->defer_tail = NULL;
	while (d) {
		struct ev_deferred *next = d->next;

		d->cb(d->ctx);
		free(d);
		d = next;
	}
}

static void dispatch_signals(struct ev_loop *loop)
{
	struct signalfd_siginfo si;

	while (read(loop->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		struct ev_signal *s = loop->signals, *next;

		for (; s; s = next) {
			next = s->next; /* the callback may free s */
			if (s->signo == (int)si.ssi_signo)
				s->cb(s, s->signo, s->ctx);
		}
	}
}

int ev_loop_run_once(struct ev_loop *loop, int timeout_ms)
{
	struct epoll_event evs[64];
	int n;

	if (loop->defer_head)
		timeout_ms = 0;
	run_deferred(loop);
	n = epoll_wait(loop->epfd, evs, 64, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		struct ev_src *src = evs[i].data.ptr;

		if (src->dead)
			continue;
		switch (src->kind) {
		case EV_IO: {
			struct ev_io *io = (struct ev_io *)src;

			io->cb(io, io->fd, evs[i].events, io->ctx);
			break;
		}
		case EV_TIMER: {
			struct ev_timer *t = (struct ev_timer *)src;
			uint64_t expirations;

			if (read(t->tfd, &expirations, sizeof(expirations)) < 0)
				break; /* spurious: re-armed or stopped meanwhile */
			if (!t->periodic)
				t->active = false;
			t->cb(t, t->ctx);
			break;
		}
		case EV_SIGNALFD:
			dispatch_signals(loop);
			break;
		}
	}
	reap(loop);
	return 0;
}

int ev_loop_run(struct ev_loop *loop)
{
	loop->stop = false;
	while (!loop->stop) {
		int r = ev_loop_run_once(loop, -1);

		if (r < 0)
			return r;
	}
	return 0;
}

int ev_loop_run_until(struct ev_loop *loop, const bool *done, int timeout_ms)
{
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : ev_now_ms() + (uint64_t)timeout_ms;

	while (!*done) {
		uint64_t now = ev_now_ms();
		int wait, r;

		if (now >= deadline)
			return -ETIMEDOUT;
		wait = deadline == UINT64_MAX ? -1 : (int)(deadline - now);
		r = ev_loop_run_once(loop, wait);
		if (r < 0)
			return r;
	}
	return 0;
}

struct ev_io *ev_io_new(struct ev_loop *loop, int fd, uint32_t events, ev_io_cb cb, void *ctx)
{
	struct ev_io *io = calloc(1, sizeof(*io));
	struct epoll_event ee = { .events = events };

	if (!io)
		return NULL;
	io->src.kind = EV_IO;
	io->loop = loop;
	io->fd = fd;
	io->cb = cb;
	io->ctx = ctx;
	ee.data.ptr = &io->src;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ee) < 0) {
		int err = errno;

		free(io);
		errno = err;
		return NULL;
	}
	src_link(loop, &io->src);
	return io;
}

int ev_io_set_events(struct ev_io *io, uint32_t events)
{
	struct epoll_event ee = { .events = events, .data.ptr = &io->src };

	if (epoll_ctl(io->loop->epfd, EPOLL_CTL_MOD, io->fd, &ee) < 0)
		return -errno;
	return 0;
}

int ev_io_fd(const struct ev_io *io)
{
	return io->fd;
}

void ev_io_free(struct ev_io *io)
{
	if (!io || io->src.dead)
		return;
	/* The fd may already be closed by its owner; ENOENT/EBADF are fine then. */
	epoll_ctl(io->loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	src_kill(io->loop, &io->src);
}

struct ev_timer *ev_timer_new(struct ev_loop *loop, ev_timer_cb cb, void *ctx)
{
	struct ev_timer *t = calloc(1, sizeof(*t));
	struct epoll_event ee = { .events = EPOLLIN };

	if (!t)
		return NULL;
	t->src.kind = EV_TIMER;
	t->loop = loop;
	t->cb = cb;
	t->ctx = ctx;
	t->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->tfd < 0)
		goto fail;
	ee.data.ptr = &t->src;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, t->tfd, &ee) < 0)
		goto fail;
	src_link(loop, &t->src);
	return t;
fail:;
	int err = errno;

	if (t->tfd >= 0)
		close(t->tfd);
	free(t);
	errno = err;
	return NULL;
}

static struct timespec ms_to_ts(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };

	return ts;
}

int ev_timer_start(struct ev_timer *t, uint64_t after_ms, uint64_t every_ms)
{
	struct itimerspec its = { .it_value = ms_to_ts(after_ms), .it_interval = ms_to_ts(every_ms) };

	if (after_ms == 0)
		its.it_value.tv_nsec = 1; /* zero would disarm */
	if (timerfd_settime(t->tfd, 0, &its, NULL) < 0)
		return -errno;
	t->active = true;
	t->periodic = every_ms != 0;
	return 0;
}

void ev_timer_stop(struct ev_timer *t)
{
	struct itimerspec its = { 0 };
	uint64_t drain;

	if (!t)
		return;
	timerfd_settime(t->tfd, 0, &its, NULL);
	/* Drop an expiry already counted, so a stopped timer never fires. */
	if (read(t->tfd, &drain, sizeof(drain)) < 0) {
		/* EAGAIN: nothing pending */
	}
	t->active = false;
}

bool ev_timer_active(const struct ev_timer *t)
{
	return t && t->active;
}

void ev_timer_free(struct ev_timer *t)
{
	if (!t || t->src.dead)
		return;
	epoll_ctl(t->loop->epfd, EPOLL_CTL_DEL, t->tfd, NULL);
	close(t->tfd);
	src_kill(t->loop, &t->src);
}

struct ev_signal *ev_signal_new(struct ev_loop *loop, int signo, ev_signal_cb cb, void *ctx)
{
	struct ev_signal *s = calloc(1, sizeof(*s));
	sigset_t one;
	int fd;

	if (!s)
		return NULL;
	sigaddset(&loop->sigmask, signo);
	sigemptyset(&one);
	sigaddset(&one, signo);
	if (sigprocmask(SIG_BLOCK, &one, NULL) < 0)
		goto fail;
	fd = signalfd(loop->sfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		goto fail;
	if (loop->sfd < 0) {
		struct epoll_event ee = { .events = EPOLLIN, .data.ptr = &loop->sigsrc };

		loop->sfd = fd;
		if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ee) < 0) {
			close(fd);
			loop->sfd = -1;
			goto fail;
		}
	}
	s->loop = loop;
	s->signo = signo;
	s->cb = cb;
	s->ctx = ctx;
	s->next = loop->signals;
	loop->signals = s;
	return s;
fail:;
	int err = errno;

	free(s);
	errno = err;
	return NULL;
}

void ev_signal_free(struct ev_signal *s)
{
	struct ev_signal **pp;

	if (!s)
		return;
	/* Unlinked at once: signals are dispatched from a list walk, never from epoll data. */
	for (pp = &s->loop->signals; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	free(s);
}

int ev_defer(struct ev_loop *loop, ev_defer_cb cb, void *ctx)
{
	struct ev_deferred *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->cb = cb;
	d->ctx = ctx;
	if (loop->defer_tail)
		loop->defer_tail->next = d;
	else
		loop->defer_head = d;
	loop->defer_tail = d;
	return 0;
}
