/* Logging to stderr with levels, OpenBGPD style. Library code logs at debug at most. */
#ifndef TWILL_LIB_LOG_H
#define TWILL_LIB_LOG_H

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

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warn appends ": strerror(errno)"; log_warnx does not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
