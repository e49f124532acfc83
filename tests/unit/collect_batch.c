/*
 * Unit tests for clients/collect/batch.c: batches cut by count and by size, in
 * order, under the ids `allot ingest` derives; batches held in memory while the
 * spool is full and spooled once it has room; JSON lines of both message types;
 * the partitions list, steps following their job.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "batch.h"
#include "jobrecords.h"

struct fixture {
	char dir[256];
	struct spool *spool;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/unit-batch-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_non_null(f->spool = spool_open(f->dir, 0, err, sizeof(err)));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[600];

	spool_free(f->spool);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static Allot__V1__JobRecord *
job(int i)
{
	Allot__V1__JobRecord *r = malloc(sizeof(*r));
	char buf[32];

	assert_non_null(r);
	allot__v1__job_record__init(r);
	snprintf(buf, sizeof(buf), "%d", 1000 + i);
	r->job_id = strdup(buf);
	r->account = strdup("acme");
	r->partition = strdup("boost_usr_prod");
	r->start_time = strdup("2026-03-02T09:00:00Z");
	r->gpus = 1 + i % 4;
	r->elapsed_s = 60 * i;
	return r;
}

/* Decodes the n-th spooled job batch. */
static Allot__V1__IngestRequest *
spooled(struct spool *s, size_t n)
{
	struct spool_entry e;
	uint8_t *buf;
	size_t len;
	char err[256];
	Allot__V1__IngestRequest *req;

	assert_true(spool_nth(s, SPOOL_JOBS, n, &e));
	assert_int_equal(spool_read(s, &e, &buf, &len, err, sizeof(err)), 0);
	req = allot__v1__ingest_request__unpack(NULL, len, buf);
	free(buf);
	assert_non_null(req);
	assert_int_equal(req->n_records, e.nrecords);
	return req;
}

/* 25 records, 10 a batch: 10, 10 and (at the flush) 5, in order, ids from content. */
static void
test_cut_by_count(void **state)
{
	struct fixture *f = *state;
	struct batcher *b = batcher_new(f->spool, "leonardo", 10, 0);
	char err[256], id[JOBRECORDS_BATCH_ID_LEN + 1];
	struct spool_stats st;
	static const size_t sizes[] = {10, 10, 5};
	int next = 0;

	assert_non_null(b);
	for (int i = 0; i < 25; i++)
		assert_int_equal(batcher_add_job(b, job(i), err, sizeof(err)), 0);
	spool_get_stats(f->spool, SPOOL_JOBS, &st);
	assert_int_equal(st.batches, 2);
	assert_int_equal(batcher_pending(b), 5);
	assert_true(batcher_has_partial(b));
	assert_int_equal(batcher_flush(b, err, sizeof(err)), 0);
	assert_false(batcher_has_partial(b));
	assert_int_equal(batcher_spooled(b, SPOOL_JOBS), 25);
	for (size_t n = 0; n < 3; n++) {
		Allot__V1__IngestRequest *req = spooled(f->spool, n);

		assert_string_equal(req->site, "leonardo");
		assert_int_equal(req->n_records, sizes[n]);
		for (size_t i = 0; i < req->n_records; i++) {
			char want[16];

			snprintf(want, sizeof(want), "%d", 1000 + next++);
			assert_string_equal(req->records[i]->job_id, want);
		}
		/* What `allot ingest` would call the same records. */
		assert_int_equal(
		    jobrecords_batch_id("leonardo", req->records, req->n_records, id, sizeof(id)),
		    0);
		assert_string_equal(req->batch_id, id);
		allot__v1__ingest_request__free_unpacked(req, NULL);
	}
	batcher_free(b);
}

/* A byte bound: every batch packs to at most the bound, none is empty. */
static void
test_cut_by_bytes(void **state)
{
	struct fixture *f = *state;
	struct batcher *b = batcher_new(f->spool, "leonardo", 1000, 300);
	struct spool_stats st;
	char err[256];
	size_t total = 0;

	assert_non_null(b);
	for (int i = 0; i < 40; i++)
		assert_int_equal(batcher_add_job(b, job(i), err, sizeof(err)), 0);
	assert_int_equal(batcher_flush(b, err, sizeof(err)), 0);
	spool_get_stats(f->spool, SPOOL_JOBS, &st);
	assert_true(st.batches >= 40 * 50 / 300);
	for (size_t n = 0; n < st.batches; n++) {
		Allot__V1__IngestRequest *req = spooled(f->spool, n);

		assert_true(req->n_records >= 1);
		assert_true(protobuf_c_message_get_packed_size(&req->base) <= 300 + 64);
		total += req->n_records;
		allot__v1__ingest_request__free_unpacked(req, NULL);
	}
	assert_int_equal(total, 40);
	batcher_free(b);
}

/* A full spool: the batch is held, reading should stop, nothing is lost. */
static void
test_full_spool_holds(void **state)
{
	struct fixture *f = *state;
	struct spool_entry e;
	struct spool_stats st;
	struct batcher *b;
	char err[256];

	/* Room for one batch of 5 (about 300 bytes with its header), not two. */
	spool_set_max_bytes(f->spool, 500);
	assert_non_null(b = batcher_new(f->spool, "leonardo", 5, 0));
	for (int i = 0; i < 4; i++)
		assert_int_equal(batcher_add_job(b, job(i), err, sizeof(err)), 0);
	assert_int_equal(batcher_add_job(b, job(4), err, sizeof(err)), 0);
	for (int i = 5; i < 9; i++)
		assert_int_equal(batcher_add_job(b, job(i), err, sizeof(err)), 0);
	assert_int_equal(batcher_add_job(b, job(9), err, sizeof(err)), SPOOL_FULL);
	assert_non_null(strstr(err, "full"));
	assert_true(batcher_full(b));
	assert_int_equal(batcher_pending(b), 5);
	/* More records while full are taken and held too. */
	assert_int_equal(batcher_add_job(b, job(10), err, sizeof(err)), SPOOL_FULL);
	assert_int_equal(batcher_flush(b, err, sizeof(err)), SPOOL_FULL);
	assert_int_equal(batcher_pending(b), 6);
	/* allotd acknowledges the first: room for the held ones. */
	spool_set_max_bytes(f->spool, 0);
	assert_true(spool_head(f->spool, SPOOL_JOBS, &e));
	assert_int_equal(spool_ack(f->spool, SPOOL_JOBS, e.seq, err, sizeof(err)), 0);
	assert_int_equal(batcher_flush(b, err, sizeof(err)), 0);
	assert_false(batcher_full(b));
	assert_int_equal(batcher_pending(b), 0);
	spool_get_stats(f->spool, SPOOL_JOBS, &st);
	assert_int_equal(st.batches, 2);
	assert_int_equal(st.records, 6);
	assert_int_equal(batcher_spooled(b, SPOOL_JOBS), 11);
	batcher_free(b);
}

static void
test_jsonl_both_kinds(void **state)
{
	struct fixture *f = *state;
	static const char text[] =
	    "# a comment\n"
	    "{\"jobId\": \"7\", \"startTime\": \"2026-03-02T09:00:00Z\", \"account\": \"acme\"}\n"
	    "\n"
	    "{\"jobId\": \"7\", \"host\": \"lrdn0001\", \"gpu\": \"0\", \"time\": "
	    "\"2026-03-02T09:00:00Z\", \"powerW\": 250}\n"
	    "{\"jobId\": \"8\"}\n";
	struct batcher *b = batcher_new(f->spool, "leonardo", 100, 0);
	struct spool_stats st;
	char err[256];

	assert_non_null(b);
	assert_int_equal(batch_read_jsonl(b, text, strlen(text), 1, err, sizeof(err)), 0);
	assert_int_equal(batcher_flush(b, err, sizeof(err)), 0);
	/* A line with nothing but a job id is a (bad) job record, for allotd to refuse. */
	spool_get_stats(f->spool, SPOOL_JOBS, &st);
	assert_int_equal(st.records, 2);
	spool_get_stats(f->spool, SPOOL_METRICS, &st);
	assert_int_equal(st.records, 1);
	assert_int_equal(
	    batch_read_jsonl(b, "{\"jobId\": \"9\"}\n{oops\n", 21, 10, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "line 11: "));
	batcher_free(b);
}

/* A record of job id in partition (NULL: "") with step (NULL: the job itself). */
static Allot__V1__JobRecord *
part_job(int id, const char *partition, const char *step)
{
	Allot__V1__JobRecord *r = job(id);

	free(r->partition);
	r->partition = strdup(partition != NULL ? partition : "");
	if (step != NULL)
		r->step = strdup(step);
	return r;
}

/*
 * partitions = acc,boost_usr_prod: jobs of gpp are left out with their steps
 * (empty partition, decided by the job before them), a pending job naming acc
 * among several partitions is kept, a step whose job came earlier than the last
 * job record is decided by its own partition, or kept without one; "" sends all.
 */
static void
test_partitions(void **state)
{
	struct fixture *f = *state;
	struct batcher *b = batcher_new(f->spool, "marenostrum5", 100, 0);
	Allot__V1__IngestRequest *req;
	char err[256];
	static const char *const kept[][2] = {{"1001", ""}, {"1001", "batch"}, {"1003", ""},
	    {"1005", ""}, {"1005", "0"}, {"1002", "extern"}, {"1009", "0"}};

	assert_non_null(b);
	assert_int_equal(batcher_set_partitions(b, "acc,boost_usr_prod"), 0);
	assert_int_equal(batcher_add_job(b, part_job(1, "acc", NULL), err, sizeof(err)), 0);
	assert_int_equal(batcher_add_job(b, part_job(1, NULL, "batch"), err, sizeof(err)), 0);
	assert_int_equal(batcher_add_job(b, part_job(2, "gpp", NULL), err, sizeof(err)), 0);
	assert_int_equal(batcher_add_job(b, part_job(2, NULL, "batch"), err, sizeof(err)), 0);
	assert_int_equal(batcher_add_job(b, part_job(2, NULL, "0"), err, sizeof(err)), 0);
	assert_int_equal(batcher_add_job(b, part_job(3, "gpp,acc", NULL), err, sizeof(err)), 0);
	assert_int_equal(batcher_add_job(b, part_job(4, "accx", NULL), err, sizeof(err)), 0);
	assert_int_equal(
	    batcher_add_job(b, part_job(5, "boost_usr_prod", NULL), err, sizeof(err)), 0);
	assert_int_equal(batcher_add_job(b, part_job(5, NULL, "0"), err, sizeof(err)), 0);
	/* Job 2's step after another job: its own partition decides, none keeps it. */
	assert_int_equal(batcher_add_job(b, part_job(2, "gpp", "batch"), err, sizeof(err)), 0);
	assert_int_equal(batcher_add_job(b, part_job(2, NULL, "extern"), err, sizeof(err)), 0);
	assert_int_equal(batcher_add_job(b, part_job(9, "acc", "0"), err, sizeof(err)), 0);
	assert_int_equal(batcher_flush(b, err, sizeof(err)), 0);
	/* Left out: 2, 2.batch, 2.0, 4, the later 2.batch of gpp. */
	assert_int_equal(batcher_skipped(b), 5);
	assert_int_equal(batcher_spooled(b, SPOOL_JOBS), 7);
	req = spooled(f->spool, 0);
	assert_int_equal(req->n_records, 7);
	for (size_t i = 0; i < req->n_records; i++) {
		assert_string_equal(req->records[i]->job_id, kept[i][0]);
		assert_string_equal(req->records[i]->step, kept[i][1]);
	}
	allot__v1__ingest_request__free_unpacked(req, NULL);
	/* "" sends every partition again. */
	assert_int_equal(batcher_set_partitions(b, ""), 0);
	assert_int_equal(batcher_add_job(b, part_job(6, "gpp", NULL), err, sizeof(err)), 0);
	assert_int_equal(batcher_flush(b, err, sizeof(err)), 0);
	assert_int_equal(batcher_skipped(b), 5);
	assert_int_equal(batcher_spooled(b, SPOOL_JOBS), 8);
	batcher_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_cut_by_count, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cut_by_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_spool_holds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_jsonl_both_kinds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partitions, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
