#include <errno.h>
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

__attribute__((format(printf, 3, 0))) static void log_vemit(int level, const char *errstr,
							  const char *fmt, va_list ap)
{
	static const char *const names[] = { "E", "W", "I", "D", "T" };
	char msg[2048];
	struct timespec ts;
	struct tm tm;

	if (level > log_threshold)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* One fprintf per line so lines from several processes do not interleave. */
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: %s%s%s\n", tm.tm_year + 1900,
		tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		names[level], log_prog, msg, errstr ? ": " : "", errstr ? errstr : "");
}

#define LOG_FN(fname, level)                       \
	void fname(const char *fmt, ...)           \
	{                                          \
		va_list ap;                        \
		va_start(ap, fmt);                 \
		log_vemit(level, NULL, fmt, ap);   \
		va_end(ap);                        \
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
