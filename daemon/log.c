/*
 * log: formats "2026-11-22T15:30:00.123Z allotd[1234] warn: message" and
 * writes it with one write(2), so lines of concurrent processes do not mix.
 * Where the logs go beyond stderr is the supervisor's business.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_ident = "allot";
static enum log_level log_level = LOG_INFO;

static const char *const level_names[] = {
    [LOG_FATAL] = "fatal",
    [LOG_ERROR] = "error",
    [LOG_WARN] = "warn",
    [LOG_INFO] = "info",
    [LOG_DEBUG] = "debug",
};

void
log_set_ident(const char *ident)
{
	log_ident = ident;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

bool
log_level_enabled(enum log_level level)
{
	return level <= log_level;
}

bool
log_level_parse(const char *name, enum log_level *level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return true;
		}
	}
	return false;
}

const char *
log_level_name(enum log_level level)
{
	if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
		return "unknown";
	return level_names[level];
}

static void
log_vwrite(enum log_level level, bool with_errno, const char *fmt, va_list ap)
{
	char line[4096];
	struct timespec ts;
	struct tm tm;
	int saved = errno;
	size_t n;
	int w;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	w = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s[%ld] %s: ", ts.tv_nsec / 1000000,
	    log_ident, (long)getpid(), log_level_name(level));
	if (w > 0)
		n += (size_t)w < sizeof(line) - n ? (size_t)w : sizeof(line) - n - 1;
	w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (w > 0)
		n += (size_t)w < sizeof(line) - n ? (size_t)w : sizeof(line) - n - 1;
	if (with_errno && n < sizeof(line) - 1) {
		w = snprintf(line + n, sizeof(line) - n, ": %s", strerror(saved));
		if (w > 0)
			n += (size_t)w < sizeof(line) - n ? (size_t)w : sizeof(line) - n - 1;
	}
	/* A message cut at the buffer's end still ends its line. */
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
	errno = saved;
}

void
log_msg(enum log_level level, bool with_errno, const char *fmt, ...)
{
	va_list ap;

	if (!log_level_enabled(level))
		return;
	va_start(ap, fmt);
	log_vwrite(level, with_errno, fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_FATAL, false, fmt, ap);
	va_end(ap);
	exit(1);
}
