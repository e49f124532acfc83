/*
 * Unit tests for lib/jtree.c: the tree's shape, strings unescaped in place
 * (surrogate pairs, NUL), numbers by the grammar, every refusal with the place
 * it names, duplicate keys in small and large objects, and the depth bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jtree.h"

/* Parses text, which must succeed; the caller frees t. */
static void
parse_ok(struct jtree *t, const char *text)
{
	char err[200] = "";

	if (!jtree_parse(t, text, strlen(text), err, sizeof(err)))
		fail_msg("could not parse %s: %s", text, err);
}

/* Parses text, which must fail with exactly want. */
static void
parse_fails(const char *text, size_t len, const char *want)
{
	struct jtree t;
	char err[200] = "";

	if (jtree_parse(&t, text, len, err, sizeof(err)))
		fail_msg("parsed %s", text);
	jtree_free(&t);
	if (strcmp(err, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", text, err, want);
}

static void
test_shape(void **state)
{
	struct jtree t;
	const struct jnode *root, *m, *e;

	(void)state;
	parse_ok(&t, " {\"a\": [1, -2.5, true, false, null], \"b\": {}, \"c\": \"x\"} ");
	root = jtree_root(&t);
	assert_int_equal(root->type, JT_OBJECT);
	assert_int_equal(root->count, 3);
	m = jtree_node(&t, root->first);
	assert_string_equal(m->key, "a");
	assert_int_equal(m->type, JT_ARRAY);
	assert_int_equal(m->count, 5);
	e = jtree_node(&t, m->first);
	assert_int_equal(e->type, JT_INTEGER);
	assert_int_equal(e->integer, 1);
	e = jtree_node(&t, e->next);
	assert_int_equal(e->type, JT_REAL);
	assert_true(e->real == -2.5);
	e = jtree_node(&t, e->next);
	assert_int_equal(e->type, JT_TRUE);
	e = jtree_node(&t, e->next);
	assert_int_equal(e->type, JT_FALSE);
	e = jtree_node(&t, e->next);
	assert_int_equal(e->type, JT_NULL);
	assert_null(jtree_node(&t, e->next));
	m = jtree_node(&t, m->next);
	assert_string_equal(m->key, "b");
	assert_int_equal(m->type, JT_OBJECT);
	assert_int_equal(m->count, 0);
	assert_null(jtree_node(&t, m->first));
	m = jtree_node(&t, m->next);
	assert_string_equal(m->key, "c");
	assert_string_equal(m->str, "x");
	assert_null(jtree_node(&t, m->next));
	jtree_free(&t);

	/* Any value at the top, as pbjson's caller checks the kind itself. */
	parse_ok(&t, "\"top\"");
	assert_int_equal(jtree_root(&t)->type, JT_STRING);
	jtree_free(&t);
	parse_ok(&t, "[]");
	assert_int_equal(jtree_root(&t)->type, JT_ARRAY);
	assert_int_equal(jtree_root(&t)->count, 0);
	jtree_free(&t);
}

static void
test_strings(void **state)
{
	static const char text[] =
	    "[\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t\", \"\\u00e9\\u20ac\", "
	    "\"\\ud83d\\ude80\", \"a\\u0000b\", \"\xc3\xa9t\xc3\xa9 \xf0\x9f\x9a\x80\"]";
	struct jtree t;
	const struct jnode *e;

	(void)state;
	parse_ok(&t, text);
	e = jtree_node(&t, jtree_root(&t)->first);
	assert_string_equal(e->str, "q\" b\\ s/ \b\f\n\r\t");
	e = jtree_node(&t, e->next);
	assert_string_equal(e->str, "\xc3\xa9\xe2\x82\xac"); /* é € */
	e = jtree_node(&t, e->next);
	assert_string_equal(e->str, "\xf0\x9f\x9a\x80"); /* a surrogate pair: U+1F680 */
	e = jtree_node(&t, e->next);
	assert_int_equal(e->len, 3); /* NUL is kept; the length says where it ends */
	assert_memory_equal(e->str, "a\0b", 3);
	e = jtree_node(&t, e->next);
	assert_string_equal(e->str, "\xc3\xa9t\xc3\xa9 \xf0\x9f\x9a\x80"); /* raw UTF-8 as is */
	jtree_free(&t);
}

static void
test_numbers(void **state)
{
	struct jtree t;
	const struct jnode *e;

	(void)state;
	parse_ok(&t, "[0, -0, 9223372036854775807, -9223372036854775808, 1e2, 0.5e-3, -1E+1]");
	e = jtree_node(&t, jtree_root(&t)->first);
	assert_int_equal(e->type, JT_INTEGER);
	assert_int_equal(e->integer, 0);
	e = jtree_node(&t, e->next);
	assert_int_equal(e->type, JT_INTEGER);
	assert_int_equal(e->integer, 0);
	e = jtree_node(&t, e->next);
	assert_true(e->integer == INT64_MAX);
	e = jtree_node(&t, e->next);
	assert_true(e->integer == INT64_MIN);
	e = jtree_node(&t, e->next);
	assert_int_equal(e->type, JT_REAL); /* an exponent makes a real, as in jansson */
	assert_true(e->real == 100.0);
	e = jtree_node(&t, e->next);
	assert_true(e->real == 0.5e-3);
	e = jtree_node(&t, e->next);
	assert_true(e->real == -10.0);
	jtree_free(&t);
}

static void
test_refusals(void **state)
{
	(void)state;
	parse_fails("", 0, "line 1 column 1: unexpected end of input");
	parse_fails("   ", 3, "line 1 column 4: unexpected end of input");
	parse_fails("{} x", 4, "line 1 column 4: end of input expected");
	parse_fails("{\"a\": 1,}", 9, "line 1 column 9: string or '}' expected");
	parse_fails("[1,]", 4, "line 1 column 4: invalid token");
	parse_fails("[1 2]", 5, "line 1 column 4: ',' or ']' expected");
	parse_fails("{\"a\" 1}", 7, "line 1 column 6: ':' expected");
	parse_fails("{\n  \"a\": tru}", 13, "line 2 column 8: invalid token");
	parse_fails("[01]", 4, "line 1 column 2: invalid number");
	parse_fails("[1.]", 4, "line 1 column 2: invalid number");
	parse_fails("[.5]", 4, "line 1 column 2: invalid token");
	parse_fails("[-]", 3, "line 1 column 2: invalid number");
	parse_fails("[1e]", 4, "line 1 column 2: invalid number");
	parse_fails("[9223372036854775808]", 21, "line 1 column 2: too big integer");
	parse_fails("[1e400]", 7, "line 1 column 2: real number overflow");
	parse_fails("\"abc", 4, "line 1 column 5: unterminated string");
	parse_fails("\"a\tb\"", 5, "line 1 column 3: control character in a string");
	parse_fails("\"a\\x\"", 5, "line 1 column 3: invalid escape in a string");
	parse_fails("\"\\u12g4\"", 8, "line 1 column 2: invalid \\u escape");
	parse_fails("\"\\ude80\"", 8, "line 1 column 2: lone low surrogate in a \\u escape");
	parse_fails("\"\\ud83d x\"", 10, "line 1 column 2: high surrogate without its low one");
	parse_fails(
	    "\"\\ud83d\\u0041\"", 14, "line 1 column 2: high surrogate without its low one");
	parse_fails("\"\xff\"", 3, "line 1 column 2: invalid UTF-8 in a string");
	parse_fails("\"\xc3\"", 3, "line 1 column 2: invalid UTF-8 in a string");
	parse_fails("\"\xed\xa0\x80\"", 5, "line 1 column 2: invalid UTF-8 in a string");
	/* A NUL byte in the text, not escaped, is no JSON; the length, not the NUL, ends it. */
	parse_fails("\"a\0b\"", 5, "line 1 column 3: control character in a string");
	parse_fails("{}\0", 3, "line 1 column 3: end of input expected");
	/* Text need not be NUL-terminated: only len bytes are read. */
	parse_fails("[1, 2]", 4, "line 1 column 5: unexpected end of input");
}

static void
test_duplicates(void **state)
{
	char big[2048];
	size_t n = 0;
	struct jtree t;

	(void)state;
	parse_fails("{\"a\": 1, \"b\": 2, \"a\": 3}", 24, "line 1 column 1: duplicate object key");
	/* Keys that differ only past a NUL are different keys. */
	parse_ok(&t, "{\"a\\u0000x\": 1, \"a\\u0000y\": 2, \"a\": 3}");
	jtree_free(&t);
	/* Past 16 members the check sorts: a duplicate far apart is still found. */
	n += (size_t)snprintf(big + n, sizeof(big) - n, "{");
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(
		    big + n, sizeof(big) - n, "%s\"k%d\": %d", i ? ", " : "", i, i);
	snprintf(big + n, sizeof(big) - n, "}");
	parse_ok(&t, big);
	assert_int_equal(jtree_root(&t)->count, 40);
	jtree_free(&t);
	snprintf(big + n, sizeof(big) - n, ", \"k3\": 0}");
	parse_fails(big, strlen(big), "line 1 column 1: duplicate object key");
	/* The same key in two objects is no duplicate. */
	parse_ok(&t, "[{\"a\": 1}, {\"a\": 2}]");
	jtree_free(&t);
}

static void
test_depth(void **state)
{
	static char text[2 * (JTREE_MAX_DEPTH + 1)];
	size_t ok = JTREE_MAX_DEPTH, over = JTREE_MAX_DEPTH + 1;
	struct jtree t;
	char err[200];

	(void)state;
	/* JTREE_MAX_DEPTH nested arrays parse; one more does not. */
	memset(text, '[', ok);
	memset(text + ok, ']', ok);
	assert_true(jtree_parse(&t, text, 2 * ok, err, sizeof(err)));
	jtree_free(&t);
	memset(text, '[', over);
	memset(text + over, ']', over);
	assert_false(jtree_parse(&t, text, 2 * over, err, sizeof(err)));
	jtree_free(&t);
	assert_non_null(strstr(err, "maximum nesting depth reached"));
}

static void
test_many_nodes(void **state)
{
	/* Enough values to make the node array grow many times, each one read back. */
	size_t n = 100000, len = 0, cap = n * 8 + 2;
	char *text = malloc(cap);
	struct jtree t;
	const struct jnode *e;
	size_t i = 0;

	(void)state;
	if (text == NULL)
		fail_msg("out of memory");
	text[len++] = '[';
	for (size_t k = 0; k < n; k++)
		len += (size_t)snprintf(text + len, cap - len, "%s%zu", k ? "," : "", k);
	text[len++] = ']';
	assert_true(jtree_parse(&t, text, len, NULL, 0));
	assert_int_equal(jtree_root(&t)->count, n);
	for (e = jtree_node(&t, jtree_root(&t)->first); e != NULL; e = jtree_node(&t, e->next), i++)
		assert_int_equal(e->integer, (long long)i);
	assert_int_equal(i, n);
	jtree_free(&t);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shape),
	    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_many_nodes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
