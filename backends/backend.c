/* The static table of backends by Backend.Type, and helpers the backends share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/nl.h"

#include "backends/backend.h"
#include "backends/backends.h"
#include "backends/udp.h" /* UDP_MAX_WORKERS */

static const struct backend_ops *const backends[] = {
	&vxlan_backend_ops,
	&hostgw_backend_ops,
	&udp_backend_ops,
};

const struct backend_ops *backend_lookup(const char *type)
{
	if (!type)
		return NULL;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcasecmp(backends[i]->name, type) == 0)
			return backends[i];
	return NULL;
}

static bool env_true(const char *name)
{
	const char *v = getenv(name);

	return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
}

int be_settings_from_env(struct be_settings *ret, char *err, size_t errlen)
{
	struct be_settings set = { 0 };
	const char *v = getenv("TWILL_NEXTHOPS");

	set.no_nexthops = v && strcmp(v, "0") == 0;
	set.udp_naive = env_true("TWILL_UDP_NAIVE");
	set.udp_no_gro = env_true("TWILL_UDP_NO_GRO");
	v = getenv("TWILL_UDP_WORKERS");
	if (v && *v) {
		char *end;
		long n = strtol(v, &end, 10);

		if (*end || n < 1 || n > UDP_MAX_WORKERS) {
			snprintf(err, errlen, "TWILL_UDP_WORKERS=%s: must be 1..%d", v,
			         UDP_MAX_WORKERS);
			return -EINVAL;
		}
		set.udp_workers = (unsigned)n;
	}
	v = getenv("TWILL_UDP_BUSY_POLL_US");
	if (v && *v) {
		char *end;
		long n = strtol(v, &end, 10);

		if (*end || n < 0 || n > 10000) {
			snprintf(err, errlen, "TWILL_UDP_BUSY_POLL_US=%s: must be 0..10000", v);
			return -EINVAL;
		}
		set.udp_busy_poll_set = true;
		set.udp_busy_poll_us = (unsigned)n;
	}
	v = getenv("TWILL_UDP_STATS_FILE");
	set.udp_stats_file = v && *v ? v : NULL;
	*ret = set;
	return 0;
}

static void warn_key(const struct lease *l, char *buf)
{
	lease_key_format(l, buf);
}

int be_v6warn(struct be_v6warn *w, const char *name, const struct lease *l, const char *why)
{
	char key[LEASE_KEY_MAX], *entry;

	warn_key(l, key);
	for (size_t i = 0; i < w->n; i++) {
		size_t kl = strlen(key);

		if (!strncmp(w->keys[i], key, kl) && w->keys[i][kl] == ' ' &&
		    !strcmp(w->keys[i] + kl + 1, why))
			return -EINVAL;
	}
	log_warnx("%s: lease %s: IPv6 half skipped (IPv4 half kept): %s", name, key, why);
	w->total++;
	if (w->n == w->cap) {
		size_t c = w->cap ? w->cap * 2 : 8;
		char **k = realloc(w->keys, c * sizeof(*k));

		if (!k)
			return -EINVAL; /* only the once-ness is lost */
		w->keys = k;
		w->cap = c;
	}
	entry = malloc(strlen(key) + strlen(why) + 2);
	if (entry) {
		sprintf(entry, "%s %s", key, why);
		w->keys[w->n++] = entry;
	}
	return -EINVAL;
}

void be_v6warn_forget(struct be_v6warn *w, const struct lease *l)
{
	char key[LEASE_KEY_MAX];
	size_t kl;

	warn_key(l, key);
	kl = strlen(key);
	for (size_t i = 0; i < w->n;) {
		if (!strncmp(w->keys[i], key, kl) && w->keys[i][kl] == ' ') {
			free(w->keys[i]);
			w->keys[i] = w->keys[--w->n];
		} else {
			i++;
		}
	}
}

void be_v6warn_clear(struct be_v6warn *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++)
		free(w->keys[i]);
	free(w->keys);
	w->keys = NULL;
	w->n = w->cap = 0;
}

bool be_link_up(struct nl_sock *sk, int ifindex)
{
	struct nl_link l;

	return sk && ifindex > 0 && nl_link_get(sk, NULL, ifindex, &l) == 0 && (l.flags & IFF_UP);
}
