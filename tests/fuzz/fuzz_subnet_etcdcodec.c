/*
 * Fuzz the etcd gRPC reply decoders (subnet/etcd_codec.h): the first byte picks what the
 * rest is taken for (a reply of each kind, a WatchResponse, an AuthenticateResponse, the
 * grpc-status / grpc-message pair); any input: no crash, no leak, consistent results.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "subnet/etcd_codec.h"
#include "subnet/store_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_kvs(const struct store_kv *kvs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!kvs[i].key || !kvs[i].value || kvs[i].value[kvs[i].value_len] != '\0' ||
		    kvs[i].key[0] == '\0')
			abort();
}

static void status(const uint8_t *data, size_t size)
{
	char gs[16], gm[128], err[256];
	size_t n = size < sizeof(gs) - 1 ? size : sizeof(gs) - 1;
	size_t m = size - n < sizeof(gm) - 1 ? size - n : sizeof(gm) - 1;

	memcpy(gs, data, n);
	gs[n] = '\0';
	memcpy(gm, data + n, m);
	gm[m] = '\0';
	if (etcd_status(200, gs, gm, err, sizeof(err)) > 0 || strlen(err) >= sizeof(err))
		abort();
	etcd_status(404, NULL, gm, err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_result res;
	struct etcd_watch_msg m;
	char err[256];
	char *tok = NULL;
	uint8_t sel;

	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;
	switch (sel % 4) {
	case 0:
		for (int k = ETCD_REPLY_RANGE; k <= ETCD_REPLY_TIMETOLIVE; k++) {
			if (etcd_decode_reply((enum etcd_reply)k, data, size, &res, err,
			                      sizeof(err)) == 0) {
				check_kvs(res.kvs, res.n_kvs);
				if (res.ttl < 0)
					abort();
				store_result_clear(&res);
			} else if (res.kvs || res.n_kvs) {
				abort();
			}
		}
		break;
	case 1:
		if (etcd_decode_watch(data, size, &m) == 0) {
			for (size_t i = 0; i < m.n_evs; i++)
				check_kvs(&m.evs[i].kv, 1);
			store_events_free(m.evs, m.n_evs);
		} else if (m.evs) {
			abort();
		}
		break;
	case 2:
		if (etcd_decode_token(data, size, &tok) == 0 && !tok)
			abort();
		free(tok);
		break;
	default:
		status(data, size);
		break;
	}
	return 0;
}
