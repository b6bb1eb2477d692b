/* lib/proc: children on the event loop (stdin text, captured output, status, deadline). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "lib/ev.h"
#include "lib/proc.h"

struct got {
	bool done;
	bool ok;
	int status;
	bool timed_out;
	char out[256], err[256], desc[512];
	int desc_ret;
};

static void done_cb(void *ctx, const struct proc_result *r)
{
	struct got *g = ctx;

	g->done = true;
	g->ok = proc_ok(r);
	g->status = r->status;
	g->timed_out = r->timed_out;
	snprintf(g->out, sizeof(g->out), "%s", r->out);
	snprintf(g->err, sizeof(g->err), "%s", r->err);
	g->desc_ret = proc_describe(r, "child", g->desc, sizeof(g->desc));
}

static void run(char *const argv[], const char *input, int timeout_ms, struct got *g)
{
	struct ev_loop *loop = ev_loop_new();
	struct proc *p;

	cr_assert_not_null(loop);
	memset(g, 0, sizeof(*g));
	p = proc_start(loop, argv, input, timeout_ms, 1 << 20, done_cb, g);
	cr_assert_not_null(p, "%s", strerror(errno));
	cr_assert_eq(ev_loop_run_until(loop, &g->done, 10000), 0);
	proc_free(p);
	ev_loop_free(loop);
}

#define ARGV(...) ((char *const[]){ __VA_ARGS__, NULL })

Test(proc, stdin_to_stdout)
{
	struct got g;

	run(ARGV((char *)(uintptr_t) "/bin/cat"), "line one\nline two\n", 5000, &g);
	cr_assert(g.ok);
	cr_assert_str_eq(g.out, "line one\nline two\n");
	cr_assert_str_eq(g.err, "");
}

Test(proc, status_and_stderr)
{
	struct got g;

	run(ARGV((char *)(uintptr_t) "/bin/sh", (char *)(uintptr_t) "-c",
	         (char *)(uintptr_t) "echo out; echo 'bad thing' >&2; exit 3"),
	    NULL, 5000, &g);
	cr_assert_not(g.ok);
	cr_assert(WIFEXITED(g.status) && WEXITSTATUS(g.status) == 3);
	cr_assert_str_eq(g.out, "out\n");
	cr_assert_eq(g.desc_ret, -EIO);
	cr_assert_str_eq(g.desc, "child: exit status 3: bad thing");
}

Test(proc, deadline_kills)
{
	struct got g;
	uint64_t t0 = ev_now_ms();

	run(ARGV((char *)(uintptr_t) "/bin/sleep", (char *)(uintptr_t) "30"), NULL, 300, &g);
	cr_assert(g.timed_out);
	cr_assert_not(g.ok);
	cr_assert_lt(ev_now_ms() - t0, 5000);
	cr_assert_eq(g.desc_ret, -ETIMEDOUT);
	cr_assert(strstr(g.desc, "timed out"), "%s", g.desc);
}

Test(proc, cannot_start)
{
	struct ev_loop *loop = ev_loop_new();
	struct got g;

	cr_assert_null(proc_start(loop, ARGV((char *)(uintptr_t) "/nonexistent/x"), NULL, 1000,
	                          1024, done_cb, &g));
	cr_assert_eq(errno, ENOENT);
	proc_free(NULL);
	ev_loop_free(loop);
}
