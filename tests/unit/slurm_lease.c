/*
 * lease: allot-slurm's journal lines and lease files (clients/slurm/lease.h), in a
 * temporary folder.
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

#include "lease.h"

static void
test_lines(void **state)
{
	struct lease_entry e, back;
	char line[1024], err[256];

	(void)state;
	assert_int_equal(lease_parse_line("start leasy 17 1200000 1 1 1 1200 boost_usr_prod ada",
	                     &e, err, sizeof(err)),
	    0);
	assert_true(e.start);
	assert_string_equal(e.project, "leasy");
	assert_string_equal(e.job_id, "17");
	assert_int_equal(e.cost_units, 1200000);
	assert_int_equal(e.limit_s, 1200);
	assert_string_equal(e.partition, "boost_usr_prod");
	assert_string_equal(e.user, "ada");
	assert_int_equal(lease_format_line(&e, line, sizeof(line)), 53);
	assert_string_equal(line, "start leasy 17 1200000 1 1 1 1200 boost_usr_prod ada\n");
	line[strcspn(line, "\n")] = '\0';
	assert_int_equal(lease_parse_line(line, &back, err, sizeof(err)), 0);
	assert_memory_equal(&e, &back, sizeof(e));

	assert_int_equal(lease_parse_line("end 17 65", &e, err, sizeof(err)), 0);
	assert_false(e.start);
	assert_int_equal(e.elapsed_s, 65);
	assert_int_equal(lease_format_line(&e, line, sizeof(line)), 10);
	assert_string_equal(line, "end 17 65\n");

	const char *bad[] = {"", "end", "end 17", "end 17 -1", "end 17 x", "end 17 1 2",
	    "start leasy 17 1 1 1 1 1 p", "start lea/sy 17 1 1 1 1 1 p u",
	    "start leasy 17 -5 1 1 1 1 p u", "start leasy 17 1 1 1 1 1 p u extra",
	    "begin leasy 17 1 1 1 1 1 p u", "start leasy 17 1 1000001 1 1 1 p u"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(lease_parse_line(bad[i], &e, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "is not start or end"));
	}
	assert_true(lease_word("acme-llm_2.x@site+1"));
	assert_false(lease_word(""));
	assert_false(lease_word("../etc"));
	assert_false(lease_word("a b"));
}

static void
test_files(void **state)
{
	char dir[] = "/tmp/allot-lease-test.XXXXXX", err[512], path[256];
	struct lease l = {"lease-leonardo-leasy-1", 3600000, 1900000000, 3600000}, r;
	struct lease_entry *v = NULL, e;
	size_t n = 99;

	(void)state;
	assert_non_null(mkdtemp(dir));
	int fd = lease_lock(dir, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(lease_read(dir, "leasy", &r, err, sizeof(err)), 0); /* none yet */
	assert_int_equal(lease_write(dir, "leasy", &l, err, sizeof(err)), 0);
	assert_int_equal(lease_read(dir, "leasy", &r, err, sizeof(err)), 1);
	assert_string_equal(r.lien_id, l.lien_id);
	assert_int_equal(r.held_units, 3600000);
	assert_int_equal(r.expires, 1900000000);
	assert_int_equal(r.units_per_gpu_hour, 3600000);

	assert_int_equal(lease_journal_read(dir, &v, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	assert_int_equal(
	    lease_parse_line("start leasy 1 1200000 1 1 1 1200 p u", &e, err, sizeof(err)), 0);
	assert_int_equal(lease_journal_append(dir, &e, err, sizeof(err)), 0);
	e.cost_units = 800000;
	snprintf(e.job_id, sizeof(e.job_id), "2");
	assert_int_equal(lease_journal_append(dir, &e, err, sizeof(err)), 0);
	snprintf(e.project, sizeof(e.project), "other");
	assert_int_equal(lease_journal_append(dir, &e, err, sizeof(err)), 0);
	assert_int_equal(lease_parse_line("end 1 30", &e, err, sizeof(err)), 0);
	assert_int_equal(lease_journal_append(dir, &e, err, sizeof(err)), 0);
	assert_int_equal(lease_journal_read(dir, &v, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 4);
	assert_int_equal(lease_spent(v, n, "leasy"), 2000000);
	assert_int_equal(lease_spent(v, n, "other"), 800000);
	assert_int_equal(lease_spent(v, n, "nobody"), 0);
	free(v);
	assert_int_equal(lease_journal_clear(dir, err, sizeof(err)), 0);
	assert_int_equal(lease_journal_read(dir, &v, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	free(v);

	/* A damaged journal or lease file is refused, naming it. */
	snprintf(path, sizeof(path), "%s/journal", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("start leasy 1 1200000 1 1 1 1200 p u\ngarbage\n", f);
	fclose(f);
	assert_int_equal(lease_journal_read(dir, &v, &n, err, sizeof(err)), -1);
	assert_string_equal(err, "journal line \"garbage\" is not start or end");
	snprintf(path, sizeof(path), "%s/lease.leasy", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("lease-x 12\n", f);
	fclose(f);
	assert_int_equal(lease_read(dir, "leasy", &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not \"LIEN_ID HELD_UNITS EXPIRES UNITS_PER_GPU_HOUR\""));

	lease_unlock(fd);
	const char *names[] = {"journal", "lease.leasy", "lock"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		assert_int_equal(unlink(path), 0);
	}
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
