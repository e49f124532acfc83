/*
 * ingest: Usage.Ingest, a batch of cumulative job records from one site.
 *
 * Two round trips: the site's resources and weights (allot.site_billing), then
 * one call of allot.rpc_ingest with every record, each carrying the charge that
 * billing.c computed for its cumulative usage, or the reason it was refused
 * here. The database does the rest in one transaction: choosing the allocation,
 * charging the difference with what the job was already charged, refusing
 * replays (sql/README.md). This module owns the request-to-charge arithmetic's
 * inputs, not the ledger.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "allot/v1/usage.pb-c.h"

#include "billing.h"
#include "db.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "pbjson.h"
#include "rfc3339.h"
#include "strbuf.h"

#define INGEST_MAX_RECORDS 100000

struct weight {
	int64_t from_s;
	int32_t per_mille;
};

struct resource {
	const char *partition; /* points into the site_billing JSON */
	struct billing_resource br;
	struct weight *weights;
	size_t nweights;
};

struct ingest {
	struct twirp_call *call;
	char body_hash[2 * EVP_MAX_MD_SIZE + 1];
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

static int
hash_request(const ProtobufCMessage *msg, char *hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(len > 0 ? len : 1);

	if (buf == NULL)
		return -1;
	protobuf_c_message_pack(msg, buf);
	if (EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) != 1) {
		free(buf);
		return -1;
	}
	free(buf);
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int64_t
json_int(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return 0;
}

/*
 * Reads site_billing's JSON into resources (which point into root). Returns the
 * number read, or -1 on a malformed answer.
 */
static int
parse_resources(json_t *root, struct resource **out)
{
	struct resource *res;
	size_t n, i;
	json_t *item;

	if (!json_is_array(root))
		return -1;
	n = json_array_size(root);
	if ((res = calloc(n > 0 ? n : 1, sizeof(*res))) == NULL)
		return -1;
	json_array_foreach(root, i, item)
	{
		struct resource *r = &res[i];
		const json_t *weights = json_object_get(item, "weights");
		const char *rule = json_string_value(json_object_get(item, "rule"));
		size_t j;
		json_t *w;

		r->partition = json_string_value(json_object_get(item, "partition"));
		if (r->partition == NULL || rule == NULL || !json_is_array(weights) ||
		    billing_rule_parse(rule, &r->br.rule) != 0)
			goto fail;
		r->br.gpus_per_node = (int32_t)json_int(item, "gpusPerNode");
		r->br.cores_per_gpu = (int32_t)json_int(item, "coresPerGpu");
		r->br.threads_per_core = (int32_t)json_int(item, "threadsPerCore");
		r->br.mem_per_gpu_mb = json_int(item, "memPerGpuMb");
		r->br.native_milli_per_gpu_hour = json_int(item, "nativeMilliPerGpuHour");
		r->nweights = json_array_size(weights);
		if ((r->weights = calloc(r->nweights > 0 ? r->nweights : 1, sizeof(*r->weights))) ==
		    NULL)
			goto fail;
		json_array_foreach(weights, j, w)
		{
			r->weights[j].from_s = json_int(w, "from");
			r->weights[j].per_mille = (int32_t)json_int(w, "perMille");
		}
	}
	*out = res;
	return (int)n;
fail:
	for (size_t k = 0; k < n; k++)
		free(res[k].weights);
	free(res);
	return -1;
}

static void
free_resources(struct resource *res, int n)
{
	for (int i = 0; i < n; i++)
		free(res[i].weights);
	free(res);
}

/* The weight in force at start_s: the latest whose date is not after it. */
static int32_t
weight_at(const struct resource *r, int64_t start_s)
{
	int32_t w = 0;

	for (size_t i = 0; i < r->nweights; i++)
		if (r->weights[i].from_s <= start_s)
			w = r->weights[i].per_mille;
	return w;
}

static json_t *
json_int64(int64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return json_string(buf);
}

/*
 * Works out the charge of one record and adds it to the record's JSON object as
 * "bill", or adds "rejectReason". Step records carry no charge.
 */
static int
bill_record(const char *site, const Allot__V1__JobRecord *rec, const struct resource *res, int nres,
    json_t *obj)
{
	const struct resource *r = NULL;
	struct billing_usage usage;
	struct billing_charge charge;
	int64_t start_s;
	int32_t weight;
	char reason[512];
	json_t *bill;

	if (rec->job_id[0] == '\0') {
		snprintf(reason, sizeof(reason), "job_id is required");
		goto reject;
	}
	if (rec->step[0] != '\0')
		return 0;
	for (int i = 0; i < nres; i++)
		if (strcmp(res[i].partition, rec->partition) == 0)
			r = &res[i];
	if (r == NULL) {
		snprintf(reason, sizeof(reason), "unknown partition \"%.100s\" at site \"%.100s\"",
		    rec->partition, site);
		goto reject;
	}
	if (rfc3339_parse(rec->start_time, &start_s) != 0) {
		snprintf(reason, sizeof(reason), "start_time \"%.64s\" is not an RFC 3339 time",
		    rec->start_time);
		goto reject;
	}
	if ((weight = weight_at(r, start_s)) <= 0) {
		snprintf(reason, sizeof(reason),
		    "no billing weight of %.100s/%.100s in force at %.64s", site, r->partition,
		    rec->start_time);
		goto reject;
	}
	usage.gpus = rec->gpus;
	usage.cpus = rec->cpus;
	usage.nodes = rec->nodes;
	usage.mem_mb = rec->mem_mb;
	usage.elapsed_s = rec->elapsed_s;
	{
		struct billing_resource br = r->br;

		br.weight_per_mille = weight;
		if (billing_compute(&br, &usage, &charge, reason, sizeof(reason)) != 0)
			goto reject;
	}
	snprintf(reason, sizeof(reason), "%s/%s", site, r->partition);
	bill = json_pack("{s:s, s:o, s:o, s:o, s:o, s:i}", "resource", reason, "occupiedGpus",
	    json_int64(charge.occupied_gpus), "gpuMs", json_int64(charge.gpu_ms), "chargeUnits",
	    json_int64(charge.charge_units), "nativeMilli", json_int64(charge.native_milli),
	    "weightPerMille", (int)weight);
	if (bill == NULL)
		return -1;
	return json_object_set_new(obj, "bill", bill);
reject:
	return json_object_set_new(obj, "rejectReason", json_string(reason));
}

static void
ingest_done_cb(const struct db_result *r, void *arg)
{
	struct ingest *in = arg;
	struct twirp_call *call = in->call;
	Allot__V1__IngestResponse *resp;
	char err[256];

	free(in);
	if (r->status != DB_OK) {
		twirp_reply_db_error(call, r);
		return;
	}
	resp = (Allot__V1__IngestResponse *)pbjson_decode(&allot__v1__ingest_response__descriptor,
	    PQgetvalue(r->res, 0, 0), (size_t)PQgetlength(r->res, 0, 0), err, sizeof(err));
	if (resp == NULL) {
		log_errorx("Usage/Ingest: could not decode the database's answer: %s", err);
		twirp_reply_error(call, TWIRP_INTERNAL, "internal error");
		return;
	}
	metrics_count_records(twirp_metrics(call->tw), resp->charged, resp->duplicates,
	    resp->recorded, resp->rejected);
	log_info("%s ingested batch \"%s\" of %s: %d charged, %d duplicate, %d recorded, "
	         "%d rejected",
	    call->principal.subject, resp->batch_id,
	    ((const Allot__V1__IngestRequest *)(const void *)call->request)->site, resp->charged,
	    resp->duplicates, resp->recorded, resp->rejected);
	twirp_reply(call, &resp->base);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}

/* Builds rpc_ingest's argument: the request as JSON, each record with its bill. */
static char *
build_batch(struct ingest *in, const struct resource *res, int nres)
{
	const Allot__V1__IngestRequest *req = ingest_request(in);
	struct strbuf sb;
	json_t *root = NULL, *records;
	char *text = NULL;

	strbuf_init(&sb);
	if (!pbjson_encode(&req->base, &sb))
		goto out;
	if ((root = json_loadb(sb.data, sb.len, 0, NULL)) == NULL)
		goto out;
	records = json_object_get(root, "records");
	if (!json_is_array(records) || json_array_size(records) != req->n_records)
		goto out;
	for (size_t i = 0; i < req->n_records; i++) {
		json_t *obj = json_array_get(records, i);

		if (json_object_set_new(obj, "index", json_integer((json_int_t)i)) != 0 ||
		    bill_record(req->site, req->records[i], res, nres, obj) != 0)
			goto out;
	}
	if (json_object_set_new(root, "bodyHash", json_string(in->body_hash)) != 0)
		goto out;
	text = json_dumps(root, JSON_COMPACT);
out:
	json_decref(root);
	strbuf_cleanup(&sb);
	return text;
}

static void
ingest_billing_cb(const struct db_result *r, void *arg)
{
	struct ingest *in = arg;
	struct twirp_call *call = in->call;
	struct resource *res = NULL;
	json_t *root = NULL;
	char *batch = NULL;
	const char *params[2];
	int nres;

	if (r->status != DB_OK) {
		free(in);
		twirp_reply_db_error(call, r);
		return;
	}
	root = json_loadb(PQgetvalue(r->res, 0, 0), (size_t)PQgetlength(r->res, 0, 0), 0, NULL);
	if (root == NULL || (nres = parse_resources(root, &res)) < 0) {
		json_decref(root);
		log_errorx("Usage/Ingest: malformed site_billing answer");
		ingest_fail(in, TWIRP_INTERNAL, "internal error");
		return;
	}
	batch = build_batch(in, res, nres);
	free_resources(res, nres);
	json_decref(root);
	if (batch == NULL) {
		ingest_fail(in, TWIRP_INTERNAL, "out of memory");
		return;
	}
	params[0] = batch;
	params[1] = call->principal.subject;
	if (db_query(twirp_db(call->tw), "SELECT allot.rpc_ingest($1::jsonb, $2::text)", 2, params,
	        ingest_done_cb, in) != 0)
		ingest_fail(in, TWIRP_UNAVAILABLE, "database is unavailable");
	free(batch);
}

void
ingest_handle(struct twirp_call *call)
{
	const Allot__V1__IngestRequest *req = (const void *)call->request;
	struct ingest *in;
	const char *params[1];

	if (req->site[0] == '\0') {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT, "site is required");
		return;
	}
	if (req->batch_id[0] == '\0') {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT, "batch_id is required");
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
	if (hash_request(call->request, in->body_hash) != 0) {
		ingest_fail(in, TWIRP_INTERNAL, "could not hash the batch");
		return;
	}
	params[0] = req->site;
	if (db_query(twirp_db(call->tw), "SELECT allot.site_billing($1::text)", 1, params,
	        ingest_billing_cb, in) != 0)
		ingest_fail(in, TWIRP_UNAVAILABLE, "database is unavailable");
}
