/*
 * allot-collect: the site collector. One program, commands from one table: `parse`
 * prints what a site's output holds as allot.v1 JSON lines. The parsers are the
 * collect library (parse.h); this file is arguments, files and printing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "pbjson.h"

enum {
	EXIT_OK = 0,
	EXIT_INPUT = 1, /* input that does not parse, or a file that cannot be read */
	EXIT_USAGE = 2,
};

/* The most input `parse` reads: a year of a large site's sacct output fits. */
#define PARSE_MAX_INPUT ((size_t)4 << 30)

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static int cmd_parse(int argc, char **argv);

static const struct command commands[] = {
    {"parse", cmd_parse, "print what a site's output holds, as allot.v1 JSON lines"},
};

static const char parse_usage_text[] =
    "usage: allot-collect parse --site SITE --format sacct|jobcomp|dcgm|amd|rocm-smi\n"
    "                           [--timezone TZ] [--fields F] [--job-label L] [--host H]\n"
    "                           [--scrape-time T] [--tres-gpu-id N] [--count] [FILE|-]\n"
    "\n"
    "Reads a site's output (FILE, or standard input for - or none) and prints what the\n"
    "collector would send, one message per line in proto3 JSON: allot.v1.JobRecord for\n"
    "sacct and jobcomp (the lines `allot ingest` reads), allot.v1.GpuSample for the\n"
    "others. Input that does not parse prints nothing, names the line and the reason on\n"
    "stderr, and exits 1.\n"
    "\n"
    "options:\n"
    "  --site SITE         the site the output comes from (required)\n"
    "  --format F          sacct: sacct --parsable2 (or -p) output\n"
    "                      jobcomp: Slurm job-completion JSON records\n"
    "                      dcgm: NVIDIA DCGM exporter scrape\n"
    "                      amd: AMD device metrics exporter scrape, or rocm-smi output\n"
    "                      rocm-smi: rocm-smi output\n"
    "  --timezone TZ       the site's IANA time zone, for times printed without an\n"
    "                      offset (sacct's): default the machine's\n"
    "  --fields F          sacct: the --format list of output without a header (-n)\n"
    "  --job-label L       dcgm/amd: the label naming the job (default hpc_job, then\n"
    "                      jobid, then job_id)\n"
    "  --host H            dcgm/amd: the host of samples without a host label;\n"
    "                      rocm-smi: the host the output is from (required there)\n"
    "  --scrape-time T     RFC 3339 time of samples without a timestamp (default now)\n"
    "  --tres-gpu-id N     jobcomp: the TRES id of gres/gpu in numeric TRES strings\n"
    "                      (default 1001)\n"
    "  --count             print how many messages the input holds, not them\n"
    "  --help              show this help\n";

static const char usage_text[] = "usage: allot-collect COMMAND [ARGS]\n"
                                 "\n"
                                 "The site collector of Allot.\n"
                                 "\n"
                                 "commands:\n";

static void
usage(FILE *f)
{
	fputs(usage_text, f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fputs("\nEvery command takes --help.\n", f);
}

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("allot-collect: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'allot-collect%s%s --help'.\n", cmd != NULL ? " " : "",
	    cmd != NULL ? cmd : "");
	return EXIT_USAGE;
}

/*
 * Reads all of path ("-": stdin) into a new buffer (*buf, the caller frees it).
 * Returns 0, or -1 after printing why.
 */
static int
read_all(const char *path, char **buf, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t cap = 65536, n = 0, r;
	char *b = NULL, *nb;

	if (f == NULL) {
		fprintf(stderr, "allot-collect: could not open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if ((b = malloc(cap)) == NULL)
		goto oom;
	while ((r = fread(b + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			if (cap >= PARSE_MAX_INPUT) {
				fprintf(stderr, "allot-collect: %s: more than %zu bytes\n", path,
				    PARSE_MAX_INPUT);
				goto fail;
			}
			if ((nb = realloc(b, cap * 2)) == NULL)
				goto oom;
			b = nb;
			cap *= 2;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "allot-collect: could not read %s: %s\n", path, strerror(errno));
		goto fail;
	}
	if (f != stdin)
		fclose(f);
	*buf = b;
	*len = n;
	return 0;
oom:
	fprintf(stderr, "allot-collect: out of memory reading %s\n", path);
fail:
	if (f != stdin)
		fclose(f);
	free(b);
	return -1;
}

/* Prints each message of out as one JSON line. 0 or -1. */
static int
print_out(const struct collect_out *out)
{
	struct strbuf sb;
	int ret = 0;

	strbuf_init(&sb);
	for (size_t i = 0; i < out->njobs + out->nsamples && ret == 0; i++) {
		const ProtobufCMessage *m =
		    i < out->njobs ? &out->jobs[i]->base : &out->samples[i - out->njobs]->base;

		strbuf_reset(&sb);
		if (!pbjson_encode(m, &sb) || strbuf_failed(&sb)) {
			fprintf(stderr, "allot-collect: could not encode message %zu\n", i + 1);
			ret = -1;
			break;
		}
		strbuf_putc(&sb, '\n');
		if (fwrite(sb.data, 1, sb.len, stdout) != sb.len)
			ret = -1;
	}
	strbuf_cleanup(&sb);
	if (fflush(stdout) != 0 || ret != 0) {
		if (ret == 0)
			fprintf(stderr, "allot-collect: could not write: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int
cmd_parse(int argc, char **argv)
{
	struct collect_opts o = {0};
	struct collect_out out;
	const char *format = NULL, *path = "-";
	enum collect_format f;
	char err[512], *buf = NULL;
	size_t len;
	int npos = 0, rc;
	bool count = false;

	for (int i = 1; i < argc; i++) {
		static const struct {
			const char *flag;
			size_t off;
		} flags[] = {
		    {"--site", offsetof(struct collect_opts, site)},
		    {"--timezone", offsetof(struct collect_opts, timezone)},
		    {"--fields", offsetof(struct collect_opts, fields)},
		    {"--job-label", offsetof(struct collect_opts, job_label)},
		    {"--host", offsetof(struct collect_opts, host)},
		    {"--scrape-time", offsetof(struct collect_opts, scrape_time)},
		};
		const char *a = argv[i], *v = NULL, *eq;
		size_t k, nlen;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(parse_usage_text, stdout);
			return EXIT_OK;
		}
		if (strcmp(a, "--count") == 0) {
			count = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (strcmp(a, "--") == 0 && i + 1 < argc)
				a = argv[++i];
			if (npos++ > 0)
				return usage_error("parse", "more than one input file");
			path = a;
			continue;
		}
		eq = strchr(a, '=');
		nlen = eq != NULL ? (size_t)(eq - a) : strlen(a);
		if (eq != NULL)
			v = eq + 1;
		else if (i + 1 < argc)
			v = argv[++i];
		else
			return usage_error("parse", "flag %s needs a value", a);
		if (nlen == 8 && strncmp(a, "--format", 8) == 0) {
			format = v;
			continue;
		}
		if (nlen == 13 && strncmp(a, "--tres-gpu-id", 13) == 0) {
			char *end;
			long id = strtol(v, &end, 10);

			if (*v == '\0' || *end != '\0' || id < 1 || id > 1000000)
				return usage_error(
				    "parse", "--tres-gpu-id: not a TRES id: \"%s\"", v);
			o.tres_gpu_id = (int)id;
			continue;
		}
		for (k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
			if (strlen(flags[k].flag) == nlen && strncmp(a, flags[k].flag, nlen) == 0)
				break;
		if (k == sizeof(flags) / sizeof(flags[0]))
			return usage_error("parse", "unknown flag %.*s", (int)nlen, a);
		*(const char **)((char *)&o + flags[k].off) = v;
	}
	if (o.site == NULL || o.site[0] == '\0')
		return usage_error("parse", "--site is required");
	if (format == NULL)
		return usage_error("parse", "--format is required");
	if (collect_format_parse(format, &f) != 0)
		return usage_error("parse", "unknown format \"%s\"", format);

	if (read_all(path, &buf, &len) != 0)
		return EXIT_INPUT;
	collect_out_init(&out);
	if (collect_parse(f, &o, buf, len, &out, err, sizeof(err)) != 0) {
		fprintf(stderr, "allot-collect: %s: %s: %s\n", o.site,
		    strcmp(path, "-") == 0 ? "stdin" : path, err);
		rc = EXIT_INPUT;
	} else if (count) {
		printf("%zu job records, %zu GPU samples\n", out.njobs, out.nsamples);
		rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_INPUT;
	} else {
		rc = print_out(&out) == 0 ? EXIT_OK : EXIT_INPUT;
	}
	collect_out_cleanup(&out);
	free(buf);
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		return usage_error(NULL, "no command");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	return usage_error(NULL, "unknown command \"%s\"", argv[1]);
}
