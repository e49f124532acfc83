/*
 * billing: how much a job's usage costs on a resource, in exact integers.
 *
 * Occupied GPUs:
 *   GPU_SHARE:  max(gpus, ceil(cores / cores_per_gpu), ceil(mem_mb / mem_per_gpu_mb))
 *               with cores = ceil(cpus / threads_per_core); memory counts only when
 *               mem_per_gpu_mb > 0
 *   WHOLE_NODE: nodes * gpus_per_node
 * gpu_ms       = occupied * elapsed_s * 1000
 * charge_units = floor(gpu_ms * weight_per_mille / 1000)
 * native_milli = floor(occupied * elapsed_s * native_milli_per_gpu_hour / 3600)
 *
 * The one rounding rule is floor, applied once to a job's cumulative total (never
 * to increments), so an auditor recomputes every charge from the job's latest
 * record. With whole seconds, charge_units is exact: gpu_ms is a multiple of 1000.
 */
#ifndef ALLOT_BILLING_H
#define ALLOT_BILLING_H

#include <stddef.h>
#include <stdint.h>

/* Numbers as in allot.v1.BillingRule. */
enum billing_rule {
	BILLING_RULE_GPU_SHARE = 1,
	BILLING_RULE_WHOLE_NODE = 2,
};

struct billing_resource {
	enum billing_rule rule;
	int32_t gpus_per_node;
	int32_t cores_per_gpu;
	int32_t threads_per_core;
	int64_t mem_per_gpu_mb;
	int64_t native_milli_per_gpu_hour;
	int32_t weight_per_mille;
};

struct billing_usage {
	int32_t gpus;
	int32_t cpus;
	int32_t nodes;
	int64_t mem_mb;
	int64_t elapsed_s;
};

struct billing_charge {
	int64_t occupied_gpus;
	int64_t gpu_ms;
	int64_t charge_units;
	int64_t native_milli;
};

/* Bounds past which a value is refused as absurd rather than billed. */
#define BILLING_MAX_COUNT 1000000       /* gpus, cpus, nodes */
#define BILLING_MAX_MEM_MB 1000000000LL /* 1 PB */
#define BILLING_MAX_ELAPSED_S (366 * 86400LL)
#define BILLING_MAX_WEIGHT 100000

/*
 * Computes the charge of usage on r into out. Returns 0, or -1 with the reason
 * in err (a negative or absurd value, a resource that cannot bill, an overflow).
 */
int billing_compute(const struct billing_resource *r, const struct billing_usage *usage,
    struct billing_charge *out, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Reads "BILLING_RULE_GPU_SHARE" or "BILLING_RULE_WHOLE_NODE". Returns 0 or -1. */
int billing_rule_parse(const char *name, enum billing_rule *rule)
    __attribute__((warn_unused_result));

#endif
