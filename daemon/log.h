/*
 * log: leveled, printf-checked messages on stderr, one line each.
 *
 * log_warn appends ": " and strerror(errno), log_warnx does not (STYLE.md); the
 * other levels never do: their callers say what failed.
 * log_debug does not evaluate its arguments unless debug messages are on.
 */
#ifndef ALLOT_LOG_H
#define ALLOT_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_FATAL,
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
};

/* The program's name in each line ("allotd"); kept, not copied. */
void log_set_ident(const char *ident);
void log_set_level(enum log_level level);
bool log_level_enabled(enum log_level level);
/* Reads "fatal", "error", "warn", "info" or "debug"; false for anything else. */
bool log_level_parse(const char *name, enum log_level *level);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, bool with_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Logs and exits with status 1: for start-up failures and broken invariants. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_error(...) log_msg(LOG_ERROR, false, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, true, __VA_ARGS__)
#define log_warnx(...) log_msg(LOG_WARN, false, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, false, __VA_ARGS__)
#define log_debug(...) \
	do { \
		if (log_level_enabled(LOG_DEBUG)) \
			log_msg(LOG_DEBUG, false, __VA_ARGS__); \
	} while (0)

#endif
