/* What differs between two network configs, for twilld's SIGHUP message (see config.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "subnet/config.h"

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

char *subnet_config_diff(const struct subnet_config *a, const struct subnet_config *b, char *buf,
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
