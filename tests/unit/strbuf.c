/*
 * Unit tests for lib/strbuf.c: growth, binary contents, formatting, stealing,
 * the NUL after the contents, and the sticky failure flag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include <cmocka.h>

#include "strbuf.h"

static void
assert_empty_as_init(const struct strbuf *sb)
{
	assert_null(sb->data);
	assert_int_equal(sb->len, 0);
	assert_int_equal(sb->cap, 0);
	assert_false(strbuf_failed(sb));
}

static void
test_init_and_cleanup(void **state)
{
	struct strbuf sb;

	(void)state;
	memset(&sb, 0xa5, sizeof(sb));
	strbuf_init(&sb);
	assert_empty_as_init(&sb);
	strbuf_cleanup(&sb); /* nothing allocated yet */
	assert_empty_as_init(&sb);
	strbuf_puts(&sb, "x");
	strbuf_cleanup(&sb);
	assert_empty_as_init(&sb);
	strbuf_cleanup(&sb);
	assert_empty_as_init(&sb);
}

static void
test_append_and_grow(void **state)
{
	struct strbuf sb;
	char expect[10001];
	size_t last_cap = 0;
	int reallocs = 0;

	(void)state;
	strbuf_init(&sb);
	for (int i = 0; i < 10000; i++) {
		strbuf_putc(&sb, (char)('a' + i % 26));
		expect[i] = (char)('a' + i % 26);
		assert_true(sb.cap > sb.len); /* room for the NUL */
		assert_int_equal(sb.data[sb.len], '\0');
		if (sb.cap != last_cap) {
			/* Doubling from 64: a power of two, and few of them. */
			assert_true(sb.cap >= 64 && (sb.cap & (sb.cap - 1)) == 0);
			assert_true(last_cap == 0 || sb.cap == 2 * last_cap);
			last_cap = sb.cap;
			reallocs++;
		}
	}
	expect[10000] = '\0';
	assert_int_equal(sb.len, 10000);
	assert_string_equal(sb.data, expect);
	assert_int_equal(sb.cap, 16384);
	assert_int_equal(reallocs, 9); /* 64, 128, ..., 16384 */
	assert_false(strbuf_failed(&sb));

	/* One append bigger than the doubling goes straight to its size's power of two. */
	strbuf_reset(&sb);
	strbuf_append(&sb, expect, 10000);
	strbuf_append(&sb, expect, 10000);
	assert_int_equal(sb.len, 20000);
	assert_int_equal(sb.cap, 32768);
	assert_memory_equal(sb.data + 10000, expect, 10000);
	assert_int_equal(sb.data[20000], '\0');
	strbuf_cleanup(&sb);
	assert_null(sb.data);
}

static void
test_binary_and_empty(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	/* An empty append still allocates, so data is a valid empty string after it. */
	strbuf_append(&sb, NULL, 0);
	assert_non_null(sb.data);
	assert_string_equal(sb.data, "");
	assert_int_equal(sb.len, 0);
	strbuf_puts(&sb, "");
	assert_int_equal(sb.len, 0);
	strbuf_append(&sb, "a\0b", 3);
	strbuf_putc(&sb, '\0');
	assert_int_equal(sb.len, 4);
	assert_memory_equal(sb.data, "a\0b\0\0", 5);
	assert_false(strbuf_failed(&sb));
	strbuf_cleanup(&sb);
}

static void
test_printf(void **state)
{
	struct strbuf sb;
	char big[301];

	(void)state;
	strbuf_init(&sb);
	strbuf_printf(&sb, "%s=%d;", "x", -12);
	assert_string_equal(sb.data, "x=-12;");
	strbuf_puts(&sb, "tail");
	/* Past the first allocation in one go. */
	strbuf_printf(&sb, "%0300d", 7);
	assert_int_equal(sb.len, strlen("x=-12;tail") + 300);
	assert_memory_equal(sb.data, "x=-12;tail000", 13);
	assert_int_equal(sb.data[sb.len - 1], '7');
	assert_int_equal(sb.data[sb.len], '\0');
	/* Exactly filling the first allocation, NUL included, then one more byte. */
	strbuf_cleanup(&sb);
	memset(big, 'z', 300);
	big[300] = '\0';
	strbuf_printf(&sb, "%.*s", 63, big);
	assert_int_equal(sb.len, 63);
	assert_int_equal(sb.cap, 64);
	assert_int_equal(sb.data[63], '\0');
	strbuf_printf(&sb, "%c", 'q');
	assert_int_equal(sb.len, 64);
	assert_int_equal(sb.cap, 128);
	assert_int_equal(sb.data[63], 'q');
	assert_int_equal(sb.data[64], '\0');
	/* An empty format changes nothing. */
	strbuf_reset(&sb);
	strbuf_printf(&sb, "%s", "");
	assert_int_equal(sb.len, 0);
	assert_string_equal(sb.data, "");
	assert_false(strbuf_failed(&sb));
	strbuf_cleanup(&sb);
}

static void
test_reset_keeps_allocation(void **state)
{
	struct strbuf sb;
	char *data;
	size_t cap;

	(void)state;
	strbuf_init(&sb);
	strbuf_reset(&sb); /* before any append: nothing to keep */
	assert_empty_as_init(&sb);
	strbuf_printf(&sb, "%0200d", 1);
	data = sb.data;
	cap = sb.cap;
	strbuf_reset(&sb);
	assert_ptr_equal(sb.data, data);
	assert_int_equal(sb.cap, cap);
	assert_int_equal(sb.len, 0);
	assert_string_equal(sb.data, "");
	strbuf_puts(&sb, "again");
	assert_string_equal(sb.data, "again");
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
	assert_empty_as_init(&sb);
	strbuf_puts(&sb, "kept");
	s = strbuf_steal(&sb);
	assert_string_equal(s, "kept");
	assert_empty_as_init(&sb);
	/* The buffer is reusable and owns nothing of what it gave away. */
	strbuf_puts(&sb, "new");
	assert_string_equal(s, "kept");
	assert_string_equal(sb.data, "new");
	free(s);
	strbuf_cleanup(&sb);
}

static void
test_failure_is_sticky(void **state)
{
	struct strbuf sb;
	char *data;

	(void)state;
	strbuf_init(&sb);
	strbuf_puts(&sb, "ok");
	data = sb.data;
	/* A length that cannot be allocated fails, keeps the contents and stays failed. */
	strbuf_append(&sb, "x", SIZE_MAX - 1);
	assert_true(strbuf_failed(&sb));
	assert_ptr_equal(sb.data, data);
	assert_int_equal(sb.len, 2);
	assert_string_equal(sb.data, "ok");
	/* Nothing is appended any more, even what would fit. */
	strbuf_puts(&sb, "more");
	strbuf_putc(&sb, '!');
	strbuf_append(&sb, "x", 1);
	strbuf_printf(&sb, "%d", 5);
	assert_int_equal(sb.len, 2);
	assert_string_equal(sb.data, "ok");
	assert_true(strbuf_failed(&sb));
	/* reset forgets the failure. */
	strbuf_reset(&sb);
	assert_false(strbuf_failed(&sb));
	strbuf_puts(&sb, "fresh");
	assert_string_equal(sb.data, "fresh");
	assert_false(strbuf_failed(&sb));
	/* So does cleanup. */
	strbuf_append(&sb, "x", SIZE_MAX);
	assert_true(strbuf_failed(&sb));
	strbuf_cleanup(&sb);
	assert_empty_as_init(&sb);
}

static void
test_failure_from_nothing_and_steal(void **state)
{
	struct strbuf sb;

	(void)state;
	/* A failure before anything was allocated leaves data NULL. */
	strbuf_init(&sb);
	strbuf_append(&sb, "x", SIZE_MAX);
	assert_true(strbuf_failed(&sb));
	assert_null(sb.data);
	assert_null(strbuf_steal(&sb));
	assert_empty_as_init(&sb);
	/* Stealing from a failed buffer gives NULL, not truncated text, and frees it. */
	strbuf_puts(&sb, "partial");
	strbuf_append(&sb, "x", SIZE_MAX - 3);
	assert_true(strbuf_failed(&sb));
	assert_null(strbuf_steal(&sb));
	assert_empty_as_init(&sb);
}

static void
test_printf_error_fails(void **state)
{
	struct strbuf sb;
	/* é cannot be converted in the C locale: vsnprintf returns -1. */
	const wchar_t wide[] = {0xe9, 0};

	(void)state;
	strbuf_init(&sb);
	strbuf_puts(&sb, "before");
	strbuf_printf(&sb, "%ls", wide);
	assert_true(strbuf_failed(&sb));
	assert_string_equal(sb.data, "before");
	strbuf_cleanup(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_and_cleanup),
	    cmocka_unit_test(test_append_and_grow),
	    cmocka_unit_test(test_binary_and_empty),
	    cmocka_unit_test(test_printf),
	    cmocka_unit_test(test_reset_keeps_allocation),
	    cmocka_unit_test(test_steal),
	    cmocka_unit_test(test_failure_is_sticky),
	    cmocka_unit_test(test_failure_from_nothing_and_steal),
	    cmocka_unit_test(test_printf_error_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
