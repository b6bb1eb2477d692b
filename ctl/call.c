/* twillctl: store calls made synchronous by running the loop until they answer. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "lib/ev.h"
#include "subnet/store.h"
#include "subnet/store_util.h"

void ctl_call_cb(void *ctx, const struct store_result *r)
{
	struct ctl_call *k = ctx;

	k->done = true;
	k->err = r->err;
	k->revision = r->revision;
	k->succeeded = r->succeeded;
	if (r->err)
		snprintf(k->errmsg, sizeof(k->errmsg), "%s",
		         r->errmsg && *r->errmsg ? r->errmsg : strerror(-r->err));
	if (r->n_kvs) {
		k->kvs = calloc(r->n_kvs, sizeof(*k->kvs));
		if (!k->kvs) {
			k->err = -ENOMEM;
			snprintf(k->errmsg, sizeof(k->errmsg), "out of memory");
			return;
		}
		for (size_t i = 0; i < r->n_kvs; i++) {
			if (store_kv_copy(&k->kvs[i], &r->kvs[i]) < 0) {
				k->err = -ENOMEM;
				snprintf(k->errmsg, sizeof(k->errmsg), "out of memory");
				break;
			}
			k->n_kvs++;
		}
	}
}

void ctl_call_clear(struct ctl_call *k)
{
	for (size_t i = 0; i < k->n_kvs; i++)
		store_kv_clear(&k->kvs[i]);
	free(k->kvs);
	memset(k, 0, sizeof(*k));
}

/* Wait for @k after the request was queued with result @queued; 0 or the error (reported). */
int ctl_call_wait(struct ctl *c, struct ctl_call *k, int queued, const char *what)
{
	int timeout = c->timeout_ms > 0 ? c->timeout_ms : 15000;

	if (queued < 0) {
		fprintf(c->err, "twillctl: %s: %s\n", what, strerror(-queued));
		return queued;
	}
	if (ev_loop_run_until(c->loop, &k->done, timeout) < 0) {
		fprintf(c->err, "twillctl: %s: no answer from %s within %d ms\n", what,
		        c->endpoints, timeout);
		return -ETIMEDOUT;
	}
	if (k->err == -ECONNREFUSED || k->err == -ETIMEDOUT || k->err == -EHOSTUNREACH ||
	    k->err == -ENETUNREACH || k->err == -EAGAIN || k->err == -ECONNRESET) {
		fprintf(c->err, "twillctl: %s: cannot reach etcd at %s: %s\n", what, c->endpoints,
		        k->errmsg);
		return k->err;
	}
	if (k->err) {
		fprintf(c->err, "twillctl: %s: %s\n", what, k->errmsg);
		return k->err;
	}
	return 0;
}

void ctl_key_path(const struct ctl *c, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", c->prefix, suffix);
}

int ctl_do_get(struct ctl *c, const char *key, struct ctl_call *k, const char *what)
{
	memset(k, 0, sizeof(*k));
	return ctl_call_wait(c, k, c->store->ops->get(c->store, key, ctl_call_cb, k), what);
}

int ctl_do_list(struct ctl *c, const char *prefix, struct ctl_call *k, const char *what)
{
	memset(k, 0, sizeof(*k));
	return ctl_call_wait(c, k, c->store->ops->list(c->store, prefix, ctl_call_cb, k), what);
}
