/*
 * Unit tests for lib/pbjson.c: round trips over every field kind (the packed
 * bytes before and after must be equal), the exact text of the mapping, decoding
 * of every accepted form, refusals naming the field, the depth bound, proto3
 * optional fields (described by hand: protoc-c 1.4 cannot compile them), maps,
 * and the real allot.v1 messages.
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
#include <jansson.h>

#include "allot/v1/ledger.pb-c.h"
#include "allot/v1/usage.pb-c.h"
#include "pbjson.h"
#include "testmsg.pb-c.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Packs msg into a new buffer; *len is set. The caller frees it. */
static uint8_t *
pack(const ProtobufCMessage *msg, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(msg);
	buf = malloc(*len + 1);
	assert_non_null(buf);
	assert_int_equal(protobuf_c_message_pack(msg, buf), *len);
	return buf;
}

static void
assert_same_message(const ProtobufCMessage *a, const ProtobufCMessage *b, const char *text)
{
	uint8_t *pa, *pb;
	size_t alen, blen;

	assert_ptr_equal(a->descriptor, b->descriptor);
	pa = pack(a, &alen);
	pb = pack(b, &blen);
	if (alen != blen || memcmp(pa, pb, alen) != 0)
		fail_msg("the message changed on its way through %s", text);
	free(pa);
	free(pb);
}

/* Encodes msg; fails the test if it cannot. The caller frees the text. */
static char *
encode(const ProtobufCMessage *msg)
{
	struct strbuf sb;

	strbuf_init(&sb);
	assert_true(pbjson_encode(msg, &sb));
	assert_false(strbuf_failed(&sb));
	assert_non_null(sb.data);
	assert_int_equal(strlen(sb.data), sb.len);
	return strbuf_steal(&sb);
}

/* Decodes json as desc; fails the test with the reason if it cannot. */
static ProtobufCMessage *
decode(const ProtobufCMessageDescriptor *desc, const char *json)
{
	char err[256] = "";
	ProtobufCMessage *m = pbjson_decode(desc, json, strlen(json), err, sizeof(err));

	if (m == NULL)
		fail_msg("could not decode %s: %s", json, err);
	assert_ptr_equal(m->descriptor, desc);
	return m;
}

/* message -> JSON -> message, which must pack to the same bytes. Returns the text. */
static char *
round_trip(const ProtobufCMessage *msg)
{
	char *text = encode(msg);
	ProtobufCMessage *back = decode(msg->descriptor, text);

	assert_same_message(msg, back, text);
	protobuf_c_message_free_unpacked(back, NULL);
	return text;
}

static void
assert_contains(const char *text, const char *part)
{
	assert_non_null(text);
	if (strstr(text, part) == NULL)
		fail_msg("%s lacks %s", text, part);
}

/* ---- round trips ---- */

static void
test_round_trip_every_kind(void **state)
{
	Allot__Test__Everything m = ALLOT__TEST__EVERYTHING__INIT;
	Allot__Test__Everything child = ALLOT__TEST__EVERYTHING__INIT;
	Allot__Test__Inner inner = ALLOT__TEST__INNER__INIT, i1 = ALLOT__TEST__INNER__INIT,
	                   i2 = ALLOT__TEST__INNER__INIT;
	Allot__Test__Inner *rin[] = {&i1, &i2};
	int32_t r32[] = {INT32_MIN, -1, 0, INT32_MAX};
	int64_t r64[] = {INT64_MIN, -1, 0, INT64_MAX};
	uint32_t ru32[] = {0, 1, UINT32_MAX};
	uint64_t ru64[] = {0, (uint64_t)INT64_MAX + 1, UINT64_MAX};
	char *rstr[] = {(char *)"", (char *)"plain", (char *)"quote \" backslash \\ tab \t",
	    (char *)"\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80"};
	uint8_t bin1[] = {0x00, 0xff, 0x10}, bin2[] = {0xfb}, bin3[] = {0xff, 0xfe, 0xfd, 0};
	ProtobufCBinaryData rbytes[] = {{3, bin1}, {1, bin2}, {0, NULL}, {4, bin3}};
	Allot__Test__Color renum[] = {ALLOT__TEST__COLOR__COLOR_BLUE,
	    ALLOT__TEST__COLOR__COLOR_UNSPECIFIED, ALLOT__TEST__COLOR__COLOR_BELOW};
	double rdouble[] = {-0.0, 1e308, -DBL_MIN, 0.1, 1.0 / 3.0, 5e-324, NAN, -INFINITY};
	float rfloat[] = {-0.0f, FLT_MAX, FLT_MIN, 0.1f, 1e-45f, INFINITY};
	protobuf_c_boolean rbool[] = {1, 0};
	uint8_t bin[] = {0, 1, 2, 3, 254, 255};
	char *text;

	(void)state;
	m.f_int32 = INT32_MIN;
	m.f_sint32 = INT32_MAX;
	m.f_sfixed32 = INT32_MIN;
	m.f_uint32 = UINT32_MAX;
	m.f_fixed32 = 4000000000u;
	m.f_int64 = INT64_MIN;
	m.f_sint64 = INT64_MAX;
	m.f_sfixed64 = INT64_MIN;
	m.f_uint64 = UINT64_MAX;
	m.f_fixed64 = 1ULL << 63;
	m.f_float = 3.4028235e38f;
	m.f_double = -2.2250738585072014e-308;
	m.f_bool = 1;
	m.f_string = (char *)"line\nbreak \x01 control \xe2\x80\xa8";
	m.f_bytes.data = bin;
	m.f_bytes.len = sizeof(bin);
	m.f_enum = ALLOT__TEST__COLOR__COLOR_RED;
	inner.label = (char *)"inner";
	inner.count = -42;
	m.f_inner = &inner;
	m.n_r_int32 = NELEM(r32);
	m.r_int32 = r32;
	m.n_r_sint32 = NELEM(r32);
	m.r_sint32 = r32;
	m.n_r_sfixed32 = NELEM(r32);
	m.r_sfixed32 = r32;
	m.n_r_uint32 = NELEM(ru32);
	m.r_uint32 = ru32;
	m.n_r_fixed32 = NELEM(ru32);
	m.r_fixed32 = ru32;
	m.n_r_int64 = NELEM(r64);
	m.r_int64 = r64;
	m.n_r_sint64 = NELEM(r64);
	m.r_sint64 = r64;
	m.n_r_sfixed64 = NELEM(r64);
	m.r_sfixed64 = r64;
	m.n_r_uint64 = NELEM(ru64);
	m.r_uint64 = ru64;
	m.n_r_fixed64 = NELEM(ru64);
	m.r_fixed64 = ru64;
	m.n_r_string = NELEM(rstr);
	m.r_string = rstr;
	m.n_r_bytes = NELEM(rbytes);
	m.r_bytes = rbytes;
	i1.label = (char *)"one";
	i2.count = 2;
	m.n_r_inner = NELEM(rin);
	m.r_inner = rin;
	m.n_r_enum = NELEM(renum);
	m.r_enum = renum;
	m.n_r_double = NELEM(rdouble);
	m.r_double = rdouble;
	m.n_r_float = NELEM(rfloat);
	m.r_float = rfloat;
	m.n_r_bool = NELEM(rbool);
	m.r_bool = rbool;
	m.gpu_ms_2nd = -1;
	m.choice_case = ALLOT__TEST__EVERYTHING__CHOICE_O_INNER;
	m.o_inner = &i1;
	child.f_string = (char *)"nested";
	child.n_r_inner = NELEM(rin);
	child.r_inner = rin;
	m.child = &child;
	text = round_trip(&m.base);
	/* 64-bit integers travel as strings, 32-bit ones as numbers, enums by name. */
	assert_contains(text, "\"fInt64\":\"-9223372036854775808\"");
	assert_contains(text, "\"fUint64\":\"18446744073709551615\"");
	assert_contains(text, "\"fFixed64\":\"9223372036854775808\"");
	assert_contains(text, "\"fInt32\":-2147483648,");
	assert_contains(text, "\"fUint32\":4294967295,");
	assert_contains(text, "\"fEnum\":\"COLOR_RED\"");
	assert_contains(text, "\"rEnum\":[\"COLOR_BLUE\",\"COLOR_UNSPECIFIED\",\"COLOR_BELOW\"]");
	assert_contains(text, "\"fBytes\":\"AAECA/7/\"");
	assert_contains(text, "\"rBytes\":[\"AP8Q\",\"+w==\",\"\",\"//79AA==\"]");
	assert_contains(text, "\"fString\":\"line\\nbreak \\u0001 control \xe2\x80\xa8\"");
	assert_contains(text, "\"rDouble\":[-0.0,1e+308,");
	assert_contains(text, "\"NaN\",\"-Infinity\"]");
	assert_contains(text, "\"rFloat\":[-0.0,3.4028235e+38,");
	assert_contains(text, "\"gpuMs2nd\":\"-1\"");
	assert_contains(text, "\"oInner\":{\"label\":\"one\",\"count\":\"0\"}");
	assert_contains(text, "\"child\":{\"fInt32\":0,");
	assert_null(strstr(text, "\"oString\""));
	assert_null(strstr(text, "\"oInt32\""));
	free(text);

	/* The other oneof members, each also with its zero value, which must survive. */
	m.choice_case = ALLOT__TEST__EVERYTHING__CHOICE_O_STRING;
	m.o_string = (char *)"chosen";
	text = round_trip(&m.base);
	assert_contains(text, "\"oString\":\"chosen\"");
	assert_null(strstr(text, "\"oInner\""));
	free(text);
	m.o_string = (char *)"";
	text = round_trip(&m.base);
	assert_contains(text, "\"oString\":\"\"");
	free(text);
	m.choice_case = ALLOT__TEST__EVERYTHING__CHOICE_O_INT32;
	m.o_int32 = 0;
	text = round_trip(&m.base);
	assert_contains(text, "\"oInt32\":0");
	free(text);
	m.choice_case = ALLOT__TEST__EVERYTHING__CHOICE_O_BYTES;
	m.o_bytes.data = bin2;
	m.o_bytes.len = 1;
	text = round_trip(&m.base);
	assert_contains(text, "\"oBytes\":\"+w==\"");
	free(text);
	m.o_bytes.len = 0;
	free(round_trip(&m.base));
	m.choice_case = ALLOT__TEST__EVERYTHING__CHOICE_O_INNER;
	m.o_inner = &(Allot__Test__Inner)ALLOT__TEST__INNER__INIT;
	text = round_trip(&m.base);
	assert_contains(text, "\"oInner\":{\"label\":\"\",\"count\":\"0\"}");
	free(text);

	/* Enum numbers this side does not know stay numbers. */
	m.f_enum = (Allot__Test__Color)7;
	renum[1] = (Allot__Test__Color)-100;
	text = round_trip(&m.base);
	assert_contains(text, "\"fEnum\":7,");
	assert_contains(text, "\"rEnum\":[\"COLOR_BLUE\",-100,\"COLOR_BELOW\"]");
	free(text);
}

/* Doubles and floats: the text written, and the exact value read back. */
static const struct {
	double v;
	bool is_float;
	const char *text;
} numbers[] = {
    {0.0, false, "0"},
    {-0.0, false, "-0.0"},
    {0.1, false, "0.1"},
    {-2.5, false, "-2.5"},
    {1.0 / 3.0, false, "0.3333333333333333"},
    {123456789.0, false, "123456789"},
    {1e15, false, "1e+15"},
    {1e308, false, "1e+308"},
    {-1e308, false, "-1e+308"},
    {DBL_MAX, false, "1.7976931348623157e+308"},
    {DBL_MIN, false, "2.2250738585072014e-308"},
    {5e-324, false, "4.94065645841247e-324"},
    {NAN, false, "\"NaN\""},
    {INFINITY, false, "\"Infinity\""},
    {-INFINITY, false, "\"-Infinity\""},
    {0.1f, true, "0.1"},
    {-0.0f, true, "-0.0"},
    {3.0f, true, "3"},
    {16777216.0f, true, "16777216"},
    {FLT_MAX, true, "3.4028235e+38"},
    {-FLT_MAX, true, "-3.4028235e+38"},
    {FLT_MIN, true, "1.1754944e-38"},
    {1e-45f, true, "1.4013e-45"},
    {NAN, true, "\"NaN\""},
    {-INFINITY, true, "\"-Infinity\""},
};

static void
test_round_trip_numbers(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(numbers); i++) {
		Allot__Test__Everything m = ALLOT__TEST__EVERYTHING__INIT;
		double d = numbers[i].v;
		float f = (float)numbers[i].v;
		char want[64], *text;

		/* The repeated copy is packed even when zero: it carries the sign of -0.0. */
		if (numbers[i].is_float) {
			m.f_float = f;
			m.n_r_float = 1;
			m.r_float = &f;
			snprintf(want, sizeof(want), "\"fFloat\":%s,", numbers[i].text);
		} else {
			m.f_double = d;
			m.n_r_double = 1;
			m.r_double = &d;
			snprintf(want, sizeof(want), "\"fDouble\":%s,", numbers[i].text);
		}
		text = round_trip(&m.base);
		assert_contains(text, want);
		free(text);
	}
}

/* ---- exact text ---- */

static void
test_exact_text(void **state)
{
	Allot__Test__Inner m = ALLOT__TEST__INNER__INIT;
	Allot__Test__Everything e = ALLOT__TEST__EVERYTHING__INIT;
	Allot__V1__JobRecord r = ALLOT__V1__JOB_RECORD__INIT;
	char *text;

	(void)state;
	m.label = (char *)"a\"b";
	m.count = 42;
	text = encode(&m.base);
	assert_string_equal(text, "{\"label\":\"a\\\"b\",\"count\":\"42\"}");
	free(text);

	/* Every field, defaults included, in field number order; an unset message is null,
	 * an empty map {}, the oneof members not chosen are left out. */
	text = encode(&e.base);
	assert_string_equal(text,
	    "{\"fInt32\":0,\"fSint32\":0,\"fSfixed32\":0,\"fUint32\":0,\"fFixed32\":0,"
	    "\"fInt64\":\"0\",\"fSint64\":\"0\",\"fSfixed64\":\"0\",\"fUint64\":\"0\","
	    "\"fFixed64\":\"0\",\"fFloat\":0,\"fDouble\":0,\"fBool\":false,\"fString\":\"\","
	    "\"fBytes\":\"\",\"fEnum\":\"COLOR_UNSPECIFIED\",\"fInner\":null,\"rInt32\":[],"
	    "\"rInt64\":[],\"rString\":[],\"rBytes\":[],\"rInner\":[],\"rEnum\":[],"
	    "\"rDouble\":[],\"rBool\":[],\"child\":null,\"rSint32\":[],\"rSfixed32\":[],"
	    "\"rUint32\":[],\"rFixed32\":[],\"rSint64\":[],\"rSfixed64\":[],\"rUint64\":[],"
	    "\"rFixed64\":[],\"rFloat\":[],\"mCounts\":{},\"gpuMs2nd\":\"0\"}");
	free(text);

	/* A real message, as the CLI sends it. */
	r.job_id = (char *)"48411710";
	r.start_time = (char *)"2026-11-21T08:12:40Z";
	r.gpus = 4;
	r.mem_mb = 262144;
	r.elapsed_s = 9000000000;
	text = encode(&r.base);
	assert_string_equal(text,
	    "{\"jobId\":\"48411710\",\"step\":\"\",\"startTime\":\"2026-11-21T08:12:40Z\","
	    "\"account\":\"\",\"user\":\"\",\"partition\":\"\",\"gpus\":4,\"cpus\":0,"
	    "\"memMb\":\"262144\",\"nodes\":0,\"elapsedS\":\"9000000000\",\"state\":\"\","
	    "\"nodeList\":\"\"}");
	free(text);
}

static void
test_string_escapes(void **state)
{
	Allot__Test__Inner m = ALLOT__TEST__INNER__INIT;
	char raw[64], *text;
	size_t n = 0;
	json_t *j;

	(void)state;
	for (int c = 1; c < 0x20; c++)
		raw[n++] = (char)c;
	memcpy(raw + n, "\"\\/\x7f", 5);
	m.label = raw;
	text = encode(&m.base);
	assert_string_equal(text,
	    "{\"label\":\"\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f"
	    "\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018"
	    "\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\\"\\\\/\x7f\",\"count\":\"0\"}");
	/* A strict parser reads the same string back. */
	j = json_loads(text, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "label")), raw);
	json_decref(j);
	free(text);
	free(round_trip(&m.base));
}

/* UTF-8 at the edges of each sequence length, and what is not UTF-8. */
static const struct {
	const char *s;
	bool valid;
} utf8[] = {
    {"\xc2\x80", true},                   /* U+0080 */
    {"\xdf\xbf", true},                   /* U+07FF */
    {"\xe0\xa0\x80", true},               /* U+0800 */
    {"\xed\x9f\xbf", true},               /* U+D7FF */
    {"\xee\x80\x80", true},               /* U+E000 */
    {"\xef\xbf\xbf", true},               /* U+FFFF */
    {"\xf0\x90\x80\x80", true},           /* U+10000 */
    {"\xf4\x8f\xbf\xbf", true},           /* U+10FFFF */
    {"\x80", false},                      /* a lone continuation byte */
    {"\xc0\xaf", false},                  /* overlong "/" */
    {"\xc1\xbf", false},                  /* overlong */
    {"\xe0\x9f\xbf", false},              /* overlong */
    {"\xed\xa0\x80", false},              /* a surrogate, U+D800 */
    {"\xf0\x8f\xbf\xbf", false},          /* overlong */
    {"\xf4\x90\x80\x80", false},          /* past U+10FFFF */
    {"\xf5\x80\x80\x80", false},          /* never a lead byte */
    {"\xff", false},                      /* never a lead byte */
    {"\xe2\x82", false},                  /* cut short at the end */
    {"\xf0\x9f\x9a", false},              /* cut short at the end */
    {"\xc3\x28", false},                  /* no continuation */
    {"ok \xe2\x82\xac then \xc3", false}, /* valid, then cut short */
};

static void
test_utf8(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(utf8); i++) {
		Allot__Test__Inner m = ALLOT__TEST__INNER__INIT;
		Allot__Test__Inner *list[] = {&m};
		Allot__Test__Everything e = ALLOT__TEST__EVERYTHING__INIT;
		struct strbuf sb;
		bool ok;

		m.label = (char *)utf8[i].s;
		strbuf_init(&sb);
		ok = pbjson_encode(&m.base, &sb);
		if (ok != utf8[i].valid)
			fail_msg("utf8[%zu]: encode said %d", i, ok);
		if (ok) {
			assert_non_null(strstr(sb.data, utf8[i].s));
			free(round_trip(&m.base));
		}
		strbuf_cleanup(&sb);
		assert_int_equal(pbjson_strings_valid(&m.base), utf8[i].valid);
		/* Found in a repeated message of a message too. */
		e.n_r_inner = 1;
		e.r_inner = list;
		assert_int_equal(pbjson_strings_valid(&e.base), utf8[i].valid);
	}
}

static void
test_strings_valid_where(void **state)
{
	Allot__Test__Everything e = ALLOT__TEST__EVERYTHING__INIT;
	Allot__Test__Everything child = ALLOT__TEST__EVERYTHING__INIT;
	char *list[] = {(char *)"fine", (char *)"\xff"};

	(void)state;
	assert_true(pbjson_strings_valid(&e.base));
	/* A oneof member that is not chosen is not looked at. */
	e.o_string = (char *)"\xff";
	assert_true(pbjson_strings_valid(&e.base));
	e.choice_case = ALLOT__TEST__EVERYTHING__CHOICE_O_STRING;
	assert_false(pbjson_strings_valid(&e.base));
	e.choice_case = ALLOT__TEST__EVERYTHING__CHOICE__NOT_SET;
	e.n_r_string = 1;
	e.r_string = list;
	assert_true(pbjson_strings_valid(&e.base));
	e.n_r_string = 2;
	assert_false(pbjson_strings_valid(&e.base));
	e.n_r_string = 0;
	e.child = &child;
	assert_true(pbjson_strings_valid(&e.base));
	child.f_string = (char *)"\xc0\x80";
	assert_false(pbjson_strings_valid(&e.base));
}

/* ---- decoding ---- */

static void
test_decode_forms(void **state)
{
	static const char json[] =
	    "{\"f_int32\": \"-5\", \"fInt64\": 12, \"f_uint64\": \"18446744073709551615\","
	    " \"fSint64\": -9223372036854775808, \"fSfixed64\": \"-9223372036854775808\","
	    " \"fFixed64\": 1e19, \"fUint32\": \"4294967295\", \"fFixed32\": 4294967295.0,"
	    " \"fDouble\": \"NaN\", \"fFloat\": \"-Infinity\", \"fEnum\": 2,"
	    " \"rEnum\": [\"COLOR_RED\", -3, 9, \"COLOR_BELOW\"], \"rDouble\": [\"1.5e3\", -2,"
	    " \"Infinity\", \"-0.25\"], \"fBytes\": \"_-8\", \"fString\": null,"
	    " \"fInner\": {\"label\": \"x\", \"count\": \"-7\"}, \"fSint32\": 7.0,"
	    " \"rString\": [\"\", \"b\"], \"gpu_ms_2nd\": \"0\", \"fSfixed32\": -0,"
	    " \"r_inner\": [{}, {\"count\": 3}], \"fBool\": true, \"rBool\": [false, true],"
	    " \"mCounts\": {}, \"oInt32\": null, \"oString\": \"picked\"}";
	Allot__Test__Everything *m;

	(void)state;
	m = (Allot__Test__Everything *)decode(&allot__test__everything__descriptor, json);
	assert_int_equal(m->f_int32, -5);
	assert_int_equal(m->f_int64, 12);
	assert_true(m->f_uint64 == UINT64_MAX);
	assert_true(m->f_sint64 == INT64_MIN);
	assert_true(m->f_sfixed64 == INT64_MIN);
	assert_true(m->f_fixed64 == 10000000000000000000ULL);
	assert_true(m->f_uint32 == UINT32_MAX);
	assert_true(m->f_fixed32 == UINT32_MAX);
	assert_true(isnan(m->f_double));
	assert_true(isinf(m->f_float) && m->f_float < 0);
	assert_int_equal(m->f_enum, ALLOT__TEST__COLOR__COLOR_BLUE);
	assert_int_equal(m->n_r_enum, 4);
	assert_int_equal(m->r_enum[0], ALLOT__TEST__COLOR__COLOR_RED);
	assert_int_equal(m->r_enum[1], ALLOT__TEST__COLOR__COLOR_BELOW);
	assert_int_equal(m->r_enum[2], 9);
	assert_int_equal(m->r_enum[3], ALLOT__TEST__COLOR__COLOR_BELOW);
	assert_int_equal(m->n_r_double, 4);
	assert_true(m->r_double[0] == 1500.0);
	assert_true(m->r_double[1] == -2.0);
	assert_true(isinf(m->r_double[2]) && m->r_double[2] > 0);
	assert_true(m->r_double[3] == -0.25);
	/* URL-safe base64 without padding: "_-8" is 0xff 0xef. */
	assert_int_equal(m->f_bytes.len, 2);
	assert_int_equal(m->f_bytes.data[0], 0xff);
	assert_int_equal(m->f_bytes.data[1], 0xef);
	assert_string_equal(m->f_string, "");
	assert_non_null(m->f_inner);
	assert_string_equal(m->f_inner->label, "x");
	assert_int_equal(m->f_inner->count, -7);
	assert_int_equal(m->f_sint32, 7);
	assert_int_equal(m->f_sfixed32, 0);
	assert_int_equal(m->n_r_string, 2);
	assert_string_equal(m->r_string[0], "");
	assert_string_equal(m->r_string[1], "b");
	assert_int_equal(m->n_r_inner, 2);
	assert_int_equal(m->r_inner[0]->count, 0);
	assert_int_equal(m->r_inner[1]->count, 3);
	assert_true(m->f_bool);
	assert_int_equal(m->n_r_bool, 2);
	assert_false(m->r_bool[0]);
	assert_true(m->r_bool[1]);
	assert_int_equal(m->n_m_counts, 0);
	assert_int_equal(m->choice_case, ALLOT__TEST__EVERYTHING__CHOICE_O_STRING);
	assert_string_equal(m->o_string, "picked");
	assert_null(m->child);
	protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* Base64 in every accepted form. */
static const struct {
	const char *text;
	size_t len;
	const char *bytes;
} base64[] = {
    {"", 0, ""},
    {"AA==", 1, "\x00"},
    {"AA", 1, "\x00"},
    {"AAE=", 2, "\x00\x01"},
    {"AAE", 2, "\x00\x01"},
    {"AAEC", 3, "\x00\x01\x02"},
    {"/w==", 1, "\xff"},
    {"_w", 1, "\xff"},
    {"+/+/", 3, "\xfb\xff\xbf"},
    {"-_-_", 3, "\xfb\xff\xbf"},
    {"aGVsbG8gd29ybGQ=", 11, "hello world"},
};

static void
test_decode_base64(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(base64); i++) {
		char json[128];
		Allot__Test__Everything *m;

		snprintf(json, sizeof(json), "{\"fBytes\": \"%s\", \"rBytes\": [\"%s\"]}",
		    base64[i].text, base64[i].text);
		m = (Allot__Test__Everything *)decode(&allot__test__everything__descriptor, json);
		assert_int_equal(m->f_bytes.len, base64[i].len);
		assert_int_equal(m->n_r_bytes, 1);
		assert_int_equal(m->r_bytes[0].len, base64[i].len);
		if (base64[i].len > 0) {
			assert_memory_equal(m->f_bytes.data, base64[i].bytes, base64[i].len);
			assert_memory_equal(m->r_bytes[0].data, base64[i].bytes, base64[i].len);
		}
		protobuf_c_message_free_unpacked(&m->base, NULL);
	}
}

/* null reads as the default, for every kind of field. */
static void
test_decode_null(void **state)
{
	const ProtobufCMessageDescriptor *d = &allot__test__everything__descriptor;
	struct strbuf sb;
	Allot__Test__Everything *m;
	size_t len;
	uint8_t *packed;

	(void)state;
	strbuf_init(&sb);
	strbuf_putc(&sb, '{');
	for (unsigned i = 0; i < d->n_fields; i++)
		strbuf_printf(&sb, "%s\"%s\": null", i > 0 ? ", " : "", d->fields[i].name);
	strbuf_putc(&sb, '}');
	assert_false(strbuf_failed(&sb));
	m = (Allot__Test__Everything *)decode(d, sb.data);
	packed = pack(&m->base, &len);
	assert_int_equal(len, 0); /* nothing differs from the defaults */
	assert_int_equal(m->choice_case, ALLOT__TEST__EVERYTHING__CHOICE__NOT_SET);
	assert_null(m->f_inner);
	assert_null(m->child);
	assert_string_equal(m->f_string, "");
	free(packed);
	protobuf_c_message_free_unpacked(&m->base, NULL);
	strbuf_cleanup(&sb);
}

static void
test_decode_unknown_skipped(void **state)
{
	struct strbuf sb;
	Allot__Test__Everything *m;

	(void)state;
	strbuf_init(&sb);
	strbuf_puts(&sb,
	    "{\"newField\": 1, \"fInt32\": 3, \"other\": {\"fInt32\": \"x\"},"
	    " \"fInner\": {\"label\": \"in\", \"color\": [true, null]},"
	    " \"Fint32\": \"not me\", \"f_int_32\": 1, \"FInt32\": 2, \"deep\": ");
	/* The depth bound counts messages, not what is skipped. */
	for (int i = 0; i < 200; i++)
		strbuf_putc(&sb, '[');
	for (int i = 0; i < 200; i++)
		strbuf_putc(&sb, ']');
	strbuf_puts(&sb, ", \"rInt32\": [4], \"\": 0}");
	assert_false(strbuf_failed(&sb));
	m = (Allot__Test__Everything *)decode(&allot__test__everything__descriptor, sb.data);
	assert_int_equal(m->f_int32, 3);
	assert_string_equal(m->f_inner->label, "in");
	assert_int_equal(m->n_r_int32, 1);
	assert_int_equal(m->r_int32[0], 4);
	protobuf_c_message_free_unpacked(&m->base, NULL);
	strbuf_cleanup(&sb);
}

static const struct {
	const char *json;
	const char *error; /* a part of the reason */
} bad[] = {
    {"", "invalid JSON"},
    {"{\"fInt32\": 1,}", "invalid JSON"},
    {"{} x", "invalid JSON"},
    {"{\"fString\": \"\xff\"}", "invalid JSON"},
    {"{\"fInt32\": 1, \"fInt32\": 2}", "invalid JSON"},
    {"{\"fInt64\": 9223372036854775808}", "invalid JSON"},
    {"[1, 2]", "expected a JSON object"},
    {"\"text\"", "expected a JSON object"},
    {"null", "expected a JSON object"},
    {"42", "expected a JSON object"},
    {"{\"fInt32\": 1.5}", "f_int32: expected an integer, not 1.5"},
    {"{\"fInt32\": 1099511627776}", "f_int32: 1099511627776 is out of range for int32"},
    {"{\"fInt32\": -2147483649}", "f_int32: -2147483649 is out of range for int32"},
    {"{\"fInt32\": \"2147483648\"}", "f_int32: \"2147483648\" is out of range for int32"},
    {"{\"fSint32\": 3e10}", "f_sint32: 30000000000 is out of range for sint32"},
    {"{\"fSfixed32\": -3e10}", "f_sfixed32: -30000000000 is out of range for sfixed32"},
    {"{\"fInt32\": \"12abc\"}", "f_int32: expected an integer, not \"12abc\""},
    {"{\"fInt32\": \" 12\"}", "f_int32: expected an integer, not \" 12\""},
    {"{\"fInt32\": \"+12\"}", "f_int32: expected an integer, not \"+12\""},
    {"{\"fInt32\": \"1.0\"}", "f_int32: expected an integer, not \"1.0\""},
    {"{\"fInt32\": \"\"}", "f_int32: expected an integer, not \"\""},
    {"{\"fInt32\": \"-\"}", "f_int32: expected an integer, not \"-\""},
    {"{\"fInt32\": true}", "f_int32: expected an integer"},
    {"{\"fInt32\": [1]}", "f_int32: expected an integer"},
    {"{\"fUint32\": -1}", "f_uint32: -1 is out of range for uint32"},
    {"{\"fUint32\": \"-1\"}", "f_uint32: \"-1\" is out of range for uint32"},
    {"{\"fFixed32\": 4294967296}", "f_fixed32: 4294967296 is out of range for fixed32"},
    {"{\"fUint64\": \"-1\"}", "f_uint64: \"-1\" is out of range for uint64"},
    {"{\"fUint64\": -1.0}", "f_uint64: -1 is out of range for uint64"},
    {"{\"fUint64\": \"18446744073709551616\"}", "f_uint64: \"18446744073709551616\" is out"},
    {"{\"fFixed64\": 2e19}", "f_fixed64: 2e+19 is out of range"},
    {"{\"fInt64\": \"9223372036854775808\"}",
        "f_int64: \"9223372036854775808\" is out of range for int64"},
    {"{\"fSint64\": \"-9223372036854775809\"}",
        "f_sint64: \"-9223372036854775809\" is out of range for sint64"},
    {"{\"fInt64\": 1e19}", "f_int64: 1e+19 is out of range for int64"},
    {"{\"fInt64\": \"1e3\"}", "f_int64: expected an integer, not \"1e3\""},
    {"{\"fSfixed64\": {}}", "f_sfixed64: expected an integer"},
    {"{\"fBool\": 1}", "f_bool: expected true or false"},
    {"{\"fBool\": \"true\"}", "f_bool: expected true or false"},
    {"{\"fString\": 5}", "f_string: expected a string"},
    {"{\"fString\": \"a\\u0000b\"}", "f_string: a string must not contain NUL"},
    {"{\"fBytes\": \"not base64!\"}", "f_bytes: not valid base64"},
    {"{\"fBytes\": \"A\"}", "f_bytes: not valid base64"},
    {"{\"fBytes\": \"AA=\"}", "f_bytes: not valid base64"},
    {"{\"fBytes\": \"AAA==\"}", "f_bytes: not valid base64"},
    {"{\"fBytes\": \"A===\"}", "f_bytes: not valid base64"},
    {"{\"fBytes\": \"AA=A\"}", "f_bytes: not valid base64"},
    {"{\"fBytes\": \"AA AA\"}", "f_bytes: not valid base64"},
    {"{\"fBytes\": 12}", "f_bytes: expected a base64 string"},
    {"{\"fEnum\": \"COLOR_GREEN\"}", "f_enum: \"COLOR_GREEN\" is not a value of allot.test.Color"},
    {"{\"fEnum\": \"color_red\"}", "f_enum: \"color_red\" is not a value of allot.test.Color"},
    {"{\"fEnum\": \"1\"}", "f_enum: \"1\" is not a value of allot.test.Color"},
    {"{\"fEnum\": true}", "f_enum: expected a name of allot.test.Color"},
    {"{\"fEnum\": 4294967296}", "f_enum: 4294967296 is out of range for an enum"},
    {"{\"fEnum\": 1.5}", "f_enum: expected an integer, not 1.5"},
    {"{\"fFloat\": 1e39}", "f_float: 1e+39 is out of range for a float"},
    {"{\"fFloat\": \"-1e39\"}", "f_float: -1e+39 is out of range for a float"},
    {"{\"fDouble\": \"fast\"}", "f_double: expected a number, not \"fast\""},
    {"{\"fDouble\": \"1e999\"}", "f_double: \"1e999\" is out of range for a double"},
    {"{\"fDouble\": \"0x10\"}", "f_double: expected a number, not \"0x10\""},
    {"{\"fDouble\": \"nan\"}", "f_double: expected a number, not \"nan\""},
    {"{\"fDouble\": \"inf\"}", "f_double: expected a number, not \"inf\""},
    {"{\"fDouble\": \" 1\"}", "f_double: expected a number, not \" 1\""},
    {"{\"fDouble\": \"1.\"}", "f_double: expected a number, not \"1.\""},
    {"{\"fDouble\": \"1e\"}", "f_double: expected a number, not \"1e\""},
    {"{\"fDouble\": \"\"}", "f_double: expected a number, not \"\""},
    {"{\"fDouble\": true}", "f_double: expected a number"},
    {"{\"fInner\": [1]}", "f_inner: expected an object"},
    {"{\"fInner\": \"{}\"}", "f_inner: expected an object"},
    {"{\"fInner\": {\"count\": \"x\"}}", "f_inner.count: expected an integer, not \"x\""},
    {"{\"rInt32\": 5}", "r_int32: expected an array"},
    {"{\"rInt32\": {}}", "r_int32: expected an array"},
    {"{\"rInt32\": [1, \"x\"]}", "r_int32[1]: expected an integer, not \"x\""},
    {"{\"rInt32\": [1, null]}", "r_int32[1]: expected an integer"},
    {"{\"rInt32\": [[1]]}", "r_int32[0]: expected an integer"},
    {"{\"rInner\": [{}, {\"count\": {}}]}", "r_inner[1].count: expected an integer"},
    {"{\"rInner\": [null]}", "r_inner[0]: expected an object"},
    {"{\"rString\": [\"a\", 1]}", "r_string[1]: expected a string"},
    {"{\"rBytes\": [\"AA==\", \"*\"]}", "r_bytes[1]: not valid base64"},
    {"{\"rEnum\": [\"COLOR_RED\", \"NOPE\"]}", "r_enum[1]: \"NOPE\" is not a value"},
    {"{\"rUint64\": [\"1\", \"-2\"]}", "r_uint64[1]: \"-2\" is out of range for uint64"},
    {"{\"rFloat\": [0, 1e40]}", "r_float[1]: 1e+40 is out of range for a float"},
    {"{\"child\": {\"child\": {\"rBool\": [true, 0]}}}",
        "child.child.r_bool[1]: expected true or false"},
    {"{\"child\": {\"rInner\": [{\"label\": \"\"}, {\"label\": 2}]}}",
        "child.r_inner[1].label: expected a string"},
    {"{\"oString\": \"a\", \"oInt32\": 1}",
        "o_int32: another member of its oneof, o_string, is already set"},
    {"{\"oInner\": {}, \"oBytes\": \"\"}",
        "o_bytes: another member of its oneof, o_inner, is already set"},
    {"{\"oInt32\": \"x\"}", "o_int32: expected an integer"},
    {"{\"oInner\": {}, \"o_inner\": {}}", "o_inner: given twice"},
    {"{\"fInt32\": 1, \"f_int32\": 2}", "f_int32: given twice"},
    {"{\"fBytes\": \"AA==\", \"f_bytes\": \"AA==\"}", "f_bytes: given twice"},
    {"{\"fString\": \"a\", \"f_string\": \"b\"}", "f_string: given twice"},
    {"{\"fInner\": {}, \"f_inner\": null}", "f_inner: given twice"},
    {"{\"rInt32\": [1], \"r_int32\": [2]}", "r_int32: given twice"},
    {"{\"mCounts\": {\"a\": 1}}", "m_counts: map fields are not supported"},
    {"{\"mCounts\": [{\"key\": \"a\", \"value\": 1}]}", "m_counts: map fields are not supported"},
    {"{\"mCounts\": []}", "m_counts: map fields are not supported"},
};

static void
test_decode_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(bad); i++) {
		char err[256] = "";
		ProtobufCMessage *m = pbjson_decode(&allot__test__everything__descriptor,
		    bad[i].json, strlen(bad[i].json), err, sizeof(err));

		if (m != NULL)
			fail_msg("accepted %s", bad[i].json);
		if (strstr(err, bad[i].error) == NULL)
			fail_msg("%s: error \"%s\" lacks \"%s\"", bad[i].json, err, bad[i].error);
		/* PostgreSQL's style: lower case, no trailing period. */
		assert_true(err[0] != '\0' && err[strlen(err) - 1] != '.');
	}
}

static void
test_decode_err_buffer(void **state)
{
	char err[8];

	(void)state;
	memset(err, 'x', sizeof(err));
	assert_null(pbjson_decode(
	    &allot__test__everything__descriptor, "{\"fInt32\": true}", 16, err, sizeof(err)));
	assert_string_equal(err, "f_int32"); /* cut, and still terminated */
	assert_null(pbjson_decode(&allot__test__everything__descriptor, "[", 1, NULL, 0));
	assert_null(pbjson_decode(&allot__test__everything__descriptor, NULL, 0, err, sizeof(err)));
	assert_string_equal(err, "invalid");
	/* Only len bytes are read: what follows is not part of the text. */
	assert_null(
	    pbjson_decode(&allot__test__everything__descriptor, "{}garbage", 3, err, sizeof(err)));
	protobuf_c_message_free_unpacked(decode(&allot__test__everything__descriptor, "{}"), NULL);
}

/* Builds JSON nesting levels "child" objects inside the top one. */
static char *
nested_json(int levels)
{
	struct strbuf sb;

	strbuf_init(&sb);
	for (int i = 0; i < levels; i++)
		strbuf_puts(&sb, "{\"child\":");
	strbuf_puts(&sb, "{\"fInt32\":7}");
	for (int i = 0; i < levels; i++)
		strbuf_putc(&sb, '}');
	assert_false(strbuf_failed(&sb));
	return strbuf_steal(&sb);
}

static void
test_depth_bound(void **state)
{
	Allot__Test__Everything chain[34];
	Allot__Test__Everything *m, *p;
	struct strbuf sb;
	char err[256] = "", *json, *text;
	int depth = 0;

	(void)state;
	/* 32 levels below the top are allowed, both ways. */
	json = nested_json(32);
	m = (Allot__Test__Everything *)decode(&allot__test__everything__descriptor, json);
	for (p = m; p->child != NULL; p = p->child)
		depth++;
	assert_int_equal(depth, 32);
	assert_int_equal(p->f_int32, 7);
	text = round_trip(&m->base);
	for (const char *c = text; (c = strstr(c, "\"child\":{")) != NULL; c++)
		depth--;
	assert_int_equal(depth, 0);
	free(text);
	protobuf_c_message_free_unpacked(&m->base, NULL);
	free(json);

	json = nested_json(33);
	assert_null(pbjson_decode(
	    &allot__test__everything__descriptor, json, strlen(json), err, sizeof(err)));
	assert_non_null(strstr(err, "nested more than 32 deep"));
	assert_non_null(strstr(err, "child.child.child."));
	free(json);

	/* A message built in memory, or unpacked from protobuf, is bounded the same way. */
	for (int i = 0; i < 34; i++) {
		allot__test__everything__init(&chain[i]);
		chain[i].child = i + 1 < 34 ? &chain[i + 1] : NULL;
	}
	strbuf_init(&sb);
	assert_false(pbjson_encode(&chain[0].base, &sb));
	strbuf_cleanup(&sb);
	assert_false(pbjson_strings_valid(&chain[0].base));
	free(round_trip(&chain[1].base));
	assert_true(pbjson_strings_valid(&chain[1].base));
}

/* ---- proto3 optional ---- */

/*
 * What protoc-c 1.5 generates for
 *   message Optional { optional string name = 1; optional int64 count = 2;
 *     optional double ratio = 3; optional bool flag = 4; optional Color color = 5;
 *     optional bytes blob = 6; optional Inner inner = 7; }
 * has_ flags for scalars and bytes, NULL for unset strings and messages.
 */
typedef struct {
	ProtobufCMessage base;
	char *name;
	protobuf_c_boolean has_count;
	int64_t count;
	protobuf_c_boolean has_ratio;
	double ratio;
	protobuf_c_boolean has_flag;
	protobuf_c_boolean flag;
	protobuf_c_boolean has_color;
	Allot__Test__Color color;
	protobuf_c_boolean has_blob;
	ProtobufCBinaryData blob;
	Allot__Test__Inner *inner;
} Optional;

static const ProtobufCMessageDescriptor optional_descriptor;

static void
optional_init(ProtobufCMessage *m)
{
	static const Optional init = {PROTOBUF_C_MESSAGE_INIT(&optional_descriptor), NULL, 0, 0, 0,
	    0, 0, 0, 0, ALLOT__TEST__COLOR__COLOR_UNSPECIFIED, 0, {0, NULL}, NULL};

	*(Optional *)m = init;
}

#define OPTIONAL_FIELD(fname, fid, ftype, has, desc) \
	{ \
		.name = #fname, .id = fid, .label = PROTOBUF_C_LABEL_OPTIONAL, .type = ftype, \
		.quantifier_offset = has, .offset = offsetof(Optional, fname), .descriptor = desc \
	}

static const ProtobufCFieldDescriptor optional_fields[] = {
    OPTIONAL_FIELD(name, 1, PROTOBUF_C_TYPE_STRING, 0, NULL),
    OPTIONAL_FIELD(count, 2, PROTOBUF_C_TYPE_INT64, offsetof(Optional, has_count), NULL),
    OPTIONAL_FIELD(ratio, 3, PROTOBUF_C_TYPE_DOUBLE, offsetof(Optional, has_ratio), NULL),
    OPTIONAL_FIELD(flag, 4, PROTOBUF_C_TYPE_BOOL, offsetof(Optional, has_flag), NULL),
    OPTIONAL_FIELD(color, 5, PROTOBUF_C_TYPE_ENUM, offsetof(Optional, has_color),
        &allot__test__color__descriptor),
    OPTIONAL_FIELD(blob, 6, PROTOBUF_C_TYPE_BYTES, offsetof(Optional, has_blob), NULL),
    OPTIONAL_FIELD(inner, 7, PROTOBUF_C_TYPE_MESSAGE, 0, &allot__test__inner__descriptor),
};
static const unsigned optional_by_name[] = {5, 4, 1, 3, 6, 0, 2};
static const ProtobufCIntRange optional_ranges[] = {{1, 0}, {0, 7}};

static const ProtobufCMessageDescriptor optional_descriptor = {
    .magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    .name = "allot.test.Optional",
    .short_name = "Optional",
    .c_name = "Optional",
    .package_name = "allot.test",
    .sizeof_message = sizeof(Optional),
    .n_fields = NELEM(optional_fields),
    .fields = optional_fields,
    .fields_sorted_by_name = optional_by_name,
    .n_field_ranges = 1,
    .field_ranges = optional_ranges,
    .message_init = optional_init,
};

static void
test_optional_fields(void **state)
{
	static const char halfway[] =
	    "{\"name\": \"x\", \"blob\": \"AAAA\", \"inner\": {}, \"color\": \"RED\"}";
	Optional o, *back;
	Allot__Test__Inner inner = ALLOT__TEST__INNER__INIT;
	char *text;

	(void)state;
	optional_init(&o.base);
	/* Unset: left out. */
	text = round_trip(&o.base);
	assert_string_equal(text, "{}");
	free(text);

	/* Set to the zero value: written, and still set when read back. */
	o.name = (char *)"";
	o.has_count = 1;
	o.has_ratio = 1;
	o.has_flag = 1;
	o.has_color = 1;
	o.has_blob = 1;
	o.inner = &inner;
	text = round_trip(&o.base);
	assert_string_equal(text,
	    "{\"name\":\"\",\"count\":\"0\",\"ratio\":0,\"flag\":false,"
	    "\"color\":\"COLOR_UNSPECIFIED\",\"blob\":\"\",\"inner\":{\"label\":\"\",\"count\":"
	    "\"0\"}}");
	back = (Optional *)decode(&optional_descriptor, text);
	assert_non_null(back->name);
	assert_string_equal(back->name, "");
	assert_true(back->has_count && back->has_ratio && back->has_flag && back->has_color &&
	    back->has_blob);
	assert_non_null(back->inner);
	protobuf_c_message_free_unpacked(&back->base, NULL);
	free(text);

	/* Set to other values. */
	o.name = (char *)"n";
	o.count = INT64_MAX;
	o.ratio = -0.5;
	o.flag = 1;
	o.color = ALLOT__TEST__COLOR__COLOR_BELOW;
	o.blob.data = (uint8_t *)"\x00\xff";
	o.blob.len = 2;
	text = round_trip(&o.base);
	assert_contains(text,
	    "\"count\":\"9223372036854775807\",\"ratio\":-0.5,\"flag\":true,"
	    "\"color\":\"COLOR_BELOW\",\"blob\":\"AP8=\"");
	free(text);

	/* Only some: the others stay unset. */
	back = (Optional *)decode(&optional_descriptor, "{\"ratio\": 2, \"name\": null}");
	assert_null(back->name);
	assert_null(back->inner);
	assert_true(back->has_ratio);
	assert_true(back->ratio == 2.0);
	assert_false(back->has_count || back->has_flag || back->has_color || back->has_blob);
	text = encode(&back->base);
	assert_string_equal(text, "{\"ratio\":2}");
	free(text);
	protobuf_c_message_free_unpacked(&back->base, NULL);

	/* A failure halfway frees what was set. */
	assert_null(pbjson_decode(&optional_descriptor, halfway, strlen(halfway), NULL, 0));
}

/* ---- maps ---- */

static void
test_maps_refused(void **state)
{
	Allot__Test__Everything m = ALLOT__TEST__EVERYTHING__INIT, *back;
	Allot__Test__Everything__MCountsEntry e = ALLOT__TEST__EVERYTHING__MCOUNTS_ENTRY__INIT;
	Allot__Test__Everything__MCountsEntry *entries[] = {&e};
	struct strbuf sb;
	char *text;

	(void)state;
	/* Empty: {} both ways, as proto3 JSON writes an empty map. */
	text = round_trip(&m.base);
	assert_contains(text, "\"mCounts\":{}");
	free(text);
	back = (Allot__Test__Everything *)decode(
	    &allot__test__everything__descriptor, "{\"mCounts\": null, \"fInt32\": 1}");
	assert_int_equal(back->n_m_counts, 0);
	protobuf_c_message_free_unpacked(&back->base, NULL);
	/* Not empty: refused rather than written in a form clients would misread. */
	e.key = (char *)"k";
	e.value = 1;
	m.n_m_counts = 1;
	m.m_counts = entries;
	strbuf_init(&sb);
	assert_false(pbjson_encode(&m.base, &sb));
	strbuf_cleanup(&sb);
	/* A repeated message field that only looks like a map is not one. */
	text = encode(&e.base);
	assert_string_equal(text, "{\"key\":\"k\",\"value\":1}");
	free(text);
}

/* ---- the rest of the API ---- */

static void
test_field_size(void **state)
{
	const ProtobufCMessageDescriptor *d = &allot__test__everything__descriptor;
	Allot__Test__Everything m;
	const struct {
		const char *name;
		size_t size;
	} sizes[] = {
	    {"r_int32", sizeof(*m.r_int32)},
	    {"r_sint32", sizeof(*m.r_sint32)},
	    {"r_sfixed32", sizeof(*m.r_sfixed32)},
	    {"r_uint32", sizeof(*m.r_uint32)},
	    {"r_fixed32", sizeof(*m.r_fixed32)},
	    {"r_int64", sizeof(*m.r_int64)},
	    {"r_sint64", sizeof(*m.r_sint64)},
	    {"r_sfixed64", sizeof(*m.r_sfixed64)},
	    {"r_uint64", sizeof(*m.r_uint64)},
	    {"r_fixed64", sizeof(*m.r_fixed64)},
	    {"r_float", sizeof(*m.r_float)},
	    {"r_double", sizeof(*m.r_double)},
	    {"r_bool", sizeof(*m.r_bool)},
	    {"r_enum", sizeof(*m.r_enum)},
	    {"r_string", sizeof(*m.r_string)},
	    {"r_bytes", sizeof(*m.r_bytes)},
	    {"r_inner", sizeof(*m.r_inner)},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(sizes); i++) {
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field_by_name(d, sizes[i].name);

		assert_non_null(f);
		if (pbjson_field_size(f) != sizes[i].size)
			fail_msg(
			    "%s: %zu, not %zu", sizes[i].name, pbjson_field_size(f), sizes[i].size);
	}
}

static void
test_encode_appends_and_fails(void **state)
{
	Allot__Test__Inner m = ALLOT__TEST__INNER__INIT;
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	strbuf_puts(&sb, "[");
	assert_true(pbjson_encode(&m.base, &sb));
	strbuf_puts(&sb, ",");
	assert_true(pbjson_encode(&m.base, &sb));
	assert_string_equal(
	    sb.data, "[{\"label\":\"\",\"count\":\"0\"},{\"label\":\"\",\"count\":\"0\"}");
	/* A buffer that failed to grow makes the encoding fail. */
	strbuf_append(&sb, "x", SIZE_MAX - 1);
	assert_true(strbuf_failed(&sb));
	assert_false(pbjson_encode(&m.base, &sb));
	strbuf_cleanup(&sb);
}

/* ---- the real protos ---- */

static void
test_allot_ingest_request(void **state)
{
	static const char json[] =
	    "{\"site\":\"leonardo\",\"batchId\":\"b1\",\"records\":[{\"jobId\":\"48411710\","
	    "\"step\":\"\",\"startTime\":\"2026-11-21T08:12:40Z\",\"account\":\"acme\","
	    "\"partition\":\"boost_usr_prod\",\"gpus\":1,\"cpus\":8,\"memMb\":\"65536\","
	    "\"nodes\":1,\"elapsedS\":\"271\",\"state\":\"FAILED\"},"
	    "{\"job_id\":\"2\",\"elapsed_s\":9007199254740993,\"gpus\":\"4\"}]}";
	static const char bad_gpus[] = "{\"records\":[{},{},{\"gpus\":2.5}]}";
	Allot__V1__IngestRequest *r;
	char err[256] = "", *text;

	(void)state;
	r = (Allot__V1__IngestRequest *)decode(&allot__v1__ingest_request__descriptor, json);
	assert_string_equal(r->site, "leonardo");
	assert_string_equal(r->batch_id, "b1");
	assert_int_equal(r->n_records, 2);
	assert_int_equal(r->records[0]->elapsed_s, 271);
	assert_int_equal(r->records[0]->mem_mb, 65536);
	assert_string_equal(r->records[0]->partition, "boost_usr_prod");
	assert_string_equal(r->records[1]->job_id, "2");
	/* A 64-bit number past 2^53 is read exactly. */
	assert_true(r->records[1]->elapsed_s == 9007199254740993LL);
	assert_int_equal(r->records[1]->gpus, 4);
	text = round_trip(&r->base);
	assert_contains(text, "\"elapsedS\":\"271\"");
	assert_contains(text, "\"elapsedS\":\"9007199254740993\"");
	free(text);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	/* An error names the path through the real message. */
	assert_null(pbjson_decode(
	    &allot__v1__ingest_request__descriptor, bad_gpus, strlen(bad_gpus), err, sizeof(err)));
	assert_string_equal(err, "records[2].gpus: expected an integer, not 2.5");

	/* Indexes of more than one digit, and a path that was longer before, are written whole. */
	{
		static const char bad_late[] =
		    "{\"records\":[{\"partition\":\"p\"},{},{},{},{},{},{},{},{},{},{},"
		    "{\"jobId\":7}]}";

		assert_null(pbjson_decode(&allot__v1__ingest_request__descriptor, bad_late,
		    strlen(bad_late), err, sizeof(err)));
		assert_string_equal(err, "records[11].job_id: expected a string");
	}
}

/* What rpc_get_balance returns: int64 as JSON numbers, doubles, nested messages. */
static void
test_allot_balance_from_sql(void **state)
{
	static const char json[] =
	    "{\"project\": \"acme-vision\", \"total\": {\"grantedUnits\": 18000000000,"
	    " \"chargedUnits\": 3600000, \"grantedGpuHours\": 5000, \"chargedGpuHours\": 1.0,"
	    " \"nativeUnit\": \"core-h\", \"nativeCharged\": 8.125},"
	    " \"allocations\": [{\"allocationId\": 1, \"scope\": \"site leonardo\","
	    " \"balance\": {\"availableGpuHours\": 4999}}]}";
	Allot__V1__GetBalanceResponse *r;
	char *text;

	(void)state;
	r = (Allot__V1__GetBalanceResponse *)decode(
	    &allot__v1__get_balance_response__descriptor, json);
	assert_true(r->total->granted_units == 18000000000LL);
	assert_true(r->total->granted_gpu_hours == 5000.0);
	assert_true(r->total->native_charged == 8.125);
	assert_int_equal(r->n_allocations, 1);
	assert_true(r->allocations[0]->balance->available_gpu_hours == 4999.0);
	text = round_trip(&r->base);
	assert_contains(text, "\"grantedUnits\":\"18000000000\",\"chargedUnits\":\"3600000\"");
	assert_contains(text, "\"grantedGpuHours\":5000,\"chargedGpuHours\":1,");
	assert_contains(text, "\"nativeCharged\":8.125,");
	assert_contains(text, "\"allocationId\":\"1\",\"scope\":\"site leonardo\"");
	free(text);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_every_kind),
	    cmocka_unit_test(test_round_trip_numbers),
	    cmocka_unit_test(test_exact_text),
	    cmocka_unit_test(test_string_escapes),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_strings_valid_where),
	    cmocka_unit_test(test_decode_forms),
	    cmocka_unit_test(test_decode_base64),
	    cmocka_unit_test(test_decode_null),
	    cmocka_unit_test(test_decode_unknown_skipped),
	    cmocka_unit_test(test_decode_errors),
	    cmocka_unit_test(test_decode_err_buffer),
	    cmocka_unit_test(test_depth_bound),
	    cmocka_unit_test(test_optional_fields),
	    cmocka_unit_test(test_maps_refused),
	    cmocka_unit_test(test_field_size),
	    cmocka_unit_test(test_encode_appends_and_fails),
	    cmocka_unit_test(test_allot_ingest_request),
	    cmocka_unit_test(test_allot_balance_from_sql),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
