/*
 * Child processes on the event loop: run a program with some text on its stdin,
 * collect its stdout and stderr, learn its exit status, kill it at a deadline.
 * Nothing blocks and nothing here logs.
 */
#ifndef TWILL_LIB_PROC_H
#define TWILL_LIB_PROC_H

#include <stdbool.h>
#include <stddef.h>

struct ev_loop;
struct proc;

struct proc_result {
	int status;      /* waitpid() status, -1 when unknown */
	bool timed_out;  /* killed at the deadline */
	bool overflow;   /* more output than the cap: the rest was dropped */
	int timeout_ms;  /* the deadline it was given */
	const char *out; /* stdout, NUL-terminated ("" when none) */
	size_t out_len;
	const char *err; /* stderr, likewise */
	size_t err_len;
};

/* Called once, when the child has exited and closed stdout and stderr; may proc_free(). */
typedef void (*proc_cb)(void *ctx, const struct proc_result *r);

/*
 * Start @argv (argv[0] an absolute path) with the environment of this process,
 * default signal dispositions, an empty signal mask, and @input on its stdin
 * (NULL: /dev/null). Output beyond @out_max bytes per stream is dropped. After
 * @timeout_ms the child is killed. NULL with errno set when it cannot start.
 * The result passed to @cb stays valid until proc_free().
 */
struct proc *proc_start(struct ev_loop *loop, char *const argv[], const char *input, int timeout_ms,
                        size_t out_max, proc_cb cb, void *ctx);
/* Kill a child still running (SIGKILL, reaped), never call back, free. NULL-safe. */
void proc_free(struct proc *p);
/* Exited with status 0, in time, without dropped output. */
bool proc_ok(const struct proc_result *r);
/*
 * The failure as one line: "@what: exit status 1: <stderr, newlines as spaces>"
 * (or "timed out after 30s", "killed by signal 9"), into @buf. Returns
 * -ETIMEDOUT for a timeout, else -EIO.
 */
int proc_describe(const struct proc_result *r, const char *what, char *buf, size_t len);

#endif
