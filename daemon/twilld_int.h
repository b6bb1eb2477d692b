/* Private to twilld (twilld.c: the wiring; twilld_ops.c: iptables, health, status). */
#ifndef TWILL_DAEMON_TWILLD_INT_H
#define TWILL_DAEMON_TWILLD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "daemon/grace.h"
#include "daemon/health.h"
#include "daemon/ip6tables.h"
#include "daemon/iptables.h"
#include "daemon/metrics_daemon.h"
#include "daemon/status.h"
#include "daemon/twilld.h"
#include "lib/ev.h"
#include "subnet/config.h"
#include "subnet/lease.h"
#include "subnet/leasemgr.h"
#include "subnet/store.h"

enum retry_what {
	RETRY_NONE,
	RETRY_CONFIG, /* fetch and check the config again */
	RETRY_INIT,   /* backend init again */
	RETRY_START,  /* backend start / subnet file again */
};

struct twilld;

/* One config fetch in flight: start-up or SIGHUP. */
struct fetch {
	struct twilld *d;
	bool hup;
	bool inflight;
};

struct twilld {
	struct ev_loop *loop;
	const struct twilld_opts *o;
	char prefix[256];
	char config_key[300];
	struct store *store;
	struct ev_signal *sig_term, *sig_int, *sig_hup;
	struct ev_timer *retry;
	enum retry_what retry_what;
	char last_err[SUBNET_ERR_MAX + 512]; /* repeated failures are logged once at warn */

	struct fetch fetch_start, fetch_hup;
	struct subnet_config *cfg;

	struct be_extif ext;
	struct be_settings be_set; /* the TWILL_* environment, read once at start */
	const struct backend_ops *be_ops;
	struct backend *be;
	struct lease_attrs attrs;
	struct leasemgr *lm;

	bool has_own;
	bool started; /* backend started and subnet file written for own */
	/* the lease manager's first listing (resync) came: its remote set is real */
	bool remote_listed;
	struct lease own;
	/* Remote leases whose withdrawal waits REMOVE_GRACE_MS (see on_removed). */
	struct grace *grace;
	/* Fingerprints of the bad keys (key + reason) already warned about (see on_skipped). */
	uint64_t *skip_seen;
	size_t n_skip_seen;
	int mtu;
	bool ready_notified;
	struct health *health;
	struct ipt *ipt;
	char ipt_last_err[IPT_ERR_MAX];
	struct ip6t *ip6t; /* set up with the network config (EnableIPv6) */
	struct twilld_metrics *tm;
	struct twilld_status *status; /* /v1/status */
	int fatal;                    /* -errno that stopped the loop, 0 for a signal */
};

/* twilld_ops.c: each 0 or -errno; see there. */
int twilld_start_ip6tables(struct twilld *d);
int twilld_start_iptables(struct twilld *d);
int twilld_start_health(struct twilld *d);

#endif
