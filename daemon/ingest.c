/*
 * ingest: Usage.Ingest, a batch of cumulative job records from one site.
 *
 * Two round trips, whatever the batch's size. allot.ingest_begin answers whether
 * the batch was seen (a replay is answered from what it stored: no record is
 * sent again) and, when it was not, the site's resources and weights. Then each
 * record is checked and billed here (billing.c, through tariff.c) and the whole
 * batch goes to allot.ingest_batch as one array per column, which merges it with
 * set-based SQL in one transaction and answers one row per record
 * (sql/README.md). The request is decoded once; nothing is re-encoded: the batch's
 * digest is taken over the decoded fields while the arrays are written.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "allot/v1/usage.pb-c.h"

#include "db.h"
#include "digest.h"
#include "hostlist.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "pgarray.h"
#include "rfc3339.h"
#include "strbuf.h"
#include "tariff.h"

#define INGEST_MAX_RECORDS 100000
#define INGEST_MAX_JOB_ID 128
#define INGEST_MAX_STEP 64
/* Nodes of one record's node_list, and of all a batch's records together. */
#define INGEST_MAX_RECORD_NODES 16384
#define INGEST_MAX_BATCH_NODES 2000000

/* The columns of allot.ingest_batch's arrays, in its order. */
enum col {
	COL_IDX,
	COL_JOB,
	COL_STEP,
	COL_START,
	COL_ACCOUNT,
	COL_USER,
	COL_PARTITION,
	COL_GPUS,
	COL_CPUS,
	COL_MEM,
	COL_NODES,
	COL_ELAPSED,
	COL_STATE,
	COL_RESOURCE,
	COL_OCCUPIED,
	COL_GPU_MS,
	COL_UNITS,
	COL_NATIVE,
	COL_WEIGHT,
	COL_REJECT,
	COL_NODE_LIST,
	NCOLS
};

static const char ingest_batch_sql[] =
    "SELECT * FROM allot.ingest_batch($1, $2, $3, $4, $5::int[], $6::text[], $7::text[], "
    "$8::bigint[], $9::text[], $10::text[], $11::text[], $12::int[], $13::int[], "
    "$14::bigint[], $15::int[], $16::bigint[], $17::text[], $18::bigint[], $19::bigint[], "
    "$20::bigint[], $21::bigint[], $22::bigint[], $23::int[], $24::text[], $25::text[])";

struct ingest {
	struct twirp_call *call;
	char body_hash[DIGEST_HEX_SIZE];
};

static const Allot__V1__IngestRequest *
ingest_request(const struct ingest *in)
{
	return (const Allot__V1__IngestRequest *)(const void *)in->call->request;
}

static void
ingest_fail(struct ingest *in, enum twirp_code code, const char *msg)
{
	struct twirp_call *call = in->call;

	free(in);
	twirp_reply_error(call, code, "%s", msg);
}

/* SHA-256 of the batch's decoded fields, as hex: tells a replay from a conflict. */
static int
hash_batch(const Allot__V1__IngestRequest *req, char *hex)
{
	struct digest d;

	digest_init(&d);
	digest_str(&d, req->site);
	digest_str(&d, req->batch_id);
	for (size_t i = 0; i < req->n_records; i++) {
		const Allot__V1__JobRecord *r = req->records[i];

		digest_str(&d, r->job_id);
		digest_str(&d, r->step);
		digest_str(&d, r->start_time);
		digest_str(&d, r->account);
		digest_str(&d, r->user);
		digest_str(&d, r->partition);
		digest_int(&d, r->gpus);
		digest_int(&d, r->cpus);
		digest_int(&d, r->mem_mb);
		digest_int(&d, r->nodes);
		digest_int(&d, r->elapsed_s);
		digest_str(&d, r->state);
	}
	/*
	 * Node lists after the records, only where one is given: a batch without any
	 * hashes as it did before node lists existed (a batch sent before an upgrade
	 * replays after it). Read as the next record, the marker would be a job id
	 * of some 10^18 bytes: no sequence of records hashes the same bytes.
	 */
	for (size_t i = 0, marked = 0; i < req->n_records; i++) {
		const Allot__V1__JobRecord *r = req->records[i];

		if (r->node_list[0] == '\0')
			continue;
		if (!marked++)
			digest_opt(&d, true, "\0node_list", 10);
		digest_int(&d, (int64_t)i);
		digest_str(&d, r->node_list);
	}
	return digest_finish(&d, hex);
}

/*
 * Checks and bills one record. Returns NULL with its bill in *bill, or the reason
 * it is refused (in reason). Steps are checked, never billed. An allocation
 * record's node list is expanded into nodes (comma-separated, emptied first) and
 * counted into *batch_nodes; a step's is not read.
 */
static const char *
check_record(const char *site, const Allot__V1__JobRecord *rec, const struct tariff *t,
    int64_t *start_s, struct tariff_bill *bill, struct strbuf *nodes, size_t *batch_nodes,
    char *reason, size_t len)
{
	struct billing_usage usage;
	char why[256];
	long n;

	if (rec->job_id[0] == '\0')
		return "job_id is required";
	if (strlen(rec->job_id) > INGEST_MAX_JOB_ID || strlen(rec->step) > INGEST_MAX_STEP)
		return "job_id must be 1 to 128 characters and step at most 64";
	if (rec->elapsed_s < 0)
		return "elapsed_s must not be negative";
	if (rfc3339_parse(rec->start_time, start_s) != 0) {
		if (rec->step[0] != '\0') {
			*start_s = INT64_MIN;
			return NULL;
		}
		snprintf(
		    reason, len, "start_time \"%.64s\" is not an RFC 3339 time", rec->start_time);
		return reason;
	}
	if (rec->step[0] != '\0')
		return NULL;
	strbuf_reset(nodes);
	if (rec->node_list[0] != '\0') {
		n = hostlist_expand(rec->node_list, strlen(rec->node_list), INGEST_MAX_RECORD_NODES,
		    ',', nodes, why, sizeof(why));
		if (n < 0) {
			strbuf_reset(nodes);
			snprintf(reason, len, "node_list \"%.64s\": %s", rec->node_list, why);
			return reason;
		}
		*batch_nodes += (size_t)n;
	}
	usage.gpus = rec->gpus;
	usage.cpus = rec->cpus;
	usage.nodes = rec->nodes;
	usage.mem_mb = rec->mem_mb;
	usage.elapsed_s = rec->elapsed_s;
	if (tariff_bill(t, site, rec->partition, *start_s, &usage, bill, reason, len) != 0)
		return reason;
	return NULL;
}

/*
 * Writes the batch's records, with their bills or refusals, as one array per column.
 * Returns 0, -1 when out of memory, or -2 when the batch's node lists name more
 * than INGEST_MAX_BATCH_NODES nodes together.
 */
static int
build_columns(const Allot__V1__IngestRequest *req, const struct tariff *t, struct strbuf *cols)
{
	char reason[512];
	struct strbuf nodes;
	size_t batch_nodes = 0;
	int rc = -1;

	strbuf_init(&nodes);
	for (size_t i = 0; i < req->n_records; i++) {
		const Allot__V1__JobRecord *r = req->records[i];
		struct tariff_bill bill;
		int64_t start_s = INT64_MIN;
		const char *why = check_record(
		    req->site, r, t, &start_s, &bill, &nodes, &batch_nodes, reason, sizeof(reason));
		bool billed = why == NULL && r->step[0] == '\0';

		if (batch_nodes > INGEST_MAX_BATCH_NODES) {
			rc = -2;
			goto out;
		}

		pgarray_put_int(&cols[COL_IDX], (int64_t)i);
		pgarray_put_str(&cols[COL_JOB], r->job_id);
		pgarray_put_str(&cols[COL_STEP], r->step);
		if (start_s != INT64_MIN)
			pgarray_put_int(&cols[COL_START], start_s);
		else
			pgarray_put_null(&cols[COL_START]);
		pgarray_put_str(&cols[COL_ACCOUNT], r->account);
		pgarray_put_str(&cols[COL_USER], r->user);
		pgarray_put_str(&cols[COL_PARTITION], r->partition);
		pgarray_put_int(&cols[COL_GPUS], r->gpus);
		pgarray_put_int(&cols[COL_CPUS], r->cpus);
		pgarray_put_int(&cols[COL_MEM], r->mem_mb);
		pgarray_put_int(&cols[COL_NODES], r->nodes);
		pgarray_put_int(&cols[COL_ELAPSED], r->elapsed_s);
		pgarray_put_str(&cols[COL_STATE], r->state);
		if (billed) {
			pgarray_put_int(&cols[COL_RESOURCE], bill.resource_id);
			pgarray_put_int(&cols[COL_OCCUPIED], bill.charge.occupied_gpus);
			pgarray_put_int(&cols[COL_GPU_MS], bill.charge.gpu_ms);
			pgarray_put_int(&cols[COL_UNITS], bill.charge.charge_units);
			pgarray_put_int(&cols[COL_NATIVE], bill.charge.native_milli);
			pgarray_put_int(&cols[COL_WEIGHT], bill.weight_per_mille);
		} else {
			for (int c = COL_RESOURCE; c <= COL_WEIGHT; c++)
				pgarray_put_null(&cols[c]);
		}
		if (why != NULL)
			pgarray_put_str(&cols[COL_REJECT], why);
		else
			pgarray_put_null(&cols[COL_REJECT]);
		if (billed && nodes.len > 0)
			pgarray_put_str(&cols[COL_NODE_LIST], nodes.data);
		else
			pgarray_put_null(&cols[COL_NODE_LIST]);
		if (strbuf_failed(&nodes))
			goto out;
	}
	for (int c = 0; c < NCOLS; c++)
		if (pgarray_finish(&cols[c]) != 0)
			goto out;
	rc = 0;
out:
	strbuf_cleanup(&nodes);
	return rc;
}

static Allot__V1__IngestStatus
status_parse(const char *s)
{
	if (strcmp(s, "CHARGED") == 0)
		return ALLOT__V1__INGEST_STATUS__INGEST_STATUS_CHARGED;
	if (strcmp(s, "DUPLICATE") == 0)
		return ALLOT__V1__INGEST_STATUS__INGEST_STATUS_DUPLICATE;
	if (strcmp(s, "RECORDED") == 0)
		return ALLOT__V1__INGEST_STATUS__INGEST_STATUS_RECORDED;
	if (strcmp(s, "REJECTED") == 0)
		return ALLOT__V1__INGEST_STATUS__INGEST_STATUS_REJECTED;
	return ALLOT__V1__INGEST_STATUS__INGEST_STATUS_UNSPECIFIED;
}

/*
 * The answer, built over the request's own strings (job ids, steps) and the
 * database's (reasons): nothing is copied, and only the arrays are freed.
 */
struct answer {
	Allot__V1__IngestResponse resp;
	Allot__V1__RecordResult *results;
	Allot__V1__RecordResult **ptrs;
};

static int
answer_init(struct answer *a, const Allot__V1__IngestRequest *req)
{
	allot__v1__ingest_response__init(&a->resp);
	a->results = calloc(req->n_records, sizeof(*a->results));
	a->ptrs = calloc(req->n_records, sizeof(*a->ptrs));
	if (a->results == NULL || a->ptrs == NULL)
		return -1;
	a->resp.batch_id = req->batch_id;
	a->resp.n_results = req->n_records;
	a->resp.results = a->ptrs;
	for (size_t i = 0; i < req->n_records; i++) {
		Allot__V1__RecordResult *r = &a->results[i];

		allot__v1__record_result__init(r);
		r->index = (int32_t)i;
		r->job_id = req->records[i]->job_id;
		r->step = req->records[i]->step;
		r->status = ALLOT__V1__INGEST_STATUS__INGEST_STATUS_DUPLICATE;
		a->ptrs[i] = r;
	}
	return 0;
}

static void
answer_cleanup(struct answer *a)
{
	free(a->results);
	free(a->ptrs);
}

/* Counts, logs and sends the answer; frees in. */
static void
answer_send(struct ingest *in, struct answer *a, const char *how)
{
	struct twirp_call *call = in->call;
	Allot__V1__IngestResponse *resp = &a->resp;

	for (size_t i = 0; i < resp->n_results; i++) {
		switch (resp->results[i]->status) {
		case ALLOT__V1__INGEST_STATUS__INGEST_STATUS_CHARGED:
			resp->charged++;
			break;
		case ALLOT__V1__INGEST_STATUS__INGEST_STATUS_RECORDED:
			resp->recorded++;
			break;
		case ALLOT__V1__INGEST_STATUS__INGEST_STATUS_REJECTED:
			resp->rejected++;
			break;
		default:
			resp->duplicates++;
			break;
		}
	}
	metrics_count_records(twirp_metrics(call->tw), resp->charged, resp->duplicates,
	    resp->recorded, resp->rejected);
	log_info("%s ingested %sbatch \"%s\" of %s: %d charged, %d duplicate, %d recorded, "
	         "%d rejected",
	    call->principal.subject, how, resp->batch_id, ingest_request(in)->site, resp->charged,
	    resp->duplicates, resp->recorded, resp->rejected);
	free(in);
	twirp_reply(call, &resp->base);
}

static void
ingest_done_cb(const struct db_result *r, void *arg)
{
	struct ingest *in = arg;
	const Allot__V1__IngestRequest *req = ingest_request(in);
	struct answer a;
	int rows;

	if (r->status != DB_OK) {
		struct twirp_call *call = in->call;

		free(in);
		twirp_reply_db_error(call, r);
		return;
	}
	if (answer_init(&a, req) != 0) {
		answer_cleanup(&a);
		ingest_fail(in, TWIRP_INTERNAL, "out of memory");
		return;
	}
	rows = db_result_rows(r);
	if (rows < 0 || (size_t)rows != req->n_records) {
		answer_cleanup(&a);
		log_errorx("Usage/Ingest: the database answered %d rows for %zu records", rows,
		    req->n_records);
		ingest_fail(in, TWIRP_INTERNAL, "internal error");
		return;
	}
	for (int i = 0; i < rows; i++) {
		long idx = strtol(db_result_value(r, i, 0), NULL, 10);
		Allot__V1__RecordResult *res;

		if (idx < 0 || (size_t)idx >= req->n_records)
			continue;
		res = &a.results[idx];
		res->status = status_parse(db_result_value(r, i, 1));
		res->charged_units = strtoll(db_result_value(r, i, 2), NULL, 10);
		res->allocation_id = strtoll(db_result_value(r, i, 3), NULL, 10);
		/* The result stays alive until after the reply: db clears it after this callback. */
		res->reason = (char *)(uintptr_t)db_result_value(r, i, 4);
	}
	answer_send(in, &a, "");
	answer_cleanup(&a);
}

/* A replay: every record is a duplicate but those the first sending refused. */
static void
answer_replay(struct ingest *in, const json_t *rejected)
{
	const Allot__V1__IngestRequest *req = ingest_request(in);
	struct answer a;
	size_t i;
	const json_t *e;

	if (answer_init(&a, req) != 0) {
		answer_cleanup(&a);
		ingest_fail(in, TWIRP_INTERNAL, "out of memory");
		return;
	}
	json_array_foreach(rejected, i, e)
	{
		json_int_t idx = json_integer_value(json_object_get(e, "index"));
		const char *why = json_string_value(json_object_get(e, "reason"));

		if (idx < 0 || (size_t)idx >= req->n_records)
			continue;
		a.results[idx].status = ALLOT__V1__INGEST_STATUS__INGEST_STATUS_REJECTED;
		a.results[idx].reason = (char *)(uintptr_t)(why != NULL ? why : "");
	}
	answer_send(in, &a, "again ");
	answer_cleanup(&a);
}

static void
ingest_begin_cb(const struct db_result *r, void *arg)
{
	struct ingest *in = arg;
	struct twirp_call *call = in->call;
	const Allot__V1__IngestRequest *req = ingest_request(in);
	struct strbuf cols[NCOLS];
	const char *params[4 + NCOLS];
	struct tariff *t = NULL;
	json_t *root = NULL, *billing, *replay;
	int rc;

	if (r->status != DB_OK) {
		free(in);
		twirp_reply_db_error(call, r);
		return;
	}
	root = json_loadb(db_result_value(r, 0, 0), db_result_length(r, 0, 0), 0, NULL);
	billing = json_object_get(root, "billing");
	replay = json_object_get(root, "replay");
	if (json_is_array(replay)) {
		answer_replay(in, replay);
		json_decref(root);
		return;
	}
	t = tariff_new(billing);
	json_decref(root);
	if (t == NULL) {
		log_errorx("Usage/Ingest: malformed ingest_begin answer");
		ingest_fail(in, TWIRP_INTERNAL, "internal error");
		return;
	}
	for (int c = 0; c < NCOLS; c++)
		strbuf_init(&cols[c]);
	if ((rc = build_columns(req, t, cols)) != 0) {
		if (rc == -2) {
			char msg[160];

			snprintf(msg, sizeof(msg),
			    "the batch's node lists name more than %d nodes together: send fewer "
			    "records a batch",
			    INGEST_MAX_BATCH_NODES);
			ingest_fail(in, TWIRP_INVALID_ARGUMENT, msg);
		} else {
			ingest_fail(in, TWIRP_INTERNAL, "out of memory");
		}
		goto out;
	}
	params[0] = req->site;
	params[1] = req->batch_id;
	params[2] = in->body_hash;
	params[3] = call->principal.subject;
	for (int c = 0; c < NCOLS; c++)
		params[4 + c] = cols[c].data;
	rc = db_query(twirp_db(call->tw), ingest_batch_sql, 4 + NCOLS, params, ingest_done_cb, in);
	if (rc != 0)
		ingest_fail(in, TWIRP_UNAVAILABLE, "database is unavailable");
out:
	for (int c = 0; c < NCOLS; c++)
		strbuf_cleanup(&cols[c]);
	tariff_free(t);
}

void
ingest_handle(struct twirp_call *call)
{
	const Allot__V1__IngestRequest *req = (const void *)call->request;
	struct ingest *in;
	const char *params[3];

	if (req->site[0] == '\0') {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT, "site is required");
		return;
	}
	if (req->batch_id[0] == '\0' || strlen(req->batch_id) > 200) {
		twirp_reply_error(
		    call, TWIRP_INVALID_ARGUMENT, "batch_id is required (1 to 200 characters)");
		return;
	}
	if (req->n_records == 0 || req->n_records > INGEST_MAX_RECORDS) {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT,
		    "a batch holds 1 to %d records, not %zu", INGEST_MAX_RECORDS, req->n_records);
		return;
	}
	if ((in = calloc(1, sizeof(*in))) == NULL) {
		twirp_reply_error(call, TWIRP_INTERNAL, "out of memory");
		return;
	}
	in->call = call;
	if (hash_batch(req, in->body_hash) != 0) {
		ingest_fail(in, TWIRP_INTERNAL, "could not hash the batch");
		return;
	}
	params[0] = req->site;
	params[1] = req->batch_id;
	params[2] = in->body_hash;
	if (db_query(twirp_db(call->tw), "SELECT allot.ingest_begin($1, $2, $3)", 3, params,
	        ingest_begin_cb, in) != 0)
		ingest_fail(in, TWIRP_UNAVAILABLE, "database is unavailable");
}
