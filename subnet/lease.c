/*
 * Lease codec (COMPAT.md §1): flannel's subnet key "10.5.34.0-24[&fc00::-64]"
 * and its LeaseAttrs JSON, which Go's encoding/json reads case-insensitively
 * and writes in field order with <, >, & and U+2028/9 escaped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "subnet/lease.h"
#include "lib/errfmt.h"
#include "lib/jsonutil.h"

/* "ADDR-LEN" of @family, exactly: no spaces, decimal length without leading zeros. */
static int parse_key_part(const char *s, size_t n, uint8_t family, struct ipam_prefix *ret)
{
	char buf[IPAM_ADDR_STRLEN];
	struct ipam_prefix p;
	const char *dash;
	unsigned len = 0;
	size_t an, i;

	for (dash = s + n; dash > s && dash[-1] != '-'; dash--)
		;
	if (dash == s)
		return -EINVAL;
	dash--;
	an = (size_t)(dash - s);
	if (an == 0 || an >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, an);
	buf[an] = '\0';
	if (ipam_addr_parse(buf, &p.addr) < 0 || p.addr.family != family)
		return -EINVAL;
	dash++;
	n -= an + 1;
	if (n == 0 || n > 3 || (dash[0] == '0' && n > 1))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (dash[i] < '0' || dash[i] > '9')
			return -EINVAL;
		len = len * 10 + (unsigned)(dash[i] - '0');
	}
	if (len > ipam_family_bits(family))
		return -EINVAL;
	p.len = (uint8_t)len;
	if (!ipam_prefix_is_network(&p))
		return -EINVAL;
	*ret = p;
	return 0;
}

int lease_key_parse(const char *key, struct lease *ret)
{
	struct ipam_prefix v4 = { 0 }, v6 = { 0 };
	bool has4 = false, has6 = false;
	const char *amp;
	size_t n;

	if (!key || !ret)
		return -EINVAL;
	n = strlen(key);
	if (n == 0 || n >= LEASE_KEY_MAX)
		return -EINVAL;
	amp = memchr(key, '&', n);
	if (amp != key) {
		if (parse_key_part(key, amp ? (size_t)(amp - key) : n, AF_INET, &v4) < 0)
			return -EINVAL;
		has4 = true;
	}
	if (amp) {
		if (parse_key_part(amp + 1, n - (size_t)(amp - key) - 1, AF_INET6, &v6) < 0)
			return -EINVAL;
		has6 = true;
	}
	ret->has_ipv4 = has4;
	ret->subnet = v4;
	ret->has_ipv6 = has6;
	ret->ipv6_subnet = v6;
	return 0;
}

int lease_key_parse_lenient6(const char *key, struct lease *ret)
{
	char v4[LEASE_KEY_MAX];
	const char *amp;

	if (lease_key_parse(key, ret) == 0) {
		ret->ipv6_key_bad = false;
		return 0;
	}
	amp = key ? strchr(key, '&') : NULL;
	if (!amp || amp == key || (size_t)(amp - key) >= sizeof(v4))
		return -EINVAL;
	memcpy(v4, key, (size_t)(amp - key));
	v4[amp - key] = '\0';
	if (lease_key_parse(v4, ret) < 0)
		return -EINVAL;
	ret->ipv6_key_bad = true;
	return 0;
}

char *lease_key_format(const struct lease *l, char *buf)
{
	char a[IPAM_ADDR_STRLEN], b[IPAM_ADDR_STRLEN];
	struct ipam_prefix p4, p6;

	buf[0] = '\0';
	if (l->has_ipv4)
		p4 = ipam_prefix_network(&l->subnet);
	if (l->has_ipv6)
		p6 = ipam_prefix_network(&l->ipv6_subnet);
	if (l->has_ipv4 && l->has_ipv6)
		snprintf(buf, LEASE_KEY_MAX, "%s-%u&%s-%u", ipam_addr_format(&p4.addr, a), p4.len,
		         ipam_addr_format(&p6.addr, b), p6.len);
	else if (l->has_ipv4)
		snprintf(buf, LEASE_KEY_MAX, "%s-%u", ipam_addr_format(&p4.addr, a), p4.len);
	else if (l->has_ipv6)
		snprintf(buf, LEASE_KEY_MAX, "&%s-%u", ipam_addr_format(&p6.addr, b), p6.len);
	return buf;
}

static int get_ip(const char *name, json_t *v, uint8_t family, struct ipam_addr *ret, char *err,
                  size_t errlen)
{
	const char *fam = family == AF_INET ? "IPv4" : "IPv6";
	char q[ERRFMT_QUOTE_SIZE];

	if (!json_is_string(v)) {
		errfmt(err, errlen, "%s must be a string holding an %s address, not %s", name, fam,
		       json_type_desc(v));
		return -EINVAL;
	}
	if (ipam_addr_parse(json_string_value(v), ret) < 0 || ret->family != family) {
		errfmt(err, errlen, "%s \"%s\" is not an %s address", name,
		       errfmt_quote(json_string_value(v), q), fam);
		return -EINVAL;
	}
	return 0;
}

static int vxlan_from_json(const json_t *d, uint32_t *ret_vni, uint8_t ret_mac[6]);

/* *@slot = compact text of @v (NULL for NULL or JSON null); 0 or -ENOMEM (*@slot untouched). */
static int set_text(char **slot, const json_t *v)
{
	char *t = NULL;

	if (v && !json_is_null(v)) {
		t = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
		if (!t)
			return -ENOMEM;
	}
	free(*slot);
	*slot = t;
	return 0;
}

int lease_attrs_set_backend_data(struct lease_attrs *a, const json_t *data)
{
	uint32_t vni = 0;
	uint8_t mac[6] = { 0 };
	bool vx = data && vxlan_from_json(data, &vni, mac) == 0;

	if (set_text(&a->backend_data, data) < 0)
		return -ENOMEM;
	a->has_vxlan = vx;
	a->vni = vni;
	memcpy(a->vtep_mac, mac, 6);
	return 0;
}

int lease_attrs_set_vxlan(struct lease_attrs *a, uint32_t vni, const uint8_t mac[6])
{
	json_t *d = lease_vxlan_data_new(vni, mac);
	int r;

	if (!d)
		return -ENOMEM;
	r = lease_attrs_set_backend_data(a, d);
	json_decref(d);
	return r;
}

static int attrs_parse(const char *json, size_t len, struct lease_attrs *ret, char *err,
                       size_t errlen, bool lenient6)
{
	struct lease_attrs a = { 0 };
	bool has_public_ip = false;
	char q[ERRFMT_QUOTE_SIZE];
	json_error_t jerr;
	json_t *root, *v;
	const char *key;
	int r = -EINVAL;

	errfmt(err, errlen, "no error");
	if (!json || !ret) {
		errfmt(err, errlen, "lease value is empty");
		return -EINVAL;
	}
	root = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
	if (!root) {
		errfmt(err, errlen, "lease value is not valid JSON: %s (line %d, column %d)",
		       jerr.text, jerr.line, jerr.column);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		errfmt(err, errlen, "lease value must be a JSON object, not %s",
		       json_type_desc(root));
		goto fail;
	}
	/* Go: case-insensitive field names, unknown keys ignored, the last duplicate wins. */
	json_object_foreach(root, key, v) {
		if (!strcasecmp(key, "PublicIP")) {
			if (json_is_null(v))
				continue;
			if (get_ip("PublicIP", v, AF_INET, &a.public_ip, err, errlen) < 0)
				goto fail;
			has_public_ip = true;
		} else if (!strcasecmp(key, "PublicIPv6")) {
			a.has_public_ipv6 = false;
			if (json_is_null(v))
				continue;
			a.public_ipv6_bad = false;
			if (get_ip("PublicIPv6", v, AF_INET6, &a.public_ipv6, err, errlen) < 0) {
				if (!lenient6)
					goto fail;
				a.public_ipv6_bad = true;
				continue;
			}
			a.has_public_ipv6 = true;
		} else if (!strcasecmp(key, "BackendType")) {
			if (json_is_null(v))
				continue;
			if (!json_is_string(v)) {
				errfmt(err, errlen,
				       "BackendType must be a string such as \"vxlan\", not %s",
				       json_type_desc(v));
				goto fail;
			}
			if (json_string_length(v) >= sizeof(a.backend_type) ||
			    strlen(json_string_value(v)) != json_string_length(v)) {
				errfmt(err, errlen,
				       "BackendType \"%s\" is too long (at most %zu bytes)",
				       errfmt_quote(json_string_value(v), q),
				       sizeof(a.backend_type) - 1);
				goto fail;
			}
			memcpy(a.backend_type, json_string_value(v), json_string_length(v) + 1);
		} else if (!strcasecmp(key, "BackendData")) {
			if (lease_attrs_set_backend_data(&a, v) < 0)
				goto oom;
		} else if (!strcasecmp(key, "BackendV6Data")) {
			if (set_text(&a.backend_v6_data, v) < 0)
				goto oom;
		}
	}
	if (!has_public_ip) {
		errfmt(err, errlen, "PublicIP is missing: it must be the node's IPv4 address");
		goto fail;
	}
	json_decref(root);
	*ret = a;
	return 0;

oom:
	errfmt(err, errlen, "out of memory");
	r = -ENOMEM;
fail:
	lease_attrs_clear(&a);
	json_decref(root);
	return r;
}

int lease_attrs_parse(const char *json, size_t len, struct lease_attrs *ret, char *err,
                      size_t errlen)
{
	return attrs_parse(json, len, ret, err, errlen, false);
}

int lease_attrs_parse_lenient6(const char *json, size_t len, struct lease_attrs *ret, char *err,
                               size_t errlen)
{
	return attrs_parse(json, len, ret, err, errlen, true);
}

/*
 * Go's encoder escapes <, > and & (HTML safety) and U+2028/U+2029, and writes
 * \u escapes in lower-case hex; jansson does neither. Rewrites jansson's compact
 * output, where these bytes and backslashes only occur inside strings.
 */
static char *go_escape(char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(s), i, o = 0;
	char *out;

	out = malloc(6 * n + 1);
	if (!out) {
		free(s);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\' && i + 1 < n) {
			out[o++] = s[i++];
			out[o++] = s[i];
			if (s[i] == 'u' && i + 4 < n) {
				for (int k = 0; k < 4; k++) {
					char h = s[++i];

					out[o++] =
						(h >= 'A' && h <= 'F') ? (char)(h - 'A' + 'a') : h;
				}
			}
		} else if (c == '<' || c == '>' || c == '&') {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[c >> 4];
			out[o + 5] = hex[c & 0xf];
			o += 6;
		} else if (c == 0xe2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
		           ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
			memcpy(out + o, (unsigned char)s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
			o += 6;
			i += 2;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	free(s);
	return out;
}

/* Appends @n bytes of @t to the buffer *@s (length *@len, capacity *@cap); false on ENOMEM. */
static bool cat(char **s, size_t *len, size_t *cap, const char *t, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t nc = *cap ? *cap : 128;
		char *ns;

		while (nc < *len + n + 1)
			nc *= 2;
		ns = realloc(*s, nc);
		if (!ns)
			return false;
		*s = ns;
		*cap = nc;
	}
	memcpy(*s + *len, t, n);
	*len += n;
	(*s)[*len] = '\0';
	return true;
}

static bool cats(char **s, size_t *len, size_t *cap, const char *t)
{
	return cat(s, len, cap, t, strlen(t));
}

/*
 * The same bytes jansson's compact, order-preserving dump of the whole object gives (the
 * BackendData texts are such dumps themselves), then Go's escaping.
 */
char *lease_attrs_format(const struct lease_attrs *a)
{
	char buf[IPAM_ADDR_STRLEN];
	char *s = NULL, *type = NULL;
	size_t len = 0, cap = 0;

	if (!a) {
		errno = EINVAL;
		return NULL;
	}
	if (a->backend_type[0]) {
		json_t *t = json_string(a->backend_type);

		type = t ? json_dumps(t, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		json_decref(t);
		if (!type)
			goto oom;
	}
	if (!cats(&s, &len, &cap, "{\"PublicIP\":\"") ||
	    !cats(&s, &len, &cap, ipam_addr_format(&a->public_ip, buf)) ||
	    !cats(&s, &len, &cap, "\",\"PublicIPv6\":"))
		goto oom;
	if (a->has_public_ipv6) {
		if (!cats(&s, &len, &cap, "\"") ||
		    !cats(&s, &len, &cap, ipam_addr_format(&a->public_ipv6, buf)) ||
		    !cats(&s, &len, &cap, "\""))
			goto oom;
	} else if (!cats(&s, &len, &cap, "null")) {
		goto oom;
	}
	if (type && (!cats(&s, &len, &cap, ",\"BackendType\":") || !cats(&s, &len, &cap, type)))
		goto oom;
	if (a->backend_data &&
	    (!cats(&s, &len, &cap, ",\"BackendData\":") || !cats(&s, &len, &cap, a->backend_data)))
		goto oom;
	if (a->backend_v6_data && (!cats(&s, &len, &cap, ",\"BackendV6Data\":") ||
	                           !cats(&s, &len, &cap, a->backend_v6_data)))
		goto oom;
	if (!cats(&s, &len, &cap, "}"))
		goto oom;
	free(type);
	s = go_escape(s);
	if (!s)
		goto oom;
	return s;

oom:
	free(type);
	free(s);
	errno = ENOMEM;
	return NULL;
}

static int dup_text(char **dst, const char *src)
{
	*dst = NULL;
	if (src && !(*dst = strdup(src)))
		return -ENOMEM;
	return 0;
}

/* Same JSON: the same text, or (rare: another writer's member order) json_equal values. */
static bool text_eq(const char *a, const char *b)
{
	json_t *ja, *jb;
	bool eq;

	if (!a || !b)
		return a == b;
	if (strcmp(a, b) == 0)
		return true;
	ja = json_loads(a, JSON_DECODE_ANY, NULL);
	jb = json_loads(b, JSON_DECODE_ANY, NULL);
	eq = ja && jb && json_equal(ja, jb);
	json_decref(ja);
	json_decref(jb);
	return eq;
}

int lease_attrs_copy(struct lease_attrs *dst, const struct lease_attrs *src)
{
	if (dst == src)
		return 0;
	*dst = *src;
	if (dup_text(&dst->backend_data, src->backend_data) < 0 ||
	    dup_text(&dst->backend_v6_data, src->backend_v6_data) < 0) {
		free(dst->backend_data);
		dst->backend_data = dst->backend_v6_data = NULL;
		dst->has_vxlan = false;
		return -ENOMEM;
	}
	return 0;
}

bool lease_attrs_equal(const struct lease_attrs *a, const struct lease_attrs *b)
{
	if (!ipam_addr_equal(&a->public_ip, &b->public_ip))
		return false;
	if (a->has_public_ipv6 != b->has_public_ipv6 ||
	    (a->has_public_ipv6 && !ipam_addr_equal(&a->public_ipv6, &b->public_ipv6)))
		return false;
	if (strcmp(a->backend_type, b->backend_type))
		return false;
	return text_eq(a->backend_data, b->backend_data) &&
	       text_eq(a->backend_v6_data, b->backend_v6_data);
}

void lease_attrs_clear(struct lease_attrs *a)
{
	if (!a)
		return;
	free(a->backend_data);
	free(a->backend_v6_data);
	memset(a, 0, sizeof(*a));
}

int lease_copy(struct lease *dst, const struct lease *src)
{
	if (dst == src)
		return 0;
	*dst = *src;
	return lease_attrs_copy(&dst->attrs, &src->attrs);
}

void lease_clear(struct lease *l)
{
	if (!l)
		return;
	lease_attrs_clear(&l->attrs);
	memset(l, 0, sizeof(*l));
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Go's net.HardwareAddr text for a 6-byte address: "16:95:20:8d:5a:7b" (also '-' separated). */
static int parse_mac(const char *s, uint8_t mac[6])
{
	int i, hi, lo;

	if (strlen(s) != 17)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		hi = hexval(s[i * 3]);
		lo = hexval(s[i * 3 + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		if (i < 5 && s[i * 3 + 2] != ':' && s[i * 3 + 2] != '-')
			return -EINVAL;
		if (i < 5 && s[i * 3 + 2] != s[2])
			return -EINVAL;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int vxlan_from_json(const json_t *d, uint32_t *ret_vni, uint8_t ret_mac[6])
{
	json_t *v, *vni = NULL, *mac = NULL;
	uint8_t m[6];
	const char *k;
	json_int_t n;

	if (!json_is_object(d))
		return -EINVAL;
	/* jansson has no const iteration; nothing is modified */
	json_object_foreach((json_t *)(uintptr_t)d, k, v) {
		if (!strcasecmp(k, "VNI"))
			vni = v;
		else if (!strcasecmp(k, "VtepMAC"))
			mac = v;
	}
	if (!json_is_string(mac) || parse_mac(json_string_value(mac), m) < 0)
		return -EINVAL;
	/* Go decodes a missing VNI as 0 (flannel never reads the remote VNI). */
	n = 0;
	if (vni && !json_is_null(vni)) {
		if (!json_is_integer(vni))
			return -EINVAL;
		n = json_integer_value(vni);
		if (n < 0 || n > 0xffffff)
			return -EINVAL;
	}
	*ret_vni = (uint32_t)n;
	memcpy(ret_mac, m, 6);
	return 0;
}

int lease_vxlan_data(const struct lease_attrs *a, uint32_t *ret_vni, uint8_t ret_mac[6])
{
	if (!a || !a->has_vxlan || !a->backend_data)
		return -EINVAL;
	if (ret_vni)
		*ret_vni = a->vni;
	if (ret_mac)
		memcpy(ret_mac, a->vtep_mac, 6);
	return 0;
}

json_t *lease_vxlan_data_new(uint32_t vni, const uint8_t mac[6])
{
	char buf[18];
	json_t *o;

	snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
	         mac[4], mac[5]);
	o = json_pack("{s:I,s:s}", "VNI", (json_int_t)vni, "VtepMAC", buf);
	if (!o)
		errno = ENOMEM;
	return o;
}

int lease_attrs_set_vxlan_v6(struct lease_attrs *a, uint32_t vni, const uint8_t mac[6])
{
	json_t *d = lease_vxlan_data_new(vni, mac);
	int r;

	if (!d)
		return -ENOMEM;
	r = set_text(&a->backend_v6_data, d);
	json_decref(d);
	return r;
}

int lease_vxlan_v6_data(const struct lease_attrs *a, uint32_t *ret_vni, uint8_t ret_mac[6])
{
	uint8_t mac[6];
	uint32_t vni;
	json_t *d;
	int r;

	if (!a || !a->backend_v6_data)
		return -ENOENT;
	d = json_loads(a->backend_v6_data, JSON_DECODE_ANY, NULL);
	if (!d)
		return -EINVAL; /* the text was parsed once: only ENOMEM gets here */
	r = vxlan_from_json(d, &vni, mac);
	json_decref(d);
	if (r < 0)
		return r;
	if (ret_vni)
		*ret_vni = vni;
	if (ret_mac)
		memcpy(ret_mac, mac, 6);
	return 0;
}
