/*
 * books: parsers of the sites' budget tools' output and the comparison with
 * Allot's per-account totals. See books.h for the formats and units; reading
 * the file and asking allotd are reconcile.c's.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "books.h"

#define BOOKS_MAX_ENTRIES 100000
#define BOOKS_MAX_TOKENS 24
#define BOOKS_MAX_FRACTION 9
#define BOOKS_MILLI_PER_HOUR INT64_C(1000)
#define BOOKS_MILLI_PER_KHOUR INT64_C(1000000)

static const struct {
	const char *site;
	const char *name;
	const char *unit_text;
	enum books_format format;
} formats[] = {
    {"leonardo", "saldo", "saldo -b, localCluster Consumed (local h = core-h)", BOOKS_SALDO},
    {"marenostrum5", "bsc_acct", "bsc_acct, Marenostrum5 ACC Used (khours = 1000 core-h)",
        BOOKS_BSC_ACCT},
    {"jupiter", "jutil", "jutil user cpuquota, coreh-consumed-total (core-h)", BOOKS_JUTIL},
    {"lumi", "lumi-allocations", "lumi-allocations, gpu_hours used (GPU-h = one MI250X module)",
        BOOKS_LUMI},
};
#define NFORMATS (sizeof(formats) / sizeof(formats[0]))

bool
books_format_for_site(const char *site, enum books_format *format)
{
	for (size_t i = 0; i < NFORMATS; i++)
		if (strcmp(site, formats[i].site) == 0) {
			*format = formats[i].format;
			return true;
		}
	return false;
}

bool
books_format_parse(const char *name, enum books_format *format)
{
	for (size_t i = 0; i < NFORMATS; i++)
		if (strcmp(name, formats[i].name) == 0) {
			*format = formats[i].format;
			return true;
		}
	return false;
}

const char *
books_format_name(enum books_format format)
{
	for (size_t i = 0; i < NFORMATS; i++)
		if (formats[i].format == format)
			return formats[i].name;
	return "?";
}

const char *
books_format_unit_text(enum books_format format)
{
	for (size_t i = 0; i < NFORMATS; i++)
		if (formats[i].format == format)
			return formats[i].unit_text;
	return "?";
}

bool
books_decimal(const char *s, size_t len, int64_t scale_milli, int64_t *milli, int64_t *round_milli)
{
	int64_t whole = 0, frac = 0, pow10 = 1, v, f;
	size_t i = 0, nwhole = 0, nfrac = 0;

	if (scale_milli <= 0)
		return false;
	for (; i < len && isdigit((unsigned char)s[i]); i++, nwhole++)
		if (__builtin_mul_overflow(whole, 10, &whole) ||
		    __builtin_add_overflow(whole, s[i] - '0', &whole))
			return false;
	if (i < len && s[i] == '.') {
		for (i++; i < len && isdigit((unsigned char)s[i]); i++, nfrac++) {
			if (nfrac >= BOOKS_MAX_FRACTION)
				return false;
			frac = frac * 10 + (s[i] - '0');
			pow10 *= 10;
		}
		if (nfrac == 0)
			return false;
	}
	if (i != len || nwhole == 0)
		return false;
	if (__builtin_mul_overflow(whole, scale_milli, &v))
		return false;
	/* The fraction, to the nearest thousandth (exact whenever the scale allows). */
	f = (int64_t)(((__int128)frac * scale_milli * 2 + pow10) / (2 * (__int128)pow10));
	if (__builtin_add_overflow(v, f, &v))
		return false;
	*milli = v;
	*round_milli = scale_milli / (2 * pow10);
	if (*round_milli == 0)
		*round_milli = 1;
	return true;
}

void
books_cleanup(struct books *b)
{
	free(b->entries);
	b->entries = NULL;
	b->n = 0;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A new entry at the end of b, zeroed; NULL when out of room. */
static struct books_entry *
books_add(struct books *b, size_t *cap)
{
	struct books_entry *e;

	if (b->n == *cap) {
		size_t ncap = *cap == 0 ? 8 : *cap * 2;

		if (ncap > BOOKS_MAX_ENTRIES)
			return NULL;
		e = realloc(b->entries, ncap * sizeof(*e));
		if (e == NULL)
			return NULL;
		b->entries = e;
		*cap = ncap;
	}
	e = &b->entries[b->n++];
	memset(e, 0, sizeof(*e));
	return e;
}

static bool
copy_name(char *dst, size_t dstlen, const char *s, size_t len)
{
	if (len == 0 || len >= dstlen)
		return false;
	for (size_t i = 0; i < len; i++)
		if (isspace((unsigned char)s[i]) || iscntrl((unsigned char)s[i]))
			return false;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return true;
}

/* ------------------------------------------------------------ lines and tokens */

struct line {
	const char *s;
	size_t len;
	size_t no; /* 1-based */
};

/* Splits text into lines (without "\n" or a trailing "\r" and blanks). */
struct lines {
	const char *text;
	size_t len, pos, no;
};

static bool
next_line(struct lines *ls, struct line *l)
{
	const char *nl;
	size_t end;

	if (ls->pos >= ls->len)
		return false;
	l->s = ls->text + ls->pos;
	nl = memchr(l->s, '\n', ls->len - ls->pos);
	end = nl != NULL ? (size_t)(nl - ls->text) : ls->len;
	l->len = end - ls->pos;
	while (l->len > 0 && isspace((unsigned char)l->s[l->len - 1]))
		l->len--;
	l->no = ++ls->no;
	ls->pos = nl != NULL ? end + 1 : ls->len;
	return true;
}

struct token {
	const char *s;
	size_t len;
};

/* Splits l at white space into at most max tokens; returns how many, or max + 1. */
static size_t
tokens(const struct line *l, struct token *t, size_t max)
{
	size_t n = 0, i = 0;

	while (i < l->len) {
		while (i < l->len && isspace((unsigned char)l->s[i]))
			i++;
		if (i >= l->len)
			break;
		if (n == max)
			return max + 1;
		t[n].s = l->s + i;
		while (i < l->len && !isspace((unsigned char)l->s[i]))
			i++;
		t[n].len = (size_t)(l->s + i - t[n].s);
		n++;
	}
	return n;
}

static bool
only_dashes(const struct line *l)
{
	size_t dashes = 0;

	for (size_t i = 0; i < l->len; i++) {
		if (l->s[i] == '-')
			dashes++;
		else if (!isspace((unsigned char)l->s[i]))
			return false;
	}
	return dashes >= 3;
}

static bool
has_prefix(const struct line *l, const char *prefix)
{
	size_t n = strlen(prefix);

	return l->len >= n && strncmp(l->s, prefix, n) == 0;
}

static bool
contains(const struct line *l, const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; i + n <= l->len; i++)
		if (strncmp(l->s + i, word, n) == 0)
			return true;
	return false;
}

static bool
token_is(const struct token *t, const char *word)
{
	return t->len == strlen(word) && strncasecmp(t->s, word, t->len) == 0;
}

/* ------------------------------------------------------------ saldo -b */

/* "20110323" to "2011-03-23"; false unless 8 digits of a plausible date. */
static bool
saldo_date(const struct token *t, char out[11])
{
	int month, day;

	if (t->len != 8)
		return false;
	for (size_t i = 0; i < 8; i++)
		if (!isdigit((unsigned char)t->s[i]))
			return false;
	month = (t->s[4] - '0') * 10 + (t->s[5] - '0');
	day = (t->s[6] - '0') * 10 + (t->s[7] - '0');
	if (month < 1 || month > 12 || day < 1 || day > 31)
		return false;
	snprintf(out, 11, "%.4s-%.2s-%.2s", t->s, t->s + 4, t->s + 6);
	return true;
}

static int
parse_saldo(const char *text, size_t len, struct books *b, char *err, size_t errlen)
{
	static const char *const columns = "account, start, end, total, localCluster consumed, "
	                                   "totConsumed, totConsumed %, monthTotal, monthConsumed";
	struct lines ls = {text, len, 0, 0};
	struct line l;
	struct token t[BOOKS_MAX_TOKENS];
	size_t cap = 0, n;
	bool header = false;

	while (next_line(&ls, &l)) {
		struct books_entry *e;
		int64_t ignored, ignored_round;
		char end[11];

		if (l.len == 0 || only_dashes(&l))
			continue;
		n = tokens(&l, t, BOOKS_MAX_TOKENS);
		if (n > 0 && token_is(&t[0], "account")) {
			header = true;
			continue;
		}
		/* The header's second line: the columns' units, indented. */
		if (isspace((unsigned char)l.s[0]) && contains(&l, "(local h)"))
			continue;
		if (n != 9) {
			seterr(err, errlen, "line %zu: expected 9 columns (%s), found %zu", l.no,
			    columns, n > BOOKS_MAX_TOKENS ? n - 1 : n);
			return -1;
		}
		e = books_add(b, &cap);
		if (e == NULL) {
			seterr(err, errlen, "line %zu: too many accounts", l.no);
			return -1;
		}
		e->line = l.no;
		snprintf(e->unit, sizeof(e->unit), "core-h");
		if (!copy_name(e->account, sizeof(e->account), t[0].s, t[0].len)) {
			seterr(err, errlen, "line %zu: account name \"%.*s\" is not valid", l.no,
			    (int)t[0].len, t[0].s);
			return -1;
		}
		if (!saldo_date(&t[1], e->since) || !saldo_date(&t[2], end)) {
			seterr(err, errlen,
			    "line %zu: start and end must be dates as YYYYMMDD, not \"%.*s\" and "
			    "\"%.*s\"",
			    l.no, (int)t[1].len, t[1].s, (int)t[2].len, t[2].s);
			return -1;
		}
		for (size_t i = 3; i < 9; i++)
			if (!books_decimal(t[i].s, t[i].len, BOOKS_MILLI_PER_HOUR,
			        i == 4 ? &e->used_milli : &ignored,
			        i == 4 ? &e->round_milli : &ignored_round)) {
				seterr(err, errlen,
				    "line %zu: column %zu is not a number: \"%.*s\"", l.no, i + 1,
				    (int)t[i].len, t[i].s);
				return -1;
			}
	}
	if (b->n == 0) {
		seterr(err, errlen, "no account line found%s (expected %s)",
		    header ? " after the header" : "", columns);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ bsc_acct */

/* Strips a "(...)" attached to the end of a figure: "0.00(0%)" is "0.00". */
static size_t
figure_len(const struct token *t)
{
	const char *p = memchr(t->s, '(', t->len);

	return p != NULL ? (size_t)(p - t->s) : t->len;
}

static int
parse_bsc_acct(const char *text, size_t len, struct books *b, char *err, size_t errlen)
{
	struct lines ls = {text, len, 0, 0};
	struct line l;
	struct token t[BOOKS_MAX_TOKENS];
	struct books_entry *e = NULL; /* the current block's project */
	size_t cap = 0, n, project_line = 0;
	bool in_budget = false, in_machines = false, blocks = false;
	char title[512];
	size_t tlen = 0;

	while (next_line(&ls, &l)) {
		if (l.len == 0)
			continue;
		if (has_prefix(&l, "CPU GROUP BUDGET:")) {
			in_budget = true;
			in_machines = false;
			blocks = true;
			e = NULL;
			continue;
		}
		if (has_prefix(&l, "USER CONSUMED")) {
			/* Per-user figures (long names wrap): the project's total suffices. */
			in_budget = in_machines = false;
			continue;
		}
		if (!in_budget)
			continue;
		if (only_dashes(&l)) {
			in_machines = false;
			continue;
		}
		if (project_line != 0 || has_prefix(&l, "Project:")) {
			const char *open, *s = l.s;
			size_t slen = l.len;

			/* "Project: TITLE (ACCOUNT)"; a long TITLE wraps onto the next lines. */
			if (project_line == 0) {
				project_line = l.no;
				tlen = 0;
				s += strlen("Project:");
				slen -= strlen("Project:");
			} else if (l.no - project_line > 3 || has_prefix(&l, "Project's") ||
			    has_prefix(&l, "Machine:")) {
				seterr(err, errlen,
				    "line %zu: the project's account is missing: expected "
				    "\"Project: "
				    "TITLE (ACCOUNT)\"",
				    project_line);
				return -1;
			}
			if (tlen + slen + 1 >= sizeof(title)) {
				seterr(err, errlen, "line %zu: the project's title is too long",
				    project_line);
				return -1;
			}
			title[tlen++] = ' ';
			memcpy(title + tlen, s, slen);
			tlen += slen;
			title[tlen] = '\0';
			if (title[tlen - 1] != ')')
				continue;
			open = strrchr(title, '(');
			e = books_add(b, &cap);
			if (e == NULL) {
				seterr(err, errlen, "line %zu: too many projects", project_line);
				return -1;
			}
			e->line = project_line;
			snprintf(e->unit, sizeof(e->unit), "core-h");
			if (open == NULL ||
			    !copy_name(e->account, sizeof(e->account), open + 1,
			        (size_t)(title + tlen - 1 - (open + 1)))) {
				seterr(err, errlen,
				    "line %zu: expected \"Project: TITLE (ACCOUNT)\", the account "
				    "in "
				    "parentheses",
				    project_line);
				return -1;
			}
			project_line = 0;
			continue;
		}
		if (has_prefix(&l, "Machine:")) {
			in_machines = true;
			continue;
		}
		if (!in_machines)
			continue;
		{
			struct token vals[2];
			size_t k = 0, nv = 0;

			n = tokens(&l, t, BOOKS_MAX_TOKENS);
			/* The machine's name ends where the first figure starts. */
			while (k < n && !isdigit((unsigned char)t[k].s[0]) &&
			    !token_is(&t[k], "undefined"))
				k++;
			for (size_t i = k; i < n && n <= BOOKS_MAX_TOKENS; i++) {
				if (t[i].s[0] == '(')
					continue;
				if (nv == 2) {
					nv = 3;
					break;
				}
				vals[nv++] = t[i];
			}
			if (k == 0 || nv != 2) {
				seterr(err, errlen,
				    "line %zu: expected a machine line \"NAME TOTAL USED\" "
				    "(figures in "
				    "khours), found \"%.*s\"",
				    l.no, (int)(l.len > 80 ? 80 : l.len), l.s);
				return -1;
			}
			if (!token_is(&t[k - 1], "ACC"))
				continue; /* GPP: CPU nodes, not billed by Allot */
			if (e == NULL) {
				seterr(err, errlen,
				    "line %zu: a machine line before the project's line", l.no);
				return -1;
			}
			if (!books_decimal(vals[1].s, figure_len(&vals[1]), BOOKS_MILLI_PER_KHOUR,
			        &e->used_milli, &e->round_milli)) {
				seterr(err, errlen,
				    "line %zu: Used is not a number of khours: \"%.*s\"", l.no,
				    (int)vals[1].len, vals[1].s);
				return -1;
			}
		}
	}
	if (project_line != 0) {
		seterr(err, errlen,
		    "line %zu: the project's account is missing: expected \"Project: TITLE "
		    "(ACCOUNT)\"",
		    project_line);
		return -1;
	}
	if (b->n == 0) {
		seterr(err, errlen, "%s",
		    blocks ? "no \"Project: TITLE (ACCOUNT)\" line found"
		           : "no \"CPU GROUP BUDGET:\" block found");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ JSON formats */

/* A JSON figure (a string of digits, an integer or a real) into thousandths. */
static bool
json_figure(const json_t *v, int64_t scale_milli, int64_t *milli, int64_t *round_milli)
{
	char buf[64];
	int p;

	if (json_is_string(v))
		return books_decimal(
		    json_string_value(v), json_string_length(v), scale_milli, milli, round_milli);
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return false;
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		return books_decimal(buf, strlen(buf), scale_milli, milli, round_milli);
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);

		if (!(d >= 0 && d < 1e15))
			return false;
		/* The fewest decimals that give the number back: what the tool printed. */
		for (p = 0; p < BOOKS_MAX_FRACTION; p++) {
			snprintf(buf, sizeof(buf), "%.*f", p, d);
			if (strtod(buf, NULL) == d)
				break;
		}
		return books_decimal(buf, strlen(buf), scale_milli, milli, round_milli);
	}
	return false;
}

static const char *
json_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static int
parse_json(enum books_format format, const char *text, size_t len, struct books *b, char *err,
    size_t errlen)
{
	json_error_t jerr;
	json_t *root, *item;
	size_t cap = 0, i;
	int rc = -1;

	root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL) {
		seterr(err, errlen, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
		return -1;
	}
	if (json_is_object(root)) {
		json_t *arr = json_array();

		if (arr == NULL || json_array_append_new(arr, root) != 0) {
			json_decref(arr);
			json_decref(root);
			seterr(err, errlen, "out of memory");
			return -1;
		}
		root = arr;
	}
	if (!json_is_array(root)) {
		seterr(err, errlen, "expected a JSON %s",
		    format == BOOKS_JUTIL ? "array of objects" : "object or array");
		goto out;
	}
	json_array_foreach(root, i, item)
	{
		struct books_entry *e;
		const char *account;
		const json_t *used;

		if (!json_is_object(item)) {
			seterr(err, errlen, "entry %zu: not an object", i + 1);
			goto out;
		}
		if (format == BOOKS_JUTIL) {
			account = json_str(item, "budget-account");
			used = json_object_get(item, "coreh-consumed-total");
		} else {
			account = json_str(item, "name");
			used = json_object_get(
			    json_object_get(json_object_get(item, "billing"), "gpu_hours"), "used");
		}
		e = books_add(b, &cap);
		if (e == NULL) {
			seterr(err, errlen, "entry %zu: too many entries", i + 1);
			goto out;
		}
		snprintf(
		    e->unit, sizeof(e->unit), "%s", format == BOOKS_JUTIL ? "core-h" : "GPU-h");
		if (account == NULL ||
		    !copy_name(e->account, sizeof(e->account), account, strlen(account))) {
			seterr(err, errlen, "entry %zu: \"%s\" is missing or not an account name",
			    i + 1, format == BOOKS_JUTIL ? "budget-account" : "name");
			goto out;
		}
		if (used == NULL ||
		    !json_figure(used, BOOKS_MILLI_PER_HOUR, &e->used_milli, &e->round_milli)) {
			seterr(err, errlen, "entry %zu (%s): \"%s\" is missing or not a number",
			    i + 1, e->account,
			    format == BOOKS_JUTIL ? "coreh-consumed-total"
			                          : "billing.gpu_hours.used");
			goto out;
		}
		if (format == BOOKS_JUTIL) {
			const char *start = json_str(item, "acct-period-start");

			if (start != NULL) {
				int y, m, d;
				char rest;

				if (sscanf(start, "%4d-%2d-%2d%c", &y, &m, &d, &rest) != 3 ||
				    strlen(start) != 10 || m < 1 || m > 12 || d < 1 || d > 31) {
					seterr(err, errlen,
					    "entry %zu (%s): \"acct-period-start\" is not a date "
					    "(YYYY-MM-DD): \"%s\"",
					    i + 1, e->account, start);
					goto out;
				}
				memcpy(e->since, start, 11);
			}
		}
	}
	if (b->n == 0) {
		seterr(err, errlen, "no account found: the JSON is empty");
		goto out;
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

int
books_parse(enum books_format format, const char *text, size_t len, struct books *out, char *err,
    size_t errlen)
{
	int rc;

	memset(out, 0, sizeof(*out));
	out->format = format;
	if (memchr(text, '\0', len) != NULL) {
		seterr(err, errlen, "the file holds a NUL byte: not the output of %s",
		    books_format_name(format));
		return -1;
	}
	switch (format) {
	case BOOKS_SALDO:
		rc = parse_saldo(text, len, out, err, errlen);
		break;
	case BOOKS_BSC_ACCT:
		rc = parse_bsc_acct(text, len, out, err, errlen);
		break;
	case BOOKS_JUTIL:
	case BOOKS_LUMI:
		rc = parse_json(format, text, len, out, err, errlen);
		break;
	default:
		seterr(err, errlen, "unknown format");
		rc = -1;
	}
	if (rc != 0)
		books_cleanup(out);
	return rc;
}

/* ------------------------------------------------------------ comparison */

static int64_t
abs64(int64_t v)
{
	return v < 0 ? -v : v;
}

size_t
books_compare(const struct books *b, const struct books_total *totals, size_t n,
    int64_t tolerance_milli_pct, struct books_row *rows, size_t *differ)
{
	size_t nrows = 0;

	*differ = 0;
	for (size_t i = 0; i < b->n; i++) {
		const struct books_entry *e = &b->entries[i];
		struct books_row *r = &rows[nrows++];
		const struct books_total *other = NULL;

		memset(r, 0, sizeof(*r));
		r->account = e->account;
		r->unit = e->unit;
		r->books_milli = e->used_milli;
		for (size_t j = 0; j < n; j++) {
			if (strcasecmp(totals[j].account, e->account) != 0)
				continue;
			if (strcmp(totals[j].unit, e->unit) != 0) {
				other = &totals[j];
				continue;
			}
			r->allot_milli += totals[j].native_milli;
			r->gpu_ms += totals[j].gpu_ms;
			r->jobs += totals[j].jobs;
		}
		r->diff_milli = r->allot_milli - r->books_milli;
		if (r->jobs == 0 && other != NULL) {
			r->verdict = BOOKS_UNIT_MISMATCH;
			r->allot_unit = other->unit;
			r->allot_milli = other->native_milli;
			r->diff_milli = 0;
		} else if (abs64(r->diff_milli) <= e->round_milli) {
			r->verdict = BOOKS_AGREE;
		} else if (r->books_milli == 0 ||
		    (__int128)abs64(r->diff_milli) * 100000 >
		        (__int128)tolerance_milli_pct * r->books_milli) {
			r->verdict = BOOKS_DIFFER;
		} else {
			r->verdict = BOOKS_AGREE;
		}
		if (r->verdict == BOOKS_DIFFER || r->verdict == BOOKS_UNIT_MISMATCH)
			(*differ)++;
	}
	for (size_t j = 0; j < n; j++) {
		bool listed = false;
		struct books_row *r;

		for (size_t i = 0; i < b->n && !listed; i++)
			listed = strcasecmp(totals[j].account, b->entries[i].account) == 0;
		if (listed)
			continue;
		r = &rows[nrows++];
		memset(r, 0, sizeof(*r));
		r->account = totals[j].account;
		r->unit = totals[j].unit;
		r->allot_milli = totals[j].native_milli;
		r->diff_milli = totals[j].native_milli;
		r->gpu_ms = totals[j].gpu_ms;
		r->jobs = totals[j].jobs;
		r->verdict = BOOKS_ONLY_IN_ALLOT;
	}
	return nrows;
}
