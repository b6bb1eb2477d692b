#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "daemon/util.h"

int twilld_subnetfile_fill(const struct subnet_config *cfg, const struct lease *own, int mtu,
                           bool ipmasq, struct subnetfile *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (cfg->enable_ipv4 && own->has_ipv4) {
		ret->has_network = true;
		ret->network = cfg->network;
		ret->has_subnet = true;
		ret->subnet.len = own->subnet.len;
		if (ipam_prefix_first_host(&own->subnet, &ret->subnet.addr) < 0)
			return -EINVAL;
	}
	if (cfg->enable_ipv6 && own->has_ipv6) {
		ret->has_ipv6_network = true;
		ret->ipv6_network = cfg->ipv6_network;
		ret->has_ipv6_subnet = true;
		ret->ipv6_subnet.len = own->ipv6_subnet.len;
		if (ipam_prefix_first_host(&own->ipv6_subnet, &ret->ipv6_subnet.addr) < 0)
			return -EINVAL;
	}
	ret->has_mtu = true;
	ret->mtu = mtu;
	ret->has_ipmasq = true;
	ret->ipmasq = ipmasq;
	return 0;
}

__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t len, size_t *used,
                                                         const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used >= len)
		return;
	if (*used > 0) {
		n = snprintf(buf + *used, len - *used, ", ");
		*used = n > 0 ? *used + (size_t)n : *used;
		if (*used >= len) {
			*used = len;
			return;
		}
	}
	va_start(ap, fmt);
	n = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used += (size_t)n;
	if (*used > len)
		*used = len;
}

static void diff_prefix(char *buf, size_t len, size_t *used, const char *name,
                        const struct ipam_prefix *a, const struct ipam_prefix *b)
{
	char x[IPAM_PREFIX_STRLEN], y[IPAM_PREFIX_STRLEN];

	if (ipam_prefix_equal(a, b))
		return;
	append(buf, len, used, "%s %s -> %s", name, ipam_prefix_format(a, x),
	       ipam_prefix_format(b, y));
}

char *twilld_config_diff(const struct subnet_config *a, const struct subnet_config *b, char *buf,
                         size_t len)
{
	size_t used = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (a->enable_ipv4 != b->enable_ipv4)
		append(buf, len, &used, "EnableIPv4 %s -> %s", a->enable_ipv4 ? "true" : "false",
		       b->enable_ipv4 ? "true" : "false");
	if (a->enable_ipv6 != b->enable_ipv6)
		append(buf, len, &used, "EnableIPv6 %s -> %s", a->enable_ipv6 ? "true" : "false",
		       b->enable_ipv6 ? "true" : "false");
	if (a->enable_ipv4 && b->enable_ipv4) {
		diff_prefix(buf, len, &used, "Network", &a->network, &b->network);
		if (a->subnet_len != b->subnet_len)
			append(buf, len, &used, "SubnetLen %u -> %u", a->subnet_len, b->subnet_len);
		diff_prefix(buf, len, &used, "SubnetMin", &a->subnet_min, &b->subnet_min);
		diff_prefix(buf, len, &used, "SubnetMax", &a->subnet_max, &b->subnet_max);
	}
	if (a->enable_ipv6 && b->enable_ipv6) {
		diff_prefix(buf, len, &used, "IPv6Network", &a->ipv6_network, &b->ipv6_network);
		if (a->ipv6_subnet_len != b->ipv6_subnet_len)
			append(buf, len, &used, "IPv6SubnetLen %u -> %u", a->ipv6_subnet_len,
			       b->ipv6_subnet_len);
		diff_prefix(buf, len, &used, "IPv6SubnetMin", &a->ipv6_subnet_min,
		            &b->ipv6_subnet_min);
		diff_prefix(buf, len, &used, "IPv6SubnetMax", &a->ipv6_subnet_max,
		            &b->ipv6_subnet_max);
	}
	if (strcmp(a->backend_type, b->backend_type) != 0)
		append(buf, len, &used, "Backend.Type %s -> %s", a->backend_type, b->backend_type);
	else if (!json_equal(a->backend, b->backend))
		append(buf, len, &used, "Backend options");
	return buf;
}

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
