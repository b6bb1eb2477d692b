/* The pure half of twill-cni: network config, subnet file requirements, delegate config. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cni/cni.h"
#include "ipam/ipam.h"
#include "lib/errfmt.h"
#include "lib/jsonutil.h"

/* CNI 0.3.0 is 0.3.1 without CHECK; 0.4.0 added CHECK; 1.0.0 the current result format. */
const char *const cni_versions[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0" };
const size_t cni_n_versions = sizeof(cni_versions) / sizeof(cni_versions[0]);

bool cni_version_supported(const char *v)
{
	for (size_t i = 0; v && i < cni_n_versions; i++)
		if (strcmp(v, cni_versions[i]) == 0)
			return true;
	return false;
}

void cni_conf_clear(struct cni_conf *c)
{
	if (!c)
		return;
	free(c->cni_version);
	free(c->name);
	free(c->type);
	free(c->subnet_file);
	free(c->data_dir);
	json_decref(c->delegate);
	json_decref(c->ipam);
	json_decref(c->runtime_config);
	json_decref(c->prev_result);
	memset(c, 0, sizeof(*c));
}

/* @key of @root as a copied string: 0 (absent: *ret = strdup(@def) or NULL), -EINVAL, -ENOMEM. */
static int get_string(json_t *root, const char *key, const char *def, bool nonempty, char **ret,
                      char *err, size_t errlen)
{
	json_t *v = json_object_get(root, key);
	const char *s = def;

	if (v) {
		if (!json_is_string(v)) {
			errfmt(err, errlen, "\"%s\" must be a string, not %s", key,
			       json_type_desc(v));
			return -EINVAL;
		}
		s = json_string_value(v);
		if (strlen(s) != json_string_length(v)) {
			errfmt(err, errlen, "\"%s\" holds a NUL character", key);
			return -EINVAL;
		}
		if (nonempty && !*s) {
			errfmt(err, errlen, "\"%s\" must not be empty", key);
			return -EINVAL;
		}
	}
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

/* @key of @root, when present, must be an object (kept with a new reference in *@ret). */
static int get_object(json_t *root, const char *key, json_t **ret, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, key);

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v)) {
		errfmt(err, errlen, "\"%s\" must be an object, not %s", key, json_type_desc(v));
		return -EINVAL;
	}
	*ret = json_incref(v);
	return 0;
}

static int check_delegate(json_t *d, json_t *ipam, char *err, size_t errlen)
{
	json_t *t = json_object_get(d, "type"), *routes;
	char q[ERRFMT_QUOTE_SIZE];

	if (t && (!json_is_string(t) || !*json_string_value(t))) {
		errfmt(err, errlen, "\"delegate\": \"type\" must be a non-empty string");
		return -EINVAL;
	}
	/* the delegate is executed from CNI_PATH by this name: no path may sneak in */
	if (t && (strchr(json_string_value(t), '/') || strcmp(json_string_value(t), ".") == 0 ||
	          strcmp(json_string_value(t), "..") == 0)) {
		errfmt(err, errlen, "\"delegate\": \"type\" %s is not a plugin name",
		       errfmt_quote(json_string_value(t), q));
		return -EINVAL;
	}
	if (json_object_get(d, "name")) {
		errfmt(err, errlen,
		       "\"delegate\" must not have a \"name\": it is set from the network's name");
		return -EINVAL;
	}
	if (json_object_get(d, "ipam")) {
		errfmt(err, errlen,
		       "\"delegate\" must not have an \"ipam\": it is made from the subnet file (use the top-level \"ipam\")");
		return -EINVAL;
	}
	routes = ipam ? json_object_get(ipam, "routes") : NULL;
	if (routes && !json_is_array(routes)) {
		errfmt(err, errlen, "\"ipam\": \"routes\" must be an array, not %s",
		       json_type_desc(routes));
		return -EINVAL;
	}
	if (ipam && json_object_get(ipam, "type") &&
	    !json_is_string(json_object_get(ipam, "type"))) {
		errfmt(err, errlen, "\"ipam\": \"type\" must be a string");
		return -EINVAL;
	}
	return 0;
}

static int parse_fields(json_t *root, struct cni_conf *c, int *code, char *err, size_t errlen)
{
	int r;

	*code = CNI_ERR_NETCONF;
	if ((r = get_string(root, "cniVersion", "0.3.1", true, &c->cni_version, err, errlen)) < 0 ||
	    (r = get_string(root, "name", NULL, true, &c->name, err, errlen)) < 0 ||
	    (r = get_string(root, "type", NULL, true, &c->type, err, errlen)) < 0 ||
	    (r = get_string(root, "subnetFile", SUBNETFILE_DEFAULT_PATH, true, &c->subnet_file, err,
	                    errlen)) < 0 ||
	    (r = get_string(root, "dataDir", CNI_DEFAULT_DATA_DIR, true, &c->data_dir, err,
	                    errlen)) < 0 ||
	    (r = get_object(root, "delegate", &c->delegate, err, errlen)) < 0 ||
	    (r = get_object(root, "ipam", &c->ipam, err, errlen)) < 0 ||
	    (r = get_object(root, "runtimeConfig", &c->runtime_config, err, errlen)) < 0 ||
	    (r = get_object(root, "prevResult", &c->prev_result, err, errlen)) < 0)
		return r;
	if (!c->name) {
		errfmt(err, errlen, "\"name\" is missing");
		return -EINVAL;
	}
	if (!c->type) {
		errfmt(err, errlen, "\"type\" is missing");
		return -EINVAL;
	}
	if (!cni_version_supported(c->cni_version)) {
		char q[ERRFMT_QUOTE_SIZE];

		*code = CNI_ERR_VERSION;
		errfmt(err, errlen, "cniVersion %s is not supported (0.3.0, 0.3.1, 0.4.0, 1.0.0)",
		       errfmt_quote(c->cni_version, q));
		return -EINVAL;
	}
	if (!c->delegate && !(c->delegate = json_object()))
		return -ENOMEM;
	return check_delegate(c->delegate, c->ipam, err, errlen);
}

int cni_conf_parse(const char *buf, size_t len, struct cni_conf *ret, int *ret_code, char *err,
                   size_t errlen)
{
	struct cni_conf c = { 0 };
	json_error_t je;
	json_t *root;
	int code = CNI_ERR_DECODE, r;

	if (len > CNI_CONF_MAX) {
		errfmt(err, errlen, "network config larger than %d bytes", CNI_CONF_MAX);
		r = -EINVAL;
		goto out;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		errfmt(err, errlen, "network config is not JSON: %s (line %d, column %d)", je.text,
		       je.line, je.column);
		r = -EINVAL;
		goto out;
	}
	if (!json_is_object(root)) {
		errfmt(err, errlen, "network config must be a JSON object, not %s",
		       json_type_desc(root));
		json_decref(root);
		r = -EINVAL;
		goto out;
	}
	r = parse_fields(root, &c, &code, err, errlen);
	json_decref(root);
	if (r == -ENOMEM)
		errfmt(err, errlen, "out of memory");
out:
	if (r < 0) {
		cni_conf_clear(&c);
		if (ret_code)
			*ret_code = r == -ENOMEM ? CNI_ERR_TRY_LATER : code;
		return r;
	}
	*ret = c;
	return 0;
}

int cni_subnet_check(const struct subnetfile *sf, char *err, size_t errlen)
{
	char missing[160] = "";

	if (!sf->has_network && !sf->has_ipv6_network)
		strcat(missing, ", FLANNEL_NETWORK or FLANNEL_IPV6_NETWORK");
	if (!sf->has_subnet && !sf->has_ipv6_subnet)
		strcat(missing, ", FLANNEL_SUBNET or FLANNEL_IPV6_SUBNET");
	if (!sf->has_mtu)
		strcat(missing, ", FLANNEL_MTU");
	if (!sf->has_ipmasq)
		strcat(missing, ", FLANNEL_IPMASQ");
	if (!missing[0])
		return 0;
	errfmt(err, errlen, "lacks %s", missing + 2);
	return -EINVAL;
}

static int add_range(json_t *ranges, const struct ipam_prefix *p)
{
	struct ipam_prefix net = ipam_prefix_network(p);
	char s[IPAM_PREFIX_STRLEN];

	ipam_prefix_format(&net, s);
	return json_array_append_new(ranges, json_pack("[{s:s}]", "subnet", s));
}

/*
 * A route to the overlay network @p via the bridge's address, the first host of @subnet
 * (host-local's default gateway). flannel's plugin leaves "gw" out and gets the same kernel
 * route; naming it lets the bridge plugin's CHECK find the route (plugins before 1.3 look
 * for a route without a gateway otherwise: docs/cni.md).
 */
static int add_route(json_t *routes, const struct ipam_prefix *p, const struct ipam_prefix *subnet)
{
	struct ipam_prefix net = ipam_prefix_network(p), sn = ipam_prefix_network(subnet);
	char s[IPAM_PREFIX_STRLEN], g[IPAM_ADDR_STRLEN];
	struct ipam_addr gw;

	ipam_prefix_format(&net, s);
	if (ipam_prefix_first_host(&sn, &gw) < 0)
		return json_array_append_new(routes, json_pack("{s:s}", "dst", s));
	ipam_addr_format(&gw, g);
	return json_array_append_new(routes, json_pack("{s:s,s:s}", "dst", s, "gw", g));
}

/* The ipam section: the config's, host-local by default, ranges and routes from @sf. */
static json_t *build_ipam(const struct cni_conf *c, const struct subnetfile *sf)
{
	json_t *ipam = c->ipam ? json_deep_copy(c->ipam) : json_object();
	json_t *ranges = json_array(), *routes, *old;
	int r = 0;

	if (!ipam || !ranges)
		goto fail;
	if (!json_object_get(ipam, "type"))
		r |= json_object_set_new(ipam, "type", json_string("host-local"));
	if (sf->has_subnet)
		r |= add_range(ranges, &sf->subnet);
	if (sf->has_ipv6_subnet)
		r |= add_range(ranges, &sf->ipv6_subnet);
	old = json_object_get(ipam, "routes");
	routes = old ? json_deep_copy(old) : json_array();
	if (!routes)
		goto fail;
	if (sf->has_network && sf->has_subnet)
		r |= add_route(routes, &sf->network, &sf->subnet);
	if (sf->has_ipv6_network && sf->has_ipv6_subnet)
		r |= add_route(routes, &sf->ipv6_network, &sf->ipv6_subnet);
	r |= json_object_set_new(ipam, "ranges", ranges);
	ranges = NULL;
	r |= json_object_set_new(ipam, "routes", routes);
	if (r)
		goto fail;
	return ipam;
fail:
	json_decref(ranges);
	json_decref(ipam);
	return NULL;
}

json_t *cni_delegate_build(const struct cni_conf *c, const struct subnetfile *sf, char *err,
                           size_t errlen)
{
	json_t *d, *ipam;
	int r = 0;

	if (cni_subnet_check(sf, err, errlen) < 0)
		return NULL;
	d = json_deep_copy(c->delegate);
	ipam = build_ipam(c, sf);
	if (!d || !ipam) {
		json_decref(d);
		json_decref(ipam);
		errfmt(err, errlen, "out of memory");
		return NULL;
	}
	r |= json_object_set_new(d, "name", json_string(c->name));
	r |= json_object_set_new(d, "cniVersion", json_string(c->cni_version));
	if (!json_object_get(d, "type"))
		r |= json_object_set_new(d, "type", json_string("bridge"));
	/* Masquerade in the bridge exactly when twilld does not (FLANNEL_IPMASQ=false). */
	if (!json_object_get(d, "ipMasq"))
		r |= json_object_set_new(d, "ipMasq", json_boolean(!sf->ipmasq));
	if (!json_object_get(d, "mtu"))
		r |= json_object_set_new(d, "mtu", json_integer(sf->mtu));
	if (strcmp(json_string_value(json_object_get(d, "type")), "bridge") == 0 &&
	    !json_object_get(d, "isGateway"))
		r |= json_object_set_new(d, "isGateway", json_true());
	if (c->runtime_config)
		r |= json_object_set(d, "runtimeConfig", c->runtime_config);
	r |= json_object_set_new(d, "ipam", ipam);
	if (r) {
		json_decref(d);
		errfmt(err, errlen, "out of memory");
		return NULL;
	}
	return d;
}

bool cni_container_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		             (ch >= '0' && ch <= '9');

		if (!alnum && (i == 0 || (ch != '_' && ch != '.' && ch != '-')))
			return false;
	}
	return true;
}

char *cni_error_json(const char *cni_version, int code, const char *msg, const char *details)
{
	json_t *o = json_pack("{s:s,s:i,s:s}", "cniVersion", cni_version ? cni_version : "1.0.0",
	                      "code", code, "msg", msg ? msg : "");
	char *s;

	if (o && details && *details)
		json_object_set_new(o, "details", json_string(details));
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}
