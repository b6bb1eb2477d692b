/* twillctl commands (see ctl.h). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "ctl/ctl.h"
#include "lib/ev.h"
#include "lib/flags.h"
#include "subnet/config.h"
#include "subnet/lease.h"
#include "subnet/store.h"
#include "subnet/store_flags.h"
#include "subnet/store_util.h"

/* ---- synchronous calls on the loop ---- */

struct call {
	bool done;
	int err;
	char errmsg[512];
	int64_t revision;
	bool succeeded;
	struct store_kv *kvs;
	size_t n_kvs;
};

static void call_cb(void *ctx, const struct store_result *r)
{
	struct call *k = ctx;

	k->done = true;
	k->err = r->err;
	k->revision = r->revision;
	k->succeeded = r->succeeded;
	if (r->err)
		snprintf(k->errmsg, sizeof(k->errmsg), "%s",
		         r->errmsg && *r->errmsg ? r->errmsg : strerror(-r->err));
	if (r->n_kvs) {
		k->kvs = calloc(r->n_kvs, sizeof(*k->kvs));
		if (!k->kvs) {
			k->err = -ENOMEM;
			snprintf(k->errmsg, sizeof(k->errmsg), "out of memory");
			return;
		}
		for (size_t i = 0; i < r->n_kvs; i++) {
			if (store_kv_copy(&k->kvs[i], &r->kvs[i]) < 0) {
				k->err = -ENOMEM;
				snprintf(k->errmsg, sizeof(k->errmsg), "out of memory");
				break;
			}
			k->n_kvs++;
		}
	}
}

static void call_clear(struct call *k)
{
	for (size_t i = 0; i < k->n_kvs; i++)
		store_kv_clear(&k->kvs[i]);
	free(k->kvs);
	memset(k, 0, sizeof(*k));
}

/* Wait for @k after the request was queued with result @queued; 0 or the error (reported). */
static int call_wait(struct ctl *c, struct call *k, int queued, const char *what)
{
	int timeout = c->timeout_ms > 0 ? c->timeout_ms : 15000;

	if (queued < 0) {
		fprintf(c->err, "twillctl: %s: %s\n", what, strerror(-queued));
		return queued;
	}
	if (ev_loop_run_until(c->loop, &k->done, timeout) < 0) {
		fprintf(c->err, "twillctl: %s: no answer from %s within %d ms\n", what,
		        c->endpoints, timeout);
		return -ETIMEDOUT;
	}
	if (k->err == -ECONNREFUSED || k->err == -ETIMEDOUT || k->err == -EHOSTUNREACH ||
	    k->err == -ENETUNREACH || k->err == -EAGAIN || k->err == -ECONNRESET) {
		fprintf(c->err, "twillctl: %s: cannot reach etcd at %s: %s\n", what, c->endpoints,
		        k->errmsg);
		return k->err;
	}
	if (k->err) {
		fprintf(c->err, "twillctl: %s: %s\n", what, k->errmsg);
		return k->err;
	}
	return 0;
}

static void key_path(const struct ctl *c, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", c->prefix, suffix);
}

static int do_get(struct ctl *c, const char *key, struct call *k, const char *what)
{
	memset(k, 0, sizeof(*k));
	return call_wait(c, k, c->store->ops->get(c->store, key, call_cb, k), what);
}

static int do_list(struct ctl *c, const char *prefix, struct call *k, const char *what)
{
	memset(k, 0, sizeof(*k));
	return call_wait(c, k, c->store->ops->list(c->store, prefix, call_cb, k), what);
}

/* ---- config ---- */

static int no_config(struct ctl *c, const char *key)
{
	fprintf(c->err,
	        "twillctl: no network config at %s: write one with `twillctl config set FILE`\n",
	        key);
	return 1;
}

static struct subnet_config *load_config(struct ctl *c, bool quiet_missing)
{
	char key[PATH_MAX], err[SUBNET_ERR_MAX];
	struct subnet_config *cfg;
	struct call k;

	key_path(c, "config", key, sizeof(key));
	if (do_get(c, key, &k, "reading the network config") < 0)
		return NULL;
	if (k.n_kvs == 0) {
		if (!quiet_missing)
			no_config(c, key);
		call_clear(&k);
		return NULL;
	}
	cfg = subnet_config_parse(k.kvs[0].value, k.kvs[0].value_len, err, sizeof(err));
	if (!cfg)
		fprintf(c->err, "twillctl: the network config at %s is invalid: %s\n", key, err);
	call_clear(&k);
	return cfg;
}

int ctl_config_get(struct ctl *c)
{
	char key[PATH_MAX];
	struct call k;
	size_t len;

	key_path(c, "config", key, sizeof(key));
	if (do_get(c, key, &k, "reading the network config") < 0)
		return 1;
	if (k.n_kvs == 0) {
		call_clear(&k);
		return no_config(c, key);
	}
	len = k.kvs[0].value_len;
	fwrite(k.kvs[0].value, 1, len, c->out);
	if (len == 0 || k.kvs[0].value[len - 1] != '\n')
		fputc('\n', c->out);
	call_clear(&k);
	return 0;
}

static void describe_config(struct ctl *c, const struct subnet_config *cfg, const char *what)
{
	char a[IPAM_PREFIX_STRLEN], b[IPAM_PREFIX_STRLEN], d[IPAM_PREFIX_STRLEN];

	fprintf(c->out, "%s: valid\n", what);
	if (cfg->enable_ipv4)
		fprintf(c->out, "  Network %s, SubnetLen %u, subnets %s .. %s (%" PRIu64 ")\n",
		        ipam_prefix_format(&cfg->network, a), cfg->subnet_len,
		        ipam_prefix_format(&cfg->subnet_min, b),
		        ipam_prefix_format(&cfg->subnet_max, d),
		        ipam_prefix_count(&cfg->subnet_min, &cfg->subnet_max, cfg->subnet_len));
	if (cfg->enable_ipv6)
		fprintf(c->out, "  IPv6Network %s, IPv6SubnetLen %u, subnets %s .. %s\n",
		        ipam_prefix_format(&cfg->ipv6_network, a), cfg->ipv6_subnet_len,
		        ipam_prefix_format(&cfg->ipv6_subnet_min, b),
		        ipam_prefix_format(&cfg->ipv6_subnet_max, d));
	fprintf(c->out, "  Backend %s%s\n", cfg->backend_type,
	        cfg->backend_defaulted ? " (no Backend.Type given: udp, as flannel chooses)" : "");
}

int ctl_config_validate(struct ctl *c, const char *doc, size_t len, const char *what)
{
	char err[SUBNET_ERR_MAX];
	struct subnet_config *cfg = subnet_config_parse(doc, len, err, sizeof(err));

	if (!cfg) {
		fprintf(c->err, "twillctl: %s: invalid network config: %s\n", what, err);
		return 1;
	}
	describe_config(c, cfg, what);
	subnet_config_free(cfg);
	return 0;
}

int ctl_config_set(struct ctl *c, const char *doc, size_t len, const char *what)
{
	char key[PATH_MAX], err[SUBNET_ERR_MAX];
	struct subnet_config *cfg = subnet_config_parse(doc, len, err, sizeof(err));
	struct call k = { 0 };

	if (!cfg) {
		fprintf(c->err, "twillctl: %s: invalid network config, not written: %s\n", what,
		        err);
		return 1;
	}
	subnet_config_free(cfg);
	key_path(c, "config", key, sizeof(key));
	if (call_wait(c, &k, c->store->ops->put(c->store, key, doc, len, 0, call_cb, &k),
	              "writing the network config") < 0) {
		call_clear(&k);
		return 1;
	}
	fprintf(c->out, "wrote %s (revision %" PRId64 ")\n", key, k.revision);
	call_clear(&k);
	return 0;
}

/* ---- leases ---- */

struct row {
	struct lease l;
	const struct store_kv *kv;
	int64_t ttl; /* seconds left; -1 unknown */
};

static int row_cmp(const void *a, const void *b)
{
	const struct lease *x = &((const struct row *)a)->l, *y = &((const struct row *)b)->l;
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
static void fill_ttls(struct ctl *c, struct row *rows, size_t n)
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

static void subnets_str(const struct lease *l, char *buf, size_t len)
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

/* flannel's udp backend writes no BackendType; a bare reservation has none either. */
static const char *backend_name(const struct lease *l)
{
	if (l->attrs.backend_type[0])
		return l->attrs.backend_type;
	return l->store_lease_id || l->attrs.backend_data ? "udp" : "-";
}

static void vtep_mac(const struct lease_attrs *a, char *buf, size_t len)
{
	uint32_t vni;
	uint8_t mac[6];

	if (lease_vxlan_data(a, &vni, mac) == 0)
		snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
		         mac[4], mac[5]);
	else
		snprintf(buf, len, "-");
}

static void expires_str(const struct row *r, char *buf, size_t len)
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

static json_t *row_json(const struct row *r)
{
	char sub[2 * IPAM_PREFIX_STRLEN], ip[IPAM_ADDR_STRLEN], mac[32], lid[32];
	json_t *o, *raw;

	subnets_str(&r->l, sub, sizeof(sub));
	vtep_mac(&r->l.attrs, mac, sizeof(mac));
	snprintf(lid, sizeof(lid), "%" PRId64, r->l.store_lease_id);
	raw = json_loadb(r->kv->value, r->kv->value_len, 0, NULL);
	o = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:b,s:s?,s:I,s:o}", "key", r->kv->key, "subnet", sub,
	              "public_ip", ipam_addr_format(&r->l.attrs.public_ip, ip), "backend",
	              r->l.attrs.backend_type[0] ? r->l.attrs.backend_type : NULL, "vtep_mac",
	              strcmp(mac, "-") ? mac : NULL, "reserved", r->l.store_lease_id == 0,
	              "lease_id", r->l.store_lease_id ? lid : NULL, "mod_revision",
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
static struct row *rows_of(struct ctl *c, const struct call *k, size_t plen, size_t *ret_n)
{
	struct row *rows = calloc(k->n_kvs + 1, sizeof(*rows));
	size_t n = 0;
	char err[256];

	if (!rows)
		return NULL;
	for (size_t i = 0; i < k->n_kvs; i++) {
		struct row *r = &rows[n];
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
	fill_ttls(c, rows, n);
	*ret_n = n;
	return rows;
}

static void rows_free(struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lease_clear(&rows[i].l);
	free(rows);
}

int ctl_leases(struct ctl *c, bool json)
{
	char prefix[PATH_MAX];
	struct call k;
	struct row *rows;
	size_t n;
	int ret = 0;

	key_path(c, "subnets/", prefix, sizeof(prefix));
	if (do_list(c, prefix, &k, "listing leases") < 0)
		return 1;
	rows = rows_of(c, &k, strlen(prefix), &n);
	if (!rows) {
		call_clear(&k);
		return 1;
	}
	if (json) {
		json_t *arr = json_array();
		char *s;

		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, row_json(&rows[i]));
		s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s)
			fprintf(c->out, "%s\n", s);
		else
			ret = 1;
		free(s);
		json_decref(arr);
	} else {
		fprintf(c->out, "%-20s %-16s %-8s %-18s %s\n", "SUBNET", "PUBLIC IP", "BACKEND",
		        "VTEP MAC", "EXPIRES IN");
		for (size_t i = 0; i < n; i++) {
			char sub[2 * IPAM_PREFIX_STRLEN], ip[IPAM_ADDR_STRLEN], mac[32], ex[32];

			subnets_str(&rows[i].l, sub, sizeof(sub));
			vtep_mac(&rows[i].l.attrs, mac, sizeof(mac));
			expires_str(&rows[i], ex, sizeof(ex));
			fprintf(c->out, "%-20s %-16s %-8s %-18s %s\n", sub,
			        ipam_addr_format(&rows[i].l.attrs.public_ip, ip),
			        backend_name(&rows[i].l), mac, ex);
		}
	}
	rows_free(rows, n);
	call_clear(&k);
	return ret;
}

/* "198.18.3.0/24" or "198.18.3.0-24" (also dual-stack key forms) into a lease key suffix. */
static int parse_subnet(struct ctl *c, const char *arg, struct lease *ret, char *keybuf)
{
	char tmp[LEASE_KEY_MAX];
	struct ipam_prefix p;

	memset(ret, 0, sizeof(*ret));
	if (strchr(arg, '/')) {
		if (ipam_prefix_parse(arg, &p) < 0) {
			fprintf(c->err,
			        "twillctl: bad subnet \"%s\": expected a network like 198.18.3.0/24\n",
			        arg);
			return -EINVAL;
		}
		if (!ipam_prefix_is_network(&p)) {
			struct ipam_prefix n = ipam_prefix_network(&p);
			char nb[IPAM_PREFIX_STRLEN];

			fprintf(c->err,
			        "twillctl: bad subnet \"%s\": host bits set, did you mean %s?\n",
			        arg, ipam_prefix_format(&n, nb));
			return -EINVAL;
		}
		if (p.addr.family == AF_INET) {
			ret->has_ipv4 = true;
			ret->subnet = p;
		} else {
			ret->has_ipv6 = true;
			ret->ipv6_subnet = p;
		}
	} else if (strlen(arg) >= sizeof(tmp) || lease_key_parse(arg, ret) < 0) {
		fprintf(c->err,
		        "twillctl: bad subnet \"%s\": expected a network like 198.18.3.0/24 (or the key form 198.18.3.0-24)\n",
		        arg);
		return -EINVAL;
	}
	lease_key_format(ret, keybuf);
	return 0;
}

int ctl_lease_show(struct ctl *c, const char *subnet, bool json)
{
	char suffix[LEASE_KEY_MAX], key[PATH_MAX], sub[2 * IPAM_PREFIX_STRLEN];
	char ip[IPAM_ADDR_STRLEN], mac[32], ex[32];
	struct lease l;
	struct call k;
	struct row r = { 0 };
	char err[256];
	int ret = 1;

	if (parse_subnet(c, subnet, &l, suffix) < 0)
		return 1;
	snprintf(key, sizeof(key), "%s/subnets/%s", c->prefix, suffix);
	if (do_get(c, key, &k, "reading the lease") < 0)
		return 1;
	if (k.n_kvs == 0) {
		fprintf(c->err, "twillctl: no lease for %s (no key %s)\n", subnet, key);
		goto out;
	}
	r.l = l;
	if (lease_attrs_parse(k.kvs[0].value, k.kvs[0].value_len, &r.l.attrs, err, sizeof(err)) <
	    0) {
		fprintf(c->err, "twillctl: %s holds an invalid lease: %s\n  value: %.*s\n", key,
		        err, (int)k.kvs[0].value_len, k.kvs[0].value);
		goto out;
	}
	r.kv = &k.kvs[0];
	r.l.store_lease_id = k.kvs[0].lease;
	r.l.mod_revision = k.kvs[0].mod_revision;
	fill_ttls(c, &r, 1);
	if (json) {
		json_t *o = row_json(&r);
		char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

		if (s)
			fprintf(c->out, "%s\n", s);
		free(s);
		json_decref(o);
	} else {
		subnets_str(&r.l, sub, sizeof(sub));
		vtep_mac(&r.l.attrs, mac, sizeof(mac));
		expires_str(&r, ex, sizeof(ex));
		fprintf(c->out, "Subnet:       %s\n", sub);
		fprintf(c->out, "Key:          %s\n", key);
		fprintf(c->out, "PublicIP:     %s\n", ipam_addr_format(&r.l.attrs.public_ip, ip));
		if (r.l.attrs.has_public_ipv6)
			fprintf(c->out, "PublicIPv6:   %s\n",
			        ipam_addr_format(&r.l.attrs.public_ipv6, ip));
		fprintf(c->out, "Backend:      %s\n", backend_name(&r.l));
		if (strcmp(mac, "-"))
			fprintf(c->out, "VtepMAC:      %s\n", mac);
		if (r.l.store_lease_id && r.ttl < 0)
			fprintf(c->out, "Lease:        %" PRId64 " (time left unknown)\n",
			        r.l.store_lease_id);
		else if (r.l.store_lease_id && r.ttl == 0)
			fprintf(c->out, "Lease:        %" PRId64 " (expired)\n",
			        r.l.store_lease_id);
		else if (r.l.store_lease_id)
			fprintf(c->out, "Lease:        %" PRId64 " (expires in %s)\n",
			        r.l.store_lease_id, ex);
		else
			fprintf(c->out, "Lease:        none (a reservation)\n");
		fprintf(c->out, "Revision:     %" PRId64 "\n", k.kvs[0].mod_revision);
		fprintf(c->out, "Value:        %.*s\n", (int)k.kvs[0].value_len, k.kvs[0].value);
	}
	ret = 0;
out:
	lease_clear(&r.l);
	call_clear(&k);
	return ret;
}

static bool on_boundary(const struct ipam_prefix *p, const struct ipam_prefix *net, uint8_t len)
{
	return p->len == len && ipam_prefix_is_network(p) && ipam_prefix_contains(net, p);
}

int ctl_reserve(struct ctl *c, const char *subnet, const char *public_ip)
{
	char suffix[LEASE_KEY_MAX], key[PATH_MAX + LEASE_KEY_MAX], prefix[PATH_MAX], err[256];
	char nb[IPAM_PREFIX_STRLEN], ib[IPAM_ADDR_STRLEN];
	struct subnet_config *cfg = NULL;
	struct lease want, cur = { 0 };
	struct lease_attrs attrs = { 0 };
	struct call k = { 0 }, w = { 0 };
	char *value = NULL;
	int64_t expect = 0;
	int ret = 1;

	if (parse_subnet(c, subnet, &want, suffix) < 0)
		return 1;
	if (!public_ip || ipam_addr_parse(public_ip, &attrs.public_ip) < 0 ||
	    attrs.public_ip.family != AF_INET) {
		fprintf(c->err,
		        "twillctl: reserve: --public-ip needs an IPv4 address, got \"%s\"\n",
		        public_ip ? public_ip : "");
		return 1;
	}
	cfg = load_config(c, false);
	if (!cfg)
		return 1;
	if (want.has_ipv4 &&
	    (!cfg->enable_ipv4 || !on_boundary(&want.subnet, &cfg->network, cfg->subnet_len))) {
		fprintf(c->err,
		        "twillctl: cannot reserve %s: not a /%u subnet inside the network %s\n",
		        subnet, cfg->subnet_len, ipam_prefix_format(&cfg->network, nb));
		goto out;
	}
	if (want.has_ipv6 &&
	    (!cfg->enable_ipv6 ||
	     !on_boundary(&want.ipv6_subnet, &cfg->ipv6_network, cfg->ipv6_subnet_len))) {
		fprintf(c->err,
		        "twillctl: cannot reserve %s: not a /%u subnet inside the IPv6 network %s\n",
		        subnet, cfg->ipv6_subnet_len,
		        cfg->enable_ipv6 ? ipam_prefix_format(&cfg->ipv6_network, nb) : "(none)");
		goto out;
	}
	snprintf(prefix, sizeof(prefix), "%s/subnets/", c->prefix);
	snprintf(key, sizeof(key), "%s%s", prefix, suffix);
	if (do_list(c, prefix, &k, "listing leases") < 0)
		goto out;
	for (size_t i = 0; i < k.n_kvs; i++) {
		struct lease l;
		bool same = strcmp(k.kvs[i].key, key) == 0;

		if (lease_key_parse(k.kvs[i].key + strlen(prefix), &l) < 0)
			continue;
		if (!same && !((l.has_ipv4 && want.has_ipv4 &&
		                ipam_prefix_overlaps(&l.subnet, &want.subnet)) ||
		               (l.has_ipv6 && want.has_ipv6 &&
		                ipam_prefix_overlaps(&l.ipv6_subnet, &want.ipv6_subnet))))
			continue;
		if (lease_attrs_parse(k.kvs[i].value, k.kvs[i].value_len, &l.attrs, err,
		                      sizeof(err)) < 0) {
			fprintf(c->err,
			        "twillctl: cannot reserve %s: %s holds an invalid lease (%s)\n",
			        subnet, k.kvs[i].key, err);
			goto out;
		}
		if (!same || !ipam_addr_equal(&l.attrs.public_ip, &attrs.public_ip)) {
			fprintf(c->err,
			        "twillctl: cannot reserve %s: %s is held by %s (%s); release it first\n",
			        subnet, k.kvs[i].key, ipam_addr_format(&l.attrs.public_ip, ib),
			        k.kvs[i].lease ? "a lease" : "a reservation");
			lease_clear(&l);
			goto out;
		}
		/* The holder's own lease: keep its attributes, drop the expiry. */
		lease_clear(&cur);
		cur = l;
		expect = k.kvs[i].mod_revision;
	}
	value = lease_attrs_format(expect ? &cur.attrs : &attrs);
	if (!value) {
		fprintf(c->err, "twillctl: out of memory\n");
		goto out;
	}
	if (call_wait(
		    c, &w,
		    c->store->ops->cas(c->store, key, value, strlen(value), expect, 0, call_cb, &w),
		    "writing the reservation") < 0)
		goto out;
	if (!w.succeeded) {
		fprintf(c->err, "twillctl: cannot reserve %s: %s changed meanwhile; try again\n",
		        subnet, key);
		goto out;
	}
	fprintf(c->out, "reserved %s for %s (%s)\n", subnet, public_ip, key);
	ret = 0;
out:
	free(value);
	lease_clear(&cur);
	lease_attrs_clear(&attrs);
	call_clear(&k);
	call_clear(&w);
	subnet_config_free(cfg);
	return ret;
}

int ctl_release(struct ctl *c, const char *subnet)
{
	char suffix[LEASE_KEY_MAX], key[PATH_MAX];
	struct lease l;
	struct call k = { 0 };
	int ret = 1;

	if (parse_subnet(c, subnet, &l, suffix) < 0)
		return 1;
	snprintf(key, sizeof(key), "%s/subnets/%s", c->prefix, suffix);
	if (call_wait(c, &k, c->store->ops->del(c->store, key, 0, call_cb, &k),
	              "deleting the lease") < 0)
		goto out;
	if (!k.succeeded) {
		fprintf(c->err, "twillctl: no lease for %s (no key %s)\n", subnet, key);
		goto out;
	}
	fprintf(c->out, "released %s (%s)\n", subnet, key);
	ret = 0;
out:
	call_clear(&k);
	return ret;
}

/* ---- watch ---- */

struct watcher {
	struct ctl *c;
	size_t plen;
	size_t count, max;
	int err;
	bool done;
	const bool *stop;
	int64_t next_rev;
};

static void print_event(struct watcher *w, const struct store_event *e)
{
	struct ctl *c = w->c;
	struct lease l;
	char sub[2 * IPAM_PREFIX_STRLEN], ip[IPAM_ADDR_STRLEN], mac[32], err[256];

	if (strlen(e->kv.key) <= w->plen || lease_key_parse(e->kv.key + w->plen, &l) < 0) {
		fprintf(c->err, "twillctl: skipping %s: not a subnet key\n", e->kv.key);
		return;
	}
	subnets_str(&l, sub, sizeof(sub));
	if (e->type == STORE_EV_DELETE) {
		if (e->prev_kv.key && lease_attrs_parse(e->prev_kv.value, e->prev_kv.value_len,
		                                        &l.attrs, err, sizeof(err)) == 0)
			fprintf(c->out, "removed %s %s\n", sub,
			        ipam_addr_format(&l.attrs.public_ip, ip));
		else
			fprintf(c->out, "removed %s\n", sub);
	} else {
		if (lease_attrs_parse(e->kv.value, e->kv.value_len, &l.attrs, err, sizeof(err)) <
		    0) {
			fprintf(c->err, "twillctl: skipping %s: %s\n", e->kv.key, err);
			return;
		}
		vtep_mac(&l.attrs, mac, sizeof(mac));
		l.store_lease_id = e->kv.lease;
		fprintf(c->out, "%s %s %s %s %s\n", e->kv.version <= 1 ? "added" : "changed", sub,
		        ipam_addr_format(&l.attrs.public_ip, ip), backend_name(&l), mac);
	}
	lease_clear(&l);
	fflush(c->out);
	w->count++;
}

static void watch_cb(void *ctx, int err, const struct store_event *evs, size_t n, int64_t rev)
{
	struct watcher *w = ctx;

	if (err) {
		w->err = err;
		w->done = true;
		return;
	}
	for (size_t i = 0; i < n && !(w->max && w->count >= w->max); i++)
		print_event(w, &evs[i]);
	if (rev >= w->next_rev)
		w->next_rev = rev + 1;
	if (w->max && w->count >= w->max)
		w->done = true;
}

static void stop_check(struct ev_timer *t, void *ctx)
{
	struct watcher *w = ctx;

	(void)t;
	if (w->stop && *w->stop)
		w->done = true;
}

int ctl_watch(struct ctl *c, size_t max_events, const bool *stop)
{
	char prefix[PATH_MAX];
	struct watcher w = { .c = c, .max = max_events, .stop = stop };
	struct ev_timer *t = ev_timer_new(c->loop, stop_check, &w);
	struct store_watch *sw = NULL;
	struct call k;
	int ret = 1;

	if (!t)
		return 1;
	ev_timer_start(t, 50, 50);
	snprintf(prefix, sizeof(prefix), "%s/subnets/", c->prefix);
	w.plen = strlen(prefix);
	/* A listing first: it proves the store answers, and gives the start revision. */
	if (do_list(c, prefix, &k, "listing leases") < 0)
		goto out;
	w.next_rev = k.revision + 1;
	call_clear(&k);
	while (!(stop && *stop) && !(w.max && w.count >= w.max)) {
		if (!sw) {
			sw = c->store->ops->watch(c->store, prefix, w.next_rev, watch_cb, &w);
			if (!sw) {
				fprintf(c->err, "twillctl: watch %s at %s: %s\n", prefix,
				        c->endpoints, strerror(errno));
				goto out;
			}
		}
		w.done = false;
		if (ev_loop_run_until(c->loop, &w.done, -1) < 0)
			goto out;
		if (w.err) {
			/* Resume where the stream broke; after a compaction, from now. */
			c->store->ops->watch_free(sw);
			sw = NULL;
			if (w.err == -ESTALE) {
				fprintf(c->err,
				        "twillctl: watch: history compacted, changes may have been missed; resuming\n");
				w.next_rev = 0;
			}
			w.err = 0;
		}
	}
	ret = 0;
out:
	c->store->ops->watch_free(sw);
	ev_timer_free(t);
	return ret;
}

/* ---- command line ---- */

static const char *const usage_text =
	"usage: twillctl [flags] COMMAND [args]\n"
	"\n"
	"Inspect and edit flannel's network config and leases in etcd (v3 API).\n"
	"\n"
	"commands:\n"
	"  config get                     print the network config (<prefix>/config)\n"
	"  config set FILE|-              validate a config document, then store it\n"
	"  config validate FILE|-         check a config document and say what it means\n"
	"  leases [--json]                every lease, sorted by subnet\n"
	"  lease show SUBNET [--json]     one lease in detail\n"
	"  reserve SUBNET --public-ip IP  keep SUBNET for the node IP (a key with no etcd lease)\n"
	"  release SUBNET                 delete the lease or reservation of SUBNET\n"
	"  watch                          print lease changes as they happen\n"
	"\n"
	"SUBNET is a network like 198.18.3.0/24 (or the key form 198.18.3.0-24).\n"
	"`twillctl COMMAND --help` describes one command.\n"
	"\n"
	"flags (also from the environment, like flanneld):\n";

struct cmd_help {
	const char *name;
	const char *text;
};

static const struct cmd_help cmd_helps[] = {
	{ "config get", "usage: twillctl config get\n"
	                "Print the network config document stored at <prefix>/config.\n" },
	{ "config set",
	  "usage: twillctl config set FILE|-\n"
	  "Read a network config document from FILE (or stdin for -), validate it as twilld\n"
	  "and flannel would, and store it at <prefix>/config. An invalid document is refused\n"
	  "with the reason and nothing is written.\n" },
	{ "config validate",
	  "usage: twillctl config validate FILE|-\n"
	  "Check a network config document without writing it, and print the subnet range\n"
	  "and backend it selects. Exit status 1 when it is invalid.\n" },
	{ "leases", "usage: twillctl leases [--json]\n"
	            "List every lease sorted by subnet: subnet, public IP, backend, VTEP MAC and\n"
	            "the time left (\"reserved\" for a key with no etcd lease). --json prints an\n"
	            "array of objects with the same fields and the raw lease (attrs).\n" },
	{ "lease show", "usage: twillctl lease show SUBNET [--json]\n"
	                "Print one lease in detail, with its raw flannel JSON value.\n" },
	{ "reserve",
	  "usage: twillctl reserve SUBNET --public-ip IP\n"
	  "Reserve SUBNET for the node with public IP: a lease key with no etcd lease, which\n"
	  "never expires and is never given to another node. Refused when another node holds\n"
	  "SUBNET or an overlapping subnet, or when SUBNET is not a SubnetLen subnet inside\n"
	  "the Network. The node's own current lease is turned into a reservation.\n" },
	{ "release", "usage: twillctl release SUBNET\n"
	             "Delete the lease or reservation of SUBNET. A running node whose lease it\n"
	             "was acquires one again.\n" },
	{ "watch", "usage: twillctl watch [--count N]\n"
	           "Print one line per lease change until interrupted (or N changes):\n"
	           "  added SUBNET PUBLICIP BACKEND VTEPMAC\n"
	           "  changed SUBNET PUBLICIP BACKEND VTEPMAC\n"
	           "  removed SUBNET PUBLICIP\n" },
};

static void usage(FILE *f, const struct flag_def *defs, size_t n)
{
	fputs(usage_text, f);
	flags_usage(defs, n, "FLANNELD_", f);
}

/* Read FILE or "-" (stdin) completely; NULL with a message. */
static char *read_doc(struct ctl *c, const char *path, size_t *ret_len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		fprintf(c->err, "twillctl: cannot read %s: %s\n", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		size_t got;

		if (cap - len < 4096) {
			char *nb;

			if (cap >= (size_t)1 << 24) {
				fprintf(c->err, "twillctl: %s: larger than 16 MiB\n", path);
				goto fail;
			}
			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap);
			if (!nb)
				goto fail;
			buf = nb;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(c->err, "twillctl: cannot read %s: %s\n", path, strerror(errno));
		goto fail;
	}
	if (f != stdin)
		fclose(f);
	buf[len] = '\0';
	*ret_len = len;
	return buf;
fail:
	if (f != stdin)
		fclose(f);
	free(buf);
	return NULL;
}

static void on_signal(struct ev_signal *s, int signo, void *ctx)
{
	bool *stop = ctx;

	(void)s;
	(void)signo;
	*stop = true;
}

int ctl_main(int argc, char **argv, FILE *out, FILE *err)
{
	static char dashdash[] = "--";
	struct store_flags sf;
	struct flag_def defs[STORE_FLAGS_NDEFS + 8];
	size_t ndefs = 0;
	bool json = false, help = false, version = false;
	char *public_ip = NULL;
	int64_t count = 0;
	char **args = NULL, **pos = NULL;
	int nargs = 0, npos = 0, argind = 0, ret = 2;
	char errbuf[512], pfx[256];
	struct ctl c = { .out = out, .err = err };
	const char *cmd = NULL, *sub = NULL;
	char cmdname[64];
	bool stop = false;
	struct ev_signal *sigint = NULL, *sigterm = NULL;

	store_flags_init(&sf);
	store_flags_add_defs(&sf, defs, &ndefs, sizeof(defs) / sizeof(defs[0]));
	defs[ndefs++] = (struct flag_def){ .name = "json",
		                           .type = FLAG_BOOL,
		                           .target = &json,
		                           .help = "leases, lease show: JSON output",
		                           .no_env = true };
	defs[ndefs++] = (struct flag_def){ .name = "public-ip",
		                           .type = FLAG_STRING,
		                           .target = &public_ip,
		                           .help = "reserve: the public IP of the node",
		                           .no_env = true };
	defs[ndefs++] = (struct flag_def){ .name = "count",
		                           .type = FLAG_INT,
		                           .target = &count,
		                           .help = "watch: stop after this many changes",
		                           .min = 0,
		                           .max = INT32_MAX,
		                           .no_env = true };
	defs[ndefs++] = (struct flag_def){ .name = "help",
		                           .type = FLAG_BOOL,
		                           .target = &help,
		                           .help = "show help",
		                           .no_env = true };
	defs[ndefs++] = (struct flag_def){
		.name = "h", .type = FLAG_BOOL, .target = &help, .help = "show help", .no_env = true
	};
	defs[ndefs++] = (struct flag_def){ .name = "version",
		                           .type = FLAG_BOOL,
		                           .target = &version,
		                           .help = "print the version",
		                           .no_env = true };

	/* Flags may come anywhere: move them in front of the positional arguments. */
	args = calloc((size_t)argc + 2, sizeof(*args));
	pos = calloc((size_t)argc + 1, sizeof(*pos));
	if (!args || !pos) {
		fprintf(err, "twillctl: out of memory\n");
		goto out_noflags;
	}
	args[nargs++] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			while (++i < argc)
				pos[npos++] = argv[i];
			break;
		}
		if (a[0] == '-' && a[1] != '\0') {
			const char *name = a + (a[1] == '-' ? 2 : 1);
			size_t len = strcspn(name, "=");

			args[nargs++] = argv[i];
			if (!name[len]) {
				for (size_t d = 0; d < ndefs; d++)
					if (strlen(defs[d].name) == len &&
					    strncmp(defs[d].name, name, len) == 0 &&
					    defs[d].type != FLAG_BOOL && i + 1 < argc)
						args[nargs++] = argv[++i];
			}
		} else {
			pos[npos++] = argv[i];
		}
	}
	args[nargs++] = dashdash;
	if (flags_parse(defs, ndefs, nargs, args, "FLANNELD_", &argind, errbuf, sizeof(errbuf)) <
	    0) {
		fprintf(err, "twillctl: %s\n", errbuf);
		fprintf(err, "Run `twillctl --help` for usage.\n");
		goto out;
	}
	if (version) {
		fprintf(out, "twillctl %s\n", TWILL_VERSION);
		ret = 0;
		goto out;
	}
	if (npos > 0)
		cmd = pos[0];
	if (cmd && (strcmp(cmd, "config") == 0 || strcmp(cmd, "lease") == 0)) {
		sub = npos > 1 ? pos[1] : NULL;
		snprintf(cmdname, sizeof(cmdname), "%s %s", cmd, sub ? sub : "");
	} else {
		snprintf(cmdname, sizeof(cmdname), "%s", cmd ? cmd : "");
	}
	if (!cmd || strcmp(cmd, "help") == 0) {
		bool asked = cmd || help;

		help = false; /* flags_usage() prints current values as defaults */
		usage(asked ? out : err, defs, ndefs);
		ret = asked ? 0 : 2;
		goto out;
	}
	{
		const struct cmd_help *h = NULL;

		for (size_t i = 0; i < sizeof(cmd_helps) / sizeof(cmd_helps[0]); i++)
			if (strcmp(cmd_helps[i].name, cmdname) == 0)
				h = &cmd_helps[i];
		if (!h) {
			fprintf(err, "twillctl: unknown command \"%s\"\n", cmdname);
			fprintf(err, "Run `twillctl --help` for usage.\n");
			goto out;
		}
		if (help) {
			fputs(h->text, out);
			ret = 0;
			goto out;
		}
	}
	{
		static const struct {
			const char *name;
			int nargs;
		} arity[] = { { "config get", 0 }, { "config set", 1 }, { "config validate", 1 },
			      { "leases", 0 },     { "lease show", 1 }, { "reserve", 1 },
			      { "release", 1 },    { "watch", 0 } };
		int words = sub ? 2 : 1, want = 0;

		for (size_t i = 0; i < sizeof(arity) / sizeof(arity[0]); i++)
			if (strcmp(arity[i].name, cmdname) == 0)
				want = arity[i].nargs;
		if (npos - words != want) {
			fprintf(err, "twillctl %s: expected %d argument%s, got %d\n", cmdname, want,
			        want == 1 ? "" : "s", npos - words);
			fprintf(err, "Run `twillctl %s --help` for usage.\n", cmdname);
			goto out;
		}
		if (json && strcmp(cmdname, "leases") && strcmp(cmdname, "lease show")) {
			fprintf(err, "twillctl %s: --json is not valid here\n", cmdname);
			goto out;
		}
		if (public_ip && strcmp(cmdname, "reserve")) {
			fprintf(err, "twillctl %s: --public-ip is not valid here\n", cmdname);
			goto out;
		}
		if (count && strcmp(cmdname, "watch")) {
			fprintf(err, "twillctl %s: --count is not valid here\n", cmdname);
			goto out;
		}
		if (!public_ip && strcmp(cmdname, "reserve") == 0) {
			fprintf(err, "twillctl reserve: --public-ip IP is required\n");
			goto out;
		}
	}
	ret = 1;
	if (strcmp(cmdname, "config validate") == 0) {
		size_t len;
		char *doc = read_doc(&c, pos[2], &len);

		if (doc)
			ret = ctl_config_validate(&c, doc, len,
			                          strcmp(pos[2], "-") ? pos[2] : "stdin");
		free(doc);
		goto out;
	}
	if (!store_flags_prefix(&sf, pfx, sizeof(pfx))) {
		fprintf(err, "twillctl: bad --etcd-prefix\n");
		goto out;
	}
	snprintf(c.prefix, sizeof(c.prefix), "%s", strcmp(pfx, "/") ? pfx : "");
	c.endpoints = sf.endpoints ? sf.endpoints : STORE_FLAGS_DEFAULT_ENDPOINTS;
	c.loop = ev_loop_new();
	if (!c.loop) {
		fprintf(err, "twillctl: cannot create the event loop: %s\n", strerror(errno));
		goto out;
	}
	c.store = store_flags_open(c.loop, &sf, errbuf, sizeof(errbuf));
	if (!c.store) {
		fprintf(err, "twillctl: %s\n", errbuf[0] ? errbuf : strerror(errno));
		goto out;
	}
	if (strcmp(cmdname, "config get") == 0) {
		ret = ctl_config_get(&c);
	} else if (strcmp(cmdname, "config set") == 0) {
		size_t len;
		char *doc = read_doc(&c, pos[2], &len);

		if (doc)
			ret = ctl_config_set(&c, doc, len, strcmp(pos[2], "-") ? pos[2] : "stdin");
		free(doc);
	} else if (strcmp(cmdname, "leases") == 0) {
		ret = ctl_leases(&c, json);
	} else if (strcmp(cmdname, "lease show") == 0) {
		ret = ctl_lease_show(&c, pos[2], json);
	} else if (strcmp(cmdname, "reserve") == 0) {
		ret = ctl_reserve(&c, pos[1], public_ip);
	} else if (strcmp(cmdname, "release") == 0) {
		ret = ctl_release(&c, pos[1]);
	} else if (strcmp(cmdname, "watch") == 0) {
		sigint = ev_signal_new(c.loop, SIGINT, on_signal, &stop);
		sigterm = ev_signal_new(c.loop, SIGTERM, on_signal, &stop);
		ret = ctl_watch(&c, (size_t)count, &stop);
	}
out:
	flags_free(defs, ndefs);
out_noflags:
	ev_signal_free(sigint);
	ev_signal_free(sigterm);
	store_free(c.store);
	ev_loop_free(c.loop);
	free(args);
	free(pos);
	return ret;
}
