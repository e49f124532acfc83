/*
 * confline: splitting configuration lines into keys and values, and numbers with
 * size suffixes (see confline.h). Interpreting the keys is the caller's.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "confline.h"

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int
confline_number(const char *text, bool size, long long *out)
{
	const char *p = text;
	bool negative = false, overflow = false;
	long long v = 0;
	int shift = 0;

	if (*p == '-') {
		negative = true;
		p++;
	}
	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		int digit = *p - '0';

		if (v > (LLONG_MAX - digit) / 10)
			overflow = true;
		else
			v = v * 10 + digit;
	}
	if (size && *p != '\0') {
		shift = *p == 'k' ? 10 : *p == 'M' ? 20 : *p == 'G' ? 30 : -1;
		if (shift < 0)
			return -1;
		p++;
	}
	if (*p != '\0')
		return -1;
	if (v > (LLONG_MAX >> shift))
		overflow = true;
	if (overflow)
		return 1;
	v <<= shift;
	*out = negative ? -v : v;
	return 0;
}

static char *
skip_blanks(char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/*
 * Splits one line (without its newline) into key and value, in place. Returns 1 for
 * a setting, 0 for a blank or comment line, -1 with a message in err.
 */
static int
split_line(char *line, char **key, char **value, char *err, size_t errlen)
{
	char *p = skip_blanks(line), *key_end, *out, *end;

	if (*p == '\0' || *p == '#')
		return 0;
	*key = p;
	while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '=' && *p != '#')
		p++;
	if (p == *key) {
		errf(err, errlen, "missing key before \"=\"");
		return -1;
	}
	key_end = p;
	p = skip_blanks(p);
	if (*p != '=') {
		*key_end = '\0';
		errf(err, errlen, "missing \"=\" after key \"%s\"", *key);
		return -1;
	}
	p = skip_blanks(p + 1);
	*key_end = '\0';

	if (*p != '"') {
		*value = p;
		end = p + strcspn(p, "#");
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
		return 1;
	}
	*value = out = ++p;
	for (;;) {
		if (*p == '\0') {
			errf(err, errlen, "unterminated quoted value of \"%s\"", *key);
			return -1;
		}
		if (*p == '"')
			break;
		if (*p == '\\') {
			if (p[1] == '\0') {
				errf(err, errlen, "unterminated quoted value of \"%s\"", *key);
				return -1;
			}
			if (p[1] != '"' && p[1] != '\\') {
				errf(err, errlen,
				    "invalid escape \"\\%c\" in the quoted value of \"%s\": only "
				    "\\\" "
				    "and \\\\ are allowed",
				    p[1], *key);
				return -1;
			}
			p++;
		}
		*out++ = *p++;
	}
	p = skip_blanks(p + 1);
	*out = '\0';
	if (*p != '\0' && *p != '#') {
		errf(err, errlen, "unexpected text after the quoted value of \"%s\"", *key);
		return -1;
	}
	return 1;
}

int
confline_read(FILE *f, const char *path, confline_cb cb, void *arg, char *err, size_t errlen)
{
	char *line = NULL, msg[CONFLINE_MAX + 256];
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = -1;

	errno = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *p = line, *key, *value;
		int r;

		lineno++;
		if ((size_t)len != strlen(line)) {
			errf(err, errlen, "%s:%d: line contains a NUL byte", path, lineno);
			goto out;
		}
		line[strcspn(line, "\n")] = '\0';
		len = (ssize_t)strlen(line);
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (lineno == 1 && strncmp(p, "\xef\xbb\xbf", 3) == 0)
			p += 3; /* a UTF-8 byte order mark, as some editors write */
		if (strlen(p) > CONFLINE_MAX) {
			errf(err, errlen, "%s:%d: line is longer than %d bytes", path, lineno,
			    CONFLINE_MAX);
			goto out;
		}
		if ((r = split_line(p, &key, &value, msg, sizeof(msg))) < 0) {
			errf(err, errlen, "%s:%d: %s", path, lineno, msg);
			goto out;
		}
		if (r == 0)
			continue;
		if (cb(arg, key, value, lineno, msg, sizeof(msg)) != 0) {
			errf(err, errlen, "%s:%d: %s", path, lineno, msg);
			goto out;
		}
		errno = 0;
	}
	if (ferror(f)) {
		errf(err, errlen, "%s: could not read: %s", path,
		    errno != 0 ? strerror(errno) : "read error");
		goto out;
	}
	rc = 0;
out:
	free(line);
	return rc;
}
