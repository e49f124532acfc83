/*
 * telemetry: Usage.IngestMetrics, a batch of GPU samples from one site's
 * exporters (utilization, memory, power, the energy counter, per GPU and time).
 *
 * One round trip, whatever the batch's size: each sample is checked here, its
 * time read to the millisecond, and the batch goes to allot.ingest_metrics as
 * one array per column (a value the exporter did not report is NULL; a refused
 * sample carries its reason). The database stores the samples, keeps each job's
 * summary current (energy, time at 0 % utilization, mean utilization) and
 * answers the IngestMetricsResponse's JSON, or the first answer for a batch id it
 * has seen with the same samples (sql/README.md). The batch's digest is taken
 * over the decoded fields, so the same samples in protobuf or JSON are one batch.
 * What the samples mean is the database's; what is well-formed is checked here.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/usage.pb-c.h"

#include "db.h"
#include "digest.h"
#include "log.h"
#include "pgarray.h"
#include "rfc3339.h"
#include "strbuf.h"
#include "telemetry.h"

#define TELEMETRY_MAX_SAMPLES 200000
#define TELEMETRY_MAX_HOST 255
#define TELEMETRY_MAX_GPU 32
#define TELEMETRY_MAX_JOB_ID 128
#define TELEMETRY_MAX_POWER_W 100000.0

/* The columns of allot.ingest_metrics's arrays, in its order. */
enum col {
	COL_HOST,
	COL_GPU,
	COL_AT_MS,
	COL_JOB,
	COL_UTIL,
	COL_MEM,
	COL_POWER,
	COL_ENERGY,
	COL_REJECT,
	NCOLS
};

static const char ingest_metrics_sql[] =
    "SELECT allot.ingest_metrics($1, $2, $3, $4, $5::text[], $6::text[], $7::bigint[], "
    "$8::text[], $9::float8[], $10::bigint[], $11::float8[], $12::bigint[], $13::text[])";

/* SHA-256 of the batch's decoded fields, as hex: tells a replay from a conflict. */
static int
hash_batch(const Allot__V1__IngestMetricsRequest *req, char *hex)
{
	struct digest d;

	digest_init(&d);
	digest_str(&d, req->site);
	digest_str(&d, req->batch_id);
	for (size_t i = 0; i < req->n_samples; i++) {
		const Allot__V1__GpuSample *s = req->samples[i];

		digest_str(&d, s->job_id);
		digest_str(&d, s->host);
		digest_str(&d, s->gpu);
		digest_str(&d, s->time);
		digest_opt(&d, s->utilization_case != ALLOT__V1__GPU_SAMPLE__UTILIZATION__NOT_SET,
		    &s->utilization_pct, sizeof(s->utilization_pct));
		digest_opt(&d, s->memory_case != ALLOT__V1__GPU_SAMPLE__MEMORY__NOT_SET,
		    &s->memory_used_mib, sizeof(s->memory_used_mib));
		digest_opt(&d, s->power_case != ALLOT__V1__GPU_SAMPLE__POWER__NOT_SET, &s->power_w,
		    sizeof(s->power_w));
		digest_opt(&d, s->energy_case != ALLOT__V1__GPU_SAMPLE__ENERGY__NOT_SET,
		    &s->energy_uj, sizeof(s->energy_uj));
	}
	return digest_finish(&d, hex);
}

/*
 * A sample's time in milliseconds since the epoch: rfc3339_parse's seconds and
 * the first three digits of a fraction after them ("08:48:23.5Z" is 500 ms).
 */
static int
sample_time_ms(const char *s, int64_t *ms)
{
	int64_t sec;
	int frac = 0;

	if (rfc3339_parse(s, &sec) != 0)
		return -1;
	if (strlen(s) > 19 && s[10] == 'T' && s[19] == '.') {
		const char *p = s + 20;

		for (int i = 0; i < 3; i++) {
			frac *= 10;
			if (isdigit((unsigned char)*p))
				frac += *p++ - '0';
		}
	}
	*ms = sec * 1000 + frac;
	return 0;
}

/* Returns NULL for a well-formed sample, with its time in *at_ms; else why not (in reason). */
static const char *
check_sample(const Allot__V1__GpuSample *s, int64_t *at_ms, char *reason, size_t len)
{
	if (s->host[0] == '\0' || strlen(s->host) > TELEMETRY_MAX_HOST)
		return "host is required (1 to 255 characters)";
	if (s->gpu[0] == '\0' || strlen(s->gpu) > TELEMETRY_MAX_GPU)
		return "gpu is required (1 to 32 characters)";
	if (strlen(s->job_id) > TELEMETRY_MAX_JOB_ID)
		return "job_id must be at most 128 characters";
	if (sample_time_ms(s->time, at_ms) != 0) {
		snprintf(reason, len, "time \"%.64s\" is not an RFC 3339 time", s->time);
		return reason;
	}
	if (s->utilization_case != ALLOT__V1__GPU_SAMPLE__UTILIZATION__NOT_SET &&
	    !(s->utilization_pct >= 0.0 && s->utilization_pct <= 100.0)) {
		snprintf(
		    reason, len, "utilization_pct %g is not between 0 and 100", s->utilization_pct);
		return reason;
	}
	if (s->memory_case != ALLOT__V1__GPU_SAMPLE__MEMORY__NOT_SET && s->memory_used_mib < 0)
		return "memory_used_mib must not be negative";
	if (s->power_case != ALLOT__V1__GPU_SAMPLE__POWER__NOT_SET &&
	    !(s->power_w >= 0.0 && s->power_w <= TELEMETRY_MAX_POWER_W)) {
		snprintf(reason, len, "power_w %g is not between 0 and %g", s->power_w,
		    TELEMETRY_MAX_POWER_W);
		return reason;
	}
	if (s->energy_case != ALLOT__V1__GPU_SAMPLE__ENERGY__NOT_SET && s->energy_uj < 0)
		return "energy_uj must not be negative";
	return NULL;
}

/* Writes the batch's samples, or their refusals, as one array per column. */
static int
build_columns(const Allot__V1__IngestMetricsRequest *req, struct strbuf *cols)
{
	char reason[256];

	for (size_t i = 0; i < req->n_samples; i++) {
		const Allot__V1__GpuSample *s = req->samples[i];
		int64_t at_ms = 0;
		const char *why = check_sample(s, &at_ms, reason, sizeof(reason));

		pgarray_put_str(&cols[COL_HOST], s->host);
		pgarray_put_str(&cols[COL_GPU], s->gpu);
		pgarray_put_int(&cols[COL_AT_MS], at_ms);
		pgarray_put_str(&cols[COL_JOB], s->job_id);
		if (why == NULL &&
		    s->utilization_case != ALLOT__V1__GPU_SAMPLE__UTILIZATION__NOT_SET)
			pgarray_put_double(&cols[COL_UTIL], s->utilization_pct);
		else
			pgarray_put_null(&cols[COL_UTIL]);
		if (why == NULL && s->memory_case != ALLOT__V1__GPU_SAMPLE__MEMORY__NOT_SET)
			pgarray_put_int(&cols[COL_MEM], s->memory_used_mib);
		else
			pgarray_put_null(&cols[COL_MEM]);
		if (why == NULL && s->power_case != ALLOT__V1__GPU_SAMPLE__POWER__NOT_SET)
			pgarray_put_double(&cols[COL_POWER], s->power_w);
		else
			pgarray_put_null(&cols[COL_POWER]);
		if (why == NULL && s->energy_case != ALLOT__V1__GPU_SAMPLE__ENERGY__NOT_SET)
			pgarray_put_int(&cols[COL_ENERGY], s->energy_uj);
		else
			pgarray_put_null(&cols[COL_ENERGY]);
		if (why != NULL)
			pgarray_put_str(&cols[COL_REJECT], why);
		else
			pgarray_put_null(&cols[COL_REJECT]);
	}
	for (int c = 0; c < NCOLS; c++)
		if (pgarray_finish(&cols[c]) != 0)
			return -1;
	return 0;
}

void
telemetry_ingest_handle(struct twirp_call *call)
{
	const Allot__V1__IngestMetricsRequest *req = (const void *)call->request;
	char hash[DIGEST_HEX_SIZE];
	struct strbuf cols[NCOLS];
	const char *params[4 + NCOLS];

	if (req->site[0] == '\0') {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT, "site is required");
		return;
	}
	if (req->batch_id[0] == '\0' || strlen(req->batch_id) > 200) {
		twirp_reply_error(
		    call, TWIRP_INVALID_ARGUMENT, "batch_id is required (1 to 200 characters)");
		return;
	}
	if (req->n_samples == 0 || req->n_samples > TELEMETRY_MAX_SAMPLES) {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT,
		    "a batch holds 1 to %d samples, not %zu", TELEMETRY_MAX_SAMPLES,
		    req->n_samples);
		return;
	}
	if (hash_batch(req, hash) != 0) {
		twirp_reply_error(call, TWIRP_INTERNAL, "could not hash the batch");
		return;
	}
	for (int c = 0; c < NCOLS; c++)
		strbuf_init(&cols[c]);
	if (build_columns(req, cols) != 0) {
		twirp_reply_error(call, TWIRP_INTERNAL, "out of memory");
		goto out;
	}
	params[0] = req->site;
	params[1] = req->batch_id;
	params[2] = hash;
	params[3] = call->principal.subject;
	for (int c = 0; c < NCOLS; c++)
		params[4 + c] = cols[c].data;
	/* The database answers the IngestMetricsResponse's JSON, or an error: both go back as is. */
	if (db_query(twirp_db(call->tw), ingest_metrics_sql, 4 + NCOLS, params, twirp_sql_done_cb,
	        call) != 0)
		twirp_reply_error(call, TWIRP_UNAVAILABLE, "database is unavailable");
out:
	for (int c = 0; c < NCOLS; c++)
		strbuf_cleanup(&cols[c]);
}
