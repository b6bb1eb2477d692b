/*
 * The etcd connection options shared by twilld and twillctl, with flanneld's
 * flag names and FLANNELD_* environment (docs/compat.md §9), and the choice of
 * store they select: "file:///path" opens the local file store, anything else
 * is a comma-separated list of etcd endpoints.
 */
#ifndef TWILL_SUBNET_STORE_FLAGS_H
#define TWILL_SUBNET_STORE_FLAGS_H

#include <stddef.h>

#include "lib/flags.h"
#include "subnet/store.h"

#define STORE_FLAGS_DEFAULT_ENDPOINTS "http://127.0.0.1:2379"
#define STORE_FLAGS_DEFAULT_PREFIX    "/coreos.com/network"
/* Number of flag_def entries store_flags_add_defs() appends. */
#define STORE_FLAGS_NDEFS 7

struct store_flags {
	char *endpoints; /* --etcd-endpoints: comma-separated, or "file:///path"; NULL = default */
	char *prefix;    /* --etcd-prefix; NULL = default */
	char *keyfile;   /* --etcd-keyfile */
	char *certfile;  /* --etcd-certfile */
	char *cafile;    /* --etcd-cafile */
	char *username;  /* --etcd-username */
	char *password;  /* --etcd-password */
};

/*
 * Set the defaults: endpoints http://127.0.0.1:2379, prefix /coreos.com/network
 * (static arrays that flags_parse() replaces by malloc'd copies: call flags_free()
 * only after flags_parse(), see lib/flags.h), the rest NULL. NULL endpoints or
 * prefix also mean the default.
 */
void store_flags_init(struct store_flags *sf);
/*
 * Append the STORE_FLAGS_NDEFS flag definitions targeting @sf to @defs at
 * *@n (the caller's array holds @cap entries); *@n is advanced. 0, or
 * -ENOSPC when fewer than STORE_FLAGS_NDEFS entries are left.
 */
int store_flags_add_defs(struct store_flags *sf, struct flag_def *defs, size_t *n, size_t cap);
/*
 * The prefix without trailing slashes, in @buf (@len bytes): what keys are
 * built on ("<prefix>/config", "<prefix>/subnets/"), like flannel's path.Join.
 * Returns @buf, or NULL (errno EINVAL) for an empty prefix or a too small buffer.
 */
const char *store_flags_prefix(const struct store_flags *sf, char *buf, size_t len);
/*
 * Open the store @sf selects: store_local_new() for "file:///path" (a single
 * endpoint), store_etcd_new() otherwise with the endpoints split on ',' (blanks
 * trimmed, empty items dropped) and the TLS/auth options. NULL with errno and a
 * reason in @err on failure (bad endpoint list, file:// mixed with others,
 * store creation failure). Does not log.
 */
struct store *store_flags_open(struct ev_loop *loop, const struct store_flags *sf, char *err,
                               size_t errlen);

#endif
