/* twillctl watch (see ctl.h). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "lib/ev.h"
#include "subnet/lease.h"
#include "subnet/store.h"

/* ---- watch ---- */

struct watcher {
	struct ctl *c;
	size_t plen;
	size_t count, max;
	int err;
	bool done;
	const bool *stop;
	int64_t next_rev;
};

static void print_event(struct watcher *w, const struct store_event *e)
{
	struct ctl *c = w->c;
	struct lease l;
	char sub[2 * IPAM_PREFIX_STRLEN], ip[IPAM_ADDR_STRLEN], mac[32], err[256];

	if (strlen(e->kv.key) <= w->plen || lease_key_parse(e->kv.key + w->plen, &l) < 0) {
		fprintf(c->err, "twillctl: skipping %s: not a subnet key\n", e->kv.key);
		return;
	}
	ctl_subnets_str(&l, sub, sizeof(sub));
	if (e->type == STORE_EV_DELETE) {
		if (e->prev_kv.key && lease_attrs_parse(e->prev_kv.value, e->prev_kv.value_len,
		                                        &l.attrs, err, sizeof(err)) == 0)
			fprintf(c->out, "removed %s %s\n", sub,
			        ipam_addr_format(&l.attrs.public_ip, ip));
		else
			fprintf(c->out, "removed %s\n", sub);
	} else {
		if (lease_attrs_parse(e->kv.value, e->kv.value_len, &l.attrs, err, sizeof(err)) <
		    0) {
			fprintf(c->err, "twillctl: skipping %s: %s\n", e->kv.key, err);
			return;
		}
		ctl_vtep_mac(&l.attrs, mac, sizeof(mac));
		l.store_lease_id = e->kv.lease;
		fprintf(c->out, "%s %s %s %s %s\n", e->kv.version <= 1 ? "added" : "changed", sub,
		        ipam_addr_format(&l.attrs.public_ip, ip), ctl_backend_name(&l), mac);
	}
	lease_clear(&l);
	fflush(c->out);
	w->count++;
}

static void watch_cb(void *ctx, int err, const struct store_event *evs, size_t n, int64_t rev)
{
	struct watcher *w = ctx;

	if (err) {
		w->err = err;
		w->done = true;
		return;
	}
	for (size_t i = 0; i < n && !(w->max && w->count >= w->max); i++)
		print_event(w, &evs[i]);
	if (rev >= w->next_rev)
		w->next_rev = rev + 1;
	if (w->max && w->count >= w->max)
		w->done = true;
}

static void stop_check(struct ev_timer *t, void *ctx)
{
	struct watcher *w = ctx;

	(void)t;
	if (w->stop && *w->stop)
		w->done = true;
}

int ctl_watch(struct ctl *c, size_t max_events, const bool *stop)
{
	char prefix[PATH_MAX];
	struct watcher w = { .c = c, .max = max_events, .stop = stop };
	struct ev_timer *t = ev_timer_new(c->loop, stop_check, &w);
	struct store_watch *sw = NULL;
	struct ctl_call k;
	int ret = 1;

	if (!t)
		return 1;
	ev_timer_start(t, 50, 50);
	snprintf(prefix, sizeof(prefix), "%s/subnets/", c->prefix);
	w.plen = strlen(prefix);
	/* A listing first: it proves the store answers, and gives the start revision. */
	if (ctl_do_list(c, prefix, &k, "listing leases") < 0)
		goto out;
	w.next_rev = k.revision + 1;
	ctl_call_clear(&k);
	while (!(stop && *stop) && !(w.max && w.count >= w.max)) {
		if (!sw) {
			sw = c->store->ops->watch(c->store, prefix, w.next_rev, watch_cb, &w);
			if (!sw) {
				fprintf(c->err, "twillctl: watch %s at %s: %s\n", prefix,
				        c->endpoints, strerror(errno));
				goto out;
			}
		}
		w.done = false;
		if (ev_loop_run_until(c->loop, &w.done, -1) < 0)
			goto out;
		if (w.err) {
			/* Resume where the stream broke; after a compaction, from now. */
			c->store->ops->watch_free(sw);
			sw = NULL;
			if (w.err == -ESTALE) {
				fprintf(c->err,
				        "twillctl: watch: history compacted, changes may have been missed; resuming\n");
				w.next_rev = 0;
			}
			w.err = 0;
		}
	}
	ret = 0;
out:
	c->store->ops->watch_free(sw);
	ev_timer_free(t);
	return ret;
}
