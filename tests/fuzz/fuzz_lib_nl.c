/*
 * The rtnetlink parsers of lib/nl.c on arbitrary bytes: the first byte picks the
 * message type, the rest is the message (header length forced to the input size,
 * as the receive loops only hand over messages that mnl_nlmsg_ok() accepts).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/rtnetlink.h>

#include "lib/nl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t types[] = { RTM_NEWROUTE, RTM_NEWNEIGH, RTM_NEWNEXTHOP, RTM_NEWLINK,
		                          RTM_NEWADDR };
	struct nlmsghdr *nlh;
	union {
		struct nl_route r;
		struct nl_neigh n;
		struct nl_nexthop x;
		struct nl_link l;
		struct nl_addr a;
	} u;
	size_t len;

	if (size < 1 || size > 65536)
		return 0;
	len = NLMSG_HDRLEN + size - 1;
	nlh = calloc(1, NLMSG_ALIGN(len));
	if (!nlh)
		return 0;
	memcpy((char *)nlh + NLMSG_HDRLEN, data + 1, size - 1);
	nlh->nlmsg_len = (uint32_t)len;
	nlh->nlmsg_type = types[data[0] % 5];
	switch (data[0] % 5) {
	case 0:
		nl_parse_route(nlh, &u.r);
		break;
	case 1:
		nl_parse_neigh(nlh, &u.n);
		break;
	case 2:
		nl_parse_nexthop(nlh, &u.x);
		break;
	case 3:
		nl_parse_link(nlh, &u.l);
		break;
	default:
		nl_parse_addr(nlh, &u.a);
		break;
	}
	free(nlh);
	return 0;
}
