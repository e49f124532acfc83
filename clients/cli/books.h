/*
 * books: the sites' own budget tools, read into what each site account has used,
 * in thousandths of the unit allotd's native figures are in for that site, and
 * compared with Allot's totals (`allot reconcile`).
 *
 * Formats and units (the samples are in tests/fixtures/site-books/):
 *   BOOKS_SALDO     LEONARDO `saldo -b`: a table, one account a line; the
 *                   "localCluster Consumed (local h)" column, core-hours;
 *   BOOKS_BSC_ACCT  MareNostrum5 `bsc_acct`: a "CPU GROUP BUDGET" block per
 *                   project, "Project: TITLE (ACCOUNT)" (a long title may wrap
 *                   onto the next lines), and the "Marenostrum5 ACC" line's Used,
 *                   in khours (thousands of core-hours); GPP, CPU only, is left out;
 *   BOOKS_JUTIL     JUPITER `jutil user cpuquota` JSON: an array of objects, numbers
 *                   as strings; "budget-account" and "coreh-consumed-total",
 *                   core-hours, from "acct-period-start";
 *   BOOKS_LUMI      `lumi-allocations` project JSON (an object, or an array of
 *                   them): "name" and billing.gpu_hours.used, LUMI GPU-hours (one
 *                   MI250X module, two GCDs, for an hour).
 * Each figure is converted exactly (decimal text to integer thousandths, never
 * through a float but for LUMI's JSON reals) and carries its printing precision:
 * half a unit of its last printed digit, the rounding the site's tool did.
 *
 * Pure: no I/O; the caller reads the file. Account names compare without case
 * (Slurm folds them to lower case).
 */
#ifndef ALLOT_CLI_BOOKS_H
#define ALLOT_CLI_BOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum books_format {
	BOOKS_SALDO,
	BOOKS_BSC_ACCT,
	BOOKS_JUTIL,
	BOOKS_LUMI,
};

struct books_entry {
	char account[128];
	char unit[16];       /* the native unit the figure is in: "core-h", "GPU-h" */
	int64_t used_milli;  /* thousandths of unit */
	int64_t round_milli; /* half the last printed digit, in thousandths of unit */
	char since[11];      /* the account's period start, YYYY-MM-DD, or "" */
	size_t line;         /* where it was read (0 when the format has no lines) */
};

struct books {
	enum books_format format;
	struct books_entry *entries; /* owned; n of them */
	size_t n;
};

/* The format a site's books come in: leonardo, marenostrum5, jupiter, lumi. */
bool books_format_for_site(const char *site, enum books_format *format)
    __attribute__((warn_unused_result));
/* By name: "saldo", "bsc_acct", "jutil", "lumi-allocations". */
bool books_format_parse(const char *name, enum books_format *format)
    __attribute__((warn_unused_result));
const char *books_format_name(enum books_format format);
/* What the format's figures say, in words, for the report's heading. */
const char *books_format_unit_text(enum books_format format);

/*
 * Parses len bytes of text in format into *out (initialised here; free with
 * books_cleanup). Returns 0, or -1 with the reason in err, "line N: ..." where the
 * format has lines, and *out empty.
 */
int books_parse(enum books_format format, const char *text, size_t len, struct books *out,
    char *err, size_t errlen) __attribute__((warn_unused_result));
void books_cleanup(struct books *b);

/*
 * Reads a decimal figure ("271.43", "1008000", "0.5") scaled by scale_milli
 * thousandths per unit of the text (1000 for core-hours, 1000000 for khours) into
 * *milli, and half its last printed digit into *round_milli. Returns false for
 * anything else (signs, exponents, a fraction the scale cannot hold exactly,
 * overflow).
 */
bool books_decimal(const char *s, size_t len, int64_t scale_milli, int64_t *milli,
    int64_t *round_milli) __attribute__((warn_unused_result));

/* One site account's comparison. */
enum books_verdict {
	BOOKS_AGREE,         /* within the tolerance (or the books' rounding) */
	BOOKS_DIFFER,        /* beyond it */
	BOOKS_UNIT_MISMATCH, /* Allot counts the account in another unit */
	BOOKS_ONLY_IN_ALLOT, /* Allot charged an account the books do not list */
};

struct books_total { /* Allot's figure for an account (GetSiteTotals) */
	const char *account;
	const char *unit;
	int64_t native_milli;
	int64_t gpu_ms;
	int64_t jobs;
};

struct books_row {
	const char *account; /* the books' spelling, or Allot's for ONLY_IN_ALLOT */
	const char *unit;
	int64_t books_milli;
	int64_t allot_milli;
	int64_t diff_milli; /* allot - books */
	int64_t gpu_ms;
	int64_t jobs;
	const char *allot_unit; /* for UNIT_MISMATCH */
	enum books_verdict verdict;
};

/*
 * Compares every account of the books with Allot's totals (n of them), and lists
 * Allot's accounts that the books do not. tolerance_milli_pct is the tolerance in
 * thousandths of a percent of the books' figure; a difference within the books'
 * rounding always agrees. Fills rows (room for b->n + n of them; pointers into b
 * and totals) and returns how many, with *differ the number of DIFFER and
 * UNIT_MISMATCH rows.
 */
size_t books_compare(const struct books *b, const struct books_total *totals, size_t n,
    int64_t tolerance_milli_pct, struct books_row *rows, size_t *differ);

#endif
