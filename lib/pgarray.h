/*
 * pgarray: PostgreSQL array literals ("{1,NULL,\"a b\"}") built element by
 * element into a strbuf, for sending a batch as one array per column in one
 * parameter each. Low-level helper: it includes no daemon header.
 */
#ifndef ALLOT_PGARRAY_H
#define ALLOT_PGARRAY_H

#include <stdint.h>

#include "strbuf.h"

/* Append one element to the literal being built in sb (opened by the first). */
void pgarray_put_str(struct strbuf *sb, const char *s);
void pgarray_put_int(struct strbuf *sb, int64_t v);
/* v must be finite: PostgreSQL would read "inf" as an error. */
void pgarray_put_double(struct strbuf *sb, double v);
void pgarray_put_null(struct strbuf *sb);

/* Closes the literal ("{}" for none). Returns 0, or -1 when sb failed to grow. */
int pgarray_finish(struct strbuf *sb) __attribute__((warn_unused_result));

#endif
