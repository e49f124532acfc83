/*
 * Unit tests for clients/collect: each fixture of tests/fixtures/sites parsed to the
 * exact messages expected (written out as the proto3 JSON lines `allot-collect parse`
 * prints), the time zone across daylight saving changes, every trap of the shared
 * fixtures' README, and bad input named by its line with the output left unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parse.h"
#include "pbjson.h"

#define FIXTURES SOURCE_ROOT "/tests/fixtures/sites/"
#define SCRAPE "2026-11-21T08:00:00Z"

/* Reads a fixture into a new buffer. */
static char *
fixture(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s%s", FIXTURES, name);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	assert_int_equal(fseek(f, 0, SEEK_SET), 0);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Asserts that out holds exactly the messages whose JSON lines are want[0..n). */
static void
assert_out(const struct collect_out *out, const char *const *want, size_t n)
{
	struct strbuf sb;

	assert_int_equal(out->njobs + out->nsamples, n);
	strbuf_init(&sb);
	for (size_t i = 0; i < n; i++) {
		const ProtobufCMessage *m =
		    i < out->njobs ? &out->jobs[i]->base : &out->samples[i - out->njobs]->base;

		strbuf_reset(&sb);
		assert_true(pbjson_encode(m, &sb));
		if (strcmp(sb.data, want[i]) != 0)
			fail_msg("message %zu:\n got  %s\n want %s", i, sb.data, want[i]);
	}
	strbuf_cleanup(&sb);
}

/* Parses text (or a fixture when file is set) and asserts the messages. */
static void
check(enum collect_format f, const struct collect_opts *o, const char *file, const char *text,
    const char *const *want, size_t n)
{
	struct collect_out out;
	char err[512];
	size_t len;
	char *buf = file != NULL ? fixture(file, &len) : NULL;

	if (buf == NULL)
		len = strlen(text);
	collect_out_init(&out);
	if (collect_parse(f, o, buf != NULL ? buf : text, len, &out, err, sizeof(err)) != 0)
		fail_msg("parse failed: %s", err);
	assert_out(&out, want, n);
	collect_out_cleanup(&out);
	free(buf);
}

/*
 * Asserts that parsing fails with exactly the error want, and that what out held
 * before (one record of an earlier parse) is all it holds after.
 */
static void
check_error(enum collect_format f, const struct collect_opts *o, const char *file, const char *text,
    const char *want)
{
	static const char earlier[] = "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	                              "1|a|p|RUNNING|2026-01-01T00:00:00|5|gres/gpu=1\n";
	static const struct collect_opts utc = {.timezone = "UTC"};
	struct collect_out out;
	char err[512];
	size_t len;
	char *buf = file != NULL ? fixture(file, &len) : NULL;

	if (buf == NULL)
		len = strlen(text);
	collect_out_init(&out);
	assert_int_equal(
	    collect_parse(COLLECT_SACCT, &utc, earlier, strlen(earlier), &out, err, sizeof(err)),
	    0);
	assert_int_equal(out.njobs, 1);
	if (collect_parse(f, o, buf != NULL ? buf : text, len, &out, err, sizeof(err)) == 0)
		fail_msg("parse succeeded; wanted: %s", want);
	assert_string_equal(err, want);
	assert_int_equal(out.njobs, 1);
	assert_int_equal(out.nsamples, 0);
	assert_string_equal(out.jobs[0]->job_id, "1");
	collect_out_cleanup(&out);
	free(buf);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MN5_FIELDS \
	"JobID,JobName,Account,Partition,QOS,State,Submit,Start,End,ElapsedRaw,NNodes,AllocCPUS," \
	"AllocTRES,CPUTimeRAW,ExitCode,WorkDir,ConsumedEnergyRaw"

/*
 * MareNostrum 5, `sacct -X -n -P` (no header: the --format list given), Europe/Madrid
 * (CEST +2 in May to September, CET +1 otherwise): the running job's start, a
 * TIMEOUT, a CPU-only job, `CANCELLED by 1000` as CANCELLED, the pending job and the
 * pending multi-partition job not sent.
 */
static void
test_sacct_mn5(void **state)
{
	static const struct collect_opts o = {
	    .site = "marenostrum5", .timezone = "Europe/Madrid", .fields = MN5_FIELDS};
	static const char *const want[] = {
	    "{\"jobId\":\"46783172\",\"step\":\"\",\"startTime\":\"2026-09-29T06:48:23Z\","
	    "\"account\":\"ehpc103\",\"user\":\"\",\"partition\":\"acc\",\"gpus\":4,\"cpus\":160,"
	    "\"memMb\":\"500000\",\"nodes\":1,\"elapsedS\":\"11632\",\"state\":\"RUNNING\","
	    "\"nodeList\":\"\"}",
	    "{\"jobId\":\"21687187\",\"step\":\"\",\"startTime\":\"2025-05-29T12:43:43Z\","
	    "\"account\":\"bsc32\",\"user\":\"\",\"partition\":\"acc\",\"gpus\":1,\"cpus\":40,"
	    "\"memMb\":\"125000\",\"nodes\":1,\"elapsedS\":\"22\",\"state\":\"COMPLETED\","
	    "\"nodeList\":\"\"}",
	    "{\"jobId\":\"4534836\",\"step\":\"\",\"startTime\":\"2024-08-03T19:00:33Z\","
	    "\"account\":\"bsc32\",\"user\":\"\",\"partition\":\"acc\",\"gpus\":32,\"cpus\":1280,"
	    "\"memMb\":\"4000000\",\"nodes\":8,\"elapsedS\":\"7208\",\"state\":\"TIMEOUT\","
	    "\"nodeList\":\"\"}",
	    "{\"jobId\":\"1120989\",\"step\":\"\",\"startTime\":\"2024-04-26T14:48:07Z\","
	    "\"account\":\"bsc32\",\"user\":\"\",\"partition\":\"gpp\",\"gpus\":0,\"cpus\":2,"
	    "\"memMb\":\"2000\",\"nodes\":1,\"elapsedS\":\"2\",\"state\":\"COMPLETED\","
	    "\"nodeList\":\"\"}",
	    "{\"jobId\":\"1748055\",\"step\":\"\",\"startTime\":\"2024-05-14T13:49:41Z\","
	    "\"account\":\"bsc32\",\"user\":\"\",\"partition\":\"gpp\",\"gpus\":0,\"cpus\":2,"
	    "\"memMb\":\"2000\",\"nodes\":1,\"elapsedS\":\"301\",\"state\":\"CANCELLED\","
	    "\"nodeList\":\"\"}",
	};

	(void)state;
	check(COLLECT_SACCT, &o, "sacct/mn5.psv", NULL, want, N(want));
}

/* LEONARDO's and JUPITER's verbatim samples have no Start or End: refused at the header. */
static void
test_sacct_no_start_field(void **state)
{
	static const struct collect_opts o = {.timezone = "Europe/Rome"};

	(void)state;
	check_error(COLLECT_SACCT, &o, "sacct/leonardo.psv", NULL,
	    "line 1: no Start (or End) field: add it to sacct's --format");
	check_error(COLLECT_SACCT, &o, "sacct/jupiter.psv", NULL,
	    "line 1: no Start (or End) field: add it to sacct's --format");
}

/*
 * LEONARDO with times (Europe/Rome, CET in November): the allocation and its .batch
 * and .extern steps; CPUs, memory (64G = 65536 MB) and nodes from AllocTRES, since
 * the output has no NCPUS or NNodes; Elapsed read as 4 min 31 s.
 */
static void
test_sacct_leonardo(void **state)
{
	static const struct collect_opts o = {.timezone = "Europe/Rome"};
	static const char *const want[] = {
	    "{\"jobId\":\"48411710\",\"step\":\"\",\"startTime\":\"2026-11-21T08:12:40Z\","
	    "\"account\":\"iscrc_simp\",\"user\":\"\",\"partition\":\"boost_usr_prod\",\"gpus\":1,"
	    "\"cpus\":8,\"memMb\":\"65536\",\"nodes\":1,\"elapsedS\":\"271\",\"state\":\"FAILED\","
	    "\"nodeList\":\"lrdn0263\"}",
	    "{\"jobId\":\"48411710\",\"step\":\"batch\",\"startTime\":\"2026-11-21T08:12:40Z\","
	    "\"account\":\"iscrc_simp\",\"user\":\"\",\"partition\":\"\",\"gpus\":1,"
	    "\"cpus\":8,\"memMb\":\"65536\",\"nodes\":1,\"elapsedS\":\"271\",\"state\":\"FAILED\","
	    "\"nodeList\":\"\"}",
	    "{\"jobId\":\"48411710\",\"step\":\"extern\",\"startTime\":\"2026-11-21T08:12:40Z\","
	    "\"account\":\"iscrc_simp\",\"user\":\"\",\"partition\":\"\",\"gpus\":1,"
	    "\"cpus\":8,\"memMb\":\"65536\",\"nodes\":1,\"elapsedS\":\"271\","
	    "\"state\":\"COMPLETED\",\"nodeList\":\"\"}",
	};

	(void)state;
	check(COLLECT_SACCT, &o, "sacct/leonardo-with-times.psv", NULL, want, N(want));
}

/*
 * JUPITER with times, across the spring-forward night in Europe/Berlin: typed
 * gres/gpu:gh200=4 beside untyped gres/gpu=4 is 4 GPUs, not 8; 01:59:50 CET is
 * 00:59:50Z and 03:00:10 CEST is 01:00:10Z.
 */
static void
test_sacct_jupiter(void **state)
{
	static const struct collect_opts o = {.timezone = "Europe/Berlin"};
	static const char *const want[] = {
	    "{\"jobId\":\"1618998\",\"step\":\"\",\"startTime\":\"2026-03-29T00:59:50Z\","
	    "\"account\":\"e-dev-2026d09-128\",\"user\":\"\",\"partition\":\"booster\",\"gpus\":4,"
	    "\"cpus\":288,\"memMb\":\"0\",\"nodes\":1,\"elapsedS\":\"19\",\"state\":\"COMPLETED\","
	    "\"nodeList\":\"jpbo-024-02\"}",
	    "{\"jobId\":\"1618999\",\"step\":\"\",\"startTime\":\"2026-03-29T01:00:10Z\","
	    "\"account\":\"e-dev-2026d09-128\",\"user\":\"\",\"partition\":\"booster\",\"gpus\":4,"
	    "\"cpus\":288,\"memMb\":\"0\",\"nodes\":1,\"elapsedS\":\"16\",\"state\":\"COMPLETED\","
	    "\"nodeList\":\"jpbo-026-13\"}",
	};

	(void)state;
	check(COLLECT_SACCT, &o, "sacct/jupiter-with-times.psv", NULL, want, N(want));
}

/* One line of sacct output through a fixed header, in UTC unless o says otherwise. */
static void
check_row(const char *header, const char *row, const char *want)
{
	static const struct collect_opts utc = {.timezone = "UTC"};
	char text[1024];
	const char *w[1] = {want};

	snprintf(text, sizeof(text), "%s\n%s\n", header, row);
	check(COLLECT_SACCT, &utc, NULL, text, w, want != NULL);
}

#define H "JobID|User|Account|Partition|State|Start|End|ElapsedRaw|NCPUS|NNodes|AllocTRES"
#define REC(id, step, start, part, gpus, cpus, mem, nodes, el, st) \
	"{\"jobId\":\"" id "\",\"step\":\"" step "\",\"startTime\":\"" start \
	"\",\"account\":\"acct\",\"user\":\"u\",\"partition\":\"" part "\",\"gpus\":" #gpus \
	",\"cpus\":" #cpus ",\"memMb\":\"" #mem "\",\"nodes\":" #nodes ",\"elapsedS\":\"" #el \
	"\",\"state\":\"" st "\",\"nodeList\":\"\"}"

/* The traps of sacct output, one line each. */
static void
test_sacct_traps(void **state)
{
	(void)state;
	/* LUMI: typed alone (GCDs), counted. */
	check_row(H,
	    "77|u|acct|standard-g|RUNNING|2026-05-01T10:00:00|Unknown|60|56|1|"
	    "billing=64,cpu=56,gres/gpu:mi250=8,mem=480G,node=1",
	    REC("77", "", "2026-05-01T10:00:00Z", "standard-g", 8, 56, 491520, 1, 60, "RUNNING"));
	/* Two types summed when no untyped total is given; gres/gpumem is not a GPU. */
	check_row(H,
	    "78|u|acct|p|COMPLETED|2026-05-01T10:00:00|2026-05-01T10:01:00|60|4|1|"
	    "gres/gpu:a100=2,gres/gpu:v100=1,gres/gpumem=80G,mem=1.5G",
	    REC("78", "", "2026-05-01T10:00:00Z", "p", 3, 4, 1536, 1, 60, "COMPLETED"));
	/* A numbered step. */
	check_row(H,
	    "79.0|u|acct||COMPLETED|2026-05-01T10:00:00|2026-05-01T10:01:00|60|4|1|"
	    "cpu=4,gres/gpu=1,mem=1000K",
	    REC("79", "0", "2026-05-01T10:00:00Z", "", 1, 4, 1, 1, 60, "COMPLETED"));
	/* CANCELLED by a user id; Start None but End and elapsed give the start. */
	check_row(H, "80|u|acct|p|CANCELLED by 1000|None|2026-05-01T10:01:00|60|4|1|gres/gpu=2",
	    REC("80", "", "2026-05-01T10:00:00Z", "p", 2, 4, 0, 1, 60, "CANCELLED"));
	/* Cancelled before it started: nothing used, nothing sent. */
	check_row(H, "81|u|acct|p|CANCELLED by 1000|None|2026-05-01T10:01:00|0|0|1|", NULL);
	/* Pending, even with multiple partitions and empty AllocTRES: not sent. */
	check_row(H, "82|u|acct|acc,gpp|PENDING|Unknown|Unknown|0|0|1|", NULL);
	/* A running job, reported again later with more elapsed time: the same record grown. */
	check_row(H, "83|u|acct|p|RUNNING|2026-05-01T10:00:00|Unknown|3600|8|1|gres/gpu=1",
	    REC("83", "", "2026-05-01T10:00:00Z", "p", 1, 8, 0, 1, 3600, "RUNNING"));
	/* Any field order, -p's trailing '|', Elapsed with days, names in any case, %width. */
	check_row("state|ELAPSED|account|jobid%20|partition|start|user|alloctres|",
	    "COMPLETED|1-02:03:04|acct|84|p|2026-05-01T10:00:00|u|cpu=2,node=1|",
	    REC("84", "", "2026-05-01T10:00:00Z", "p", 0, 2, 0, 1, 93784, "COMPLETED"));
	/* AllocCPUS when NCPUS is absent, and a blank line skipped. */
	check_row("JobID|Account|Partition|State|Start|Elapsed|AllocCPUS|AllocTRES|User\n",
	    "85|acct|p|COMPLETED|2026-05-01 10:00:00|05:00|12|gres/gpu=1|u",
	    REC("85", "", "2026-05-01T10:00:00Z", "p", 1, 12, 0, 0, 300, "COMPLETED"));
}

/* --fields output that carries a header anyway: the header line is skipped. */
static void
test_sacct_fields_with_header(void **state)
{
	static const struct collect_opts o = {.timezone = "UTC",
	    .fields = "JobID,Account,Partition,State,Start,ElapsedRaw,AllocTRES"};
	static const char text[] = "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	                           "9|a|p|RUNNING|2026-01-01T00:00:00|5|gres/gpu=1\n";
	static const char *const want[] = {
	    "{\"jobId\":\"9\",\"step\":\"\",\"startTime\":\"2026-01-01T00:00:00Z\","
	    "\"account\":\"a\",\"user\":\"\",\"partition\":\"p\",\"gpus\":1,\"cpus\":0,"
	    "\"memMb\":\"0\",\"nodes\":0,\"elapsedS\":\"5\",\"state\":\"RUNNING\",\"nodeList\":"
	    "\"\"}",
	};

	(void)state;
	check(COLLECT_SACCT, &o, NULL, text, want, N(want));
}

/* One local time in zone tz read as want (an RFC 3339 UTC time), or refused. */
static void
check_local(const char *tz, const char *local, const char *want)
{
	struct collect_opts o = {.timezone = tz};
	char text[512], rec[512], err[512];
	struct collect_out out;
	const char *w[1] = {rec};
	int r;

	snprintf(text, sizeof(text),
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	    "1|a|p|RUNNING|%s|5|\n",
	    local);
	if (want == NULL) {
		collect_out_init(&out);
		r = collect_parse(COLLECT_SACCT, &o, text, strlen(text), &out, err, sizeof(err));
		assert_int_equal(r, -1);
		snprintf(rec, sizeof(rec),
		    "line 2: Start: time \"%s\" does not exist in the site's time zone (a clock "
		    "change skips it)",
		    local);
		assert_string_equal(err, rec);
		assert_int_equal(out.njobs, 0);
		collect_out_cleanup(&out);
		return;
	}
	snprintf(rec, sizeof(rec),
	    "{\"jobId\":\"1\",\"step\":\"\",\"startTime\":\"%s\",\"account\":\"a\",\"user\":\"\","
	    "\"partition\":\"p\",\"gpus\":0,\"cpus\":0,\"memMb\":\"0\",\"nodes\":0,"
	    "\"elapsedS\":\"5\",\"state\":\"RUNNING\",\"nodeList\":\"\"}",
	    want);
	check(COLLECT_SACCT, &o, NULL, text, w, 1);
}

/*
 * Europe/Rome in 2026: CET (+1) until 29 March 02:00, when clocks go to 03:00 CEST
 * (+2); back on 25 October at 03:00 CEST to 02:00 CET, so 02:00-02:59 happens twice
 * (taken first, in CEST) and 02:00-02:59 on 29 March never (refused).
 */
static void
test_timezone_dst(void **state)
{
	(void)state;
	check_local("Europe/Rome", "2026-01-15T12:00:00", "2026-01-15T11:00:00Z");
	check_local("Europe/Rome", "2026-07-15T12:00:00", "2026-07-15T10:00:00Z");
	check_local("Europe/Rome", "2026-03-29T01:59:59", "2026-03-29T00:59:59Z");
	check_local("Europe/Rome", "2026-03-29T02:30:00", NULL);
	check_local("Europe/Rome", "2026-03-29T03:00:00", "2026-03-29T01:00:00Z");
	check_local("Europe/Rome", "2026-10-25T01:59:59", "2026-10-24T23:59:59Z");
	check_local("Europe/Rome", "2026-10-25T02:30:00", "2026-10-25T00:30:00Z");
	check_local("Europe/Rome", "2026-10-25T03:00:00", "2026-10-25T02:00:00Z");
	check_local("Europe/Helsinki", "2026-10-25T03:30:00", "2026-10-25T00:30:00Z");
	check_local("UTC", "2026-03-29T02:30:00", "2026-03-29T02:30:00Z");
	/* A time that carries its offset is not the zone's business. */
	check_local("Europe/Rome", "2026-03-29T02:30:00+01:00", "2026-03-29T01:30:00Z");
	check_local("Europe/Rome", "2026-03-29T02:30:00Z", "2026-03-29T02:30:00Z");
}

/* Elapsed time across the autumn change, a start derived from End - Elapsed. */
static void
test_timezone_end_minus_elapsed(void **state)
{
	static const struct collect_opts o = {.timezone = "Europe/Rome"};
	/* 03:30 CET is 02:30Z; two hours before is 00:30Z (02:30 CEST, the first one). */
	static const char text[] = "JobID|Account|Partition|State|Start|End|ElapsedRaw|AllocTRES\n"
	                           "5|a|p|COMPLETED|Unknown|2026-10-25T03:30:00|7200|gres/gpu=4\n";
	static const char *const want[] = {
	    "{\"jobId\":\"5\",\"step\":\"\",\"startTime\":\"2026-10-25T00:30:00Z\","
	    "\"account\":\"a\",\"user\":\"\",\"partition\":\"p\",\"gpus\":4,\"cpus\":0,"
	    "\"memMb\":\"0\",\"nodes\":0,\"elapsedS\":\"7200\",\"state\":\"COMPLETED\","
	    "\"nodeList\":\"\"}",
	};

	(void)state;
	check(COLLECT_SACCT, &o, NULL, text, want, N(want));
}

/* The CSCS job-completion record: pretty-printed, the fork's TRES keys, no account. */
static void
test_jobcomp_cscs(void **state)
{
	static const struct collect_opts o = {.timezone = "Europe/Zurich"};
	static const char *const want[] = {
	    "{\"jobId\":\"87\",\"step\":\"\",\"startTime\":\"2023-11-20T10:53:40Z\","
	    "\"account\":\"\",\"user\":\"jg\",\"partition\":\"normal\",\"gpus\":0,\"cpus\":4,"
	    "\"memMb\":\"1000\",\"nodes\":1,\"elapsedS\":\"7\",\"state\":\"COMPLETED\","
	    "\"nodeList\":\"jg\"}",
	};

	(void)state;
	check(COLLECT_JOBCOMP, &o, "jobcomp/cscs-test-cluster.json", NULL, want, N(want));
}

/*
 * Job-completion shapes: upstream's tres_alloc by name (typed GPUs), the ids' string
 * alone (1001 = gres/gpu, or the id configured), an array task named as sacct names
 * it, an Elasticsearch hit, epoch seconds, a job that never started (not sent), a
 * record without elapsed (its span).
 */
static void
test_jobcomp_shapes(void **state)
{
	static const struct collect_opts utc = {.timezone = "UTC"};
	static const struct collect_opts id7 = {.timezone = "UTC", .tres_gpu_id = 7};
	static const char text[] =
	    "{\"jobid\":101,\"account\":\"acct\",\"username\":\"u\",\"partition\":\"standard-g\","
	    "\"state\":\"COMPLETED\",\"@start\":\"2026-05-01T10:00:00\",\"elapsed\":60,"
	    "\"total_cpus\":56,\"total_nodes\":1,"
	    "\"tres_alloc\":\"cpu=56,mem=480G,node=1,billing=64,gres/gpu:mi250=8\"}\n"
	    "{\"jobid\":102,\"account\":\"acct\",\"username\":\"u\",\"partition\":\"p\","
	    "\"state\":\"TIMEOUT\",\"@start\":\"2026-05-01T10:00:00\",\"elapsed\":60,"
	    "\"tres_alloc_str\":\"1=4, 2=1000, 3=1260, 4=1, 5=4, 1001=2, 7=9\"}\n"
	    "{\"jobid\":103,\"array_job_id\":100,\"array_task_id\":3,\"account\":\"acct\","
	    "\"username\":\"u\",\"partition\":\"p\",\"state\":\"CANCELLED by 42\","
	    "\"@start\":1777629600,\"elapsed\":60,\"tres_alloc_raw\":\"1=1\"}\n"
	    "{\"_index\":\"slurm\",\"_source\":{\"jobid\":104,\"account\":\"acct\","
	    "\"username\":\"u\",\"partition\":\"p\",\"state\":\"COMPLETED\","
	    "\"@start\":\"2026-05-01T12:00:00+02:00\",\"elapsed\":60}}\n"
	    "{\"jobid\":105,\"state\":\"CANCELLED\",\"@start\":\"1970-01-01T00:00:00\","
	    "\"@end\":\"2026-05-01T10:00:00\",\"elapsed\":0,\"partition\":\"acc,gpp\"}\n"
	    "{\"jobid\":107,\"account\":\"acct\",\"username\":\"u\",\"partition\":\"p\","
	    "\"state\":\"COMPLETED\",\"@start\":\"2026-05-01T10:00:00\","
	    "\"@end\":\"2026-05-01T10:10:00\"}\n";
	static const char *const want[] = {
	    REC("101", "", "2026-05-01T10:00:00Z", "standard-g", 8, 56, 491520, 1, 60, "COMPLETED"),
	    REC("102", "", "2026-05-01T10:00:00Z", "p", 2, 4, 1000, 1, 60, "TIMEOUT"),
	    REC("100_3", "", "2026-05-01T10:00:00Z", "p", 0, 1, 0, 0, 60, "CANCELLED"),
	    REC("104", "", "2026-05-01T10:00:00Z", "p", 0, 0, 0, 0, 60, "COMPLETED"),
	    REC("107", "", "2026-05-01T10:00:00Z", "p", 0, 0, 0, 0, 600, "COMPLETED"),
	};
	static const char numeric[] = "{\"jobid\":106,\"account\":\"acct\",\"username\":\"u\","
	                              "\"partition\":\"p\",\"state\":\"COMPLETED\","
	                              "\"@start\":\"2026-05-01T10:00:00\",\"elapsed\":60,"
	                              "\"tres_alloc_str\":\"1=4, 1001=2, 7=9\"}";
	static const char *const want7[] = {
	    REC("106", "", "2026-05-01T10:00:00Z", "p", 9, 4, 0, 0, 60, "COMPLETED"),
	};

	(void)state;
	check(COLLECT_JOBCOMP, &utc, NULL, text, want, N(want));
	check(COLLECT_JOBCOMP, &id7, NULL, numeric, want7, N(want7));
}

/* LEONARDO's constructed DCGM scrape: three metrics of one GPU merged, mJ as uJ. */
static void
test_dcgm_leonardo(void **state)
{
	static const struct collect_opts o = {.scrape_time = SCRAPE};
	static const char *const want[] = {
	    "{\"jobId\":\"48411710\",\"host\":\"lrdn0263\",\"gpu\":\"0\","
	    "\"time\":\"2026-11-21T08:00:00Z\",\"utilizationPct\":97,\"powerW\":287.411,"
	    "\"energyUj\":\"5214877339000\"}",
	};

	(void)state;
	check(COLLECT_DCGM, &o, "dcgm/leonardo-node-constructed.prom", NULL, want, N(want));
}

/* The T4 scrape: utilization only, no job label. */
static void
test_dcgm_t4(void **state)
{
	static const struct collect_opts o = {.scrape_time = SCRAPE};
	static const char *const want[] = {
	    "{\"jobId\":\"\",\"host\":\"ip-10-200-3-41\",\"gpu\":\"0\","
	    "\"time\":\"2026-11-21T08:00:00Z\",\"utilizationPct\":0}",
	};

	(void)state;
	check(COLLECT_DCGM, &o, "dcgm/real-t4.prom", NULL, want, N(want));
}

/*
 * DCGM traps: `hostname` on newer builds, the job label configured, escaped label
 * values, comments and blank lines, a timestamp after the value, NaN absent, two GPUs
 * interleaved, a MIG instance, other metrics skipped.
 */
static void
test_dcgm_traps(void **state)
{
	static const struct collect_opts o = {.scrape_time = SCRAPE, .job_label = "jobid"};
	static const char text[] =
	    "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
	    "\n"
	    "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",hostname=\"n1\",jobid=\"7\",x=\"a\\\"b\\\\c\\nd\"} 50\n"
	    "DCGM_FI_DEV_GPU_UTIL{gpu=\"1\",hostname=\"n1\",jobid=\"8\"} 25.5\n"
	    "DCGM_FI_DEV_FB_USED{gpu=\"0\",hostname=\"n1\",jobid=\"7\"} 40960\n"
	    "DCGM_FI_DEV_POWER_USAGE{gpu=\"1\",hostname=\"n1\",jobid=\"8\"} NaN\n"
	    "DCGM_FI_DEV_SM_CLOCK{gpu=\"0\",hostname=\"n1\"} 1410\n"
	    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu=\"1\",hostname=\"n1\",jobid=\"8\"} 1.5e3\n"
	    "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",hostname=\"n2\",hpc_job=\"9\",jobid=\"\"} 1 "
	    "1779616800123\n"
	    "DCGM_FI_DEV_GPU_UTIL{gpu=\"2\",GPU_I_ID=\"3\",hostname=\"n1\"} 10\n";
	static const char *const want[] = {
	    "{\"jobId\":\"7\",\"host\":\"n1\",\"gpu\":\"0\",\"time\":\"2026-11-21T08:00:00Z\","
	    "\"utilizationPct\":50,\"memoryUsedMib\":\"40960\"}",
	    "{\"jobId\":\"8\",\"host\":\"n1\",\"gpu\":\"1\",\"time\":\"2026-11-21T08:00:00Z\","
	    "\"utilizationPct\":25.5,\"energyUj\":\"1500000\"}",
	    "{\"jobId\":\"\",\"host\":\"n2\",\"gpu\":\"0\",\"time\":\"2026-05-24T10:00:00.123Z\","
	    "\"utilizationPct\":1}",
	    "{\"jobId\":\"\",\"host\":\"n1\",\"gpu\":\"2/3\",\"time\":\"2026-11-21T08:00:00Z\","
	    "\"utilizationPct\":10}",
	};
	static const struct collect_opts dflt = {.scrape_time = SCRAPE};
	static const char hpc[] = "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",Hostname=\"n\",hpc_job=\"5\","
	                          "jobid=\"6\"} 3\n"
	                          "DCGM_FI_DEV_GPU_UTIL{gpu=\"1\",Hostname=\"n\",hpc_job=\"\","
	                          "jobid=\"6\"} 4\n";
	static const char *const want_hpc[] = {
	    "{\"jobId\":\"5\",\"host\":\"n\",\"gpu\":\"0\",\"time\":\"2026-11-21T08:00:00Z\","
	    "\"utilizationPct\":3}",
	    "{\"jobId\":\"6\",\"host\":\"n\",\"gpu\":\"1\",\"time\":\"2026-11-21T08:00:00Z\","
	    "\"utilizationPct\":4}",
	};

	(void)state;
	check(COLLECT_DCGM, &o, NULL, text, want, N(want));
	check(COLLECT_DCGM, &dflt, NULL, hpc, want_hpc, N(want_hpc));
}

/* The AMD exporter's documentation line is gpu_clock: no metric of ours, no sample. */
static void
test_amd_exporter_doc(void **state)
{
	static const struct collect_opts o = {.scrape_time = SCRAPE};

	(void)state;
	check(COLLECT_AMD, &o, "amd/device-metrics-exporter-doc.prom", NULL, NULL, 0);
}

/* The AMD exporter's metrics: energy already in uJ, power by preference, VRAM in MiB. */
static void
test_amd_exporter(void **state)
{
	static const struct collect_opts o = {.scrape_time = SCRAPE};
	static const char text[] =
	    "gpu_average_package_power{gpu_id=\"0\",hostname=\"nid005000\",job_id=\"12\"} 180\n"
	    "gpu_power_usage{gpu_id=\"0\",hostname=\"nid005000\",job_id=\"12\"} 237\n"
	    "gpu_energy_consumed{gpu_id=\"0\",hostname=\"nid005000\",job_id=\"12\"} "
	    "123456789012\n"
	    "gpu_gfx_activity{gpu_id=\"0\",hostname=\"nid005000\",job_id=\"12\"} 88\n"
	    "gpu_used_vram{gpu_id=\"0\",hostname=\"nid005000\",job_id=\"12\"} 32768\n"
	    "gpu_average_package_power{gpu_id=\"1\",hostname=\"nid005000\",job_id=\"12\"} 0\n";
	static const char *const want[] = {
	    "{\"jobId\":\"12\",\"host\":\"nid005000\",\"gpu\":\"0\","
	    "\"time\":\"2026-11-21T08:00:00Z\",\"utilizationPct\":88,"
	    "\"memoryUsedMib\":\"32768\",\"powerW\":237,\"energyUj\":\"123456789012\"}",
	    "{\"jobId\":\"12\",\"host\":\"nid005000\",\"gpu\":\"1\","
	    "\"time\":\"2026-11-21T08:00:00Z\",\"powerW\":0}",
	};

	(void)state;
	check(COLLECT_AMD, &o, NULL, text, want, N(want));
}

/* rocm-smi on MI250X: power on the primary dies; the secondary ones have none, not 0. */
static void
test_rocm_smi_mi250(void **state)
{
	static const struct collect_opts o = {.scrape_time = SCRAPE, .host = "nid005000"};
	static const char *const want[] = {
	    "{\"jobId\":\"\",\"host\":\"nid005000\",\"gpu\":\"0\","
	    "\"time\":\"2026-11-21T08:00:00Z\",\"powerW\":237}",
	    "{\"jobId\":\"\",\"host\":\"nid005000\",\"gpu\":\"1\","
	    "\"time\":\"2026-11-21T08:00:00Z\"}",
	    "{\"jobId\":\"\",\"host\":\"nid005000\",\"gpu\":\"2\","
	    "\"time\":\"2026-11-21T08:00:00Z\",\"powerW\":230}",
	    "{\"jobId\":\"\",\"host\":\"nid005000\",\"gpu\":\"3\","
	    "\"time\":\"2026-11-21T08:00:00Z\"}",
	};

	(void)state;
	check(COLLECT_AMD, &o, "amd/rocm-smi-mi250-power.txt", NULL, want, N(want));
	check(COLLECT_ROCM_SMI, &o, "amd/rocm-smi-mi250-power.txt", NULL, want, N(want));
	assert_int_equal(
	    allot__v1__gpu_sample__descriptor.n_fields, 8); /* the oneofs this test relies on */
}

/* rocm-smi's other keys: use, VRAM bytes as MiB, accumulated energy. */
static void
test_rocm_smi_keys(void **state)
{
	static const struct collect_opts o = {.scrape_time = SCRAPE, .host = "n"};
	static const char text[] = "========== ROCm System Management Interface ==========\n"
	                           "GPU[0]\t\t: GPU use (%): 42\n"
	                           "GPU[0]\t\t: VRAM Total Used Memory (B): 3221225472\n"
	                           "GPU[0]\t\t: Accumulated Energy (uJ): 98765.4\n"
	                           "GPU[0]\t\t: Card series: Instinct MI250X\n"
	                           "================= End of ROCm SMI Log ================\n";
	static const char *const want[] = {
	    "{\"jobId\":\"\",\"host\":\"n\",\"gpu\":\"0\",\"time\":\"2026-11-21T08:00:00Z\","
	    "\"utilizationPct\":42,\"memoryUsedMib\":\"3072\",\"energyUj\":\"98765\"}",
	};

	(void)state;
	check(COLLECT_ROCM_SMI, &o, NULL, text, want, N(want));
	/* Told from exporter text by content, whatever rocm-smi printed first. */
	check(COLLECT_AMD, &o, NULL, "WARNING: AMD GPU device(s) is/are in a low-power state\n",
	    NULL, 0);
	check(COLLECT_AMD, &o, NULL,
	    "WARNING: low-power state\nGPU[0]\t\t: GPU use (%): 42\n"
	    "GPU[0]\t\t: VRAM Total Used Memory (B): 3221225472\n"
	    "GPU[0]\t\t: Accumulated Energy (uJ): 98765.4\n",
	    want, N(want));
}

/*
 * NodeList (sacct) and nodes (jobcomp): the job's hostlist, sent as it is with the
 * allocation record only (a step's is not sent); "None assigned" is none; a list
 * that is not a hostlist, or names more nodes than allotd takes, is refused.
 */
static void
test_node_lists(void **state)
{
	static const struct collect_opts utc = {.timezone = "UTC"};
	static const char *const want[] = {
	    "{\"jobId\":\"7\",\"step\":\"\",\"startTime\":\"2026-01-01T00:00:00Z\",\"account\":"
	    "\"a\",\"user\":\"\",\"partition\":\"p\",\"gpus\":8,\"cpus\":0,\"memMb\":\"0\","
	    "\"nodes\":2,\"elapsedS\":\"5\",\"state\":\"RUNNING\","
	    "\"nodeList\":\"gpu[001-002]\"}",
	    "{\"jobId\":\"7\",\"step\":\"0\",\"startTime\":\"2026-01-01T00:00:00Z\",\"account\":"
	    "\"a\",\"user\":\"\",\"partition\":\"p\",\"gpus\":8,\"cpus\":0,\"memMb\":\"0\","
	    "\"nodes\":2,\"elapsedS\":\"5\",\"state\":\"RUNNING\",\"nodeList\":\"\"}",
	    "{\"jobId\":\"8\",\"step\":\"\",\"startTime\":\"2026-01-01T00:00:00Z\",\"account\":"
	    "\"a\",\"user\":\"\",\"partition\":\"p\",\"gpus\":1,\"cpus\":0,\"memMb\":\"0\","
	    "\"nodes\":1,\"elapsedS\":\"5\",\"state\":\"RUNNING\",\"nodeList\":\"\"}",
	};
	static const char *const want_jobcomp[] = {
	    "{\"jobId\":\"9\",\"step\":\"\",\"startTime\":\"2026-05-01T10:00:00Z\",\"account\":"
	    "\"a\",\"user\":\"\",\"partition\":\"p\",\"gpus\":0,\"cpus\":0,\"memMb\":\"0\","
	    "\"nodes\":0,\"elapsedS\":\"60\",\"state\":\"COMPLETED\","
	    "\"nodeList\":\"nid[001-004],login1\"}",
	};

	(void)state;
	check(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES|NodeList\n"
	    "7|a|p|RUNNING|2026-01-01T00:00:00|5|gres/gpu=8,node=2|gpu[001-002]\n"
	    "7.0|a|p|RUNNING|2026-01-01T00:00:00|5|gres/gpu=8,node=2|gpu[001-002]\n"
	    "8|a|p|RUNNING|2026-01-01T00:00:00|5|gres/gpu=1,node=1|None assigned\n",
	    want, N(want));
	check(COLLECT_JOBCOMP, &utc, NULL,
	    "{\"jobid\":9,\"account\":\"a\",\"partition\":\"p\",\"state\":\"COMPLETED\","
	    "\"@start\":\"2026-05-01T10:00:00\",\"elapsed\":60,\"nodes\":\"nid[001-004],login1\"}"
	    "\n",
	    want_jobcomp, N(want_jobcomp));
	check_error(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES|NodeList\n"
	    "7|a|p|RUNNING|2026-01-01T00:00:00|5||gpu[001-\n",
	    "line 2: node list \"gpu[001-\": character 9: a number of 1 to 9 digits was expected");
	check_error(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES|NodeList\n"
	    "7|a|p|RUNNING|2026-01-01T00:00:00|5||n[1-16385]\n",
	    "line 2: node list \"n[1-16385]\": more than 16384 nodes");
	check_error(COLLECT_JOBCOMP, &utc, NULL,
	    "{\"jobid\":9,\"account\":\"a\",\"partition\":\"p\",\"state\":\"COMPLETED\","
	    "\"@start\":\"2026-05-01T10:00:00\",\"elapsed\":60,\"nodes\":\"a b\"}\n",
	    "line 1: node list \"a b\": character 2: byte ? is not allowed in a node name");
}

/* Bad input: each refused, naming the line and the reason, out left as it was. */
static void
test_bad_input(void **state)
{
	static const struct collect_opts utc = {.timezone = "UTC"};
	static const struct collect_opts scrape = {.scrape_time = SCRAPE};
	static const struct collect_opts fields = {.fields = "JobID,Account"};
	static const struct collect_opts badzone = {.timezone = "Mars/Olympus"};
	static const struct collect_opts pathzone = {.timezone = "../etc/passwd"};
	static const char six_ok[] = "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	                             "1|a|p|RUNNING|2026-01-01T00:00:00|5|\n"
	                             "2|a|p|RUNNING|2026-01-01T00:00:00|5|\n"
	                             "\n"
	                             "3|a|p|RUNNING|2026-01-01T00:00:00|5|\n"
	                             "4|a|p|RUNNING|2026-01-01T00:00:00|5|\n"
	                             "5|a|p|RUNNING|2026-01-01T00:00:00|x|\n";

	(void)state;
	check_error(COLLECT_SACCT, &utc, NULL, six_ok, "line 7: ElapsedRaw: not a number: \"x\"");
	check_error(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	    "1|a|p|RUNNING|2026-01-01T00:00:00|5\n",
	    "line 2: 6 fields where the header names 7");
	check_error(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	    "1|a|p|RUNNING|2026-13-01T00:00:00|5|\n",
	    "line 2: Start: not a time: \"2026-13-01T00:00:00\"");
	check_error(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	    "1|a|p|RUNNING|2026-01-01T00:00:00|5|gres/gpu=two\n",
	    "line 2: AllocTRES: TRES gres/gpu: not a count: \"two\"");
	check_error(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	    "1|a|p|RUNNING|2026-01-01T00:00:00|5|mem=12Q\n",
	    "line 2: AllocTRES: TRES mem: not a count: \"12Q\"");
	check_error(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	    "1|a|acc,gpp|RUNNING|2026-01-01T00:00:00|5|\n",
	    "line 2: partition \"acc,gpp\" names several partitions: only a pending job may");
	check_error(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	    "1|a|p|COMPLETED|Unknown|5|\n",
	    "line 2: no start time for a job that ran 5 s, and no end time to derive it from");
	check_error(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|Elapsed|AllocTRES\n"
	    "1|a|p|COMPLETED|2026-01-01T00:00:00|1:61|\n",
	    "line 2: Elapsed: not a duration: \"1:61\"");
	check_error(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	    ".batch|a|p|COMPLETED|2026-01-01T00:00:00|5|\n",
	    "line 2: JobID: no job id in \".batch\"");
	check_error(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	    "1|a|p|RUNNING|2026-01-01T00:00:00|5|gres/gpu=2000000\n",
	    "line 2: GPU count 2000000 is out of range");
	check_error(COLLECT_SACCT, &utc, NULL,
	    "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	    "1|\xff|p|RUNNING|2026-01-01T00:00:00|5|\n",
	    "line 2: account: not UTF-8 text");
	check_error(COLLECT_DCGM, &scrape, NULL,
	    "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",Hostname=\"\xc0\x80\"} 1\n",
	    "line 1: DCGM_FI_DEV_GPU_UTIL: a label value is not UTF-8 text");
	check_error(COLLECT_SACCT, &fields, NULL, "1|a\n",
	    "--fields: no Partition field: add it to sacct's --format");
	check_error(COLLECT_SACCT, &badzone, NULL, "", "unknown time zone \"Mars/Olympus\"");
	check_error(COLLECT_SACCT, &pathzone, NULL, "",
	    "time zone \"../etc/passwd\" is not an IANA zone name");
	check_error(COLLECT_JOBCOMP, &utc, NULL, "{\"jobid\":1,\"elapsed\":0}\n{\"jobid\":",
	    "line 2: unexpected token near end of file");
	check_error(COLLECT_JOBCOMP, &utc, NULL, "\n\n{\"jobid\":1,\n\"elapsed\":\"5\"}",
	    "line 3: elapsed: not a number of seconds");
	check_error(COLLECT_JOBCOMP, &utc, NULL, "[1]", "line 1: a record is a JSON object");
	check_error(COLLECT_JOBCOMP, &utc, NULL,
	    "{\"jobid\":1,\"elapsed\":5,\"@start\":999999999999999}",
	    "line 1: start time 999999999999999 is out of range");
	check_error(COLLECT_JOBCOMP, &utc, NULL, "{\"elapsed\":5}",
	    "line 1: jobid: missing or not a job id");
	check_error(COLLECT_JOBCOMP, &utc, NULL,
	    "{\"jobid\":1,\"elapsed\":5,\"@start\":\"2026-01-01T00:00:00\","
	    "\"tres_alloc_str\":\"1=4,x=2\"}",
	    "line 1: tres_alloc_str: TRES id \"x\" is not a number");
	check_error(COLLECT_DCGM, &scrape, NULL,
	    "# c\nDCGM_FI_DEV_GPU_UTIL{gpu=\"0\",Hostname=\"n\"} 1\n"
	    "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",Hostname=\"n\"} 2\n",
	    "line 3: DCGM_FI_DEV_GPU_UTIL: a second value for host n GPU 0");
	check_error(COLLECT_DCGM, &scrape, NULL, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 1\n",
	    "line 1: DCGM_FI_DEV_GPU_UTIL: no Hostname or hostname label");
	check_error(COLLECT_DCGM, &scrape, NULL, "DCGM_FI_DEV_GPU_UTIL{Hostname=\"n\"} 1\n",
	    "line 1: DCGM_FI_DEV_GPU_UTIL: no gpu label");
	check_error(COLLECT_DCGM, &scrape, NULL, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",Hostname=\"n} 1\n",
	    "line 1: label Hostname: unterminated value");
	check_error(COLLECT_DCGM, &scrape, NULL, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",x=\"a\\",
	    "line 1: label x: unterminated value");
	check_error(COLLECT_DCGM, &scrape, NULL,
	    "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",Hostname=\"n\"} 0x10\n",
	    "line 1: DCGM_FI_DEV_GPU_UTIL: not a value: \"0x10\"");
	check_error(COLLECT_DCGM, &scrape, NULL,
	    "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",Hostname=\"n\"} 1 soon\n",
	    "line 1: DCGM_FI_DEV_GPU_UTIL: not a timestamp: \"soon\"");
	check_error(COLLECT_DCGM, &scrape, NULL,
	    "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",Hostname=\"n\"} 101\n",
	    "line 1: DCGM_FI_DEV_GPU_UTIL: 101 is not a percentage");
	check_error(COLLECT_DCGM, &scrape, NULL,
	    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu=\"0\",Hostname=\"n\"} "
	    "9223372036854775807\n",
	    "line 1: DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: 9223372036854775807 is out of range");
	check_error(COLLECT_ROCM_SMI, &scrape, NULL, "GPU[0] : GPU use (%): 5\n",
	    "rocm-smi output names no host: the host must be given");
	check_error(COLLECT_ROCM_SMI, &(struct collect_opts){.host = "n", .scrape_time = SCRAPE},
	    NULL, "====\nGPU[0] : Average Graphics Package Power (W): lots\n",
	    "line 2: Average Graphics Package Power (W): not a number: \"lots\"");
	check_error(COLLECT_DCGM, &(struct collect_opts){.scrape_time = "yesterday"}, NULL, "",
	    "scrape time \"yesterday\" is not an RFC 3339 time");
}

/* The zone is the call's: TZ is as it was after a parse, and after a failed one. */
static void
test_timezone_restored(void **state)
{
	static const struct collect_opts rome = {.timezone = "Europe/Rome"};
	static const char text[] = "JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
	                           "1|a|p|RUNNING|2026-03-29T02:30:00|5|\n";
	struct collect_out out;
	char err[256];

	(void)state;
	assert_int_equal(setenv("TZ", "America/New_York", 1), 0);
	collect_out_init(&out);
	assert_int_equal(
	    collect_parse(COLLECT_SACCT, &rome, text, strlen(text), &out, err, sizeof(err)), -1);
	assert_string_equal(getenv("TZ"), "America/New_York");
	assert_int_equal(unsetenv("TZ"), 0);
	assert_int_equal(
	    collect_parse(COLLECT_SACCT, &rome, text, strlen(text), &out, err, sizeof(err)), -1);
	assert_null(getenv("TZ"));
	collect_out_cleanup(&out);
}

static void
test_format_names(void **state)
{
	enum collect_format f;

	(void)state;
	assert_int_equal(collect_format_parse("sacct", &f), 0);
	assert_int_equal(f, COLLECT_SACCT);
	assert_int_equal(collect_format_parse("rocm-smi", &f), 0);
	assert_int_equal(f, COLLECT_ROCM_SMI);
	assert_int_equal(collect_format_parse("SACCT", &f), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sacct_mn5),
	    cmocka_unit_test(test_sacct_no_start_field),
	    cmocka_unit_test(test_sacct_leonardo),
	    cmocka_unit_test(test_sacct_jupiter),
	    cmocka_unit_test(test_sacct_traps),
	    cmocka_unit_test(test_node_lists),
	    cmocka_unit_test(test_sacct_fields_with_header),
	    cmocka_unit_test(test_timezone_dst),
	    cmocka_unit_test(test_timezone_end_minus_elapsed),
	    cmocka_unit_test(test_timezone_restored),
	    cmocka_unit_test(test_jobcomp_cscs),
	    cmocka_unit_test(test_jobcomp_shapes),
	    cmocka_unit_test(test_dcgm_leonardo),
	    cmocka_unit_test(test_dcgm_t4),
	    cmocka_unit_test(test_dcgm_traps),
	    cmocka_unit_test(test_amd_exporter_doc),
	    cmocka_unit_test(test_amd_exporter),
	    cmocka_unit_test(test_rocm_smi_mi250),
	    cmocka_unit_test(test_rocm_smi_keys),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_format_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
