/*
 * Name resolution off the event loop: getaddrinfo in a short-lived thread of its own, its
 * outcome handed back to the loop through an eventfd. A DNS server that does not answer
 * blocks getaddrinfo for its whole timeout (5 s per try by default): in the loop, that would
 * stop netlink events, watches, health answers and the endpoint race for as long.
 */
#ifndef TWILL_LIB_RESOLVE_H
#define TWILL_LIB_RESOLVE_H

#include <netdb.h>

struct ev_loop;
struct resolve_job;

/*
 * The outcome: @rc is getaddrinfo's (0 or an EAI_* code); on 0, @ai is the caller's to
 * freeaddrinfo(). Runs from the loop, never after resolve_cancel().
 */
typedef void (*resolve_cb)(void *ctx, int rc, struct addrinfo *ai);

/*
 * Resolve @host and @port as getaddrinfo(host, port, hints) would. NULL with errno set when no
 * thread or descriptor could be had (nothing started, @cb will not run).
 */
struct resolve_job *resolve_start(struct ev_loop *loop, const char *host, const char *port,
                                  const struct addrinfo *hints, resolve_cb cb, void *ctx);

/* No callback any more; the thread, if still resolving, cleans up after itself. Only before
 * the callback ran: the job is gone after it. */
void resolve_cancel(struct resolve_job *j);

#endif
