/*
 * Unit tests for lib/pbjson.c: round trips over every field kind, the exact text
 * of the mapping, and refusals naming the field.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "allot/v1/usage.pb-c.h"
#include "pbjson.h"
#include "testmsg.pb-c.h"

/* Packs msg into a new buffer; *len is set. The caller frees it. */
static uint8_t *
pack(const ProtobufCMessage *msg, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(msg);
	buf = malloc(*len + 1);
	assert_non_null(buf);
	protobuf_c_message_pack(msg, buf);
	return buf;
}

/* Encodes msg, decodes the text, and checks the packed bytes are the same. Returns the text. */
static char *
round_trip(const ProtobufCMessage *msg)
{
	struct strbuf sb;
	ProtobufCMessage *back;
	uint8_t *a, *b;
	size_t alen, blen;
	char err[256] = "";

	strbuf_init(&sb);
	assert_true(pbjson_encode(msg, &sb));
	back = pbjson_decode(msg->descriptor, sb.data, sb.len, err, sizeof(err));
	if (back == NULL)
		fail_msg("could not decode %s: %s", sb.data, err);
	a = pack(msg, &alen);
	b = pack(back, &blen);
	if (alen != blen || memcmp(a, b, alen) != 0)
		fail_msg("round trip changed the message: %s", sb.data);
	free(a);
	free(b);
	protobuf_c_message_free_unpacked(back, NULL);
	return strbuf_steal(&sb);
}

static void
test_round_trip_every_kind(void **state)
{
	Allot__Test__Everything m = ALLOT__TEST__EVERYTHING__INIT;
	Allot__Test__Inner inner = ALLOT__TEST__INNER__INIT, i1 = ALLOT__TEST__INNER__INIT,
	                   i2 = ALLOT__TEST__INNER__INIT;
	Allot__Test__Inner *rin[] = {&i1, &i2};
	int32_t r32[] = {INT32_MIN, -1, 0, INT32_MAX};
	int64_t r64[] = {INT64_MIN, -1, 0, INT64_MAX};
	char *rstr[] = {(char *)"", (char *)"plain", (char *)"quote \" backslash \\ tab \t",
	    (char *)"\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80"};
	uint8_t bin1[] = {0x00, 0xff, 0x10}, bin2[] = {0xfb};
	ProtobufCBinaryData rbytes[] = {{3, bin1}, {1, bin2}, {0, NULL}};
	Allot__Test__Color renum[] = {
	    ALLOT__TEST__COLOR__COLOR_BLUE, ALLOT__TEST__COLOR__COLOR_UNSPECIFIED};
	double rdouble[] = {-0.0, 1e308, -DBL_MIN, 0.1, 1.0 / 3.0};
	protobuf_c_boolean rbool[] = {1, 0};
	uint8_t bin[] = {0, 1, 2, 3, 254, 255};
	char *text;

	(void)state;
	m.f_int32 = INT32_MIN;
	m.f_sint32 = INT32_MAX;
	m.f_sfixed32 = -7;
	m.f_uint32 = UINT32_MAX;
	m.f_fixed32 = 4000000000u;
	m.f_int64 = INT64_MIN;
	m.f_sint64 = INT64_MAX;
	m.f_sfixed64 = -1;
	m.f_uint64 = UINT64_MAX;
	m.f_fixed64 = 1ULL << 63;
	m.f_float = 3.4028235e38f;
	m.f_double = -2.2250738585072014e-308;
	m.f_bool = 1;
	m.f_string = (char *)"line\nbreak \x01 control";
	m.f_bytes.data = bin;
	m.f_bytes.len = sizeof(bin);
	m.f_enum = ALLOT__TEST__COLOR__COLOR_RED;
	inner.label = (char *)"inner";
	inner.count = -42;
	m.f_inner = &inner;
	m.n_r_int32 = 4;
	m.r_int32 = r32;
	m.n_r_int64 = 4;
	m.r_int64 = r64;
	m.n_r_string = 4;
	m.r_string = rstr;
	m.n_r_bytes = 3;
	m.r_bytes = rbytes;
	i1.label = (char *)"one";
	i2.count = 2;
	m.n_r_inner = 2;
	m.r_inner = rin;
	m.n_r_enum = 2;
	m.r_enum = renum;
	m.n_r_double = 5;
	m.r_double = rdouble;
	m.n_r_bool = 2;
	m.r_bool = rbool;
	m.choice_case = ALLOT__TEST__EVERYTHING__CHOICE_O_INNER;
	m.o_inner = &i1;
	text = round_trip(&m.base);
	/* 64-bit integers travel as strings, 32-bit ones as numbers, enums by name. */
	assert_non_null(strstr(text, "\"fInt64\":\"-9223372036854775808\""));
	assert_non_null(strstr(text, "\"fUint64\":\"18446744073709551615\""));
	assert_non_null(strstr(text, "\"fInt32\":-2147483648"));
	assert_non_null(strstr(text, "\"fEnum\":\"COLOR_RED\""));
	assert_non_null(strstr(text, "\"fBytes\":\"AAECA/7/\""));
	assert_non_null(strstr(text, "\"fString\":\"line\\nbreak \\u0001 control\""));
	assert_non_null(strstr(text, "\"oInner\":{"));
	assert_null(strstr(text, "\"oString\""));
	assert_non_null(strstr(text, "\"child\":null"));
	free(text);

	/* The other oneof members, and a nested message of the same type. */
	m.choice_case = ALLOT__TEST__EVERYTHING__CHOICE_O_STRING;
	m.o_string = (char *)"chosen";
	m.child = &(Allot__Test__Everything)ALLOT__TEST__EVERYTHING__INIT;
	free(round_trip(&m.base));
	m.choice_case = ALLOT__TEST__EVERYTHING__CHOICE_O_INT32;
	m.o_int32 = 0;
	free(round_trip(&m.base));
}

static void
test_exact_text(void **state)
{
	Allot__Test__Inner m = ALLOT__TEST__INNER__INIT;
	Allot__Test__Everything e = ALLOT__TEST__EVERYTHING__INIT;
	struct strbuf sb;

	(void)state;
	m.label = (char *)"a\"b";
	m.count = 42;
	strbuf_init(&sb);
	assert_true(pbjson_encode(&m.base, &sb));
	assert_string_equal(sb.data, "{\"label\":\"a\\\"b\",\"count\":\"42\"}");
	strbuf_cleanup(&sb);

	/* Defaults are written, except unset messages (null) and the oneof members not chosen. */
	assert_true(pbjson_encode(&e.base, &sb));
	assert_non_null(strstr(sb.data, "{\"fInt32\":0,\"fSint32\":0,"));
	assert_non_null(
	    strstr(sb.data, "\"fString\":\"\",\"fBytes\":\"\",\"fEnum\":\"COLOR_UNSPECIFIED\""));
	assert_non_null(strstr(sb.data, "\"fInner\":null,\"rInt32\":[],"));
	assert_non_null(strstr(sb.data, "\"fBool\":false"));
	assert_null(strstr(sb.data, "oString"));
	strbuf_cleanup(&sb);
}

static void
test_decode_forms(void **state)
{
	static const char json[] =
	    "{\"f_int32\": \"-5\", \"fInt64\": 12, \"fUint64\": \"18446744073709551615\","
	    " \"fDouble\": \"NaN\", \"fFloat\": \"-Infinity\", \"fEnum\": 2, \"rEnum\": "
	    "[\"COLOR_RED\"],"
	    " \"fBytes\": \"_-8\", \"unknownField\": {\"x\": [1, 2]}, \"fString\": null,"
	    " \"fInner\": {\"label\": \"x\"}, \"fSint32\": 7.0, \"rString\": [\"\", \"b\"]}";
	Allot__Test__Everything *m;
	char err[256] = "";

	(void)state;
	m = (Allot__Test__Everything *)pbjson_decode(
	    &allot__test__everything__descriptor, json, strlen(json), err, sizeof(err));
	if (m == NULL)
		fail_msg("%s", err);
	assert_int_equal(m->f_int32, -5);
	assert_int_equal(m->f_int64, 12);
	assert_true(m->f_uint64 == UINT64_MAX);
	assert_true(isnan(m->f_double));
	assert_true(isinf(m->f_float) && m->f_float < 0);
	assert_int_equal(m->f_enum, ALLOT__TEST__COLOR__COLOR_BLUE);
	assert_int_equal(m->n_r_enum, 1);
	assert_int_equal(m->r_enum[0], ALLOT__TEST__COLOR__COLOR_RED);
	/* URL-safe base64 without padding: "_-8" is 0xff 0xef. */
	assert_int_equal(m->f_bytes.len, 2);
	assert_int_equal(m->f_bytes.data[0], 0xff);
	assert_int_equal(m->f_bytes.data[1], 0xef);
	assert_string_equal(m->f_string, "");
	assert_string_equal(m->f_inner->label, "x");
	assert_int_equal(m->f_sint32, 7);
	assert_int_equal(m->n_r_string, 2);
	assert_string_equal(m->r_string[0], "");
	protobuf_c_message_free_unpacked(&m->base, NULL);
}

static const struct {
	const char *json;
	const char *error;
} bad[] = {
    {"", "invalid JSON"},
    {"{\"fInt32\": 1,}", "invalid JSON"},
    {"[1, 2]", "expected a JSON object"},
    {"\"text\"", "expected a JSON object"},
    {"{\"fInt32\": 1.5}", "f_int32: expected an integer"},
    {"{\"fInt32\": 4294967296}", "f_int32: 4294967296 is out of range"},
    {"{\"fInt32\": \"12abc\"}", "f_int32: \"12abc\" is not an integer"},
    {"{\"fUint32\": -1}", "f_uint32: expected a non-negative integer"},
    {"{\"fUint64\": \"-1\"}", "f_uint64: expected a non-negative integer"},
    {"{\"fInt64\": \"99999999999999999999\"}", "f_int64: \"99999999999999999999\" is not"},
    {"{\"fInt64\": true}", "f_int64: expected an integer"},
    {"{\"fBool\": 1}", "f_bool: expected true or false"},
    {"{\"fString\": 5}", "f_string: expected a string"},
    {"{\"fBytes\": \"not base64!\"}", "f_bytes: not valid base64"},
    {"{\"fEnum\": \"COLOR_GREEN\"}", "f_enum: \"COLOR_GREEN\" is not a value of allot.test.Color"},
    {"{\"fInner\": [1]}", "f_inner: expected an object"},
    {"{\"rInt32\": 5}", "r_int32: expected an array"},
    {"{\"rInt32\": [1, \"x\"]}", "r_int32[1]: \"x\" is not an integer"},
    {"{\"rInner\": [{\"count\": {}}]}", "r_inner[0].count: expected an integer"},
    {"{\"oString\": \"a\", \"oInt32\": 1}", "another member of its oneof is already set"},
    {"{\"fDouble\": \"fast\"}", "f_double: expected a number"},
    {"{\"fInt32\": 1, \"fInt32\": 2}", "invalid JSON"},
};

static void
test_decode_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		ProtobufCMessage *m = pbjson_decode(&allot__test__everything__descriptor,
		    bad[i].json, strlen(bad[i].json), err, sizeof(err));

		if (m != NULL)
			fail_msg("accepted %s", bad[i].json);
		if (strstr(err, bad[i].error) == NULL)
			fail_msg("%s: error \"%s\" lacks \"%s\"", bad[i].json, err, bad[i].error);
	}
}

static void
test_depth_bound(void **state)
{
	char *json = malloc(40 * 12 + 64);
	char err[256] = "";
	size_t n = 0;

	(void)state;
	assert_non_null(json);
	for (int i = 0; i < 40; i++)
		n += (size_t)sprintf(json + n, "{\"child\":");
	n += (size_t)sprintf(json + n, "{}");
	for (int i = 0; i < 40; i++)
		json[n++] = '}';
	assert_null(pbjson_decode(&allot__test__everything__descriptor, json, n, err, sizeof(err)));
	assert_non_null(strstr(err, "nested more than"));
	free(json);
}

static void
test_invalid_utf8_refused(void **state)
{
	Allot__Test__Inner m = ALLOT__TEST__INNER__INIT, good = ALLOT__TEST__INNER__INIT;
	Allot__Test__Inner *list[] = {&good, &m};
	Allot__Test__Everything e = ALLOT__TEST__EVERYTHING__INIT;
	struct strbuf sb;

	(void)state;
	m.label = (char *)"bad \xc3\x28 byte";
	strbuf_init(&sb);
	assert_false(pbjson_encode(&m.base, &sb));
	strbuf_cleanup(&sb);
	assert_false(pbjson_strings_valid(&m.base));
	good.label = (char *)"\xe2\x82\xac fine";
	assert_true(pbjson_strings_valid(&good.base));
	/* Found in a repeated message field too, and not in a oneof member not chosen. */
	e.n_r_inner = 2;
	e.r_inner = list;
	assert_false(pbjson_strings_valid(&e.base));
	e.n_r_inner = 1;
	assert_true(pbjson_strings_valid(&e.base));
	e.o_string = (char *)"\xff";
	assert_true(pbjson_strings_valid(&e.base));
	e.choice_case = ALLOT__TEST__EVERYTHING__CHOICE_O_STRING;
	assert_false(pbjson_strings_valid(&e.base));
}

/* The real protos: a job record batch as the CLI sends it. */
static void
test_allot_ingest_request(void **state)
{
	static const char json[] =
	    "{\"site\":\"leonardo\",\"batchId\":\"b1\",\"records\":[{\"jobId\":\"48411710\","
	    "\"step\":\"\",\"startTime\":\"2026-11-21T08:12:40Z\",\"account\":\"acme\","
	    "\"partition\":\"boost_usr_prod\",\"gpus\":1,\"cpus\":8,\"memMb\":\"65536\","
	    "\"nodes\":1,\"elapsedS\":\"271\",\"state\":\"FAILED\"}]}";
	Allot__V1__IngestRequest *r;
	char err[256] = "", *text;

	(void)state;
	r = (Allot__V1__IngestRequest *)pbjson_decode(
	    &allot__v1__ingest_request__descriptor, json, strlen(json), err, sizeof(err));
	if (r == NULL)
		fail_msg("%s", err);
	assert_string_equal(r->site, "leonardo");
	assert_int_equal(r->n_records, 1);
	assert_int_equal(r->records[0]->elapsed_s, 271);
	assert_int_equal(r->records[0]->mem_mb, 65536);
	assert_string_equal(r->records[0]->partition, "boost_usr_prod");
	text = round_trip(&r->base);
	assert_non_null(strstr(text, "\"elapsedS\":\"271\""));
	free(text);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_every_kind),
	    cmocka_unit_test(test_exact_text),
	    cmocka_unit_test(test_decode_forms),
	    cmocka_unit_test(test_decode_errors),
	    cmocka_unit_test(test_depth_bound),
	    cmocka_unit_test(test_invalid_utf8_refused),
	    cmocka_unit_test(test_allot_ingest_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
