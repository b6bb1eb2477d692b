/*
 * rtnetlink parsers (route, neighbour/fdb, nexthop, address, link with its vxlan data), both
 * address families. Split from nl.c; see nl.h for the contracts.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/nexthop.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>

#include "lib/nl.h"

static bool is6(uint8_t family)
{
	return family == AF_INET6;
}

static bool attr_in_addr(const struct nlattr *a, struct in_addr *ret)
{
	if (mnl_attr_get_payload_len(a) != sizeof(*ret))
		return false;
	memcpy(ret, mnl_attr_get_payload(a), sizeof(*ret));
	return true;
}

/* An address attribute of @family into a 16-byte union (zeroed by the caller). */
static bool attr_ip(const struct nlattr *a, uint8_t family, void *ret)
{
	size_t n = is6(family) ? 16 : 4;

	if (mnl_attr_get_payload_len(a) != n)
		return false;
	memcpy(ret, mnl_attr_get_payload(a), n);
	return true;
}

static bool attr_u32(const struct nlattr *a, uint32_t *ret)
{
	if (mnl_attr_validate(a, MNL_TYPE_U32) < 0)
		return false;
	*ret = mnl_attr_get_u32(a);
	return true;
}

int nl_parse_route(const struct nlmsghdr *nlh, struct nl_route *ret)
{
	const struct rtmsg *rtm;
	struct nlattr *a;
	uint32_t v;

	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(*rtm))
		return -EINVAL;
	rtm = mnl_nlmsg_get_payload(nlh);
	if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6)
		return -EAFNOSUPPORT;
	memset(ret, 0, sizeof(*ret));
	ret->family = rtm->rtm_family;
	ret->dst_len = rtm->rtm_dst_len;
	ret->table = rtm->rtm_table;
	ret->protocol = rtm->rtm_protocol;
	ret->type = rtm->rtm_type;
	ret->scope = rtm->rtm_scope;
	ret->flags = rtm->rtm_flags;
	mnl_attr_for_each(a, nlh, sizeof(*rtm)) {
		switch (mnl_attr_get_type(a)) {
		case RTA_DST:
			if (!attr_ip(a, ret->family, &ret->dst6))
				return -EINVAL;
			break;
		case RTA_GATEWAY:
			if (!attr_ip(a, ret->family, &ret->gw6))
				return -EINVAL;
			ret->has_gw = true;
			break;
		case RTA_OIF:
			if (!attr_u32(a, &v))
				return -EINVAL;
			ret->oif = (int)v;
			break;
		case RTA_NH_ID:
			if (!attr_u32(a, &ret->nh_id))
				return -EINVAL;
			break;
		case RTA_PRIORITY:
			if (!attr_u32(a, &ret->priority))
				return -EINVAL;
			break;
		case RTA_TABLE:
			if (!attr_u32(a, &v))
				return -EINVAL;
			ret->table = v > 255 ? RT_TABLE_UNSPEC : (uint8_t)v;
			break;
		default:
			break;
		}
	}
	return 0;
}

int nl_parse_neigh(const struct nlmsghdr *nlh, struct nl_neigh *ret)
{
	const struct ndmsg *ndm;
	struct nlattr *a;

	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(*ndm))
		return -EINVAL;
	ndm = mnl_nlmsg_get_payload(nlh);
	if (ndm->ndm_family != AF_INET && ndm->ndm_family != AF_INET6 &&
	    ndm->ndm_family != AF_BRIDGE)
		return -EAFNOSUPPORT;
	memset(ret, 0, sizeof(*ret));
	ret->family = ndm->ndm_family;
	ret->ifindex = ndm->ndm_ifindex;
	ret->state = ndm->ndm_state;
	ret->flags = ndm->ndm_flags;
	mnl_attr_for_each(a, nlh, sizeof(*ndm)) {
		switch (mnl_attr_get_type(a)) {
		case NDA_DST:
			/* an fdb remote is either family: its length says which */
			ret->dst_family = mnl_attr_get_payload_len(a) == 16 ? AF_INET6 : AF_INET;
			if (ret->family != AF_BRIDGE && ret->dst_family != ret->family)
				break;
			ret->has_dst = attr_ip(a, ret->dst_family, &ret->dst6);
			break;
		case NDA_LLADDR:
			if (mnl_attr_get_payload_len(a) == 6) {
				memcpy(ret->lladdr, mnl_attr_get_payload(a), 6);
				ret->has_lladdr = true;
			}
			break;
		default:
			break;
		}
	}
	return 0;
}

int nl_parse_nexthop(const struct nlmsghdr *nlh, struct nl_nexthop *ret)
{
	const struct nhmsg *nhm;
	struct nlattr *a;
	uint32_t v;

	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(*nhm))
		return -EINVAL;
	nhm = mnl_nlmsg_get_payload(nlh);
	memset(ret, 0, sizeof(*ret));
	ret->family = nhm->nh_family;
	ret->flags = nhm->nh_flags;
	mnl_attr_for_each(a, nlh, sizeof(*nhm)) {
		switch (mnl_attr_get_type(a)) {
		case NHA_ID:
			if (!attr_u32(a, &ret->id))
				return -EINVAL;
			break;
		case NHA_OIF:
			if (!attr_u32(a, &v))
				return -EINVAL;
			ret->oif = (int)v;
			break;
		case NHA_GATEWAY:
			ret->has_gw = (nhm->nh_family == AF_INET || nhm->nh_family == AF_INET6) &&
			              attr_ip(a, nhm->nh_family, &ret->gw6);
			break;
		case NHA_BLACKHOLE:
			ret->blackhole = true;
			break;
		case NHA_GROUP:
			ret->group = true;
			break;
		default:
			break;
		}
	}
	return ret->id ? 0 : -EINVAL;
}

int nl_parse_addr(const struct nlmsghdr *nlh, struct nl_addr *ret)
{
	const struct ifaddrmsg *ifa;
	struct nlattr *a;
	bool local = false;

	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(*ifa))
		return -EINVAL;
	ifa = mnl_nlmsg_get_payload(nlh);
	if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
		return -EAFNOSUPPORT;
	memset(ret, 0, sizeof(*ret));
	ret->family = ifa->ifa_family;
	ret->ifindex = (int)ifa->ifa_index;
	ret->prefixlen = ifa->ifa_prefixlen;
	ret->scope = ifa->ifa_scope;
	ret->flags = ifa->ifa_flags;
	mnl_attr_for_each(a, nlh, sizeof(*ifa)) {
		uint16_t t = mnl_attr_get_type(a);

		if (t == IFA_LOCAL)
			local = attr_ip(a, ret->family, &ret->local6);
		else if (t == IFA_ADDRESS && !local)
			attr_ip(a, ret->family, &ret->local6);
		else if (t == IFA_FLAGS)
			attr_u32(a, &ret->flags);
	}
	return 0;
}

static void parse_vxlan(const struct nlattr *data, struct nl_vxlan *v)
{
	struct nlattr *a;
	uint32_t u;

	mnl_attr_for_each_nested(a, data) {
		switch (mnl_attr_get_type(a)) {
		case IFLA_VXLAN_ID:
			attr_u32(a, &v->vni);
			break;
		case IFLA_VXLAN_LOCAL:
			if (attr_in_addr(a, &v->local))
				v->family = AF_INET;
			break;
		case IFLA_VXLAN_LOCAL6:
			if (attr_ip(a, AF_INET6, &v->local6))
				v->family = AF_INET6;
			break;
		case IFLA_VXLAN_LINK:
			if (attr_u32(a, &u))
				v->link = (int)u;
			break;
		case IFLA_VXLAN_PORT:
			if (mnl_attr_validate(a, MNL_TYPE_U16) >= 0)
				v->port = ntohs(mnl_attr_get_u16(a));
			break;
		case IFLA_VXLAN_LEARNING:
			if (mnl_attr_validate(a, MNL_TYPE_U8) >= 0)
				v->learning = mnl_attr_get_u8(a) != 0;
			break;
		case IFLA_VXLAN_GBP:
			v->gbp = true;
			break;
		default:
			break;
		}
	}
}

int nl_parse_link(const struct nlmsghdr *nlh, struct nl_link *ret)
{
	const struct ifinfomsg *ifi;
	struct nlattr *a;
	const struct nlattr *data = NULL;
	uint32_t v;

	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(*ifi))
		return -EINVAL;
	ifi = mnl_nlmsg_get_payload(nlh);
	memset(ret, 0, sizeof(*ret));
	ret->ifindex = ifi->ifi_index;
	ret->flags = ifi->ifi_flags;
	mnl_attr_for_each(a, nlh, sizeof(*ifi)) {
		switch (mnl_attr_get_type(a)) {
		case IFLA_IFNAME:
			if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
				snprintf(ret->name, sizeof(ret->name), "%s", mnl_attr_get_str(a));
			break;
		case IFLA_MTU:
			if (attr_u32(a, &v))
				ret->mtu = (int)v;
			break;
		case IFLA_ADDRESS:
			if (mnl_attr_get_payload_len(a) == 6) {
				memcpy(ret->mac, mnl_attr_get_payload(a), 6);
				ret->has_mac = true;
			}
			break;
		case IFLA_LINKINFO: {
			struct nlattr *li;

			if (mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
				break;
			mnl_attr_for_each_nested(li, a) {
				uint16_t t = mnl_attr_get_type(li);

				if (t == IFLA_INFO_KIND &&
				    mnl_attr_validate(li, MNL_TYPE_NUL_STRING) >= 0)
					snprintf(ret->kind, sizeof(ret->kind), "%s",
					         mnl_attr_get_str(li));
				else if (t == IFLA_INFO_DATA &&
				         mnl_attr_validate(li, MNL_TYPE_NESTED) >= 0)
					data = li;
			}
			break;
		}
		default:
			break;
		}
	}
	if (strcmp(ret->kind, "vxlan") == 0) {
		ret->is_vxlan = true;
		if (data)
			parse_vxlan(data, &ret->vxlan);
	}
	return 0;
}
