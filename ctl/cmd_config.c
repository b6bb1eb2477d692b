/* twillctl config get/set/validate (see ctl.h). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "subnet/config.h"
#include "subnet/store.h"

/* ---- config ---- */

static int no_config(struct ctl *c, const char *key)
{
	fprintf(c->err,
	        "twillctl: no network config at %s: write one with `twillctl config set FILE`\n",
	        key);
	return 1;
}

struct subnet_config *ctl_load_config(struct ctl *c, bool quiet_missing)
{
	char key[PATH_MAX], err[SUBNET_ERR_MAX];
	struct subnet_config *cfg;
	struct ctl_call k;

	ctl_key_path(c, "config", key, sizeof(key));
	if (ctl_do_get(c, key, &k, "reading the network config") < 0)
		return NULL;
	if (k.n_kvs == 0) {
		if (!quiet_missing)
			no_config(c, key);
		ctl_call_clear(&k);
		return NULL;
	}
	cfg = subnet_config_parse(k.kvs[0].value, k.kvs[0].value_len, err, sizeof(err));
	if (!cfg)
		fprintf(c->err, "twillctl: the network config at %s is invalid: %s\n", key, err);
	ctl_call_clear(&k);
	return cfg;
}

int ctl_config_get(struct ctl *c)
{
	char key[PATH_MAX];
	struct ctl_call k;
	size_t len;

	ctl_key_path(c, "config", key, sizeof(key));
	if (ctl_do_get(c, key, &k, "reading the network config") < 0)
		return 1;
	if (k.n_kvs == 0) {
		ctl_call_clear(&k);
		return no_config(c, key);
	}
	len = k.kvs[0].value_len;
	fwrite(k.kvs[0].value, 1, len, c->out);
	if (len == 0 || k.kvs[0].value[len - 1] != '\n')
		fputc('\n', c->out);
	ctl_call_clear(&k);
	return 0;
}

static void describe_config(struct ctl *c, const struct subnet_config *cfg, const char *what)
{
	char a[IPAM_PREFIX_STRLEN], b[IPAM_PREFIX_STRLEN], d[IPAM_PREFIX_STRLEN];

	fprintf(c->out, "%s: valid\n", what);
	if (cfg->enable_ipv4)
		fprintf(c->out, "  Network %s, SubnetLen %u, subnets %s .. %s (%" PRIu64 ")\n",
		        ipam_prefix_format(&cfg->network, a), cfg->subnet_len,
		        ipam_prefix_format(&cfg->subnet_min, b),
		        ipam_prefix_format(&cfg->subnet_max, d),
		        ipam_prefix_count(&cfg->subnet_min, &cfg->subnet_max, cfg->subnet_len));
	if (cfg->enable_ipv6)
		fprintf(c->out, "  IPv6Network %s, IPv6SubnetLen %u, subnets %s .. %s\n",
		        ipam_prefix_format(&cfg->ipv6_network, a), cfg->ipv6_subnet_len,
		        ipam_prefix_format(&cfg->ipv6_subnet_min, b),
		        ipam_prefix_format(&cfg->ipv6_subnet_max, d));
	fprintf(c->out, "  Backend %s%s\n", cfg->backend_type,
	        cfg->backend_defaulted ? " (no Backend.Type given: udp, as flannel chooses)" : "");
}

int ctl_config_validate(struct ctl *c, const char *doc, size_t len, const char *what)
{
	char err[SUBNET_ERR_MAX];
	struct subnet_config *cfg = subnet_config_parse(doc, len, err, sizeof(err));

	if (!cfg) {
		fprintf(c->err, "twillctl: %s: invalid network config: %s\n", what, err);
		return 1;
	}
	describe_config(c, cfg, what);
	subnet_config_free(cfg);
	return 0;
}

int ctl_config_set(struct ctl *c, const char *doc, size_t len, const char *what)
{
	char key[PATH_MAX], err[SUBNET_ERR_MAX];
	struct subnet_config *cfg = subnet_config_parse(doc, len, err, sizeof(err));
	struct ctl_call k = { 0 };

	if (!cfg) {
		fprintf(c->err, "twillctl: %s: invalid network config, not written: %s\n", what,
		        err);
		return 1;
	}
	subnet_config_free(cfg);
	ctl_key_path(c, "config", key, sizeof(key));
	if (ctl_call_wait(c, &k, c->store->ops->put(c->store, key, doc, len, 0, ctl_call_cb, &k),
	                  "writing the network config") < 0) {
		ctl_call_clear(&k);
		return 1;
	}
	fprintf(c->out, "wrote %s (revision %" PRId64 ")\n", key, k.revision);
	ctl_call_clear(&k);
	return 0;
}
