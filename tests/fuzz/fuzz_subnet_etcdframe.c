/*
 * Fuzz the gRPC framing of the etcd client (etcd_unframe in subnet/etcd_codec.h) the way a
 * stream reads it: the input arrives in chunks whose sizes the first bytes choose, and each
 * whole message is decoded as a WatchResponse. Truncated frames, lying lengths, messages
 * over the limit and compressed flags must end in a clean error, never a crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "subnet/etcd_codec.h"
#include "subnet/store_util.h"

#define MAX 4096 /* a small limit, so lengths above it are reachable */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;
	size_t have = 0, pos = 2, step;

	if (size < 2)
		return 0;
	step = (size_t)(data[0] | data[1] << 8) % 64 + 1;
	buf = malloc(size);
	if (!buf)
		return 0;
	while (pos < size) {
		size_t n = size - pos < step ? size - pos : step;
		size_t off = 0;

		memcpy(buf + have, data + pos, n);
		have += n;
		pos += n;
		for (;;) {
			const uint8_t *msg;
			size_t len, used;
			char err[128];
			struct etcd_watch_msg m;
			int r = etcd_unframe(buf + off, have - off, MAX, &msg, &len, &used, err,
			                     sizeof(err));

			if (r < 0)
				goto out;
			if (r == 0)
				break;
			if (used != len + 5 || off + used > have || len > MAX)
				abort();
			if (etcd_decode_watch(msg, len, &m) == 0)
				store_events_free(m.evs, m.n_evs);
			off += used;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
	}
out:
	free(buf);
	return 0;
}
