/*
 * The backend interface: one ops table per Backend.Type, in a static table.
 * Backends see leases, never the store. All calls come from the event loop thread.
 */
#ifndef TWILL_BACKENDS_BACKEND_H
#define TWILL_BACKENDS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipam/ipam.h"
#include "subnet/config.h"
#include "subnet/lease.h"

struct ev_loop;

/* What the daemon knows of the external (underlay) interface. */
struct be_extif {
	char name[16]; /* IFNAMSIZ */
	int ifindex;
	int mtu;
	struct ipam_addr iface_addr; /* the interface's own IPv4 address (local end of tunnels) */
	struct ipam_addr public_ip; /* advertised in the lease (== iface_addr unless --public-ip) */
	/*
	 * EnableIPv6: the IPv6 underlay. has_ipv6 is false when the network is IPv4 only;
	 * then the two addresses are unset.
	 */
	bool has_ipv6;
	struct ipam_addr
		iface_addr6; /* the interface's first global IPv6 address, or public_ipv6 */
	struct ipam_addr public_ipv6; /* PublicIPv6 of the lease (--public-ipv6 or iface_addr6) */
};

struct backend;

/*
 * Settings of the backends that come from the daemon, not from the network
 * config (all zero: the defaults). twilld reads them once from the environment
 * (be_settings_from_env) and passes them to init; backends never call getenv.
 */
struct be_settings {
	bool no_nexthops;     /* TWILL_NEXTHOPS=0: plain routes, no nexthop objects */
	bool udp_naive;       /* TWILL_UDP_NAIVE=1: one packet per syscall, one worker */
	bool udp_no_gro;      /* TWILL_UDP_NO_GRO=1: no UDP GRO on the socket */
	unsigned udp_workers; /* TWILL_UDP_WORKERS: 1..UDP_MAX_WORKERS, 0 = one per CPU (<= 4) */
	const char *udp_stats_file; /* TWILL_UDP_STATS_FILE: counters written there every 250 ms */
	bool udp_busy_poll_set;     /* TWILL_UDP_BUSY_POLL_US given: */
	unsigned udp_busy_poll_us;  /* ... workers poll this long (0..10000 us) before sleeping */
};

/*
 * Read the TWILL_* variables above from the environment into @ret (strings
 * point into the environment). 0, or -EINVAL with the reason in @err.
 */
int be_settings_from_env(struct be_settings *ret, char *err, size_t errlen);

/* Most drop reasons a backend reports in be_stats. */
#define BE_DROPS_MAX 16
/* Most underlay addresses a backend reports in be_stats.peer_drops. */
#define BE_PEER_DROPS_MAX 16

/* Counters of a backend (backend_ops.stats). */
struct be_stats {
	uint64_t reconciles; /* full comparisons of the kernel with the wanted state */
	uint64_t repairs;    /* leases whose kernel objects were found missing or changed and
			      * were restored (self-healing) */
	/* A data path in user space (udp): inner packets and bytes each way, drops by reason. */
	bool has_datapath;
	uint64_t tx_packets, tx_bytes, rx_packets, rx_bytes;
	struct {
		const char *reason; /* static text, e.g. "no_route" */
		uint64_t n;
	} drops[BE_DROPS_MAX]; /* the same reasons in the same order at every call */
	size_t n_drops;
	/* Underlay addresses the data path dropped packets from (or, IPv6 to an IPv4-only peer,
	 * for), most first: the udp backend's per-peer drop table (backends/udp_peerdrop.h). */
	struct {
		char addr[16];      /* dotted IPv4 */
		const char *reason; /* static text, one of the drops[] reasons */
		uint64_t n;
	} peer_drops[BE_PEER_DROPS_MAX];
	size_t n_peer_drops;
	/* EnableIPv6 (all zero when the backend has no IPv6 half) */
	bool v6_configured;     /* the network is dual-stack and the backend programs IPv6 */
	bool v6_working;        /* ... and its IPv6 half works now (e.g. its device is up) */
	uint64_t v6_leases;     /* remote leases whose IPv6 half is wanted in the kernel */
	uint64_t v6_objects;    /* IPv6 kernel objects wanted (routes, neighbours, fdb entries) */
	uint64_t v6_bad_leases; /* remote leases whose IPv6 half was unusable (warned once each) */
};

/*
 * Remote leases whose IPv6 half cannot be programmed (no IPv6 part in the key, no or bad
 * PublicIPv6 or BackendV6Data): their IPv4 half still is; each is warned about once.
 */
struct be_v6warn {
	char **keys; /* "<lease key> <reason>", malloc'd */
	size_t n, cap;
	uint64_t total; /* distinct (lease, reason) pairs warned about */
};

/*
 * Warn (once per lease and reason, prefixed @name) that the IPv6 half of @l is skipped
 * because @why, and count it. Returns -EINVAL (the route-set verdict for a bad half).
 */
int be_v6warn(struct be_v6warn *w, const char *name, const struct lease *l, const char *why);
/* Forget @l (its lease is gone: a new bad half warns again). */
void be_v6warn_forget(struct be_v6warn *w, const struct lease *l);
/* Frees the set; NULL-safe. */
void be_v6warn_clear(struct be_v6warn *w);

struct nl_sock;
/* Whether link @ifindex exists and is up (one netlink request; false on any error). */
bool be_link_up(struct nl_sock *sk, int ifindex);

/*
 * Room for the reason of a failed init or start (backend_ops): what failed, on which device
 * or address, the kernel's reason, and what to do when there is an obvious action.
 */
#define BE_ERR_MAX 512

/*
 * Who logs what: init and start do not log their failure; they write its one reason into the
 * caller's @err (@errlen bytes, truncated; NULL or 0: dropped) and the caller logs it, once
 * however often it retries (twilld). Failures after start (a lease the kernel refuses inside
 * a batch, a lease that is malformed, a repair that fails) are logged by the backend, with
 * the lease or object they concern, and returned only as a status: callers do not log them
 * again.
 */
struct backend_ops {
	const char *name; /* Backend.Type, e.g. "vxlan" */
	/*
	 * Read the backend options from @cfg->backend, check them, create what must
	 * exist before the lease (the VXLAN device and its MAC), and fill
	 * @ret_attrs->backend_type/backend_data for the lease (public_ip is the
	 * caller's). NULL with errno and the reason in @err on failure. @loop may be
	 * NULL (tools, benchmarks): then there is no self-healing and every change
	 * is sent at once. @set: the daemon's settings (NULL: defaults).
	 */
	struct backend *(*init)(struct ev_loop *loop, const struct subnet_config *cfg,
	                        const struct be_extif *ext, const struct be_settings *set,
	                        struct lease_attrs *ret_attrs, char *err, size_t errlen);
	/*
	 * The own lease is known: address the device, bring it up, start watching
	 * the kernel (self-healing). Returns the MTU for the subnet file, or -errno
	 * with the reason in @err. It may be called again after a failure. Leases
	 * that overlap the own subnet are ignored from then on.
	 */
	int (*start)(struct backend *be, const struct lease *own, char *err, size_t errlen);
	/*
	 * A remote lease appeared or changed (same subnet, new attributes). Queued:
	 * the whole burst reaches the kernel as one netlink batch on the next loop
	 * iteration (at once without a loop). Leases of another BackendType are
	 * ignored with a warning (0). 0 or -errno (logged by the backend); kernel
	 * refusals are logged per lease when the batch is sent.
	 */
	int (*lease_added)(struct backend *be, const struct lease *l);
	/*
	 * A remote lease is gone: its kernel objects are removed (queued as above). 0 or
	 * -errno (logged by the backend).
	 */
	int (*lease_removed)(struct backend *be, const struct lease *l);
	/*
	 * The complete set of remote leases (after start, or after a relist):
	 * bring the kernel to exactly this state now, removing stale entries, in
	 * batches. Call it once after start before relying on lease_added (the
	 * first resync is what removes stale state). 0, or -errno (logged by the
	 * backend) when the kernel could not be read or written at all (objects
	 * refused one by one are logged and do not fail the call).
	 */
	int (*resync)(struct backend *be, const struct lease *leases, size_t n);
	/* Leave kernel state in place (docs/compat.md §4) and free. NULL-safe. */
	void (*stop)(struct backend *be);
	/*
	 * Optional (NULL: the backend keeps no such counters): its counters into @ret
	 * (all fields written). Loop thread; does not log. Added last.
	 */
	void (*stats)(struct backend *be, struct be_stats *ret);
};

/* The backend for @type ("vxlan", "udp", "host-gw"), or NULL. */
const struct backend_ops *backend_lookup(const char *type);

#endif
