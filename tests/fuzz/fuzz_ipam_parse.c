/*
 * libFuzzer harness for the ipam parsers: arbitrary bytes (NUL-terminated copy)
 * into ipam_addr_parse/ipam_prefix_parse; whatever parses must format and parse
 * back to the same value, and the arithmetic on it must not misbehave.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipam/ipam.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_addr(const char *s)
{
	char buf[IPAM_ADDR_STRLEN], buf2[IPAM_ADDR_STRLEN];
	struct ipam_addr a, b;

	if (ipam_addr_parse(s, &a) != 0)
		return;
	if (a.family != AF_INET && a.family != AF_INET6)
		__builtin_trap();
	ipam_addr_format(&a, buf);
	if (ipam_addr_parse(buf, &b) != 0 || !ipam_addr_equal(&a, &b) ||
	    memcmp(&a, &b, sizeof(a)) != 0)
		__builtin_trap();
	if (strcmp(ipam_addr_format(&b, buf2), buf) != 0)
		__builtin_trap();
}

static void check_prefix(const char *s)
{
	char buf[IPAM_PREFIX_STRLEN], buf2[IPAM_PREFIX_STRLEN];
	struct ipam_prefix p, q, net, next;
	struct ipam_addr first, last;

	if (ipam_prefix_parse(s, &p) != 0)
		return;
	if (p.len > ipam_family_bits(p.addr.family))
		__builtin_trap();
	ipam_prefix_format(&p, buf);
	if (ipam_prefix_parse(buf, &q) != 0 || !ipam_prefix_equal(&p, &q) ||
	    memcmp(&p, &q, sizeof(p)) != 0)
		__builtin_trap();
	if (strcmp(ipam_prefix_format(&q, buf2), buf) != 0)
		__builtin_trap();

	/* arithmetic invariants */
	net = ipam_prefix_network(&p);
	last = ipam_prefix_last(&p);
	if (!ipam_prefix_is_network(&net) || !ipam_prefix_contains(&net, &p) ||
	    !ipam_prefix_contains(&p, &net) || !ipam_prefix_overlaps(&p, &net) ||
	    !ipam_prefix_contains_addr(&p, &last) || !ipam_prefix_contains_addr(&p, &p.addr))
		__builtin_trap();
	if (ipam_prefix_first_host(&p, &first) == 0 && !ipam_prefix_contains_addr(&p, &first))
		__builtin_trap();
	if (ipam_prefix_count(&net, &net, p.len) != 1)
		__builtin_trap();
	if (ipam_prefix_next(&p, &next) == 0) {
		if (ipam_prefix_overlaps(&p, &next) || ipam_prefix_cmp(&net, &next) >= 0 ||
		    ipam_prefix_count(&net, &next, p.len) != 2)
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size > 256)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_addr(s);
	check_prefix(s);
	free(s);
	return 0;
}
