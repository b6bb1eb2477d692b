/*
 * The local file store's internals (store_local_new() in store.h is its public
 * face): for subnet/store_local*.c and the test hooks in
 * tests/support/store_local_test.c, never for production callers.
 */
#ifndef TWILL_SUBNET_STORE_LOCAL_INT_H
#define TWILL_SUBNET_STORE_LOCAL_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "subnet/local_file.h"
#include "subnet/local_map.h"
#include "subnet/store.h"

#define LOCAL_PAGE_SIZE 500 /* list_pages: kvs per page, as store_etcd asks etcd for */

enum op_kind {
	OP_GET,
	OP_LIST,
	OP_LIST_PAGES,
	OP_CREATE,
	OP_CAS,
	OP_PUT,
	OP_DEL,
	OP_GRANT,
	OP_KEEPALIVE,
	OP_REVOKE,
	OP_TIMETOLIVE
};

/* A queued request. */
struct op {
	enum op_kind kind;
	char *key;
	char *guard; /* OP_CREATE by create_guarded: no key under this prefix may exist */
	char *value;
	size_t len;
	int64_t ttl, expect, lease;
	store_cb cb;
	void *ctx;
	struct op *next;
};

struct store_watch {
	struct local_store *s;
	char *prefix;
	int64_t next_rev;
	int err; /* pending error to deliver */
	bool dead;
	store_watch_cb cb;
	void *ctx;
	struct store_watch *next;
};

struct local_store {
	struct store base;
	struct local_map m;
	struct local_file f;
	char endpoint[PATH_MAX + 8];
	int inofd;
	struct ev_io *ino_io;
	struct ev_timer *kick, *tick;
	struct op *q_head, *q_tail;
	struct store_watch *watches;
	size_t page_size; /* list_pages (0 = LOCAL_PAGE_SIZE) */
	int fail_err, fail_count;
	int dispatching; /* depth of user callbacks on the stack */
	bool free_pending;
};

/* The local store behind @s, or NULL when @s is another kind of store. */
struct local_store *store_local_of(struct store *s);
/* Catch up with the file and expire leases (always with @force); events go out on the next kick. */
void store_local_refresh(struct local_store *s, bool force);
/* Run the queue and deliver watch events on the next loop iteration. */
void store_local_kick(struct local_store *s);
/* Check the file and the lease deadlines every @ms. */
void store_local_set_tick(struct local_store *s, uint64_t ms);

#endif
