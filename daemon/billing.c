/*
 * billing: the arithmetic of billing.h, with every bound and overflow checked.
 * Which resource and which weight apply to a record is ingest.c's choice.
 */
#include <stdio.h>
#include <string.h>

#include "billing.h"

static int64_t
ceil_div(int64_t a, int64_t b)
{
	return a / b + (a % b != 0);
}

int
billing_compute(const struct billing_resource *r, const struct billing_usage *u,
    struct billing_charge *out, char *err, size_t errlen)
{
	int64_t occupied, gpu_s, t;

	if (u->gpus < 0 || u->cpus < 0 || u->nodes < 0 || u->mem_mb < 0 || u->elapsed_s < 0) {
		snprintf(err, errlen, "%s must not be negative",
		    u->gpus < 0         ? "gpus"
		        : u->cpus < 0   ? "cpus"
		        : u->nodes < 0  ? "nodes"
		        : u->mem_mb < 0 ? "mem_mb"
		                        : "elapsed_s");
		return -1;
	}
	if (u->gpus > BILLING_MAX_COUNT || u->cpus > BILLING_MAX_COUNT ||
	    u->nodes > BILLING_MAX_COUNT) {
		snprintf(err, errlen, "%s is more than %d",
		    u->gpus > BILLING_MAX_COUNT       ? "gpus"
		        : u->cpus > BILLING_MAX_COUNT ? "cpus"
		                                      : "nodes",
		    BILLING_MAX_COUNT);
		return -1;
	}
	if (u->mem_mb > BILLING_MAX_MEM_MB) {
		snprintf(err, errlen, "mem_mb %lld is more than %lld", (long long)u->mem_mb,
		    BILLING_MAX_MEM_MB);
		return -1;
	}
	if (u->elapsed_s > BILLING_MAX_ELAPSED_S) {
		snprintf(
		    err, errlen, "elapsed_s %lld is more than a year", (long long)u->elapsed_s);
		return -1;
	}
	if (r->gpus_per_node <= 0 || r->mem_per_gpu_mb < 0 || r->native_milli_per_gpu_hour < 0 ||
	    r->weight_per_mille <= 0 || r->weight_per_mille > BILLING_MAX_WEIGHT ||
	    (r->rule == BILLING_RULE_GPU_SHARE &&
	        (r->cores_per_gpu <= 0 || r->threads_per_core <= 0))) {
		snprintf(err, errlen, "the resource's billing parameters are out of range");
		return -1;
	}
	switch (r->rule) {
	case BILLING_RULE_GPU_SHARE:
		occupied = u->gpus;
		t = ceil_div(ceil_div(u->cpus, r->threads_per_core), r->cores_per_gpu);
		if (t > occupied)
			occupied = t;
		if (r->mem_per_gpu_mb > 0 &&
		    (t = ceil_div(u->mem_mb, r->mem_per_gpu_mb)) > occupied)
			occupied = t;
		break;
	case BILLING_RULE_WHOLE_NODE:
		occupied = (int64_t)u->nodes * r->gpus_per_node;
		break;
	default:
		snprintf(err, errlen, "unknown billing rule %d", (int)r->rule);
		return -1;
	}
	if (__builtin_mul_overflow(occupied, u->elapsed_s, &gpu_s) ||
	    __builtin_mul_overflow(gpu_s, (int64_t)1000, &out->gpu_ms) ||
	    __builtin_mul_overflow(out->gpu_ms, (int64_t)r->weight_per_mille, &t)) {
		snprintf(err, errlen, "the charge overflows");
		return -1;
	}
	out->occupied_gpus = occupied;
	out->charge_units = t / 1000;
	if (__builtin_mul_overflow(gpu_s, r->native_milli_per_gpu_hour, &t)) {
		snprintf(err, errlen, "the site's figure overflows");
		return -1;
	}
	out->native_milli = t / 3600;
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
