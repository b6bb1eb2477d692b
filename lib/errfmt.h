/* Error messages into a caller's buffer, shared by the parsers of outside input. */
#ifndef TWILL_LIB_ERRFMT_H
#define TWILL_LIB_ERRFMT_H

#include <stddef.h>

#define ERRFMT_QUOTE_MAX  64                     /* printable chars kept of a quoted string */
#define ERRFMT_QUOTE_SIZE (ERRFMT_QUOTE_MAX + 4) /* buffer for errfmt_quote: "..." and NUL */

/* printf into @err (truncated to @errlen); does nothing when @err is NULL or @errlen is 0. */
void errfmt(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* @s for a message, copied into @buf: 64 chars at most, non-printables as '?', "..." if cut. */
const char *errfmt_quote(const char *s, char buf[ERRFMT_QUOTE_SIZE]);
/* As errfmt_quote, for the @n chars at @s (no NUL needed). */
const char *errfmt_quote_n(const char *s, size_t n, char buf[ERRFMT_QUOTE_SIZE]);

#endif
