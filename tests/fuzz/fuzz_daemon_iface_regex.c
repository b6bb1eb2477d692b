/*
 * The --iface-regex translation (daemon/iface_regex.c): any byte string either
 * translates into an ERE that regcomp() accepts within the limits, or is
 * rejected with a message; never a crash, never an overflow of the output
 * buffer, and the same answer for every buffer size that holds the result.
 */
#include <errno.h>
#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/iface_regex.h"

/* What twilld does with it: compile, then match addresses and names. */
static void check_compile(const char *re2)
{
	static const char *const subjects[] = { "eth0", "192.0.2.11",    "flannel.1",
		                                "lo",   "198.51.100.10", "" };
	char err[1024];
	regex_t re;
	int r = iface_regex_compile(re2, &re, err, sizeof(err));

	if (r < 0) {
		if (r == -EINVAL && !err[0])
			abort(); /* a rejection always says why */
		if (iface_regex_check(re2, err, sizeof(err)) != r)
			abort();
		return;
	}
	if (iface_regex_check(re2, err, sizeof(err)) != 0)
		abort();
	for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++)
		(void)regexec(&re, subjects[i], 0, NULL, 0);
	regfree(&re);
}

/* The translation into an exact-size heap buffer of every length up to the full result. */
static void check_bounds(const char *re2)
{
	char full[IFACE_REGEX_MAX_LEN * 7 + 1];
	int icase, r;
	size_t need;

	r = iface_regex_translate(re2, full, sizeof(full), &icase);
	if (r == 0 && (strlen(full) >= sizeof(full) || (icase != 0 && icase != 1)))
		abort();
	need = r == 0 ? strlen(full) + 1 : 64;
	if (need > 64)
		need = 64;
	for (size_t len = 1; len <= need; len++) {
		char *b = malloc(len);
		int icase2;

		if (!b)
			return;
		r = iface_regex_translate(re2, b, len, &icase2);
		if (r == 0 && (strlen(b) >= len || strcmp(b, full) != 0))
			abort();
		free(b);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *re2;

	if (size > IFACE_REGEX_MAX_LEN + 16)
		return 0;
	re2 = malloc(size + 1);
	if (!re2)
		return 0;
	memcpy(re2, data, size);
	re2[size] = '\0';
	check_bounds(re2);
	check_compile(re2);
	free(re2);
	return 0;
}
