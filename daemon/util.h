/* twilld's pure helpers (no I/O): lease text. */
#ifndef TWILL_DAEMON_UTIL_H
#define TWILL_DAEMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "subnet/config.h"
#include "subnet/lease.h"
#include "subnet/subnetfile.h"

/* Room for twilld_lease_describe(). */
#define TWILLD_DESCRIBE_MAX \
	(IPAM_PREFIX_STRLEN * 2 + IPAM_ADDR_STRLEN + LEASE_BACKEND_TYPE_MAX + 48)

/* "10.5.3.0/24 (public IP 192.0.2.2, backend vxlan)" into @buf. Returns @buf. */
char *twilld_lease_describe(const struct lease *l, char *buf, size_t len);

#endif
