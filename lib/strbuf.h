/*
 * strbuf: a growable, always NUL-terminated byte buffer.
 *
 * Low-level helper shared by the daemon and the clients; it includes no daemon
 * header. A strbuf that failed to grow stays valid and remembers the failure
 * (strbuf_failed), so a writer may append many pieces and check once. Not
 * thread-safe; any loop may use its own strbufs.
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
/* Empties the contents, keeping the allocation, and forgets a failure. */
void strbuf_reset(struct strbuf *sb);

/*
 * Append len bytes (which may hold NULs), a C string, one byte, or printf
 * output. Each grows the buffer as needed and keeps a NUL after the contents;
 * when it cannot, it appends nothing and sets the failure flag, after which
 * every append does nothing until strbuf_reset.
 */
void strbuf_append(struct strbuf *sb, const void *data, size_t len);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putc(struct strbuf *sb, char c);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Returns the contents, "" when nothing was appended, and leaves sb empty as
 * after strbuf_init: the caller frees the result. Returns NULL when sb had
 * failed (its truncated contents are freed) or the empty string cannot be
 * allocated.
 */
char *strbuf_steal(struct strbuf *sb) __attribute__((warn_unused_result));

static inline bool
strbuf_failed(const struct strbuf *sb)
{
	return sb->failed;
}

#endif
