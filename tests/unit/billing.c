/*
 * Unit tests for daemon/billing.c: each site's rule on the sites' real sacct
 * samples (shared/fixtures/sacct), worked out by hand in the comments, and every
 * refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "billing.h"

/* The demo's resources (README, "Billing rules"). */
static const struct billing_resource leonardo = {
    BILLING_RULE_GPU_SHARE, 4, 8, 1, 128000, 8000, 1000};
static const struct billing_resource lumi_standard = {
    BILLING_RULE_WHOLE_NODE, 8, 7, 1, 0, 500, 500};
static const struct billing_resource lumi_small = {
    BILLING_RULE_GPU_SHARE, 8, 8, 1, 64000, 500, 500};
static const struct billing_resource mn5 = {BILLING_RULE_GPU_SHARE, 4, 20, 2, 125000, 20000, 1000};
static const struct billing_resource jupiter = {BILLING_RULE_WHOLE_NODE, 4, 72, 1, 0, 72000, 1000};

static const struct {
	const char *name;
	const struct billing_resource *r;
	struct billing_usage u; /* gpus, cpus, nodes, mem_mb, elapsed_s */
	int64_t occupied, gpu_ms, charge_units, native_milli;
} cases[] = {
    /*
	 * LEONARDO 48411710 (leonardo.psv): gres/gpu=1, cpu=8, mem=64G, 00:04:31 = 271 s.
	 * max(1, 8/8 = 1, 65536/128000 -> 1) = 1 GPU; 271,000 GPU-ms; weight 1000 ->
	 * 271,000 units; 271 s * 8000 milli core-h / 3600 = 602.2 -> 602.
	 */
    {"leonardo 48411710", &leonardo, {1, 8, 1, 65536, 271}, 1, 271000, 271000, 602},
    /* LEONARDO, CPU-bound: 1 GPU asked, 20 cores -> ceil(20/8) = 3 GPUs for an hour. */
    {"leonardo cpu-bound", &leonardo, {1, 20, 1, 1000, 3600}, 3, 10800000, 10800000, 24000},
    /* LEONARDO, memory-bound: 300,000 MB -> ceil(300000/128000) = 3 GPUs for 10 s. */
    {"leonardo mem-bound", &leonardo, {1, 8, 1, 300000, 10}, 3, 30000, 30000, 66},
    /*
	 * MN5 46783172 (mn5.psv): gres/gpu=4, 160 CPUs = 80 cores (2 threads each) -> 80/20 =
	 * 4, mem 500000M -> 4; ElapsedRaw 11632 s -> 4 * 11632 * 1000 = 46,528,000 GPU-ms;
	 * native 4 * 11632 * 20000 / 3600 = 258,488.9 -> 258,488 milli core-h.
	 */
    {"mn5 46783172", &mn5, {4, 160, 1, 500000, 11632}, 4, 46528000, 46528000, 258488},
    /* MN5 21687187: 1 GPU, 40 CPUs = 20 cores -> 1, 125000M -> 1; 22 s; 22 * 20000 / 3600 = 122.2. */
    {"mn5 21687187", &mn5, {1, 40, 1, 125000, 22}, 1, 22000, 22000, 122},
    /* MN5 4534836: 32 GPUs on 8 nodes, 1280 CPUs = 640 cores -> 32; 7208 s. */
    {"mn5 4534836", &mn5, {32, 1280, 8, 4000000, 7208}, 32, 230656000, 230656000, 1281422},
    /*
	 * JUPITER 1618999 (jupiter.psv): asked gres/gpu=1 but got node=1: whole node = 4 GPUs
	 * for 16 s = 64,000 GPU-ms; native 4 * 16 * 72000 / 3600 = 1280 milli core-h (1.28
	 * core-h = 288 core-h per node-hour * 16 s / 3600).
	 */
    {"jupiter 1618999", &jupiter, {1, 72, 1, 878535, 16}, 4, 64000, 64000, 1280},
    /* JUPITER 1618998: 4 GPUs, 1 node, 19 s. */
    {"jupiter 1618998", &jupiter, {4, 288, 1, 878535, 19}, 4, 76000, 76000, 1520},
    /*
	 * LUMI standard-g: 2 nodes = 16 GCDs for 6 h, weight 500 (one LUMI GPU-hour is a
	 * module of 2 GCDs): 16 * 21600 * 1000 = 345,600,000 GPU-ms -> 172,800,000 units =
	 * 48 normalized GPU-hours; native 16 * 21600 * 500 / 3600 = 48,000 milli GPU-h.
	 */
    {"lumi standard-g 2 nodes", &lumi_standard, {16, 112, 2, 0, 21600}, 16, 345600000, 172800000,
        48000},
    /* LUMI small-g: 2 GCDs but 24 cores -> ceil(24/8) = 3 GCDs for 3 h. */
    {"lumi small-g cores", &lumi_small, {2, 24, 1, 120000, 10800}, 3, 32400000, 16200000, 4500},
    /* LUMI small-g: 2 GCDs, 8 cores, 200 GB -> ceil(200000/64000) = 4 GCDs for 1 h. */
    {"lumi small-g mem", &lumi_small, {2, 8, 1, 200000, 3600}, 4, 14400000, 7200000, 2000},
    /* Whole nodes need no core or thread counts. */
    {"whole node without cores",
        &(const struct billing_resource){BILLING_RULE_WHOLE_NODE, 4, 0, 0, 0, 72000, 1000},
        {0, 0, 2, 0, 60}, 8, 480000, 480000, 9600},
    /* A pending job: nothing used yet. */
    {"nothing yet", &mn5, {4, 160, 1, 500000, 0}, 4, 0, 0, 0},
    /* Rounding: 1 GPU for 1 s at 1 milli per GPU-hour is 1/3600 milli: floor -> 0. */
    {"native floor", &(const struct billing_resource){BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, 1, 1000},
        {1, 1, 1, 0, 1}, 1, 1000, 1000, 0},
    /* A weight of 1 per mille: 1 GPU-second = 1000 GPU-ms -> 1 unit. */
    {"weight 1", &(const struct billing_resource){BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, 0, 1},
        {1, 1, 1, 0, 1}, 1, 1000, 1, 0},
};

static void
test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct billing_charge c;
		char err[256] = "";

		if (billing_compute(cases[i].r, &cases[i].u, &c, err, sizeof(err)) != 0)
			fail_msg("%s: refused: %s", cases[i].name, err);
		if (c.occupied_gpus != cases[i].occupied || c.gpu_ms != cases[i].gpu_ms ||
		    c.charge_units != cases[i].charge_units ||
		    c.native_milli != cases[i].native_milli)
			fail_msg("%s: got %lld GPUs, %lld GPU-ms, %lld units, %lld native milli",
			    cases[i].name, (long long)c.occupied_gpus, (long long)c.gpu_ms,
			    (long long)c.charge_units, (long long)c.native_milli);
	}
}

static const struct {
	const char *name;
	struct billing_resource r;
	struct billing_usage u;
	const char *reason;
} refusals[] = {
    {"negative gpus", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, 8000, 1000}, {-1, 8, 1, 0, 10},
        "gpus must not be negative"},
    {"negative cpus", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, 8000, 1000}, {1, -8, 1, 0, 10},
        "cpus must not be negative"},
    {"negative elapsed", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, 8000, 1000}, {1, 8, 1, 0, -10},
        "elapsed_s must not be negative"},
    {"negative mem", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, 8000, 1000}, {1, 8, 1, -1, 10},
        "mem_mb must not be negative"},
    {"absurd gpus", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, 8000, 1000}, {1000001, 8, 1, 0, 10},
        "gpus is more than 1000000"},
    {"absurd nodes", {BILLING_RULE_WHOLE_NODE, 4, 8, 1, 0, 8000, 1000}, {1, 8, 2000000, 0, 10},
        "nodes is more than 1000000"},
    {"absurd elapsed", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, 8000, 1000},
        {1, 8, 1, 0, 367 * 86400LL}, "more than a year"},
    {"absurd mem", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, 8000, 1000}, {1, 8, 1, 2000000000LL, 10},
        "mem_mb 2000000000 is more than"},
    {"zero weight", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, 8000, 0}, {1, 8, 1, 0, 10},
        "billing parameters are out of range"},
    {"huge weight", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, 8000, 100001}, {1, 8, 1, 0, 10},
        "billing parameters are out of range"},
    {"no cores per gpu", {BILLING_RULE_GPU_SHARE, 4, 0, 1, 0, 8000, 1000}, {1, 8, 1, 0, 10},
        "billing parameters are out of range"},
    {"unknown rule", {(enum billing_rule)7, 4, 8, 1, 0, 8000, 1000}, {1, 8, 1, 0, 10},
        "unknown billing rule 7"},
    /* 1,000,000 GPUs for a year at weight 100000 overflows int64 units. */
    {"overflow", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, 8000, 100000},
        {1000000, 8, 1, 0, 366 * 86400LL}, "overflows"},
    {"native overflow", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 0, INT64_MAX / 2, 1000},
        {1000, 8, 1, 0, 3600}, "site's figure overflows"},
};

static void
test_refusals(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		struct billing_charge c;
		char err[256] = "";

		if (billing_compute(&refusals[i].r, &refusals[i].u, &c, err, sizeof(err)) != -1)
			fail_msg("%s: accepted", refusals[i].name);
		if (strstr(err, refusals[i].reason) == NULL)
			fail_msg("%s: reason \"%s\" lacks \"%s\"", refusals[i].name, err,
			    refusals[i].reason);
	}
}

/* The largest usage within the bounds at the largest weight still fits: no false overflow. */
static void
test_bounds_fit(void **state)
{
	struct billing_resource r = {BILLING_RULE_GPU_SHARE, 4, 1, 1, 0, 1000000, 100000};
	struct billing_usage u = {1000, 1000, 1, 0, 366 * 86400LL};
	struct billing_charge c;
	char err[256];

	(void)state;
	assert_int_equal(billing_compute(&r, &u, &c, err, sizeof(err)), 0);
	assert_int_equal(c.occupied_gpus, 1000);
	assert_int_equal(c.gpu_ms, 1000LL * 366 * 86400 * 1000);
	assert_int_equal(c.charge_units, 1000LL * 366 * 86400 * 100000);
}

static void
test_rule_parse(void **state)
{
	enum billing_rule rule = 0;

	(void)state;
	assert_int_equal(billing_rule_parse("BILLING_RULE_GPU_SHARE", &rule), 0);
	assert_int_equal(rule, BILLING_RULE_GPU_SHARE);
	assert_int_equal(billing_rule_parse("BILLING_RULE_WHOLE_NODE", &rule), 0);
	assert_int_equal(rule, BILLING_RULE_WHOLE_NODE);
	assert_int_equal(billing_rule_parse("BILLING_RULE_UNSPECIFIED", &rule), -1);
	assert_int_equal(billing_rule_parse("gpu_share", &rule), -1);
	assert_int_equal(billing_rule_parse("", &rule), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_bounds_fit),
	    cmocka_unit_test(test_rule_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
