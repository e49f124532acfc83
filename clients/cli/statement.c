/*
 * statement: `allot statement --project P --from T --to T --format csv|json|html`,
 * a project's signed statement for a period (Reports.GetStatement), written as
 * CSV or JSON (lib/stmtfmt) or HTML with charts (lib/stmthtml), and `allot
 * statement verify FILE --pubkey KEY`, which checks any of them offline: no
 * database, no network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/reports.pb-c.h"
#include "cli.h"
#include "render.h"
#include "stmtfmt.h"
#include "stmthtml.h"

static const char statement_usage_text[] =
    "usage: allot statement --project P|--program P --from T --to T\n"
    "                       [--format csv|json|html] [--by site|user|day|job[,...]]\n"
    "                       [--job-limit N] [--job-cursor C] [-o FILE]\n"
    "       allot statement verify FILE --pubkey KEY\n"
    "\n"
    "Writes project P's statement for [T, T) (UTC midnights): opening and closing\n"
    "balance, grants, deposits, moves, adjustments, charges, refunds, incident\n"
    "credits and expiries from the journal; use by site, user and day from the\n"
    "daily rollups; one page of jobs with their efficiency and energy; the burn\n"
    "against the plan and the forecast exhaustion; the sealed blocks it covers; and\n"
    "the audit key's signature (README \"Statements\"). CSV ends with a line\n"
    "\"signature,<hex>\"; JSON carries \"statementHash\" and \"signature\"; HTML\n"
    "is one self-contained page (tables, inline SVG charts, no script) that embeds\n"
    "the signed text and the signature.\n"
    "\n"
    "verify reads FILE (CSV, JSON or HTML) alone and checks its signature with the\n"
    "audit key's public half (PEM, what `allotd --audit-pubkey` prints).\n"
    "\n"
    "options:\n"
    "  --project P         the project\n"
    "  --program P         a funder's statement: every project of program P (admin,\n"
    "                      auditors): grants, charges, use, GPU-hours at 0 %\n"
    "  --from T, --to T    the period, RFC 3339 or a date, UTC midnights (required)\n"
    "  --format csv|json|html  the file's format (default csv)\n"
    "  --by LIST           breakdowns: site, user, day, job (default all), repeatable\n"
    "  --job-limit N       jobs in the page (default 100, at most 1000)\n"
    "  --job-cursor C      the page after the one whose next_job_cursor is C\n"
    "  -o FILE, --output FILE  write FILE (through a temporary file) instead of stdout\n"
    "  --pubkey KEY        verify: the audit public key (PEM)\n"
    "  --help              show this help\n";

#define STATEMENT_BY_MAX 4

/* Reads all of path into a new NUL-terminated buffer; NULL after printing why. */
static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL, *grown;
	size_t cap = 0, n = 0, got;

	if (f == NULL) {
		fprintf(stderr, "allot: statement: could not open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	do {
		if (n + 65536 + 1 > cap) {
			cap = (n + 65536 + 1) * 2;
			if ((grown = realloc(buf, cap)) == NULL) {
				fprintf(stderr, "allot: statement: out of memory\n");
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = grown;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
	} while (got > 0);
	if (ferror(f)) {
		fprintf(stderr, "allot: statement: could not read %s\n", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int
verify_main(int argc, char **argv)
{
	const char *file = NULL, *pubkey = NULL, *value;
	char name[64], err[512];
	int i = 1, r, status = CLI_EXIT_FAIL;
	EVP_PKEY *key;
	char *data;
	size_t len = 0;

	while (i < argc) {
		r = cli_next_flag(argc, argv, &i, name, sizeof(name), &value, "statement");
		if (r < 0)
			return CLI_EXIT_USAGE;
		if (r == 0) {
			if (file != NULL)
				return cli_usage_error(
				    "statement", "unexpected argument \"%s\"", argv[i]);
			file = argv[i++];
			continue;
		}
		if (strcmp(name, "help") == 0) {
			fputs(statement_usage_text, stdout);
			return CLI_EXIT_OK;
		}
		if (strcmp(name, "pubkey") != 0)
			return cli_usage_error("statement", "verify: unknown flag --%s", name);
		if (!cli_has_value("statement", name, value))
			return CLI_EXIT_USAGE;
		pubkey = value;
	}
	if (file == NULL)
		return cli_usage_error("statement", "verify: FILE is required");
	if (pubkey == NULL)
		return cli_usage_error("statement", "verify: --pubkey KEY is required");
	if ((key = cli_read_pubkey(pubkey, "statement")) == NULL)
		return CLI_EXIT_USAGE;
	if ((data = read_file(file, &len)) == NULL) {
		EVP_PKEY_free(key);
		return CLI_EXIT_USAGE;
	}
	if (stmtfmt_verify(key, data, len, err, sizeof(err)) != 0) {
		fprintf(stderr, "allot: statement: %s: %s\n", file, err);
	} else {
		printf("%s: the audit key's signature verifies\n", file);
		status = CLI_EXIT_OK;
	}
	free(data);
	EVP_PKEY_free(key);
	return status;
}

/* Writes len bytes to path through path.tmp, or to stdout when path is NULL. */
static int
write_out(const char *path, const char *data, size_t len)
{
	char tmp[4096];
	FILE *f;

	if (path == NULL)
		return fwrite(data, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : -1;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		fprintf(stderr, "allot: statement: %s: name too long\n", path);
		return -1;
	}
	if ((f = fopen(tmp, "wb")) == NULL) {
		fprintf(
		    stderr, "allot: statement: could not create %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	if (fwrite(data, 1, len, f) != len) {
		fclose(f);
		remove(tmp);
		fprintf(stderr, "allot: statement: could not write %s\n", tmp);
		return -1;
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		remove(tmp);
		fprintf(
		    stderr, "allot: statement: could not write %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Adds the comma-separated names of list to by (at most STATEMENT_BY_MAX). */
static int
add_by(char **by, size_t *n, char *list)
{
	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "site") != 0 && strcmp(tok, "user") != 0 &&
		    strcmp(tok, "day") != 0 && strcmp(tok, "job") != 0)
			return cli_usage_error(
			    "statement", "--by: \"%s\" is not site, user, day or job", tok);
		if (*n == STATEMENT_BY_MAX)
			return cli_usage_error(
			    "statement", "--by: at most %d names", STATEMENT_BY_MAX);
		by[(*n)++] = tok;
	}
	return 0;
}

int
statement_main(struct cli *cli, int argc, char **argv)
{
	Allot__V1__GetStatementRequest req = ALLOT__V1__GET_STATEMENT_REQUEST__INIT;
	const Allot__V1__GetStatementResponse *resp;
	ProtobufCMessage *msg = NULL;
	const char *output = NULL, *value;
	char *by[STATEMENT_BY_MAX], bybuf[256] = "", name[64], err[512], *end;
	size_t nby = 0, bylen = 0;
	enum {
		FMT_CSV,
		FMT_JSON,
		FMT_HTML
	} fmt = cli->format == CLI_FORMAT_JSON ? FMT_JSON : FMT_CSV;
	int i = 1, r, status = CLI_EXIT_FAIL;
	struct strbuf out;

	if (argc > 1 && strcmp(argv[1], "verify") == 0)
		return verify_main(argc - 1, argv + 1);
	while (i < argc) {
		if (strcmp(argv[i], "-o") == 0) {
			if (i + 1 >= argc)
				return cli_usage_error("statement", "-o needs a FILE");
			output = argv[i + 1];
			i += 2;
			continue;
		}
		r = cli_next_flag(argc, argv, &i, name, sizeof(name), &value, "statement");
		if (r < 0)
			return CLI_EXIT_USAGE;
		if (r == 0)
			return cli_usage_error("statement", "unexpected argument \"%s\"", argv[i]);
		if (strcmp(name, "help") == 0) {
			fputs(statement_usage_text, stdout);
			return CLI_EXIT_OK;
		}
		if (!cli_has_value("statement", name, value))
			return CLI_EXIT_USAGE;
		if (strcmp(name, "project") == 0) {
			req.project = (char *)value;
		} else if (strcmp(name, "program") == 0) {
			req.program = (char *)value;
		} else if (strcmp(name, "from") == 0) {
			req.from = (char *)value;
		} else if (strcmp(name, "to") == 0) {
			req.to = (char *)value;
		} else if (strcmp(name, "output") == 0) {
			output = value;
		} else if (strcmp(name, "job-cursor") == 0) {
			req.job_cursor = (char *)value;
		} else if (strcmp(name, "job-limit") == 0) {
			long n;

			errno = 0;
			n = strtol(value, &end, 10);
			if (errno != 0 || end == value || *end != '\0' || n < 1 || n > 1000)
				return cli_usage_error("statement",
				    "--job-limit: \"%s\" is not a number from 1 to 1000", value);
			req.job_limit = (int32_t)n;
		} else if (strcmp(name, "by") == 0) {
			size_t l = strlen(value);

			if (bylen + l + 1 > sizeof(bybuf))
				return cli_usage_error("statement", "--by: too long");
			memcpy(bybuf + bylen, value, l + 1);
			if (add_by(by, &nby, bybuf + bylen) != 0)
				return CLI_EXIT_USAGE;
			bylen += l + 1;
		} else if (strcmp(name, "format") == 0) {
			if (strcmp(value, "csv") == 0)
				fmt = FMT_CSV;
			else if (strcmp(value, "json") == 0)
				fmt = FMT_JSON;
			else if (strcmp(value, "html") == 0)
				fmt = FMT_HTML;
			else
				return cli_usage_error("statement",
				    "--format: \"%s\" is not csv, json or html", value);
		} else {
			return cli_usage_error("statement", "unknown flag --%s", name);
		}
	}
	if ((req.project[0] == '\0') == (req.program[0] == '\0'))
		return cli_usage_error("statement", "give --project P or --program P");
	if (req.from[0] == '\0' || req.to[0] == '\0')
		return cli_usage_error("statement", "--from and --to are required");
	req.n_by = nby;
	req.by = by;
	if (cli->dry_run)
		return render_json(stdout, &req.base) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	if (cli_call(cli, "allot.v1.Reports/GetStatement", &req.base,
	        &allot__v1__get_statement_response__descriptor, &msg) < 0)
		return CLI_EXIT_FAIL;
	resp = (const void *)msg;
	strbuf_init(&out);
	if (fmt == FMT_HTML) {
		if (stmthtml_render(resp->statement, strlen(resp->statement), resp->signature, &out,
		        err, sizeof(err)) != 0) {
			fprintf(stderr, "allot: statement: %s\n", err);
			goto done;
		}
	} else if (fmt == FMT_JSON) {
		json_t *doc = stmtfmt_to_json(
		    resp->statement, strlen(resp->statement), resp->signature, err, sizeof(err));
		char *text = doc != NULL ? json_dumps(doc, JSON_INDENT(2)) : NULL;

		json_decref(doc);
		if (text == NULL) {
			fprintf(
			    stderr, "allot: statement: %s\n", doc == NULL ? err : "out of memory");
			goto done;
		}
		strbuf_puts(&out, text);
		strbuf_putc(&out, '\n');
		free(text);
	} else if (stmtfmt_to_csv(resp->statement, strlen(resp->statement), resp->signature, &out,
	               err, sizeof(err)) != 0) {
		fprintf(stderr, "allot: statement: %s\n", err);
		goto done;
	}
	if (strbuf_failed(&out)) {
		fputs("allot: statement: out of memory\n", stderr);
		goto done;
	}
	if (write_out(output, out.data, out.len) == 0)
		status = CLI_EXIT_OK;
done:
	strbuf_cleanup(&out);
	protobuf_c_message_free_unpacked(msg, NULL);
	return status;
}
