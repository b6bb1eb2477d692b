/*
 * twillctl internals shared by the command files: synchronous store calls, lease
 * rows, and the command table. Not an interface outside ctl/.
 */
#ifndef TWILL_CTL_CTL_INT_H
#define TWILL_CTL_CTL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#include "subnet/lease.h"

struct ctl;
struct store_kv;
struct store_result;
struct subnet_config;

/* ---- synchronous calls (call.c) ---- */

/* The answer of one store call, copied out of the callback. */
struct ctl_call {
	bool done;
	int err;
	char errmsg[512];
	int64_t revision;
	bool succeeded;
	struct store_kv *kvs;
	size_t n_kvs;
};

/* A store_cb filling the struct ctl_call @ctx. */
void ctl_call_cb(void *ctx, const struct store_result *r);
/* Free what @k holds and zero it (a zeroed @k is fine). */
void ctl_call_clear(struct ctl_call *k);
/*
 * Run the loop until @k is answered (@queued: what queueing returned); 0 or
 * -errno, reported on c->err.
 */
int ctl_call_wait(struct ctl *c, struct ctl_call *k, int queued, const char *what);
/* "<prefix>/<suffix>" into @buf. */
void ctl_key_path(const struct ctl *c, const char *suffix, char *buf, size_t len);
/* get/list @key into @k (zeroed first); as ctl_call_wait(). */
int ctl_do_get(struct ctl *c, const char *key, struct ctl_call *k, const char *what);
int ctl_do_list(struct ctl *c, const char *prefix, struct ctl_call *k, const char *what);

/*
 * The network config, parsed; NULL after a message on c->err (none for a
 * missing one with @quiet_missing).
 */
struct subnet_config *ctl_load_config(struct ctl *c, bool quiet_missing);

/* ---- lease rows (lease_rows.c) ---- */

struct ctl_row {
	struct lease l;
	const struct store_kv *kv;
	int64_t ttl; /* seconds left; -1 unknown */
};

/*
 * Parse the listed kvs (keys after @plen bytes of prefix) into rows sorted by
 * subnet, times filled; bad ones are reported and skipped.
 */
struct ctl_row *ctl_rows_of(struct ctl *c, const struct ctl_call *k, size_t plen, size_t *ret_n);
void ctl_rows_free(struct ctl_row *rows, size_t n);
/* Fill rows[i].ttl (-1 = unknown) for every row with a store lease. */
void ctl_fill_ttls(struct ctl *c, struct ctl_row *rows, size_t n);
/* "198.18.3.0/24", or both subnets of a dual-stack lease. */
void ctl_subnets_str(const struct lease *l, char *buf, size_t len);
/* Whether any of @rows has an IPv6 half (subnet or PublicIPv6): the table gets IPv6 columns. */
bool ctl_rows_dual(const struct ctl_row *rows, size_t n);
/* The backend column: the lease's BackendType, "udp" (flannel writes none), or "-". */
const char *ctl_backend_name(const struct lease *l);
/* The VXLAN VTEP MAC or "-". */
void ctl_vtep_mac(const struct lease_attrs *a, char *buf, size_t len);
/* The VTEP MAC of BackendV6Data (flannel-v6.<VNI>) or "-". */
void ctl_vtep_mac6(const struct lease_attrs *a, char *buf, size_t len);
/* "reserved", "leased", "expired" or the time left. */
void ctl_expires_str(const struct ctl_row *r, char *buf, size_t len);
/* The JSON object of `leases --json`; NULL on failure. */
json_t *ctl_row_json(const struct ctl_row *r);
/*
 * "198.18.3.0/24" or the key form into @ret and its key suffix @keybuf
 * (LEASE_KEY_MAX); -EINVAL reported.
 */
int ctl_parse_subnet(struct ctl *c, const char *arg, struct lease *ret, char *keybuf);

/* ---- the command table (commands.c) ---- */

/* Flags that only some commands take. */
enum {
	CTL_OPT_JSON = 1u << 0,
	CTL_OPT_PUBLIC_IP = 1u << 1,
	CTL_OPT_COUNT = 1u << 2,
	CTL_OPT_HEALTHZ = 1u << 3,
	CTL_OPT_PUBLIC_IPV6 = 1u << 4,
	CTL_OPT_IPV6_SUBNET = 1u << 5,
};

/* The command-specific flag values, as parsed. */
struct ctl_opts {
	bool json;
	char *public_ip;
	char *public_ipv6; /* reserve --public-ipv6 */
	char *ipv6_subnet; /* reserve --ipv6-subnet */
	int64_t count;
	char *healthz; /* status: the node's health URL */
};

struct ctl_cmd {
	const char *name;     /* "leases", or "group verb" ("config get") */
	const char *synopsis; /* arguments and flags for the usage line, e.g. "SUBNET [--json]" */
	const char *summary;  /* one line in `twillctl --help` */
	const char *help;     /* the text of `twillctl NAME --help` */
	int nargs;            /* positional arguments after the name */
	unsigned opts;        /* CTL_OPT_* it accepts */
	unsigned required;    /* CTL_OPT_* it needs (a subset of opts) */
	bool no_store;        /* runs without opening the store */
	/* Run with @args (nargs of them); the exit status, errors on c->err. */
	int (*run)(struct ctl *c, const struct ctl_opts *o, char **args);
};

/* ---- status (cmd_status.c) ---- */

/* `twillctl status` without --healthz: twilld's health port as contrib/systemd/twilld.default sets it. */
#define CTL_HEALTHZ_DEFAULT "http://127.0.0.1:8471"

/*
 * Check a /v1/status document (@len bytes from the network) and print it on @out as a table
 * or, with @json, as indented JSON. 0, or -EINVAL with the reason in @err (not JSON, not a
 * twill status document). Fields of the wrong type are shown as unknown, never trusted.
 */
int ctl_status_print(const char *body, size_t len, bool json, FILE *out, char *err, size_t errlen);

extern const struct ctl_cmd ctl_cmds[];
extern const size_t ctl_ncmds;

#endif
