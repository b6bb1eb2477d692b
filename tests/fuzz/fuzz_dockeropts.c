/*
 * daemon.json merge (outside input: whatever an administrator left in
 * /etc/docker/daemon.json). The first byte picks the flags and which subnet
 * file fields are present; the rest is the JSON. On success the output must
 * itself parse and merge to the same bytes (the merge is idempotent). With
 * --ipv6 (bit 4) and no IPv6 subnet (bit 5 clear) every call must fail, and a
 * successful --ipv6 merge must carry "ipv6" and the network form of the subnet.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "docker-opts/dockeropts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct subnetfile sf;
	struct dockeropts_opts o = { .individual = true, .combined = true };
	char err[256], *out = NULL, *again = NULL, *env = NULL;
	size_t out_len, again_len, env_len;
	bool ipv6;
	uint8_t sel;
	int r;

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
	ipv6 = sel & 16;
	sf.has_ipv6_subnet = sel & 32;
	if (ipam_prefix_parse("2001:db8:100:4::1/64", &sf.ipv6_subnet) < 0)
		abort();

	r = dockeropts_merge_daemon_json((const char *)data + 1, size - 1, &sf, sel & 8, ipv6, &out,
	                                 &out_len, err, sizeof(err));
	if (ipv6 && !sf.has_ipv6_subnet && (r == 0 || !strstr(err, "FLANNEL_IPV6_SUBNET")))
		abort();
	if (r == 0) {
		if (strlen(out) != out_len)
			abort();
		if (ipv6 && (!strstr(out, "\"ipv6\": true") ||
		             !strstr(out, "\"fixed-cidr-v6\": \"2001:db8:100:4::/64\"")))
			abort();
		if (dockeropts_merge_daemon_json(out, out_len, &sf, sel & 8, ipv6, &again,
		                                 &again_len, err, sizeof(err)) != 0)
			abort();
		if (again_len != out_len || memcmp(out, again, out_len) != 0)
			abort();
	}

	/* The env file path with the same flags: fails exactly when the v6 subnet is missing. */
	o.ipmasq = sel & 8;
	o.ipv6 = ipv6;
	r = dockeropts_format_env(&sf, &o, NULL, &env, &env_len, err, sizeof(err));
	if ((r == 0) != (!ipv6 || sf.has_ipv6_subnet))
		abort();
	if (r == 0 && ipv6 && !strstr(env, "--fixed-cidr-v6=2001:db8:100:4::/64"))
		abort();
	free(env);
	free(out);
	free(again);
	return 0;
}
