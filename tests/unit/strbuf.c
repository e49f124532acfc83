/*
 * Unit tests for lib/strbuf.c: growth, formatting, stealing, the NUL after the
 * contents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "strbuf.h"

static void
test_append_and_grow(void **state)
{
	struct strbuf sb;
	char expect[10001];

	(void)state;
	strbuf_init(&sb);
	assert_null(sb.data);
	assert_int_equal(sb.len, 0);
	for (int i = 0; i < 10000; i++) {
		strbuf_putc(&sb, (char)('a' + i % 26));
		expect[i] = (char)('a' + i % 26);
	}
	expect[10000] = '\0';
	assert_int_equal(sb.len, 10000);
	assert_true(sb.cap > sb.len);
	assert_string_equal(sb.data, expect);
	assert_false(strbuf_failed(&sb));
	strbuf_cleanup(&sb);
	assert_null(sb.data);
}

static void
test_binary_and_printf(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	strbuf_append(&sb, "a\0b", 3);
	assert_int_equal(sb.len, 3);
	assert_memory_equal(sb.data, "a\0b", 4);
	strbuf_reset(&sb);
	assert_int_equal(sb.len, 0);
	assert_string_equal(sb.data, "");
	strbuf_printf(&sb, "%s=%d;", "x", -12);
	strbuf_puts(&sb, "tail");
	strbuf_printf(&sb, "%0300d", 7);
	assert_int_equal(sb.len, strlen("x=-12;tail") + 300);
	assert_memory_equal(sb.data, "x=-12;tail000", 13);
	assert_int_equal(sb.data[sb.len - 1], '7');
	assert_int_equal(sb.data[sb.len], '\0');
	strbuf_cleanup(&sb);
}

static void
test_steal(void **state)
{
	struct strbuf sb;
	char *s;

	(void)state;
	strbuf_init(&sb);
	s = strbuf_steal(&sb);
	assert_non_null(s); /* an empty buffer gives an empty string, not NULL */
	assert_string_equal(s, "");
	free(s);
	strbuf_puts(&sb, "kept");
	s = strbuf_steal(&sb);
	assert_string_equal(s, "kept");
	assert_null(sb.data);
	assert_int_equal(sb.len, 0);
	free(s);
}

static void
test_failure_is_sticky(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	strbuf_puts(&sb, "ok");
	/* A length that cannot be allocated fails, keeps the contents and stays failed. */
	strbuf_append(&sb, "x", SIZE_MAX - 1);
	assert_true(strbuf_failed(&sb));
	assert_string_equal(sb.data, "ok");
	strbuf_puts(&sb, "more");
	assert_string_equal(sb.data, "ok");
	strbuf_reset(&sb);
	assert_false(strbuf_failed(&sb));
	strbuf_cleanup(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_append_and_grow),
	    cmocka_unit_test(test_binary_and_printf),
	    cmocka_unit_test(test_steal),
	    cmocka_unit_test(test_failure_is_sticky),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
