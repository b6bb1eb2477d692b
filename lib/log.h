/* Logging to stderr with levels, OpenBGPD style. Library code logs at debug at most. */
#ifndef TWILL_LIB_LOG_H
#define TWILL_LIB_LOG_H

#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN = 1,
	LOG_LVL_INFO = 2,
	LOG_LVL_DEBUG = 3,
	LOG_LVL_TRACE = 4,
};

/* Set the program name shown in each line and the threshold (default LOG_LVL_INFO). */
void log_init(const char *progname, int level);
int log_level_get(void);
/* True when messages at @level are printed; use it to skip costly formatting. */
int log_enabled(int level);

/*
 * Outside data (etcd keys, values, server messages) for a log line: bytes outside printable
 * ASCII become \n, \r, \t or \xHH and a backslash becomes \\, so no byte of @s can end or
 * forge a line. Writes at most @len bytes into @buf (NUL-terminated; "..." marks a cut) and
 * returns @buf. log_escape_mem does the same for @n bytes at @s (NUL bytes included).
 */
char *log_escape(char *buf, size_t len, const char *s);
char *log_escape_mem(char *buf, size_t len, const void *s, size_t n);

/*
 * Every line is emitted as one line: control characters and invalid UTF-8 in the formatted
 * message are escaped as log_escape does (valid UTF-8 is kept).
 */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warn appends ": strerror(errno)"; log_warnx does not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
