/*
 * twill-docker-opts: Docker daemon options from the subnet file (docs/compat.md §7),
 * the replacement for flannel's mk-docker-opts.sh, plus a daemon.json merge.
 * Everything here is pure formatting over buffers, except dockeropts_write_atomic().
 * Nothing here logs; errors come back as -errno with a reason in @err.
 */
#ifndef TWILL_DOCKEROPTS_DOCKEROPTS_H
#define TWILL_DOCKEROPTS_DOCKEROPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "subnet/subnetfile.h"

#define DOCKEROPTS_DEFAULT_ENV_PATH "/run/docker_opts.env"
#define DOCKEROPTS_DEFAULT_KEY      "DOCKER_OPTS"

struct dockeropts_opts {
	bool individual; /* -i: DOCKER_OPT_* lines */
	bool combined;   /* -c: the KEY="..." line */
	bool ipmasq;     /* false with -m: no --ip-masq option anywhere */
	const char *key; /* -k: name of the combined variable (DOCKEROPTS_DEFAULT_KEY) */
	bool ipv6;       /* --ipv6: add Docker's IPv6 options from FLANNEL_IPV6_SUBNET */
};

/* True when @key is a shell variable name ([A-Za-z_][A-Za-z0-9_]*). */
bool dockeropts_key_valid(const char *key);

/*
 * Format the env file exactly as mk-docker-opts.sh does: one DOCKER_OPT_<X>="v"
 * line per option, sorted by name (-i), then KEY="<preset> <v1> <v2>..." (-c)
 * where <preset> is KEY's value in @envp plus a space when non-empty. Variables
 * of @envp whose name contains DOCKER_OPT_ join the options, as they do in the
 * script. @envp may be NULL (empty environment). With @o->ipv6 (twill's own,
 * docs/compat.md "Docker options"), DOCKER_OPT_IPV6="--ipv6" and
 * DOCKER_OPT_FIXED_CIDR_V6="--fixed-cidr-v6=<IPv6 subnet network/len>" join in
 * the same name order; the subnet file must then have FLANNEL_IPV6_SUBNET. On success *ret_buf is a
 * malloc'd NUL-terminated string the caller frees and *ret_len its length.
 * -EINVAL (no FLANNEL_SUBNET, no FLANNEL_IPV6_SUBNET with @o->ipv6, bad key, a
 * value that cannot be written between double quotes) or -ENOMEM, with the
 * reason in @err.
 */
int dockeropts_format_env(const struct subnetfile *sf, const struct dockeropts_opts *o,
                          const char *const *envp, char **ret_buf, size_t *ret_len, char *err,
                          size_t errlen);

/*
 * Merge "bip", "mtu" and "ip-masq" (the latter unless !@ipmasq) into the JSON
 * object in @in (NULL or blank: an empty object); with @ipv6 also "ipv6": true
 * and "fixed-cidr-v6" (the network address of FLANNEL_IPV6_SUBNET with its
 * length; -EINVAL when the subnet file has none). Keys already present keep
 * their place; every other key is kept in order. "mtu" / "ip-masq" are left as
 * they are when the subnet file has no FLANNEL_MTU / FLANNEL_IPMASQ. The result
 * is indented by 2 and ends with a newline; *ret_buf is malloc'd (caller frees).
 * -EINVAL with the reason in @err for malformed JSON or a top level that is
 * not an object; -ENOMEM.
 */
int dockeropts_merge_daemon_json(const char *in, size_t len, const struct subnetfile *sf,
                                 bool ipmasq, bool ipv6, char **ret_buf, size_t *ret_len, char *err,
                                 size_t errlen);

/*
 * Replace @path atomically with @len bytes of @buf: temp file in the same
 * directory (created 0755 with its parents when missing), fsync, rename, fsync
 * of the directory. A symlink at @path is followed (its target is replaced).
 * The new file keeps the mode of the file it replaces, else gets @mode.
 * 0 or -errno, with the failing step and path in @err.
 */
int dockeropts_write_atomic(const char *path, const char *buf, size_t len, mode_t mode, char *err,
                            size_t errlen);

#endif
