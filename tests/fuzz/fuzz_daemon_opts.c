/*
 * libFuzzer harness: twilld's command line (daemon/opts.c: the full flanneld
 * flag table over lib/flags.c) and the --iface-regex translation
 * (daemon/iface.c: iface_regex_translate, then regcomp as twilld does).
 *
 * Input: NUL-separated entries. An entry "FLANNELD_<NAME>=<value>" (up to
 * MAX_ENV of them) is a variable of the environment the parser sees (environ
 * points at exactly these during the run); every other entry is one argv
 * element (argv[0] first). Checks: a
 * rejection has a message, an accepted command line has consistent derived
 * values, twilld_opts_free() releases everything (LeakSanitizer), every
 * --iface-regex either translates and compiles or is rejected, and the
 * translation never writes past its buffer (exact-size heap buffers).
 */
#include <errno.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/iface.h"
#include "daemon/opts.h"

#define MAX_ARGS 64
#define MAX_ENV  8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

extern char **environ;

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	devnull = fopen("/dev/null", "w");
	return 0;
}

/*
 * What twilld does with an --iface-regex (daemon/iface.c regex_compile and
 * match_regex): translate, compile, match addresses and names.
 */
static void check_regex(const char *re2)
{
	static const char *const subjects[] = { "eth0", "192.0.2.11",    "flannel.1",
		                                "lo",   "198.51.100.10", "" };
	char ere[1024];
	regex_t re;
	int icase, r;

	if (iface_regex_translate(re2, ere, sizeof(ere), &icase) < 0)
		return;
	if (strlen(ere) >= sizeof(ere) || (icase != 0 && icase != 1))
		abort();
	r = regcomp(&re, ere, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
	if (r != 0) {
		char msg[128];

		regerror(r, &re, msg, sizeof(msg));
		if (!msg[0])
			abort();
		return;
	}
	for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++)
		(void)regexec(&re, subjects[i], 0, NULL, 0);
	regfree(&re);
}

/* The translation into an exact-size heap buffer of every length up to the full result. */
static void check_translate_bounds(const char *re2)
{
	char full[1024];
	int icase, r;
	size_t need;

	r = iface_regex_translate(re2, full, sizeof(full), &icase);
	need = r == 0 ? strlen(full) + 1 : 64;
	if (need > 64)
		need = 64;
	for (size_t len = 1; len <= need; len++) {
		char *b = malloc(len);
		int icase2;

		if (!b)
			return;
		r = iface_regex_translate(re2, b, len, &icase2);
		/* The result fits exactly when the buffer holds it and its NUL. */
		if (r == 0 && (strlen(b) >= len || strcmp(b, full) != 0))
			abort();
		free(b);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *argv[MAX_ARGS + 1];
	char *env[MAX_ENV + 1], **saved_env;
	size_t n_env = 0;
	char *buf, *p, *end;
	struct twilld_opts o;
	char err[512];
	int argc = 0, r;

	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	end = buf + size;
	for (p = buf; p <= end && argc < MAX_ARGS; p += strlen(p) + 1) {
		if (strncmp(p, TWILLD_ENV_PREFIX, strlen(TWILLD_ENV_PREFIX)) == 0 &&
		    strchr(p, '=') && n_env < MAX_ENV) {
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

	twilld_opts_init(&o);
	/* twilld_opts_parse takes main()'s char **argv; it does not write the strings. */
	r = twilld_opts_parse(&o, argc, (char **)(uintptr_t)argv, err, sizeof(err));
	if (r < 0) {
		if (r != -EINVAL && r != -ENOMEM)
			abort();
		if (!err[0] || strlen(err) >= sizeof(err))
			abort();
	} else if (!o.help && !o.version) {
		char pfx[512];

		if (!o.subnet_file || !*o.subnet_file)
			abort();
		if (o.has_public_ip && o.public_ip_addr.family != AF_INET)
			abort();
		if (o.has_public_ipv6 && o.public_ipv6_addr.family != AF_INET6)
			abort();
		if (o.healthz_port < 0 || o.healthz_port > 65535 || o.lease_ttl_s < 1 ||
		    o.renew_margin_min < 1 || o.renew_margin_min > 1439 ||
		    o.iptables_resync_s < 1 || o.verbosity < 0)
			abort();
		(void)twilld_opts_log_level(&o);
		(void)store_flags_prefix(&o.store, pfx, sizeof(pfx));
		for (size_t i = 0; i < o.iface_regex.n; i++)
			check_regex(o.iface_regex.v[i]);
	} else if (devnull) {
		twilld_opts_usage(&o, "twilld", devnull);
	}
	twilld_opts_free(&o);
	twilld_opts_free(&o); /* idempotent */

	/* The first argv entries as regexes too: the translation alone, on its bounds. */
	for (int i = 1; i < argc && i <= 8; i++)
		check_translate_bounds(argv[i]);

	environ = saved_env;
	free(buf);
	return 0;
}
