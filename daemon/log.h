/*
 * log: leveled, printf-checked messages on stderr, one line each:
 *
 *   2026-11-22T15:30:00.123Z allotd[1234] warn: message
 *
 * The errno rule: log_error and log_warn append ": " and strerror(errno), for
 * failures of a system call; log_errorx and log_warnx do not, for everything else.
 * log_fatal, log_info and log_debug never append it (a fatal message carries its
 * reason, usually from an error buffer).
 *
 * log_debug is a macro that evaluates its arguments only when debug messages are
 * on, so it may be left in hot paths.
 *
 * Single-threaded: the daemon's one loop calls these. Each line is written with one
 * write(2), so lines of concurrent processes sharing stderr do not interleave.
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

/* Sets the program's name printed in each line (default "allotd"); ident is kept, not copied. */
void log_set_ident(const char *ident);

/* Messages less severe than level are dropped; the default is LOG_INFO. */
void log_set_level(enum log_level level);

/* The level set by log_set_level. */
enum log_level log_get_level(void);

/* Whether a message of this level would be written now. */
bool log_level_enabled(enum log_level level);

/*
 * Reads a level's name ("fatal", "error", "warn", "info" or "debug", exactly) into
 * *level. Returns false, *level unchanged, for anything else.
 */
bool log_level_parse(const char *name, enum log_level *level) __attribute__((warn_unused_result));

/* The name of level as log_level_parse reads it; "unknown" for a value out of the enum. */
const char *log_level_name(enum log_level level);

/* Logs the message at level fatal and exits with status 1: start-up failures, broken invariants. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Logs at level error, then ": " strerror(errno). */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs at level error, without errno. */
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs at level warn, then ": " strerror(errno). */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs at level warn, without errno. */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs at level info. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs at level debug; call it through log_debug. */
void log_debug_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_debug(...) \
	do { \
		if (log_level_enabled(LOG_DEBUG)) \
			log_debug_msg(__VA_ARGS__); \
	} while (0)

#endif
