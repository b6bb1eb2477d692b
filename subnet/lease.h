/*
 * Leases: flannel's etcd key format and lease JSON (COMPAT.md §1), both ways.
 */
#ifndef TWILL_SUBNET_LEASE_H
#define TWILL_SUBNET_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "ipam/ipam.h"

#define LEASE_BACKEND_TYPE_MAX 32
#define LEASE_KEY_MAX          128

struct lease_attrs {
	struct ipam_addr public_ip; /* AF_INET */
	bool has_public_ipv6;
	struct ipam_addr public_ipv6;              /* AF_INET6 when has_public_ipv6 */
	char backend_type[LEASE_BACKEND_TYPE_MAX]; /* "" when absent (flannel's udp writes none) */
	/*
	 * BackendData read as vxlan's {"VNI":..,"VtepMAC":..} (lease_attrs_parse and
	 * lease_attrs_set_backend_data fill these from backend_data; lease_vxlan_data reads them).
	 */
	bool has_vxlan;
	uint8_t vtep_mac[6];
	uint32_t vni;
	/*
	 * BackendData as compact JSON text (jansson's JSON_COMPACT | JSON_PRESERVE_ORDER dump,
	 * before Go's escaping), malloc'd and owned; NULL when absent or JSON null. Set it with
	 * lease_attrs_set_backend_data (which keeps the vxlan fields above in step).
	 */
	char *backend_data;
	char *backend_v6_data; /* flannel's dual-stack vxlan BackendV6Data; same rules */
	/* lease_attrs_parse_lenient6 only: PublicIPv6 was there but not an IPv6 address */
	bool public_ipv6_bad;
};

struct lease {
	bool has_ipv4;
	struct ipam_prefix subnet; /* network address */
	bool has_ipv6;
	struct ipam_prefix ipv6_subnet; /* network address */
	struct lease_attrs attrs;
	int64_t store_lease_id; /* 0 = reservation (key with no etcd lease) */
	int64_t expires_at;     /* CLOCK_REALTIME seconds; 0 = never (reservation) or unknown */
	int64_t mod_revision;
	/* lease_key_parse_lenient6 only: the key's IPv6 part is malformed (has_ipv6 false) */
	bool ipv6_key_bad;
};

/*
 * "10.5.34.0-24", "10.5.34.0-24&fc00:0:0:5::-64" or "&fc00::-64" (IPv6 only).
 * 0 or -EINVAL (also for host bits set). Fills has_ipv4/subnet/has_ipv6/ipv6_subnet.
 */
int lease_key_parse(const char *key, struct lease *ret);
/*
 * As lease_key_parse, but a key whose IPv4 part is valid and whose IPv6 part after '&' is
 * not reads as that IPv4 lease with ipv6_key_bad set (twill programs the valid half of a
 * dual-stack lease). 0 or -EINVAL.
 */
int lease_key_parse_lenient6(const char *key, struct lease *ret);
/* Inverse of lease_key_parse (host bits cleared); returns @buf, which holds LEASE_KEY_MAX bytes. */
char *lease_key_format(const struct lease *l, char *buf);

/*
 * Parse the lease value JSON (keys case-insensitive, unknown keys ignored, PublicIP
 * required); 0 and *ret filled (caller clears it), or -EINVAL with the reason in @err
 * and *ret untouched. Does not log.
 */
int lease_attrs_parse(const char *json, size_t len, struct lease_attrs *ret, char *err,
                      size_t errlen);
/*
 * As lease_attrs_parse, but a PublicIPv6 that is not an IPv6 address leaves
 * has_public_ipv6 false and sets public_ipv6_bad instead of failing (the IPv4 half of
 * such a lease stays usable).
 */
int lease_attrs_parse_lenient6(const char *json, size_t len, struct lease_attrs *ret, char *err,
                               size_t errlen);
/*
 * Byte-exact flannel JSON (field order PublicIP, PublicIPv6, BackendType, BackendData,
 * BackendV6Data; the last three left out when empty/NULL; <, >, & escaped as Go does).
 * malloc'd; NULL with errno ENOMEM.
 */
char *lease_attrs_format(const struct lease_attrs *a);
/*
 * Deep copy (BackendData texts duplicated); @dst is overwritten, not cleared. 0, or -ENOMEM
 * with @dst holding no BackendData.
 */
int lease_attrs_copy(struct lease_attrs *dst, const struct lease_attrs *src);
/* Same addresses, BackendType and BackendData/BackendV6Data (same text, else json_equal). */
bool lease_attrs_equal(const struct lease_attrs *a, const struct lease_attrs *b);
/* Frees the BackendData texts and zeroes @a (NULL-safe); the struct may be reused after. */
void lease_attrs_clear(struct lease_attrs *a);
/*
 * Replace BackendData with @data (NULL or JSON null: none), stored as its compact text,
 * and refresh has_vxlan/vni/vtep_mac from it. 0 or -ENOMEM (@a unchanged).
 */
int lease_attrs_set_backend_data(struct lease_attrs *a, const json_t *data);
/* BackendData = {"VNI":@vni,"VtepMAC":"@mac"} (flannel's vxlan). 0 or -ENOMEM. */
int lease_attrs_set_vxlan(struct lease_attrs *a, uint32_t vni, const uint8_t mac[6]);

/* Copy of the whole lease (attrs as lease_attrs_copy); @dst overwritten. 0 or -ENOMEM. */
int lease_copy(struct lease *dst, const struct lease *src);
/* Drops owned references and zeroes @l; NULL-safe. */
void lease_clear(struct lease *l);

/*
 * VXLAN BackendData helpers: {"VNI":1,"VtepMAC":"16:95:20:8d:5a:7b"}. lease_vxlan_data:
 * 0 or -EINVAL (not an object, VtepMAC missing or not a MAC, VNI not 0..2^24-1; a
 * missing VNI reads as 0, as in Go); it reads the fields parsed into @a (has_vxlan).
 * lease_vxlan_data_new: a new reference, NULL on ENOMEM.
 */
int lease_vxlan_data(const struct lease_attrs *a, uint32_t *ret_vni, uint8_t ret_mac[6]);
json_t *lease_vxlan_data_new(uint32_t vni, const uint8_t mac[6]);
/* BackendV6Data = {"VNI":@vni,"VtepMAC":"@mac"} (flannel's dual-stack vxlan). 0 or -ENOMEM. */
int lease_attrs_set_vxlan_v6(struct lease_attrs *a, uint32_t vni, const uint8_t mac[6]);
/*
 * Read BackendV6Data as vxlan's {"VNI":..,"VtepMAC":..} (rules of lease_vxlan_data):
 * 0, -ENOENT when absent (or JSON null), -EINVAL when malformed. Does not log.
 */
int lease_vxlan_v6_data(const struct lease_attrs *a, uint32_t *ret_vni, uint8_t ret_mac[6]);

#endif
