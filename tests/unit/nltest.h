/*
 * Helpers of the netlink/backend unit tests (test_lib_nl*.c, test_backends*.c):
 * a private network namespace with a veth underlay, shell commands, `ip -j`
 * readers, hand-made leases, polling while the event loop runs.
 */
#ifndef TWILL_TESTS_NLTEST_H
#define TWILL_TESTS_NLTEST_H

#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <net/if.h>
#include <jansson.h>

#include "backends/backend.h"
#include "lib/ev.h"
#include "subnet/config.h"
#include "subnet/lease.h"

/* Run a shell command; its exit status. */
static inline int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	return r == -1 ? -1 : WEXITSTATUS(r);
}

/*
 * The JSON output of a command (`ip -j ...`), parsed; an empty output reads as [].
 * The test fails when the command fails or prints something that is not JSON:
 * a failed `ip` must not read as "nothing there".
 */
static inline json_t *shj(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline json_t *shj(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	FILE *f;
	char *buf = NULL;
	size_t len = 0;
	json_t *j;
	json_error_t err;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	cr_assert(f, "popen %s", cmd);
	{
		FILE *m = open_memstream(&buf, &len);
		char chunk[4096];
		size_t n;

		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			fwrite(chunk, 1, n, m);
		fclose(m);
	}
	status = pclose(f);
	cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "`%s` failed (status %d)", cmd, status);
	j = len ? json_loadb(buf, len, 0, &err) : json_array();
	cr_assert_not_null(j, "`%s` printed no JSON: %s: %.200s", cmd, err.text, buf);
	free(buf);
	return j;
}

/*
 * A private network namespace with veth "ul" (192.0.2.1/24, up) and its peer
 * "ulp" (up), as the underlay. Fills @ext.
 */
static inline void netns_underlay(struct be_extif *ext)
{
	cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s", strerror(errno));
	cr_assert_eq(sh("ip link set lo up && ip link add ul type veth peer name ulp && "
	                "ip addr add 192.0.2.1/24 dev ul && ip link set ul up && "
	                "ip link set ulp up"),
	             0);
	memset(ext, 0, sizeof(*ext));
	snprintf(ext->name, sizeof(ext->name), "ul");
	ext->ifindex = (int)if_nametoindex("ul");
	ext->mtu = 1500;
	cr_assert_eq(ipam_addr_parse("192.0.2.1", &ext->iface_addr), 0);
	ext->public_ip = ext->iface_addr;
}

static inline struct subnet_config *mk_config(const char *json)
{
	char err[SUBNET_ERR_MAX];
	struct subnet_config *c = subnet_config_parse(json, strlen(json), err, sizeof(err));

	cr_assert(c, "config %s: %s", json, err);
	return c;
}

/* A remote lease; @mac NULL: no BackendData. */
static inline void mk_lease(struct lease *l, const char *subnet, const char *pub, const char *type,
                            const uint8_t *mac)
{
	memset(l, 0, sizeof(*l));
	l->has_ipv4 = true;
	cr_assert_eq(ipam_prefix_parse(subnet, &l->subnet), 0, "%s", subnet);
	cr_assert_eq(ipam_addr_parse(pub, &l->attrs.public_ip), 0, "%s", pub);
	snprintf(l->attrs.backend_type, sizeof(l->attrs.backend_type), "%s", type);
	if (mac)
		cr_assert_eq(lease_attrs_set_vxlan(&l->attrs, 1, mac), 0);
}

/* Lease number @i (from 0) of a large set: 198.18.1.0 on in /28 steps, MAC 02:00:00:00:hi:lo. */
static inline void mk_lease_n(struct lease *l, unsigned i, const char *type)
{
	char subnet[32], pub[32];
	uint8_t mac[6] = { 0x02, 0, 0, 0, (uint8_t)(i >> 8), (uint8_t)i };

	snprintf(subnet, sizeof(subnet), "198.18.%u.%u/28", (i + 16) >> 4, ((i + 16) & 15) << 4);
	snprintf(pub, sizeof(pub), "192.0.2.%u", 2 + i % 200);
	mk_lease(l, subnet, pub, type, strcmp(type, "vxlan") == 0 ? mac : NULL);
}

static inline void mac_str(const uint8_t *m, char *buf)
{
	sprintf(buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* Array element whose string member @key equals @val, or NULL. */
static inline json_t *find_by(json_t *arr, const char *key, const char *val)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(json_object_get(v, key));

		if (s && strcmp(s, val) == 0)
			return v;
	}
	return NULL;
}

static inline const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* True when @o[@key] is an array holding the string @s. */
static inline bool jarr_has(json_t *o, const char *key, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(json_object_get(o, key), i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	}
	return false;
}

/* Number of elements of the JSON array a command prints. */
static inline size_t shj_count(const char *cmd)
{
	json_t *j = shj("%s", cmd);
	size_t n = json_array_size(j);

	json_decref(j);
	return n;
}

/* Run @loop until @cond(@ctx) holds or @ms pass; the final value of @cond. */
static inline bool poll_until(struct ev_loop *loop, bool (*cond)(void *), void *ctx, int ms)
{
	uint64_t end = ev_now_ms() + (uint64_t)ms;

	while (!cond(ctx)) {
		if (ev_now_ms() >= end)
			return false;
		if (loop)
			ev_loop_run_once(loop, 20);
		else
			usleep(20000);
	}
	return true;
}

#endif
