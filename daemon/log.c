/*
 * log: formats "2026-11-22T15:30:00.123Z allotd[1234] warn: message" (UTC, to the
 * millisecond) and writes it to stderr with one write(2), so that the lines of several
 * processes sharing a pipe or file do not mix. Control characters in a message are
 * escaped (\n, \r, \t, \xNN), so text from a peer cannot forge a line; a message too
 * long for one line is cut and ends in "...".
 *
 * Where the lines go after stderr (journald, a file, rotation) is the supervisor's
 * business; this module neither opens files nor uses syslog.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* The longest line written, newline included. */
#define LOG_LINE_MAX 8192

static const char *log_ident = "allotd";
static enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = {
    [LOG_FATAL] = "fatal",
    [LOG_ERROR] = "error",
    [LOG_WARN] = "warn",
    [LOG_INFO] = "info",
    [LOG_DEBUG] = "debug",
};
#define NLEVELS (sizeof(level_names) / sizeof(level_names[0]))

/* A line being built; room is kept at the end for "...\n". */
struct line {
	char buf[LOG_LINE_MAX];
	size_t len;
	bool cut;
};
#define LINE_BODY_MAX (LOG_LINE_MAX - (sizeof("...\n") - 1))

void
log_set_ident(const char *ident)
{
	log_ident = ident;
}

void
log_set_level(enum log_level level)
{
	log_threshold = level;
}

enum log_level
log_get_level(void)
{
	return log_threshold;
}

bool
log_level_enabled(enum log_level level)
{
	return level <= log_threshold;
}

bool
log_level_parse(const char *name, enum log_level *level)
{
	for (size_t i = 0; i < NLEVELS; i++) {
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
	if ((unsigned)level >= NLEVELS)
		return "unknown";
	return level_names[level];
}

/*
 * Appends n bytes, or as many as fit when split is set; once the line is full,
 * nothing more. Escapes are appended whole or not at all.
 */
static void
line_put(struct line *l, const char *s, size_t n, bool split)
{
	if (l->cut)
		return;
	if (n > LINE_BODY_MAX - l->len) {
		l->cut = true;
		if (!split)
			return;
		n = LINE_BODY_MAX - l->len;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

/* Appends text with its control characters escaped. */
static void
line_put_escaped(struct line *l, const char *text)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)text;

	while (*p != '\0' && !l->cut) {
		size_t run = 0;
		char esc[4];

		while (p[run] >= 0x20 && p[run] != 0x7f)
			run++;
		line_put(l, (const char *)p, run, true);
		p += run;
		if (*p == '\0')
			break;
		esc[0] = '\\';
		if (*p == '\n' || *p == '\r' || *p == '\t') {
			esc[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
			line_put(l, esc, 2, false);
		} else {
			esc[1] = 'x';
			esc[2] = hex[*p >> 4];
			esc[3] = hex[*p & 0xf];
			line_put(l, esc, 4, false);
		}
		p++;
	}
}

static void
line_write(struct line *l)
{
	size_t off = 0;

	if (l->cut) {
		memcpy(l->buf + l->len, "...", 3);
		l->len += 3;
	}
	l->buf[l->len++] = '\n';
	/* One write(2) in the normal case; the loop only covers signals and short writes. */
	while (off < l->len) {
		ssize_t w = write(STDERR_FILENO, l->buf + off, l->len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

static void
log_vwrite(enum log_level level, bool with_errno, const char *fmt, va_list ap)
{
	struct line l = {.len = 0, .cut = false};
	char msg[LOG_LINE_MAX], stamp[64];
	int saved_errno = errno;
	struct timespec ts = {0, 0};
	struct tm tm;
	int n;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(stamp, sizeof(stamp), "0000-00-00T00:00:00");
	n = snprintf(l.buf, LINE_BODY_MAX, "%s.%03ldZ %s[%ld] %s: ", stamp,
	    (long)ts.tv_nsec / 1000000, log_ident, (long)getpid(), log_level_name(level));
	if (n < 0)
		return;
	l.len = (size_t)n < LINE_BODY_MAX ? (size_t)n : LINE_BODY_MAX - 1;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		snprintf(msg, sizeof(msg), "(unformattable message \"%s\")", fmt);
	line_put_escaped(&l, msg);
	if (n >= 0 && (size_t)n >= sizeof(msg))
		l.cut = true;
	if (with_errno) {
		line_put(&l, ": ", 2, true);
		line_put_escaped(&l, strerror(saved_errno));
	}
	line_write(&l);
	errno = saved_errno;
}

/* The body shared by every level's function. */
#define LOG_AT(level, with_errno) \
	do { \
		va_list ap; \
		if (!log_level_enabled(level)) \
			return; \
		va_start(ap, fmt); \
		log_vwrite(level, with_errno, fmt, ap); \
		va_end(ap); \
	} while (0)

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_FATAL, false, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_error(const char *fmt, ...)
{
	LOG_AT(LOG_ERROR, true);
}

void
log_errorx(const char *fmt, ...)
{
	LOG_AT(LOG_ERROR, false);
}

void
log_warn(const char *fmt, ...)
{
	LOG_AT(LOG_WARN, true);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_AT(LOG_WARN, false);
}

void
log_info(const char *fmt, ...)
{
	LOG_AT(LOG_INFO, false);
}

void
log_debug_msg(const char *fmt, ...)
{
	LOG_AT(LOG_DEBUG, false);
}
