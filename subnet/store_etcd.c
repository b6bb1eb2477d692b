/*
 * The store on etcd v3 through its JSON gateway (see ../shared/ETCD.md).
 *
 * Unary calls (struct ecall) run as a small state machine: optional
 * authentication, then one or more HTTP POSTs (create: grant, txn, revoke of
 * the unused lease). Each attempt goes to the endpoint in use; a transport
 * failure or HTTP 503 moves the store to the next endpoint and retries with a
 * capped backoff, within ~3 rounds over the endpoints and 3x the request timeout.
 * Watches are one POST each; a broken stream is resumed from the last
 * delivered revision + 1 on the next endpoint.
 *
 * Watch liveness: a frozen member accepts connections and then says nothing,
 * exactly like a quiet healthy one. A watch silent for probe_ms gets a probe:
 * a linearizable count_only range of its key on the watch's own endpoint, with
 * the request timeout. An HTTP answer below 500 keeps the stream; a transport
 * failure or 5xx reopens it on the next endpoint. A unary call that times out
 * on the endpoint of a watch probes that watch at once, and TIMEOUTS_MOVE
 * consecutive timeouts there move it without waiting.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "lib/base64.h"
#include "lib/errfmt.h"
#include "lib/ev.h"
#include "lib/http.h"
#include "lib/log.h"
#include "subnet/store.h"
#include "subnet/store_stats.h"
#include "subnet/store_util.h"

#define BACKOFF_MIN_MS     50u
#define BACKOFF_MAX_MS     2000u
#define ROUNDS             3
#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_IDLE_MS    660000 /* etcd's default progress interval (10 min) + 1 min */
#define DEFAULT_PROBE_MS   10000
#define TIMEOUTS_MOVE      2 /* consecutive unary timeouts on an endpoint that move its watches */
#define WATCH_MAX_LINE     (16u << 20)
#define LIST_PAGE          500 /* kvs per range request of a listing */

/* ------------------------------------------------------------------------ */
/* JSON helpers (pure)                                                       */

/* A 64-bit integer field: absent/null = 0, a JSON string or number. */
static int j_i64(const json_t *o, const char *name, int64_t *out)
{
	const json_t *v = json_object_get(o, name);
	const char *s;
	char *end;
	long long x;

	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return -EPROTO;
	s = json_string_value(v);
	if (!*s)
		return 0;
	errno = 0;
	x = strtoll(s, &end, 10);
	if (errno || *end || end == s)
		return -EPROTO;
	*out = x;
	return 0;
}

static int j_bool(const json_t *o, const char *name, bool *out)
{
	const json_t *v = json_object_get(o, name);

	*out = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return -EPROTO;
	*out = json_is_true(v);
	return 0;
}

/* A bytes field: absent = "" (allocated). */
static int j_bytes(const json_t *o, const char *name, char **out, size_t *out_len)
{
	const json_t *v = json_object_get(o, name);

	*out = NULL;
	*out_len = 0;
	if (!v || json_is_null(v)) {
		*out = strdup("");
		return *out ? 0 : -ENOMEM;
	}
	if (!json_is_string(v))
		return -EPROTO;
	switch (base64_decode(json_string_value(v), json_string_length(v), out, out_len)) {
	case 0:
		return 0;
	case -ENOMEM:
		return -ENOMEM;
	default:
		return -EPROTO;
	}
}

/* 0, 1 = skip this kv (a key with a NUL byte), -EPROTO. */
static int parse_kv(const json_t *o, struct store_kv *kv, char *errbuf, size_t errlen)
{
	size_t klen;
	int r;

	memset(kv, 0, sizeof(*kv));
	if (!json_is_object(o)) {
		errfmt(errbuf, errlen, "kv is not an object");
		return -EPROTO;
	}
	r = j_bytes(o, "key", &kv->key, &klen);
	if (r < 0) {
		errfmt(errbuf, errlen, "bad kv key");
		goto fail;
	}
	r = j_bytes(o, "value", &kv->value, &kv->value_len);
	if (r < 0) {
		errfmt(errbuf, errlen, "bad kv value");
		goto fail;
	}
	if (j_i64(o, "create_revision", &kv->create_revision) < 0 ||
	    j_i64(o, "mod_revision", &kv->mod_revision) < 0 ||
	    j_i64(o, "version", &kv->version) < 0 || j_i64(o, "lease", &kv->lease) < 0) {
		errfmt(errbuf, errlen, "bad kv number");
		r = -EPROTO;
		goto fail;
	}
	if (klen == 0 || strlen(kv->key) != klen) {
		store_kv_clear(kv);
		return 1;
	}
	return 0;
fail:
	store_kv_clear(kv);
	return r == -ENOMEM ? -ENOMEM : -EPROTO;
}

static int parse_kvs(const json_t *arr, struct store_kv **ret, size_t *ret_n, char *errbuf,
                     size_t errlen)
{
	struct store_kv *kvs;
	size_t n = 0;

	*ret = NULL;
	*ret_n = 0;
	if (!arr || json_is_null(arr))
		return 0;
	if (!json_is_array(arr)) {
		errfmt(errbuf, errlen, "kvs is not an array");
		return -EPROTO;
	}
	if (json_array_size(arr) == 0)
		return 0;
	kvs = calloc(json_array_size(arr), sizeof(*kvs));
	if (!kvs)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		int r = parse_kv(json_array_get(arr, i), &kvs[n], errbuf, errlen);

		if (r < 0) {
			for (size_t j = 0; j < n; j++)
				store_kv_clear(&kvs[j]);
			free(kvs);
			return r;
		}
		if (r == 0)
			n++;
	}
	if (n == 0) {
		free(kvs);
		kvs = NULL;
	}
	*ret = kvs;
	*ret_n = n;
	return 0;
}

static int header_revision(const json_t *o, int64_t *rev)
{
	const json_t *h = json_object_get(o, "header");

	*rev = 0;
	if (!h || json_is_null(h))
		return 0;
	if (!json_is_object(h))
		return -EPROTO;
	return j_i64(h, "revision", rev);
}

static json_t *load(const char *buf, size_t len, char *errbuf, size_t errlen)
{
	json_error_t jerr;
	json_t *root;

	if (!buf) {
		errfmt(errbuf, errlen, "empty reply");
		return NULL;
	}
	root = json_loadb(buf, len, JSON_ALLOW_NUL, &jerr);
	if (!root) {
		errfmt(errbuf, errlen, "bad JSON reply: %s", jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		errfmt(errbuf, errlen, "reply is not a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}

static int grpc_to_errno(long code)
{
	switch (code) {
	case 16:
		return -EPERM;
	case 7:
		return -EACCES;
	case 5:
		return -ENOENT;
	case 11:
		return -ESTALE;
	case 3:
		return -EINVAL;
	case 6:
	case 9:
		return -EEXIST;
	case 14:
	case 4:
		return -EAGAIN;
	default:
		return -EIO;
	}
}

/* A printable excerpt of a text body. */
static void text_excerpt(const char *buf, size_t len, char *out, size_t outlen)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n + 1 < outlen && n < 200; i++) {
		char c = buf[i];

		if (c == '\n' || c == '\r')
			break;
		out[n++] = (c >= 0x20 && c < 0x7f) ? c : '?';
	}
	out[n] = '\0';
}

int store_etcd_parse_error(long status, const char *buf, size_t len, char *errbuf, size_t errlen)
{
	char msg[256] = "";
	long code = -1;
	json_t *root = NULL;
	int r;

	if (buf && len) {
		json_error_t jerr;

		root = json_loadb(buf, len, JSON_ALLOW_NUL, &jerr);
	}
	if (json_is_object(root)) {
		const json_t *e = json_object_get(root, "error");

		if (json_is_string(e)) {
			int64_t c64;

			snprintf(msg, sizeof(msg), "%s", json_string_value(e));
			if (j_i64(root, "code", &c64) == 0 && json_object_get(root, "code"))
				code = (long)c64;
		} else if (json_is_object(e)) {
			const json_t *m = json_object_get(e, "message");
			int64_t c64, h64;

			if (json_is_string(m))
				snprintf(msg, sizeof(msg), "%s", json_string_value(m));
			if (j_i64(e, "grpc_code", &c64) == 0 && json_object_get(e, "grpc_code"))
				code = (long)c64;
			if (status == 200 && j_i64(e, "http_code", &h64) == 0 && h64 > 0 &&
			    h64 < 1000)
				status = (long)h64;
		}
	} else if (buf && len) {
		text_excerpt(buf, len, msg, sizeof(msg));
	}
	json_decref(root);
	for (char *p = msg; *p; p++) /* keep log lines printable */
		if ((unsigned char)*p < 0x20)
			*p = '?';

	if (status == 401 || code == 16)
		r = -EPERM;
	else if (status == 403 || code == 7)
		r = -EACCES;
	else if (status == 404)
		r = code == 5 ? -ENOENT : -EPROTO;
	else if (status == 400 && code == 11)
		r = -ESTALE;
	else if (status == 400 && strstr(msg, "CommonName"))
		r = -EACCES;
	else if (status == 400)
		r = -EINVAL;
	else if (status == 412)
		r = -EEXIST;
	else if (status == 503 || code == 14)
		r = -EAGAIN;
	else if (status >= 500 && status < 600)
		r = -EIO;
	else if (code >= 0)
		r = grpc_to_errno(code);
	else
		r = -EPROTO;
	if (code >= 0)
		errfmt(errbuf, errlen, "etcd: HTTP %ld: %s (code %ld)", status, msg[0] ? msg : "?",
		       code);
	else
		errfmt(errbuf, errlen, "etcd: HTTP %ld: %s", status, msg[0] ? msg : "no message");
	return r;
}

int store_etcd_parse_reply(enum store_etcd_reply kind, const char *buf, size_t len,
                           struct store_result *res, char *errbuf, size_t errlen)
{
	json_t *root, *obj;
	int64_t n;
	int r = -EPROTO;

	memset(res, 0, sizeof(*res));
	root = load(buf, len, errbuf, errlen);
	if (!root)
		return -EPROTO;
	obj = root;
	if (kind == STORE_ETCD_KEEPALIVE) {
		const json_t *e = json_object_get(root, "error");

		if (e && !json_is_null(e)) {
			r = store_etcd_parse_error(200, buf, len, errbuf, errlen);
			goto out;
		}
		obj = json_object_get(root, "result");
		if (!json_is_object(obj)) {
			errfmt(errbuf, errlen, "keepalive reply without result");
			goto out;
		}
	}
	if (header_revision(obj, &res->revision) < 0) {
		errfmt(errbuf, errlen, "bad header revision");
		goto out;
	}
	switch (kind) {
	case STORE_ETCD_RANGE:
		r = parse_kvs(json_object_get(obj, "kvs"), &res->kvs, &res->n_kvs, errbuf, errlen);
		if (r < 0)
			goto out;
		break;
	case STORE_ETCD_PUT:
		break;
	case STORE_ETCD_DELETE:
		if (j_i64(obj, "deleted", &n) < 0) {
			errfmt(errbuf, errlen, "bad deleted count");
			goto out;
		}
		res->succeeded = n > 0;
		break;
	case STORE_ETCD_TXN: {
		const json_t *resps = json_object_get(obj, "responses");

		if (j_bool(obj, "succeeded", &res->succeeded) < 0) {
			errfmt(errbuf, errlen, "bad succeeded flag");
			goto out;
		}
		if (resps && !json_is_null(resps) && !json_is_array(resps)) {
			errfmt(errbuf, errlen, "responses is not an array");
			goto out;
		}
		for (size_t i = 0; resps && i < json_array_size(resps); i++) {
			const json_t *rr =
				json_object_get(json_array_get(resps, i), "response_range");

			if (!rr)
				continue;
			if (!json_is_object(rr)) {
				errfmt(errbuf, errlen, "response_range is not an object");
				goto out;
			}
			r = parse_kvs(json_object_get(rr, "kvs"), &res->kvs, &res->n_kvs, errbuf,
			              errlen);
			if (r < 0)
				goto out;
			break;
		}
		break;
	}
	case STORE_ETCD_GRANT:
	case STORE_ETCD_KEEPALIVE:
	case STORE_ETCD_TIMETOLIVE: {
		const json_t *e = json_object_get(obj, "error");

		if (json_is_string(e) && json_string_length(e) > 0) {
			errfmt(errbuf, errlen, "etcd: %s", json_string_value(e));
			r = -EIO;
			goto out;
		}
		if (j_i64(obj, "ID", &res->lease_id) < 0 || j_i64(obj, "TTL", &res->ttl) < 0) {
			errfmt(errbuf, errlen, "bad lease ID or TTL");
			goto out;
		}
		if (res->ttl < 0)
			res->ttl = 0;
		if (kind == STORE_ETCD_GRANT && (res->lease_id == 0 || res->ttl <= 0)) {
			errfmt(errbuf, errlen, "lease grant reply without ID or TTL");
			goto out;
		}
		break;
	}
	default:
		errfmt(errbuf, errlen, "unknown reply kind");
		goto out;
	}
	r = 0;
out:
	json_decref(root);
	if (r < 0)
		store_result_clear(res);
	return r;
}

int store_etcd_parse_token(const char *buf, size_t len, char **ret)
{
	json_t *root = load(buf, len, NULL, 0);
	const json_t *t;
	int r = -EPROTO;

	*ret = NULL;
	if (!root)
		return -EPROTO;
	t = json_object_get(root, "token");
	if (json_is_string(t) && json_string_length(t) > 0 &&
	    strlen(json_string_value(t)) == json_string_length(t)) {
		/* it goes into an HTTP header: printable ASCII only */
		const char *s = json_string_value(t);

		r = 0;
		for (const char *p = s; *p; p++)
			if (*p < 0x21 || *p > 0x7e)
				r = -EPROTO;
		if (r == 0) {
			*ret = strdup(s);
			if (!*ret)
				r = -ENOMEM;
		}
	}
	json_decref(root);
	return r;
}

int store_etcd_parse_watch_line(const char *line, size_t len, struct store_watch_msg *m)
{
	json_t *root;
	const json_t *res, *evs, *reason;
	int r = -EPROTO;

	memset(m, 0, sizeof(*m));
	root = load(line, len, m->reason, sizeof(m->reason));
	if (!root)
		return -EPROTO;
	if (json_object_get(root, "error") && !json_is_null(json_object_get(root, "error"))) {
		m->error = store_etcd_parse_error(200, line, len, m->reason, sizeof(m->reason));
		if (m->error == 0)
			m->error = -EIO;
		r = 0;
		goto out;
	}
	res = json_object_get(root, "result");
	if (!json_is_object(res)) {
		errfmt(m->reason, sizeof(m->reason), "watch message without result");
		goto out;
	}
	if (header_revision(res, &m->revision) < 0 || j_bool(res, "created", &m->created) < 0 ||
	    j_bool(res, "canceled", &m->canceled) < 0 ||
	    j_i64(res, "compact_revision", &m->compact_revision) < 0) {
		errfmt(m->reason, sizeof(m->reason), "bad watch message field");
		goto out;
	}
	reason = json_object_get(res, "cancel_reason");
	if (json_is_string(reason))
		errfmt(m->reason, sizeof(m->reason), "%s", json_string_value(reason));
	evs = json_object_get(res, "events");
	if (evs && !json_is_null(evs)) {
		size_t n = json_array_size(evs);

		if (!json_is_array(evs)) {
			errfmt(m->reason, sizeof(m->reason), "events is not an array");
			goto out;
		}
		if (n > 0) {
			m->evs = calloc(n, sizeof(*m->evs));
			if (!m->evs) {
				r = -ENOMEM;
				goto out;
			}
		}
		for (size_t i = 0; i < n; i++) {
			const json_t *ev = json_array_get(evs, i);
			const json_t *type = json_object_get(ev, "type");
			const json_t *prev = json_object_get(ev, "prev_kv");
			struct store_event *e = &m->evs[m->n_evs];
			int k;

			if (!json_is_object(ev)) {
				errfmt(m->reason, sizeof(m->reason), "event is not an object");
				goto fail_evs;
			}
			if (!type || json_is_null(type) ||
			    (json_is_string(type) && !strcmp(json_string_value(type), "PUT")) ||
			    (json_is_integer(type) && json_integer_value(type) == 0))
				e->type = STORE_EV_PUT;
			else if ((json_is_string(type) &&
			          !strcmp(json_string_value(type), "DELETE")) ||
			         (json_is_integer(type) && json_integer_value(type) == 1))
				e->type = STORE_EV_DELETE;
			else {
				errfmt(m->reason, sizeof(m->reason), "unknown event type");
				goto fail_evs;
			}
			k = parse_kv(json_object_get(ev, "kv"), &e->kv, m->reason,
			             sizeof(m->reason));
			if (k < 0)
				goto fail_evs;
			if (k == 1)
				continue;
			if (prev && !json_is_null(prev)) {
				k = parse_kv(prev, &e->prev_kv, m->reason, sizeof(m->reason));
				if (k < 0) {
					store_kv_clear(&e->kv);
					goto fail_evs;
				}
			}
			m->n_evs++;
		}
	}
	r = 0;
	goto out;
fail_evs:
	store_events_free(m->evs, m->n_evs);
	m->evs = NULL;
	m->n_evs = 0;
out:
	json_decref(root);
	return r;
}

/* ------------------------------------------------------------------------ */
/* The store                                                                 */

struct ecall;

struct etcd_store {
	struct store base;
	struct http_client *http;
	char **eps;
	size_t n_eps;
	size_t cur;
	char *cafile, *certfile, *keyfile;
	char *username, *password;
	char *token;
	int timeout_ms;
	int idle_ms;
	int probe_ms;          /* < 0: no periodic probes */
	unsigned *ep_timeouts; /* consecutive unary timeouts per endpoint */
	struct ecall *calls;
	struct store_watch *watches;
	struct store_stats stats;
};

enum ecall_op {
	OP_GET,
	OP_LIST,
	OP_CREATE,
	OP_CAS,
	OP_PUT,
	OP_DEL,
	OP_GRANT,
	OP_KEEPALIVE,
	OP_REVOKE,
	OP_TIMETOLIVE,
	OP_AUTH,
};

enum ecall_stage { STAGE_GRANT, STAGE_MAIN, STAGE_REVOKE };

struct ecall {
	struct etcd_store *s;
	enum ecall_op op;
	enum ecall_stage stage;
	const char *path;
	enum store_etcd_reply kind;
	char *body; /* of the current stage */
	char *key;
	size_t key_len;
	char *value;
	size_t value_len;
	int64_t ttl;
	int64_t expect;
	int64_t lease_id;
	store_cb cb;
	void *ctx;
	void (*internal)(void *ctx, int err, const char *errmsg); /* OP_AUTH for watches */
	struct http_req *req;
	struct ev_timer *timer;
	uint64_t stage_start;
	unsigned attempts;
	unsigned backoff_ms;
	size_t ep;
	bool authing;
	bool reauthed;
	bool ambiguous; /* an attempt may have been applied although it failed */
	bool done;
	int final_err;
	int last_rc;
	char tried[256];
	struct store_result res;
	char errmsg[512];
	/* OP_LIST in pages: the listing's revision, where the next page starts, kvs so far */
	int64_t page_rev;
	char *page_key;
	size_t page_key_len;
	struct store_kv *acc;
	size_t n_acc, cap_acc;
	unsigned list_restarts;
	bool paged;      /* list_pages: each page goes to the callback, nothing is gathered */
	bool page_first; /* list_pages: the next page delivered starts the listing */
	struct ecall *next, *prev;
};

struct store_watch {
	struct etcd_store *s;
	char *key;
	size_t key_len;
	char *end;
	size_t end_len;
	int64_t next_rev;
	store_watch_cb cb;
	void *ctx;
	struct http_req *req;
	struct ev_timer *timer;
	struct http_req *probe; /* liveness probe in flight */
	struct ev_timer *probe_timer;
	uint64_t alive_ms; /* last sign of life of the stream's endpoint */
	int64_t probe_rev; /* next_rev when the probe in flight was sent (store_backwards) */
	struct ecall *auth;
	char *line;
	size_t len, cap;
	unsigned failures;
	unsigned gen;
	size_t ep;
	bool reauthed;
	bool dead;
	bool in_cb;
	bool freed;
	int pending_err; /* delivered by the timer when set */
	struct store_watch *next, *prev;
};

static const struct store_ops etcd_ops;

static struct etcd_store *to_etcd(struct store *s)
{
	return (struct etcd_store *)s;
}

/* ---- counters (store_stats.h) ---- */

static const char *const stat_op_names[STORE_STAT_OP_COUNT] = {
	[STORE_STAT_GET] = "get",       [STORE_STAT_LIST] = "list",
	[STORE_STAT_CREATE] = "create", [STORE_STAT_CAS] = "cas",
	[STORE_STAT_PUT] = "put",       [STORE_STAT_DELETE] = "delete",
	[STORE_STAT_GRANT] = "grant",   [STORE_STAT_KEEPALIVE] = "keepalive",
	[STORE_STAT_REVOKE] = "revoke", [STORE_STAT_TIMETOLIVE] = "timetolive",
	[STORE_STAT_AUTH] = "auth",     [STORE_STAT_WATCH] = "watch",
	[STORE_STAT_PROBE] = "probe",
};

static const char *const stat_err_names[STORE_STAT_ERR_COUNT] = {
	[STORE_STAT_ERR_CONNECT] = "connect",
	[STORE_STAT_ERR_TIMEOUT] = "timeout",
	[STORE_STAT_ERR_TLS] = "tls",
	[STORE_STAT_ERR_AUTH] = "auth",
	[STORE_STAT_ERR_UNAVAILABLE] = "unavailable",
	[STORE_STAT_ERR_REJECTED] = "rejected",
	[STORE_STAT_ERR_PROTOCOL] = "protocol",
	[STORE_STAT_ERR_STREAM] = "stream",
};

const char *store_stat_op_name(enum store_stat_op op)
{
	return (unsigned)op < STORE_STAT_OP_COUNT ? stat_op_names[op] : "unknown";
}

const char *store_stat_err_name(enum store_stat_err kind)
{
	return (unsigned)kind < STORE_STAT_ERR_COUNT ? stat_err_names[kind] : "unknown";
}

static void stat_err(struct etcd_store *s, enum store_stat_err kind)
{
	s->stats.errors[kind]++;
}

static void stat_ok(struct etcd_store *s)
{
	s->stats.last_ok_ms = ev_now_ms();
}

/* A transport failure (curl code @rc != 0). */
static void stat_curl_err(struct etcd_store *s, int rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		stat_err(s, STORE_STAT_ERR_TIMEOUT);
		break;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
		stat_err(s, STORE_STAT_ERR_TLS);
		break;
	default:
		stat_err(s, STORE_STAT_ERR_CONNECT);
		break;
	}
}

/* An HTTP status other than 200 and its store_etcd_parse_error() result @r. */
static void stat_http_err(struct etcd_store *s, long status, int r)
{
	if (status < 500 && r != -EAGAIN)
		stat_ok(s); /* the member answers */
	if (r == -EAGAIN || status >= 500)
		stat_err(s, STORE_STAT_ERR_UNAVAILABLE);
	else if (r == -EPERM || r == -EACCES)
		stat_err(s, STORE_STAT_ERR_AUTH);
	else
		stat_err(s, STORE_STAT_ERR_REJECTED);
}

int store_etcd_stats(const struct store *s, struct store_stats *ret)
{
	if (!s || !ret)
		return -EINVAL;
	if (s->ops != &etcd_ops)
		return -ENOTSUP;
	*ret = ((const struct etcd_store *)s)->stats;
	return 0;
}

static char *b64(const char *data, size_t len)
{
	return base64_encode(data, len);
}

/* A JSON string of base64(@data); NULL on ENOMEM. */
static json_t *jb64(const char *data, size_t len)
{
	char *e = b64(data, len);
	json_t *j;

	if (!e)
		return NULL;
	j = json_string(e);
	free(e);
	return j;
}

static json_t *ji64(int64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return json_string(buf);
}

static char *dump(json_t *j)
{
	char *s;

	if (!j)
		return NULL;
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

/* json_pack with "o" steals; a NULL "o" argument makes it fail, which we report as ENOMEM. */
static char *body_range(const char *key, size_t klen, const char *end, size_t elen)
{
	if (end)
		return dump(json_pack("{s:o, s:o, s:s, s:s}", "key", jb64(key, klen), "range_end",
		                      jb64(end, elen), "sort_order", "ASCEND", "sort_target",
		                      "KEY"));
	return dump(json_pack("{s:o}", "key", jb64(key, klen)));
}

/* One page of a listing: at most LIST_PAGE keys from @key, at @rev when not 0. */
static char *body_list(const char *key, size_t klen, const char *end, size_t elen, int64_t rev)
{
	json_t *o = json_pack("{s:o, s:o, s:s, s:s, s:i}", "key", jb64(key, klen), "range_end",
	                      jb64(end, elen), "sort_order", "ASCEND", "sort_target", "KEY",
	                      "limit", (json_int_t)LIST_PAGE);

	if (o && rev && json_object_set_new(o, "revision", ji64(rev)) < 0) {
		json_decref(o);
		return NULL;
	}
	return dump(o);
}

static json_t *put_op(const struct ecall *c, int64_t lease)
{
	json_t *p = json_pack("{s:o, s:o}", "key", jb64(c->key, c->key_len), "value",
	                      jb64(c->value, c->value_len));

	if (p && lease)
		json_object_set_new(p, "lease", ji64(lease));
	return p;
}

static char *body_txn(const struct ecall *c, json_t *compare, json_t *success)
{
	return dump(json_pack("{s:[o], s:[o], s:[{s:{s:o}}]}", "compare", compare, "success",
	                      success, "failure", "request_range", "key",
	                      jb64(c->key, c->key_len)));
}

static json_t *compare_mod(const struct ecall *c, int64_t expect)
{
	if (expect == 0)
		return json_pack("{s:o, s:s, s:s, s:s}", "key", jb64(c->key, c->key_len), "target",
		                 "CREATE", "result", "EQUAL", "create_revision", "0");
	return json_pack("{s:o, s:s, s:s, s:o}", "key", jb64(c->key, c->key_len), "target", "MOD",
	                 "result", "EQUAL", "mod_revision", ji64(expect));
}

/* What the current stage of @c asks of etcd: the grant and revoke around a create with a TTL. */
static enum ecall_op stage_op(const struct ecall *c)
{
	switch (c->stage) {
	case STAGE_GRANT:
		return OP_GRANT;
	case STAGE_REVOKE:
		return OP_REVOKE;
	case STAGE_MAIN:
		break;
	}
	return c->op;
}

/* Sets c->path, c->kind and c->body for the current stage; 0 or -errno. */
static int stage_prepare(struct ecall *c)
{
	free(c->body);
	c->body = NULL;
	switch (stage_op(c)) {
	case OP_GET:
		c->path = "/v3/kv/range";
		c->kind = STORE_ETCD_RANGE;
		c->body = body_range(c->key, c->key_len, NULL, 0);
		break;
	case OP_LIST: {
		char *end;
		size_t elen;

		if (store_prefix_end(c->key, c->key_len, &end, &elen) < 0)
			return -ENOMEM;
		c->path = "/v3/kv/range";
		c->kind = STORE_ETCD_RANGE;
		if (c->page_key)
			c->body = body_list(c->page_key, c->page_key_len, end, elen, c->page_rev);
		else
			c->body = body_list(c->key, c->key_len, end, elen, 0);
		free(end);
		break;
	}
	case OP_CREATE:
	case OP_CAS:
		c->path = "/v3/kv/txn";
		c->kind = STORE_ETCD_TXN;
		c->body = body_txn(c, compare_mod(c, c->op == OP_CREATE ? 0 : c->expect),
		                   json_pack("{s:o}", "request_put", put_op(c, c->lease_id)));
		break;
	case OP_PUT:
		c->path = "/v3/kv/put";
		c->kind = STORE_ETCD_PUT;
		c->body = dump(put_op(c, c->lease_id));
		break;
	case OP_DEL:
		if (c->expect == 0) {
			c->path = "/v3/kv/deleterange";
			c->kind = STORE_ETCD_DELETE;
			c->body = body_range(c->key, c->key_len, NULL, 0);
		} else {
			c->path = "/v3/kv/txn";
			c->kind = STORE_ETCD_TXN;
			c->body = body_txn(c, compare_mod(c, c->expect),
			                   json_pack("{s:{s:o}}", "request_delete_range", "key",
			                             jb64(c->key, c->key_len)));
		}
		break;
	case OP_GRANT:
		c->path = "/v3/lease/grant";
		c->kind = STORE_ETCD_GRANT;
		c->body = dump(json_pack("{s:o}", "TTL", ji64(c->ttl)));
		break;
	case OP_KEEPALIVE:
		c->path = "/v3/lease/keepalive";
		c->kind = STORE_ETCD_KEEPALIVE;
		c->body = dump(json_pack("{s:o}", "ID", ji64(c->lease_id)));
		break;
	case OP_REVOKE:
		c->path = "/v3/lease/revoke";
		c->kind = STORE_ETCD_PUT;
		c->body = dump(json_pack("{s:o}", "ID", ji64(c->lease_id)));
		break;
	case OP_TIMETOLIVE:
		c->path = "/v3/lease/timetolive";
		c->kind = STORE_ETCD_TIMETOLIVE;
		c->body = dump(json_pack("{s:o}", "ID", ji64(c->lease_id)));
		break;
	case OP_AUTH:
		c->path = NULL; /* authentication only */
		return 0;
	}
	return c->body ? 0 : -ENOMEM;
}

/* Forget the pages of a listing so far (it starts again from the first page). */
static void list_reset(struct ecall *c)
{
	for (size_t i = 0; i < c->n_acc; i++)
		store_kv_clear(&c->acc[i]);
	free(c->acc);
	free(c->page_key);
	c->acc = NULL;
	c->n_acc = c->cap_acc = 0;
	c->page_key = NULL;
	c->page_key_len = 0;
	c->page_rev = 0;
	c->page_first = true;
}

static void call_destroy(struct ecall *c)
{
	http_cancel(c->req);
	ev_timer_free(c->timer);
	store_result_clear(&c->res);
	list_reset(c);
	free(c->body);
	free(c->key);
	free(c->value);
	free(c);
}

static void call_start_stage(struct ecall *c, enum ecall_stage stage);

/*
 * A page of a listing arrived: keep its kvs. 1 when the next page was requested, 0 when
 * @res now holds the whole listing (at the first page's revision), or -ENOMEM.
 */
static int list_page(struct ecall *c, struct store_result *res)
{
	size_t got = res->n_kvs;

	if (!c->page_rev)
		c->page_rev = res->revision;
	if (c->paged) {
		res->revision = c->page_rev;
		res->first_page = c->page_first;
		res->more = got == LIST_PAGE;
		c->page_first = false;
		if (!res->more)
			return 0; /* the last page: delivered as the call's result */
		const char *last = res->kvs[got - 1].key;
		size_t l = strlen(last);
		char *k = malloc(l + 2);

		if (!k)
			return -ENOMEM;
		memcpy(k, last, l);
		k[l] = '\0';
		k[l + 1] = '\0';
		free(c->page_key);
		c->page_key = k;
		c->page_key_len = l + 1; /* the next key after @last */
		res->err = 0;
		res->errmsg = NULL;
		c->cb(c->ctx, res);
		store_result_clear(res);
		call_start_stage(c, STAGE_MAIN);
		return 1;
	}
	if (c->n_acc + got > c->cap_acc) {
		size_t cap = c->cap_acc ? c->cap_acc : LIST_PAGE;
		struct store_kv *a;

		while (cap < c->n_acc + got)
			cap *= 2;
		a = realloc(c->acc, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		c->acc = a;
		c->cap_acc = cap;
	}
	if (got)
		memcpy(c->acc + c->n_acc, res->kvs, got * sizeof(*res->kvs));
	c->n_acc += got;
	free(res->kvs);
	res->kvs = NULL;
	res->n_kvs = 0;
	if (got == LIST_PAGE) {
		const char *last = c->acc[c->n_acc - 1].key;
		size_t l = strlen(last);
		char *k = malloc(l + 2);

		if (!k)
			return -ENOMEM;
		memcpy(k, last, l);
		k[l] = '\0';
		k[l + 1] = '\0';
		free(c->page_key);
		c->page_key = k;
		c->page_key_len = l + 1; /* the next key after @last */
		call_start_stage(c, STAGE_MAIN);
		return 1;
	}
	res->kvs = c->acc;
	res->n_kvs = c->n_acc;
	res->revision = c->page_rev;
	c->acc = NULL;
	c->n_acc = c->cap_acc = 0;
	return 0;
}

static void call_unlink(struct ecall *c)
{
	struct etcd_store *s = c->s;

	if (c->prev)
		c->prev->next = c->next;
	else if (s->calls == c)
		s->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

/* Runs the callback (the store may be freed by it) and frees the call. */
static void call_complete(struct ecall *c, int err)
{
	struct store_result *res = &c->res;

	c->done = true;
	http_cancel(c->req);
	c->req = NULL;
	call_unlink(c);
	res->err = err;
	res->errmsg = err ? (c->errmsg[0] ? c->errmsg : strerror(-err)) : NULL;
	if (err) {
		store_result_clear(res);
		res->succeeded = false;
	}
	if (c->internal)
		c->internal(c->ctx, err, res->errmsg);
	else if (c->cb)
		c->cb(c->ctx, res);
	call_destroy(c);
}

static void call_send(struct ecall *c);

static void call_timer_fire(struct ev_timer *t, void *ctx)
{
	struct ecall *c = ctx;

	(void)t;
	if (c->final_err && c->stage != STAGE_REVOKE) {
		call_complete(c, c->final_err);
		return;
	}
	call_send(c);
}

/* Complete with @err from the loop (never from inside the caller's call). */
static void call_fail_later(struct ecall *c, int err)
{
	c->final_err = err;
	c->stage = STAGE_MAIN;
	if (ev_timer_start(c->timer, 0, 0) < 0)
		call_complete(c, err); /* only from a loop callback: see call_send */
}

static void call_start_stage(struct ecall *c, enum ecall_stage stage)
{
	int r;

	c->stage = stage;
	c->attempts = 0;
	c->backoff_ms = BACKOFF_MIN_MS;
	c->stage_start = ev_now_ms();
	c->tried[0] = '\0';
	c->ambiguous = false;
	r = stage_prepare(c);
	if (r < 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "cannot build the etcd request");
		call_fail_later(c, r);
		return;
	}
	call_send(c);
}

static void note_tried(struct ecall *c, const char *ep)
{
	size_t l = strlen(c->tried);

	if (strstr(c->tried, ep))
		return;
	snprintf(c->tried + l, sizeof(c->tried) - l, "%s%s", l ? ", " : "", ep);
}

static void on_http_done(void *ctx, const struct http_response *resp);

/* What the next HTTP request of @c is, for the counters. */
static enum store_stat_op stat_op_of(const struct ecall *c)
{
	if (c->authing || c->op == OP_AUTH)
		return STORE_STAT_AUTH;
	switch (stage_op(c)) {
	case OP_GET:
		return STORE_STAT_GET;
	case OP_LIST:
		return STORE_STAT_LIST;
	case OP_CREATE:
		return STORE_STAT_CREATE;
	case OP_CAS:
		return STORE_STAT_CAS;
	case OP_PUT:
		return STORE_STAT_PUT;
	case OP_DEL:
		return STORE_STAT_DELETE;
	case OP_GRANT:
		return STORE_STAT_GRANT;
	case OP_KEEPALIVE:
		return STORE_STAT_KEEPALIVE;
	case OP_REVOKE:
		return STORE_STAT_REVOKE;
	case OP_TIMETOLIVE:
		return STORE_STAT_TIMETOLIVE;
	case OP_AUTH:
		break;
	}
	return STORE_STAT_AUTH;
}

static uint64_t call_budget_ms(const struct ecall *c)
{
	return (uint64_t)c->s->timeout_ms * ROUNDS;
}

/*
 * What every request to one endpoint carries: the URL, the auth token (sent raw, and no
 * header at all without a username: ETCD.md §6) and the TLS files. The struct points into
 * itself: fill it in place and do not copy it.
 */
struct ereq {
	struct http_request_opts o;
	char url[1024];
	char auth[1100];
	const char *hdrs[2];
};

static void ereq_init(struct ereq *r, const struct etcd_store *s, size_t ep, const char *path,
                      bool with_token)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->url, sizeof(r->url), "%s%s", s->eps[ep], path);
	r->o.url = r->url;
	if (with_token && s->username && s->token) {
		snprintf(r->auth, sizeof(r->auth), "Authorization: %s", s->token);
		r->hdrs[0] = r->auth;
		r->o.headers = r->hdrs;
	}
	r->o.cafile = s->cafile;
	r->o.certfile = s->certfile;
	r->o.keyfile = s->keyfile;
}

static void call_send(struct ecall *c)
{
	struct etcd_store *s = c->s;
	struct ereq r;
	char *authbody = NULL;
	uint64_t elapsed = ev_now_ms() - c->stage_start;
	uint64_t left = call_budget_ms(c) > elapsed ? call_budget_ms(c) - elapsed : 0;

	if (c->stage == STAGE_MAIN && c->op == OP_AUTH && s->token && !c->authing) {
		call_complete(c, 0);
		return;
	}
	if (s->username && (!s->token || c->op == OP_AUTH))
		c->authing = true;
	c->ep = s->cur;
	ereq_init(&r, s, c->ep, c->authing ? "/v3/auth/authenticate" : c->path, !c->authing);
	note_tried(c, s->eps[c->ep]);
	if (c->authing) {
		authbody = dump(json_pack("{s:s, s:s}", "name", s->username, "password",
		                          s->password ? s->password : ""));
		if (!authbody) {
			snprintf(c->errmsg, sizeof(c->errmsg),
			         "cannot build the etcd authentication request (bad UTF-8?)");
			call_complete(c, -EINVAL);
			return;
		}
		r.o.body = authbody;
	} else {
		r.o.body = c->body;
	}
	r.o.body_len = strlen(r.o.body);
	r.o.timeout_ms = (long)(left < (uint64_t)s->timeout_ms ? left : (uint64_t)s->timeout_ms);
	if (r.o.timeout_ms < 100)
		r.o.timeout_ms = 100;
	c->req = http_request(s->http, &r.o, on_http_done, c);
	free(authbody);
	if (c->req)
		s->stats.requests[stat_op_of(c)]++;
	if (!c->req) {
		int err = -errno;

		snprintf(c->errmsg, sizeof(c->errmsg), "cannot start an HTTP request to %.300s: %s",
		         r.url, strerror(errno));
		call_complete(c, err);
	}
}

static bool rc_retryable(int rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

/* The attempt on c->ep failed in transport (or 503): next endpoint, backoff, or give up. */
static void call_retry(struct ecall *c, int err, const char *why)
{
	struct etcd_store *s = c->s;
	uint64_t delay = 0, elapsed;

	if (s->cur == c->ep)
		s->cur = (c->ep + 1) % s->n_eps;
	c->attempts++;
	if (c->attempts % s->n_eps == 0) {
		delay = c->backoff_ms;
		c->backoff_ms =
			c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
	}
	elapsed = ev_now_ms() - c->stage_start;
	if (c->attempts >= ROUNDS * s->n_eps || elapsed + delay >= call_budget_ms(c)) {
		snprintf(c->errmsg, sizeof(c->errmsg),
		         "etcd unreachable after %u attempts in %" PRIu64 " ms (tried %s): %s",
		         c->attempts, elapsed, c->tried, why);
		if (c->stage == STAGE_REVOKE) { /* best effort: the lease expires by itself */
			call_complete(c, c->final_err);
			return;
		}
		if (c->stage == STAGE_MAIN && c->op == OP_CREATE && c->lease_id) {
			c->final_err = err;
			call_start_stage(c, STAGE_REVOKE);
			return;
		}
		call_complete(c, err);
		return;
	}
	log_debug("etcd %s: %s; retrying on %s in %" PRIu64 " ms", s->eps[c->ep], why,
	          s->eps[s->cur], delay);
	if (ev_timer_start(c->timer, delay, 0) < 0)
		call_complete(c, -errno);
}

static bool same_value(const struct store_kv *kv, const struct ecall *c)
{
	return kv->value_len == c->value_len && memcmp(kv->value, c->value, c->value_len) == 0;
}

/* A 200 reply of the current stage, parsed into @res. */
static void stage_error(struct ecall *c, int err);

static void stage_done(struct ecall *c, struct store_result *res)
{
	switch (c->stage) {
	case STAGE_GRANT:
		c->lease_id = res->lease_id;
		store_result_clear(res);
		call_start_stage(c, STAGE_MAIN);
		return;
	case STAGE_REVOKE:
		store_result_clear(res);
		call_complete(c, c->final_err);
		return;
	case STAGE_MAIN:
		break;
	}
	if (c->op == OP_LIST) {
		int r = list_page(c, res);

		if (r > 0)
			return;
		if (r < 0) {
			store_result_clear(res);
			stage_error(c, r);
			return;
		}
	}
	store_result_clear(&c->res);
	c->res = *res;
	memset(res, 0, sizeof(*res));
	switch (c->op) {
	case OP_CREATE:
		c->res.lease_id = c->lease_id;
		if (!c->res.succeeded && c->res.n_kvs == 1) {
			const struct store_kv *kv = &c->res.kvs[0];

			/* our own write from an attempt that only seemed to fail */
			if ((c->lease_id && kv->lease == c->lease_id) ||
			    (!c->lease_id && c->ambiguous && !kv->lease && same_value(kv, c)))
				c->res.succeeded = true;
		}
		if (!c->res.succeeded && c->lease_id) {
			c->res.lease_id = 0;
			call_start_stage(c, STAGE_REVOKE);
			return;
		}
		break;
	case OP_CAS:
		if (!c->res.succeeded && c->ambiguous && c->res.n_kvs == 1 &&
		    c->res.kvs[0].lease == c->lease_id && same_value(&c->res.kvs[0], c))
			c->res.succeeded = true;
		break;
	case OP_PUT:
		c->res.succeeded = true;
		break;
	case OP_KEEPALIVE:
	case OP_TIMETOLIVE:
		if (c->res.lease_id == 0)
			c->res.lease_id = c->lease_id;
		break;
	case OP_REVOKE:
		c->res.lease_id = c->lease_id;
		c->res.succeeded = true;
		break;
	default:
		break;
	}
	if (c->res.succeeded && c->res.n_kvs && (c->op == OP_CAS || c->op == OP_CREATE)) {
		store_result_clear(&c->res); /* kvs only describe a failed compare */
		c->res.succeeded = true;
	}
	call_complete(c, 0);
}

/* A definitive error of the current stage. */
static void stage_error(struct ecall *c, int err)
{
	if (c->stage == STAGE_REVOKE) {
		call_complete(c, c->final_err);
		return;
	}
	if (c->op == OP_CREATE && c->stage == STAGE_MAIN && c->lease_id) {
		c->final_err = err;
		call_start_stage(c, STAGE_REVOKE);
		return;
	}
	if (c->op == OP_LIST && c->page_rev && err == -ESTALE && c->list_restarts++ < 3) {
		/* the listing's revision was compacted between two pages: from the start */
		list_reset(c);
		call_start_stage(c, STAGE_MAIN);
		return;
	}
	call_complete(c, err);
}

static void ep_timed_out(struct etcd_store *s, size_t ep);

static void on_http_done(void *ctx, const struct http_response *resp)
{
	struct ecall *c = ctx;
	struct etcd_store *s = c->s;
	struct store_result res;
	char why[400];
	int r;

	c->req = NULL;
	c->last_rc = resp->curl_rc;
	if (resp->curl_rc == 0)
		s->ep_timeouts[c->ep] = 0;
	else if (resp->curl_rc == CURLE_OPERATION_TIMEDOUT)
		ep_timed_out(s, c->ep);
	if (resp->curl_rc != 0)
		stat_curl_err(s, resp->curl_rc);
	else if (resp->status == 200)
		stat_ok(s);
	if (resp->curl_rc != 0) {
		snprintf(why, sizeof(why), "%s: %s", s->eps[c->ep], resp->errmsg);
		if (rc_retryable(resp->curl_rc)) {
			if (resp->curl_rc != CURLE_COULDNT_CONNECT &&
			    resp->curl_rc != CURLE_COULDNT_RESOLVE_HOST)
				c->ambiguous = true;
			call_retry(c,
			           resp->curl_rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
			                                                     : -ECONNREFUSED,
			           why);
			return;
		}
		snprintf(c->errmsg, sizeof(c->errmsg), "etcd %s: %s", s->eps[c->ep], resp->errmsg);
		stage_error(c, resp->curl_rc == CURLE_PEER_FAILED_VERIFICATION ||
		                               resp->curl_rc == CURLE_SSL_CERTPROBLEM
		                       ? -EACCES
		                       : -ECONNREFUSED);
		return;
	}
	if (resp->status == 200 && c->authing) {
		char *tok;

		if (store_etcd_parse_token(resp->body, resp->body_len, &tok) < 0) {
			stat_err(s, STORE_STAT_ERR_PROTOCOL);
			snprintf(c->errmsg, sizeof(c->errmsg),
			         "etcd %s: authentication reply without a token", s->eps[c->ep]);
			stage_error(c, -EPROTO);
			return;
		}
		free(s->token);
		s->token = tok;
		c->authing = false;
		if (c->op == OP_AUTH)
			call_complete(c, 0);
		else
			call_send(c);
		return;
	}
	if (resp->status == 200) {
		r = store_etcd_parse_reply(c->kind, resp->body, resp->body_len, &res, c->errmsg,
		                           sizeof(c->errmsg));
		if (r < 0) {
			stat_err(s,
			         r == -EPROTO ? STORE_STAT_ERR_PROTOCOL : STORE_STAT_ERR_REJECTED);
			stage_error(c, r);
			return;
		}
		stage_done(c, &res);
		return;
	}
	r = store_etcd_parse_error(resp->status, resp->body, resp->body_len, c->errmsg,
	                           sizeof(c->errmsg));
	stat_http_err(s, resp->status, r);
	if (r == -EAGAIN) {
		snprintf(why, sizeof(why), "%.150s: %.240s", s->eps[c->ep], c->errmsg);
		c->ambiguous = true;
		call_retry(c, -ETIMEDOUT, why);
		return;
	}
	if (r == -EPERM) {
		if (s->username && !c->reauthed && !c->authing) {
			c->reauthed = true;
			free(s->token);
			s->token = NULL;
			call_send(c);
			return;
		}
		r = -EACCES;
	}
	if (c->authing && (r == -EINVAL || r == -EEXIST))
		r = -EACCES; /* bad user/password, or auth not enabled */
	stage_error(c, r);
}

static struct ecall *call_new(struct etcd_store *s, enum ecall_op op, const char *key,
                              const char *value, size_t value_len, store_cb cb, void *ctx)
{
	struct ecall *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->s = s;
	c->op = op;
	c->cb = cb;
	c->ctx = ctx;
	c->timer = ev_timer_new(s->base.loop, call_timer_fire, c);
	if (!c->timer)
		goto fail;
	if (key) {
		c->key_len = strlen(key);
		c->key = strdup(key);
		if (!c->key)
			goto fail;
	}
	if (value || op == OP_CREATE || op == OP_CAS || op == OP_PUT) {
		c->value = malloc(value_len + 1);
		if (!c->value)
			goto fail;
		if (value_len)
			memcpy(c->value, value, value_len);
		c->value[value_len] = '\0';
		c->value_len = value_len;
	}
	return c;
fail:
	ev_timer_free(c->timer);
	free(c->key);
	free(c->value);
	free(c);
	errno = ENOMEM;
	return NULL;
}

/* Link @c and start it on the next loop iteration; 0 or -errno (then freed, no callback). */
static int call_go(struct ecall *c, enum ecall_stage first)
{
	struct etcd_store *s = c->s;
	int r;

	c->stage = first;
	c->stage_start = ev_now_ms();
	c->backoff_ms = BACKOFF_MIN_MS;
	r = stage_prepare(c);
	if (r == 0)
		r = ev_timer_start(c->timer, 0, 0);
	if (r < 0) {
		call_destroy(c);
		return r;
	}
	c->next = s->calls;
	if (s->calls)
		s->calls->prev = c;
	s->calls = c;
	return 0;
}

static int check_key(const char *key)
{
	return key && *key ? 0 : -EINVAL;
}

static int etcd_get(struct store *st, const char *key, store_cb cb, void *ctx)
{
	struct ecall *c;

	if (check_key(key) < 0 || !cb)
		return -EINVAL;
	c = call_new(to_etcd(st), OP_GET, key, NULL, 0, cb, ctx);
	return c ? call_go(c, STAGE_MAIN) : -ENOMEM;
}

static int list_common(struct store *st, const char *prefix, bool paged, store_cb cb, void *ctx)
{
	struct ecall *c;

	if (!prefix || !cb)
		return -EINVAL;
	c = call_new(to_etcd(st), OP_LIST, prefix, NULL, 0, cb, ctx);
	if (!c)
		return -ENOMEM;
	c->paged = paged;
	c->page_first = true;
	if (c->key_len == 0) { /* the whole keyspace: key "\0", range_end "\0" */
		c->key_len = 1;
		free(c->key);
		c->key = calloc(1, 2);
		if (!c->key) {
			call_destroy(c);
			return -ENOMEM;
		}
	}
	return call_go(c, STAGE_MAIN);
}

static int etcd_list(struct store *st, const char *prefix, store_cb cb, void *ctx)
{
	return list_common(st, prefix, false, cb, ctx);
}

static int etcd_list_pages(struct store *st, const char *prefix, store_cb cb, void *ctx)
{
	return list_common(st, prefix, true, cb, ctx);
}

static int etcd_create(struct store *st, const char *key, const char *value, size_t value_len,
                       int64_t ttl_s, store_cb cb, void *ctx)
{
	struct ecall *c;

	if (check_key(key) < 0 || !cb || ttl_s < 0 || (!value && value_len))
		return -EINVAL;
	c = call_new(to_etcd(st), OP_CREATE, key, value, value_len, cb, ctx);
	if (!c)
		return -ENOMEM;
	c->ttl = ttl_s;
	return call_go(c, ttl_s > 0 ? STAGE_GRANT : STAGE_MAIN);
}

static int etcd_cas(struct store *st, const char *key, const char *value, size_t value_len,
                    int64_t expect_mod_rev, int64_t lease_id, store_cb cb, void *ctx)
{
	struct ecall *c;

	if (check_key(key) < 0 || !cb || expect_mod_rev < 0 || lease_id < 0 ||
	    (!value && value_len))
		return -EINVAL;
	c = call_new(to_etcd(st), OP_CAS, key, value, value_len, cb, ctx);
	if (!c)
		return -ENOMEM;
	c->expect = expect_mod_rev;
	c->lease_id = lease_id;
	return call_go(c, STAGE_MAIN);
}

static int etcd_put(struct store *st, const char *key, const char *value, size_t value_len,
                    int64_t lease_id, store_cb cb, void *ctx)
{
	struct ecall *c;

	if (check_key(key) < 0 || !cb || lease_id < 0 || (!value && value_len))
		return -EINVAL;
	c = call_new(to_etcd(st), OP_PUT, key, value, value_len, cb, ctx);
	if (!c)
		return -ENOMEM;
	c->lease_id = lease_id;
	return call_go(c, STAGE_MAIN);
}

static int etcd_del(struct store *st, const char *key, int64_t expect_mod_rev, store_cb cb,
                    void *ctx)
{
	struct ecall *c;

	if (check_key(key) < 0 || !cb || expect_mod_rev < 0)
		return -EINVAL;
	c = call_new(to_etcd(st), OP_DEL, key, NULL, 0, cb, ctx);
	if (!c)
		return -ENOMEM;
	c->expect = expect_mod_rev;
	return call_go(c, STAGE_MAIN);
}

static int lease_call(struct store *st, enum ecall_op op, int64_t arg, store_cb cb, void *ctx)
{
	struct ecall *c;

	if (!cb || arg <= 0)
		return -EINVAL;
	c = call_new(to_etcd(st), op, NULL, NULL, 0, cb, ctx);
	if (!c)
		return -ENOMEM;
	if (op == OP_GRANT)
		c->ttl = arg;
	else
		c->lease_id = arg;
	return call_go(c, STAGE_MAIN);
}

static int etcd_grant(struct store *st, int64_t ttl_s, store_cb cb, void *ctx)
{
	return lease_call(st, OP_GRANT, ttl_s, cb, ctx);
}

static int etcd_keepalive(struct store *st, int64_t lease_id, store_cb cb, void *ctx)
{
	return lease_call(st, OP_KEEPALIVE, lease_id, cb, ctx);
}

static int etcd_revoke(struct store *st, int64_t lease_id, store_cb cb, void *ctx)
{
	return lease_call(st, OP_REVOKE, lease_id, cb, ctx);
}

static int etcd_timetolive(struct store *st, int64_t lease_id, store_cb cb, void *ctx)
{
	return lease_call(st, OP_TIMETOLIVE, lease_id, cb, ctx);
}

/* ------------------------------------------------------------------------ */
/* Watches                                                                   */

static void watch_open(struct store_watch *w);
static void watch_probe(struct store_watch *w);
static bool store_backwards(struct store_watch *w, const struct http_response *resp);

static void watch_unlink(struct store_watch *w)
{
	struct etcd_store *s = w->s;

	if (!s)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else if (s->watches == w)
		s->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->next = w->prev = NULL;
}

static void watch_stop_io(struct store_watch *w)
{
	http_cancel(w->req);
	w->req = NULL;
	http_cancel(w->probe);
	w->probe = NULL;
	if (w->probe_timer)
		ev_timer_stop(w->probe_timer);
	if (w->auth) {
		struct ecall *a = w->auth;

		w->auth = NULL;
		call_unlink(a);
		call_destroy(a);
	}
	w->gen++;
	w->len = 0;
}

static void watch_destroy(struct store_watch *w)
{
	watch_stop_io(w);
	ev_timer_free(w->timer);
	ev_timer_free(w->probe_timer);
	free(w->line);
	free(w->key);
	free(w->end);
	free(w);
}

static void etcd_watch_free(struct store_watch *w)
{
	if (!w)
		return;
	watch_stop_io(w);
	watch_unlink(w);
	w->s = NULL;
	if (w->in_cb) {
		w->freed = true;
		return;
	}
	watch_destroy(w);
}

/* Calls the user; false when the watch was freed meanwhile (and is gone now). */
static bool watch_deliver(struct store_watch *w, int err, const struct store_event *evs, size_t n,
                          int64_t rev)
{
	w->in_cb = true;
	w->cb(w->ctx, err, evs, n, rev);
	w->in_cb = false;
	if (w->freed) {
		watch_destroy(w);
		return false;
	}
	return true;
}

/* The watch is dead: report @err from the loop. */
static void watch_fail(struct store_watch *w, int err)
{
	watch_stop_io(w);
	w->dead = true;
	w->pending_err = err;
	ev_timer_start(w->timer, 0, 0);
}

static void watch_broken(struct store_watch *w, const char *why)
{
	struct etcd_store *s = w->s;
	uint64_t delay = 0;

	watch_stop_io(w);
	w->failures++;
	if (w->failures > ROUNDS * s->n_eps) {
		log_debug("etcd watch: %s; giving up after %u attempts", why, w->failures);
		watch_fail(w, -EPIPE);
		return;
	}
	if (s->cur == w->ep)
		s->cur = (w->ep + 1) % s->n_eps;
	if (w->failures > s->n_eps) {
		unsigned sh = w->failures - (unsigned)s->n_eps - 1;

		delay = sh >= 6 ? BACKOFF_MAX_MS : (uint64_t)BACKOFF_MIN_MS << sh;
		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
	}
	log_debug("etcd watch: %s; resuming from revision %" PRId64 " on %s in %" PRIu64 " ms", why,
	          w->next_rev, s->eps[s->cur], delay);
	if (ev_timer_start(w->timer, delay, 0) < 0)
		watch_fail(w, -EPIPE);
}

static bool auth_problem(const char *reason)
{
	return strstr(reason, "user name is empty") || strstr(reason, "invalid auth token") ||
	       strstr(reason, "Unauthenticated");
}

/* One stream line; false when processing must stop (watch reopened, dead or freed). */
static bool watch_line(struct store_watch *w, const char *line, size_t len)
{
	struct store_watch_msg m;
	size_t first = 0;
	bool ok = true;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return true;
	if (store_etcd_parse_watch_line(line, len, &m) < 0) {
		char why[300];

		stat_err(w->s, STORE_STAT_ERR_PROTOCOL);
		snprintf(why, sizeof(why), "bad watch message: %s", m.reason);
		watch_broken(w, why);
		return false;
	}
	if (m.error) {
		char why[300];

		if (m.error == -EPERM && w->s->username) {
			free(w->s->token);
			w->s->token = NULL;
		}
		stat_err(w->s, m.error == -EPERM ? STORE_STAT_ERR_AUTH : STORE_STAT_ERR_STREAM);
		snprintf(why, sizeof(why), "stream error: %s", m.reason);
		watch_broken(w, why);
		return false;
	}
	if (m.canceled) {
		store_events_free(m.evs, m.n_evs);
		stat_err(w->s, strstr(m.reason, "permission denied") || auth_problem(m.reason)
		                       ? STORE_STAT_ERR_AUTH
		                       : STORE_STAT_ERR_REJECTED);
		if (m.compact_revision > 0) {
			watch_fail(w, -ESTALE);
		} else if (auth_problem(m.reason) && w->s->username && !w->reauthed) {
			w->reauthed = true;
			free(w->s->token);
			w->s->token = NULL;
			watch_broken(w, m.reason);
		} else if (strstr(m.reason, "permission denied") || auth_problem(m.reason)) {
			watch_fail(w, -EACCES);
		} else {
			char why[300];

			snprintf(why, sizeof(why), "watch canceled: %s", m.reason);
			watch_broken(w, why);
		}
		return false;
	}
	if (m.created) {
		/* "from now": pin it, so a resume cannot skip what happens meanwhile */
		if (w->next_rev == 0 && m.revision > 0)
			w->next_rev = m.revision + 1;
		w->failures = 0;
		w->reauthed = false;
		store_events_free(m.evs, m.n_evs);
		/*
		 * The member is behind the revision we resume from: the store went backwards (wiped
		 * or restored; etcd would then send nothing until it reaches next_rev), or this
		 * member lags. A linearizable probe tells (probe_done ends the watch with -ESTALE).
		 */
		if (m.revision > 0 && m.revision < w->next_rev - 1) {
			log_debug("etcd watch: %s is at revision %" PRId64 ", behind %" PRId64
			          ": checking whether the store went backwards",
			          w->s->eps[w->ep], m.revision, w->next_rev - 1);
			watch_probe(w);
		}
		return true;
	}
	while (first < m.n_evs && m.evs[first].kv.mod_revision < w->next_rev)
		first++;
	if (m.n_evs == 0) {
		if (m.revision >= w->next_rev) {
			w->next_rev = m.revision + 1;
			ok = watch_deliver(w, 0, NULL, 0, m.revision);
		}
	} else if (first < m.n_evs) {
		int64_t last = m.evs[m.n_evs - 1].kv.mod_revision;

		if (last >= w->next_rev)
			w->next_rev = last + 1;
		ok = watch_deliver(w, 0, m.evs + first, m.n_evs - first, last);
	}
	store_events_free(m.evs, m.n_evs);
	return ok;
}

static void watch_data(void *ctx, const char *data, size_t len)
{
	struct store_watch *w = ctx;
	unsigned gen = w->gen;
	size_t start = 0;

	w->alive_ms = ev_now_ms();
	w->s->ep_timeouts[w->ep] = 0;
	stat_ok(w->s);

	if (w->len + len + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		char *nb;

		while (cap < w->len + len + 1)
			cap *= 2;
		if (cap > WATCH_MAX_LINE || !(nb = realloc(w->line, cap))) {
			watch_broken(w, "watch message too large");
			return;
		}
		w->line = nb;
		w->cap = cap;
	}
	memcpy(w->line + w->len, data, len);
	w->len += len;
	for (size_t i = 0; i < w->len; i++) {
		if (w->line[i] != '\n')
			continue;
		if (!watch_line(w, w->line + start, i - start))
			return; /* w may be gone */
		if (w->gen != gen || w->dead)
			return;
		start = i + 1;
	}
	memmove(w->line, w->line + start, w->len - start);
	w->len -= start;
}

/* ---- liveness probes ---- */

static void watch_arm_probe(struct store_watch *w, uint64_t after_ms)
{
	if (w->s->probe_ms > 0 && ev_timer_start(w->probe_timer, after_ms, 0) < 0)
		log_debug("etcd watch: cannot arm the liveness probe");
}

static void probe_done(void *ctx, const struct http_response *resp)
{
	struct store_watch *w = ctx;
	struct etcd_store *s = w->s;
	char why[600];

	w->probe = NULL;
	if (resp->curl_rc != 0)
		stat_curl_err(s, resp->curl_rc);
	else if (resp->status <= 0 || resp->status >= 500)
		stat_err(s, STORE_STAT_ERR_UNAVAILABLE);
	else
		stat_ok(s);
	if (resp->curl_rc == 0 && resp->status > 0 && resp->status < 500) {
		/* the member answers (even 401/403 proves that): keep the stream */
		s->ep_timeouts[w->ep] = 0;
		w->alive_ms = ev_now_ms();
		if (resp->status == 200 && store_backwards(w, resp))
			return;
		watch_arm_probe(w, (uint64_t)s->probe_ms);
		return;
	}
	if (resp->curl_rc != 0)
		snprintf(why, sizeof(why), "liveness probe on %s failed: %s", s->eps[w->ep],
		         resp->errmsg);
	else
		snprintf(why, sizeof(why), "liveness probe on %s: HTTP %ld", s->eps[w->ep],
		         resp->status);
	watch_broken(w, why);
}

/*
 * A linearizable read is never behind a revision seen before it was sent: when the probe's
 * revision is, the store went backwards (its data was wiped or restored) and a watch resumed
 * at the old revision would wait for it in silence. End the watch with -ESTALE (the caller
 * lists again) and return true.
 */
static bool store_backwards(struct store_watch *w, const struct http_response *resp)
{
	char err[128];
	json_t *root = load(resp->body, resp->body_len, err, sizeof(err));
	int64_t rev = 0;

	if (!root)
		return false;
	if (header_revision(root, &rev) < 0)
		rev = 0;
	json_decref(root);
	if (rev <= 0 || rev >= w->probe_rev - 1)
		return false;
	log_debug("etcd watch: %s is at revision %" PRId64 " but revision %" PRId64
	          " was seen: the store went backwards (wiped or restored): ESTALE",
	          w->s->eps[w->ep], rev, w->probe_rev - 1);
	stat_err(w->s, STORE_STAT_ERR_REJECTED);
	watch_fail(w, -ESTALE);
	return true;
}

/* A linearizable count_only range of the watch's key on the watch's endpoint. */
static void watch_probe(struct store_watch *w)
{
	struct etcd_store *s = w->s;
	struct ereq r;
	char *body;

	if (!w->req || w->probe || w->dead)
		return;
	body = dump(json_pack("{s:o, s:b}", "key", jb64(w->key, w->key_len), "count_only", 1));
	if (!body) {
		watch_arm_probe(w, (uint64_t)(s->probe_ms > 0 ? s->probe_ms : DEFAULT_PROBE_MS));
		return;
	}
	ereq_init(&r, s, w->ep, "/v3/kv/range", true);
	r.o.body = body;
	r.o.body_len = strlen(body);
	r.o.timeout_ms = s->timeout_ms;
	w->probe_rev = w->next_rev;
	w->probe = http_request(s->http, &r.o, probe_done, w);
	free(body);
	if (w->probe)
		s->stats.requests[STORE_STAT_PROBE]++;
	if (!w->probe)
		watch_arm_probe(w, (uint64_t)(s->probe_ms > 0 ? s->probe_ms : DEFAULT_PROBE_MS));
	else
		log_debug("etcd watch: silent for %" PRIu64 " ms; probing %s",
		          ev_now_ms() - w->alive_ms, s->eps[w->ep]);
}

static void probe_timer_fire(struct ev_timer *t, void *ctx)
{
	struct store_watch *w = ctx;
	uint64_t quiet = ev_now_ms() - w->alive_ms;

	if (!w->req || w->probe || w->dead || w->s->probe_ms <= 0)
		return;
	if (quiet < (uint64_t)w->s->probe_ms) {
		ev_timer_start(t, (uint64_t)w->s->probe_ms - quiet, 0);
		return;
	}
	watch_probe(w);
}

/* A unary call timed out on @ep: probe the watches there, or move them when it keeps happening. */
static void ep_timed_out(struct etcd_store *s, size_t ep)
{
	unsigned n = ++s->ep_timeouts[ep];

	for (struct store_watch *w = s->watches; w; w = w->next) {
		if (!w->req || w->ep != ep || w->dead)
			continue;
		if (n >= TIMEOUTS_MOVE) {
			char why[600];

			snprintf(why, sizeof(why), "%u requests in a row timed out on %s", n,
			         s->eps[ep]);
			watch_broken(w, why);
		} else {
			watch_probe(w);
		}
	}
}

static void watch_done(void *ctx, const struct http_response *resp)
{
	struct store_watch *w = ctx;
	char why[600];

	w->req = NULL;
	if (resp->curl_rc != 0) {
		stat_curl_err(w->s, resp->curl_rc);
		snprintf(why, sizeof(why), "%s: %s", w->s->eps[w->ep], resp->errmsg);
	} else if (resp->status != 200) {
		char msg[400];
		int r = store_etcd_parse_error(resp->status, resp->body, resp->body_len, msg,
		                               sizeof(msg));

		stat_http_err(w->s, resp->status, r);

		if (r == -EPERM && w->s->username) {
			free(w->s->token);
			w->s->token = NULL;
		}
		snprintf(why, sizeof(why), "%s: %s", w->s->eps[w->ep], msg);
	} else {
		stat_err(w->s, STORE_STAT_ERR_STREAM);
		snprintf(why, sizeof(why), "%s: stream ended", w->s->eps[w->ep]);
	}
	watch_broken(w, why);
}

static void watch_auth_done(void *ctx, int err, const char *errmsg)
{
	struct store_watch *w = ctx;

	w->auth = NULL;
	if (err == -EACCES || err == -EINVAL) {
		log_debug("etcd watch: %s", errmsg ? errmsg : "authentication failed");
		watch_fail(w, -EACCES);
		return;
	}
	if (err) {
		watch_broken(w, errmsg ? errmsg : "authentication failed");
		return;
	}
	watch_open(w);
}

static void watch_open(struct store_watch *w)
{
	struct etcd_store *s = w->s;
	struct ereq r;
	json_t *req;
	char *body;

	if (s->username && !s->token) {
		struct ecall *a = call_new(s, OP_AUTH, NULL, NULL, 0, NULL, w);

		if (!a) {
			watch_broken(w, "out of memory");
			return;
		}
		a->internal = watch_auth_done;
		if (call_go(a, STAGE_MAIN) < 0) {
			watch_broken(w, "cannot start authentication");
			return;
		}
		w->auth = a;
		return;
	}
	req = json_pack("{s:{s:o, s:o, s:o, s:b, s:b}}", "create_request", "key",
	                jb64(w->key, w->key_len), "range_end", jb64(w->end, w->end_len),
	                "start_revision", ji64(w->next_rev), "prev_kv", 1, "progress_notify", 1);
	body = dump(req);
	if (!body) {
		watch_broken(w, "out of memory");
		return;
	}
	w->ep = s->cur;
	w->len = 0;
	w->gen++;
	ereq_init(&r, s, w->ep, "/v3/watch", true);
	r.o.body = body;
	r.o.body_len = strlen(body);
	r.o.connect_timeout_ms = s->timeout_ms;
	r.o.idle_ms = s->idle_ms;
	r.o.on_data = watch_data;
	w->req = http_request(s->http, &r.o, watch_done, w);
	free(body);
	if (w->req)
		s->stats.requests[STORE_STAT_WATCH]++;
	if (!w->req) {
		watch_broken(w, "cannot start the watch request");
		return;
	}
	w->alive_ms = ev_now_ms();
	watch_arm_probe(w, (uint64_t)s->probe_ms);
}

static void watch_timer_fire(struct ev_timer *t, void *ctx)
{
	struct store_watch *w = ctx;

	(void)t;
	if (w->dead) {
		watch_deliver(w, w->pending_err, NULL, 0, 0);
		return;
	}
	watch_open(w);
}

static struct store_watch *etcd_watch(struct store *st, const char *prefix, int64_t from_rev,
                                      store_watch_cb cb, void *ctx)
{
	struct etcd_store *s = to_etcd(st);
	struct store_watch *w;

	if (!prefix || !cb || from_rev < 0) {
		errno = EINVAL;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->s = s;
	w->cb = cb;
	w->ctx = ctx;
	w->next_rev = from_rev;
	w->key_len = strlen(prefix);
	if (w->key_len == 0) {
		w->key = calloc(1, 2);
		w->key_len = 1;
	} else {
		w->key = strdup(prefix);
	}
	if (!w->key || store_prefix_end(w->key, w->key_len, &w->end, &w->end_len) < 0)
		goto fail;
	if (w->key_len == 1 && w->key[0] == '\0') {
		w->end[0] = '\0';
		w->end_len = 1;
	}
	w->timer = ev_timer_new(st->loop, watch_timer_fire, w);
	w->probe_timer = ev_timer_new(st->loop, probe_timer_fire, w);
	if (!w->timer || !w->probe_timer || ev_timer_start(w->timer, 0, 0) < 0)
		goto fail;
	w->next = s->watches;
	if (s->watches)
		s->watches->prev = w;
	s->watches = w;
	return w;
fail:
	ev_timer_free(w->timer);
	ev_timer_free(w->probe_timer);
	free(w->key);
	free(w->end);
	free(w);
	errno = ENOMEM;
	return NULL;
}

/* ------------------------------------------------------------------------ */

static void etcd_free(struct store *st)
{
	struct etcd_store *s = to_etcd(st);

	if (!s)
		return;
	while (s->watches)
		etcd_watch_free(s->watches);
	while (s->calls) {
		struct ecall *c = s->calls;

		call_unlink(c);
		call_destroy(c);
	}
	http_client_free(s->http);
	for (size_t i = 0; i < s->n_eps; i++)
		free(s->eps[i]);
	free(s->eps);
	free(s->ep_timeouts);
	free(s->cafile);
	free(s->certfile);
	free(s->keyfile);
	free(s->username);
	free(s->password);
	free(s->token);
	free(s);
}

static const char *etcd_endpoint(struct store *st)
{
	struct etcd_store *s = to_etcd(st);

	return s->eps[s->cur];
}

static const struct store_ops etcd_ops = {
	.name = "etcd",
	.get = etcd_get,
	.list = etcd_list,
	.create = etcd_create,
	.cas = etcd_cas,
	.put = etcd_put,
	.del = etcd_del,
	.grant = etcd_grant,
	.keepalive = etcd_keepalive,
	.revoke = etcd_revoke,
	.watch = etcd_watch,
	.watch_free = etcd_watch_free,
	.free = etcd_free,
	.endpoint = etcd_endpoint,
	.timetolive = etcd_timetolive,
	.list_pages = etcd_list_pages,
};

static int dup_opt(const char *in, char **out)
{
	*out = NULL;
	if (!in || !*in)
		return 0;
	*out = strdup(in);
	return *out ? 0 : -ENOMEM;
}

struct store *store_etcd_new(struct ev_loop *loop, const struct store_opts *opts)
{
	static const char *const def_eps[] = { "http://127.0.0.1:2379", NULL };
	const char *const *eps = def_eps;
	struct etcd_store *s;
	size_t n = 0;
	int err = ENOMEM;

	if (!loop) {
		errno = EINVAL;
		return NULL;
	}
	if (opts && opts->endpoints && opts->endpoints[0])
		eps = (const char *const *)opts->endpoints;
	while (eps[n])
		n++;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(eps[i], "http://", 7) != 0 && strncmp(eps[i], "https://", 8) != 0) {
			log_debug("etcd: bad endpoint '%s' (want http:// or https://)", eps[i]);
			errno = EINVAL;
			return NULL;
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base.ops = &etcd_ops;
	s->base.loop = loop;
	s->eps = calloc(n, sizeof(*s->eps));
	s->ep_timeouts = calloc(n, sizeof(*s->ep_timeouts));
	if (!s->eps || !s->ep_timeouts)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		size_t l;

		s->eps[i] = strdup(eps[i]);
		if (!s->eps[i])
			goto fail;
		s->n_eps++;
		l = strlen(s->eps[i]);
		while (l > 0 && s->eps[i][l - 1] == '/')
			s->eps[i][--l] = '\0';
	}
	s->timeout_ms = opts && opts->request_timeout_ms > 0 ? opts->request_timeout_ms
	                                                     : DEFAULT_TIMEOUT_MS;
	s->idle_ms = opts && opts->watch_idle_ms > 0 ? opts->watch_idle_ms : DEFAULT_IDLE_MS;
	s->probe_ms = !opts || opts->watch_probe_ms == 0 ? DEFAULT_PROBE_MS
	              : opts->watch_probe_ms < 0         ? -1
	                                                 : opts->watch_probe_ms;
	if (opts &&
	    (dup_opt(opts->cafile, &s->cafile) < 0 || dup_opt(opts->certfile, &s->certfile) < 0 ||
	     dup_opt(opts->keyfile, &s->keyfile) < 0 || dup_opt(opts->username, &s->username) < 0 ||
	     dup_opt(opts->password, &s->password) < 0))
		goto fail;
	s->http = http_client_new(loop);
	if (!s->http) {
		err = errno;
		goto fail;
	}
	return &s->base;
fail:
	etcd_free(&s->base);
	errno = err;
	return NULL;
}
