/*
 * twilld's node status, served as JSON on the health port at /v1/status and printed by
 * `twillctl status`: the own lease and its expiry, the network and backend with its devices,
 * the etcd endpoint in use with its error counters and the last error, remote leases known
 * against the routes programmed in the kernel, kernel repairs, the iptables state, and the
 * udp backend's packet drops by reason. The document's fields are listed in twillctl(8).
 *
 * Two halves: status_build() turns a plain snapshot (struct status_input) into the JSON
 * document (pure, unit-tested); twilld_status_render() fills that snapshot from the
 * daemon's parts (and one netlink route dump) at request time, on the loop thread.
 */
#ifndef TWILL_DAEMON_STATUS_H
#define TWILL_DAEMON_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "backends/backend.h"
#include "ipam/ipam.h"
#include "subnet/store_stats.h"

struct store;
struct leasemgr;
struct subnet_config;
struct ipt;
struct twilld_metrics;
struct twilld_status;

#define STATUS_SCHEMA      "twill.status/v1"
#define STATUS_DEVICES_MAX 4

struct status_device {
	char name[16];
	char kind[16]; /* "vxlan", "tun", "" (a plain interface) */
	int mtu;
	bool up;
	bool present; /* false: the backend's device is missing from the kernel */
};

/* What one /v1/status answer shows; strings may be NULL (shown as null). */
struct status_input {
	int64_t now_s; /* CLOCK_REALTIME */
	bool ready;
	const char *ready_reason;
	const char *last_error; /* the daemon's last warning about its own work, "" = none */

	bool has_config;
	struct ipam_prefix network;
	unsigned subnet_len;
	bool has_ipv6_network;
	struct ipam_prefix ipv6_network;

	bool has_lease;
	bool has_ipv4, has_ipv6;
	struct ipam_prefix subnet, ipv6_subnet;
	struct ipam_addr public_ip;
	int64_t expires_at; /* 0 = never (reservation) */
	const char *subnet_file;

	const char *backend; /* Backend.Type, NULL before the config */
	bool started;
	int mtu;
	const char *ext_name;
	struct ipam_addr ext_addr;
	struct status_device devices[STATUS_DEVICES_MAX];
	size_t n_devices;

	const char *store_kind; /* "etcd", "local" */
	const char *endpoint;
	bool has_store_stats;
	struct store_stats stats;
	uint64_t now_ms; /* ev_now_ms(), for stats.last_ok_ms */

	size_t remote_leases;
	bool has_routes; /* routes_programmed known */
	size_t routes_programmed;
	const char *routes_source; /* "kernel" or "udp table" */
	uint64_t renewals, skipped;
	bool has_be_stats;
	struct be_stats be;

	bool ipt_on;
	bool masq, forward_rules, random_fully;
	const char *ipt_error; /* last sync failure, "" = none */

	/* the udp section: be.has_datapath (packets and drops by reason in be) */
};

/* The status document for @in (a new reference), or NULL with errno ENOMEM. Pure. */
json_t *status_build(const struct status_input *in);

/* Where the status finds the daemon's parts: addresses of its pointers, read per request. */
struct twilld_status_src {
	struct store *const *store;
	struct leasemgr *const *lm;
	struct subnet_config *const *cfg;
	const struct backend_ops *const *be_ops;
	struct backend *const *be;
	struct ipt *const *ipt;
	struct twilld_metrics *const *tm;
	const bool *started;
	const int *mtu;
	const struct be_extif *ext;
	const char *last_error;   /* the daemon's buffer */
	const char *ipt_last_err; /* the daemon's buffer */
	const char *subnet_file;
	bool masq, forward_rules;
};

/* A status source reading @src (copied). NULL with errno. */
struct twilld_status *twilld_status_new(const struct twilld_status_src *src);
/* NULL-safe. */
void twilld_status_free(struct twilld_status *st);
/*
 * The document as JSON text (malloc'd, newline-terminated) for the health server's
 * /v1/status (health_status_fn). 0 or -errno. Loop thread; does not log.
 */
int twilld_status_render(void *ctx, char **ret_text, size_t *ret_len);

#endif
