#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"

static const char *log_prog = "twill";
static int log_threshold = LOG_LVL_INFO;

void log_init(const char *progname, int level)
{
	if (progname)
		log_prog = progname;
	log_threshold = level;
}

int log_level_get(void)
{
	return log_threshold;
}

int log_enabled(int level)
{
	return level <= log_threshold;
}

/* Length of the valid UTF-8 sequence (2-4 bytes) at @p, or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t len = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
	             : p[0] >= 0xe0 && p[0] <= 0xef ? 3
	             : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
	                                            : 0;
	uint32_t cp = p[0] & (0x7f >> len);

	if (len == 0)
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/*
 * Escape @n bytes at @in into @buf (@len > 0). @utf8: keep valid UTF-8 and backslashes
 * (a formatted message); otherwise only printable ASCII passes (outside data).
 */
static char *escape(char *buf, size_t len, const unsigned char *in, size_t n, bool utf8)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i = 0, safe = 0; /* safe: the last unit boundary with room for "..." */

	if (len == 0)
		return buf;
	while (i < n) {
		unsigned char c = in[i];
		char e[5];
		size_t k = 0, take = 1;

		if (c >= 0x20 && c < 0x7f && (utf8 || c != '\\')) {
			e[k++] = (char)c;
		} else if (c == '\\') {
			e[k++] = '\\';
			e[k++] = '\\';
		} else if (c == '\n' || c == '\r' || c == '\t') {
			e[k++] = '\\';
			e[k++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else if (utf8 && c >= 0x80 && (take = utf8_seq(in + i, n - i)) > 0) {
			memcpy(e, in + i, take);
			k = take;
		} else {
			take = 1;
			e[k++] = '\\';
			e[k++] = 'x';
			e[k++] = hex[c >> 4];
			e[k++] = hex[c & 15];
		}
		if (o + k + 1 > len) {
			/* cut after a whole unit: end with "..." when it fits */
			if (len >= 4) {
				o = safe;
				memcpy(buf + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(buf + o, e, k);
		o += k;
		i += take;
		if (o + 4 <= len)
			safe = o;
	}
	buf[o] = '\0';
	return buf;
}

char *log_escape_mem(char *buf, size_t len, const void *s, size_t n)
{
	return escape(buf, len, s ? s : "", s ? n : 0, false);
}

char *log_escape(char *buf, size_t len, const char *s)
{
	return log_escape_mem(buf, len, s, s ? strlen(s) : 0);
}

__attribute__((format(printf, 3, 0))) static void log_vemit(int level, const char *errstr,
                                                            const char *fmt, va_list ap)
{
	static const char *const names[] = { "E", "W", "I", "D", "T" };
	char raw[2048], msg[2048];
	struct timespec ts;
	int n;
	struct tm tm;

	if (level > log_threshold)
		return;
	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	if (n < 0)
		n = 0;
	/* a key or message with a newline must not forge a line: escape what is not text */
	escape(msg, sizeof(msg), (const unsigned char *)raw,
	       (size_t)n < sizeof(raw) ? (size_t)n : sizeof(raw) - 1, true);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* One fprintf per line so lines from several processes do not interleave. */
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: %s%s%s\n", tm.tm_year + 1900,
	        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
	        names[level], log_prog, msg, errstr ? ": " : "", errstr ? errstr : "");
}

#define LOG_FN(fname, level)                     \
	void fname(const char *fmt, ...)         \
	{                                        \
		va_list ap;                      \
		va_start(ap, fmt);               \
		log_vemit(level, NULL, fmt, ap); \
		va_end(ap);                      \
	}

LOG_FN(log_error, LOG_LVL_ERROR)
LOG_FN(log_warnx, LOG_LVL_WARN)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_debug, LOG_LVL_DEBUG)
LOG_FN(log_trace, LOG_LVL_TRACE)

void log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_WARN, strerror(saved), fmt, ap);
	va_end(ap);
	errno = saved;
}
