/*
 * Helpers shared by the store implementations.
 */
#ifndef TWILL_SUBNET_STORE_UTIL_H
#define TWILL_SUBNET_STORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "subnet/store.h"

/* Free the members of @kv and zero it. NULL-safe. */
void store_kv_clear(struct store_kv *kv);
/* Deep copy @src into @dst (value stays NUL-terminated); 0 or -ENOMEM (dst zeroed then). */
int store_kv_copy(struct store_kv *dst, const struct store_kv *src);
/* Free res->kvs (and each kv) and zero those members; errmsg is not owned. NULL-safe. */
void store_result_clear(struct store_result *res);
/* Free an array of @n events and the array. NULL-safe. */
void store_events_free(struct store_event *evs, size_t n);
/*
 * The etcd range_end that covers every key starting with @prefix (@len bytes): the
 * prefix with its last byte incremented, trailing 0xff bytes dropped; "\0" (all keys
 * >= prefix) when nothing is left. New buffer in *@ret (*@ret_len bytes + a NUL).
 * 0 or -ENOMEM.
 */
int store_prefix_end(const char *prefix, size_t len, char **ret, size_t *ret_len);

#endif
