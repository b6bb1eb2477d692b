/*
 * libFuzzer harness: the flanneld-compatible flag parser (lib/flags.c).
 *
 * Input: NUL-separated entries. An entry "FLANNELD_<NAME>=<value>" (up to
 * MAX_ENV of them) is a variable of the environment the parser sees (environ
 * points at exactly these during the run); every other entry is one argv
 * element (argv[0] first). The flag table covers every type, a static string
 * default, a no_env flag and a bounded and an unbounded integer. Checks: success leaves every string target
 * malloc'd or NULL (flags_free() frees it: ASan/LSan catch a freed literal or a
 * leak), the argument index is in range, failures come with a message, parsing
 * is deterministic, and flags_parse_int agrees with strtoll on plain decimals.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/flags.h"

#define ENV_PREFIX "FLANNELD_"
#define MAX_ARGS   64
#define MAX_ENV    8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

extern char **environ;

struct targets {
	char *endpoints;
	char *prefix;
	char *public_ip;
	struct flag_list iface;
	struct flag_list regex;
	bool ip_masq;
	bool help;
	int64_t port;
	int64_t ttl;
	int64_t v;
};

static char def_endpoints[] = "http://127.0.0.1:2379";
static char def_prefix[] = "/coreos.com/network";
static FILE *devnull;

static size_t make_defs(struct targets *t, struct flag_def *d)
{
	size_t n = 0;

	memset(t, 0, sizeof(*t));
	t->endpoints = def_endpoints;
	t->prefix = def_prefix;
	t->ttl = 86400;
	d[n++] = (struct flag_def){
		"etcd-endpoints", FLAG_STRING, &t->endpoints, "endpoints", 0, 0, false
	};
	d[n++] = (struct flag_def){ "etcd-prefix", FLAG_STRING, &t->prefix, "prefix", 0, 0, false };
	d[n++] = (struct flag_def){ "public-ip", FLAG_STRING, &t->public_ip, "ip", 0, 0, false };
	d[n++] = (struct flag_def){ "iface", FLAG_STRING_LIST, &t->iface, "iface", 0, 0, false };
	d[n++] = (struct flag_def){
		"iface-regex", FLAG_STRING_LIST, &t->regex, "regex", 0, 0, false
	};
	d[n++] = (struct flag_def){ "ip-masq", FLAG_BOOL, &t->ip_masq, "masq", 0, 0, false };
	d[n++] = (struct flag_def){ "help", FLAG_BOOL, &t->help, "help", 0, 0, true };
	d[n++] = (struct flag_def){ "healthz-port", FLAG_INT, &t->port, "port", 0, 65535, false };
	d[n++] = (struct flag_def){ "subnet-lease-ttl", FLAG_INT, &t->ttl, "ttl", 1,
		                    INT32_MAX,          false };
	d[n++] = (struct flag_def){ "v", FLAG_INT, &t->v, "level", 0, 0, false };
	return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	devnull = fopen("/dev/null", "w");
	return 0;
}

static bool plain_decimal(const char *s)
{
	if (*s == '+' || *s == '-')
		s++;
	if (*s == '0')
		return s[1] == '\0';
	if (*s < '1' || *s > '9')
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* flags_parse_int on a plain decimal agrees with strtoll (value and range error). */
static void check_int(const char *s)
{
	int64_t got = 0;
	long long want;
	char *end;
	int r;

	r = flags_parse_int(s, &got);
	if (!plain_decimal(s)) {
		if (r == 0 && *s == '\0')
			abort();
		return;
	}
	errno = 0;
	want = strtoll(s, &end, 10);
	if (errno == ERANGE) {
		if (r != -ERANGE)
			abort();
		return;
	}
	if (r != 0 || got != want || *end)
		abort();
}

static int parse_once(const char *const *argv, int argc, char *err, size_t errlen,
                      struct targets *t, struct flag_def *d, size_t *ret_n, int *ret_argind)
{
	size_t n = make_defs(t, d);
	int r;

	*ret_n = n;
	*ret_argind = -1;
	/* flags_parse takes char ** like main()'s argv; it does not write the strings. */
	r = flags_parse(d, n, argc, (char **)(uintptr_t)argv, ENV_PREFIX, ret_argind, err, errlen);
	/* After flags_parse every string target is malloc'd or NULL (never the literal). */
	if (t->endpoints == def_endpoints || t->prefix == def_prefix)
		abort();
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *argv[MAX_ARGS + 1];
	char *env[MAX_ENV + 1], **saved_env;
	size_t n_env = 0, ndefs;
	char *buf, *p, *end;
	struct targets t, t2;
	struct flag_def defs[16], defs2[16];
	char err[256], err2[256];
	int argc = 0, argind, argind2, r, r2;

	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	end = buf + size;
	for (p = buf; p <= end && argc < MAX_ARGS; p += strlen(p) + 1) {
		if (strncmp(p, ENV_PREFIX, strlen(ENV_PREFIX)) == 0 && strchr(p, '=') &&
		    n_env < MAX_ENV) {
			env[n_env++] = p;
			continue;
		}
		argv[argc++] = p;
	}
	env[n_env] = NULL;
	if (argc == 0)
		argv[argc++] = "twilld";
	argv[argc] = NULL;
	/* The fake environment: exactly the FLANNELD_* entries of the input (no setenv():
	 * glibc keeps every value it was given, which grows without bound while fuzzing). */
	saved_env = environ;
	environ = env;

	r = parse_once(argv, argc, err, sizeof(err), &t, defs, &ndefs, &argind);
	if (r == 0) {
		if (argind < 1 || argind > argc)
			abort();
		if (t.port < 0 || t.port > 65535 || t.ttl < 1 || t.ttl > INT32_MAX)
			abort();
		for (size_t i = 0; i < t.iface.n; i++)
			if (!t.iface.v[i])
				abort();
		if (devnull)
			flags_usage(defs, ndefs, ENV_PREFIX, devnull);
	} else {
		if (r != -EINVAL && r != -ENOMEM)
			abort();
		if (!err[0] || strlen(err) >= sizeof(err))
			abort();
	}
	/* Deterministic: the same input gives the same result and targets. */
	r2 = parse_once(argv, argc, err2, sizeof(err2), &t2, defs2, &ndefs, &argind2);
	if (r2 != r || (r == 0 && argind2 != argind) || (r != 0 && strcmp(err, err2) != 0))
		abort();
	if (r == 0 && (t.ip_masq != t2.ip_masq || t.port != t2.port || t.iface.n != t2.iface.n ||
	               (t.endpoints && strcmp(t.endpoints, t2.endpoints) != 0)))
		abort();
	flags_free(defs2, ndefs);
	flags_free(defs, ndefs);
	/* flags_free resets the targets. */
	if (t.endpoints || t.prefix || t.public_ip || t.iface.n || t.iface.v || t.regex.n)
		abort();
	/* A small error buffer is honoured. */
	r2 = parse_once(argv, argc, err2, 8, &t2, defs2, &ndefs, &argind2);
	if (r2 != r || strlen(err2) >= 8)
		abort();
	flags_free(defs2, ndefs);

	for (int i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		bool b;

		check_int(argv[i]);
		if (eq)
			check_int(eq + 1);
		(void)flags_parse_bool(argv[i], &b);
	}

	environ = saved_env;
	free(buf);
	return 0;
}
