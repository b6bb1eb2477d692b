/*
 * Header and trailer look-up in a response's "name: value\r\n" lines (struct http_response),
 * the same for both transports of lib/http.c (libcurl and lib/h2c.c).
 */
#include <string.h>
#include <strings.h>

#include "lib/http.h"

const char *http_header_get(const char *headers, const char *name, char *buf, size_t len)
{
	size_t nl = strlen(name);
	const char *found = NULL, *p = headers;
	size_t flen = 0;

	if (!headers || !len)
		return NULL;
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);

		if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			found = p + nl + 1;
			flen = ll - nl - 1;
			while (flen && (*found == ' ' || *found == '\t'))
				found++, flen--;
		}
		p += ll + (eol ? 1 : 0);
	}
	if (!found)
		return NULL;
	while (flen &&
	       (found[flen - 1] == '\r' || found[flen - 1] == ' ' || found[flen - 1] == '\t'))
		flen--;
	if (flen >= len)
		flen = len - 1;
	memcpy(buf, found, flen);
	buf[flen] = '\0';
	return buf;
}
