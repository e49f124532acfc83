/*
 * billing: the arithmetic of billing.h, with every input bounded and every product
 * checked for overflow. Values outside the bounds are refused with a reason a site's
 * operator can act on, since they come from the sites' accounting records.
 *
 * Choosing the resource and the weight in force, and storing the result, is left to
 * ingest.c and the database; this file only computes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "billing.h"

static int64_t
ceil_div(int64_t a, int64_t b)
{
	/* a >= 0 and b > 0 here, so this never overflows. */
	return a / b + (a % b != 0);
}

static int
refuse_negative(const char *what, int64_t v, char *err, size_t errlen)
{
	if (v >= 0)
		return 0;
	snprintf(err, errlen, "%s must not be negative: %" PRId64, what, v);
	return -1;
}

static int
refuse_above(
    const char *what, int64_t v, int64_t max, const char *max_words, char *err, size_t errlen)
{
	if (v <= max)
		return 0;
	snprintf(
	    err, errlen, "%s must not exceed %" PRId64 "%s: %" PRId64, what, max, max_words, v);
	return -1;
}

static int
refuse_not_positive(const char *what, int64_t v, char *err, size_t errlen)
{
	if (v > 0)
		return 0;
	snprintf(err, errlen, "%s must be positive: %" PRId64, what, v);
	return -1;
}

/*
 * The bounds and the order are allot.rpc_create_resource's, so that a resource the
 * database accepted bills and one it refused would not; the cases of
 * tests/fixtures/resource_rules.tsv run against both. A field the rule does not use is
 * still bounded, but may be 0: a WHOLE_NODE resource has no cores per GPU.
 */
static int
check_resource(const struct billing_resource *r, char *err, size_t errlen)
{
	if (r->rule != BILLING_RULE_GPU_SHARE && r->rule != BILLING_RULE_WHOLE_NODE) {
		snprintf(err, errlen, "unknown billing rule %d", (int)r->rule);
		return -1;
	}
	if (refuse_not_positive("gpus_per_node of the resource", r->gpus_per_node, err, errlen) !=
	        0 ||
	    refuse_above("gpus_per_node of the resource", r->gpus_per_node,
	        BILLING_MAX_GPUS_PER_NODE, "", err, errlen) != 0)
		return -1;
	if (r->rule == BILLING_RULE_GPU_SHARE &&
	    refuse_not_positive("cores_per_gpu of a BILLING_RULE_GPU_SHARE resource",
	        r->cores_per_gpu, err, errlen) != 0)
		return -1;
	if (refuse_negative("cores_per_gpu of the resource", r->cores_per_gpu, err, errlen) != 0 ||
	    refuse_above("cores_per_gpu of the resource", r->cores_per_gpu,
	        BILLING_MAX_CORES_PER_GPU, "", err, errlen) != 0 ||
	    refuse_negative("threads_per_core of the resource", r->threads_per_core, err, errlen) !=
	        0 ||
	    refuse_above("threads_per_core of the resource", r->threads_per_core,
	        BILLING_MAX_THREADS_PER_CORE, "", err, errlen) != 0 ||
	    refuse_negative("mem_per_gpu_mb of the resource", r->mem_per_gpu_mb, err, errlen) !=
	        0 ||
	    refuse_above("mem_per_gpu_mb of the resource", r->mem_per_gpu_mb,
	        BILLING_MAX_MEM_PER_GPU_MB, "", err, errlen) != 0 ||
	    refuse_negative("native_milli_per_gpu_hour of the resource",
	        r->native_milli_per_gpu_hour, err, errlen) != 0 ||
	    refuse_above("native_milli_per_gpu_hour of the resource", r->native_milli_per_gpu_hour,
	        BILLING_MAX_NATIVE_MILLI_PER_GPU_HOUR, "", err, errlen) != 0 ||
	    refuse_not_positive(
	        "weight_per_mille of the resource", r->weight_per_mille, err, errlen) != 0 ||
	    refuse_above("weight_per_mille of the resource", r->weight_per_mille,
	        BILLING_MAX_WEIGHT, "", err, errlen) != 0)
		return -1;
	return 0;
}

static int
check_usage(const struct billing_usage *u, char *err, size_t errlen)
{
	if (refuse_negative("gpus", u->gpus, err, errlen) != 0 ||
	    refuse_negative("cpus", u->cpus, err, errlen) != 0 ||
	    refuse_negative("nodes", u->nodes, err, errlen) != 0 ||
	    refuse_negative("mem_mb", u->mem_mb, err, errlen) != 0 ||
	    refuse_negative("elapsed_s", u->elapsed_s, err, errlen) != 0)
		return -1;
	if (refuse_above("gpus", u->gpus, BILLING_MAX_COUNT, "", err, errlen) != 0 ||
	    refuse_above("cpus", u->cpus, BILLING_MAX_COUNT, "", err, errlen) != 0 ||
	    refuse_above("nodes", u->nodes, BILLING_MAX_COUNT, "", err, errlen) != 0 ||
	    refuse_above("mem_mb", u->mem_mb, BILLING_MAX_MEM_MB, " (1 PB)", err, errlen) != 0 ||
	    refuse_above(
	        "elapsed_s", u->elapsed_s, BILLING_MAX_ELAPSED_S, " (366 days)", err, errlen) != 0)
		return -1;
	return 0;
}

static int64_t
occupied_gpus(const struct billing_resource *r, const struct billing_usage *u)
{
	int64_t occupied, by_cores, by_mem, threads;

	if (r->rule == BILLING_RULE_WHOLE_NODE)
		return (int64_t)u->nodes * r->gpus_per_node; /* at most 1e6 * 1024 */

	/*
	 * Slurm counts hardware threads as CPUs; a GPU's share is in physical cores.
	 * threads_per_core 0 is CreateResource's unset, stored as 1.
	 */
	threads = r->threads_per_core > 0 ? r->threads_per_core : 1;
	by_cores = ceil_div(ceil_div(u->cpus, threads), r->cores_per_gpu);
	by_mem = r->mem_per_gpu_mb > 0 ? ceil_div(u->mem_mb, r->mem_per_gpu_mb) : 0;
	occupied = u->gpus;
	if (by_cores > occupied)
		occupied = by_cores;
	if (by_mem > occupied)
		occupied = by_mem;
	return occupied;
}

int
billing_compute(const struct billing_resource *r, const struct billing_usage *u,
    struct billing_charge *out, char *err, size_t errlen)
{
	int64_t occupied, gpu_s, gpu_ms, charge_units, hours, rest, native_hours, native_rest,
	    native_milli;

	if (check_resource(r, err, errlen) != 0 || check_usage(u, err, errlen) != 0)
		return -1;
	occupied = occupied_gpus(r, u);
	/* Within the bounds gpu_s fits (2^30 GPUs for 2^25 s) and gpu_ms may not. */
	if (__builtin_mul_overflow(occupied, u->elapsed_s, &gpu_s) ||
	    __builtin_mul_overflow(gpu_s, (int64_t)1000, &gpu_ms)) {
		snprintf(err, errlen,
		    "GPU time overflows 64 bits: %" PRId64 " GPUs for %" PRId64 " s", occupied,
		    u->elapsed_s);
		return -1;
	}
	/*
	 * floor(gpu_ms * weight / 1000) == gpu_s * weight exactly, as gpu_ms is a
	 * multiple of 1000; multiplying gpu_s avoids overflowing an intermediate that
	 * is 1000 times the result.
	 */
	if (__builtin_mul_overflow(gpu_s, (int64_t)r->weight_per_mille, &charge_units)) {
		snprintf(err, errlen,
		    "charge overflows 64 bits: %" PRId64 " GPU-seconds at weight %" PRId32, gpu_s,
		    r->weight_per_mille);
		return -1;
	}
	/*
	 * floor(gpu_s * n / 3600) split on whole hours: (h * 3600 + s) * n / 3600 ==
	 * h * n + floor(s * n / 3600), which is exact whenever the result fits.
	 */
	hours = gpu_s / 3600;
	rest = gpu_s % 3600;
	if (__builtin_mul_overflow(hours, r->native_milli_per_gpu_hour, &native_hours) ||
	    __builtin_mul_overflow(rest, r->native_milli_per_gpu_hour, &native_rest) ||
	    __builtin_add_overflow(native_hours, native_rest / 3600, &native_milli)) {
		snprintf(err, errlen,
		    "site-native figure overflows 64 bits: %" PRId64 " GPU-seconds at %" PRId64
		    " milli per GPU-hour",
		    gpu_s, r->native_milli_per_gpu_hour);
		return -1;
	}
	out->occupied_gpus = occupied;
	out->gpu_ms = gpu_ms;
	out->charge_units = charge_units;
	out->native_milli = native_milli;
	return 0;
}

int
billing_rule_parse(const char *name, enum billing_rule *rule)
{
	if (strcmp(name, "BILLING_RULE_GPU_SHARE") == 0)
		*rule = BILLING_RULE_GPU_SHARE;
	else if (strcmp(name, "BILLING_RULE_WHOLE_NODE") == 0)
		*rule = BILLING_RULE_WHOLE_NODE;
	else
		return -1;
	return 0;
}

const char *
billing_rule_name(enum billing_rule rule)
{
	switch (rule) {
	case BILLING_RULE_GPU_SHARE:
		return "BILLING_RULE_GPU_SHARE";
	case BILLING_RULE_WHOLE_NODE:
		return "BILLING_RULE_WHOLE_NODE";
	}
	return NULL;
}
