/*
 * Unit tests for lib/pgarray.c: the literals PostgreSQL reads back as the
 * values written (quoting, escapes, NULL, numbers at their limits, empty arrays),
 * table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pgarray.h"

enum kind { STR, INT, DBL, NUL };

struct elem {
	enum kind kind;
	const char *s;
	int64_t i;
	double d;
};

static const struct {
	const char *name;
	struct elem elems[4];
	size_t n;
	const char *want;
} cases[] = {
    {"none", {{0}}, 0, "{}"},
    {"one string", {{STR, "n1", 0, 0}}, 1, "{\"n1\"}"},
    {"the empty string is not NULL", {{STR, "", 0, 0}, {NUL, NULL, 0, 0}}, 2, "{\"\",NULL}"},
    {"the word NULL as a string", {{STR, "NULL", 0, 0}}, 1, "{\"NULL\"}"},
    {"quotes and backslashes escaped", {{STR, "a\"b\\c", 0, 0}}, 1, "{\"a\\\"b\\\\c\"}"},
    {"commas and braces stay inside quotes", {{STR, "{x,y}", 0, 0}, {STR, " ", 0, 0}}, 2,
        "{\"{x,y}\",\" \"}"},
    {"integers at their limits",
        {{INT, NULL, INT64_MIN, 0}, {INT, NULL, 0, 0}, {INT, NULL, INT64_MAX, 0}}, 3,
        "{-9223372036854775808,0,9223372036854775807}"},
    {"doubles read back exactly", {{DBL, NULL, 0, 0.1}, {DBL, NULL, 0, 100}, {DBL, NULL, 0, -0.0}},
        3, "{0.10000000000000001,100,-0}"},
};

static void
test_cases(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct strbuf sb;

		strbuf_init(&sb);
		for (size_t i = 0; i < cases[c].n; i++) {
			const struct elem *e = &cases[c].elems[i];

			switch (e->kind) {
			case STR:
				pgarray_put_str(&sb, e->s);
				break;
			case INT:
				pgarray_put_int(&sb, e->i);
				break;
			case DBL:
				pgarray_put_double(&sb, e->d);
				break;
			case NUL:
				pgarray_put_null(&sb);
				break;
			}
		}
		assert_int_equal(pgarray_finish(&sb), 0);
		if (strcmp(sb.data, cases[c].want) != 0)
			fail_msg("%s: got %s, want %s", cases[c].name, sb.data, cases[c].want);
		strbuf_cleanup(&sb);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
