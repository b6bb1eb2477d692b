/* libFuzzer harness: the subnet file parser and writer (subnet/subnetfile.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "subnet/subnetfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct subnetfile f;
	char err[256];

	if (subnetfile_parse((const char *)data, size, &f, err, sizeof(err)) < 0) {
		if (strncmp(err, "line ", 5))
			abort();
		return 0;
	}
	if (f.has_mtu && (f.mtu < 68 || f.mtu > 65535))
		abort();
	if ((f.has_network && f.network.addr.family != AF_INET) ||
	    (f.has_subnet && f.subnet.addr.family != AF_INET) ||
	    (f.has_ipv6_network && f.ipv6_network.addr.family != AF_INET6) ||
	    (f.has_ipv6_subnet && f.ipv6_subnet.addr.family != AF_INET6))
		abort();
	return 0;
}
