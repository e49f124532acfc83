/*
 * Unit tests for clients/cli/books.c: each site's budget tool output (the
 * fixtures in tests/fixtures/site-books/, verbatim) read to the exact figures,
 * in thousandths of allotd's native unit for the site; bad input refused naming
 * the line; decimal figures converted exactly; the comparison's verdicts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "books.h"

#define FIXTURES SOURCE_ROOT "/tests/fixtures/site-books/"

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void
parse_fixture(const char *name, enum books_format format, struct books *b)
{
	char err[512];
	size_t len;
	char *text = slurp(name, &len);

	if (books_parse(format, text, len, b, err, sizeof(err)) != 0)
		fail_msg("%s: %s", name, err);
	free(text);
}

static void
assert_entry(const struct books_entry *e, const char *account, const char *unit, int64_t used_milli,
    int64_t round_milli, const char *since, size_t line)
{
	assert_string_equal(e->account, account);
	assert_string_equal(e->unit, unit);
	assert_true(e->used_milli == used_milli);
	assert_true(e->round_milli == round_milli);
	assert_string_equal(e->since, since);
	assert_int_equal(e->line, line);
}

/* saldo -b: localCluster Consumed, whole core-hours (rounding: half a core-hour). */
static void
test_saldo_fixture(void **state)
{
	struct books b;

	(void)state;
	parse_fixture(FIXTURES "leonardo-saldo.txt", BOOKS_SALDO, &b);
	assert_int_equal(b.n, 2);
	assert_entry(&b.entries[0], "Proj_A", "core-h", INT64_C(25000000), 500, "2011-03-23", 5);
	assert_entry(&b.entries[1], "Proj_B", "core-h", INT64_C(10000000), 500, "2022-04-27", 6);
	books_cleanup(&b);
}

/* bsc_acct: the ACC line's Used, 271.43 khours = 271,430 core-hours; GPP left out. */
static void
test_bsc_acct_fixture(void **state)
{
	struct books b;

	(void)state;
	parse_fixture(FIXTURES "mn5-bsc_acct.txt", BOOKS_BSC_ACCT, &b);
	assert_int_equal(b.n, 1);
	/* Two decimals of khours: the tool rounded to 10 core-h, so half is 5 core-h. */
	assert_entry(&b.entries[0], "ehpc103", "core-h", INT64_C(271430000), 5000, "", 3);
	books_cleanup(&b);
}

/* jutil: numbers as strings; budget-account, coreh-consumed-total, period start. */
static void
test_jutil_fixture(void **state)
{
	struct books b;

	(void)state;
	parse_fixture(FIXTURES "jupiter-jutil-cpuquota.json", BOOKS_JUTIL, &b);
	assert_int_equal(b.n, 1);
	assert_entry(&b.entries[0], "e-dev-2026d09-128", "core-h", 0, 500, "2026-09-01", 0);
	books_cleanup(&b);
}

/* lumi-allocations: gpu_hours.used, LUMI GPU-hours (the CPU and storage figures left out). */
static void
test_lumi_fixture(void **state)
{
	struct books b;

	(void)state;
	parse_fixture(FIXTURES "lumi-allocations-project.json", BOOKS_LUMI, &b);
	assert_int_equal(b.n, 1);
	assert_entry(&b.entries[0], "project_test", "GPU-h", INT64_C(500000), 500, "", 0);
	books_cleanup(&b);
}

/* Constructed in the tools' shapes: what the samples do not show. */
static void
test_constructed(void **state)
{
	static const char bsc_two[] =
	    "---------------------------------------------------------------\n"
	    "CPU GROUP BUDGET:\n"
	    "Project: A very long title of an AI Factory allocation that the tool wraps\n"
	    "   onto the next line (ehpc255)\n"
	    "Project's Expiration Date:     2027-06-30\n"
	    "\n"
	    "Machine:                    Total (classA,classB)[khours]:          Used [khours]:\n"
	    "\n"
	    "Marenostrum5 ACC                       1000.00 (0.00,0.00)            12.5 (01%)\n"
	    "---------------------------------------------------------------\n"
	    "USER CONSUMED CPU:\n"
	    "bsc000001 (A user whose name is long enough to\n"
	    "   wrap)                                    Marenostrum5 ACC              "
	    "12.50(100%)\n"
	    "---------------------------------------------------------------\n"
	    "CPU GROUP BUDGET:\n"
	    "Project: Second (ehpc256)\n"
	    "Machine:                    Total (classA,classB)[khours]:          Used [khours]:\n"
	    "Marenostrum5 GPP                                 undefined                    3.00\n"
	    "---------------------------------------------------------------\n";
	static const char jutil_many[] =
	    "[{\"budget-account\": \"a1\", \"coreh-consumed-total\": \"1234.5\","
	    " \"acct-period-start\": \"2026-05-01\"},\n"
	    " {\"budget-account\": \"a2\", \"coreh-consumed-total\": 72,"
	    " \"acct-period-start\": \"2026-03-01\"}]";
	static const char lumi_real[] =
	    "[{\"name\": \"project_465000123\", \"billing\": {\"gpu_hours\": {\"used\": 52.5}}}]";
	struct books b;
	char err[512];

	(void)state;
	assert_int_equal(
	    books_parse(BOOKS_BSC_ACCT, bsc_two, strlen(bsc_two), &b, err, sizeof(err)), 0);
	assert_int_equal(b.n, 2);
	/* 12.5 khours: one decimal, so the tool rounded to 100 core-h (half: 50). */
	assert_entry(&b.entries[0], "ehpc255", "core-h", INT64_C(12500000), 50000, "", 3);
	/* A project with no ACC line has used no GPU time. */
	assert_entry(&b.entries[1], "ehpc256", "core-h", 0, 0, "", 16);
	books_cleanup(&b);

	assert_int_equal(
	    books_parse(BOOKS_JUTIL, jutil_many, strlen(jutil_many), &b, err, sizeof(err)), 0);
	assert_int_equal(b.n, 2);
	assert_entry(&b.entries[0], "a1", "core-h", INT64_C(1234500), 50, "2026-05-01", 0);
	assert_entry(&b.entries[1], "a2", "core-h", INT64_C(72000), 500, "2026-03-01", 0);
	books_cleanup(&b);

	assert_int_equal(
	    books_parse(BOOKS_LUMI, lumi_real, strlen(lumi_real), &b, err, sizeof(err)), 0);
	assert_int_equal(b.n, 1);
	assert_entry(&b.entries[0], "project_465000123", "GPU-h", INT64_C(52500), 50, "", 0);
	books_cleanup(&b);
}

/* Bad input: refused, naming the line (or the JSON entry) and the reason. */
static void
test_refusals(void **state)
{
	static const struct {
		enum books_format format;
		const char *text;
		const char *err;
	} cases[] = {
	    {BOOKS_SALDO, "account start end\nProj_A 20110323 20300323 50000 25000\n",
	        "line 2: expected 9 columns"},
	    {BOOKS_SALDO, "Proj_A 20110323 20300323 50000 25x00 1 50.0 600 600\n",
	        "line 1: column 5 is not a number: \"25x00\""},
	    {BOOKS_SALDO, "Proj_A 2011-03-2 20300323 50000 25000 1 50.0 600 600\n",
	        "line 1: start and end must be dates as YYYYMMDD"},
	    {BOOKS_SALDO, "Proj_A 20110323 20300323 50000 -25000 1 50.0 600 600\n",
	        "line 1: column 5 is not a number: \"-25000\""},
	    {BOOKS_SALDO, "-----\naccount start\n-----\n",
	        "no account line found after the header"},
	    {BOOKS_SALDO, "", "no account line found"},
	    {BOOKS_BSC_ACCT, "CPU GROUP BUDGET:\nProject: no account here\nProject's Expiration\n",
	        "line 2: the project's account is missing"},
	    {BOOKS_BSC_ACCT,
	        "CPU GROUP BUDGET:\nProject: X (ehpc1)\nMachine: Total Used\n"
	        "Marenostrum5 ACC 10.00 (0.00,0.00) lots (05%)\n",
	        "line 4: Used is not a number of khours: \"lots\""},
	    {BOOKS_BSC_ACCT,
	        "CPU GROUP BUDGET:\nProject: X (ehpc1)\nMachine: Total Used\nMarenostrum5 ACC "
	        "10.00\n",
	        "line 4: expected a machine line"},
	    {BOOKS_BSC_ACCT,
	        "CPU GROUP BUDGET:\nProject: X (ehpc1)\nMachine: Total Used\n"
	        "Marenostrum5 ACC 10.00 1,5\n",
	        "line 4: Used is not a number of khours: \"1,5\""},
	    {BOOKS_BSC_ACCT, "hello\n", "no \"CPU GROUP BUDGET:\" block found"},
	    {BOOKS_JUTIL, "[{\"budget-account\": \"a\",\n \"coreh-consumed-total\": \"1\"",
	        "line 2, column"},
	    {BOOKS_JUTIL, "[{\"budget-account\": \"a\", \"coreh-consumed-total\": \"abc\"}]",
	        "entry 1 (a): \"coreh-consumed-total\" is missing or not a number"},
	    {BOOKS_JUTIL, "[{\"coreh-consumed-total\": \"1\"}]",
	        "entry 1: \"budget-account\" is missing"},
	    {BOOKS_JUTIL, "[{\"budget-account\": \"a\", \"coreh-consumed-total\": \"-1\"}]",
	        "entry 1 (a): \"coreh-consumed-total\" is missing or not a number"},
	    {BOOKS_JUTIL,
	        "[{\"budget-account\": \"a\", \"coreh-consumed-total\": \"1\","
	        " \"acct-period-start\": \"01.09.2026\"}]",
	        "\"acct-period-start\" is not a date"},
	    {BOOKS_JUTIL, "[]", "no account found"},
	    {BOOKS_JUTIL, "\"text\"", "expected a JSON array of objects"},
	    {BOOKS_LUMI, "{\"name\": \"p\", \"billing\": {\"cpu_hours\": {\"used\": 1}}}",
	        "entry 1 (p): \"billing.gpu_hours.used\" is missing or not a number"},
	    {BOOKS_LUMI, "{\"name\": \"two words\", \"billing\": {}}",
	        "entry 1: \"name\" is missing or not an account name"},
	};
	struct books b;
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		if (books_parse(cases[i].format, cases[i].text, strlen(cases[i].text), &b, err,
		        sizeof(err)) == 0)
			fail_msg("case %zu accepted", i);
		if (strstr(err, cases[i].err) == NULL)
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, cases[i].err);
		assert_null(b.entries);
		assert_int_equal(b.n, 0);
	}
	/* A NUL byte is refused, not read as the end of the text. */
	assert_int_equal(books_parse(BOOKS_SALDO, "a\0b", 3, &b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "NUL byte"));
}

static void
test_decimal(void **state)
{
	static const struct {
		const char *s;
		int64_t scale, milli, round;
	} good[] = {
	    {"0", 1000, 0, 500},
	    {"25000", 1000, 25000000, 500},
	    {"271.43", 1000000, 271430000, 5000},
	    {"0.5", 1000, 500, 50},
	    {"1.2345", 1000, 1235, 1}, /* beyond thousandths: nearest, half up */
	    {"9223372036854775", 1000, INT64_C(9223372036854775000), 500},
	};
	static const char *const bad[] = {"", ".", "1.", ".5", "-1", "+1", "1e3", "1 ", "0x10",
	    "9223372036854775808", "9223372036854776", "1.0000000001"};
	int64_t milli, round;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!books_decimal(good[i].s, strlen(good[i].s), good[i].scale, &milli, &round))
			fail_msg("\"%s\" refused", good[i].s);
		assert_true(milli == good[i].milli);
		assert_true(round == good[i].round);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (books_decimal(bad[i], strlen(bad[i]), 1000, &milli, &round))
			fail_msg("\"%s\" accepted", bad[i]);
}

static void
test_formats(void **state)
{
	enum books_format f;

	(void)state;
	assert_true(books_format_for_site("leonardo", &f) && f == BOOKS_SALDO);
	assert_true(books_format_for_site("marenostrum5", &f) && f == BOOKS_BSC_ACCT);
	assert_true(books_format_for_site("jupiter", &f) && f == BOOKS_JUTIL);
	assert_true(books_format_for_site("lumi", &f) && f == BOOKS_LUMI);
	assert_false(books_format_for_site("karolina", &f));
	assert_true(books_format_parse("lumi-allocations", &f) && f == BOOKS_LUMI);
	assert_false(books_format_parse("saldo -b", &f));
	assert_string_equal(books_format_name(BOOKS_BSC_ACCT), "bsc_acct");
}

/* The verdicts: within the rounding, within the tolerance, beyond, units, extras. */
static void
test_compare(void **state)
{
	struct books_entry entries[] = {
	    {"Proj_A", "core-h", 25000000, 500, "", 5}, /* Allot 25,000.4: rounding */
	    {"PROJ_B", "core-h", 10000000, 500, "", 6}, /* Allot 9,950: 0.5 % */
	    {"proj_c", "core-h", 10000000, 500, "", 7}, /* Allot 9,800: 2 % */
	    {"proj_d", "core-h", 0, 500, "", 8},        /* Allot 1: beyond a zero */
	    {"proj_e", "core-h", 1000, 500, "", 9},     /* Allot counts it in h */
	};
	struct books b = {BOOKS_SALDO, entries, 5};
	struct books_total totals[] = {
	    {"proj_a", "core-h", 25000400, 3125000000, 3},
	    {"proj_b", "core-h", 9950000, 4477500000, 2},
	    {"proj_c", "core-h", 9800000, 4410000000, 1},
	    {"proj_d", "core-h", 1000, 450000, 1},
	    {"proj_e", "h", 1000, 3600000, 1},
	    {"proj_f", "core-h", 8000, 3600000, 1},
	};
	struct books_row rows[11];
	size_t n, differ;

	(void)state;
	n = books_compare(&b, totals, 6, 1000, rows, &differ);
	assert_int_equal(n, 6);
	assert_int_equal(differ, 3);
	assert_int_equal(rows[0].verdict, BOOKS_AGREE);
	assert_true(rows[0].diff_milli == 400);
	assert_true(rows[0].jobs == 3);
	assert_int_equal(rows[1].verdict, BOOKS_AGREE); /* names compare without case */
	assert_true(rows[1].diff_milli == -50000);
	assert_int_equal(rows[2].verdict, BOOKS_DIFFER);
	assert_true(rows[2].diff_milli == -200000);
	assert_true(rows[2].allot_milli == 9800000 && rows[2].books_milli == 10000000);
	assert_int_equal(rows[3].verdict, BOOKS_DIFFER);
	assert_int_equal(rows[4].verdict, BOOKS_UNIT_MISMATCH);
	assert_string_equal(rows[4].allot_unit, "h");
	assert_int_equal(rows[5].verdict, BOOKS_ONLY_IN_ALLOT);
	assert_string_equal(rows[5].account, "proj_f");
	assert_true(rows[5].allot_milli == 8000);

	/* At 2 % the 2 % difference is accepted (not beyond); at 0 only the rounding. */
	n = books_compare(&b, totals, 6, 2000, rows, &differ);
	assert_int_equal(rows[2].verdict, BOOKS_AGREE);
	assert_int_equal(differ, 2);
	n = books_compare(&b, totals, 6, 0, rows, &differ);
	assert_int_equal(rows[0].verdict, BOOKS_AGREE);
	assert_int_equal(rows[1].verdict, BOOKS_DIFFER);
	assert_int_equal(differ, 4);
	(void)n;
	/* An account the books list and Allot never charged: the whole figure differs. */
	n = books_compare(&b, totals, 0, 1000, rows, &differ);
	assert_int_equal(n, 5);
	assert_int_equal(rows[0].verdict, BOOKS_DIFFER);
	assert_true(rows[0].diff_milli == -25000000);
	assert_int_equal(rows[3].verdict, BOOKS_AGREE); /* 0 against 0 */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_saldo_fixture),
	    cmocka_unit_test(test_bsc_acct_fixture),
	    cmocka_unit_test(test_jutil_fixture),
	    cmocka_unit_test(test_lumi_fixture),
	    cmocka_unit_test(test_constructed),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_decimal),
	    cmocka_unit_test(test_formats),
	    cmocka_unit_test(test_compare),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
