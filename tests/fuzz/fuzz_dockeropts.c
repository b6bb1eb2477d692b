/*
 * daemon.json merge (outside input: whatever an administrator left in
 * /etc/docker/daemon.json). The first byte picks the flags and which subnet
 * file fields are present; the rest is the JSON. On success the output must
 * itself parse and merge to the same bytes (the merge is idempotent).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "docker-opts/dockeropts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct subnetfile sf;
	char err[256], *out = NULL, *again = NULL;
	size_t out_len, again_len;
	uint8_t sel;

	if (size < 1)
		return 0;
	sel = data[0];
	memset(&sf, 0, sizeof(sf));
	sf.has_subnet = true;
	if (ipam_prefix_parse("198.18.4.1/24", &sf.subnet) < 0)
		abort();
	sf.has_mtu = sel & 1;
	sf.mtu = 1450;
	sf.has_ipmasq = sel & 2;
	sf.ipmasq = sel & 4;

	if (dockeropts_merge_daemon_json((const char *)data + 1, size - 1, &sf, sel & 8, &out,
	                                 &out_len, err, sizeof(err)) == 0) {
		if (strlen(out) != out_len)
			abort();
		if (dockeropts_merge_daemon_json(out, out_len, &sf, sel & 8, &again, &again_len,
		                                 err, sizeof(err)) != 0)
			abort();
		if (again_len != out_len || memcmp(out, again, out_len) != 0)
			abort();
	}
	free(out);
	free(again);
	return 0;
}
