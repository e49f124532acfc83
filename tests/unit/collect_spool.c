/*
 * Unit tests for clients/collect/spool.c and backoff.c: batches written and
 * listed in order, acknowledged and refused, what a crash between write and
 * rename leaves, the size bound, the lock; the backoff's bounds.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backoff.h"
#include "spool.h"

struct fixture {
	char dir[256];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/unit-spool-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static void
rm_rf(const char *path)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	rm_rf(f->dir);
	free(f);
	return 0;
}

static bool
exists(const char *dir, const char *name)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) == 0;
}

static void
write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char p[512];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_non_null(fp = fopen(p, "w"));
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

static uint64_t
put(struct spool *s, enum spool_kind kind, uint32_t n, const char *text)
{
	char err[256];
	uint64_t seq = 0;

	assert_int_equal(
	    spool_put(s, kind, n, (const uint8_t *)text, strlen(text), &seq, err, sizeof(err)), 0);
	return seq;
}

static void
assert_payload(struct spool *s, const struct spool_entry *e, const char *text)
{
	uint8_t *p;
	size_t len;
	char err[256];

	assert_int_equal(spool_read(s, e, &p, &len, err, sizeof(err)), 0);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(p, text, len);
	free(p);
}

static void
test_put_lists_in_order(void **state)
{
	struct fixture *f = *state;
	struct spool_entry e;
	struct spool_stats st;
	char err[256];
	struct spool *s = spool_open(f->dir, 0, err, sizeof(err));

	assert_non_null(s);
	assert_int_equal(put(s, SPOOL_JOBS, 10, "jobs-a"), 1);
	assert_int_equal(put(s, SPOOL_METRICS, 5, "m-a"), 2);
	assert_int_equal(put(s, SPOOL_JOBS, 20, "jobs-b"), 3);
	assert_int_equal(put(s, SPOOL_JOBS, 30, "jobs-c"), 4);
	spool_get_stats(s, -1, &st);
	assert_int_equal(st.batches, 4);
	assert_int_equal(st.records, 65);
	/* 64-byte header each. */
	assert_int_equal(st.bytes, 4 * 64 + 6 + 3 + 6 + 6);
	assert_true(st.oldest_ms > 0);
	spool_get_stats(s, SPOOL_JOBS, &st);
	assert_int_equal(st.batches, 3);
	assert_int_equal(st.records, 60);
	spool_free(s);

	/* Reopened, the same batches in the same order. */
	assert_non_null(s = spool_open(f->dir, 0, err, sizeof(err)));
	assert_true(spool_nth(s, SPOOL_JOBS, 0, &e));
	assert_int_equal(e.seq, 1);
	assert_int_equal(e.nrecords, 10);
	assert_payload(s, &e, "jobs-a");
	assert_true(spool_nth(s, SPOOL_JOBS, 1, &e));
	assert_int_equal(e.seq, 3);
	assert_payload(s, &e, "jobs-b");
	assert_true(spool_nth(s, SPOOL_JOBS, 2, &e));
	assert_int_equal(e.seq, 4);
	assert_false(spool_nth(s, SPOOL_JOBS, 3, &e));
	assert_true(spool_head(s, SPOOL_METRICS, &e));
	assert_int_equal(e.seq, 2);
	assert_int_equal(e.kind, SPOOL_METRICS);
	assert_payload(s, &e, "m-a");
	/* Numbers go on from the highest, never reused. */
	assert_int_equal(put(s, SPOOL_JOBS, 1, "jobs-d"), 5);
	spool_free(s);
}

static void
test_ack_removes(void **state)
{
	struct fixture *f = *state;
	struct spool_entry e;
	struct spool_stats st;
	char err[256];
	struct spool *s = spool_open(f->dir, 0, err, sizeof(err));

	assert_non_null(s);
	put(s, SPOOL_JOBS, 1, "one");
	put(s, SPOOL_JOBS, 2, "two");
	put(s, SPOOL_METRICS, 3, "three");
	assert_true(exists(f->dir, "0000000000000001.jobs"));
	/* Only the head may be acknowledged. */
	assert_int_equal(spool_ack(s, SPOOL_JOBS, 2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not the oldest"));
	assert_int_equal(spool_ack(s, SPOOL_METRICS, 1, err, sizeof(err)), -1);
	assert_int_equal(spool_ack(s, SPOOL_JOBS, 1, err, sizeof(err)), 0);
	assert_false(exists(f->dir, "0000000000000001.jobs"));
	assert_true(spool_head(s, SPOOL_JOBS, &e));
	assert_int_equal(e.seq, 2);
	spool_get_stats(s, -1, &st);
	assert_int_equal(st.batches, 2);
	assert_int_equal(st.records, 5);
	assert_int_equal(spool_ack(s, SPOOL_JOBS, 2, err, sizeof(err)), 0);
	assert_int_equal(spool_ack(s, SPOOL_METRICS, 3, err, sizeof(err)), 0);
	spool_get_stats(s, -1, &st);
	assert_int_equal(st.batches, 0);
	assert_int_equal(st.records, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.oldest_ms, 0);
	assert_false(spool_head(s, SPOOL_JOBS, &e));
	spool_free(s);
	assert_non_null(s = spool_open(f->dir, 0, err, sizeof(err)));
	spool_get_stats(s, -1, &st);
	assert_int_equal(st.batches, 0);
	spool_free(s);
}

/* Many batches through one queue: acks stay in order across the array's compaction. */
static void
test_many_in_order(void **state)
{
	struct fixture *f = *state;
	struct spool_entry e;
	char err[256], text[32];
	struct spool *s = spool_open(f->dir, 0, err, sizeof(err));

	assert_non_null(s);
	for (int i = 1; i <= 300; i++) {
		snprintf(text, sizeof(text), "batch %d", i);
		put(s, SPOOL_JOBS, (uint32_t)i, text);
		if (i % 3 == 0) {
			assert_true(spool_head(s, SPOOL_JOBS, &e));
			assert_int_equal(spool_ack(s, SPOOL_JOBS, e.seq, err, sizeof(err)), 0);
		}
	}
	/* 100 acknowledged: the head is batch 101. */
	for (int i = 101; i <= 300; i++) {
		assert_true(spool_head(s, SPOOL_JOBS, &e));
		assert_int_equal(e.seq, (uint64_t)i);
		snprintf(text, sizeof(text), "batch %d", i);
		assert_payload(s, &e, text);
		assert_int_equal(spool_ack(s, SPOOL_JOBS, e.seq, err, sizeof(err)), 0);
	}
	assert_false(spool_head(s, SPOOL_JOBS, &e));
	spool_free(s);
}

/*
 * A crash after the write and before the rename leaves a temporary file: it is
 * deleted at the next open and never listed. A file cut short under a batch's
 * name (not something the spool writes, but a disk can) goes to rejected/.
 */
static void
test_crash_between_write_and_rename(void **state)
{
	struct fixture *f = *state;
	struct spool_entry e;
	struct spool_stats st;
	char err[256];
	struct spool *s = spool_open(f->dir, 0, err, sizeof(err));

	assert_non_null(s);
	put(s, SPOOL_JOBS, 7, "complete");
	spool_free(s);
	write_file(f->dir, ".tmp-0000000000000002", "ALLOTSPL\001\000", 10);
	write_file(f->dir, "0000000000000003.jobs", "ALLOTSPL", 8);
	assert_non_null(s = spool_open(f->dir, 0, err, sizeof(err)));
	assert_false(exists(f->dir, ".tmp-0000000000000002"));
	assert_false(exists(f->dir, "0000000000000003.jobs"));
	assert_true(exists(f->dir, "rejected/0000000000000003.jobs"));
	assert_true(exists(f->dir, "rejected/0000000000000003.jobs.reason"));
	spool_get_stats(s, -1, &st);
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.records, 7);
	assert_true(spool_head(s, SPOOL_JOBS, &e));
	assert_payload(s, &e, "complete");
	assert_int_equal(spool_rejected(s), 1);
	/* The rejected number is not reused. */
	assert_int_equal(put(s, SPOOL_JOBS, 1, "next"), 4);
	spool_free(s);
}

/* A byte changed after the write: spool_read says corrupt, the sender rejects it. */
static void
test_digest_catches_corruption(void **state)
{
	struct fixture *f = *state;
	struct spool_entry e;
	char err[256], p[512];
	uint8_t *buf;
	size_t len;
	int fd;
	struct spool *s = spool_open(f->dir, 0, err, sizeof(err));

	assert_non_null(s);
	put(s, SPOOL_METRICS, 2, "payload bytes");
	assert_true(spool_head(s, SPOOL_METRICS, &e));
	snprintf(p, sizeof(p), "%s/0000000000000001.metrics", f->dir);
	assert_true((fd = open(p, O_WRONLY)) >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 64 + 3), 1);
	close(fd);
	assert_int_equal(spool_read(s, &e, &buf, &len, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "digest"));
	assert_null(buf);
	spool_free(s);
}

static void
test_reject_moves_aside(void **state)
{
	struct fixture *f = *state;
	struct spool_entry e;
	char err[256], p[512], reason[256] = {0};
	FILE *fp;
	struct spool *s = spool_open(f->dir, 0, err, sizeof(err));

	assert_non_null(s);
	put(s, SPOOL_JOBS, 3, "bad");
	put(s, SPOOL_JOBS, 4, "good");
	assert_int_equal(
	    spool_reject(s, SPOOL_JOBS, 1, "invalid_argument: site is required", err, sizeof(err)),
	    0);
	assert_false(exists(f->dir, "0000000000000001.jobs"));
	assert_true(exists(f->dir, "rejected/0000000000000001.jobs"));
	snprintf(p, sizeof(p), "%s/rejected/0000000000000001.jobs.reason", f->dir);
	assert_non_null(fp = fopen(p, "r"));
	assert_non_null(fgets(reason, sizeof(reason), fp));
	fclose(fp);
	assert_string_equal(reason, "invalid_argument: site is required\n");
	assert_true(spool_head(s, SPOOL_JOBS, &e));
	assert_int_equal(e.seq, 2);
	assert_int_equal(spool_rejected(s), 1);
	spool_free(s);
	/* rejected/ is not read back as the queue. */
	assert_non_null(s = spool_open(f->dir, 0, err, sizeof(err)));
	assert_true(spool_head(s, SPOOL_JOBS, &e));
	assert_int_equal(e.seq, 2);
	spool_free(s);
}

static void
test_max_bytes(void **state)
{
	struct fixture *f = *state;
	struct spool_stats st;
	char err[256], big[300];
	uint64_t seq;
	struct spool *s;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	/* 200 bytes: an empty spool still takes a 363-byte batch, so one batch never blocks it. */
	assert_non_null(s = spool_open(f->dir, 200, err, sizeof(err)));
	assert_int_equal(
	    spool_put(s, SPOOL_JOBS, 1, (const uint8_t *)big, strlen(big), &seq, err, sizeof(err)),
	    0);
	assert_int_equal(
	    spool_put(s, SPOOL_JOBS, 1, (const uint8_t *)"small", 5, &seq, err, sizeof(err)),
	    SPOOL_FULL);
	assert_non_null(strstr(err, "full"));
	spool_get_stats(s, -1, &st);
	assert_int_equal(st.batches, 1);
	/* Nothing left behind by the refusal. */
	assert_false(exists(f->dir, ".tmp-0000000000000002"));
	assert_int_equal(spool_ack(s, SPOOL_JOBS, 1, err, sizeof(err)), 0);
	assert_int_equal(put(s, SPOOL_JOBS, 1, "small"), 2);
	/* 69 + 69 = 138 fits in 200; a third (207) does not. */
	assert_int_equal(put(s, SPOOL_JOBS, 1, "small"), 3);
	assert_int_equal(
	    spool_put(s, SPOOL_METRICS, 1, (const uint8_t *)"small", 5, &seq, err, sizeof(err)),
	    SPOOL_FULL);
	spool_set_max_bytes(s, 0);
	assert_int_equal(put(s, SPOOL_METRICS, 1, "small"), 4);
	spool_free(s);
}

static void
test_one_process_per_spool(void **state)
{
	struct fixture *f = *state;
	char err[256];
	struct spool *a = spool_open(f->dir, 0, err, sizeof(err)), *b;

	assert_non_null(a);
	b = spool_open(f->dir, 0, err, sizeof(err));
	assert_null(b);
	assert_non_null(strstr(err, "in use"));
	spool_free(a);
	assert_non_null(b = spool_open(f->dir, 0, err, sizeof(err)));
	spool_free(b);
}

/* Hand-worked ceilings for base 100 ms, max 1000 ms: 100, 200, 400, 800, 1000, 1000. */
static void
test_backoff_bounds(void **state)
{
	static const uint32_t ceilings[] = {100, 200, 400, 800, 1000, 1000, 1000};
	struct backoff b;

	(void)state;
	for (size_t i = 0; i < sizeof(ceilings) / sizeof(ceilings[0]); i++) {
		struct backoff lo, hi;

		backoff_init(&lo, 100, 1000);
		backoff_init(&hi, 100, 1000);
		for (size_t j = 0; j < i; j++) {
			(void)backoff_fail(&lo, 0);
			(void)backoff_fail(&hi, 0);
		}
		/* rnd 0 gives the floor, ceiling/2; rnd = ceiling - ceiling/2 the ceiling. */
		assert_int_equal(backoff_fail(&lo, 0), ceilings[i] / 2);
		assert_int_equal(backoff_fail(&hi, ceilings[i] - ceilings[i] / 2), ceilings[i]);
	}
	/* Any random number stays within the bounds, however long the outage. */
	backoff_init(&b, 100, 1000);
	for (uint32_t i = 0; i < 100000; i++) {
		uint32_t d = backoff_fail(&b, i * 2654435761u);

		assert_true(d >= 50 && d <= 1000);
		if (i >= 4)
			assert_true(d >= 500);
	}
	backoff_reset(&b);
	assert_int_equal(backoff_fail(&b, 0), 50);
	/* Bounds fixed up: max below base, base 0. */
	backoff_init(&b, 0, 0);
	assert_int_equal(b.base_ms, 1);
	assert_int_equal(b.max_ms, 1);
	assert_true(backoff_fail(&b, 12345) <= 1);
	backoff_init(&b, 4000000000u, 4000000000u);
	b.failures = UINT32_MAX - 1;
	assert_true(backoff_fail(&b, 7) <= 4000000000u);
	assert_true(backoff_fail(&b, 7) >= 2000000000u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_put_lists_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ack_removes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crash_between_write_and_rename, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_digest_catches_corruption, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reject_moves_aside, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_process_per_spool, setup, teardown),
	    cmocka_unit_test(test_backoff_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
