/*
 * confline: the syntax shared by Allot's configuration files (allotd's and
 * allot-collect's), with none of their keys.
 *
 * A file is made of "key = value" lines. A '#' outside quotes starts a comment;
 * blank lines are skipped. A value is bare (everything up to a comment or the end
 * of the line, spaces trimmed at both ends) or double-quoted, where \" and \\ are
 * the only escapes. A UTF-8 byte order mark and CRLF line ends are accepted.
 * Numbers are decimal, sizes take an optional suffix k, M or G (1024-based).
 * What the keys are, their types and bounds, is each file's table.
 */
#ifndef ALLOT_CONFLINE_H
#define ALLOT_CONFLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The longest line accepted, without its newline. */
#define CONFLINE_MAX 4096

/*
 * Called for each setting with its key, its value (unquoted) and its line.
 * Returns 0, or -1 with a message without location in msg, which stops the
 * reading.
 */
typedef int (*confline_cb)(
    void *arg, const char *key, const char *value, int lineno, char *msg, size_t msglen);

/*
 * Reads f to its end, calling cb for each setting. Returns 0, or -1 with the
 * reason in err: "path:line: message" for a line (a NUL byte, a line longer than
 * CONFLINE_MAX, bad syntax, or cb's message), "path: could not read: ..." for a
 * read error.
 */
int confline_read(FILE *f, const char *path, confline_cb cb, void *arg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Reads an optional '-', decimal digits and, when size is set, one suffix k, M or
 * G. Returns 0 with the value in *out, 1 when the syntax is right but the value
 * does not fit in a long long, -1 for bad syntax.
 */
int confline_number(const char *text, bool size, long long *out)
    __attribute__((warn_unused_result));

#endif
