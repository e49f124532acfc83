/*
 * Unit tests for lib/hostlist.c, from two tables: lists and the names they expand
 * to (comma-separated, as Slurm prints them uncompressed), and lists refused with
 * the message they get. Then the bound, checked before anything is written, and
 * compression, each case expanded back to its names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostlist.h"

static const struct {
	const char *list;
	const char *names;
	long count;
} good[] = {
    {"lrdn0263", "lrdn0263", 1},
    {"gpu[001-004,010],login1", "gpu001,gpu002,gpu003,gpu004,gpu010,login1", 6},
    {"gpu[1-3]", "gpu1,gpu2,gpu3", 3},
    {"gpu[8-11]", "gpu8,gpu9,gpu10,gpu11", 4},
    {"gpu[08-11]", "gpu08,gpu09,gpu10,gpu11", 4},
    {"n[098-101]", "n098,n099,n100,n101", 4},
    {"r[1-2]n[01-02]", "r1n01,r1n02,r2n01,r2n02", 4},
    {"r[1-2]-n[7]-x", "r1-n7-x,r2-n7-x", 2},
    {"[1-2]", "1,2", 2},
    {"a,b,a", "a,b,a", 3},
    {"nid00[1-2],nid010", "nid001,nid002,nid010", 3},
    {"x[5,3,1]", "x5,x3,x1", 3},
    {"node.example-1_a", "node.example-1_a", 1},
    {"gpu[0-0]", "gpu0", 1},
};

static const struct {
	const char *list;
	const char *err;
} bad[] = {
    {"", "empty node list"},
    {"a,,b", "character 3: empty node name"},
    {"a,", "character 3: empty node name"},
    {",a", "character 1: empty node name"},
    {"gpu[001-004", "character 4: \"[\" is not closed"},
    {"gpu[4-1]", "character 7: range 4-1 goes down"},
    {"gpu[]", "character 5: a number of 1 to 9 digits was expected"},
    {"gpu[1-]", "character 7: a number of 1 to 9 digits was expected"},
    {"gpu[a]", "character 5: a number of 1 to 9 digits was expected"},
    {"gpu[1[2]]", "character 6: \",\", \"-\" or \"]\" was expected"},
    {"gpu1]", "character 5: \"]\" without \"[\""},
    {"gpu[1234567890]", "character 5: a number of 1 to 9 digits was expected"},
    {"gpu 1", "character 4: byte ? is not allowed in a node name"},
    {"gpu;1", "character 4: \";\" is not allowed in a node name"},
    {"gpu[1-2];", "character 9: \";\" is not allowed in a node name"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "character 1: a node name is longer than 64 characters"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa[8-10]",
        "character 1: a node name is longer than 64 characters"},
};

static void
test_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct strbuf sb;
		char err[256] = "";
		long n;

		strbuf_init(&sb);
		n = hostlist_expand(
		    good[i].list, strlen(good[i].list), 1000, ',', &sb, err, sizeof(err));
		if (n != good[i].count ||
		    strcmp(sb.data != NULL ? sb.data : "", good[i].names) != 0)
			fail_msg("\"%s\": %ld names \"%s\" (%s), expected %ld \"%s\"", good[i].list,
			    n, sb.data != NULL ? sb.data : "", err, good[i].count, good[i].names);
		strbuf_cleanup(&sb);
	}
}

static void
test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct strbuf sb;
		char err[256] = "";
		long n;

		strbuf_init(&sb);
		strbuf_puts(&sb, "kept");
		n = hostlist_expand(
		    bad[i].list, strlen(bad[i].list), 1000, ',', &sb, err, sizeof(err));
		if (n != -1 || strcmp(err, bad[i].err) != 0 || strcmp(sb.data, "kept") != 0)
			fail_msg("\"%s\": %ld, \"%s\", out \"%s\"; expected -1, \"%s\"",
			    bad[i].list, n, err, sb.data, bad[i].err);
		strbuf_cleanup(&sb);
	}
}

/* Not NUL-terminated: only len bytes are read. */
static void
test_length(void **state)
{
	struct strbuf sb;
	char err[256];

	(void)state;
	strbuf_init(&sb);
	assert_int_equal(hostlist_expand("n[1-2]XYZ", 6, 10, ' ', &sb, err, sizeof(err)), 2);
	assert_string_equal(sb.data, "n1 n2");
	strbuf_cleanup(&sb);
}

/* The bound: exactly max passes, one more is refused with nothing written. */
static void
test_bound(void **state)
{
	static const struct {
		const char *list;
		size_t max;
		long count;
	} cases[] = {
	    {"n[1-100]", 100, 100},
	    {"n[1-101]", 100, -1},
	    {"n[1-50],m[1-50]", 100, 100},
	    {"n[1-50],m[1-51]", 100, -1},
	    {"r[1-10]n[1-10]", 100, 100},
	    {"r[1-10]n[1-11]", 100, -1},
	    {"n[1-999999999]", 65536, -1},
	    {"a[1-999999999]b[1-999999999]c[1-999999999]", 65536, -1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct strbuf sb;
		char err[256] = "", want[64];
		long n;

		strbuf_init(&sb);
		n = hostlist_expand(
		    cases[i].list, strlen(cases[i].list), cases[i].max, ',', &sb, err, sizeof(err));
		if (n != cases[i].count)
			fail_msg(
			    "\"%s\" (at most %zu): %ld (%s)", cases[i].list, cases[i].max, n, err);
		if (n < 0) {
			snprintf(want, sizeof(want), "more than %zu nodes", cases[i].max);
			assert_string_equal(err, want);
			assert_null(sb.data);
		}
		strbuf_cleanup(&sb);
	}
}

static void
test_compress(void **state)
{
	static const struct {
		const char *names; /* comma-separated, sorted as the database sends them */
		const char *list;
	} cases[] = {
	    {"lrdn0263", "lrdn0263"},
	    {"lrdn0001,lrdn0002,lrdn0003,lrdn0009", "lrdn[0001-0003,0009]"},
	    {"gpu001,gpu002,login1", "gpu[001-002],login1"},
	    {"a,b", "a,b"},
	    {"n10,n8,n9", "n10,n[8-9]"},
	    {"r1n01,r1n02,r2n01", "r1n[01-02],r2n01"},
	    {"x-1,x-2,x.3", "x-[1-2],x.3"},
	    {"1,2,3", "[1-3]"},
	    {"n1234567890,n1234567891", "n1234567890,n1234567891"},
	    {"n0998,n0999,n1000", "n[0998-1000]"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[256], *names[16], *save = NULL, err[256];
		size_t n = 0;
		struct strbuf sb, back;

		snprintf(buf, sizeof(buf), "%s", cases[i].names);
		for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
			names[n++] = t;
		strbuf_init(&sb);
		strbuf_init(&back);
		assert_int_equal(hostlist_compress((const char *const *)names, n, &sb), 0);
		if (strcmp(sb.data, cases[i].list) != 0)
			fail_msg("%s: compressed to \"%s\", expected \"%s\"", cases[i].names,
			    sb.data, cases[i].list);
		assert_int_equal(
		    hostlist_expand(sb.data, sb.len, 100, ',', &back, err, sizeof(err)), (long)n);
		assert_string_equal(back.data, cases[i].names);
		strbuf_cleanup(&sb);
		strbuf_cleanup(&back);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_length),
	    cmocka_unit_test(test_bound),
	    cmocka_unit_test(test_compress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
