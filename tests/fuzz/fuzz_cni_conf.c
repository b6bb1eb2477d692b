/*
 * libFuzzer harness: twill-cni's outside input (cni/conf.c): the network config from stdin
 * and the subnet file, then the delegate config built from both. The input is the config,
 * a line "--", and the subnet file (no separator: all config, the subnet file of a node).
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cni/cni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char default_subnet[] = "FLANNEL_NETWORK=198.18.0.0/16\nFLANNEL_SUBNET=198.18.7.1/24\n"
				     "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *sep = memmem(buf, size, "\n--\n", 4);
	size_t clen = sep ? (size_t)(sep - buf) : size;
	struct cni_conf c = { 0 };
	struct subnetfile sf;
	char err[CNI_ERR_MAX];
	int code = 0;
	json_t *d;

	if (cni_conf_parse(buf, clen, &c, &code, err, sizeof(err)) < 0) {
		if (!err[0] || (code != CNI_ERR_DECODE && code != CNI_ERR_NETCONF &&
		                code != CNI_ERR_VERSION && code != CNI_ERR_TRY_LATER))
			abort();
		return 0;
	}
	if (!c.name || !c.type || !c.subnet_file || !c.data_dir || !json_is_object(c.delegate) ||
	    !cni_version_supported(c.cni_version))
		abort();
	if (sep) {
		if (subnetfile_parse(sep + 4, size - clen - 4, &sf, err, sizeof(err)) < 0)
			goto out;
	} else if (subnetfile_parse(default_subnet, strlen(default_subnet), &sf, err, sizeof(err)) <
	           0) {
		abort();
	}
	d = cni_delegate_build(&c, &sf, err, sizeof(err));
	if (d) {
		char *s = json_dumps(d, JSON_COMPACT);

		/* what ADD saves and executes: a named type, the network's name, an ipam */
		if (!s || !json_is_string(json_object_get(d, "type")) ||
		    !json_is_object(json_object_get(d, "ipam")) ||
		    strcmp(json_string_value(json_object_get(d, "name")), c.name) != 0)
			abort();
		free(s);
		json_decref(d);
	} else if (!err[0]) {
		abort();
	}
	free(cni_error_json(c.cni_version, CNI_ERR_NETCONF, err, c.name));
out:
	cni_conf_clear(&c);
	return 0;
}
