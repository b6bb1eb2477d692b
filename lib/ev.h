/*
 * Single-threaded epoll event loop: fd watchers, timers (one timerfd each),
 * signals (one signalfd per loop) and deferred calls. Callbacks never block.
 *
 * Watchers may be freed from any callback, including their own: the memory is
 * reclaimed at the end of the loop iteration, and a freed watcher never fires.
 */
#ifndef TWILL_LIB_EV_H
#define TWILL_LIB_EV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct ev_loop;
struct ev_io;
struct ev_timer;
struct ev_signal;

typedef void (*ev_io_cb)(struct ev_io *io, int fd, uint32_t revents, void *ctx);
typedef void (*ev_timer_cb)(struct ev_timer *t, void *ctx);
typedef void (*ev_signal_cb)(struct ev_signal *s, int signo, void *ctx);
typedef void (*ev_defer_cb)(void *ctx);

/* NULL with errno set on failure. */
struct ev_loop *ev_loop_new(void);
/* Frees the loop and every watcher still registered on it. NULL-safe. */
void ev_loop_free(struct ev_loop *loop);
/* Runs until ev_loop_stop(); 0, or -errno when epoll fails. */
int ev_loop_run(struct ev_loop *loop);
void ev_loop_stop(struct ev_loop *loop);
/* One epoll_wait (at most @timeout_ms, -1 = forever) and its dispatch; 0 or -errno. */
int ev_loop_run_once(struct ev_loop *loop, int timeout_ms);
/* Runs until *@done becomes true: 0, or -ETIMEDOUT after @timeout_ms (-1 = no limit). */
int ev_loop_run_until(struct ev_loop *loop, const bool *done, int timeout_ms);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t ev_now_ms(void);

/* Watch @fd for EPOLLIN/EPOLLOUT (level-triggered). The fd stays the caller's. */
struct ev_io *ev_io_new(struct ev_loop *loop, int fd, uint32_t events, ev_io_cb cb, void *ctx);
int ev_io_set_events(struct ev_io *io, uint32_t events);
int ev_io_fd(const struct ev_io *io);
void ev_io_free(struct ev_io *io);

struct ev_timer *ev_timer_new(struct ev_loop *loop, ev_timer_cb cb, void *ctx);
/* Fire after @after_ms (0 = on the next iteration), then every @every_ms (0 = once). */
int ev_timer_start(struct ev_timer *t, uint64_t after_ms, uint64_t every_ms);
void ev_timer_stop(struct ev_timer *t);
bool ev_timer_active(const struct ev_timer *t);
void ev_timer_free(struct ev_timer *t);

/* Blocks @signo in the calling thread and delivers it through the loop. */
struct ev_signal *ev_signal_new(struct ev_loop *loop, int signo, ev_signal_cb cb, void *ctx);
void ev_signal_free(struct ev_signal *s);

/* Call @cb(@ctx) once at the start of the next iteration; 0 or -ENOMEM. */
int ev_defer(struct ev_loop *loop, ev_defer_cb cb, void *ctx);

#endif
