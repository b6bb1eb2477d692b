#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/errfmt.h"

void errfmt(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *errfmt_quote_n(const char *s, size_t n, char buf[ERRFMT_QUOTE_SIZE])
{
	size_t i;

	for (i = 0; i < n && i < ERRFMT_QUOTE_MAX; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (i < n) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

const char *errfmt_quote(const char *s, char buf[ERRFMT_QUOTE_SIZE])
{
	return errfmt_quote_n(s, strnlen(s, ERRFMT_QUOTE_MAX + 1), buf);
}
