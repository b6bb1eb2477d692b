#include <stdio.h>
#include <string.h>

#include "daemon/util.h"

char *twilld_lease_describe(const struct lease *l, char *buf, size_t len)
{
	char v4[IPAM_PREFIX_STRLEN] = "", v6[IPAM_PREFIX_STRLEN] = "", ip[IPAM_ADDR_STRLEN];

	if (l->has_ipv4)
		ipam_prefix_format(&l->subnet, v4);
	if (l->has_ipv6)
		ipam_prefix_format(&l->ipv6_subnet, v6);
	snprintf(buf, len, "%s%s%s (public IP %s, backend %s%s)", v4,
	         l->has_ipv4 && l->has_ipv6 ? "+" : "", v6,
	         ipam_addr_format(&l->attrs.public_ip, ip),
	         l->attrs.backend_type[0] ? l->attrs.backend_type : "udp",
	         l->store_lease_id == 0 ? ", reservation" : "");
	return buf;
}
