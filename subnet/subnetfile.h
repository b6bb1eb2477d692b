/*
 * The subnet file (docs/compat.md §6, default /run/flannel/subnet.env): written
 * atomically by twilld, read back by twilld (lease re-use) and twill-docker-opts.
 */
#ifndef TWILL_SUBNET_SUBNETFILE_H
#define TWILL_SUBNET_SUBNETFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "ipam/ipam.h"
#include "subnet/config.h"
#include "subnet/lease.h"

#define SUBNETFILE_DEFAULT_PATH "/run/flannel/subnet.env"

struct subnetfile {
	bool has_network;
	struct ipam_prefix network; /* FLANNEL_NETWORK */
	bool has_subnet;
	struct ipam_prefix subnet; /* FLANNEL_SUBNET: first host address / lease length */
	bool has_ipv6_network;
	struct ipam_prefix ipv6_network;
	bool has_ipv6_subnet;
	struct ipam_prefix ipv6_subnet;
	bool has_mtu;
	int mtu; /* FLANNEL_MTU */
	bool has_ipmasq;
	bool ipmasq; /* FLANNEL_IPMASQ */
};

/*
 * Write @f to @path atomically (temp file in the same directory, fsync, rename;
 * directory created 0755, file 0644) in exactly docs/compat.md §6's format and order.
 * Fields whose has_* is false are left out. 0 or -errno. Does not log.
 */
int subnetfile_write(const char *path, const struct subnetfile *f);

/*
 * Parse the file at @path. Unknown lines, comments and blank lines are ignored
 * (the file is a shell fragment; "export " and one level of quotes are accepted);
 * a malformed value of a known key is an error; the last of repeated keys wins.
 * 0, -errno of open/read (-ENOENT...), or -EINVAL (also for files over 64 KiB) with
 * the reason in @err ("line 2: FLANNEL_SUBNET: ...", without the path). *ret is
 * written only on success. Does not log.
 */
int subnetfile_read(const char *path, struct subnetfile *ret, char *err, size_t errlen);
/* The same for a buffer of @len bytes (NULs allowed: they make a known value malformed). */
int subnetfile_parse(const char *buf, size_t len, struct subnetfile *ret, char *err, size_t errlen);

/*
 * The subnet file's contents for @own under @cfg (docs/compat.md, subnet file):
 * network, first host/len of the lease, IPv6 when enabled, @mtu, @ipmasq. 0 or
 * -EINVAL (a lease too small to have a first host).
 */
int subnetfile_from_lease(const struct subnet_config *cfg, const struct lease *own, int mtu,
                          bool ipmasq, struct subnetfile *ret);

#endif
