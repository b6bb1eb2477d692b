/*
 * Internals shared by the etcd store's ops (store_etcd.c) and its watch
 * (etcd_watch.c). Not for other users.
 */
#ifndef TWILL_SUBNET_STORE_ETCD_INT_H
#define TWILL_SUBNET_STORE_ETCD_INT_H

#include "subnet/etcd_client.h"
#include "subnet/store.h"

struct ecall;
struct etcd_watcher;

struct etcd_store {
	struct store base;
	struct etcd_client *c;
	struct ecall *calls;
	struct etcd_watcher *watcher; /* the store's one Watch stream and its watches */
	int idle_ms;
	int probe_ms; /* < 0: no periodic probes */
};

/* etcd_watch.c */
struct store_watch *etcd_watch(struct store *st, const char *prefix, int64_t from_rev,
                               store_watch_cb cb, void *ctx);
void etcd_watch_free(struct store_watch *w);
/* The watcher of @s (created by the first watch); freed with its watches. NULL-safe. */
void etcd_watcher_free(struct etcd_watcher *wr);

#endif
