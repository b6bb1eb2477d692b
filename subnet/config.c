/*
 * Network config parser (docs/compat.md §2). flannel decodes the document with Go's
 * encoding/json into a struct, so keys match case-insensitively, unknown keys
 * are ignored, null leaves a field at its default, and of several keys naming
 * the same field the last one wins. Validation mirrors flannel's ParseConfig;
 * every message says what is wrong and what would be right.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "subnet/config.h"
#include "lib/errfmt.h"
#include "lib/jsonutil.h"

static const char *const backend_types[] = { "udp", "vxlan", "host-gw" };

/* What was found in the document, before defaults and validation. */
struct raw_config {
	int enable_ipv4; /* -1 unset */
	int enable_ipv6;
	bool has_network;
	struct ipam_prefix network;
	long long subnet_len;
	bool has_subnet_min;
	struct ipam_addr subnet_min;
	bool has_subnet_max;
	struct ipam_addr subnet_max;
	bool has_ipv6_network;
	struct ipam_prefix ipv6_network;
	long long ipv6_subnet_len;
	bool has_ipv6_subnet_min;
	struct ipam_addr ipv6_subnet_min;
	bool has_ipv6_subnet_max;
	struct ipam_addr ipv6_subnet_max;
	json_t *backend; /* borrowed */
};

static int get_bool(const char *name, json_t *v, int *ret, char *err, size_t errlen)
{
	if (!json_is_boolean(v)) {
		errfmt(err, errlen, "%s must be true or false, not %s", name,
		       json_type_desc_exact(v));
		return -EINVAL;
	}
	*ret = json_is_true(v);
	return 0;
}

/* Range checks against the family's limit happen in validate_family (only for enabled families). */
static int get_len(const char *name, json_t *v, unsigned max, long long *ret, char *err,
                   size_t errlen)
{
	json_int_t n;

	if (!json_is_integer(v)) {
		errfmt(err, errlen, "%s must be an integer prefix length (at most %u), not %s",
		       name, max, json_type_desc_exact(v));
		return -EINVAL;
	}
	n = json_integer_value(v);
	if (n < 0) {
		errfmt(err, errlen, "%s %lld is negative: it must be a prefix length, at most %u",
		       name, (long long)n, max);
		return -EINVAL;
	}
	*ret = n;
	return 0;
}

static int get_prefix(const char *name, json_t *v, uint8_t family, struct ipam_prefix *ret,
                      char *err, size_t errlen)
{
	const char *example = family == AF_INET ? "10.5.0.0/16" : "fc00:5::/48";
	const char *fam = family == AF_INET ? "IPv4" : "IPv6";
	char q[ERRFMT_QUOTE_SIZE];
	struct ipam_prefix p;

	if (!json_is_string(v)) {
		errfmt(err, errlen, "%s must be a string holding an %s CIDR such as \"%s\", not %s",
		       name, fam, example, json_type_desc_exact(v));
		return -EINVAL;
	}
	if (ipam_prefix_parse(json_string_value(v), &p) < 0 || p.addr.family != family) {
		errfmt(err, errlen, "%s \"%s\" is not an %s CIDR: expected e.g. \"%s\"", name,
		       errfmt_quote(json_string_value(v), q), fam, example);
		return -EINVAL;
	}
	/* Go's net.ParseCIDR masks the host bits; so do we. */
	*ret = ipam_prefix_network(&p);
	return 0;
}

static int get_addr(const char *name, json_t *v, uint8_t family, struct ipam_addr *ret, char *err,
                    size_t errlen)
{
	const char *example = family == AF_INET ? "10.5.1.0" : "fc00:5:0:1::";
	const char *fam = family == AF_INET ? "IPv4" : "IPv6";
	char q[ERRFMT_QUOTE_SIZE];
	struct ipam_addr a;

	if (!json_is_string(v)) {
		errfmt(err, errlen,
		       "%s must be a string holding an %s subnet address such as \"%s\", not %s",
		       name, fam, example, json_type_desc_exact(v));
		return -EINVAL;
	}
	if (ipam_addr_parse(json_string_value(v), &a) < 0 || a.family != family) {
		errfmt(err, errlen,
		       "%s \"%s\" is not an %s address: expected a subnet address such as \"%s\" (no /length)",
		       name, errfmt_quote(json_string_value(v), q), fam, example);
		return -EINVAL;
	}
	*ret = a;
	return 0;
}

static int collect(json_t *root, struct raw_config *raw, char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	int r = 0;

	json_object_foreach(root, key, v) {
		/* Go's encoding/json leaves a field untouched when the value is null. */
		if (json_is_null(v))
			continue;
		if (!strcasecmp(key, "EnableIPv4")) {
			r = get_bool("EnableIPv4", v, &raw->enable_ipv4, err, errlen);
		} else if (!strcasecmp(key, "EnableIPv6")) {
			r = get_bool("EnableIPv6", v, &raw->enable_ipv6, err, errlen);
		} else if (!strcasecmp(key, "Network")) {
			r = get_prefix("Network", v, AF_INET, &raw->network, err, errlen);
			raw->has_network = true;
		} else if (!strcasecmp(key, "SubnetLen")) {
			r = get_len("SubnetLen", v, 30, &raw->subnet_len, err, errlen);
		} else if (!strcasecmp(key, "SubnetMin")) {
			r = get_addr("SubnetMin", v, AF_INET, &raw->subnet_min, err, errlen);
			raw->has_subnet_min = true;
		} else if (!strcasecmp(key, "SubnetMax")) {
			r = get_addr("SubnetMax", v, AF_INET, &raw->subnet_max, err, errlen);
			raw->has_subnet_max = true;
		} else if (!strcasecmp(key, "IPv6Network")) {
			r = get_prefix("IPv6Network", v, AF_INET6, &raw->ipv6_network, err, errlen);
			raw->has_ipv6_network = true;
		} else if (!strcasecmp(key, "IPv6SubnetLen")) {
			r = get_len("IPv6SubnetLen", v, 126, &raw->ipv6_subnet_len, err, errlen);
		} else if (!strcasecmp(key, "IPv6SubnetMin")) {
			r = get_addr("IPv6SubnetMin", v, AF_INET6, &raw->ipv6_subnet_min, err,
			             errlen);
			raw->has_ipv6_subnet_min = true;
		} else if (!strcasecmp(key, "IPv6SubnetMax")) {
			r = get_addr("IPv6SubnetMax", v, AF_INET6, &raw->ipv6_subnet_max, err,
			             errlen);
			raw->has_ipv6_subnet_max = true;
		} else if (!strcasecmp(key, "Backend")) {
			if (!json_is_object(v)) {
				errfmt(err, errlen,
				       "Backend must be an object such as {\"Type\": \"vxlan\"}, not %s",
				       json_type_desc_exact(v));
				r = -EINVAL;
			}
			raw->backend = v;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* Last member of @obj whose key matches @key case-insensitively (Go's last-wins). */
static json_t *object_get_ci(json_t *obj, const char *key)
{
	json_t *found = NULL, *v;
	const char *k;

	if (!json_is_object(obj))
		return NULL;
	json_object_foreach(obj, k, v)
		if (!strcasecmp(k, key))
			found = v;
	return found;
}

static int parse_backend(struct subnet_config *cfg, json_t *backend, char *err, size_t errlen)
{
	char q[ERRFMT_QUOTE_SIZE];
	const char *type = "";
	json_t *t = NULL;
	size_t i, n;

	if (backend)
		t = object_get_ci(backend, "Type");
	if (t && !json_is_null(t)) {
		if (!json_is_string(t)) {
			errfmt(err, errlen,
			       "Backend.Type must be a string (one of udp, vxlan, host-gw), not %s",
			       json_type_desc_exact(t));
			return -EINVAL;
		}
		type = json_string_value(t);
	}
	/* flannel uses udp when Backend or its Type is absent (Go cannot tell "" from absent). */
	if (type[0] == '\0') {
		snprintf(cfg->backend_type, sizeof(cfg->backend_type), "udp");
		cfg->backend_defaulted = true;
	} else {
		n = strlen(type);
		for (i = 0; i < sizeof(backend_types) / sizeof(backend_types[0]); i++)
			if (n == strlen(backend_types[i]) && !strcasecmp(type, backend_types[i]))
				break;
		if (i == sizeof(backend_types) / sizeof(backend_types[0])) {
			errfmt(err, errlen,
			       "Backend.Type \"%s\" is not supported: use one of udp, vxlan, host-gw",
			       errfmt_quote(type, q));
			return -EINVAL;
		}
		snprintf(cfg->backend_type, sizeof(cfg->backend_type), "%s", backend_types[i]);
	}
	cfg->backend = backend ? json_incref(backend) : json_object();
	if (!cfg->backend) {
		errfmt(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/*
 * One address family: defaults for the subnet length and range, then the
 * checks. @names are the field names of the family, for the messages.
 */
struct family_names {
	const char *network, *subnet_len, *subnet_min, *subnet_max;
	unsigned max_len;     /* largest subnet length: 30 or 126 */
	unsigned default_len; /* 24 or 64 */
	const char *article;  /* before subnet_len in a sentence */
};

static const struct family_names names4 = { "Network", "SubnetLen", "SubnetMin", "SubnetMax",
	                                    30,        24,          "a" };
static const struct family_names names6 = {
	"IPv6Network", "IPv6SubnetLen", "IPv6SubnetMin", "IPv6SubnetMax", 126, 64, "an"
};

static int check_bound(const struct family_names *nm, const char *name,
                       const struct ipam_prefix *network, uint8_t len, const struct ipam_addr *a,
                       struct ipam_prefix *ret, char *err, size_t errlen)
{
	char abuf[IPAM_ADDR_STRLEN], nbuf[IPAM_PREFIX_STRLEN], sbuf[IPAM_ADDR_STRLEN];
	struct ipam_prefix p = { .addr = *a, .len = len }, pn;

	if (!ipam_prefix_contains_addr(network, a)) {
		errfmt(err, errlen, "%s %s is not inside %s %s", name, ipam_addr_format(a, abuf),
		       nm->network, ipam_prefix_format(network, nbuf));
		return -EINVAL;
	}
	if (!ipam_prefix_is_network(&p)) {
		pn = ipam_prefix_network(&p);
		errfmt(err, errlen,
		       "%s %s is not on %s %s boundary: with %s %u it must be the address of a /%u subnet, such as %s",
		       name, ipam_addr_format(a, abuf), nm->article, nm->subnet_len, nm->subnet_len,
		       len, len, ipam_addr_format(&pn.addr, sbuf));
		return -EINVAL;
	}
	*ret = p;
	return 0;
}

static int validate_family(const struct family_names *nm, const struct ipam_prefix *network,
                           long long given_len, const struct ipam_addr *min,
                           const struct ipam_addr *max, uint8_t *ret_len,
                           struct ipam_prefix *ret_min, struct ipam_prefix *ret_max, char *err,
                           size_t errlen)
{
	char nbuf[IPAM_PREFIX_STRLEN], abuf[IPAM_ADDR_STRLEN], bbuf[IPAM_ADDR_STRLEN];
	unsigned min_net = nm->max_len - 2; /* room for at least four subnets */
	struct ipam_prefix lo, hi, first;
	unsigned len;
	int r;

	if (network->len > min_net) {
		errfmt(err, errlen, "%s %s is too small: the minimum useful network prefix is /%u",
		       nm->network, ipam_prefix_format(network, nbuf), min_net);
		return -EINVAL;
	}
	if (given_len > nm->max_len) {
		errfmt(err, errlen, "%s %lld is too large: it must be at most %u", nm->subnet_len,
		       given_len, nm->max_len);
		return -EINVAL;
	}
	if (given_len > 0) {
		len = (unsigned)given_len;
		if (len < network->len + 2u) {
			errfmt(err, errlen,
			       "%s %u is too small for %s %s: it must be at least %u so that the network holds at least four subnets",
			       nm->subnet_len, len, nm->network, ipam_prefix_format(network, nbuf),
			       network->len + 2u);
			return -EINVAL;
		}
	} else if (network->len <= nm->default_len - 2) {
		len = nm->default_len;
	} else {
		len = network->len + 2u;
	}

	if (min) {
		r = check_bound(nm, nm->subnet_min, network, (uint8_t)len, min, &lo, err, errlen);
		if (r < 0)
			return r;
	} else {
		/* The first subnet is skipped: its network address is the Network's. */
		first = (struct ipam_prefix){ .addr = network->addr, .len = (uint8_t)len };
		r = ipam_prefix_next(&first, &lo);
		if (r < 0) {
			errfmt(err, errlen, "%s %s has no room for a second subnet", nm->network,
			       ipam_prefix_format(network, nbuf));
			return -EINVAL;
		}
	}
	if (max) {
		r = check_bound(nm, nm->subnet_max, network, (uint8_t)len, max, &hi, err, errlen);
		if (r < 0)
			return r;
	} else {
		hi = (struct ipam_prefix){ .addr = ipam_prefix_last(network), .len = (uint8_t)len };
		hi = ipam_prefix_network(&hi);
	}
	if (ipam_prefix_cmp(&lo, &hi) > 0) {
		errfmt(err, errlen, "%s %s%s is greater than %s %s%s (it must be at most %s)",
		       nm->subnet_min, ipam_addr_format(&lo.addr, abuf),
		       min ? "" : " (the default: the second subnet)", nm->subnet_max,
		       ipam_addr_format(&hi.addr, bbuf),
		       max ? "" : " (the default: the last subnet)", nm->subnet_max);
		return -EINVAL;
	}
	*ret_len = (uint8_t)len;
	*ret_min = lo;
	*ret_max = hi;
	return 0;
}

static bool addr_is_zero(const struct ipam_addr *a)
{
	static const uint8_t zero[16];

	return !memcmp(a->bytes, zero, sizeof(zero));
}

static bool only_space(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

struct subnet_config *subnet_config_parse(const char *json, size_t len, char *err, size_t errlen)
{
	struct raw_config raw = { .enable_ipv4 = -1, .enable_ipv6 = -1 };
	struct subnet_config *cfg = NULL;
	json_error_t jerr;
	json_t *root = NULL;
	int r = -EINVAL;

	errfmt(err, errlen, "no error");
	if (!json) {
		errfmt(err, errlen, "config is empty");
		goto fail;
	}
	if (only_space(json, len)) {
		errfmt(err, errlen,
		       "config is empty: it must be a JSON object such as {\"Network\": \"10.5.0.0/16\"}");
		goto fail;
	}
	/* Without JSON_DECODE_ANY jansson would name any scalar a syntax error. */
	root = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
	if (!root) {
		errfmt(err, errlen, "config is not valid JSON: %s (line %d, column %d)", jerr.text,
		       jerr.line, jerr.column);
		goto fail;
	}
	if (!json_is_object(root)) {
		errfmt(err, errlen,
		       "config must be a JSON object such as {\"Network\": \"10.5.0.0/16\"}, not %s",
		       json_type_desc_exact(root));
		goto fail;
	}
	r = collect(root, &raw, err, errlen);
	if (r < 0)
		goto fail;

	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		r = -ENOMEM;
		errfmt(err, errlen, "out of memory");
		goto fail;
	}
	cfg->enable_ipv4 = raw.enable_ipv4 != 0; /* default true */
	cfg->enable_ipv6 = raw.enable_ipv6 == 1; /* default false */
	r = -EINVAL;
	if (!cfg->enable_ipv4 && !cfg->enable_ipv6) {
		errfmt(err, errlen,
		       "EnableIPv4 and EnableIPv6 are both false: at least one must be true");
		goto fail;
	}
	if (cfg->enable_ipv4) {
		if (!raw.has_network) {
			errfmt(err, errlen,
			       "Network is missing: with EnableIPv4 (the default) it must be an IPv4 CIDR such as \"10.5.0.0/16\"");
			goto fail;
		}
		cfg->network = raw.network;
		/* flannel's SubnetMin/Max are plain IPv4 values: 0.0.0.0 means unset. */
		r = validate_family(
			&names4, &cfg->network, raw.subnet_len,
			raw.has_subnet_min && !addr_is_zero(&raw.subnet_min) ? &raw.subnet_min
									     : NULL,
			raw.has_subnet_max && !addr_is_zero(&raw.subnet_max) ? &raw.subnet_max
									     : NULL,
			&cfg->subnet_len, &cfg->subnet_min, &cfg->subnet_max, err, errlen);
		if (r < 0)
			goto fail;
	}
	if (cfg->enable_ipv6) {
		if (!raw.has_ipv6_network) {
			errfmt(err, errlen,
			       "IPv6Network is missing: with EnableIPv6 it must be an IPv6 CIDR such as \"fc00:5::/48\"");
			r = -EINVAL;
			goto fail;
		}
		cfg->ipv6_network = raw.ipv6_network;
		r = validate_family(&names6, &cfg->ipv6_network, raw.ipv6_subnet_len,
		                    raw.has_ipv6_subnet_min ? &raw.ipv6_subnet_min : NULL,
		                    raw.has_ipv6_subnet_max ? &raw.ipv6_subnet_max : NULL,
		                    &cfg->ipv6_subnet_len, &cfg->ipv6_subnet_min,
		                    &cfg->ipv6_subnet_max, err, errlen);
		if (r < 0)
			goto fail;
	}
	r = parse_backend(cfg, raw.backend, err, errlen);
	if (r < 0)
		goto fail;
	json_decref(root);
	return cfg;

fail:
	subnet_config_free(cfg);
	json_decref(root);
	errno = -r;
	return NULL;
}

void subnet_config_free(struct subnet_config *cfg)
{
	if (!cfg)
		return;
	json_decref(cfg->backend);
	free(cfg);
}

json_t *subnet_config_backend_opt(const struct subnet_config *cfg, const char *key)
{
	if (!cfg || !key)
		return NULL;
	return object_get_ci(cfg->backend, key);
}

bool subnet_config_equal(const struct subnet_config *a, const struct subnet_config *b)
{
	if (a == b)
		return true;
	if (!a || !b)
		return false;
	if (a->enable_ipv4 != b->enable_ipv4 || a->enable_ipv6 != b->enable_ipv6)
		return false;
	if (a->enable_ipv4 &&
	    (!ipam_prefix_equal(&a->network, &b->network) || a->subnet_len != b->subnet_len ||
	     !ipam_prefix_equal(&a->subnet_min, &b->subnet_min) ||
	     !ipam_prefix_equal(&a->subnet_max, &b->subnet_max)))
		return false;
	if (a->enable_ipv6 && (!ipam_prefix_equal(&a->ipv6_network, &b->ipv6_network) ||
	                       a->ipv6_subnet_len != b->ipv6_subnet_len ||
	                       !ipam_prefix_equal(&a->ipv6_subnet_min, &b->ipv6_subnet_min) ||
	                       !ipam_prefix_equal(&a->ipv6_subnet_max, &b->ipv6_subnet_max)))
		return false;
	if (strcmp(a->backend_type, b->backend_type))
		return false;
	return json_equal(a->backend, b->backend);
}
