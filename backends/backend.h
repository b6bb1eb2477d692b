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
};

struct backend;

/* Counters of a backend's kernel upkeep (backend_ops.stats). */
struct be_stats {
	uint64_t reconciles; /* full comparisons of the kernel with the wanted state */
	uint64_t repairs;    /* leases whose kernel objects were found missing or changed and
			      * were restored (self-healing) */
};

struct backend_ops {
	const char *name; /* Backend.Type, e.g. "vxlan" */
	/*
	 * Read the backend options from @cfg->backend, check them, create what must
	 * exist before the lease (the VXLAN device and its MAC), and fill
	 * @ret_attrs->backend_type/backend_data for the lease (public_ip is the
	 * caller's). NULL with errno and a logged reason on failure. @loop may be
	 * NULL (tools, benchmarks): then there is no self-healing and every change
	 * is sent at once.
	 */
	struct backend *(*init)(struct ev_loop *loop, const struct subnet_config *cfg,
	                        const struct be_extif *ext, struct lease_attrs *ret_attrs);
	/*
	 * The own lease is known: address the device, bring it up, start watching
	 * the kernel (self-healing). Returns the MTU for the subnet file, or -errno
	 * (logged). Leases that overlap the own subnet are ignored from then on.
	 */
	int (*start)(struct backend *be, const struct lease *own);
	/*
	 * A remote lease appeared or changed (same subnet, new attributes). Queued:
	 * the whole burst reaches the kernel as one netlink batch on the next loop
	 * iteration (at once without a loop). Leases of another BackendType are
	 * ignored with a warning (0). 0 or -errno (logged); kernel refusals are
	 * logged per lease when the batch is sent.
	 */
	int (*lease_added)(struct backend *be, const struct lease *l);
	/* A remote lease is gone: its kernel objects are removed (queued as above). 0 or -errno. */
	int (*lease_removed)(struct backend *be, const struct lease *l);
	/*
	 * The complete set of remote leases (after start, or after a relist):
	 * bring the kernel to exactly this state now, removing stale entries, in
	 * batches. Call it once after start before relying on lease_added (the
	 * first resync is what removes stale state). 0, or -errno when the kernel
	 * could not be read or written at all (objects refused one by one are
	 * logged and do not fail the call).
	 */
	int (*resync)(struct backend *be, const struct lease *leases, size_t n);
	/* Leave kernel state in place (COMPAT: restart must not break traffic) and free. NULL-safe. */
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
