/*
 * tariff: a site's resources and their effective-dated weights, as
 * allot.site_billing answers them, and what a job's usage costs on them.
 *
 * Pure apart from reading that JSON once: which resource a record names and
 * which weight is in force when the job started are decided here; the arithmetic
 * is billing.c's. Used by ingestion, quotes, reservations and heartbeats.
 */
#ifndef ALLOT_TARIFF_H
#define ALLOT_TARIFF_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "billing.h"

struct tariff;

struct tariff_bill {
	int64_t resource_id;
	int32_t weight_per_mille;
	const char *native_unit; /* points into the tariff */
	struct billing_charge charge;
};

/*
 * Reads site_billing's answer, parsed (a JSON array; kept by the caller). Returns
 * a new tariff that the caller frees with tariff_free, or NULL when it is malformed.
 */
struct tariff *tariff_new(const json_t *billing);
void tariff_free(struct tariff *t);

/*
 * Bills usage of a job that started at start_s (seconds since the epoch) on site's
 * partition into *out. Returns 0, or -1 with a reason a client can read in reason
 * (an unknown partition, no weight in force, a value billing refuses).
 */
int tariff_bill(const struct tariff *t, const char *site, const char *partition, int64_t start_s,
    const struct billing_usage *usage, struct tariff_bill *out, char *reason, size_t reasonlen)
    __attribute__((warn_unused_result));

#endif
