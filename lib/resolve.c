/*
 * getaddrinfo in a detached thread (lib/resolve.h). The job is shared by the loop side and
 * the thread, hence the reference count: whichever lets go last closes and frees, so
 * cancelling never waits for a DNS server.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/ev.h"
#include "lib/resolve.h"

/* getaddrinfo and the NSS modules it loads need more than a token stack, far less than 8 MB */
#define RESOLVE_STACK (256 * 1024)

struct resolve_job {
	int refs; /* loop side + thread side; atomics */
	int efd;
	struct ev_io *io;
	char host[256], port[16];
	struct addrinfo hints;
	int rc;              /* written by the thread before @finished, read after it */
	struct addrinfo *ai; /* the same; the loop side takes it */
	int finished;        /* atomic: rc and ai are final */
	resolve_cb cb;
	void *ctx;
};

static void job_unref(struct resolve_job *j)
{
	if (__atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	close(j->efd);
	if (j->ai)
		freeaddrinfo(j->ai);
	free(j);
}

static void *job_run(void *arg)
{
	struct resolve_job *j = arg;
	uint64_t one = 1;

	j->rc = getaddrinfo(j->host, j->port, &j->hints, &j->ai);
	if (j->rc != 0)
		j->ai = NULL;
	__atomic_store_n(&j->finished, 1, __ATOMIC_RELEASE);
	/* an eventfd write of 8 bytes does not fail short of overflow: nothing to do if it did */
	if (write(j->efd, &one, sizeof(one)) < 0) {
	}
	job_unref(j);
	return NULL;
}

static void job_done(struct ev_io *io, int fd, uint32_t revents, void *ctx)
{
	struct resolve_job *j = ctx;
	struct addrinfo *ai;
	int rc;

	(void)io;
	(void)fd;
	(void)revents;
	if (!__atomic_load_n(&j->finished, __ATOMIC_ACQUIRE))
		return; /* cannot happen: the eventfd is written after */
	ai = j->ai;
	rc = j->rc;
	j->ai = NULL;
	ev_io_free(j->io);
	j->io = NULL;
	j->cb(j->ctx, rc, ai); /* the callback may free its owner: j is ours until the unref */
	job_unref(j);
}

static int start_thread(struct resolve_job *j)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	int r;

	if ((r = pthread_attr_init(&attr)) != 0)
		return r;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, RESOLVE_STACK);
	/* signals stay with the loop thread (the daemon's signalfd) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&t, &attr, job_run, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return r;
}

struct resolve_job *resolve_start(struct ev_loop *loop, const char *host, const char *port,
                                  const struct addrinfo *hints, resolve_cb cb, void *ctx)
{
	struct resolve_job *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return NULL;
	if (snprintf(j->host, sizeof(j->host), "%s", host) >= (int)sizeof(j->host) ||
	    snprintf(j->port, sizeof(j->port), "%s", port) >= (int)sizeof(j->port)) {
		free(j);
		errno = ENAMETOOLONG;
		return NULL;
	}
	j->hints = *hints;
	j->cb = cb;
	j->ctx = ctx;
	j->refs = 2;
	j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (j->efd < 0)
		goto fail;
	j->io = ev_io_new(loop, j->efd, EPOLLIN, job_done, j);
	if (!j->io)
		goto fail;
	r = start_thread(j);
	if (r == 0)
		return j;
	errno = r;
fail:
	r = errno;
	ev_io_free(j->io);
	if (j->efd >= 0)
		close(j->efd);
	free(j);
	errno = r;
	return NULL;
}

void resolve_cancel(struct resolve_job *j)
{
	if (!j)
		return;
	ev_io_free(j->io);
	j->io = NULL;
	job_unref(j);
}
