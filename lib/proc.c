/* Child processes on the event loop (see proc.h). */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/ev.h"
#include "lib/proc.h"
#include "lib/strbuf.h"

extern char **environ;

#define POLL_MS 20 /* waitpid polling when there is no pidfd */

/* One pipe to or from the child. */
struct pipe_end {
	int fd;
	struct ev_io *io;
	struct strbuf buf;
};

struct proc {
	struct ev_loop *loop;
	proc_cb cb;
	void *ctx;
	pid_t pid;
	int pidfd;
	struct ev_io *pid_io;
	struct ev_timer *timer; /* the deadline, and waitpid polling without pidfd */
	uint64_t deadline_ms;
	size_t out_max, in_off;
	bool exited, called;
	struct pipe_end in, out, err;
	struct proc_result res;
};

static void end_close(struct pipe_end *e)
{
	ev_io_free(e->io);
	e->io = NULL;
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
}

/* Call back once the child exited and both output pipes are at EOF; nothing touches @p after. */
static void maybe_done(struct proc *p)
{
	if (!p->exited || p->out.fd >= 0 || p->err.fd >= 0 || p->called)
		return;
	p->called = true;
	ev_timer_stop(p->timer);
	p->res.out = p->out.buf.p ? p->out.buf.p : "";
	p->res.out_len = p->out.buf.len;
	p->res.err = p->err.buf.p ? p->err.buf.p : "";
	p->res.err_len = p->err.buf.len;
	p->cb(p->ctx, &p->res);
}

static void reap(struct proc *p)
{
	int status;
	pid_t r;

	if (p->exited)
		return;
	r = waitpid(p->pid, &status, WNOHANG);
	if (r == 0)
		return;
	p->exited = true;
	p->res.status = r < 0 ? -1 : status;
	ev_io_free(p->pid_io);
	p->pid_io = NULL;
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
	end_close(&p->in); /* stdin nobody reads any more */
	maybe_done(p);
}

static void on_pidfd(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	(void)io;
	(void)fd;
	(void)revents;
	reap(ctx);
}

static void on_timer(struct ev_timer *t, void *ctx)
{
	struct proc *p = ctx;

	(void)t;
	if (p->exited)
		return;
	if (ev_now_ms() >= p->deadline_ms && !p->res.timed_out) {
		p->res.timed_out = true;
		kill(p->pid, SIGKILL); /* our own, unreaped child: the pid cannot be reused */
	}
	reap(p);
}

static void read_end(struct proc *p, struct pipe_end *e)
{
	char chunk[8192];
	ssize_t r;

	for (;;) {
		r = read(e->fd, chunk, sizeof(chunk));
		if (r > 0) {
			if (e->buf.len + (size_t)r > p->out_max ||
			    strbuf_add(&e->buf, chunk, (size_t)r) < 0)
				p->res.overflow = true;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break; /* EOF or error */
	}
	end_close(e);
	maybe_done(p);
}

static void on_out(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct proc *p = ctx;

	(void)io;
	(void)fd;
	(void)revents;
	read_end(p, &p->out);
}

static void on_err(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct proc *p = ctx;

	(void)io;
	(void)fd;
	(void)revents;
	read_end(p, &p->err);
}

static void on_in(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct proc *p = ctx;
	ssize_t w;

	(void)io;
	(void)revents;
	while (p->in_off < p->in.buf.len) {
		w = write(fd, p->in.buf.p + p->in_off, p->in.buf.len - p->in_off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w < 0)
			break; /* EPIPE: the child died; its exit status tells */
		p->in_off += (size_t)w;
	}
	end_close(&p->in);
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void close_pair(int fds[2])
{
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* posix_spawn @argv with the pipes as stdin (or /dev/null), stdout, stderr; 0 or -errno. */
static int spawn(struct proc *p, char *const argv[], int in[2], int out[2], int err[2])
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, def;
	int e;

	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&def);
	sigdelset(&def, SIGKILL);
	sigdelset(&def, SIGSTOP);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (in[0] >= 0)
		posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	e = posix_spawn(&p->pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (e)
		p->pid = -1;
	return -e;
}

/* Watch the pipes and the child; 0 or -errno. */
static int watch(struct proc *p, int timeout_ms)
{
	if (set_nonblock(p->out.fd) < 0 || set_nonblock(p->err.fd) < 0 ||
	    (p->in.fd >= 0 && set_nonblock(p->in.fd) < 0))
		return -errno;
	p->out.io = ev_io_new(p->loop, p->out.fd, EPOLLIN, on_out, p);
	p->err.io = ev_io_new(p->loop, p->err.fd, EPOLLIN, on_err, p);
	if (!p->out.io || !p->err.io)
		return -ENOMEM;
	if (p->in.fd >= 0 && !(p->in.io = ev_io_new(p->loop, p->in.fd, EPOLLOUT, on_in, p)))
		return -ENOMEM;
	p->pidfd = pidfd_open(p->pid, 0);
	if (p->pidfd >= 0) {
		p->pid_io = ev_io_new(p->loop, p->pidfd, EPOLLIN, on_pidfd, p);
		if (!p->pid_io)
			return -ENOMEM;
		/* the timer only enforces the deadline */
		return ev_timer_start(p->timer, (uint64_t)timeout_ms, POLL_MS * 50);
	}
	return ev_timer_start(p->timer, POLL_MS, POLL_MS);
}

struct proc *proc_start(struct ev_loop *loop, char *const argv[], const char *input, int timeout_ms,
                        size_t out_max, proc_cb cb, void *ctx)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	struct proc *p = calloc(1, sizeof(*p));
	int e = -ENOMEM;

	if (!p)
		return NULL;
	*p = (struct proc){ .loop = loop,
		            .cb = cb,
		            .ctx = ctx,
		            .pid = -1,
		            .pidfd = -1,
		            .out_max = out_max,
		            .in.fd = -1,
		            .out.fd = -1,
		            .err.fd = -1,
		            .res = { .status = -1, .timeout_ms = timeout_ms } };
	p->timer = ev_timer_new(loop, on_timer, p);
	if (!p->timer || (input && strbuf_add(&p->in.buf, input, strlen(input)) < 0))
		goto fail;
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
	    (input && pipe2(in, O_CLOEXEC) < 0)) {
		e = -errno;
		goto fail;
	}
	e = spawn(p, argv, in, out, err);
	if (e < 0)
		goto fail;
	p->deadline_ms = ev_now_ms() + (uint64_t)timeout_ms;
	p->out.fd = out[0];
	p->err.fd = err[0];
	p->in.fd = in[1];
	close(out[1]);
	close(err[1]);
	if (in[0] >= 0)
		close(in[0]);
	e = watch(p, timeout_ms);
	if (e < 0) {
		proc_free(p);
		errno = -e;
		return NULL;
	}
	return p;
fail:
	close_pair(in);
	close_pair(out);
	close_pair(err);
	proc_free(p);
	errno = -e;
	return NULL;
}

void proc_free(struct proc *p)
{
	if (!p)
		return;
	if (p->pid > 0 && !p->exited) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	ev_io_free(p->pid_io);
	if (p->pidfd >= 0)
		close(p->pidfd);
	end_close(&p->in);
	end_close(&p->out);
	end_close(&p->err);
	free(p->in.buf.p);
	free(p->out.buf.p);
	free(p->err.buf.p);
	ev_timer_free(p->timer);
	free(p);
}

bool proc_ok(const struct proc_result *r)
{
	return !r->timed_out && r->status >= 0 && WIFEXITED(r->status) &&
	       WEXITSTATUS(r->status) == 0 && !r->overflow;
}

int proc_describe(const struct proc_result *r, const char *what, char *buf, size_t len)
{
	char how[64];
	size_t n = r->err_len;

	if (r->timed_out)
		snprintf(how, sizeof(how), "timed out after %ds", r->timeout_ms / 1000);
	else if (r->status < 0)
		snprintf(how, sizeof(how), "exit status unknown");
	else if (WIFEXITED(r->status))
		snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(r->status));
	else if (WIFSIGNALED(r->status))
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(r->status));
	else
		snprintf(how, sizeof(how), "failed");
	while (n && (r->err[n - 1] == '\n' || r->err[n - 1] == ' '))
		n--;
	snprintf(buf, len, "%.100s: %s%s%.*s", what, how, n ? ": " : "", (int)(n > 300 ? 300 : n),
	         n ? r->err : "");
	for (char *c = buf; *c; c++)
		if (*c == '\n')
			*c = ' ';
	return r->timed_out ? -ETIMEDOUT : -EIO;
}
