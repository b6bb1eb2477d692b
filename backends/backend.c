/* The static table of backends by Backend.Type. */
#include <string.h>
#include <strings.h>

#include "backends/backend.h"
#include "backends/backends.h"
#include "backends/udp.h"

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
