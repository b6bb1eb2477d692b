/*
 * libFuzzer harness: the health server's HTTP request parser (daemon/health.c).
 * Checks, beyond "no crash": a complete request spans at most the input and
 * the cap, its path lies inside it and starts with '/', errors carry a reason,
 * and parsing is prefix-monotonic (a complete request stays complete, with the
 * same length, when more bytes follow).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct http_request r, r2;
	char err[128];
	size_t max = 256 + (size ? data[0] : 0) * 32; /* small caps too */
	int n, n2;

	n = health_http_parse(buf, size, max, &r, err, sizeof(err));
	if (n > 0) {
		if ((size_t)n > size || (size_t)n > max)
			abort();
		if (r.path < buf || r.path + r.path_len > buf + n || r.path_len == 0 ||
		    r.path[0] != '/')
			abort();
		if (memchr(r.path, '?', r.path_len))
			abort();
		if (r.method != HTTP_GET && r.method != HTTP_HEAD && r.method != HTTP_OTHER)
			abort();
		if (r.minor != 0 && r.minor != 1)
			abort();
		/* the same head with a prefix of the rest: same answer */
		n2 = health_http_parse(buf, (size_t)n, max, &r2, NULL, 0);
		if (n2 != n || r2.path != r.path || r2.path_len != r.path_len ||
		    r2.keep_alive != r.keep_alive)
			abort();
	} else if (n < 0) {
		if (n != -EINVAL && n != -E2BIG && n != -ENOTSUP && n != -EPROTONOSUPPORT)
			abort();
		if (err[0] == '\0')
			abort();
	} else if (size >= max) {
		abort(); /* incomplete although the cap is reached */
	}
	return 0;
}
