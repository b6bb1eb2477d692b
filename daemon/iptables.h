/*
 * flannel's iptables rules (docs/compat.md §8), kept in place from the event loop.
 *
 * Forward rules (filter): FORWARD -> FLANNEL-FWD, which accepts -s NETWORK and
 * -d NETWORK (comment "flanneld forward"). Masquerade (nat): POSTROUTING ->
 * FLANNEL-POSTRTG with flannel's five rules (comment "flanneld masq").
 *
 * A sync reads each table with `iptables-save -t TABLE`, compares twill's
 * chains and jumps with the wanted lines, and when anything differs rebuilds
 * them in one atomic `iptables-restore --noflush` batch (chain flushed and
 * refilled, duplicate jumps removed, a missing jump inserted first). Nothing
 * else in the tables is touched. A changed network or subnet is just a
 * difference: the old rules go away with the rebuild. The children run
 * asynchronously (pipes and a pidfd on the loop); nothing here blocks, except
 * ipt_free() reaping a child it has just killed.
 *
 * A state file records which chains twilld installed, so that turning
 * --ip-masq or --iptables-forward-rules off removes them at the next start
 * (chains it did not install, e.g. flanneld's, are left alone).
 *
 * One struct ipt handles one family: opts.family AF_INET6 gives the same
 * chains in ip6tables (ip6tables-save/-restore, multicast ff00::/8 instead of
 * 224.0.0.0/4, its own state file), as flanneld does for the IPv6 network
 * (docs/compat.md "ip6tables"); daemon/ip6tables.c runs that instance.
 * Logs at debug at most; results go to the done callback.
 */
#ifndef TWILL_DAEMON_IPTABLES_H
#define TWILL_DAEMON_IPTABLES_H

#include <stdbool.h>
#include <stddef.h>

#include "ipam/ipam.h"

struct ev_loop;
struct ipt;

#define IPT_FWD_CHAIN        "FLANNEL-FWD"
#define IPT_MASQ_CHAIN       "FLANNEL-POSTRTG"
#define IPT_FWD_COMMENT      "flanneld forward"
#define IPT_MASQ_COMMENT     "flanneld masq"
#define IPT_STATE_NAME       "twill-iptables.state" /* next to the subnet file */
#define IPT6_STATE_NAME      "twill-ip6tables.state"
#define IPT_RESYNC_S         5
#define IPT_ERR_MAX          512
#define IPT_CHILD_TIMEOUT_MS 30000

struct ipt_result {
	int err;           /* 0, or -errno: the sync failed (rules may be missing) */
	const char *msg;   /* on failure: what failed, with iptables' own message */
	unsigned repaired; /* wanted rules that were missing or wrong and were (re)installed */
	unsigned removed;  /* chains of a turned-off feature removed (state file) */
	bool first;        /* the first successful sync after ipt_set_lease() */
};

/* Called from the loop after every sync; @res is valid during the call only. */
typedef void (*ipt_done_fn)(void *ctx, const struct ipt_result *res);

struct ipt_opts {
	int family;         /* AF_INET (or 0) or AF_INET6 (ip6tables) */
	bool forward_rules; /* --iptables-forward-rules */
	bool masq;          /* --ip-masq */
	unsigned resync_s;  /* --iptables-resync: seconds between checks; 0 = no periodic check */
	const char
		*state_file; /* NULL = no state file (turned-off features are left as they are) */
	const char *path;    /* ':'-separated directories for ip(6)tables-save/-restore;
				   NULL = $PATH, then /usr/sbin:/sbin:/usr/local/sbin */
	int random_fully;    /* -1: auto (iptables >= 1.6.2; dropped if the kernel refuses it),
				   0: never, 1: always */
	ipt_done_fn done;    /* may be NULL */
	void *ctx;
};

/*
 * Look up the iptables binaries and read the state file; no rule is touched
 * before ipt_set_lease(). NULL with errno set and a reason in @err: ENOENT
 * when iptables-save/iptables-restore are missing ("iptables-restore not found
 * in ..."), EINVAL, ENOMEM. With neither feature on and nothing recorded in
 * the state file, the binaries are not required.
 */
struct ipt *ipt_new(struct ev_loop *loop, const struct ipt_opts *opts, char *err, size_t errlen);

/*
 * Set (or change) the network of the config and this node's subnet (of the
 * instance's family), and sync now; then every resync_s seconds. With neither
 * feature on, @network and @subnet may be NULL: the sync then only removes
 * the chains the state file records. 0, or -EINVAL (wrong family).
 */
int ipt_set_lease(struct ipt *ipt, const struct ipam_prefix *network,
                  const struct ipam_prefix *subnet);

/*
 * Check and repair now (asynchronously: the result goes to the done
 * callback). While a sync runs, another one is queued behind it. 0,
 * -EAGAIN before ipt_set_lease(), or -errno when the child cannot start.
 */
int ipt_sync(struct ipt *ipt);

/* True while a sync is in flight. */
bool ipt_busy(const struct ipt *ipt);

/* Whether MASQUERADE rules carry --random-fully now (after the first sync in auto mode). */
bool ipt_random_fully(const struct ipt *ipt);

/* Stop syncing; a running child is killed and reaped. The rules stay in place. NULL-safe. */
void ipt_free(struct ipt *ipt);

/*
 * The wanted rules of one table ("filter" or "nat") as ip(6)tables-save prints
 * them, one per line, jump rule first; into @buf. @network and @subnet are
 * both IPv4 or both IPv6. Pure. Returns the number of lines, or -ENOSPC, -EINVAL.
 */
int ipt_render_rules(const char *table, const struct ipam_prefix *network,
                     const struct ipam_prefix *subnet, bool random_fully, char *buf, size_t len);

/* "<dir of @subnet_file>/twill-iptables.state" into @buf; 0 or -ENAMETOOLONG. */
int ipt_state_path(const char *subnet_file, char *buf, size_t len);
/* The same with twill-ip6tables.state. */
int ipt6_state_path(const char *subnet_file, char *buf, size_t len);

#endif
