/*
 * pgarray: PostgreSQL array literals, one element at a time. Strings are always
 * quoted, with '"' and '\' escaped, so that no value reads as NULL or splits.
 */
#include <inttypes.h>
#include <stdio.h>

#include "pgarray.h"

static void
put_sep(struct strbuf *sb)
{
	strbuf_putc(sb, sb->len > 0 ? ',' : '{');
}

void
pgarray_put_str(struct strbuf *sb, const char *s)
{
	put_sep(sb);
	strbuf_putc(sb, '"');
	for (const char *p = s; *p != '\0'; p++) {
		const char *run = p;

		while (*p != '\0' && *p != '"' && *p != '\\')
			p++;
		strbuf_append(sb, run, (size_t)(p - run));
		if (*p == '\0')
			break;
		strbuf_putc(sb, '\\');
		strbuf_putc(sb, *p);
	}
	strbuf_putc(sb, '"');
}

/* One formatting per number (strbuf_printf would format twice): batches are long. */
void
pgarray_put_int(struct strbuf *sb, int64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%" PRId64, v);

	put_sep(sb);
	strbuf_append(sb, buf, (size_t)n);
}

void
pgarray_put_double(struct strbuf *sb, double v)
{
	char buf[32];
	/* 17 significant digits read back as the same double. */
	int n = snprintf(buf, sizeof(buf), "%.17g", v);

	put_sep(sb);
	strbuf_append(sb, buf, (size_t)n);
}

void
pgarray_put_null(struct strbuf *sb)
{
	put_sep(sb);
	strbuf_puts(sb, "NULL");
}

int
pgarray_finish(struct strbuf *sb)
{
	if (sb->len == 0)
		strbuf_putc(sb, '{');
	strbuf_putc(sb, '}');
	return strbuf_failed(sb) ? -1 : 0;
}
