/* The udp backend's worker threads: start, stop, buffers, the poll loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <linux/virtio_net.h>

#include "backends/udp_int.h"
#include "lib/errfmt.h"
#include "lib/log.h"

uint64_t udp_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * Wait for work. After traffic, poll without sleeping for up to busy_poll_us: a
 * request/response (ping, RPC) then finds its answer without a wake-up of this
 * thread, which on a VM costs tens of microseconds per hop. (No sched_yield()
 * between polls: on a busy machine it hands the CPU to a hog for a whole time
 * slice, and the ping RTT grew to milliseconds.)
 */
static int worker_wait(struct udp_worker *w, struct pollfd *pfd, uint64_t *last_busy)
{
	unsigned spin = w->be->opt.busy_poll_us;
	int n;

	if (spin && *last_busy) {
		for (;;) {
			n = poll(pfd, 3, 0);
			if (n != 0)
				return n;
			if (mono_us() - *last_busy >= spin)
				break;
		}
	}
	*last_busy = 0;
	return poll(pfd, 3, -1);
}

static void *worker_main(void *arg)
{
	struct udp_worker *w = arg;
	struct pollfd pfd[3] = {
		{ .fd = w->tun_fd, .events = POLLIN },
		{ .fd = w->sock, .events = POLLIN },
		{ .fd = w->be->stop_fd, .events = POLLIN },
	};
	uint64_t last_busy = 0;

	for (;;) {
		int n = worker_wait(w, pfd, &last_busy);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[2].revents)
			break;
		if (pfd[0].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) {
			int r = udp_tun_to_wire(w);

			if (r < 0) {
				/* Detached (flannel0 deleted under us): stop reading, do not spin. */
				log_warnx(
					"udp %s: TUN queue %zu failed: %s; no more packets from it",
					UDP_DEVICE, w->idx, strerror(-r));
				pfd[0].fd = -1;
			}
		}
		if (pfd[1].revents & (POLLIN | POLLERR))
			udp_wire_to_tun(w);
		if (w->be->opt.busy_poll_us)
			last_busy = mono_us();
	}
	return NULL;
}

void udp_worker_free_bufs(struct udp_worker *w)
{
	size_t i;

	for (i = 0; i < TX_SLOTS; i++) {
		free(w->tx_buf[i]);
		w->tx_buf[i] = NULL;
	}
	for (i = 0; i < RX_SLOTS; i++) {
		free(w->rx_buf[i]);
		w->rx_buf[i] = NULL;
	}
	free(w->gso);
	free(w->tx_iov);
	free(w->seg_msgs);
	free(w->rx_pkts);
	free(w->rx_lens);
	free(w->rx_wiov);
	w->gso = NULL;
	w->tx_iov = NULL;
	w->seg_msgs = NULL;
	w->rx_pkts = NULL;
	w->rx_lens = NULL;
	w->rx_wiov = NULL;
}

int udp_worker_alloc_bufs(struct udp_worker *w)
{
	size_t i;

	for (i = 0; i < TX_SLOTS; i++)
		if (!(w->tx_buf[i] = malloc(PKT_BUF)))
			return -ENOMEM;
	for (i = 0; i < RX_SLOTS; i++)
		if (!(w->rx_buf[i] = malloc(PKT_BUF)))
			return -ENOMEM;
	w->gso = calloc(TX_SLOTS, sizeof(*w->gso));
	w->tx_iov = calloc(TX_IOVS, sizeof(*w->tx_iov));
	w->seg_msgs = calloc(UDP_GSO_BATCH, sizeof(*w->seg_msgs));
	w->rx_pkts = calloc(RX_PKTS_MAX, sizeof(*w->rx_pkts));
	w->rx_lens = calloc(RX_PKTS_MAX, sizeof(*w->rx_lens));
	w->rx_wiov = calloc(2 + GSO_MAX_SEGS, sizeof(*w->rx_wiov));
	if (!w->gso || !w->tx_iov || !w->seg_msgs || !w->rx_pkts || !w->rx_lens || !w->rx_wiov)
		return -ENOMEM;
	return 0;
}

void udp_stop_workers(struct backend *be)
{
	uint64_t one = 1;
	size_t i;

	if (be->stop_fd >= 0 && write(be->stop_fd, &one, sizeof(one)) < 0)
		log_debug("udp: stop eventfd: %s", strerror(errno));
	for (i = 0; i < be->nworkers; i++) {
		if (be->workers[i].started)
			pthread_join(be->workers[i].thr, NULL);
		be->workers[i].started = false;
	}
	be->running = false;
}

int udp_start_workers(struct backend *be, char *err, size_t errlen)
{
	size_t i;
	int r;

	for (i = 0; i < be->nworkers; i++) {
		struct udp_worker *w = &be->workers[i];

		w->icmp_tokens = ICMP_BURST;
		w->icmp_last_ms = udp_mono_ms();
		r = pthread_create(&w->thr, NULL, worker_main, w);
		if (r != 0) {
			errfmt(err, errlen, "udp: cannot start worker thread %zu: %s", i,
			       strerror(r));
			udp_stop_workers(be);
			return -r;
		}
		w->started = true;
	}
	be->running = true;
	return 0;
}
