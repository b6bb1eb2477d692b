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
 * KNOWN BUG (reported; not yet fixed in daemon/iface.c): glibc's regcomp()
 * expands repetitions by copying the repeated tree ("x+" becomes "xx*",
 * "x{m,n}" n copies), so nested ones grow exponentially:
 * "(((a{255}){255}){255})" takes gigabytes, 22 nested "(a)+" more than 3 GB,
 * and its epsilon closures are worse than linear (10 nested "()+": 4 s and
 * 780 MB under ASan, 12: over a minute); twilld --iface-regex with them runs
 * out of memory or hangs at start-up. Go's regexp (flanneld) rejects counts
 * above 1000, stacked operators ("a++") and programs that grow too large.
 * Until iface_regex_translate() rejects these, the harness does not hand them
 * to regcomp(): expanded_size() estimates the number of nodes glibc builds
 * (saturating at SIZE_CAP); realistic interface regexes ("^eth\\d+$",
 * "[0-9]{1,3}(\\.[0-9]{1,3}){3}") stay far below SIZE_LIMIT.
 */
#define SIZE_LIMIT 300
#define SIZE_CAP   1000000000ULL

static unsigned long long sat_mul(unsigned long long a, unsigned long long b)
{
	return a && b > SIZE_CAP / a ? SIZE_CAP : a * b;
}

static unsigned long long sat_add(unsigned long long a, unsigned long long b)
{
	return a + b > SIZE_CAP ? SIZE_CAP : a + b;
}

/* A counted repetition {m}, {m,} or {m,n} at @p: the copies glibc makes, or 0 (a literal '{'). */
static unsigned long long repeat_copies(const char *p, const char **ret_end)
{
	unsigned long long m = 0, n = 0;
	bool open = false, has_n = false;
	const char *q = p + 1;

	if (*q < '0' || *q > '9')
		return 0;
	for (; *q >= '0' && *q <= '9'; q++)
		m = sat_add(sat_mul(m, 10), (unsigned long long)(*q - '0'));
	if (*q == ',') {
		q++;
		open = true;
		for (; *q >= '0' && *q <= '9'; q++) {
			n = sat_add(sat_mul(n, 10), (unsigned long long)(*q - '0'));
			has_n = true;
		}
	}
	if (*q != '}')
		return 0;
	*ret_end = q;
	if (has_n)
		return n > m ? n : m;
	return open ? m + 1 : m;
}

static unsigned long long expanded_size(const char *ere)
{
	struct {
		unsigned long long total, last; /* the group so far; its last atom */
	} st[64];
	size_t depth = 0;

	st[0].total = st[0].last = 0;
	for (const char *p = ere; *p; p++) {
		unsigned long long k = 0, atom = 1;
		const char *end;

		switch (*p) {
		case '\\':
			if (p[1])
				p++;
			break;
		case '[':
			/* a bracket expression: a leading ']' is literal; [:class:] inside */
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p && *p != ']') {
				if (p[0] == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
					const char *e = strchr(p + 2, p[1]);

					if (e && e[1] == ']')
						p = e + 1;
				}
				p++;
			}
			if (!*p)
				return st[0].total; /* unterminated: regcomp rejects it */
			break;
		case '(':
			if (++depth >= sizeof(st) / sizeof(st[0]))
				return SIZE_CAP;
			st[depth].total = st[depth].last = 0;
			continue;
		case ')':
			if (depth == 0)
				break; /* a literal ')' in ERE */
			atom = st[depth].total ? st[depth].total : 1;
			depth--;
			break;
		case '|':
			st[depth].last = 0;
			continue;
		case '*':
		case '?':
			k = 1;
			break;
		case '+':
			k = 2;
			break;
		case '{':
			k = repeat_copies(p, &end);
			if (k)
				p = end;
			break;
		default:
			break;
		}
		if (k) {
			/* a postfix operator: the last atom becomes k copies (and a node) */
			unsigned long long grown = sat_mul(st[depth].last, k);

			st[depth].total = sat_add(st[depth].total - st[depth].last, grown);
			st[depth].total = sat_add(st[depth].total, 1);
			st[depth].last = sat_add(grown, 1);
		} else {
			st[depth].total = sat_add(st[depth].total, atom);
			st[depth].last = atom;
		}
	}
	while (depth > 0) { /* unbalanced: regcomp rejects it; count it anyway */
		st[depth - 1].total = sat_add(st[depth - 1].total, st[depth].total);
		depth--;
	}
	return st[0].total;
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
	if (expanded_size(ere) > SIZE_LIMIT)
		return;
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
