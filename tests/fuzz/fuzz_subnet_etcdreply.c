/* Fuzz the etcd v3 JSON reply parsers (subnet/store_util.h): any input, no crash, no leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "subnet/store_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = { 200, 400, 401, 403, 404, 412, 500, 503 };
	const char *buf;
	struct store_result res;
	struct store_watch_msg m;
	char err[256];
	char *tok = NULL;
	uint8_t sel;

	if (size < 1)
		return 0;
	sel = data[0];
	buf = (const char *)data + 1;
	size--;
	for (int k = STORE_ETCD_RANGE; k <= STORE_ETCD_TIMETOLIVE; k++) {
		if (store_etcd_parse_reply((enum store_etcd_reply)k, buf, size, &res, err,
		                           sizeof(err)) == 0) {
			for (size_t i = 0; i < res.n_kvs; i++)
				if (res.kvs[i].key == NULL || res.kvs[i].value == NULL ||
				    res.kvs[i].value[res.kvs[i].value_len] != '\0')
					abort();
			store_result_clear(&res);
		} else if (res.kvs || res.n_kvs) {
			abort();
		}
	}
	store_etcd_parse_error(statuses[sel % 8], buf, size, err, sizeof(err));
	if (strlen(err) >= sizeof(err))
		abort();
	if (store_etcd_parse_watch_line(buf, size, &m) == 0)
		store_events_free(m.evs, m.n_evs);
	else if (m.evs)
		abort();
	if (store_etcd_parse_token(buf, size, &tok) == 0 && !tok)
		abort();
	free(tok);
	return 0;
}
