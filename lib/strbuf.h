/*
 * strbuf: a growable, always NUL-terminated byte buffer.
 *
 * Low-level helper shared by the daemon and the clients; it includes no daemon
 * header. A strbuf that failed to grow stays valid and remembers the failure
 * (strbuf_failed), so a writer may append many pieces and check once.
 */
#ifndef ALLOT_STRBUF_H
#define ALLOT_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *data; /* NUL-terminated; NULL until the first append */
	size_t len;
	size_t cap;
	bool failed; /* an allocation failed; contents are truncated */
};

/* Prepares caller's storage; no allocation. */
void strbuf_init(struct strbuf *sb);
/* Frees the contents; the strbuf may be used again after strbuf_init. */
void strbuf_cleanup(struct strbuf *sb);
void strbuf_reset(struct strbuf *sb);

void strbuf_append(struct strbuf *sb, const void *data, size_t len);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putc(struct strbuf *sb, char c);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns the contents and gives up ownership: the caller frees it. */
char *strbuf_steal(struct strbuf *sb);

static inline bool
strbuf_failed(const struct strbuf *sb)
{
	return sb->failed;
}

#endif
