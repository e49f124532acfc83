/*
 * billing: what a job's usage costs on a resource, in exact 64-bit integers.
 *
 * Occupied GPUs:
 *   BILLING_RULE_GPU_SHARE:  max(gpus,
 *                                ceil(ceil(cpus / threads_per_core) / cores_per_gpu),
 *                                mem_per_gpu_mb > 0 ? ceil(mem_mb / mem_per_gpu_mb) : 0)
 *   BILLING_RULE_WHOLE_NODE: nodes * gpus_per_node (whatever GPUs were requested)
 * gpu_ms       = occupied * elapsed_s * 1000
 * charge_units = floor(gpu_ms * weight_per_mille / 1000)
 * native_milli = floor(occupied * elapsed_s * native_milli_per_gpu_hour / 3600)
 *
 * Rounding: floor, once, on a job's cumulative total, never on increments; so an
 * auditor recomputes any charge from the job's latest record alone. Since usage
 * comes in whole seconds, gpu_ms is a multiple of 1000 and charge_units is exact
 * (it equals occupied * elapsed_s * weight_per_mille); only native_milli, in
 * thousandths of the site's own unit, is ever rounded down.
 *
 * Intermediate products are computed so that a result that fits in 64 bits is
 * exact; one that does not is refused, never wrapped or saturated.
 *
 * A resource is valid exactly when allot.rpc_create_resource (sql/migrations) accepts
 * it, field for field and rule for rule, so a resource the database stored always
 * bills: what a rule does not use may be 0 (cores_per_gpu and threads_per_core under
 * BILLING_RULE_WHOLE_NODE), and threads_per_core 0 means 1, as CreateResource
 * stores it. tests/fixtures/resource_rules.tsv holds the cases that both sides'
 * tests run.
 *
 * Which resource a record bills on, and which weight is in force at the job's start,
 * is the caller's choice (ingest.c); this module does no I/O and keeps no state.
 */
#ifndef ALLOT_BILLING_H
#define ALLOT_BILLING_H

#include <stddef.h>
#include <stdint.h>

/* The numbers of allot.v1.BillingRule. */
enum billing_rule {
	BILLING_RULE_GPU_SHARE = 1,
	BILLING_RULE_WHOLE_NODE = 2,
};

/*
 * A resource's billing parameters with the weight in force for the job, each bounded
 * by the BILLING_MAX_ constant of its name. cores_per_gpu and threads_per_core count
 * only under BILLING_RULE_GPU_SHARE.
 */
struct billing_resource {
	enum billing_rule rule;
	int32_t gpus_per_node;             /* 1..: GPUs (GCDs on LUMI) of a node */
	int32_t cores_per_gpu;             /* physical cores per GPU: 1.., or 0.. if unused */
	int32_t threads_per_core;          /* 0..: Slurm's CPUs per physical core; 0 means 1 */
	int64_t mem_per_gpu_mb;            /* 0..; 0: memory never counts */
	int64_t native_milli_per_gpu_hour; /* 0..: thousandths of the site's unit */
	int32_t weight_per_mille;          /* 1.. */
};

/* A job's allocation and elapsed time, as the site's accounting reports them. */
struct billing_usage {
	int32_t gpus; /* GPUs (GCDs on LUMI) allocated */
	int32_t cpus; /* Slurm CPUs, i.e. hardware threads */
	int32_t nodes;
	int64_t mem_mb;    /* memory allocated, MB */
	int64_t elapsed_s; /* wall time so far */
};

struct billing_charge {
	int64_t occupied_gpus;
	int64_t gpu_ms;       /* occupied GPU-milliseconds, unweighted */
	int64_t charge_units; /* normalized GPU-milliseconds: what the ledger charges */
	int64_t native_milli; /* thousandths of the site's native unit */
};

/*
 * Bounds past which a value is refused as absurd rather than billed; those of a
 * resource are allot.rpc_create_resource's.
 */
#define BILLING_MAX_COUNT 1000000                    /* gpus, cpus, nodes */
#define BILLING_MAX_MEM_MB INT64_C(1000000000)       /* 1 PB */
#define BILLING_MAX_ELAPSED_S (INT64_C(366) * 86400) /* a leap year */
#define BILLING_MAX_WEIGHT 100000                    /* 100 times the reference GPU */
#define BILLING_MAX_GPUS_PER_NODE 1024
#define BILLING_MAX_CORES_PER_GPU 100000
#define BILLING_MAX_THREADS_PER_CORE 16
#define BILLING_MAX_MEM_PER_GPU_MB BILLING_MAX_MEM_MB
#define BILLING_MAX_NATIVE_MILLI_PER_GPU_HOUR INT64_C(1000000000) /* a million units */

/*
 * Computes the charge of usage on resource r into *out. Returns 0, or -1 with the
 * reason in err (a negative or absurd value, a resource that cannot bill, a result
 * that overflows 64 bits) and *out unchanged. Pure: any thread, any loop.
 */
int billing_compute(const struct billing_resource *r, const struct billing_usage *usage,
    struct billing_charge *out, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Reads a rule by its proto name, "BILLING_RULE_GPU_SHARE" or
 * "BILLING_RULE_WHOLE_NODE", into *rule. Returns 0, or -1 (*rule unchanged).
 */
int billing_rule_parse(const char *name, enum billing_rule *rule)
    __attribute__((warn_unused_result));

/* The proto name of rule, or NULL for a number that is not a rule. */
const char *billing_rule_name(enum billing_rule rule);

#endif
