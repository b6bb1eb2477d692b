/* twilld's pure helpers (no I/O): subnet file contents, config diffs, lease text. */
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

/*
 * The subnet file's contents for @own under @cfg (COMPAT.md §6): network,
 * first host/len of the lease, IPv6 when enabled, @mtu, @ipmasq. 0 or -EINVAL
 * (a lease too small to have a first host).
 */
int twilld_subnetfile_fill(const struct subnet_config *cfg, const struct lease *own, int mtu,
                           bool ipmasq, struct subnetfile *ret);

/*
 * What differs between two configs, as "Network 10.5.0.0/16 -> 10.6.0.0/16,
 * Backend.Type vxlan -> host-gw" into @buf ("" when equal). Returns @buf.
 */
char *twilld_config_diff(const struct subnet_config *a, const struct subnet_config *b, char *buf,
                         size_t len);

/* "10.5.3.0/24 (public IP 192.0.2.2, backend vxlan)" into @buf. Returns @buf. */
char *twilld_lease_describe(const struct lease *l, char *buf, size_t len);

#endif
