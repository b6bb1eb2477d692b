/* twillctl: leases as table rows and JSON objects, with their time left. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "lib/ev.h"
#include "subnet/lease.h"
#include "subnet/store.h"

/* ---- leases ---- */

static int row_cmp(const void *a, const void *b)
{
	const struct lease *x = &((const struct ctl_row *)a)->l,
			   *y = &((const struct ctl_row *)b)->l;
	int r;

	if (x->has_ipv4 != y->has_ipv4)
		return x->has_ipv4 ? -1 : 1;
	if (x->has_ipv4 && (r = ipam_prefix_cmp(&x->subnet, &y->subnet)) != 0)
		return r;
	if (x->has_ipv6 != y->has_ipv6)
		return x->has_ipv6 ? 1 : -1;
	return x->has_ipv6 ? ipam_prefix_cmp(&x->ipv6_subnet, &y->ipv6_subnet) : 0;
}

char *ctl_format_duration(int64_t s, char *buf)
{
	if (s < 0)
		s = 0;
	if (s >= 86400)
		snprintf(buf, 32, "%" PRId64 "d%" PRId64 "h", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, 32, "%" PRId64 "h%" PRId64 "m", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, 32, "%" PRId64 "m%" PRId64 "s", s / 60, s % 60);
	else
		snprintf(buf, 32, "%" PRId64 "s", s);
	return buf;
}

/*
 * Time left of store leases: one timetolive per distinct lease ID, up to
 * TTL_WINDOW of them in flight on the loop at once.
 */
#define TTL_WINDOW 32

struct ttl_item {
	struct ttl_batch *b;
	int64_t id;
	int64_t ttl; /* seconds left, 0 gone, -1 unknown */
};

struct ttl_batch {
	struct ctl *c;
	struct ttl_item *items;
	size_t n, started, finished;
	bool done;      /* every started request answered, none left to start */
	bool abandoned; /* the caller gave up waiting: the last callback frees */
	bool warned;
};

static void ttl_start_more(struct ttl_batch *b);

static void ttl_batch_free(struct ttl_batch *b)
{
	if (!b)
		return;
	free(b->items);
	free(b);
}

static void ttl_cb(void *ctx, const struct store_result *r)
{
	struct ttl_item *it = ctx;
	struct ttl_batch *b = it->b;

	b->finished++;
	if (b->abandoned) {
		if (b->finished == b->started)
			ttl_batch_free(b);
		return;
	}
	if (r->err) {
		it->ttl = -1;
		if (!b->warned)
			fprintf(b->c->err,
			        "twillctl: cannot read the time left of lease %" PRId64 ": %s\n",
			        it->id, r->errmsg && *r->errmsg ? r->errmsg : strerror(-r->err));
		b->warned = true;
	} else {
		it->ttl = r->ttl > 0 ? r->ttl : 0;
	}
	ttl_start_more(b);
}

static void ttl_start_more(struct ttl_batch *b)
{
	while (b->started < b->n && b->started - b->finished < TTL_WINDOW) {
		struct ttl_item *it = &b->items[b->started];
		int r = b->c->store->ops->timetolive(b->c->store, it->id, ttl_cb, it);

		b->started++;
		if (r < 0) { /* not queued: no callback */
			b->finished++;
			it->ttl = -1;
		}
	}
	b->done = b->finished == b->n;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Fill rows[i].ttl (-1 = unknown) for every row with a store lease. */
void ctl_fill_ttls(struct ctl *c, struct ctl_row *rows, size_t n)
{
	int timeout = c->timeout_ms > 0 ? c->timeout_ms : 15000;
	struct ttl_batch *b = NULL;
	int64_t *ids = NULL;
	size_t nid = 0;

	for (size_t i = 0; i < n; i++)
		rows[i].ttl = -1;
	if (!c->store || !c->store->ops->timetolive)
		return;
	ids = calloc(n + 1, sizeof(*ids));
	b = calloc(1, sizeof(*b));
	if (!ids || !b)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (rows[i].l.store_lease_id > 0)
			ids[nid++] = rows[i].l.store_lease_id;
	if (nid == 0)
		goto out;
	qsort(ids, nid, sizeof(*ids), cmp_i64);
	b->c = c;
	b->items = calloc(nid, sizeof(*b->items));
	if (!b->items)
		goto out;
	for (size_t i = 0; i < nid; i++) {
		if (b->n && b->items[b->n - 1].id == ids[i])
			continue;
		b->items[b->n].b = b;
		b->items[b->n].id = ids[i];
		b->items[b->n].ttl = -1;
		b->n++;
	}
	ttl_start_more(b);
	if (!b->done && ev_loop_run_until(c->loop, &b->done, timeout) < 0) {
		fprintf(c->err, "twillctl: no answer about lease times from %s within %d ms\n",
		        c->endpoints, timeout);
		b->abandoned = true; /* pending callbacks still point at it */
		b = NULL;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		int64_t id = rows[i].l.store_lease_id;
		size_t lo = 0, hi = b->n;

		if (id <= 0)
			continue;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (b->items[mid].id < id)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < b->n && b->items[lo].id == id)
			rows[i].ttl = b->items[lo].ttl;
	}
out:
	ttl_batch_free(b);
	free(ids);
}

void ctl_subnets_str(const struct lease *l, char *buf, size_t len)
{
	char a[IPAM_PREFIX_STRLEN], b[IPAM_PREFIX_STRLEN];

	if (l->has_ipv4 && l->has_ipv6)
		snprintf(buf, len, "%s,%s", ipam_prefix_format(&l->subnet, a),
		         ipam_prefix_format(&l->ipv6_subnet, b));
	else if (l->has_ipv4)
		snprintf(buf, len, "%s", ipam_prefix_format(&l->subnet, a));
	else
		snprintf(buf, len, "%s", ipam_prefix_format(&l->ipv6_subnet, b));
}

bool ctl_rows_dual(const struct ctl_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (rows[i].l.has_ipv6 || rows[i].l.attrs.has_public_ipv6)
			return true;
	return false;
}

/* flannel's udp backend writes no BackendType; a bare reservation has none either. */
const char *ctl_backend_name(const struct lease *l)
{
	if (l->attrs.backend_type[0])
		return l->attrs.backend_type;
	return l->store_lease_id || l->attrs.backend_data ? "udp" : "-";
}

void ctl_vtep_mac(const struct lease_attrs *a, char *buf, size_t len)
{
	uint32_t vni;
	uint8_t mac[6];

	if (lease_vxlan_data(a, &vni, mac) == 0)
		snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
		         mac[4], mac[5]);
	else
		snprintf(buf, len, "-");
}

void ctl_vtep_mac6(const struct lease_attrs *a, char *buf, size_t len)
{
	uint32_t vni;
	uint8_t mac[6];

	if (lease_vxlan_v6_data(a, &vni, mac) == 0)
		snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
		         mac[4], mac[5]);
	else
		snprintf(buf, len, "-");
}

void ctl_expires_str(const struct ctl_row *r, char *buf, size_t len)
{
	char d[32];

	if (r->l.store_lease_id == 0)
		snprintf(buf, len, "reserved");
	else if (r->ttl < 0)
		snprintf(buf, len, "leased");
	else if (r->ttl == 0)
		snprintf(buf, len, "expired");
	else
		snprintf(buf, len, "%s", ctl_format_duration(r->ttl, d));
}

json_t *ctl_row_json(const struct ctl_row *r)
{
	char sub[IPAM_PREFIX_STRLEN], sub6[IPAM_PREFIX_STRLEN], ip[IPAM_ADDR_STRLEN];
	char ip6[IPAM_ADDR_STRLEN], mac[32], mac6[32], lid[32];
	const struct lease *l = &r->l;
	json_t *o, *raw;

	/* "subnet" is the IPv4 half (flannel's key always has one); the IPv6 half has its own. */
	ipam_prefix_format(l->has_ipv4 ? &l->subnet : &l->ipv6_subnet, sub);
	ipam_prefix_format(&l->ipv6_subnet, sub6);
	ipam_addr_format(&l->attrs.public_ipv6, ip6);
	ctl_vtep_mac(&l->attrs, mac, sizeof(mac));
	ctl_vtep_mac6(&l->attrs, mac6, sizeof(mac6));
	snprintf(lid, sizeof(lid), "%" PRId64, l->store_lease_id);
	raw = json_loadb(r->kv->value, r->kv->value_len, 0, NULL);
	o = json_pack("{s:s,s:s,s:s?,s:s,s:s?,s:s?,s:s?,s:s?,s:b,s:s?,s:I,s:o}", "key", r->kv->key,
	              "subnet", sub, "ipv6_subnet", l->has_ipv4 && l->has_ipv6 ? sub6 : NULL,
	              "public_ip", ipam_addr_format(&l->attrs.public_ip, ip), "public_ipv6",
	              l->attrs.has_public_ipv6 ? ip6 : NULL, "backend",
	              l->attrs.backend_type[0] ? l->attrs.backend_type : NULL, "vtep_mac",
	              strcmp(mac, "-") ? mac : NULL, "vtep_mac_v6", strcmp(mac6, "-") ? mac6 : NULL,
	              "reserved", l->store_lease_id == 0, "lease_id",
	              l->store_lease_id ? lid : NULL, "mod_revision",
	              (json_int_t)r->kv->mod_revision, "attrs", raw ? raw : json_null());
	if (!o)
		return NULL;
	if (r->l.store_lease_id == 0 || r->ttl < 0)
		json_object_set_new(o, "expires_in_s", json_null());
	else
		json_object_set_new(o, "expires_in_s", json_integer(r->ttl));
	return o;
}

/* Parse the listed kvs into sorted rows; bad ones are reported on c->err and skipped. */
struct ctl_row *ctl_rows_of(struct ctl *c, const struct ctl_call *k, size_t plen, size_t *ret_n)
{
	struct ctl_row *rows = calloc(k->n_kvs + 1, sizeof(*rows));
	size_t n = 0;
	char err[256];

	if (!rows)
		return NULL;
	for (size_t i = 0; i < k->n_kvs; i++) {
		struct ctl_row *r = &rows[n];
		const struct store_kv *kv = &k->kvs[i];

		if (lease_key_parse(kv->key + plen, &r->l) < 0) {
			fprintf(c->err, "twillctl: skipping %s: not a subnet key\n", kv->key);
			continue;
		}
		if (lease_attrs_parse(kv->value, kv->value_len, &r->l.attrs, err, sizeof(err)) <
		    0) {
			fprintf(c->err, "twillctl: skipping %s: %s\n", kv->key, err);
			continue;
		}
		r->kv = kv;
		r->l.store_lease_id = kv->lease;
		r->l.mod_revision = kv->mod_revision;
		r->ttl = -1;
		n++;
	}
	qsort(rows, n, sizeof(*rows), row_cmp);
	ctl_fill_ttls(c, rows, n);
	*ret_n = n;
	return rows;
}

void ctl_rows_free(struct ctl_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lease_clear(&rows[i].l);
	free(rows);
}
