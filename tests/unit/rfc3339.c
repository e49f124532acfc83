/*
 * Unit tests for lib/rfc3339.c: the times sites report, and what must be refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rfc3339.h"

static const struct {
	const char *text;
	int64_t epoch_s;
} good[] = {
    {"1970-01-01", 0}, {"1970-01-01T00:00:00Z", 0},
    {"2026-09-29T08:48:23", 1790671703}, /* MN5 sacct Start, no offset: UTC */
    {"2026-09-29T08:48:23Z", 1790671703}, {"2026-09-29T10:48:23+02:00", 1790671703},
    {"2026-09-29T06:18:23-02:30", 1790671703},
    {"2026-09-29T08:48:23.999Z", 1790671703}, /* fractions are dropped */
    {"2026-09-29 08:48:23", 1790671703}, {"2024-02-29T00:00:00Z", 1709164800}, /* leap day */
    {"2000-03-01", 951868800},            /* 2000 is a leap year */
    {"2016-12-31T23:59:60Z", 1483228799}, /* leap second: the second before */
};

static const char *const bad[] = {
    "",
    "Unknown",
    "None",
    "2026-9-29",
    "2026-09-29T",
    "2026-09-29T08:48",
    "2026-13-01",
    "2026-00-10",
    "2026-02-29",
    "1900-02-29",
    "2026-04-31",
    "2026-09-29T24:00:00",
    "2026-09-29T23:60:00",
    "2026-09-29T08:48:23+2",
    "2026-09-29T08:48:23.",
    "2026-09-29T08:48:23Zjunk",
    "1969-12-31",
    " 2026-09-29",
};

static void
test_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int64_t t = -1;

		assert_int_equal(rfc3339_parse(good[i].text, &t), 0);
		assert_int_equal(t, good[i].epoch_s);
	}
}

static void
test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t t = 42;

		if (rfc3339_parse(bad[i], &t) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(t, 42);
	}
}

static void
test_days_from_civil(void **state)
{
	(void)state;
	assert_int_equal(rfc3339_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(rfc3339_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(rfc3339_days_from_civil(2000, 1, 1), 10957);
	/* Every day from 1970 to 2100 follows the one before it. */
	for (int64_t y = 1970, expect = 0; y < 2100; y++) {
		for (unsigned m = 1; m <= 12; m++) {
			static const unsigned mdays[] = {
			    31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
			unsigned n = mdays[m - 1] +
			    (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));

			for (unsigned d = 1; d <= n; d++)
				assert_int_equal(rfc3339_days_from_civil(y, m, d), expect++);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_days_from_civil),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
