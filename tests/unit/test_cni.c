/*
 * twill-cni (cni/): flannel's network config, the subnet file requirements, the delegate
 * config (docs/cni.md), error objects, and cni_run's commands that need no plugin binary
 * (VERSION, errors, DEL with nothing saved) plus ADD/DEL through a recording stand-in
 * delegate (the real bridge plugin runs in tests/integration/test_cni.sh).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "cni/cni.h"

static const char subnet_v4[] = "FLANNEL_NETWORK=198.18.0.0/16\nFLANNEL_SUBNET=198.18.7.1/24\n"
				"FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n";
static const char subnet_ds[] = "FLANNEL_NETWORK=198.18.0.0/16\nFLANNEL_SUBNET=198.18.7.1/24\n"
				"FLANNEL_IPV6_NETWORK=2001:db8:100::/48\n"
				"FLANNEL_IPV6_SUBNET=2001:db8:100:7::1/64\n"
				"FLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n";

static void parse_ok(const char *text, struct cni_conf *c)
{
	char err[CNI_ERR_MAX] = "";
	int code = 0, r = cni_conf_parse(text, strlen(text), c, &code, err, sizeof(err));

	cr_assert_eq(r, 0, "parse %s: %d code %d %s", text, r, code, err);
}

static void parse_fails(const char *text, int want_code, const char *want_msg)
{
	struct cni_conf c = { 0 };
	char err[CNI_ERR_MAX] = "";
	int code = 0, r = cni_conf_parse(text, strlen(text), &c, &code, err, sizeof(err));

	cr_assert_eq(r, -EINVAL, "parse %s: %d", text, r);
	cr_assert_eq(code, want_code, "%s: code %d, want %d (%s)", text, code, want_code, err);
	cr_assert_not_null(strstr(err, want_msg), "%s: error '%s' lacks '%s'", text, err, want_msg);
	cr_assert_null(c.name);
}

static struct subnetfile subnet(const char *text)
{
	struct subnetfile sf;
	char err[256] = "";

	cr_assert_eq(subnetfile_parse(text, strlen(text), &sf, err, sizeof(err)), 0, "%s", err);
	return sf;
}

static char *build(const char *conf, const char *sf_text)
{
	struct cni_conf c = { 0 };
	struct subnetfile sf = subnet(sf_text);
	char err[CNI_ERR_MAX] = "", *s;
	json_t *d;

	parse_ok(conf, &c);
	d = cni_delegate_build(&c, &sf, err, sizeof(err));
	cr_assert_not_null(d, "build: %s", err);
	s = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(d);
	cni_conf_clear(&c);
	return s;
}

Test(cni_conf, defaults_as_flannel)
{
	struct cni_conf c = { 0 };

	parse_ok("{\"name\":\"cbr0\",\"type\":\"flannel\"}", &c);
	cr_assert_str_eq(c.cni_version, "0.3.1");
	cr_assert_str_eq(c.subnet_file, "/run/flannel/subnet.env");
	cr_assert_str_eq(c.data_dir, "/var/lib/cni/flannel");
	cr_assert(json_is_object(c.delegate) && json_object_size(c.delegate) == 0);
	cr_assert_null(c.ipam);
	cni_conf_clear(&c);
	cni_conf_clear(&c); /* idempotent */
	cni_conf_clear(NULL);
}

Test(cni_conf, rejects_bad_configs_with_codes)
{
	parse_fails("{\"name\":\"n\",\"type\":\"flannel\"", CNI_ERR_DECODE, "not JSON");
	parse_fails("[1]", CNI_ERR_DECODE, "must be a JSON object");
	parse_fails("{\"type\":\"flannel\"}", CNI_ERR_NETCONF, "\"name\" is missing");
	parse_fails("{\"name\":\"n\"}", CNI_ERR_NETCONF, "\"type\" is missing");
	parse_fails("{\"name\":5,\"type\":\"flannel\"}", CNI_ERR_NETCONF, "must be a string");
	parse_fails("{\"name\":\"n\",\"type\":\"flannel\",\"cniVersion\":\"0.2.0\"}",
	            CNI_ERR_VERSION, "not supported");
	parse_fails("{\"name\":\"n\",\"type\":\"flannel\",\"delegate\":[]}", CNI_ERR_NETCONF,
	            "\"delegate\" must be an object");
	parse_fails("{\"name\":\"n\",\"type\":\"flannel\",\"delegate\":{\"name\":\"x\"}}",
	            CNI_ERR_NETCONF, "must not have a \"name\"");
	parse_fails("{\"name\":\"n\",\"type\":\"flannel\",\"delegate\":{\"ipam\":{}}}",
	            CNI_ERR_NETCONF, "must not have an \"ipam\"");
	parse_fails(
		"{\"name\":\"n\",\"type\":\"flannel\",\"delegate\":{\"type\":\"../../bin/sh\"}}",
		CNI_ERR_NETCONF, "not a plugin name");
	parse_fails("{\"name\":\"n\",\"type\":\"flannel\",\"ipam\":{\"routes\":{}}}",
	            CNI_ERR_NETCONF, "\"routes\" must be an array");
	parse_fails("{\"name\":\"n\",\"name\":\"m\",\"type\":\"flannel\"}", CNI_ERR_DECODE,
	            "duplicate");
	parse_fails("{\"name\":\"a\\u0000b\",\"type\":\"flannel\"}", CNI_ERR_DECODE, "u0000");
	parse_fails("{\"name\":\"n\",\"type\":\"flannel\",\"dataDir\":\"\"}", CNI_ERR_NETCONF,
	            "must not be empty");
}

Test(cni_delegate, bridge_host_local_from_subnet_file)
{
	char *s = build("{\"cniVersion\":\"1.0.0\",\"name\":\"cbr0\",\"type\":\"flannel\"}",
	                subnet_v4);

	cr_assert_str_eq(
		s,
		"{\"cniVersion\":\"1.0.0\",\"ipMasq\":true,\"ipam\":{\"ranges\":[[{\"subnet\":"
		"\"198.18.7.0/24\"}]],\"routes\":[{\"dst\":\"198.18.0.0/16\",\"gw\":\"198.18.7.1\"}],"
		"\"type\":\"host-local\"},\"isGateway\":true,\"mtu\":1450,\"name\":\"cbr0\","
		"\"type\":\"bridge\"}");
	free(s);
}

Test(cni_delegate, dual_stack_ranges_and_ipmasq_inverted)
{
	char *s =
		build("{\"cniVersion\":\"0.4.0\",\"name\":\"n\",\"type\":\"flannel\"}", subnet_ds);

	cr_assert_str_eq(
		s,
		"{\"cniVersion\":\"0.4.0\",\"ipMasq\":false,\"ipam\":{\"ranges\":[[{\"subnet\":"
		"\"198.18.7.0/24\"}],[{\"subnet\":\"2001:db8:100:7::/64\"}]],\"routes\":[{\"dst\":"
		"\"198.18.0.0/16\",\"gw\":\"198.18.7.1\"},{\"dst\":\"2001:db8:100::/48\",\"gw\":"
		"\"2001:db8:100:7::1\"}],\"type\":\"host-local\"},\"isGateway\":true,\"mtu\":1400,"
		"\"name\":\"n\",\"type\":\"bridge\"}");
	free(s);
}

Test(cni_delegate, user_settings_win_and_ipam_is_complemented)
{
	char *s = build("{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"flannel\","
	                "\"delegate\":{\"type\":\"ipvlan\",\"mtu\":1300,\"ipMasq\":false,"
	                "\"master\":\"eth0\"},\"ipam\":{\"dataDir\":\"/x\",\"routes\":[{\"dst\":"
	                "\"192.0.2.0/24\"}]},\"runtimeConfig\":{\"portMappings\":[]}}",
	                subnet_v4);

	/* no isGateway for a non-bridge delegate; the user's route first */
	cr_assert_str_eq(
		s,
		"{\"cniVersion\":\"1.0.0\",\"ipMasq\":false,\"ipam\":{\"dataDir\":\"/x\","
		"\"ranges\":[[{\"subnet\":\"198.18.7.0/24\"}]],\"routes\":[{\"dst\":\"192.0.2.0/24\"},"
		"{\"dst\":\"198.18.0.0/16\",\"gw\":\"198.18.7.1\"}],\"type\":\"host-local\"},"
		"\"master\":\"eth0\",\"mtu\":1300,\"name\":\"n\",\"runtimeConfig\":{\"portMappings\":"
		"[]},\"type\":\"ipvlan\"}");
	free(s);
}

Test(cni_delegate, subnet_file_must_be_complete)
{
	struct cni_conf c = { 0 };
	struct subnetfile sf = subnet("FLANNEL_SUBNET=198.18.7.1/24\n");
	char err[CNI_ERR_MAX] = "";

	parse_ok("{\"name\":\"n\",\"type\":\"flannel\"}", &c);
	cr_assert_null(cni_delegate_build(&c, &sf, err, sizeof(err)));
	cr_assert_str_eq(
		err, "lacks FLANNEL_NETWORK or FLANNEL_IPV6_NETWORK, FLANNEL_MTU, FLANNEL_IPMASQ");
	cni_conf_clear(&c);
}

Test(cni_misc, container_ids_and_error_json)
{
	char *j;

	cr_assert(cni_container_id_ok("abc123"));
	cr_assert(cni_container_id_ok("a-b_c.d"));
	cr_assert_not(cni_container_id_ok(""));
	cr_assert_not(cni_container_id_ok("../etc"));
	cr_assert_not(cni_container_id_ok("a/b"));
	cr_assert_not(cni_container_id_ok("-a"));
	cr_assert_not(cni_container_id_ok(NULL));
	j = cni_error_json("0.4.0", 7, "bad", "why");
	cr_assert_str_eq(
		j, "{\"cniVersion\":\"0.4.0\",\"code\":7,\"msg\":\"bad\",\"details\":\"why\"}");
	free(j);
	j = cni_error_json(NULL, 11, "later", NULL);
	cr_assert_str_eq(j, "{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"later\"}");
	free(j);
}

/* ---- cni_run ---- */

static char tmpdir[256];

static void mktmp(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/twill-test-cni.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void rmtmp(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

/* Run the plugin with @env (NULL-terminated) and @in; its stdout (malloc'd), exit in *ret_rc. */
static char *run(char **env, const char *in, int *ret_rc)
{
	char *out = NULL;
	size_t outlen = 0;
	char *inbuf = strdup(in);
	FILE *fin = fmemopen(inbuf, strlen(in), "r"), *fout = open_memstream(&out, &outlen);
	FILE *ferr = fopen("/dev/null", "w");
	struct cni_call call = { .envp = env, .in = fin, .out = fout, .errout = ferr };

	cr_assert(fin && fout && ferr);
	*ret_rc = cni_run(&call);
	fclose(fin);
	fclose(fout);
	fclose(ferr);
	free(inbuf);
	return out;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

Test(cni_run, version_and_environment_errors, .init = mktmp, .fini = rmtmp)
{
	char v[] = "CNI_COMMAND=VERSION", add[] = "CNI_COMMAND=ADD",
	     path[] = "CNI_PATH=/nonexistent";
	char *env_v[] = { v, NULL }, *env_none[] = { NULL }, *env_noid[] = { add, path, NULL };
	char *out;
	int rc;

	out = run(env_v, "{\"cniVersion\":\"0.3.1\"}", &rc);
	cr_assert_eq(rc, 0);
	cr_assert_str_eq(out,
	                 "{\"cniVersion\":\"0.3.1\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\","
	                 "\"0.4.0\",\"1.0.0\"]}\n");
	free(out);
	out = run(env_none, "", &rc);
	cr_assert_eq(rc, 1);
	cr_assert_not_null(strstr(out, "\"code\":4,\"msg\":\"CNI_COMMAND is not set\""), "%s", out);
	free(out);
	out = run(env_noid, "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"flannel\"}", &rc);
	cr_assert_eq(rc, 1);
	cr_assert_not_null(strstr(out, "\"code\":4,\"msg\":\"CNI_CONTAINERID is not set\""), "%s",
	                   out);
	free(out);
}

Test(cni_run, add_and_del_through_the_delegate, .init = mktmp, .fini = rmtmp)
{
	char conf[1024], sfp[300], plug[300], rec[300], saved[300], envpath[320], *out, *text;
	char add[] = "CNI_COMMAND=ADD", del[] = "CNI_COMMAND=DEL", id[] = "CNI_CONTAINERID=c1";
	char netns[] = "CNI_NETNS=/run/netns/x", ifname[] = "CNI_IFNAME=eth0";
	char *env[] = { add, id, netns, ifname, envpath, NULL };
	int rc;

	snprintf(sfp, sizeof(sfp), "%s/subnet.env", tmpdir);
	snprintf(plug, sizeof(plug), "%s/bridge", tmpdir);
	snprintf(rec, sizeof(rec), "%s/record", tmpdir);
	snprintf(saved, sizeof(saved), "%s/data/c1", tmpdir);
	snprintf(envpath, sizeof(envpath), "CNI_PATH=/nonexistent:%s", tmpdir);
	snprintf(
		conf, sizeof(conf),
		"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"flannel\",\"subnetFile\":\"%s\","
		"\"dataDir\":\"%s/data\"}",
		sfp, tmpdir);
	/* no subnet file yet: try again later */
	out = run(env, conf, &rc);
	cr_assert_eq(rc, 1);
	cr_assert_not_null(strstr(out, "\"code\":11"), "%s", out);
	free(out);
	write_file(sfp, subnet_v4, 0644);
	/* a stand-in delegate recording its command and stdin, answering a fixed result */
	{
		char script[600];

		snprintf(
			script, sizeof(script),
			"#!/bin/sh\n{ echo \"$CNI_COMMAND $CNI_CONTAINERID\"; cat; echo; } >>%s\n"
			"[ \"$CNI_COMMAND\" = ADD ] && echo '{\"cniVersion\":\"1.0.0\",\"ips\":[]}'\n"
			"exit 0\n",
			rec);
		write_file(plug, script, 0755);
	}
	out = run(env, conf, &rc);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert_str_eq(out, "{\"cniVersion\":\"1.0.0\",\"ips\":[]}\n");
	free(out);
	cr_assert_eq(access(saved, F_OK), 0, "no saved delegate config");
	/* DEL uses the saved config even when the subnet file is gone, then removes it */
	unlink(sfp);
	env[0] = del;
	out = run(env, conf, &rc);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	cr_assert_neq(access(saved, F_OK), 0, "saved delegate config left after DEL");
	/* again: nothing saved, no subnet file: success without calling the delegate */
	out = run(env, conf, &rc);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	{
		FILE *f = fopen(rec, "r");
		size_t n;

		cr_assert_not_null(f);
		text = calloc(1, 8192);
		n = fread(text, 1, 8191, f);
		fclose(f);
		cr_assert_gt(n, 0);
	}
	cr_assert_not_null(
		strstr(text,
	               "ADD c1\n{\"name\":\"n\",\"cniVersion\":\"1.0.0\",\"type\":\"bridge\""),
		"%s", text);
	cr_assert_not_null(strstr(text, "DEL c1\n{"), "%s", text);
	cr_assert_eq(strstr(strstr(text, "DEL c1\n") + 1, "DEL c1"), NULL,
	             "delegate called twice: %s", text);
	free(text);
}
