/*
 * stmthtml: a statement's HTML file, its tables and its inline SVG charts, and
 * the way back from the file to the canonical text (see stmthtml.h and README
 * "Statements").
 */
#include "stmthtml.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* As in stmtfmt.c: the widest section has 14 columns. */
#define ROW_FIELDS 64
#define HIST_BINS 10

static const char pre_open[] = "<pre id=\"allot-canonical\">";
static const char pre_close[] = "</pre>";
static const char sig_open[] = "<code id=\"allot-signature\">";
static const char sig_close[] = "</code>";

/* One canonical line split at its TABs; its fields point into the text. */
struct row {
	const char *at[ROW_FIELDS];
	size_t len[ROW_FIELDS];
	int n;
};

/* The canonical text as lines, in order. */
struct doc {
	struct row *rows;
	size_t n;
};

/* Splits checked canonical text (after its header) into doc. 0, or -1 out of memory. */
static int
doc_parse(const char *text, size_t len, struct doc *d)
{
	size_t pos = strlen(STMTFMT_HEADER), cap = 0;

	d->rows = NULL;
	d->n = 0;
	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t ll = (size_t)(nl - line), start = 0;
		struct row *r;

		if (d->n == cap) {
			struct row *grown;

			cap = cap == 0 ? 64 : cap * 2;
			if ((grown = realloc(d->rows, cap * sizeof(*grown))) == NULL)
				return -1;
			d->rows = grown;
		}
		r = &d->rows[d->n++];
		r->n = 0;
		for (size_t i = 0; i <= ll; i++) {
			if (i < ll && line[i] != '\t')
				continue;
			if (r->n == ROW_FIELDS)
				return -1; /* stmtfmt_check refused this already */
			r->at[r->n] = line + start;
			r->len[r->n++] = i - start;
			start = i + 1;
		}
		pos += ll + 1;
	}
	return 0;
}

static bool
is(const char *s, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(s, want, len) == 0;
}

/* The index of section name's columns line, or -1 when the statement has none. */
static long
doc_section(const struct doc *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (is(d->rows[i].at[0], d->rows[i].len[0], "columns") &&
		    is(d->rows[i].at[1], d->rows[i].len[1], name))
			return (long)i;
	return -1;
}

/* The field index of column name in the section whose columns line is at, or -1. */
static int
doc_column(const struct doc *d, long at, const char *name)
{
	const struct row *c = &d->rows[at];

	for (int i = 2; i < c->n; i++)
		if (is(c->at[i], c->len[i], name))
			return i - 1;
	return -1;
}

/* Calls fn for each row of section name with the fields of its columns a and b. */
static void
doc_rows(const struct doc *d, const char *name, const char *a, const char *b,
    void (*fn)(void *, const char *, size_t, const char *, size_t), void *arg)
{
	long at = doc_section(d, name);
	int ia, ib;

	if (at < 0 || (ia = doc_column(d, at, a)) < 0 || (ib = doc_column(d, at, b)) < 0)
		return;
	for (size_t i = (size_t)at + 1;
	     i < d->n && !is(d->rows[i].at[0], d->rows[i].len[0], "columns"); i++)
		fn(arg, d->rows[i].at[ia], d->rows[i].len[ia], d->rows[i].at[ib],
		    d->rows[i].len[ib]);
}

/* An integer field; 0 when it is not one (a `-`, an empty field). */
static int64_t
field_int(const char *s, size_t len)
{
	char buf[32], *end;
	long long v;

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	v = strtoll(buf, &end, 10);
	return *end == '\0' ? (int64_t)v : 0;
}

void
stmthtml_escape(struct strbuf *out, const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		switch (text[i]) {
		case '&':
			strbuf_puts(out, "&amp;");
			break;
		case '<':
			strbuf_puts(out, "&lt;");
			break;
		case '>':
			strbuf_puts(out, "&gt;");
			break;
		case '"':
			strbuf_puts(out, "&quot;");
			break;
		case '\'':
			strbuf_puts(out, "&#39;");
			break;
		default:
			strbuf_putc(out, text[i]);
		}
	}
}

/* v of max as a length of px pixels, rounded; 0 for v <= 0. Integer-exact enough. */
static long
scale(int64_t v, int64_t max, long px)
{
	if (v <= 0 || max <= 0)
		return 0;
	if (v >= max)
		return px;
	return (long)llround((double)v / (double)max * (double)px);
}

/* Days since 1970-01-01 of `YYYY-MM-DD` (the first ten bytes of s); false if not a date. */
static bool
civil_days(const char *s, size_t len, long *days)
{
	int y, m, d;
	long era, yoe, doy, doe;

	if (len < 10 || sscanf(s, "%4d-%2d-%2d", &y, &m, &d) != 3 || m < 1 || m > 12 || d < 1 ||
	    d > 31)
		return false;
	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	*days = era * 146097 + doe - 719468;
	return true;
}

/* The first field of column name in section sec, or "" (length 0). */
static const char *
doc_value(const struct doc *d, const char *sec, const char *name, size_t *len)
{
	long at = doc_section(d, sec);
	int i;

	*len = 0;
	if (at < 0 || (i = doc_column(d, at, name)) < 0 || (size_t)at + 1 >= d->n ||
	    !is(d->rows[at + 1].at[0], d->rows[at + 1].len[0], sec))
		return "";
	*len = d->rows[at + 1].len[i];
	return d->rows[at + 1].at[i];
}

/* The burn curve: the period's use by day, cumulated, and the straight-line plan. */
struct burn {
	long from, ndays;
	int64_t *by_day;
};

static void
burn_row(void *arg, const char *day, size_t daylen, const char *units, size_t unitslen)
{
	struct burn *b = arg;
	long n;

	if (civil_days(day, daylen, &n) && n >= b->from && n < b->from + b->ndays)
		b->by_day[n - b->from] += field_int(units, unitslen);
}

#define BURN_W 560
#define BURN_H 200
#define BURN_X 60
#define BURN_Y 20

static int
chart_burn(const struct doc *d, struct strbuf *out)
{
	struct burn b = {0};
	size_t fl, tl, pl;
	const char *from = doc_value(d, "statement", "from", &fl);
	const char *to = doc_value(d, "statement", "to", &tl);
	const char *planf = doc_value(d, "plan", "plan_units", &pl);
	int64_t plan = field_int(planf, pl), total = 0, max;
	long tdays;

	if (!civil_days(from, fl, &b.from) || !civil_days(to, tl, &tdays) || tdays <= b.from)
		b.ndays = 1;
	else
		b.ndays = tdays - b.from;
	if ((b.by_day = calloc((size_t)b.ndays, sizeof(*b.by_day))) == NULL)
		return -1;
	doc_rows(d, "day", "day", "units", burn_row, &b);
	for (long i = 0; i < b.ndays; i++)
		total += b.by_day[i];
	max = total > plan ? total : plan;
	strbuf_printf(out,
	    "<figure id=\"chart-burn\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
	    "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"burn curve\">\n",
	    BURN_X + BURN_W + 20, BURN_Y + BURN_H + 40, BURN_X + BURN_W + 20, BURN_Y + BURN_H + 40);
	strbuf_printf(out,
	    "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
	    "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n",
	    BURN_X, BURN_Y + BURN_H, BURN_X + BURN_W, BURN_Y + BURN_H, BURN_X, BURN_Y, BURN_X,
	    BURN_Y + BURN_H);
	strbuf_printf(out,
	    "<line class=\"plan\" id=\"burn-plan\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%ld\"/>\n",
	    BURN_X, BURN_Y + BURN_H, BURN_X + BURN_W, BURN_Y + BURN_H - scale(plan, max, BURN_H));
	strbuf_printf(out, "<polyline class=\"burn\" id=\"burn-use\" points=\"%d,%d", BURN_X,
	    BURN_Y + BURN_H);
	total = 0;
	for (long i = 0; i < b.ndays; i++) {
		total += b.by_day[i];
		strbuf_printf(out, " %ld,%ld", BURN_X + scale(i + 1, b.ndays, BURN_W),
		    BURN_Y + BURN_H - scale(total, max, BURN_H));
	}
	strbuf_puts(out, "\"/>\n");
	strbuf_printf(out,
	    "<text x=\"%d\" y=\"%d\">%.10s</text><text x=\"%d\" y=\"%d\" "
	    "text-anchor=\"end\">%.10s</text>\n",
	    BURN_X, BURN_Y + BURN_H + 16, fl >= 10 ? from : "", BURN_X + BURN_W,
	    BURN_Y + BURN_H + 16, tl >= 10 ? to : "");
	strbuf_printf(out,
	    "</svg><figcaption>Burn: use by day, cumulated (%.6f GPU-hours), against the "
	    "straight-line plan (%.6f GPU-hours)</figcaption></figure>\n",
	    (double)total / 3600000.0, (double)plan / 3600000.0);
	free(b.by_day);
	return 0;
}

/* Bars: the rows of a section by name and units. */
struct bars {
	struct strbuf *out;
	int64_t max;
	int i;
	bool draw;
};

static void
bar_row(void *arg, const char *name, size_t namelen, const char *units, size_t unitslen)
{
	struct bars *b = arg;
	int64_t v = field_int(units, unitslen);
	int y = 10 + b->i++ * 22;

	if (!b->draw) {
		if (v > b->max)
			b->max = v;
		return;
	}
	strbuf_printf(b->out, "<text x=\"150\" y=\"%d\" text-anchor=\"end\">", y + 13);
	stmthtml_escape(b->out, name, namelen);
	strbuf_printf(b->out,
	    "</text><rect class=\"bar\" x=\"160\" y=\"%d\" width=\"%ld\" height=\"16\" "
	    "data-units=\"%lld\"><title>",
	    y, scale(v, b->max, STMTHTML_BAR_MAX), (long long)v);
	stmthtml_escape(b->out, name, namelen);
	strbuf_printf(b->out, ": %.6f GPU-hours</title></rect>\n", (double)v / 3600000.0);
}

static void
chart_bars(const struct doc *d, const char *section, struct strbuf *out)
{
	struct bars b = {.out = out};
	int h;

	doc_rows(d, section, section, "units", bar_row, &b);
	h = 20 + b.i * 22;
	b.i = 0;
	b.draw = true;
	strbuf_printf(out,
	    "<figure id=\"chart-%s\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
	    "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"use by %s\">\n",
	    section, 180 + STMTHTML_BAR_MAX, h, 180 + STMTHTML_BAR_MAX, h, section);
	doc_rows(d, section, section, "units", bar_row, &b);
	strbuf_printf(out,
	    "</svg><figcaption>Use by %s, units (3,600,000 a GPU-hour)</figcaption>"
	    "</figure>\n",
	    section);
}

/* The histogram of the jobs' mean GPU utilization, in bins of 10 %. */
struct hist {
	long bin[HIST_BINS], without;
};

static void
hist_row(void *arg, const char *pct, size_t pctlen, const char *unused, size_t unusedlen)
{
	struct hist *h = arg;
	char buf[32], *end;
	double v;
	int i;

	(void)unused;
	(void)unusedlen;
	if (pctlen == 0 || pctlen >= sizeof(buf)) {
		h->without++;
		return;
	}
	memcpy(buf, pct, pctlen);
	buf[pctlen] = '\0';
	v = strtod(buf, &end);
	if (*end != '\0' || end == buf || !(v >= 0)) {
		h->without++;
		return;
	}
	i = v >= 100 ? HIST_BINS - 1 : (int)(v / 10);
	h->bin[i]++;
}

static void
chart_hist(const struct doc *d, struct strbuf *out)
{
	struct hist h = {{0}, 0};
	long max = 0, jobs = 0;

	doc_rows(d, "job", "mean_utilization_pct", "job_id", hist_row, &h);
	for (int i = 0; i < HIST_BINS; i++) {
		jobs += h.bin[i];
		if (h.bin[i] > max)
			max = h.bin[i];
	}
	strbuf_puts(out,
	    "<figure id=\"chart-efficiency\"><svg xmlns=\"http://www.w3.org/2000/svg\" "
	    "width=\"460\" height=\"220\" viewBox=\"0 0 460 220\" role=\"img\" "
	    "aria-label=\"efficiency histogram\">\n");
	strbuf_puts(out, "<line class=\"axis\" x1=\"30\" y1=\"180\" x2=\"430\" y2=\"180\"/>\n");
	for (int i = 0; i < HIST_BINS; i++) {
		long bh = scale(h.bin[i], max, 160);

		strbuf_printf(out,
		    "<rect class=\"bar\" x=\"%d\" y=\"%ld\" width=\"36\" height=\"%ld\" "
		    "data-jobs=\"%ld\"><title>%d-%d %%: %ld jobs</title></rect>"
		    "<text x=\"%d\" y=\"196\">%d</text>\n",
		    32 + i * 40, 180 - bh, bh, h.bin[i], i * 10, i * 10 + 10, h.bin[i], 32 + i * 40,
		    i * 10);
	}
	strbuf_printf(out,
	    "</svg><figcaption>Jobs by mean GPU utilization (%%, bins of 10): %ld jobs; "
	    "<span id=\"jobs-without-metrics\">%ld</span> without metrics left "
	    "out</figcaption></figure>\n",
	    jobs, h.without);
}

static void
tables(const struct doc *d, struct strbuf *out)
{
	bool open = false;

	for (size_t i = 0; i < d->n; i++) {
		const struct row *r = &d->rows[i];

		if (is(r->at[0], r->len[0], "columns")) {
			if (open)
				strbuf_puts(out, "</tbody></table>\n");
			strbuf_puts(out, "<h3>");
			stmthtml_escape(out, r->at[1], r->len[1]);
			strbuf_puts(out, "</h3>\n<table class=\"section\" id=\"section-");
			stmthtml_escape(out, r->at[1], r->len[1]);
			strbuf_puts(out, "\"><thead><tr>");
			for (int c = 2; c < r->n; c++) {
				strbuf_puts(out, "<th>");
				stmthtml_escape(out, r->at[c], r->len[c]);
				strbuf_puts(out, "</th>");
			}
			strbuf_puts(out, "</tr></thead><tbody>\n");
			open = true;
			continue;
		}
		strbuf_puts(out, "<tr>");
		for (int c = 1; c < r->n; c++) {
			strbuf_puts(out, "<td>");
			stmthtml_escape(out, r->at[c], r->len[c]);
			strbuf_puts(out, "</td>");
		}
		strbuf_puts(out, "</tr>\n");
	}
	if (open)
		strbuf_puts(out, "</tbody></table>\n");
}

static const char style[] = "body{font-family:sans-serif;margin:2em;color:#222}"
                            "table{border-collapse:collapse;margin-bottom:1em}"
                            "th,td{border:1px solid #bbb;padding:2px 6px;text-align:right}"
                            "th{background:#eee}svg{background:#fafafa}svg text{font-size:11px}"
                            ".axis{stroke:#444}.plan{stroke:#999;stroke-dasharray:6 4}"
                            ".burn{fill:none;stroke:#c33;stroke-width:2}.bar{fill:#36c}"
                            "pre{white-space:pre-wrap;word-break:break-all;font-size:10px}";

int
stmthtml_render(
    const char *text, size_t len, const char *sig, struct strbuf *out, char *err, size_t errlen)
{
	struct doc d;
	char hash[STMTFMT_HASH_HEX + 1];
	size_t nl, fl, tl;
	const char *name, *from, *to;
	int rc = -1;

	if (stmtfmt_check(text, len, err, errlen) != 0)
		return -1;
	if (strlen(sig) != STMTFMT_SIG_HEX || strspn(sig, "0123456789abcdef") != STMTFMT_SIG_HEX) {
		stmtfmt_errf(err, errlen, "the signature is not %d hex digits", STMTFMT_SIG_HEX);
		return -1;
	}
	if (stmtfmt_hash_hex(text, len, hash) != 0) {
		stmtfmt_errf(err, errlen, "SHA-256 failed");
		return -1;
	}
	if (doc_parse(text, len, &d) != 0) {
		stmtfmt_errf(err, errlen, "out of memory");
		goto out;
	}
	name = doc_value(&d, "statement", "project", &nl);
	if (nl == 0)
		name = doc_value(&d, "statement", "program", &nl);
	from = doc_value(&d, "statement", "from", &fl);
	to = doc_value(&d, "statement", "to", &tl);
	strbuf_puts(out,
	    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	    "<meta name=\"viewport\" content=\"width=device-width\">\n<title>"
	    "Allot statement: ");
	stmthtml_escape(out, name, nl);
	strbuf_printf(out, "</title>\n<style>%s</style></head><body>\n<h1>Statement: ", style);
	stmthtml_escape(out, name, nl);
	strbuf_puts(out, ", ");
	stmthtml_escape(out, from, fl);
	strbuf_puts(out, " to ");
	stmthtml_escape(out, to, tl);
	strbuf_puts(out, "</h1>\n<h2>Charts</h2>\n");
	if (chart_burn(&d, out) != 0) {
		stmtfmt_errf(err, errlen, "out of memory");
		goto out;
	}
	chart_bars(&d, "site", out);
	chart_bars(&d, "user", out);
	chart_hist(&d, out);
	strbuf_puts(out, "<h2>Figures</h2>\n");
	tables(&d, out);
	strbuf_puts(out,
	    "<h2>Signature</h2>\n<p>The statement's canonical text (README "
	    "&quot;Statements&quot;), signed:</p>\n");
	strbuf_puts(out, pre_open);
	stmthtml_escape(out, text, len);
	strbuf_printf(
	    out, "%s\n<p>SHA-256: <code id=\"allot-hash\">%s</code></p>\n", pre_close, hash);
	strbuf_printf(out, "<p>Ed25519 signature by the audit key: %s%s%s</p>\n</body></html>\n",
	    sig_open, sig, sig_close);
	if (strbuf_failed(out)) {
		stmtfmt_errf(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(d.rows);
	return rc;
}

/* Undoes stmthtml_escape on s[0..len) into out; -1 at any other `&`. */
static int
unescape(const char *s, size_t len, struct strbuf *out)
{
	static const struct {
		const char *entity;
		char c;
	} ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&#39;", '\''}};

	for (size_t i = 0; i < len; i++) {
		size_t k;

		if (s[i] != '&') {
			strbuf_putc(out, s[i]);
			continue;
		}
		for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
			size_t el = strlen(ents[k].entity);

			if (len - i >= el && memcmp(s + i, ents[k].entity, el) == 0) {
				strbuf_putc(out, ents[k].c);
				i += el - 1;
				break;
			}
		}
		if (k == sizeof(ents) / sizeof(ents[0]))
			return -1;
	}
	return 0;
}

/* The bytes between open and the next close in data, or NULL. */
static const char *
between(const char *data, size_t len, const char *open, const char *close, size_t *outlen)
{
	const char *a = memmem(data, len, open, strlen(open)), *b;

	if (a == NULL)
		return NULL;
	a += strlen(open);
	if ((b = memmem(a, len - (size_t)(a - data), close, strlen(close))) == NULL)
		return NULL;
	*outlen = (size_t)(b - a);
	return a;
}

int
stmthtml_from_file(const char *data, size_t len, struct strbuf *canonical,
    char sig[STMTFMT_SIG_HEX + 1], char *err, size_t errlen)
{
	const char *text, *s;
	size_t tl, sl;
	struct strbuf again;
	int rc = -1;

	if ((text = between(data, len, pre_open, pre_close, &tl)) == NULL) {
		stmtfmt_errf(
		    err, errlen, "no <pre id=\"allot-canonical\"> with the statement's text");
		return -1;
	}
	if ((s = between(data, len, sig_open, sig_close, &sl)) == NULL || sl != STMTFMT_SIG_HEX) {
		stmtfmt_errf(err, errlen, "no <code id=\"allot-signature\"> with %d hex digits",
		    STMTFMT_SIG_HEX);
		return -1;
	}
	memcpy(sig, s, STMTFMT_SIG_HEX);
	sig[STMTFMT_SIG_HEX] = '\0';
	if (unescape(text, tl, canonical) != 0) {
		stmtfmt_errf(err, errlen,
		    "the embedded text holds an `&` that is not one of "
		    "&amp; &lt; &gt; &quot; &#39;");
		return -1;
	}
	if (strbuf_failed(canonical) || canonical->data == NULL) {
		stmtfmt_errf(err, errlen, "out of memory");
		return -1;
	}
	strbuf_init(&again);
	if (stmthtml_render(canonical->data, canonical->len, sig, &again, err, errlen) != 0)
		goto out;
	if (again.len != len || memcmp(again.data, data, len) != 0) {
		stmtfmt_errf(err, errlen,
		    "the file is not what its embedded statement renders to (a byte changed "
		    "in its tables, charts or text)");
		goto out;
	}
	rc = 0;
out:
	strbuf_cleanup(&again);
	return rc;
}
