/*
 * Unit tests for clients/cli/reqflags.c: flags to a request's proto3 JSON,
 * values checked per field type, enum names long and short.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "allot/v1/admin.pb-c.h"
#include "pbjson.h"
#include "reqflags.h"

struct flag {
	const char *name, *value;
};

/* Sets flags[0..n) on a new reqflags and returns the JSON text (caller frees). */
static char *
build(const ProtobufCMessageDescriptor *desc, const struct flag *flags, size_t n)
{
	struct reqflags *rf = reqflags_new(desc);
	struct strbuf sb;
	char err[256];

	assert_non_null(rf);
	for (size_t i = 0; i < n; i++) {
		if (reqflags_set(rf, flags[i].name, flags[i].value, err, sizeof(err)) < 0)
			fail_msg("--%s %s: %s", flags[i].name, flags[i].value, err);
	}
	strbuf_init(&sb);
	reqflags_to_json(rf, &sb);
	reqflags_free(rf);
	assert_false(strbuf_failed(&sb));
	return strbuf_steal(&sb);
}

static void
test_resource(void **state)
{
	static const struct flag flags[] = {
	    {"site", "leonardo"}, {"partition", "boost_usr_prod"}, {"gpus-per-node", "4"},
	    {"rule", "gpu_share"}, {"mem-per-gpu-mb", "128000"}, {"native-unit", "core \"h\""},
	    {"weight_per_mille", "-1000"}, /* snake case is accepted too */
	};
	char *json;

	(void)state;
	json = build(&allot__v1__resource__descriptor, flags, sizeof(flags) / sizeof(flags[0]));
	assert_string_equal(json,
	    "{\"site\":\"leonardo\",\"partition\":\"boost_usr_prod\",\"gpus_per_node\":4,"
	    "\"rule\":\"BILLING_RULE_GPU_SHARE\",\"mem_per_gpu_mb\":\"128000\","
	    "\"native_unit\":\"core \\\"h\\\"\",\"weight_per_mille\":-1000}");
	free(json);
}

static void
test_repeated_and_decode(void **state)
{
	static const struct flag flags[] = {
	    {"project", "acme"},
	    {"resources", "leonardo/boost_usr_prod"},
	    {"gpu-hours", "9223372036854775807"},
	    {"resources", "lumi/small-g"},
	};
	Allot__V1__Allocation *a;
	char *json, err[256];

	(void)state;
	json = build(&allot__v1__allocation__descriptor, flags, sizeof(flags) / sizeof(flags[0]));
	assert_string_equal(json,
	    "{\"project\":\"acme\",\"resources\":[\"leonardo/boost_usr_prod\",\"lumi/small-g\"],"
	    "\"gpu_hours\":\"9223372036854775807\"}");
	a = (Allot__V1__Allocation *)pbjson_decode(
	    &allot__v1__allocation__descriptor, json, strlen(json), err, sizeof(err));
	if (a == NULL)
		fail_msg("decode: %s", err);
	assert_int_equal(a->n_resources, 2);
	assert_string_equal(a->resources[1], "lumi/small-g");
	assert_true(a->gpu_hours == INT64_MAX);
	protobuf_c_message_free_unpacked(&a->base, NULL);
	free(json);
}

static void
test_empty(void **state)
{
	struct reqflags *rf = reqflags_new(&allot__v1__list_request__descriptor);
	struct strbuf sb;

	(void)state;
	assert_true(reqflags_empty(rf));
	strbuf_init(&sb);
	reqflags_to_json(rf, &sb);
	assert_string_equal(sb.data, "{}");
	strbuf_cleanup(&sb);
	reqflags_free(rf);
}

static const struct {
	const char *flag, *value, *err;
} bad[] = {
    {"nope", "1", "unknown flag --nope"},
    {"site", NULL, "flag --site needs a value"},
    {"gpus-per-node", "4x", "--gpus-per-node: \"4x\" is not an integer"},
    {"gpus-per-node", "", "--gpus-per-node: \"\" is not an integer"},
    {"gpus-per-node", " 4", "--gpus-per-node: \" 4\" is not an integer"},
    {"gpus-per-node", "2147483648", "--gpus-per-node: 2147483648 is out of range for int32"},
    {"gpus-per-node", "-2147483649", "--gpus-per-node: -2147483649 is out of range for int32"},
    {"mem-per-gpu-mb", "9223372036854775808",
        "--mem-per-gpu-mb: 9223372036854775808 is out of range for int64"},
    {"rule", "shared", "--rule: \"shared\" is not one of unspecified, gpu_share, whole_node"},
    {"rule", "", "--rule: \"\" is not one of unspecified, gpu_share, whole_node"},
};

static void
test_bad_values(void **state)
{
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct reqflags *rf = reqflags_new(&allot__v1__resource__descriptor);

		assert_int_equal(reqflags_set(rf, bad[i].flag, bad[i].value, err, sizeof(err)), -1);
		assert_string_equal(err, bad[i].err);
		assert_true(reqflags_empty(rf));
		reqflags_free(rf);
	}
}

static void
test_scalar_twice(void **state)
{
	struct reqflags *rf = reqflags_new(&allot__v1__site__descriptor);
	char err[256];

	(void)state;
	assert_int_equal(reqflags_set(rf, "name", "a", err, sizeof(err)), 0);
	assert_int_equal(reqflags_set(rf, "name", "b", err, sizeof(err)), -1);
	assert_string_equal(err, "--name given more than once");
	reqflags_free(rf);
}

static void
test_enum_names(void **state)
{
	const ProtobufCEnumDescriptor *rule = &allot__v1__billing_rule__descriptor;
	const ProtobufCEnumDescriptor *role = &allot__v1__role__descriptor;
	const ProtobufCEnumValue *v;
	char name[64];

	(void)state;
	v = reqflags_enum_lookup(rule, "BILLING_RULE_WHOLE_NODE");
	assert_non_null(v);
	assert_int_equal(v->value, 2);
	assert_ptr_equal(reqflags_enum_lookup(rule, "whole_node"), v);
	assert_ptr_equal(reqflags_enum_lookup(rule, "whole-node"), v);
	assert_ptr_equal(reqflags_enum_lookup(rule, "WHOLE_NODE"), v);
	assert_ptr_equal(reqflags_enum_lookup(rule, "billing_rule_whole_node"), v);
	assert_null(reqflags_enum_lookup(rule, "whole"));
	assert_null(reqflags_enum_lookup(rule, "2"));
	assert_null(reqflags_enum_lookup(rule, ""));

	v = reqflags_enum_lookup(role, "collector");
	assert_non_null(v);
	assert_string_equal(v->name, "ROLE_COLLECTOR");
	reqflags_enum_short(role, v, name, sizeof(name));
	assert_string_equal(name, "collector");
	reqflags_enum_short(rule, reqflags_enum_lookup(rule, "gpu_share"), name, sizeof(name));
	assert_string_equal(name, "gpu_share");
}

static void
test_kebab(void **state)
{
	char out[16];

	(void)state;
	reqflags_kebab("gpus_per_node", out, sizeof(out));
	assert_string_equal(out, "gpus-per-node");
	reqflags_kebab("native_milli_per_gpu_hour", out, sizeof(out));
	assert_string_equal(out, "native-milli-pe"); /* truncated, terminated */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_resource),
	    cmocka_unit_test(test_repeated_and_decode),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_scalar_twice),
	    cmocka_unit_test(test_enum_names),
	    cmocka_unit_test(test_kebab),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
