/*
 * twillctl: inspect and edit the network config and the leases in etcd (or a
 * file:// store) with flannel's formats. The commands are library functions so
 * the unit tests can run them against a local store; main.c only calls ctl_main().
 *
 * Every command function prints its result to c->out and its errors to c->err
 * (one line that says what failed and why) and returns an exit status: 0 ok,
 * 1 failure (unreachable store, missing lease/config, refused change), 2 usage.
 */
#ifndef TWILL_CTL_CTL_H
#define TWILL_CTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct ev_loop;
struct store;

struct ctl {
	struct ev_loop *loop;
	struct store *store;
	char prefix[256];      /* without trailing '/' */
	const char *endpoints; /* as given, for error messages */
	FILE *out, *err;
	int timeout_ms; /* per request, default 15000 */
};

/* Run twillctl with @argv (flags and FLANNELD_* environment as twilld); the exit status. */
int ctl_main(int argc, char **argv, FILE *out, FILE *err);

/* Fetch a node's /v1/status from @healthz (NULL: the local default) and print it. */
int ctl_status(struct ctl *c, const char *healthz, bool json);
/* Print the config document stored at <prefix>/config. */
int ctl_config_get(struct ctl *c);
/* Validate @doc (@len bytes, named @what in messages) and store it at <prefix>/config. */
int ctl_config_set(struct ctl *c, const char *doc, size_t len, const char *what);
/* Validate @doc and print a summary of what it means (no store needed: c->store may be NULL). */
int ctl_config_validate(struct ctl *c, const char *doc, size_t len, const char *what);
/* Table of every lease sorted by subnet, or with @json an array of objects. */
int ctl_leases(struct ctl *c, bool json);
/* One lease in detail (@subnet "198.18.3.0/24" or "198.18.3.0-24"). */
int ctl_lease_show(struct ctl *c, const char *subnet, bool json);
/* Reserve @subnet for @public_ip (a key with no store lease). */
int ctl_reserve(struct ctl *c, const char *subnet, const char *public_ip);
/*
 * The same for a dual-stack network: @subnet is "198.18.3.0/24" with @ipv6_subnet
 * "2001:db8:100:3::/64", or the dual key form "198.18.3.0-24&2001:db8:100:3::-64" with
 * @ipv6_subnet NULL. @public_ipv6 (may be NULL) goes into the value as PublicIPv6.
 * With EnableIPv6 both halves are required (flanneld deletes a reservation without
 * its IPv6 subnet); without it, an IPv6 half is refused.
 */
int ctl_reserve6(struct ctl *c, const char *subnet, const char *ipv6_subnet,
                 const char *public_ip, const char *public_ipv6);
/* Delete the lease or reservation of @subnet. */
int ctl_release(struct ctl *c, const char *subnet);
/*
 * Print one line per lease change ("added SUBNET IP BACKEND MAC", "changed ...",
 * "removed SUBNET IP") until *@stop is set or @max_events lines (0 = no limit).
 */
int ctl_watch(struct ctl *c, size_t max_events, const bool *stop);

/* "23h59m", "59m5s", "42s" for @s seconds; @buf holds 32 bytes. */
char *ctl_format_duration(int64_t s, char *buf);

#endif
