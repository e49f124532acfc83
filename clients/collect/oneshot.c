/*
 * oneshot: `allot-collect send` and `allot-collect backfill`, the same parts as
 * the daemon without its loop: parse, spool, send, wait for the acknowledgements.
 * send sends from this thread once everything is spooled; backfill starts the
 * sending thread so that sending overlaps reading sacct day by day.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <getopt.h>

#include "collector.h"
#include "log.h"
#include "run.h"
#include "sources.h"

/* Reads all of f into sb; false on a read error. */
static bool
read_whole(FILE *f, struct strbuf *sb)
{
	char chunk[COLLECT_READ_CHUNK];
	size_t n;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		strbuf_append(sb, chunk, n);
	return !ferror(f) && !strbuf_failed(sb);
}

static void
wake_sender(void *arg)
{
	sender_wake(arg);
}

/*
 * Spools what the batcher holds, sending while the spool is full, then drains.
 * Returns an exit status.
 */
static int
spool_and_drain(struct collector *c, int rc, const char *err_in, int64_t deadline_ms)
{
	struct sender_stats st;
	struct spool_stats ss;
	char err[1024];

	snprintf(err, sizeof(err), "%s", err_in);
	for (;;) {
		if (rc < 0) {
			fprintf(stderr, "allot-collect: %s\n", err);
			return COLLECT_EXIT_FAIL;
		}
		if (rc == 0 && (rc = batcher_flush(c->batcher, err, sizeof(err))) == 0)
			break;
		if (rc == SPOOL_FULL) {
			/* Room comes from acknowledgements. */
			if (sender_drain(c->sender, deadline_ms) != 0) {
				fprintf(stderr,
				    "allot-collect: the spool is full and allotd did not take "
				    "batches in time: %s\n",
				    err);
				return COLLECT_EXIT_TEMPFAIL;
			}
			rc = 0;
		}
	}
	if (sender_drain(c->sender, deadline_ms) != 0) {
		spool_get_stats(c->spool, -1, &ss);
		sender_get_stats(c->sender, &st);
		fprintf(stderr,
		    "allot-collect: %zu batches (%" PRIu64 " records) left in %s for later: %s\n",
		    ss.batches, ss.records, spool_dir(c->spool), st.last_error);
		return COLLECT_EXIT_TEMPFAIL;
	}
	sender_get_stats(c->sender, &st);
	/* What allotd took, so that a one-shot run says more than its exit status. */
	printf("acknowledged: %" PRIu64 " job batches (%" PRIu64 " records, %" PRIu64
	       " refused), %" PRIu64 " metric batches (%" PRIu64 " samples, %" PRIu64
	       " refused); %" PRIu64 " batches moved to rejected/\n",
	    st.batches_acked[SPOOL_JOBS], st.records_acked[SPOOL_JOBS],
	    st.records_refused[SPOOL_JOBS], st.batches_acked[SPOOL_METRICS],
	    st.records_acked[SPOOL_METRICS], st.records_refused[SPOOL_METRICS],
	    st.batches_rejected[SPOOL_JOBS] + st.batches_rejected[SPOOL_METRICS]);
	if (batcher_skipped(c->batcher) > 0)
		printf("skipped: %" PRIu64 " job records and steps of partitions not in "
		       "\"partitions\"\n",
		    batcher_skipped(c->batcher));
	return st.batches_rejected[0] + st.batches_rejected[1] + st.records_refused[0] +
	            st.records_refused[1] >
	        0
	    ? COLLECT_EXIT_FAIL
	    : COLLECT_EXIT_OK;
}

/* What the one-shot commands share on their command lines. */
struct oneshot_args {
	const char *spool; /* --spool, or NULL for the configuration's */
	long wait_s;       /* --wait */
};

/*
 * Takes -c, --spool and --wait (getopt's ch and optarg). Returns 1 when taken, 0
 * for another option, -1 after printing what is wrong.
 */
static int
oneshot_option(int ch, const char *arg, struct collector *c, struct oneshot_args *a)
{
	char *end;

	switch (ch) {
	case 'c':
		c->config_path = arg;
		return 1;
	case 's':
		a->spool = arg;
		return 1;
	case 'w':
		a->wait_s = strtol(arg, &end, 10);
		if (*end == '\0' && a->wait_s >= 0 && arg[0] != '\0')
			return 1;
		fprintf(stderr, "allot-collect: --wait: \"%s\" is not a number of seconds\n", arg);
		return -1;
	default:
		return 0;
	}
}

static void
usage_send(FILE *f)
{
	fprintf(f,
	    "usage: allot-collect send [-c FILE] [--format F] [--spool DIR] [--wait S] FILE\n"
	    "\n"
	    "Parses FILE (- for standard input), spools it in batches and sends them,\n"
	    "waiting for allotd to acknowledge each. F is jsonl (default: the JSON lines\n"
	    "`allot-collect parse` prints), sacct, jobcomp, dcgm or amd. Batches not\n"
	    "acknowledged within --wait seconds (default 600; 0: no limit) stay in the\n"
	    "spool, for the daemon or the next send: exit status 75.\n");
}

int
collect_send_main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"format", required_argument, NULL, 'f'},
	    {"spool", required_argument, NULL, 's'},
	    {"wait", required_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct collector c = {.config_path = COLLECT_DEFAULT_CONFIG, .in_fd = -1};
	struct oneshot_args a = {.wait_s = 600};
	const char *format = "jsonl", *file;
	struct strbuf in;
	char err[1024];
	FILE *f;
	int ch, rc, r, status;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		if ((r = oneshot_option(ch, optarg, &c, &a)) != 0) {
			if (r < 0)
				return COLLECT_EXIT_USAGE;
			continue;
		}
		switch (ch) {
		case 'f':
			format = optarg;
			break;
		case 'h':
			usage_send(stdout);
			return COLLECT_EXIT_OK;
		default:
			usage_send(stderr);
			return COLLECT_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage_send(stderr);
		return COLLECT_EXIT_USAGE;
	}
	file = argv[optind];
	if ((c.cfg = collector_load_config(c.config_path)) == NULL)
		return COLLECT_EXIT_FAIL;
	log_set_level(c.cfg->log_level);
	if (strcmp(file, "-") == 0)
		f = stdin;
	else if ((f = fopen(file, "r")) == NULL) {
		fprintf(stderr, "allot-collect: could not open %s: %s\n", file, strerror(errno));
		collect_config_free(c.cfg);
		return COLLECT_EXIT_FAIL;
	}
	strbuf_init(&in);
	if (!read_whole(f, &in)) {
		fprintf(stderr, "allot-collect: could not read %s\n", file);
		status = COLLECT_EXIT_FAIL;
		goto done_file;
	}
	if (collector_open(&c, a.spool) != 0) {
		status = COLLECT_EXIT_FAIL;
		goto done;
	}
	/* A bad input stops everything before anything is spooled, as `allot ingest` does. */
	batcher_set_size(c.batcher, SIZE_MAX, 0);
	rc = collector_parse(
	    c.batcher, c.cfg, format, in.data != NULL ? in.data : "", in.len, 1, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "allot-collect: %s: %s\n", strcmp(file, "-") == 0 ? "stdin" : file,
		    err);
		status = COLLECT_EXIT_USAGE;
		goto done;
	}
	batcher_set_size(c.batcher, (size_t)c.cfg->batch_records, (size_t)c.cfg->batch_max_bytes);
	/*
	 * The sending thread sends each batch as soon as it is spooled, while the
	 * next are written; once they all are (or the spool is full), this thread
	 * drains what is left.
	 */
	if (sender_start(c.sender, err, sizeof(err)) != 0) {
		fprintf(stderr, "allot-collect: %s\n", err);
		status = COLLECT_EXIT_FAIL;
		goto done;
	}
	batcher_on_spooled(c.batcher, wake_sender, c.sender);
	rc = batcher_flush(c.batcher, err, sizeof(err));
	batcher_on_spooled(c.batcher, NULL, NULL);
	sender_stop(c.sender);
	status =
	    spool_and_drain(&c, rc, err, a.wait_s > 0 ? collector_wall_ms() + a.wait_s * 1000 : 0);
done:
	collector_close(&c);
	c.cfg = NULL;
done_file:
	strbuf_cleanup(&in);
	if (f != stdin)
		fclose(f);
	collect_config_free(c.cfg);
	return status;
}

/* Reads "YYYY-MM-DD" as the Unix time of that day's midnight UTC (a calendar day, no zone). */
static bool
parse_day(const char *s, time_t *out)
{
	struct tm tm = {0};
	char tail;
	int y, m, d;

	if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || strlen(s) != 10 || m < 1 ||
	    m > 12 || d < 1 || d > 31 || y < 1970 || y > 9999)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	*out = timegm(&tm);
	gmtime_r(out, &tm);
	/* 2026-02-30 would roll over to March: refuse it. */
	return tm.tm_mday == d && tm.tm_mon == m - 1;
}

static void
format_day(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d", &tm);
}

static void
progress(bool tty, const char *day, size_t done, size_t total, uint64_t records, double elapsed_s)
{
	double rate = elapsed_s > 0 ? (double)records / elapsed_s : 0;
	double eta = done > 0 ? elapsed_s / (double)done * (double)(total - done) : 0;
	int width = 30, fill = total > 0 ? (int)((double)width * (double)done / (double)total) : 0;
	char bar[64];

	if (!tty) {
		fprintf(stderr,
		    "backfill: %s done (%zu/%zu days), %" PRIu64 " records, %.0f records/s, "
		    "ETA %.0f s\n",
		    day, done, total, records, rate, eta);
		return;
	}
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = '\0';
	fprintf(stderr,
	    "\r[%s] %zu/%zu days  %" PRIu64 " records  %.0f rec/s  ETA %d:%02d:%02d  %s", bar, done,
	    total, records, rate, (int)eta / 3600, (int)eta / 60 % 60, (int)eta % 60,
	    done == total ? "\n" : "");
}

static void
usage_backfill(FILE *f)
{
	fprintf(f,
	    "usage: allot-collect backfill [-c FILE] --since DATE [--until DATE] [--spool DIR]\n"
	    "                              [--wait S]\n"
	    "\n"
	    "Imports the site's history: runs sacct_command for each day from --since\n"
	    "(YYYY-MM-DD, the site's local days) up to --until (default: through today),\n"
	    "spools the records and sends them, with a progress bar on a terminal (records,\n"
	    "rate, ETA) and a progress line per day otherwise. Days already sent are\n"
	    "replays: running it again is harmless. Batches not acknowledged within --wait\n"
	    "seconds after the last day (default 600; 0: no limit) stay in the spool: exit\n"
	    "status 75.\n");
}

int
collect_backfill_main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"since", required_argument, NULL, 'S'},
	    {"until", required_argument, NULL, 'E'},
	    {"spool", required_argument, NULL, 's'},
	    {"wait", required_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct collector c = {.config_path = COLLECT_DEFAULT_CONFIG, .in_fd = -1};
	struct oneshot_args a = {.wait_s = 600};
	const char *since = NULL, *until = NULL;
	char err[1024], day[16], next[16], start[32], end[32];
	time_t first, last, t;
	int64_t t0;
	size_t ndays, done = 0;
	bool tty = isatty(STDERR_FILENO) == 1;
	struct strbuf out;
	int ch, rc, status = COLLECT_EXIT_OK, ws;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		if ((rc = oneshot_option(ch, optarg, &c, &a)) != 0) {
			if (rc < 0)
				return COLLECT_EXIT_USAGE;
			continue;
		}
		switch (ch) {
		case 'S':
			since = optarg;
			break;
		case 'E':
			until = optarg;
			break;
		case 'h':
			usage_backfill(stdout);
			return COLLECT_EXIT_OK;
		default:
			usage_backfill(stderr);
			return COLLECT_EXIT_USAGE;
		}
	}
	if (optind != argc || since == NULL) {
		usage_backfill(stderr);
		return COLLECT_EXIT_USAGE;
	}
	if (!parse_day(since, &first)) {
		fprintf(stderr, "allot-collect: --since: \"%s\" is not a date YYYY-MM-DD\n", since);
		return COLLECT_EXIT_USAGE;
	}
	if (until != NULL && !parse_day(until, &last)) {
		fprintf(stderr, "allot-collect: --until: \"%s\" is not a date YYYY-MM-DD\n", until);
		return COLLECT_EXIT_USAGE;
	}
	if (until == NULL)
		last = time(NULL) / 86400 * 86400 + 86400;
	if (last <= first) {
		fprintf(stderr, "allot-collect: --until must come after --since\n");
		return COLLECT_EXIT_USAGE;
	}
	ndays = (size_t)((last - first) / 86400);
	if ((c.cfg = collector_load_config(c.config_path)) == NULL)
		return COLLECT_EXIT_FAIL;
	if (c.cfg->sacct_command[0] == '\0') {
		fprintf(stderr, "allot-collect: %s: backfill needs sacct_command\n", c.config_path);
		collect_config_free(c.cfg);
		return COLLECT_EXIT_USAGE;
	}
	log_set_level(c.cfg->log_level);
	if (collector_open(&c, a.spool) != 0) {
		collector_close(&c);
		return COLLECT_EXIT_FAIL;
	}
	/* Sending overlaps reading: the sender's thread empties the spool as days are read. */
	if (sender_start(c.sender, err, sizeof(err)) != 0) {
		fprintf(stderr, "allot-collect: %s\n", err);
		collector_close(&c);
		return COLLECT_EXIT_FAIL;
	}
	strbuf_init(&out);
	t0 = collector_wall_ms();
	for (t = first; t < last; t += 86400) {
		format_day(t, day, sizeof(day));
		format_day(t + 86400, next, sizeof(next));
		snprintf(start, sizeof(start), "%sT00:00:00", day);
		snprintf(end, sizeof(end), "%sT00:00:00", next);
		strbuf_reset(&out);
		ws = source_sacct_run_sync(c.cfg, start, end, &out);
		if (ws < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
			fprintf(stderr,
			    "%sallot-collect: %s failed for %s: stopping here; run again "
			    "with --since %s\n",
			    tty ? "\n" : "", c.cfg->sacct_command, day, day);
			status = COLLECT_EXIT_FAIL;
			break;
		}
		rc = collector_parse(c.batcher, c.cfg, "sacct", out.data != NULL ? out.data : "",
		    out.len, 0, err, sizeof(err));
		if (rc < 0 && !batcher_full(c.batcher)) {
			fprintf(stderr, "%sallot-collect: sacct output for %s: %s\n",
			    tty ? "\n" : "", day, err);
			status = COLLECT_EXIT_FAIL;
			break;
		}
		while ((rc = batcher_flush(c.batcher, err, sizeof(err))) == SPOOL_FULL) {
			/* The sender makes room; waiting here is all a one-shot command can do. */
			sender_wake(c.sender);
			usleep(200000);
		}
		if (rc < 0) {
			fprintf(stderr, "allot-collect: %s\n", err);
			status = COLLECT_EXIT_FAIL;
			break;
		}
		sender_wake(c.sender);
		done++;
		progress(tty, day, done, ndays, batcher_spooled(c.batcher, SPOOL_JOBS),
		    (double)(collector_wall_ms() - t0) / 1000.0);
	}
	strbuf_cleanup(&out);
	sender_stop(c.sender);
	rc = spool_and_drain(&c, 0, "", a.wait_s > 0 ? collector_wall_ms() + a.wait_s * 1000 : 0);
	if (status == COLLECT_EXIT_OK)
		status = rc;
	collector_close(&c);
	return status;
}
