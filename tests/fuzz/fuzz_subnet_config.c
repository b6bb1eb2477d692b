/* libFuzzer harness: the network config parser (subnet/config.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "subnet/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[SUBNET_ERR_MAX];
	struct subnet_config *a, *b;

	a = subnet_config_parse((const char *)data, size, err, sizeof(err));
	if (!a) {
		/* Every rejection comes with a message that fits the buffer. */
		if (!err[0] || strlen(err) >= sizeof(err))
			abort();
		return 0;
	}
	if (!a->enable_ipv4 && !a->enable_ipv6)
		abort();
	if (a->enable_ipv4 && (a->subnet_len > 30 || a->subnet_len < a->network.len + 2 ||
	                       !ipam_prefix_contains(&a->network, &a->subnet_min) ||
	                       !ipam_prefix_contains(&a->network, &a->subnet_max) ||
	                       ipam_prefix_cmp(&a->subnet_min, &a->subnet_max) > 0))
		abort();
	if (a->enable_ipv6 &&
	    (a->ipv6_subnet_len > 126 || a->ipv6_subnet_len < a->ipv6_network.len + 2 ||
	     !ipam_prefix_contains(&a->ipv6_network, &a->ipv6_subnet_min) ||
	     !ipam_prefix_contains(&a->ipv6_network, &a->ipv6_subnet_max) ||
	     ipam_prefix_cmp(&a->ipv6_subnet_min, &a->ipv6_subnet_max) > 0))
		abort();
	if (!a->backend || !a->backend_type[0])
		abort();
	(void)subnet_config_backend_opt(a, "VNI");
	/* Parsing is deterministic. */
	b = subnet_config_parse((const char *)data, size, NULL, 0);
	if (!b || !subnet_config_equal(a, b))
		abort();
	subnet_config_free(b);
	subnet_config_free(a);
	return 0;
}
