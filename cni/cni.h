/*
 * twill-cni: a CNI plugin that accepts flannel's CNI network config ("type": "flannel",
 * subnetFile, dataDir, delegate) and, like flannel's plugin, reads the subnet file and hands
 * the work to another plugin (the bridge plugin by default) with host-local IPAM over the
 * node's subnet. The facts it relies on are in docs/cni.md.
 *
 * Pure parts (fuzzed): cni_conf_parse() for the network config on stdin, cni_subnet_check()
 * for what the subnet file must hold, cni_delegate_build() for the delegate's config.
 * The run part (cni_run) reads the CNI_* environment and stdin, executes the delegate from
 * CNI_PATH and writes the result or a CNI error object to stdout.
 */
#ifndef TWILL_CNI_CNI_H
#define TWILL_CNI_CNI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "subnet/subnetfile.h"

#define CNI_DEFAULT_DATA_DIR "/var/lib/cni/flannel"
#define CNI_ERR_MAX          512
#define CNI_CONF_MAX         (1024 * 1024) /* network config and delegate output cap */

/* The CNI spec's well-known error codes (SPEC.md "Error"). */
enum cni_code {
	CNI_ERR_VERSION = 1,   /* incompatible CNI version */
	CNI_ERR_FIELD = 2,     /* unsupported field in the network config */
	CNI_ERR_UNKNOWN = 3,   /* container unknown or does not exist */
	CNI_ERR_ENV = 4,       /* invalid necessary environment variables */
	CNI_ERR_IO = 5,        /* I/O failure */
	CNI_ERR_DECODE = 6,    /* failed to decode content */
	CNI_ERR_NETCONF = 7,   /* invalid network config */
	CNI_ERR_TRY_LATER = 11 /* try again later */
};

/* The versions this plugin speaks, oldest first (VERSION's supportedVersions). */
extern const char *const cni_versions[];
extern const size_t cni_n_versions;
/* True when @v is one of cni_versions. */
bool cni_version_supported(const char *v);

/* flannel's network config, as read from stdin. */
struct cni_conf {
	char *cni_version;      /* "cniVersion" */
	char *name;             /* "name" (required) */
	char *type;             /* "type" (any string: installed as "flannel" or "twill-cni") */
	char *subnet_file;      /* "subnetFile", default SUBNETFILE_DEFAULT_PATH */
	char *data_dir;         /* "dataDir", default CNI_DEFAULT_DATA_DIR */
	json_t *delegate;       /* "delegate" object (owned; an empty object when absent) */
	json_t *ipam;           /* "ipam" object (owned) or NULL */
	json_t *runtime_config; /* "runtimeConfig" (owned) or NULL */
	json_t *prev_result;    /* "prevResult" (owned) or NULL */
};

/*
 * Parse and check the network config in @buf (@len bytes). 0, or -EINVAL with a reason in
 * @err and the CNI code in *@ret_code (CNI_ERR_DECODE for bad JSON, CNI_ERR_NETCONF for a
 * wrong field, CNI_ERR_VERSION for an unsupported cniVersion). Free with cni_conf_clear().
 * Does not log.
 */
int cni_conf_parse(const char *buf, size_t len, struct cni_conf *ret, int *ret_code, char *err,
                   size_t errlen);
/* Free what @c holds; NULL-safe and idempotent. */
void cni_conf_clear(struct cni_conf *c);

/*
 * What flannel's plugin requires of the subnet file: a network and a subnet (IPv4 or IPv6),
 * FLANNEL_MTU and FLANNEL_IPMASQ. 0, or -EINVAL naming what is missing in @err.
 */
int cni_subnet_check(const struct subnetfile *sf, char *err, size_t errlen);

/*
 * The delegate's network config for ADD (docs/cni.md "Delegate config"): @c's delegate with
 * name, cniVersion, type (default "bridge"), ipMasq (default !FLANNEL_IPMASQ), mtu (default
 * FLANNEL_MTU), isGateway (bridge only, default true), runtimeConfig, and ipam (the config's
 * ipam, type host-local by default, ranges from the subnets, routes plus the networks).
 * A new reference, or NULL with a reason in @err. Pure.
 */
json_t *cni_delegate_build(const struct cni_conf *c, const struct subnetfile *sf, char *err,
                           size_t errlen);

/* A container ID usable as a file name (CNI: alphanumerics first, then [A-Za-z0-9_.-]). */
bool cni_container_id_ok(const char *id);

/* The CNI error object {"cniVersion","code","msg","details"} as compact JSON text (malloc'd). */
char *cni_error_json(const char *cni_version, int code, const char *msg, const char *details);

/* Environment and streams of one plugin call (main() passes the real ones; tests their own). */
struct cni_call {
	char **envp;  /* NULL-terminated "NAME=VALUE" */
	FILE *in;     /* the network config */
	FILE *out;    /* result or error JSON */
	FILE *errout; /* diagnostics for a human (never JSON) */
};

/*
 * Run one plugin call: CNI_COMMAND ADD, DEL, CHECK or VERSION. Returns the exit status:
 * 0 on success, 1 after writing a CNI error object to @call->out.
 */
int cni_run(const struct cni_call *call);

#endif
