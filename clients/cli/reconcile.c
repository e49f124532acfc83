/*
 * reconcile: `allot completeness` (what a site reported, per day, with the days
 * it reported nothing shown as gaps) and `allot reconcile` (a site's own budget
 * tool output against Allot's per-account totals, in the site's unit).
 *
 * The parsing of the budget tools and the comparison are books.c's; this file
 * reads the command line and the file, asks allotd, and prints.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/usage.pb-c.h"
#include "books.h"
#include "cli.h"
#include "render.h"

#define BOOKS_MAX_BYTES (64L * 1024 * 1024)
#define DEFAULT_TOLERANCE_MILLI_PCT 1000 /* 1 % */

static const char completeness_usage_text[] =
    "usage: allot completeness --site S [--since YYYY-MM-DD] [--until YYYY-MM-DD]\n"
    "\n"
    "Shows what site S reported, one line per day (UTC) of the jobs' start: the jobs,\n"
    "their GPU-hours (occupied, unweighted) and what they were charged in the site's\n"
    "own unit so far. A day with nothing reported is shown as a gap.\n"
    "\n"
    "options:\n"
    "  --site S            the site (required)\n"
    "  --since DAY         first day (default: 30 days up to --until)\n"
    "  --until DAY         last day (default: today, UTC)\n"
    "  --format table|json output format, as the global option\n"
    "  --help              show this help\n";

static const char reconcile_usage_text[] =
    "usage: allot reconcile --site S [--tolerance PCT] [--since DAY] [--until DAY]\n"
    "                       [--books-format F] BOOKS_FILE\n"
    "\n"
    "Compares what site S's own budget tool says each site account used with what\n"
    "Allot charged the account's jobs, in the site's unit, and prints the differences.\n"
    "BOOKS_FILE (or - for standard input) is the tool's output, by site:\n"
    "  leonardo      saldo -b (localCluster Consumed, core-h)\n"
    "  marenostrum5  bsc_acct (Marenostrum5 ACC Used, khours = 1000 core-h)\n"
    "  jupiter       jutil user cpuquota JSON (coreh-consumed-total, core-h)\n"
    "  lumi          lumi-allocations project JSON (gpu_hours used, GPU-h)\n"
    "\n"
    "options:\n"
    "  --site S            the site (required)\n"
    "  --tolerance PCT     largest difference accepted, in percent of the books'\n"
    "                      figure (default 1); a difference within the books'\n"
    "                      rounding is always accepted\n"
    "  --since DAY         count Allot's jobs that started from DAY (default: the\n"
    "                      earliest period start the books give, or 3660 days back)\n"
    "  --until DAY         ... up to DAY (default: today, UTC)\n"
    "  --books-format F    saldo, bsc_acct, jutil or lumi-allocations, for a site\n"
    "                      not listed above\n"
    "  --format table|json output format, as the global option (json: Allot's totals)\n"
    "  --help              show this help\n"
    "\n"
    "Exit status: 0 every account of the books agrees, 1 one differs beyond the\n"
    "tolerance (or an RPC error), 2 a usage error or a file that cannot be parsed.\n";

/* The flags both commands take. */
struct site_flags {
	const char *site, *since, *until, *tolerance, *books_format, *file;
};

static bool
valid_day(const char *s)
{
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* Returns -1 to go on, or the exit status to return now. */
static int
site_flags_parse(struct cli *cli, int argc, char **argv, const char *cmd, const char *usage,
    bool books, struct site_flags *f)
{
	const char *value;
	char name[64];
	int i = 1, r;

	memset(f, 0, sizeof(*f));
	while (i < argc) {
		r = cli_next_flag(argc, argv, &i, name, sizeof(name), &value, cmd);
		if (r < 0)
			return CLI_EXIT_USAGE;
		if (r == 0) {
			if (!books || f->file != NULL)
				return cli_usage_error(cmd, "unexpected argument \"%s\"", argv[i]);
			f->file = argv[i++];
			continue;
		}
		if (strcmp(name, "help") == 0) {
			fputs(usage, stdout);
			return CLI_EXIT_OK;
		}
		if (!cli_has_value(cmd, name, value))
			return CLI_EXIT_USAGE;
		if (strcmp(name, "site") == 0) {
			f->site = value;
		} else if (strcmp(name, "since") == 0 || strcmp(name, "until") == 0) {
			if (!valid_day(value))
				return cli_usage_error(
				    cmd, "--%s: \"%s\" is not a day (YYYY-MM-DD)", name, value);
			*(name[0] == 's' ? &f->since : &f->until) = value;
		} else if (strcmp(name, "format") == 0) {
			if (!cli_set_format(cli, value))
				return cli_usage_error(
				    cmd, "--format: \"%s\" is not table or json", value);
		} else if (books && strcmp(name, "tolerance") == 0) {
			f->tolerance = value;
		} else if (books && strcmp(name, "books-format") == 0) {
			f->books_format = value;
		} else {
			return cli_usage_error(cmd, "unknown flag --%s", name);
		}
	}
	if (f->site == NULL || f->site[0] == '\0')
		return cli_usage_error(cmd, "--site is required");
	if (books && f->file == NULL)
		return cli_usage_error(cmd, "BOOKS_FILE is required (- for standard input)");
	return -1;
}

/* Thousandths as "123.456". */
static void
print_milli(FILE *out, int width, int64_t milli)
{
	char buf[48];
	uint64_t a = milli < 0 ? -(uint64_t)milli : (uint64_t)milli;

	snprintf(
	    buf, sizeof(buf), "%s%" PRIu64 ".%03" PRIu64, milli < 0 ? "-" : "", a / 1000, a % 1000);
	fprintf(out, "%*s", width, buf);
}

/* GPU-milliseconds as GPU-hours, to the hundredth (half up). */
static void
print_gpu_hours(FILE *out, int width, int64_t gpu_ms)
{
	char buf[48];
	int64_t h = (gpu_ms + 18000) / 36000;

	snprintf(buf, sizeof(buf), "%" PRId64 ".%02" PRId64, h / 100, h % 100);
	fprintf(out, "%*s", width, buf);
}

int
completeness_main(struct cli *cli, int argc, char **argv)
{
	Allot__V1__GetCompletenessRequest req = ALLOT__V1__GET_COMPLETENESS_REQUEST__INIT;
	const Allot__V1__GetCompletenessResponse *c;
	ProtobufCMessage *resp = NULL;
	struct site_flags f;
	size_t gaps = 0;
	int status;

	status =
	    site_flags_parse(cli, argc, argv, "completeness", completeness_usage_text, false, &f);
	if (status >= 0)
		return status;
	req.site = (char *)f.site;
	req.since = (char *)(f.since != NULL ? f.since : "");
	req.until = (char *)(f.until != NULL ? f.until : "");
	if (cli->dry_run)
		return render_json(stdout, &req.base) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	if (cli_call(cli, "allot.v1.Usage/GetCompleteness", &req.base,
	        &allot__v1__get_completeness_response__descriptor, &resp) < 0)
		return CLI_EXIT_FAIL;
	if (cli->format == CLI_FORMAT_JSON) {
		status = cli_print(cli, resp);
		protobuf_c_message_free_unpacked(resp, NULL);
		return status;
	}
	c = (const Allot__V1__GetCompletenessResponse *)resp;
	printf(
	    "site %s: jobs by the day they started (UTC), %s to %s\n", c->site, c->since, c->until);
	printf("%-10s  %8s  %10s  %s\n", "day", "jobs", "GPU-hours", "native");
	for (size_t i = 0; i < c->n_days; i++) {
		const Allot__V1__SiteDay *d = c->days[i];

		if (d->jobs == 0) {
			printf(
			    "%-10s  %8s  %10s  %s\n", d->day, "-", "-", "-  gap: nothing reported");
			gaps++;
			continue;
		}
		printf("%-10s  %8" PRId64 "  ", d->day, d->jobs);
		print_gpu_hours(stdout, 10, d->gpu_ms);
		printf(" ");
		for (size_t k = 0; k < d->n_native; k++) {
			printf(k == 0 ? " " : ", ");
			print_milli(stdout, 0, d->native[k]->milli);
			printf(" %s", d->native[k]->unit);
		}
		printf("\n");
	}
	printf("%zu of %zu days with nothing reported\n", gaps, c->n_days);
	protobuf_c_message_free_unpacked(resp, NULL);
	return CLI_EXIT_OK;
}

/* Reads all of path ("-": standard input) into a new NUL-terminated buffer. */
static char *
read_books(const char *path, size_t *len)
{
	FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *buf = NULL, *nbuf;
	size_t cap = 0, n = 0, got;

	if (in == NULL) {
		fprintf(stderr, "allot: could not open \"%s\": %s\n", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (cap - n < 4096) {
			if (cap > (size_t)BOOKS_MAX_BYTES) {
				fprintf(stderr, "allot: \"%s\" is larger than %ld bytes\n", path,
				    BOOKS_MAX_BYTES);
				goto fail;
			}
			cap = cap == 0 ? 65536 : cap * 2;
			nbuf = realloc(buf, cap + 1);
			if (nbuf == NULL) {
				fprintf(stderr, "allot: out of memory reading \"%s\"\n", path);
				goto fail;
			}
			buf = nbuf;
		}
		got = fread(buf + n, 1, cap - n, in);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(in)) {
		fprintf(stderr, "allot: could not read \"%s\": %s\n", path, strerror(errno));
		goto fail;
	}
	if (in != stdin)
		fclose(in);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	if (in != stdin)
		fclose(in);
	free(buf);
	return NULL;
}

static const char *
verdict_text(const struct books_row *r)
{
	switch (r->verdict) {
	case BOOKS_AGREE:
		return "agrees";
	case BOOKS_DIFFER:
		return "DIFFERS";
	case BOOKS_UNIT_MISMATCH:
		return "UNIT";
	case BOOKS_ONLY_IN_ALLOT:
		return "not in the books";
	}
	return "?";
}

static void
print_rows(const struct books_row *rows, size_t nrows)
{
	int w = (int)strlen("account");

	for (size_t i = 0; i < nrows; i++)
		if ((int)strlen(rows[i].account) > w)
			w = (int)strlen(rows[i].account);
	printf("%-*s  %-6s  %14s  %14s  %14s  %8s  %6s  %10s  %s\n", w, "account", "unit", "books",
	    "allot", "difference", "%", "jobs", "GPU-hours", "verdict");
	for (size_t i = 0; i < nrows; i++) {
		const struct books_row *r = &rows[i];

		printf("%-*s  %-6s  ", w, r->account, r->unit);
		if (r->verdict == BOOKS_ONLY_IN_ALLOT)
			printf("%14s", "-");
		else
			print_milli(stdout, 14, r->books_milli);
		printf("  ");
		print_milli(stdout, 14, r->allot_milli);
		printf("  ");
		print_milli(stdout, 14, r->diff_milli);
		if (r->books_milli != 0 && r->verdict != BOOKS_UNIT_MISMATCH) {
			/* Hundredths of a percent, rounded toward zero. */
			int64_t pct = (int64_t)((__int128)r->diff_milli * 10000 / r->books_milli);
			int64_t a = pct < 0 ? -pct : pct;
			char buf[48];

			snprintf(buf, sizeof(buf), "%s%" PRId64 ".%02" PRId64, pct < 0 ? "-" : "",
			    a / 100, a % 100);
			printf("  %8s", buf);
		} else {
			printf("  %8s", "-");
		}
		printf("  %6" PRId64 "  ", r->jobs);
		print_gpu_hours(stdout, 10, r->gpu_ms);
		if (r->verdict == BOOKS_UNIT_MISMATCH)
			printf("  UNIT: Allot counts this account in %s, the books in %s\n",
			    r->allot_unit, r->unit);
		else
			printf("  %s\n", verdict_text(r));
	}
}

int
reconcile_main(struct cli *cli, int argc, char **argv)
{
	Allot__V1__GetSiteTotalsRequest req = ALLOT__V1__GET_SITE_TOTALS_REQUEST__INIT;
	const Allot__V1__GetSiteTotalsResponse *t;
	ProtobufCMessage *resp = NULL;
	struct books_total *totals = NULL;
	struct books_row *rows = NULL;
	struct site_flags f;
	struct books b = {0};
	enum books_format format;
	int64_t tol = DEFAULT_TOLERANCE_MILLI_PCT, tol_round;
	char err[512], since[11] = "";
	char *text = NULL;
	size_t len, nrows, differ;
	int status;

	status = site_flags_parse(cli, argc, argv, "reconcile", reconcile_usage_text, true, &f);
	if (status >= 0)
		return status;
	if (f.tolerance != NULL &&
	    !books_decimal(f.tolerance, strlen(f.tolerance), 1000, &tol, &tol_round))
		return cli_usage_error("reconcile",
		    "--tolerance: \"%s\" is not a percentage (a number such as 1 or 0.5)",
		    f.tolerance);
	if (f.books_format != NULL) {
		if (!books_format_parse(f.books_format, &format))
			return cli_usage_error("reconcile",
			    "--books-format: \"%s\" is not saldo, bsc_acct, jutil or "
			    "lumi-allocations",
			    f.books_format);
	} else if (!books_format_for_site(f.site, &format)) {
		return cli_usage_error("reconcile",
		    "no budget tool known for site \"%s\": give --books-format", f.site);
	}

	text = read_books(f.file, &len);
	if (text == NULL)
		return CLI_EXIT_USAGE;
	if (books_parse(format, text, len, &b, err, sizeof(err)) != 0) {
		fprintf(stderr, "allot: %s: not %s output: %s\n", f.file, books_format_name(format),
		    err);
		free(text);
		return CLI_EXIT_USAGE;
	}
	free(text);
	/* Jobs from the earliest period the books cover, unless told otherwise. */
	for (size_t i = 0; i < b.n; i++)
		if (b.entries[i].since[0] != '\0' &&
		    (since[0] == '\0' || strcmp(b.entries[i].since, since) < 0))
			memcpy(since, b.entries[i].since, sizeof(since));
	req.site = (char *)f.site;
	req.since = f.since != NULL ? (char *)f.since : since;
	req.until = (char *)(f.until != NULL ? f.until : "");
	if (cli->dry_run) {
		status = render_json(stdout, &req.base) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
		goto out;
	}
	if (cli_call(cli, "allot.v1.Usage/GetSiteTotals", &req.base,
	        &allot__v1__get_site_totals_response__descriptor, &resp) < 0) {
		status = CLI_EXIT_FAIL;
		goto out;
	}
	t = (const Allot__V1__GetSiteTotalsResponse *)resp;
	totals = calloc(t->n_accounts + 1, sizeof(*totals));
	rows = calloc(b.n + t->n_accounts + 1, sizeof(*rows));
	if (totals == NULL || rows == NULL) {
		fprintf(stderr, "allot: out of memory\n");
		status = CLI_EXIT_FAIL;
		goto out;
	}
	for (size_t i = 0; i < t->n_accounts; i++) {
		totals[i].account = t->accounts[i]->account;
		totals[i].unit = t->accounts[i]->native_unit;
		totals[i].native_milli = t->accounts[i]->native_milli;
		totals[i].gpu_ms = t->accounts[i]->gpu_ms;
		totals[i].jobs = t->accounts[i]->jobs;
	}
	nrows = books_compare(&b, totals, t->n_accounts, tol, rows, &differ);
	if (cli->format == CLI_FORMAT_JSON) {
		if (cli_print(cli, resp) != CLI_EXIT_OK) {
			status = CLI_EXIT_FAIL;
			goto out;
		}
	} else {
		printf("site %s: the books (%s) against Allot's jobs started %s to %s\n", t->site,
		    books_format_unit_text(format), t->since, t->until);
		print_rows(rows, nrows);
	}
	if (differ > 0) {
		fprintf(cli->format == CLI_FORMAT_JSON ? stderr : stdout,
		    "%zu of %zu accounts of the books differ beyond %" PRId64 ".%03" PRId64 " %%\n",
		    differ, b.n, tol / 1000, tol % 1000);
		status = CLI_EXIT_FAIL;
	} else {
		if (cli->format != CLI_FORMAT_JSON)
			printf("all %zu accounts of the books agree within %" PRId64 ".%03" PRId64
			       " %%\n",
			    b.n, tol / 1000, tol % 1000);
		status = CLI_EXIT_OK;
	}
out:
	free(totals);
	free(rows);
	books_cleanup(&b);
	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	return status;
}
