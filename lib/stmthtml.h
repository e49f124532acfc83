/*
 * stmthtml: a statement as one self-contained HTML file (README "Statements"):
 * its sections as tables, three inline SVG charts (the burn curve against the
 * straight-line plan, use by site and by user, the histogram of the jobs' mean
 * GPU utilization), no script, no network. The canonical text is embedded,
 * HTML-escaped, in <pre id="allot-canonical"> and the signature in
 * <code id="allot-signature">; the file is a pure function of the two, so verify
 * extracts them, renders the file again and requires the same bytes: a byte
 * changed anywhere, in a table, a chart or the embedded text, fails.
 */
#ifndef ALLOT_STMTHTML_H
#define ALLOT_STMTHTML_H

#include <stddef.h>

#include "stmtfmt.h"
#include "strbuf.h"

/* The chart's bars are at most this many pixels long. */
#define STMTHTML_BAR_MAX 400

/* Appends text[0..len) to out with & < > " ' as entities. */
void stmthtml_escape(struct strbuf *out, const char *text, size_t len);

/* Appends the HTML file of canonical text (checked) and its signature to out. 0 or -1 with err. */
int stmthtml_render(const char *text, size_t len, const char *sig, struct strbuf *out, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/*
 * Rebuilds the canonical text of an HTML statement file into canonical and its
 * signature into sig; the file must be exactly what stmthtml_render makes of
 * them. Returns 0, or -1 with what is wrong in err.
 */
int stmthtml_from_file(const char *data, size_t len, struct strbuf *canonical,
    char sig[STMTFMT_SIG_HEX + 1], char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
