/*
 * Unit tests for lib/stmtfmt.c: the canonical text's rules, its hash (worked out
 * apart with Python's hashlib), the CSV and JSON files byte for byte and back to the
 * same canonical bytes, and the signature: it verifies, and fails after any changed
 * byte and with another key. lib/stmthtml.c's HTML file: names with <, &, quotes
 * escaped; the charts' bars, histogram and burn curve at the pixels worked out by
 * hand; it verifies and fails after any changed byte.
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

/* A comma, quotes and an escaped TAB in one field; an empty field; an empty section. */
static const char canon[] = "allot statement\t1\n"
                            "columns\tstatement\tproject\tnote\n"
                            "statement\tacme\ta,b \"q\" c\\td\n"
                            "columns\tsite\tsite\tunits\n"
                            "site\tleonardo\t3600000\n"
                            "site\tlumi\t\n"
                            "columns\tday\tday\tunits\n";

static const char canon_hash[] = "69480c54ca83104f8214996411d966302b4093818aedb6448fc3dd656d26a4eb";

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

static void
test_check_and_hash(void **state)
{
	char err[256], hex[STMTFMT_HASH_HEX + 1];

	(void)state;
	assert_int_equal(stmtfmt_check(canon, strlen(canon), err, sizeof(err)), 0);
	assert_int_equal(stmtfmt_hash_hex(canon, strlen(canon), hex), 0);
	assert_string_equal(hex, canon_hash);
}

static void
test_check_refusals(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"allot statement\t2\n", "line 1"},
	    {"allot statement\t1\nsite\tx\n", "line 2: a row outside its section"},
	    {"allot statement\t1\ncolumns\tsite\ta\tb\nsite\tx\n", "line 3: section site has 2"},
	    {"allot statement\t1\ncolumns\tsite\ta\nday\tx\n", "line 3: a row outside"},
	    {"allot statement\t1\ncolumns\tsite\ta\nsite\tx\r\n",
	        "line 3: empty, or holds a raw CR"},
	    {"allot statement\t1\ncolumns\tsite\ta\n\n", "line 3: empty"},
	    {"allot statement\t1\ncolumns\tsite\ta\nsite\tx", "not ended by LF"},
	    {"allot statement\t1\ncolumns\tsite\n", "line 2: a columns line"},
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(
		    stmtfmt_check(bad[i].text, strlen(bad[i].text), err, sizeof(err)), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, bad[i].why);
	}
}

static void
test_csv_round_trip(void **state)
{
	EVP_PKEY *key = new_key();
	char sig[STMTFMT_SIG_HEX + 1], back_sig[STMTFMT_SIG_HEX + 1], err[256];
	struct strbuf csv, back, expect;

	(void)state;
	assert_int_equal(stmtfmt_sign(key, canon, strlen(canon), sig), 0);
	strbuf_init(&csv);
	strbuf_init(&back);
	strbuf_init(&expect);
	assert_int_equal(stmtfmt_to_csv(canon, strlen(canon), sig, &csv, err, sizeof(err)), 0);
	strbuf_printf(&expect,
	    "allot statement,1\n"
	    "columns,statement,project,note\n"
	    "statement,acme,\"a,b \"\"q\"\" c\\td\"\n"
	    "columns,site,site,units\n"
	    "site,leonardo,3600000\n"
	    "site,lumi,\n"
	    "columns,day,day,units\n"
	    "signature,%s\n",
	    sig);
	assert_string_equal(csv.data, expect.data);
	assert_int_equal(
	    stmtfmt_from_file(csv.data, csv.len, &back, back_sig, err, sizeof(err)), 0);
	assert_string_equal(back.data, canon);
	assert_string_equal(back_sig, sig);
	assert_int_equal(stmtfmt_verify(key, csv.data, csv.len, err, sizeof(err)), 0);
	strbuf_cleanup(&csv);
	strbuf_cleanup(&back);
	strbuf_cleanup(&expect);
	EVP_PKEY_free(key);
}

static void
test_json_round_trip(void **state)
{
	EVP_PKEY *key = new_key();
	char sig[STMTFMT_SIG_HEX + 1], back_sig[STMTFMT_SIG_HEX + 1], err[256];
	struct strbuf back;
	json_t *doc, *sec, *row;
	char *text;

	(void)state;
	assert_int_equal(stmtfmt_sign(key, canon, strlen(canon), sig), 0);
	doc = stmtfmt_to_json(canon, strlen(canon), sig, err, sizeof(err));
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "statementHash")), canon_hash);
	sec = json_array_get(json_object_get(doc, "sections"), 0);
	row = json_array_get(json_object_get(sec, "rows"), 0);
	assert_string_equal(json_string_value(json_object_get(row, "note")), "a,b \"q\" c\\td");
	text = json_dumps(doc, JSON_INDENT(2));
	json_decref(doc);
	assert_non_null(text);
	strbuf_init(&back);
	assert_int_equal(
	    stmtfmt_from_file(text, strlen(text), &back, back_sig, err, sizeof(err)), 0);
	assert_string_equal(back.data, canon);
	assert_string_equal(back_sig, sig);
	assert_int_equal(stmtfmt_verify(key, text, strlen(text), err, sizeof(err)), 0);
	strbuf_cleanup(&back);
	free(text);
	EVP_PKEY_free(key);
}

static void
test_any_changed_byte_fails(void **state)
{
	EVP_PKEY *key = new_key(), *other = new_key();
	char sig[STMTFMT_SIG_HEX + 1], err[256];
	struct strbuf csv;
	size_t body;

	(void)state;
	assert_int_equal(stmtfmt_sign(key, canon, strlen(canon), sig), 0);
	strbuf_init(&csv);
	assert_int_equal(stmtfmt_to_csv(canon, strlen(canon), sig, &csv, err, sizeof(err)), 0);
	assert_int_equal(stmtfmt_verify(other, csv.data, csv.len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not the audit key's"));
	/* Every byte of the file, the signature's included, LFs excepted. */
	body = csv.len;
	for (size_t i = 0; i < body; i++) {
		char was = csv.data[i];

		if (was == '\n')
			continue;
		csv.data[i] = was == '7' ? '8' : '7';
		if (stmtfmt_verify(key, csv.data, csv.len, err, sizeof(err)) == 0)
			fail_msg("byte %zu changed and the statement still verifies", i);
		csv.data[i] = was;
	}
	assert_int_equal(stmtfmt_verify(key, csv.data, csv.len, err, sizeof(err)), 0);
	/* A line removed, and text after the signature. */
	assert_int_equal(stmtfmt_verify(key, csv.data + strlen("allot statement,1\n"),
	                     csv.len - strlen("allot statement,1\n"), err, sizeof(err)),
	    -1);
	strbuf_puts(&csv, "site,x,1\n");
	assert_int_equal(stmtfmt_verify(key, csv.data, csv.len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "after the signature"));
	strbuf_cleanup(&csv);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

static void
test_json_changes_fail(void **state)
{
	EVP_PKEY *key = new_key();
	char sig[STMTFMT_SIG_HEX + 1], err[256];
	json_t *doc;
	char *text, *p;

	(void)state;
	assert_int_equal(stmtfmt_sign(key, canon, strlen(canon), sig), 0);
	doc = stmtfmt_to_json(canon, strlen(canon), sig, err, sizeof(err));
	assert_non_null(doc);
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	assert_non_null(text);
	p = strstr(text, "3600000");
	assert_non_null(p);
	p[0] = '4';
	assert_int_equal(stmtfmt_verify(key, text, strlen(text), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "statementHash does not match"));
	p[0] = '3';
	assert_int_equal(stmtfmt_verify(key, text, strlen(text), err, sizeof(err)), 0);
	p = strstr(text, "\"units\"");
	assert_non_null(p);
	memcpy(p, "\"unitz\"", 7);
	assert_int_equal(stmtfmt_verify(key, text, strlen(text), err, sizeof(err)), -1);
	free(text);
	EVP_PKEY_free(key);
}

/* The HTML file (lib/stmthtml.c). */

/* Three days; plan 3 GPU-hours; 1.5 used; users with markup in their names. */
static const char html_canon[] = "allot statement\t1\n"
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

/* Renders html_canon signed by key into out (NUL-terminated). */
static void
render_html(EVP_PKEY *key, struct strbuf *out)
{
	char sig[STMTFMT_SIG_HEX + 1], err[256];

	assert_int_equal(stmtfmt_sign(key, html_canon, strlen(html_canon), sig), 0);
	strbuf_init(out);
	assert_int_equal(
	    stmthtml_render(html_canon, strlen(html_canon), sig, out, err, sizeof(err)), 0);
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
test_html_escape(void **state)
{
	struct strbuf sb;
	EVP_PKEY *key = new_key();

	(void)state;
	strbuf_init(&sb);
	stmthtml_escape(&sb, "a<b&\"c'>", 8);
	strbuf_putc(&sb, '\0');
	assert_string_equal(sb.data, "a&lt;b&amp;&quot;c&#39;&gt;");
	strbuf_cleanup(&sb);

	render_html(key, &sb);
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
test_html_charts_proportional(void **state)
{
	struct strbuf sb;
	EVP_PKEY *key = new_key();
	const char *site, *user, *eff;

	(void)state;
	render_html(key, &sb);
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
test_html_verify_and_any_changed_byte_fails(void **state)
{
	EVP_PKEY *key = new_key(), *other = new_key();
	struct strbuf sb, back;
	char sig[STMTFMT_SIG_HEX + 1], err[256];
	char *pre;

	(void)state;
	render_html(key, &sb);
	assert_int_equal(stmtfmt_verify(key, sb.data, sb.len, err, sizeof(err)), 0);
	strbuf_init(&back);
	assert_int_equal(stmtfmt_from_file(sb.data, sb.len, &back, sig, err, sizeof(err)), 0);
	assert_int_equal(back.len, strlen(html_canon));
	assert_memory_equal(back.data, html_canon, back.len);
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
	    cmocka_unit_test(test_check_and_hash),
	    cmocka_unit_test(test_check_refusals),
	    cmocka_unit_test(test_csv_round_trip),
	    cmocka_unit_test(test_json_round_trip),
	    cmocka_unit_test(test_any_changed_byte_fails),
	    cmocka_unit_test(test_json_changes_fail),
	    cmocka_unit_test(test_html_escape),
	    cmocka_unit_test(test_html_charts_proportional),
	    cmocka_unit_test(test_html_verify_and_any_changed_byte_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
