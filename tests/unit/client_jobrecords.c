/*
 * Unit tests for clients/cli/jobrecords.c: JSON lines to job records, with
 * the line of each, and batch ids that depend on the content only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "jobrecords.h"

/* Reads text through jobrecords_read; returns its result. */
static int
read_text(const char *text, struct jobrecords *recs, char *err, size_t errlen)
{
	FILE *in = fmemopen((void *)(uintptr_t)text, strlen(text), "r");
	int r;

	assert_non_null(in);
	r = jobrecords_read(in, recs, err, errlen);
	fclose(in);
	return r;
}

static const char good[] =
    "# leonardo, sacct\n"
    "{\"jobId\": \"100\", \"startTime\": \"2026-03-01T10:00:00Z\", \"account\": \"acme\","
    " \"gpus\": 4, \"elapsedS\": \"3600\"}\n"
    "\n"
    "   \t\n"
    "  # indented comment\n"
    "{\"job_id\": \"100\", \"step\": \"batch\", \"elapsedS\": 60, \"unknown\": true}\n"
    "{\"jobId\": \"101\"}"; /* no final newline */

static void
test_read(void **state)
{
	struct jobrecords recs;
	char err[256];

	(void)state;
	jobrecords_init(&recs);
	if (read_text(good, &recs, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(recs.n, 3);
	assert_string_equal(recs.records[0]->job_id, "100");
	assert_int_equal(recs.records[0]->gpus, 4);
	assert_true(recs.records[0]->elapsed_s == 3600);
	assert_int_equal(recs.lines[0], 2);
	assert_string_equal(recs.records[1]->step, "batch");
	assert_true(recs.records[1]->elapsed_s == 60);
	assert_int_equal(recs.lines[1], 6);
	assert_string_equal(recs.records[2]->job_id, "101");
	assert_int_equal(recs.lines[2], 7);
	jobrecords_cleanup(&recs);
	assert_int_equal(recs.n, 0);
}

static void
test_bad_line(void **state)
{
	struct jobrecords recs;
	char err[256];

	(void)state;
	jobrecords_init(&recs);
	assert_int_equal(
	    read_text("{\"jobId\": \"1\"}\n\n{\"gpus\": \"many\"}\n{}\n", &recs, err, sizeof(err)),
	    -1);
	assert_memory_equal(err, "line 3: ", 8);
	jobrecords_cleanup(&recs);

	jobrecords_init(&recs);
	assert_int_equal(read_text("[1, 2]\n", &recs, err, sizeof(err)), -1);
	assert_memory_equal(err, "line 1: ", 8);
	jobrecords_cleanup(&recs);
}

static void
test_batch_id(void **state)
{
	struct jobrecords recs;
	char err[256], a[JOBRECORDS_BATCH_ID_LEN + 1], b[JOBRECORDS_BATCH_ID_LEN + 1];
	char c[JOBRECORDS_BATCH_ID_LEN + 1], d[JOBRECORDS_BATCH_ID_LEN + 1];
	char longsite[80];

	(void)state;
	jobrecords_init(&recs);
	if (read_text(good, &recs, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(jobrecords_batch_id("leonardo", recs.records, recs.n, a, sizeof(a)), 0);
	assert_int_equal(jobrecords_batch_id("leonardo", recs.records, recs.n, b, sizeof(b)), 0);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), JOBRECORDS_BATCH_ID_LEN);
	assert_memory_equal(a, "leonardo-", 9);
	assert_int_equal(strspn(a + 9, "0123456789abcdef"), JOBRECORDS_BATCH_ID_LEN - 9);

	/* Other records, another site: another id. */
	assert_int_equal(jobrecords_batch_id("leonardo", recs.records, 2, c, sizeof(c)), 0);
	assert_string_not_equal(a, c);
	assert_int_equal(jobrecords_batch_id("lumi", recs.records, recs.n, d, sizeof(d)), 0);
	assert_string_not_equal(a + 9, d + 5);

	/* A site name longer than the id is cut. */
	memset(longsite, 'x', sizeof(longsite) - 1);
	longsite[sizeof(longsite) - 1] = '\0';
	assert_int_equal(jobrecords_batch_id(longsite, recs.records, recs.n, d, sizeof(d)), 0);
	assert_int_equal(strlen(d), JOBRECORDS_BATCH_ID_LEN);
	jobrecords_cleanup(&recs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read),
	    cmocka_unit_test(test_bad_line),
	    cmocka_unit_test(test_batch_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
