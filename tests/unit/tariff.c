/*
 * tariff: which resource and which weight a job is billed at, from
 * allot.site_billing's JSON; the arithmetic itself is billing's (tests/unit/billing.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "tariff.h"

/* Two LEONARDO partitions as site_billing answers them; boost's weight rises in 2027. */
static const char site_json[] =
    "[{\"id\": 7, \"partition\": \"boost_usr_prod\", \"rule\": \"BILLING_RULE_GPU_SHARE\","
    "  \"gpusPerNode\": 4, \"coresPerGpu\": 8, \"threadsPerCore\": 1, \"memPerGpuMb\": 128000,"
    "  \"nativeUnit\": \"core-h\", \"nativeMilliPerGpuHour\": 8000,"
    "  \"weights\": [{\"from\": 1767225600, \"perMille\": 1000},"
    "                {\"from\": 1798761600, \"perMille\": 1500}]},"
    " {\"id\": 9, \"partition\": \"whole\", \"rule\": \"BILLING_RULE_WHOLE_NODE\","
    "  \"gpusPerNode\": 4, \"coresPerGpu\": 0, \"threadsPerCore\": 1, \"memPerGpuMb\": 0,"
    "  \"nativeUnit\": \"node-h\", \"nativeMilliPerGpuHour\": 250,"
    "  \"weights\": [{\"from\": 1767225600, \"perMille\": 2000}]}]";

#define JAN_2026 INT64_C(1767225600) /* 2026-01-01T00:00:00Z */
#define JAN_2027 INT64_C(1798761600) /* 2027-01-01T00:00:00Z */

static struct tariff *
load(void)
{
	json_t *j = json_loads(site_json, 0, NULL);
	struct tariff *t;

	assert_non_null(j);
	t = tariff_new(j);
	json_decref(j);
	assert_non_null(t);
	return t;
}

static void
test_weight_in_force_at_the_start(void **state)
{
	struct tariff *t = load();
	struct billing_usage u = {.gpus = 2, .cpus = 8, .nodes = 1, .mem_mb = 0, .elapsed_s = 3600};
	struct tariff_bill b;
	char why[256];

	(void)state;
	/* 2 GPUs for an hour at 1000 per mille: 7,200,000 units, 16 core-h. */
	assert_int_equal(
	    tariff_bill(t, "leonardo", "boost_usr_prod", JAN_2027 - 1, &u, &b, why, sizeof(why)),
	    0);
	assert_int_equal(b.resource_id, 7);
	assert_int_equal(b.weight_per_mille, 1000);
	assert_int_equal(b.charge.charge_units, 7200000);
	assert_int_equal(b.charge.native_milli, 16000);
	assert_string_equal(b.native_unit, "core-h");
	/* Started on the day the new weight applies: 1.5 times as much. */
	assert_int_equal(
	    tariff_bill(t, "leonardo", "boost_usr_prod", JAN_2027, &u, &b, why, sizeof(why)), 0);
	assert_int_equal(b.weight_per_mille, 1500);
	assert_int_equal(b.charge.charge_units, 10800000);
	tariff_free(t);
}

static void
test_whole_node_without_cores(void **state)
{
	struct tariff *t = load();
	/* 3 nodes of 4 GPUs for 10 minutes, whatever was asked: 12 x 600 x 2000. */
	struct billing_usage u = {.gpus = 1, .cpus = 1, .nodes = 3, .mem_mb = 0, .elapsed_s = 600};
	struct tariff_bill b;
	char why[256];

	(void)state;
	assert_int_equal(tariff_bill(t, "x", "whole", JAN_2026 + 10, &u, &b, why, sizeof(why)), 0);
	assert_int_equal(b.resource_id, 9);
	assert_int_equal(b.charge.occupied_gpus, 12);
	assert_int_equal(b.charge.charge_units, 14400000);
	tariff_free(t);
}

static void
test_refusals_say_why(void **state)
{
	struct tariff *t = load();
	struct billing_usage u = {.gpus = 1, .cpus = 8, .nodes = 1, .mem_mb = 0, .elapsed_s = 60};
	struct billing_usage neg = {
	    .gpus = -1, .cpus = 8, .nodes = 1, .mem_mb = 0, .elapsed_s = 60};
	struct tariff_bill b;
	char why[256];

	(void)state;
	assert_int_equal(
	    tariff_bill(t, "leonardo", "nope", JAN_2027, &u, &b, why, sizeof(why)), -1);
	assert_string_equal(why, "unknown partition \"nope\" at site \"leonardo\"");
	assert_int_equal(
	    tariff_bill(t, "leonardo", "boost_usr_prod", JAN_2026 - 1, &u, &b, why, sizeof(why)),
	    -1);
	assert_non_null(strstr(why, "no billing weight of leonardo/boost_usr_prod"));
	assert_int_equal(
	    tariff_bill(t, "leonardo", "boost_usr_prod", JAN_2027, &neg, &b, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "gpus must not be negative"));
	tariff_free(t);
}

static void
test_malformed_answers(void **state)
{
	static const char *const bad[] = {
	    "{}",
	    "[{\"partition\": \"p\"}]",
	    "[{\"partition\": \"p\", \"rule\": \"BILLING_RULE_NONE\", \"weights\": []}]",
	    "[{\"rule\": \"BILLING_RULE_GPU_SHARE\", \"weights\": []}]",
	};

	(void)state;
	assert_null(tariff_new(NULL));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], 0, NULL);

		assert_non_null(j);
		assert_null(tariff_new(j));
		json_decref(j);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_weight_in_force_at_the_start),
	    cmocka_unit_test(test_whole_node_without_cores),
	    cmocka_unit_test(test_refusals_say_why),
	    cmocka_unit_test(test_malformed_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
