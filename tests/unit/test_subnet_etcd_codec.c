/* The etcd gRPC codec (subnet/etcd_codec.h): pure, no etcd. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#pragma GCC diagnostic ignored "-Wcast-qual" /* protoc-c's initialisers */
#include "subnet/etcd.pb-c.h"
#include "subnet/etcd_codec.h"
#include "subnet/store_util.h"

/* Pack @m with the gRPC prefix stripped: what etcd_decode_* take. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *b;

	*len = protobuf_c_message_get_packed_size(m);
	b = malloc(*len + 1);
	cr_assert(b);
	protobuf_c_message_pack(m, b);
	return b;
}

static ProtobufCBinaryData bin(const char *s, size_t n)
{
	return (ProtobufCBinaryData){ .len = n, .data = (uint8_t *)s };
}

Test(etcd_codec, range_request_bytes_as_verified)
{
	static const uint8_t want[] = { 0x00, 0x00, 0x00, 0x00, 0x05, 0x0a, 0x03, 'f', 'o', 'o' };
	struct etcd_buf b;

	cr_assert_eq(etcd_enc_range("foo", 3, NULL, 0, 0, 0, false, &b), 0);
	cr_assert_eq(b.len, sizeof(want));
	cr_assert_eq(memcmp(b.data, want, sizeof(want)), 0);
	etcd_buf_free(&b);
	etcd_buf_free(&b); /* idempotent */
}

Test(etcd_codec, txn_create_if_absent_round_trips)
{
	struct etcd_buf b;
	Twilletcd__TxnRequest *t;

	cr_assert_eq(etcd_enc_txn("/k", 2, 0, false, "v\0w", 3, 77, &b), 0);
	t = twilletcd__txn_request__unpack(NULL, b.len - 5, b.data + 5);
	cr_assert(t);
	cr_assert_eq(t->n_compare, 1);
	cr_assert_eq(t->compare[0]->target, TWILLETCD__COMPARE__COMPARE_TARGET__CREATE);
	cr_assert_eq(t->compare[0]->target_union_case,
	             TWILLETCD__COMPARE__TARGET_UNION_CREATE_REVISION);
	cr_assert_eq(t->compare[0]->create_revision, 0);
	cr_assert_eq(t->success[0]->request_case, TWILLETCD__REQUEST_OP__REQUEST_REQUEST_PUT);
	cr_assert_eq(t->success[0]->request_put->value.len, 3);
	cr_assert_eq(t->success[0]->request_put->lease, 77);
	cr_assert_eq(t->failure[0]->request_case, TWILLETCD__REQUEST_OP__REQUEST_REQUEST_RANGE);
	twilletcd__txn_request__free_unpacked(t, NULL);
	etcd_buf_free(&b);

	cr_assert_eq(etcd_enc_txn("/k", 2, 42, true, NULL, 0, 0, &b), 0);
	t = twilletcd__txn_request__unpack(NULL, b.len - 5, b.data + 5);
	cr_assert(t);
	cr_assert_eq(t->compare[0]->target, TWILLETCD__COMPARE__COMPARE_TARGET__MOD);
	cr_assert_eq(t->compare[0]->mod_revision, 42);
	cr_assert_eq(t->success[0]->request_case,
	             TWILLETCD__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE);
	twilletcd__txn_request__free_unpacked(t, NULL);
	etcd_buf_free(&b);
}

Test(etcd_codec, unframe)
{
	static const uint8_t two[] = { 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t zipped[] = { 1, 0, 0, 0, 1, 'a' };
	static const uint8_t huge[] = { 0, 0x7f, 0xff, 0xff, 0xff };
	const uint8_t *m;
	size_t len, used;
	char err[128];

	cr_assert_eq(etcd_unframe(two, 4, 100, &m, &len, &used, err, sizeof(err)), 0);
	cr_assert_eq(etcd_unframe(two, 5, 100, &m, &len, &used, err, sizeof(err)), 0);
	cr_assert_eq(etcd_unframe(two, sizeof(two), 100, &m, &len, &used, err, sizeof(err)), 1);
	cr_assert_eq(len, 1);
	cr_assert_eq(used, 6);
	cr_assert_eq(m[0], 'a');
	cr_assert_eq(etcd_unframe(two + 6, 5, 100, &m, &len, &used, err, sizeof(err)), 1);
	cr_assert_eq(len, 0);
	cr_assert_eq(etcd_unframe(two + 11, 2, 100, &m, &len, &used, err, sizeof(err)), 0);
	cr_assert_eq(etcd_unframe(zipped, 6, 100, &m, &len, &used, err, sizeof(err)), -EPROTO);
	cr_assert(strstr(err, "compressed"), "%s", err);
	cr_assert_eq(etcd_unframe(huge, 5, 100, &m, &len, &used, err, sizeof(err)), -EMSGSIZE);
	cr_assert(strstr(err, "over the limit"), "%s", err);
}

Test(etcd_codec, status_mapping)
{
	static const struct {
		long http;
		const char *st, *msg;
		int want;
	} cases[] = {
		{ 200, "0", NULL, 0 },
		{ 200, NULL, NULL, -EPROTO },
		{ 404, NULL, NULL, -EPROTO },
		{ 503, NULL, NULL, -EAGAIN },
		{ 200, "16", "etcdserver: invalid auth token", -EPERM },
		{ 200, "3", "etcdserver: user name is empty", -EACCES },
		{ 200, "3", "etcdserver: authentication failed, invalid user ID or password",
		  -EACCES },
		{ 200, "3", "etcdserver: key is not provided", -EINVAL },
		{ 200, "7", "etcdserver: permission denied", -EACCES },
		{ 200, "5", "etcdserver: requested lease not found", -ENOENT },
		{ 200, "11", "etcdserver: mvcc: required revision has been compacted", -ESTALE },
		{ 200, "9", "etcdserver: lease already exists", -EEXIST },
		{ 200, "14", "etcdserver: request timed out", -EAGAIN },
		{ 200, "12", "unknown service", -EOPNOTSUPP },
		{ 200, "2", "?", -EIO },
		{ 200, "x1", NULL, -EPROTO },
		{ 200, "", NULL, -EPROTO },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = etcd_status(cases[i].http, cases[i].st, cases[i].msg, err, sizeof(err));

		cr_assert_eq(r, cases[i].want, "case %zu: %d (%s)", i, r, err);
		if (r && cases[i].msg)
			cr_assert(strstr(err, cases[i].msg), "case %zu: %s", i, err);
	}
	etcd_message_decode("permission%20denied%3A%0a%zz%", err, sizeof(err));
	cr_assert_str_eq(err, "permission denied:?%zz%");
}

Test(etcd_codec, range_reply_skips_bad_keys)
{
	Twilletcd__ResponseHeader h = TWILLETCD__RESPONSE_HEADER__INIT;
	Twilletcd__KeyValue a = TWILLETCD__KEY_VALUE__INIT, z = TWILLETCD__KEY_VALUE__INIT;
	Twilletcd__KeyValue e = TWILLETCD__KEY_VALUE__INIT;
	Twilletcd__KeyValue *kvs[] = { &a, &z, &e };
	Twilletcd__RangeResponse m = TWILLETCD__RANGE_RESPONSE__INIT;
	struct store_result res;
	char err[128];
	uint8_t *b;
	size_t len;

	h.revision = 7;
	h.member_id = 15682275592930575822u; /* over INT64_MAX: a uint64 */
	a.key = bin("/a", 2);
	a.value = bin("x\0y", 3);
	a.create_revision = 2;
	a.mod_revision = 3;
	a.version = 2;
	a.lease = 5030136030994055970;
	z.key = bin("a\0b", 3); /* a NUL in a key: skipped */
	m.header = &h;
	m.n_kvs = 3;
	m.kvs = kvs;
	b = pack(&m.base, &len);
	cr_assert_eq(etcd_decode_reply(ETCD_REPLY_RANGE, b, len, &res, err, sizeof(err)), 0);
	cr_assert_eq(res.revision, 7);
	cr_assert_eq(res.n_kvs, 1);
	cr_assert_str_eq(res.kvs[0].key, "/a");
	cr_assert_eq(res.kvs[0].value_len, 3);
	cr_assert_eq(memcmp(res.kvs[0].value, "x\0y", 4), 0);
	cr_assert_eq(res.kvs[0].lease, 5030136030994055970);
	cr_assert_eq(res.kvs[0].mod_revision, 3);
	store_result_clear(&res);
	free(b);

	/* an empty reply is all zero values */
	cr_assert_eq(
		etcd_decode_reply(ETCD_REPLY_RANGE, (const uint8_t *)"", 0, &res, err, sizeof(err)),
		0);
	cr_assert_eq(res.n_kvs, 0);
	cr_assert_eq(res.revision, 0);
	cr_assert_eq(etcd_decode_reply(ETCD_REPLY_RANGE, (const uint8_t *)"\xff\xff", 2, &res, err,
	                               sizeof(err)),
	             -EPROTO);
	cr_assert(strstr(err, "does not decode"), "%s", err);
	cr_assert_null(res.kvs);
}

Test(etcd_codec, txn_and_lease_replies)
{
	Twilletcd__KeyValue kv = TWILLETCD__KEY_VALUE__INIT, *kvs[] = { &kv };
	Twilletcd__RangeResponse rr = TWILLETCD__RANGE_RESPONSE__INIT;
	Twilletcd__ResponseOp op = TWILLETCD__RESPONSE_OP__INIT, *ops[] = { &op };
	Twilletcd__TxnResponse t = TWILLETCD__TXN_RESPONSE__INIT;
	Twilletcd__LeaseGrantResponse g = TWILLETCD__LEASE_GRANT_RESPONSE__INIT;
	Twilletcd__LeaseKeepAliveResponse k = TWILLETCD__LEASE_KEEP_ALIVE_RESPONSE__INIT;
	Twilletcd__LeaseTimeToLiveResponse ttl = TWILLETCD__LEASE_TIME_TO_LIVE_RESPONSE__INIT;
	struct store_result res;
	char err[128];
	uint8_t *b;
	size_t len;

	kv.key = bin("/k", 2);
	kv.value = bin("mine", 4);
	rr.n_kvs = 1;
	rr.kvs = kvs;
	op.response_case = TWILLETCD__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
	op.response_range = &rr;
	t.n_responses = 1;
	t.responses = ops;
	b = pack(&t.base, &len);
	cr_assert_eq(etcd_decode_reply(ETCD_REPLY_TXN, b, len, &res, err, sizeof(err)), 0);
	cr_assert(!res.succeeded); /* a failed compare: "succeeded" absent */
	cr_assert_eq(res.n_kvs, 1);
	cr_assert_str_eq(res.kvs[0].value, "mine");
	store_result_clear(&res);
	free(b);

	b = pack(&g.base, &len); /* no ID, no TTL */
	cr_assert_eq(etcd_decode_reply(ETCD_REPLY_GRANT, b, len, &res, err, sizeof(err)), -EPROTO);
	free(b);
	g.id = 99;
	g.ttl = 10;
	b = pack(&g.base, &len);
	cr_assert_eq(etcd_decode_reply(ETCD_REPLY_GRANT, b, len, &res, err, sizeof(err)), 0);
	cr_assert_eq(res.lease_id, 99);
	cr_assert_eq(res.ttl, 10);
	free(b);

	k.id = 99; /* a lost lease: no TTL */
	b = pack(&k.base, &len);
	cr_assert_eq(etcd_decode_reply(ETCD_REPLY_KEEPALIVE, b, len, &res, err, sizeof(err)), 0);
	cr_assert_eq(res.lease_id, 99);
	cr_assert_eq(res.ttl, 0);
	free(b);

	ttl.id = 99;
	ttl.ttl = -1; /* unknown or expired */
	b = pack(&ttl.base, &len);
	cr_assert_eq(etcd_decode_reply(ETCD_REPLY_TIMETOLIVE, b, len, &res, err, sizeof(err)), 0);
	cr_assert_eq(res.ttl, 0);
	free(b);
}

Test(etcd_codec, watch_messages)
{
	Twilletcd__ResponseHeader h = TWILLETCD__RESPONSE_HEADER__INIT;
	Twilletcd__KeyValue kv = TWILLETCD__KEY_VALUE__INIT, prev = TWILLETCD__KEY_VALUE__INIT;
	Twilletcd__Event put = TWILLETCD__EVENT__INIT, del = TWILLETCD__EVENT__INIT;
	Twilletcd__Event *evs[] = { &put, &del };
	Twilletcd__WatchResponse w = TWILLETCD__WATCH_RESPONSE__INIT;
	struct etcd_watch_msg m;
	uint8_t *b;
	size_t len;

	h.revision = 30;
	kv.key = bin("/s/a", 4);
	kv.value = bin("2", 1);
	kv.mod_revision = 29;
	prev.key = bin("/s/a", 4);
	prev.value = bin("1", 1);
	put.kv = &kv;
	put.prev_kv = &prev;
	del.type = TWILLETCD__EVENT__EVENT_TYPE__DELETE;
	del.kv = &kv;
	w.header = &h;
	w.watch_id = 3;
	w.n_events = 2;
	w.events = evs;
	b = pack(&w.base, &len);
	cr_assert_eq(etcd_decode_watch(b, len, &m), 0);
	cr_assert_eq(m.watch_id, 3);
	cr_assert_eq(m.revision, 30);
	cr_assert_eq(m.n_evs, 2);
	cr_assert_eq(m.evs[0].type, STORE_EV_PUT);
	cr_assert_str_eq(m.evs[0].prev_kv.value, "1");
	cr_assert_eq(m.evs[1].type, STORE_EV_DELETE);
	cr_assert_null(m.evs[1].prev_kv.key);
	store_events_free(m.evs, m.n_evs);
	free(b);

	memset(&w, 0, sizeof(w));
	w = (Twilletcd__WatchResponse)TWILLETCD__WATCH_RESPONSE__INIT;
	w.canceled = true;
	w.compact_revision = 27;
	w.cancel_reason = (char *)"mvcc: required revision has been compacted";
	b = pack(&w.base, &len);
	cr_assert_eq(etcd_decode_watch(b, len, &m), 0);
	cr_assert(m.canceled);
	cr_assert_eq(m.compact_revision, 27);
	cr_assert_str_eq(m.reason, "mvcc: required revision has been compacted");
	cr_assert_eq(m.revision, 0);
	free(b);

	cr_assert_eq(etcd_decode_watch((const uint8_t *)"\x5a", 1, &m), -EPROTO);
	cr_assert_null(m.evs);
}

Test(etcd_codec, token)
{
	Twilletcd__AuthenticateResponse a = TWILLETCD__AUTHENTICATE_RESPONSE__INIT;
	char *tok;
	uint8_t *b;
	size_t len;

	a.token = (char *)"cQXxVcVHmInMlmTD.96";
	b = pack(&a.base, &len);
	cr_assert_eq(etcd_decode_token(b, len, &tok), 0);
	cr_assert_str_eq(tok, "cQXxVcVHmInMlmTD.96");
	free(tok);
	free(b);
	a.token = (char *)"bad token\r\n"; /* would break the header */
	b = pack(&a.base, &len);
	cr_assert_eq(etcd_decode_token(b, len, &tok), -EPROTO);
	cr_assert_null(tok);
	free(b);
	a.token = (char *)"";
	b = pack(&a.base, &len);
	cr_assert_eq(etcd_decode_token(b, len, &tok), -EPROTO);
	free(b);
}
