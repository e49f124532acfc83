/*
 * Unit tests for lib/stmthtml.c: names with <, &, quotes escaped everywhere; the
 * charts' bars, histogram and burn curve proportional to the figures (pixel values
 * worked out by hand); the HTML file verifies and fails after any changed byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "stmtfmt.h"
#include "stmthtml.h"

/* Three days; plan 3 GPU-hours; 1.5 used; users with markup in their names. */
static const char canon[] = "allot statement\t1\n"
                            "columns\tstatement\tproject\tfrom\tto\n"
                            "statement\ta<b&\"c'\t2026-11-01T00:00:00Z\t2026-11-04T00:00:00Z\n"
                            "columns\tplan\tburn_units\tplan_units\n"
                            "plan\t5400000\t10800000\n"
                            "columns\tsite\tsite\tunits\tgpu_hours\n"
                            "site\tleonardo\t3600000\t1.000000\n"
                            "site\tlumi\t1800000\t0.500000\n"
                            "columns\tuser\tuser\tunits\tgpu_hours\n"
                            "user\t<bo>\t5400000\t1.500000\n"
                            "columns\tday\tday\tunits\tgpu_hours\n"
                            "day\t2026-11-01\t3600000\t1.000000\n"
                            "day\t2026-11-03\t1800000\t0.500000\n"
                            "columns\tjob\tjob_id\tmean_utilization_pct\n"
                            "job\t1\t5.0\n"
                            "job\t2\t95.5\n"
                            "job\t3\t-\n"
                            "job\t4\t100.000\n";

static EVP_PKEY *
new_key(void)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *key = NULL;

	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_keygen(ctx, &key), 1);
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/* Renders canon signed by key into out (NUL-terminated). */
static void
render(EVP_PKEY *key, struct strbuf *out)
{
	char sig[STMTFMT_SIG_HEX + 1], err[256];

	assert_int_equal(stmtfmt_sign(key, canon, strlen(canon), sig), 0);
	strbuf_init(out);
	assert_int_equal(stmthtml_render(canon, strlen(canon), sig, out, err, sizeof(err)), 0);
	strbuf_putc(out, '\0');
	out->len--;
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
test_escape(void **state)
{
	struct strbuf sb;
	EVP_PKEY *key = new_key();

	(void)state;
	strbuf_init(&sb);
	stmthtml_escape(&sb, "a<b&\"c'>", 8);
	strbuf_putc(&sb, '\0');
	assert_string_equal(sb.data, "a&lt;b&amp;&quot;c&#39;&gt;");
	strbuf_cleanup(&sb);

	render(key, &sb);
	assert_null(strstr(sb.data, "<bo>"));
	assert_null(strstr(sb.data, "a<b"));
	assert_non_null(strstr(sb.data, "<title>Allot statement: a&lt;b&amp;&quot;c&#39;</title>"));
	assert_non_null(strstr(sb.data, "<td>&lt;bo&gt;</td>"));
	/* In the table, the bar's label and its tooltip. */
	assert_int_equal(count(sb.data, "&lt;bo&gt;"), 4);
	assert_null(strstr(sb.data, "<script"));
	/* The burn curve, use by site and by user, the efficiency histogram. */
	assert_int_equal(count(sb.data, "<svg "), 4);
	strbuf_cleanup(&sb);
	EVP_PKEY_free(key);
}

static void
test_charts_proportional(void **state)
{
	struct strbuf sb;
	EVP_PKEY *key = new_key();
	const char *site, *user, *eff;

	(void)state;
	render(key, &sb);
	site = strstr(sb.data, "<figure id=\"chart-site\">");
	user = strstr(sb.data, "<figure id=\"chart-user\">");
	eff = strstr(sb.data, "<figure id=\"chart-efficiency\">");
	assert_non_null(site);
	assert_non_null(user);
	assert_non_null(eff);
	/* The largest bar is STMTHTML_BAR_MAX long, half the units half as long. */
	assert_non_null(strstr(site, "width=\"400\" height=\"16\" data-units=\"3600000\""));
	assert_non_null(strstr(site, "width=\"200\" height=\"16\" data-units=\"1800000\""));
	assert_true(strstr(site, "data-units=\"1800000\"") < user);
	assert_non_null(strstr(user, "width=\"400\" height=\"16\" data-units=\"5400000\""));
	/* 5.0 in 0-10, 95.5 and 100 in 90-100, `-` left out and counted. */
	assert_non_null(
	    strstr(eff, "x=\"32\" y=\"100\" width=\"36\" height=\"80\" data-jobs=\"1\""));
	assert_non_null(
	    strstr(eff, "x=\"392\" y=\"20\" width=\"36\" height=\"160\" data-jobs=\"2\""));
	assert_non_null(strstr(eff, "3 jobs; <span id=\"jobs-without-metrics\">1</span> without"));
	/* Burn: 1 GPU-hour on day 1, 0.5 on day 3, against a plan of 3 (the top). */
	assert_non_null(
	    strstr(sb.data, "id=\"burn-plan\" x1=\"60\" y1=\"220\" x2=\"620\" y2=\"20\""));
	assert_non_null(
	    strstr(sb.data, "id=\"burn-use\" points=\"60,220 247,153 433,153 620,120\""));
	strbuf_cleanup(&sb);
	EVP_PKEY_free(key);
}

static void
test_verify_and_any_changed_byte_fails(void **state)
{
	EVP_PKEY *key = new_key(), *other = new_key();
	struct strbuf sb, back;
	char sig[STMTFMT_SIG_HEX + 1], err[256];
	char *pre;

	(void)state;
	render(key, &sb);
	assert_int_equal(stmtfmt_verify(key, sb.data, sb.len, err, sizeof(err)), 0);
	strbuf_init(&back);
	assert_int_equal(stmtfmt_from_file(sb.data, sb.len, &back, sig, err, sizeof(err)), 0);
	assert_int_equal(back.len, strlen(canon));
	assert_memory_equal(back.data, canon, back.len);
	strbuf_cleanup(&back);
	assert_int_equal(stmtfmt_verify(other, sb.data, sb.len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not the audit key's"));
	for (size_t i = 0; i < sb.len; i++) {
		char was = sb.data[i];

		sb.data[i] = was == '7' ? '8' : '7';
		if (stmtfmt_verify(key, sb.data, sb.len, err, sizeof(err)) == 0)
			fail_msg("byte %zu changed and the statement still verifies", i);
		sb.data[i] = was;
	}
	/* A figure changed in the embedded text alone. */
	pre = strstr(sb.data, "<pre id=\"allot-canonical\">");
	assert_non_null(pre);
	pre = strstr(pre, "3600000");
	assert_non_null(pre);
	pre[0] = '4';
	assert_int_equal(stmtfmt_verify(key, sb.data, sb.len, err, sizeof(err)), -1);
	pre[0] = '3';
	assert_int_equal(stmtfmt_verify(key, sb.data, sb.len, err, sizeof(err)), 0);
	/* An entity verify does not know. */
	pre = strstr(sb.data, "&lt;bo&gt;\t");
	if (pre == NULL)
		pre = strstr(strstr(sb.data, "<pre id"), "&lt;bo");
	assert_non_null(pre);
	memcpy(pre, "&lx;", 4);
	assert_int_equal(stmtfmt_verify(key, sb.data, sb.len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "&amp;"));
	strbuf_cleanup(&sb);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_charts_proportional),
	    cmocka_unit_test(test_verify_and_any_changed_byte_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
