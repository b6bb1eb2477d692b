/*
 * The endpoints of the etcd call layer (etcd_client.h): the race that picks the endpoint
 * in use, failover when it fails, and background probes of the endpoints that failed.
 * docs/etcd.md, "Endpoints and time-outs".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ev.h"
#include "lib/log.h"
#include "subnet/etcd_client_int.h"

#define REPROBE_MIN_MS 500u
#define REPROBE_MAX_MS 30000u
#define RACE_GRACE_MS  120 /* head start of earlier endpoints in a race */

/* ---- endpoints ---- */

static void set_cur(struct etcd_client *c, long ep)
{
	if (c->cur == ep)
		return;
	c->cur = ep;
	if (ep >= 0 && c->n_eps > 1)
		log_info("etcd: using endpoint %s", c->eps[ep].url);
}

static void ep_schedule_reprobe(struct etcd_client *c, size_t i)
{
	struct etcd_ep *e = &c->eps[i];

	if (e->probe)
		return;
	e->backoff_ms = e->backoff_ms ? e->backoff_ms * 2 : REPROBE_MIN_MS;
	if (e->backoff_ms > REPROBE_MAX_MS)
		e->backoff_ms = REPROBE_MAX_MS;
	ev_timer_start(e->reprobe, e->backoff_ms, 0);
}

void etcd_ep_down(struct etcd_client *c, size_t i, const char *why)
{
	struct etcd_ep *e = &c->eps[i];

	if (e->state != EP_DOWN)
		log_debug("etcd %s: %s: marked down", e->url, why);
	e->state = EP_DOWN;
	ep_schedule_reprobe(c, i);
	if (c->cur == (long)i) {
		long next = -1;

		for (size_t k = 1; k < c->n_eps && next < 0; k++) {
			size_t j = (i + k) % c->n_eps;

			if (c->eps[j].state == EP_UP)
				next = (long)j;
		}
		set_cur(c, next);
	}
}

void etcd_client_ep_failed(struct etcd_client *c, size_t ep, const char *why)
{
	if (ep < c->n_eps)
		etcd_ep_down(c, ep, why);
}

static void ep_up(struct etcd_client *c, size_t i)
{
	c->eps[i].state = EP_UP;
	c->eps[i].backoff_ms = 0;
	ev_timer_stop(c->eps[i].reprobe);
}

/* Calls and streams waiting for an endpoint or a token go on (@err 0) or count a failure. */
void etcd_client_wake(struct etcd_client *c, int err, const char *why)
{
	unsigned gen = ++c->wake_gen;
	bool again = true;

	while (again) {
		again = false;
		for (struct etcd_call *call = c->calls; call; call = call->next) {
			if (!call->waiting || call->wake_gen == gen)
				continue;
			call->wake_gen = gen;
			call->waiting = false;
			if (err)
				etcd_call_attempt_failed(call, err, why);
			else
				etcd_call_try(call);
			again = true;
			break;
		}
	}
	etcd_streams_wake(c, err, why);
}

static bool racing(const struct etcd_client *c)
{
	for (size_t k = 0; k < c->n_eps; k++)
		if (c->eps[k].probe && c->eps[k].racing)
			return true;
	return false;
}

/*
 * Choose the endpoint in use after a race answer: the first endpoint of the list that
 * answered, once every one before it has failed or the head start (RACE_GRACE_MS) of the
 * earlier ones is over, so that a healthy first endpoint stays first and a dead one costs
 * no more than the head start.
 */
static void race_decide(struct etcd_client *c)
{
	if (c->cur >= 0 && c->eps[c->cur].state == EP_UP)
		return;
	for (size_t i = 0; i < c->n_eps; i++) {
		if (c->eps[i].state == EP_UP) {
			set_cur(c, (long)i);
			etcd_client_wake(c, 0, NULL);
			return;
		}
		if (c->eps[i].state != EP_DOWN && !c->grace_over)
			return;
	}
	if (!racing(c))
		etcd_client_wake(c, c->race_err ? c->race_err : -ECONNREFUSED, c->race_why);
}

void etcd_race_grace_fire(struct ev_timer *t, void *ctx)
{
	struct etcd_client *c = ctx;

	(void)t;
	c->grace_over = true;
	race_decide(c);
}

static void race_probe_done(void *ctx, const struct etcd_answer *r)
{
	struct etcd_ep *e = ctx;
	struct etcd_client *c = e->c;
	size_t i = (size_t)(e - c->eps);

	e->probe = NULL;
	e->racing = false;
	if (r->err == 0 || (!etcd_transport_err(r->err) && r->err != -EAGAIN && r->err != -EPROTO &&
	                    r->err != -EMSGSIZE)) {
		ep_up(c, i);
	} else {
		snprintf(c->race_why, sizeof(c->race_why), "%s", r->errmsg);
		c->race_err = r->err;
		etcd_ep_down(c, i, r->errmsg);
	}
	race_decide(c);
}

static void probe_ep(struct etcd_client *c, size_t i, bool race)
{
	struct etcd_ep *e = &c->eps[i];
	struct etcd_buf b;

	if (e->probe || etcd_enc_status(&b) < 0)
		return;
	ev_timer_stop(e->reprobe);
	e->racing = race;
	e->probe = etcd_call_on(c, i, ETCD_PATH_STATUS, &b, STORE_STAT_PROBE, race_probe_done, e);
	if (!e->probe)
		ep_schedule_reprobe(c, i);
}

void etcd_ep_reprobe_fire(struct ev_timer *t, void *ctx)
{
	struct etcd_ep *e = ctx;

	(void)t;
	probe_ep(e->c, (size_t)(e - e->c->eps), false);
}

/* Ask every endpoint at once; race_decide() picks the one to use. */
static void race_start(struct etcd_client *c)
{
	if (!racing(c)) {
		c->grace_over = c->n_eps == 1;
		ev_timer_start(c->grace, RACE_GRACE_MS, 0);
	}
	for (size_t i = 0; i < c->n_eps; i++) {
		if (c->eps[i].probe)
			c->eps[i].racing = true;
		else
			probe_ep(c, i, true);
	}
}

/* The endpoint to use now, or -1 (a race is then under way: wait for wake()). */
long etcd_client_pick(struct etcd_client *c)
{
	if (c->cur >= 0 && c->eps[c->cur].state == EP_UP)
		return c->cur;
	race_start(c);
	return -1;
}
