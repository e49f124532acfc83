/*
 * Unit tests for daemon/billing.c, table-driven: the default resources of the
 * specification applied to the sites' real sacct records (the fixtures
 * sacct/{leonardo,mn5,jupiter}.psv of the shared fixture set), each figure worked
 * out by hand in a comment; CPU- and memory-bound jobs; the rounding rule; every
 * refusal; overflow at the edge of 64 bits; and the resources CreateResource accepts
 * and refuses, from the case table that sql/tests/resource_rules.sql runs too (its
 * path is this program's argument, given by tests/unit/meson.build).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "billing.h"

/*
 * The default resources, as the README's billing table has them (a WHOLE_NODE
 * resource leaves cores and threads per core at 0): rule, gpus_per_node,
 * cores_per_gpu, threads_per_core, mem_per_gpu_mb, native_milli_per_gpu_hour,
 * weight_per_mille.
 */
static const struct billing_resource leonardo = {
    BILLING_RULE_GPU_SHARE, 4, 8, 1, 128000, 8000, 1000};
static const struct billing_resource lumi_standard_g = {
    BILLING_RULE_WHOLE_NODE, 8, 0, 0, 0, 500, 500};
static const struct billing_resource lumi_small_g = {
    BILLING_RULE_GPU_SHARE, 8, 8, 1, 64000, 500, 500};
static const struct billing_resource mn5_acc = {
    BILLING_RULE_GPU_SHARE, 4, 20, 2, 125000, 20000, 1000};
static const struct billing_resource jupiter_booster = {
    BILLING_RULE_WHOLE_NODE, 4, 0, 0, 0, 72000, 1000};

/* Usage as {gpus, cpus, nodes, mem_mb, elapsed_s}. */
#define USAGE(g, c, n, m, e) \
	{ \
		.gpus = (g), .cpus = (c), .nodes = (n), .mem_mb = (m), .elapsed_s = (e) \
	}

struct bill_case {
	const char *name;
	const struct billing_resource *r;
	struct billing_usage u;
	int64_t occupied, gpu_ms, charge_units, native_milli;
};

static const struct bill_case bill_cases[] = {
    /*
     * LEONARDO 48411710 (leonardo.psv, the allocation row; .batch and .extern repeat
     * it): AllocTRES cpu=8,gres/gpu=1,mem=64G,node=1, Elapsed 00:04:31 = 271 s.
     * mem 64G = 65536 MB. cores ceil(8/1) = 8 -> ceil(8/8) = 1 GPU; memory
     * ceil(65536/128000) = 1; gpus 1: occupied 1.
     * gpu_ms = 1 * 271 * 1000 = 271,000; charge = 271,000 * 1000 / 1000 = 271,000.
     * native = 1 * 271 * 8000 / 3600 = 2,168,000 / 3600 = 602.2 -> 602 milli core-h.
     */
    {"leonardo 48411710", &leonardo, USAGE(1, 8, 1, 65536, 271), 1, 271000, 271000, 602},
    /*
     * MN5 46783172 (mn5.psv, RUNNING): cpu=160,gres/gpu=4,mem=500000M,node=1,
     * ElapsedRaw 11632. 160 threads / 2 = 80 cores -> ceil(80/20) = 4; memory
     * ceil(500000/125000) = 4; gpus 4: occupied 4.
     * gpu_ms = 4 * 11632 * 1000 = 46,528,000 = charge (weight 1000).
     * native = 46,528 GPU-s * 20000 / 3600 = 930,560,000 / 3600 = 258,488.9 -> 258,488.
     */
    {"mn5 46783172", &mn5_acc, USAGE(4, 160, 1, 500000, 11632), 4, 46528000, 46528000, 258488},
    /*
     * MN5 21687187: cpu=40,gres/gpu=1,mem=125000M,node=1, ElapsedRaw 22.
     * 40 / 2 = 20 cores -> 1; memory 125000/125000 = 1; occupied 1.
     * gpu_ms = 22,000 = charge; native = 22 * 20000 / 3600 = 440,000 / 3600 = 122.2 -> 122.
     */
    {"mn5 21687187", &mn5_acc, USAGE(1, 40, 1, 125000, 22), 1, 22000, 22000, 122},
    /*
     * MN5 4534836 (TIMEOUT): cpu=1280,gres/gpu=32,mem=4000000M,node=8, ElapsedRaw 7208.
     * 1280 / 2 = 640 cores -> 640/20 = 32; memory 4,000,000/125,000 = 32; occupied 32.
     * gpu_s = 32 * 7208 = 230,656; gpu_ms = 230,656,000 = charge.
     * native = 230,656 * 20000 / 3600 = 4,613,120,000 / 3600 = 1,281,422.2 -> 1,281,422.
     */
    {"mn5 4534836", &mn5_acc, USAGE(32, 1280, 8, 4000000, 7208), 32, 230656000, 230656000, 1281422},
    /*
     * JUPITER 1618999 (jupiter.psv): ReqTRES asked gres/gpu=1,cpu=72 but booster
     * allocates whole nodes: node=1 -> 1 * 4 = 4 GPUs, whatever was requested.
     * ElapsedRaw 16: gpu_ms = 4 * 16 * 1000 = 64,000 = charge.
     * native = 64 * 72000 / 3600 = 1,280 milli core-h, which is sacct's own
     * CPUTimeRAW 4608 core-s / 3600 = 1.28 core-h.
     */
    {"jupiter 1618999", &jupiter_booster, USAGE(1, 72, 1, 878535, 16), 4, 64000, 64000, 1280},
    /*
     * JUPITER 1618998: the whole node asked for, ElapsedRaw 19: 4 GPUs,
     * gpu_ms 76,000; native 76 * 72000 / 3600 = 1,520 (CPUTimeRAW 5472 / 3600 = 1.52).
     */
    {"jupiter 1618998", &jupiter_booster, USAGE(4, 288, 1, 878535, 19), 4, 76000, 76000, 1520},
    /*
     * LUMI standard-g, 2 nodes for one hour (constructed): 2 * 8 = 16 GCDs.
     * gpu_ms = 16 * 3600 * 1000 = 57,600,000; weight 500 (a LUMI GPU-hour is a
     * module of 2 GCDs) -> charge 28,800,000 = 8 normalized GPU-hours.
     * native = 16 * 3600 * 500 / 3600 = 8,000 milli = 8 LUMI GPU-hours (4 per node-hour).
     */
    {"lumi standard-g 2 nodes", &lumi_standard_g, USAGE(16, 112, 2, 0, 3600), 16, 57600000,
        28800000, 8000},
    /*
     * The case: JUPITER booster created as the README shows it, cores_per_gpu
     * and threads_per_core 0, bills 3 nodes for 1 h 30 min = 5400 s, whatever the job
     * asked (2 GPUs, 10 CPUs): 3 * 4 = 12 GPUs; gpu_s = 12 * 5400 = 64,800;
     * gpu_ms = 64,800,000 = charge (weight 1000). native = 64,800 * 72000 / 3600 =
     * 1,296,000 milli core-h = 1296 core-h, which is 3 nodes * 1.5 h * 288 per node-hour.
     */
    {"jupiter 3 nodes, no cores per gpu", &jupiter_booster, USAGE(2, 10, 3, 1000, 5400), 12,
        64800000, 64800000, 1296000},
    /*
     * LUMI standard-g as the README shows it, 1 node for 1000 s: 8 GCDs; gpu_s 8000,
     * gpu_ms 8,000,000; charge 8,000,000 * 500 / 1000 = 4,000,000; native
     * 8000 * 500 / 3600 = 4,000,000 / 3600 = 1111.1 -> 1111 milli LUMI GPU-h.
     */
    {"lumi standard-g 1000 s, no cores per gpu", &lumi_standard_g, USAGE(8, 56, 1, 0, 1000), 8,
        8000000, 4000000, 1111},
    /* LUMI standard-g: 1 GCD asked on 2 nodes is still billed 16 GCDs. */
    {"lumi standard-g 1 of 16", &lumi_standard_g, USAGE(1, 7, 2, 0, 3600), 16, 57600000, 28800000,
        8000},
    /*
     * LUMI small-g, 2 GCDs with 24 cores, 10 min: ceil(24/8) = 3 GCDs.
     * gpu_ms = 3 * 600 * 1000 = 1,800,000; charge = 1,800,000 * 500 / 1000 = 900,000.
     * native = 3 * 600 * 500 / 3600 = 900,000 / 3600 = 250 (exact).
     */
    {"lumi small-g 24 cores", &lumi_small_g, USAGE(2, 24, 1, 1000, 600), 3, 1800000, 900000, 250},
    /*
     * LUMI small-g, 2 GCDs with mem=200G = 204,800 MB: ceil(204800/64000) = ceil(3.2)
     * = 4 GCDs. gpu_ms = 4 * 600 * 1000 = 2,400,000; charge 1,200,000;
     * native = 4 * 600 * 500 / 3600 = 1,200,000 / 3600 = 333.3 -> 333.
     */
    {"lumi small-g 200G", &lumi_small_g, USAGE(2, 16, 1, 204800, 600), 4, 2400000, 1200000, 333},
    /* LEONARDO, CPU-bound: 1 GPU, 20 cores -> ceil(20/8) = 3 for an hour: 24,000 = 24 core-h. */
    {"leonardo cpu-bound", &leonardo, USAGE(1, 20, 1, 1000, 3600), 3, 10800000, 10800000, 24000},
    /*
     * LEONARDO, memory-bound: 1 GPU, 300,000 MB -> ceil(300000/128000) = 3 for 10 s:
     * gpu_ms 30,000; native 3 * 10 * 8000 / 3600 = 66.7 -> 66.
     */
    {"leonardo mem-bound", &leonardo, USAGE(1, 8, 1, 300000, 10), 3, 30000, 30000, 66},
    /* MN5: 41 threads -> ceil(41/2) = 21 cores -> ceil(21/20) = 2 GPUs; 1 s: native 11.1 -> 11. */
    {"mn5 odd thread", &mn5_acc, USAGE(1, 41, 1, 0, 1), 2, 2000, 2000, 11},
    /* No GPU asked on a GPU partition: 4 cores still take ceil(4/8) = 1 GPU. */
    {"leonardo no gpu", &leonardo, USAGE(0, 4, 1, 1000, 3600), 1, 3600000, 3600000, 8000},
    /* Nothing allocated (a pending job) or no time elapsed costs nothing. */
    {"leonardo nothing", &leonardo, USAGE(0, 0, 0, 0, 3600), 0, 0, 0, 0},
    {"lumi standard-g 0 nodes", &lumi_standard_g, USAGE(0, 0, 0, 0, 3600), 0, 0, 0, 0},
    {"mn5 zero elapsed", &mn5_acc, USAGE(4, 160, 1, 500000, 0), 4, 0, 0, 0},
    /*
     * Rounding: native is floored on the cumulative total. LEONARDO 1 GPU:
     * 1 s -> 8000 / 3600 = 2.2 -> 2; 449 s -> 3,592,000 / 3600 = 997.8 -> 997;
     * 450 s -> 3,600,000 / 3600 = 1000 exactly. LUMI 1 GCD for 7 s: 3500 / 3600 -> 0.
     * The charge is exact: 1 GCD-second at weight 500 is 500 units.
     */
    {"round 1 s", &leonardo, USAGE(1, 1, 1, 1, 1), 1, 1000, 1000, 2},
    {"round 449 s", &leonardo, USAGE(1, 1, 1, 1, 449), 1, 449000, 449000, 997},
    {"round 450 s", &leonardo, USAGE(1, 1, 1, 1, 450), 1, 450000, 450000, 1000},
    {"round lumi 7 s", &lumi_small_g, USAGE(1, 1, 1, 1, 7), 1, 7000, 3500, 0},
    {"lumi 1 s", &lumi_small_g, USAGE(1, 1, 1, 1, 1), 1, 1000, 500, 0},
    /*
     * The largest usage accepted, on LEONARDO: 1e6 GPUs (cores give 125,000 and 1 PB
     * of memory 7,813) for 366 days = 8784 h: gpu_ms = 1e6 * 31,622,400 * 1000 =
     * 31,622,400,000,000,000; native = 1e6 * 8784 h * 8000 = 70,272,000,000,000.
     */
    {"bounds", &leonardo, USAGE(1000000, 1000000, 1000000, 1000000000, 31622400), 1000000,
        31622400000000000LL, 31622400000000000LL, 70272000000000LL},
};

static void
test_bill_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bill_cases) / sizeof(bill_cases[0]); i++) {
		const struct bill_case *c = &bill_cases[i];
		struct billing_charge out;
		char err[256] = "";

		print_message("%s\n", c->name);
		assert_int_equal(billing_compute(c->r, &c->u, &out, err, sizeof(err)), 0);
		assert_string_equal(err, "");
		assert_int_equal(out.occupied_gpus, c->occupied);
		assert_int_equal(out.gpu_ms, c->gpu_ms);
		assert_int_equal(out.charge_units, c->charge_units);
		assert_int_equal(out.native_milli, c->native_milli);
		/* The formula as the specification writes it (no overflow at these sizes). */
		if (out.gpu_ms <= INT64_MAX / c->r->weight_per_mille)
			assert_int_equal(
			    out.charge_units, out.gpu_ms * c->r->weight_per_mille / 1000);
	}
}

struct refusal_case {
	const char *name;
	struct billing_resource r;
	struct billing_usage u;
	const char *err;
};

#define OK_USAGE USAGE(1, 8, 1, 1000, 60)

static const struct refusal_case refusal_cases[] = {
    {"negative gpus", leonardo, USAGE(-1, 8, 1, 1000, 60), "gpus must not be negative: -1"},
    {"negative cpus", leonardo, USAGE(1, -8, 1, 1000, 60), "cpus must not be negative: -8"},
    {"negative nodes", leonardo, USAGE(1, 8, -1, 1000, 60), "nodes must not be negative: -1"},
    {"negative mem", leonardo, USAGE(1, 8, 1, -1000, 60), "mem_mb must not be negative: -1000"},
    {"negative elapsed", leonardo, USAGE(1, 8, 1, 1000, -60),
        "elapsed_s must not be negative: -60"},
    {"min int32 gpus", leonardo, USAGE(INT32_MIN, 8, 1, 1000, 60),
        "gpus must not be negative: -2147483648"},
    {"min int64 elapsed", leonardo, USAGE(1, 8, 1, 1000, INT64_MIN),
        "elapsed_s must not be negative: -9223372036854775808"},
    {"absurd gpus", leonardo, USAGE(1000001, 8, 1, 1000, 60),
        "gpus must not exceed 1000000: 1000001"},
    {"absurd cpus", leonardo, USAGE(1, INT32_MAX, 1, 1000, 60),
        "cpus must not exceed 1000000: 2147483647"},
    {"absurd nodes", leonardo, USAGE(1, 8, 1000001, 1000, 60),
        "nodes must not exceed 1000000: 1000001"},
    {"absurd mem", leonardo, USAGE(1, 8, 1, 1000000001, 60),
        "mem_mb must not exceed 1000000000 (1 PB): 1000000001"},
    {"absurd elapsed", leonardo, USAGE(1, 8, 1, 1000, 31622401),
        "elapsed_s must not exceed 31622400 (366 days): 31622401"},
    {"max int64 elapsed", leonardo, USAGE(1, 8, 1, 1000, INT64_MAX),
        "elapsed_s must not exceed 31622400 (366 days): 9223372036854775807"},
    {"rule 0", {0, 4, 8, 1, 128000, 8000, 1000}, OK_USAGE, "unknown billing rule 0"},
    {"rule 3", {3, 4, 8, 1, 128000, 8000, 1000}, OK_USAGE, "unknown billing rule 3"},
    {"gpus_per_node 0", {BILLING_RULE_GPU_SHARE, 0, 8, 1, 128000, 8000, 1000}, OK_USAGE,
        "gpus_per_node of the resource must be positive: 0"},
    {"gpus_per_node -4 whole node", {BILLING_RULE_WHOLE_NODE, -4, 8, 1, 0, 8000, 1000}, OK_USAGE,
        "gpus_per_node of the resource must be positive: -4"},
    {"gpus_per_node 1025", {BILLING_RULE_WHOLE_NODE, 1025, 0, 0, 0, 8000, 1000}, OK_USAGE,
        "gpus_per_node of the resource must not exceed 1024: 1025"},
    {"cores_per_gpu 0", {BILLING_RULE_GPU_SHARE, 4, 0, 1, 128000, 8000, 1000}, OK_USAGE,
        "cores_per_gpu of a BILLING_RULE_GPU_SHARE resource must be positive: 0"},
    {"cores_per_gpu -1 whole node", {BILLING_RULE_WHOLE_NODE, 4, -1, 0, 0, 8000, 1000}, OK_USAGE,
        "cores_per_gpu of the resource must not be negative: -1"},
    {"cores_per_gpu 100001", {BILLING_RULE_GPU_SHARE, 4, 100001, 1, 0, 8000, 1000}, OK_USAGE,
        "cores_per_gpu of the resource must not exceed 100000: 100001"},
    {"threads_per_core -1", {BILLING_RULE_GPU_SHARE, 4, 8, -1, 128000, 8000, 1000}, OK_USAGE,
        "threads_per_core of the resource must not be negative: -1"},
    {"threads_per_core 17 whole node", {BILLING_RULE_WHOLE_NODE, 4, 0, 17, 0, 8000, 1000}, OK_USAGE,
        "threads_per_core of the resource must not exceed 16: 17"},
    {"weight 0", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 128000, 8000, 0}, OK_USAGE,
        "weight_per_mille of the resource must be positive: 0"},
    {"weight -500", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 128000, 8000, -500}, OK_USAGE,
        "weight_per_mille of the resource must be positive: -500"},
    {"weight 100001", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 128000, 8000, 100001}, OK_USAGE,
        "weight_per_mille of the resource must not exceed 100000: 100001"},
    {"mem_per_gpu_mb -1", {BILLING_RULE_GPU_SHARE, 4, 8, 1, -1, 8000, 1000}, OK_USAGE,
        "mem_per_gpu_mb of the resource must not be negative: -1"},
    {"mem_per_gpu_mb 1000000001", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 1000000001, 8000, 1000},
        OK_USAGE, "mem_per_gpu_mb of the resource must not exceed 1000000000: 1000000001"},
    {"native -1", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 128000, -1, 1000}, OK_USAGE,
        "native_milli_per_gpu_hour of the resource must not be negative: -1"},
    {"native INT64_MAX", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 128000, INT64_MAX, 1000}, OK_USAGE,
        "native_milli_per_gpu_hour of the resource must not exceed 1000000000: "
        "9223372036854775807"},
    /*
     * Overflow, within the bounds. Whole nodes of 1024 GPUs: 1e6 nodes make
     * 1,024,000,000 GPUs; for 9,007,200 s that is 9,223,372,800,000,000 GPU-s, which
     * fits, but times 1000 ms it exceeds INT64_MAX = 9,223,372,036,854,775,807.
     * For 366 days too (gpu_s itself cannot overflow within the bounds: 2^30 * 2^25).
     */
    {"gpu_ms overflow", {BILLING_RULE_WHOLE_NODE, 1024, 0, 0, 0, 0, 1000},
        USAGE(0, 0, 1000000, 0, 9007200),
        "GPU time overflows 64 bits: 1024000000 GPUs for 9007200 s"},
    {"gpu_ms overflow 366 days", {BILLING_RULE_WHOLE_NODE, 1024, 0, 0, 0, 0, 1000},
        USAGE(0, 0, 1000000, 0, 31622400),
        "GPU time overflows 64 bits: 1024000000 GPUs for 31622400 s"},
    /*
     * Memory alone: 1 PB at 1 MB per GPU is 1e9 GPUs; for 366 days,
     * 31,622,400,000,000,000 GPU-s fits but 1000 times that does not.
     */
    {"mem-bound overflow", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 1, 0, 1000},
        USAGE(0, 0, 1, 1000000000, 31622400),
        "GPU time overflows 64 bits: 1000000000 GPUs for 31622400 s"},
    /*
     * 1,024,000,000 GPUs for 90,072 s: 92,233,728,000,000 GPU-s; at the largest
     * weight, 100000, the charge would be 9,223,372,800,000,000,000.
     */
    {"charge overflow", {BILLING_RULE_WHOLE_NODE, 1024, 0, 0, 0, 0, 100000},
        USAGE(0, 0, 1000000, 0, 90072),
        "charge overflows 64 bits: 92233728000000 GPU-seconds at weight 100000"},
    /*
     * The largest native factor, 1e9 milli per GPU-hour. 1,024,000,000 GPUs for
     * 32,426 s: 33,204,224,000,000 GPU-s = 9,223,395,555 whole hours, whose product
     * with 1e9 does not fit.
     */
    {"native overflow", {BILLING_RULE_WHOLE_NODE, 1024, 0, 0, 0, 1000000000, 1000},
        USAGE(0, 0, 1000000, 0, 32426),
        "site-native figure overflows 64 bits: 33204224000000 GPU-seconds at 1000000000 milli "
        "per GPU-hour"},
    /*
     * The sum overflowing, not the product: 481,708,100 MB at 1 MB per GPU for
     * 68,930 s = 33,204,139,333,000 GPU-s = 9,223,372,036 h (* 1e9 =
     * 9,223,372,036,000,000,000, which fits) and 3400 s, which add
     * floor(3400 * 1e9 / 3600) = 944,444,444 > INT64_MAX - 9,223,372,036,000,000,000 =
     * 854,775,807.
     */
    {"native overflow in the sum", {BILLING_RULE_GPU_SHARE, 4, 8, 1, 1, 1000000000, 1000},
        USAGE(0, 0, 1, 481708100, 68930),
        "site-native figure overflows 64 bits: 33204139333000 GPU-seconds at 1000000000 milli "
        "per GPU-hour"},
};

static void
test_refusals(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(refusal_cases) / sizeof(refusal_cases[0]); i++) {
		const struct refusal_case *c = &refusal_cases[i];
		struct billing_charge out = {-7, -7, -7, -7};
		char err[256] = "";

		print_message("%s\n", c->name);
		assert_int_equal(billing_compute(&c->r, &c->u, &out, err, sizeof(err)), -1);
		assert_string_equal(err, c->err);
		/* A refusal leaves the output alone. */
		assert_int_equal(out.occupied_gpus, -7);
		assert_int_equal(out.gpu_ms, -7);
		assert_int_equal(out.charge_units, -7);
		assert_int_equal(out.native_milli, -7);
	}
}

/* Results close to INT64_MAX are exact, not refused, when they fit. */
static void
test_edge_of_int64(void **state)
{
	struct billing_resource r = {BILLING_RULE_WHOLE_NODE, 1024, 0, 0, 0, 0, 1000};
	struct billing_usage u = USAGE(0, 0, 1000000, 0, 9007199);
	struct billing_charge out;
	char err[256] = "";

	(void)state;
	/*
	 * One second less than "gpu_ms overflow": 1,024,000,000 GPUs * 9,007,199 s =
	 * 9,223,371,776,000,000 GPU-s; gpu_ms = charge = 9,223,371,776,000,000,000
	 * < INT64_MAX.
	 */
	assert_int_equal(billing_compute(&r, &u, &out, err, sizeof(err)), 0);
	assert_int_equal(out.occupied_gpus, 1024000000LL);
	assert_int_equal(out.gpu_ms, 9223371776000000000LL);
	assert_int_equal(out.charge_units, 9223371776000000000LL);
	assert_int_equal(out.native_milli, 0);

	/*
	 * One second less than "charge overflow", at weight 100000: 92,232,704,000,000
	 * GPU-s; gpu_ms = 92,232,704,000,000,000; the charge is 92,232,704,000,000 *
	 * 100000 = 9,223,270,400,000,000,000 < INT64_MAX, although gpu_ms * 100000 (the
	 * formula's intermediate) would not fit.
	 */
	r.weight_per_mille = 100000;
	u.elapsed_s = 90071;
	assert_int_equal(billing_compute(&r, &u, &out, err, sizeof(err)), 0);
	assert_int_equal(out.gpu_ms, 92232704000000000LL);
	assert_int_equal(out.charge_units, 9223270400000000000LL);

	/*
	 * Native at 1e9 milli per GPU-hour: one GPU-hour gives 1e9, one GPU-second
	 * floor(1e9 / 3600) = 277,777. 1,607,000 MB at 1 MB per GPU for 20,662,190 s =
	 * 33,204,139,330,000 GPU-s = 9,223,372,036 h and 400 s: 9,223,372,036 * 1e9 +
	 * floor(400 * 1e9 / 3600) = 9,223,372,036,000,000,000 + 111,111,111 =
	 * 9,223,372,036,111,111,111, within 743,664,696 of INT64_MAX.
	 */
	r = (struct billing_resource){BILLING_RULE_GPU_SHARE, 4, 8, 1, 1, 1000000000, 1000};
	u = (struct billing_usage)USAGE(1, 0, 1, 0, 3600);
	assert_int_equal(billing_compute(&r, &u, &out, err, sizeof(err)), 0);
	assert_int_equal(out.native_milli, 1000000000);
	u.elapsed_s = 1;
	assert_int_equal(billing_compute(&r, &u, &out, err, sizeof(err)), 0);
	assert_int_equal(out.native_milli, 277777);
	u = (struct billing_usage)USAGE(0, 0, 1, 1607000, 20662190);
	assert_int_equal(billing_compute(&r, &u, &out, err, sizeof(err)), 0);
	assert_int_equal(out.occupied_gpus, 1607000);
	assert_int_equal(out.native_milli, 9223372036111111111LL);
}

/* A short or absent error buffer is never overrun. */
static void
test_small_err(void **state)
{
	struct billing_usage u = USAGE(-1, 0, 0, 0, 0);
	struct billing_charge out;
	char err[8];

	(void)state;
	memset(err, 'x', sizeof(err));
	assert_int_equal(billing_compute(&leonardo, &u, &out, err, 5), -1);
	assert_string_equal(err, "gpus");
	assert_int_equal(err[5], 'x');
	assert_int_equal(billing_compute(&leonardo, &u, &out, NULL, 0), -1);
}

/* The case table shared with sql/tests/resource_rules.sql: this program's argument. */
static const char *resource_rules_path;

/* Reads a decimal in [min, max] from all of s. */
static int
parse_decimal(const char *s, int64_t min, int64_t max, int64_t *v)
{
	char *end;
	long long x;

	errno = 0;
	x = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || x < min || x > max)
		return -1;
	*v = x;
	return 0;
}

/*
 * Each resource of tests/fixtures/resource_rules.tsv is accepted or refused by
 * billing_compute as the table says CreateResource accepts or refuses it. The job is
 * small, so that a refusal is the resource's and never an overflow.
 */
static void
test_resource_rules(void **state)
{
	static const char *const names[] = {"rule", "gpus_per_node", "cores_per_gpu",
	    "threads_per_core", "mem_per_gpu_mb", "native_milli_per_gpu_hour", "weight_per_mille",
	    "verdict", "what"};
	enum { NFIELDS = sizeof(names) / sizeof(names[0]) };
	const struct billing_usage u = OK_USAGE;
	char line[512];
	int lineno = 0, ncases = 0, naccepted = 0, nwrong = 0;
	FILE *f;

	(void)state;
	if (resource_rules_path == NULL)
		fail_msg("usage: unit-billing RESOURCE_RULES_TSV");
	if ((f = fopen(resource_rules_path, "r")) == NULL)
		fail_msg("could not open \"%s\": %s", resource_rules_path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		char *field[NFIELDS], *p = line;
		int64_t v[7];
		size_t n = 0, len = strlen(line);
		struct billing_resource r;
		struct billing_charge out;
		char err[256] = "";
		bool accept, accepted;

		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(f))
			fail_msg("%s:%d: line too long", resource_rules_path, lineno);
		if (line[0] == '#' || line[0] == '\0')
			continue;
		for (;;) {
			char *tab = strchr(p, '\t');

			if (n == NFIELDS)
				fail_msg("%s:%d: more than %d fields", resource_rules_path, lineno,
				    (int)NFIELDS);
			field[n++] = p;
			if (tab == NULL)
				break;
			*tab = '\0';
			p = tab + 1;
		}
		if (n != NFIELDS)
			fail_msg("%s:%d: %zu fields, not %d", resource_rules_path, lineno, n,
			    (int)NFIELDS);
		for (size_t i = 1; i < 7; i++) {
			/* Values that do not fit the proto field never reach either side. */
			bool wide = i == 4 || i == 5;

			if (parse_decimal(field[i], wide ? INT64_MIN : INT32_MIN,
			        wide ? INT64_MAX : INT32_MAX, &v[i]) != 0)
				fail_msg("%s:%d: %s \"%s\" is not a decimal %s",
				    resource_rules_path, lineno, names[i], field[i],
				    wide ? "int64" : "int32");
		}
		if (strcmp(field[7], "accept") != 0 && strcmp(field[7], "refuse") != 0)
			fail_msg("%s:%d: verdict \"%s\" is not accept or refuse",
			    resource_rules_path, lineno, field[7]);
		accept = strcmp(field[7], "accept") == 0;

		/* As ingest.c does: a rule that does not parse is no rule. */
		if (billing_rule_parse(field[0], &r.rule) != 0)
			r.rule = (enum billing_rule)0;
		r.gpus_per_node = (int32_t)v[1];
		r.cores_per_gpu = (int32_t)v[2];
		r.threads_per_core = (int32_t)v[3];
		r.mem_per_gpu_mb = v[4];
		r.native_milli_per_gpu_hour = v[5];
		r.weight_per_mille = (int32_t)v[6];
		accepted = billing_compute(&r, &u, &out, err, sizeof(err)) == 0;
		ncases++;
		naccepted += accepted;
		if (accepted != accept) {
			print_message("%s:%d: %s: billing_compute %s it, the table says %s%s%s\n",
			    resource_rules_path, lineno, field[8], accepted ? "accepts" : "refuses",
			    field[7], accepted ? "" : ": ", err);
			nwrong++;
		} else if (!accepted && strstr(err, "resource") == NULL &&
		    strstr(err, "billing rule") == NULL) {
			print_message("%s:%d: %s: refused, but not for the resource: %s\n",
			    resource_rules_path, lineno, field[8], err);
			nwrong++;
		}
	}
	assert_false(ferror(f));
	fclose(f);
	print_message("%d cases, %d accepted\n", ncases, naccepted);
	/* An empty or one-sided table would test nothing. */
	assert_true(naccepted > 0 && naccepted < ncases);
	assert_int_equal(nwrong, 0);
}

static void
test_rule_names(void **state)
{
	enum billing_rule rule = BILLING_RULE_WHOLE_NODE;

	(void)state;
	assert_int_equal(billing_rule_parse("BILLING_RULE_GPU_SHARE", &rule), 0);
	assert_int_equal(rule, BILLING_RULE_GPU_SHARE);
	assert_int_equal(billing_rule_parse("BILLING_RULE_WHOLE_NODE", &rule), 0);
	assert_int_equal(rule, BILLING_RULE_WHOLE_NODE);

	assert_int_equal(billing_rule_parse("billing_rule_gpu_share", &rule), -1);
	assert_int_equal(billing_rule_parse("BILLING_RULE_UNSPECIFIED", &rule), -1);
	assert_int_equal(billing_rule_parse("GPU_SHARE", &rule), -1);
	assert_int_equal(billing_rule_parse("", &rule), -1);
	assert_int_equal(billing_rule_parse("BILLING_RULE_GPU_SHARE ", &rule), -1);
	assert_int_equal(rule, BILLING_RULE_WHOLE_NODE);

	assert_string_equal(billing_rule_name(BILLING_RULE_GPU_SHARE), "BILLING_RULE_GPU_SHARE");
	assert_string_equal(billing_rule_name(BILLING_RULE_WHOLE_NODE), "BILLING_RULE_WHOLE_NODE");
	assert_null(billing_rule_name((enum billing_rule)0));
	assert_null(billing_rule_name((enum billing_rule)3));
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bill_cases),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_edge_of_int64),
	    cmocka_unit_test(test_small_err),
	    cmocka_unit_test(test_rule_names),
	    cmocka_unit_test(test_resource_rules),
	};

	resource_rules_path = argc > 1 ? argv[1] : NULL;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
