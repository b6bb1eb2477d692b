/*
 * The network config document stored at <prefix>/config (docs/compat.md §2):
 * parsed completely and validated, or rejected with a message that says what
 * is wrong and what would be right.
 */
#ifndef TWILL_SUBNET_CONFIG_H
#define TWILL_SUBNET_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "ipam/ipam.h"

#define SUBNET_BACKEND_TYPE_MAX 32
#define SUBNET_ERR_MAX          512

struct subnet_config {
	bool enable_ipv4;           /* default true */
	bool enable_ipv6;           /* default false */
	struct ipam_prefix network; /* network address (host bits clear) */
	uint8_t subnet_len;
	struct ipam_prefix subnet_min;   /* length subnet_len */
	struct ipam_prefix subnet_max;   /* length subnet_len */
	struct ipam_prefix ipv6_network; /* valid when enable_ipv6 */
	uint8_t ipv6_subnet_len;
	struct ipam_prefix ipv6_subnet_min;
	struct ipam_prefix ipv6_subnet_max;
	char backend_type[SUBNET_BACKEND_TYPE_MAX]; /* lower case: "udp", "vxlan", "host-gw" */
	bool backend_defaulted; /* Backend (or Backend.Type) was absent: udp chosen */
	json_t *backend;        /* the Backend object (owned reference), never NULL */
};

/*
 * Parse and validate @len bytes of JSON. Returns a new config, or NULL with a
 * human-readable reason in @err (SUBNET_ERR_MAX bytes is enough). Does not log.
 */
struct subnet_config *subnet_config_parse(const char *json, size_t len, char *err, size_t errlen);
void subnet_config_free(struct subnet_config *cfg);

/*
 * Backend option lookup, case-insensitive on the key (flannel decodes with Go's
 * case-insensitive json). NULL when absent.
 */
json_t *subnet_config_backend_opt(const struct subnet_config *cfg, const char *key);

/* True when the two configs would produce the same leases and backend (for SIGHUP). */
bool subnet_config_equal(const struct subnet_config *a, const struct subnet_config *b);

/*
 * What differs between two configs, as "Network 10.5.0.0/16 -> 10.6.0.0/16,
 * Backend.Type vxlan -> host-gw" into @buf ("" when equal). Returns @buf.
 */
char *subnet_config_diff(const struct subnet_config *a, const struct subnet_config *b, char *buf,
                         size_t len);

#endif
