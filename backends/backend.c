/* The static table of backends by Backend.Type. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
	v = getenv("TWILL_UDP_STATS_FILE");
	set.udp_stats_file = v && *v ? v : NULL;
	*ret = set;
	return 0;
}
