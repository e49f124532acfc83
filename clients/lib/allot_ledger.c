/*
 * allot_ledger: the Ledger's Quote, Reserve, Settle, Release and Heartbeat,
 * and FairShare's GetPriorities, in plain C structs, over allot_call. The
 * protobuf-c messages stay in here.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/fairshare.pb-c.h"
#include "allot/v1/ledger.pb-c.h"

#include "allot_internal.h"

/*
 * The job's fields of a QuoteRequest or a ReserveRequest (two message types
 * with the same field names).
 */
#define LEDGER_SET_JOB(req, job) \
	do { \
		(req)->site = ledger_str((job)->site); \
		(req)->partition = ledger_str((job)->partition); \
		(req)->account = ledger_str((job)->account); \
		(req)->user = ledger_str((job)->user); \
		(req)->gpus = (job)->gpus; \
		(req)->cpus = (job)->cpus; \
		(req)->mem_mb = (job)->mem_mb; \
		(req)->nodes = (job)->nodes; \
		(req)->time_limit_s = (job)->time_limit_s; \
	} while (0)

/* protobuf-c packs a NULL string field as a crash: NULL in means "". */
static char *
ledger_str(const char *s)
{
	return (char *)(s != NULL ? s : "");
}

/*
 * Copies src into dst[size]; false with internal in error when it does not
 * fit (a field longer than this header allows: the caller must not act on a
 * cut id).
 */
static bool
ledger_copy(char *dst, size_t size, const char *src, const char *field, struct allot_error *error)
{
	size_t n = strlen(src != NULL ? src : "");

	if (n >= size) {
		allot_error_set(error, ALLOT_INTERNAL,
		    "the answer's %s is %zu bytes, longer than allot.h's %zu", field, n, size - 1);
		return false;
	}
	memcpy(dst, src != NULL ? src : "", n + 1);
	return true;
}

/* Copies a free-text reason, cut to fit. */
static void
ledger_copy_reason(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src != NULL ? src : "");
}

static bool
ledger_lien(struct allot_lien *out, const Allot__V1__Lien *l, struct allot_error *error)
{
	memset(out, 0, sizeof(*out));
	if (l == NULL)
		return true;
	out->allocation_id = l->allocation_id;
	out->status = (enum allot_lien_status)l->status;
	out->amount_units = l->amount_units;
	out->held_units = l->held_units;
	out->drawn_units = l->drawn_units;
	out->released_units = l->released_units;
	out->held_gpu_hours = l->held_gpu_hours;
	out->available_units = l->available_units;
	return ledger_copy(out->lien_id, sizeof(out->lien_id), l->lien_id, "lien_id", error) &&
	    ledger_copy(out->kind, sizeof(out->kind), l->kind, "kind", error) &&
	    ledger_copy(out->site, sizeof(out->site), l->site, "site", error) &&
	    ledger_copy(out->job_id, sizeof(out->job_id), l->job_id, "job_id", error) &&
	    ledger_copy(out->project, sizeof(out->project), l->project, "project", error) &&
	    ledger_copy(
	        out->expires_at, sizeof(out->expires_at), l->expires_at, "expires_at", error) &&
	    ledger_copy(out->campaign, sizeof(out->campaign), l->campaign, "campaign", error) &&
	    ledger_copy(out->replaced, sizeof(out->replaced), l->replaced, "replaced", error);
}

/* Calls method and converts a Lien answer into out. */
static int
ledger_lien_call(struct allot_client *client, const char *method, const ProtobufCMessage *req,
    struct allot_lien *out, struct allot_error *error)
{
	ProtobufCMessage *resp;
	int ret;

	if (allot_call(client, method, req, &allot__v1__lien__descriptor, &resp, error) != 0)
		return -1;
	ret = ledger_lien(out, (const Allot__V1__Lien *)resp, error) ? 0 : -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return ret;
}

int
allot_quote(struct allot_client *client, const struct allot_job *job, const char *start_time,
    struct allot_quote *out, struct allot_error *error)
{
	Allot__V1__QuoteRequest req = ALLOT__V1__QUOTE_REQUEST__INIT;
	Allot__V1__QuoteResponse *q;
	ProtobufCMessage *resp;
	int ret;

	LEDGER_SET_JOB(&req, job);
	req.start_time = ledger_str(start_time);
	if (allot_call(client, "allot.v1.Ledger/Quote", &req.base,
	        &allot__v1__quote_response__descriptor, &resp, error) != 0)
		return -1;
	q = (Allot__V1__QuoteResponse *)resp;
	memset(out, 0, sizeof(*out));
	out->allowed = q->allowed;
	ledger_copy_reason(out->reason, sizeof(out->reason), q->reason);
	out->allocation_id = q->allocation_id;
	out->occupied_gpus = q->occupied_gpus;
	out->cost_units = q->cost_units;
	out->cost_gpu_hours = q->cost_gpu_hours;
	out->available_units = q->available_units;
	out->available_gpu_hours = q->available_gpu_hours;
	out->native_cost_milli = q->native_cost_milli;
	ret = ledger_copy(
	          out->native_unit, sizeof(out->native_unit), q->native_unit, "native_unit", error)
	    ? 0
	    : -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return ret;
}

int
allot_reserve(struct allot_client *client, const struct allot_reservation *reservation,
    struct allot_lien *out, struct allot_error *error)
{
	Allot__V1__ReserveRequest req = ALLOT__V1__RESERVE_REQUEST__INIT;
	const struct allot_job *job = &reservation->job;

	req.lien_id = ledger_str(reservation->lien_id);
	req.job_id = ledger_str(reservation->job_id);
	LEDGER_SET_JOB(&req, job);
	req.expires_in_s = reservation->expires_in_s;
	req.campaign = ledger_str(reservation->campaign);
	return ledger_lien_call(client, "allot.v1.Ledger/Reserve", &req.base, out, error);
}

/* Settle and Release: the same request, closing the lien one way or the other. */
static int
ledger_close(struct allot_client *client, const char *method, const char *site, const char *job_id,
    const char *lien_id, struct allot_lien *out, struct allot_error *error)
{
	Allot__V1__SettleRequest req = ALLOT__V1__SETTLE_REQUEST__INIT;

	req.site = ledger_str(site);
	req.job_id = ledger_str(job_id);
	req.lien_id = ledger_str(lien_id);
	return ledger_lien_call(client, method, &req.base, out, error);
}

int
allot_settle(struct allot_client *client, const char *site, const char *job_id, const char *lien_id,
    struct allot_lien *out, struct allot_error *error)
{
	return ledger_close(client, "allot.v1.Ledger/Settle", site, job_id, lien_id, out, error);
}

int
allot_release(struct allot_client *client, const char *site, const char *job_id,
    const char *lien_id, struct allot_lien *out, struct allot_error *error)
{
	return ledger_close(client, "allot.v1.Ledger/Release", site, job_id, lien_id, out, error);
}

int
allot_heartbeat(struct allot_client *client, const char *site, const char *job_id,
    int64_t elapsed_s, struct allot_heartbeat *out, struct allot_error *error)
{
	Allot__V1__HeartbeatRequest req = ALLOT__V1__HEARTBEAT_REQUEST__INIT;
	Allot__V1__HeartbeatResponse *h;
	ProtobufCMessage *resp;
	int ret;

	req.site = ledger_str(site);
	req.job_id = ledger_str(job_id);
	req.elapsed_s = elapsed_s;
	if (allot_call(client, "allot.v1.Ledger/Heartbeat", &req.base,
	        &allot__v1__heartbeat_response__descriptor, &resp, error) != 0)
		return -1;
	h = (Allot__V1__HeartbeatResponse *)resp;
	memset(out, 0, sizeof(*out));
	out->action = (enum allot_action)h->action;
	ledger_copy_reason(out->reason, sizeof(out->reason), h->reason);
	out->charged_units = h->charged_units;
	out->held_units = h->held_units;
	out->available_units = h->available_units;
	ret = ledger_lien(&out->lien, h->lien, error) ? 0 : -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return ret;
}

/* Copies GetPriorities' answer into out[n]: false with internal when it is not n of them. */
static bool
ledger_priorities(struct allot_priority *out, size_t n, const Allot__V1__GetPrioritiesResponse *r,
    struct allot_error *error)
{
	if (r->n_priorities != n) {
		allot_error_set(error, ALLOT_INTERNAL,
		    "the answer holds %zu priorities for %zu pairs", r->n_priorities, n);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const Allot__V1__Priority *p = r->priorities[i];

		memset(&out[i], 0, sizeof(out[i]));
		out[i].fairshare = p->fairshare;
		out[i].pacing = p->pacing;
		out[i].combined = p->combined;
		out[i].known_user = p->known_user;
		if (!ledger_copy(
		        out[i].project, sizeof(out[i].project), p->project, "project", error))
			return false;
	}
	return true;
}

int
allot_priorities(struct allot_client *client, const char *site,
    const struct allot_priority_pair *pairs, size_t n, struct allot_priority *out,
    struct allot_error *error)
{
	Allot__V1__GetPrioritiesRequest req = ALLOT__V1__GET_PRIORITIES_REQUEST__INIT;
	Allot__V1__PriorityPair *items = NULL, **ptrs = NULL;
	ProtobufCMessage *resp = NULL;
	int ret = -1;

	if (n > 0 && (pairs == NULL || out == NULL)) {
		allot_error_set(error, ALLOT_INVALID_ARGUMENT, "pairs and out are required");
		return -1;
	}
	if (n > SIZE_MAX / sizeof(*items)) {
		allot_error_set(error, ALLOT_INVALID_ARGUMENT, "%zu pairs are too many", n);
		return -1;
	}
	/* n 0 goes to the server, which refuses it with its own code and message. */
	items = calloc(n ? n : 1, sizeof(*items));
	ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (items == NULL || ptrs == NULL) {
		allot_error_set(error, ALLOT_INTERNAL, "out of memory for %zu pairs", n);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		allot__v1__priority_pair__init(&items[i]);
		items[i].account = ledger_str(pairs[i].account);
		items[i].user = ledger_str(pairs[i].user);
		ptrs[i] = &items[i];
	}
	req.site = ledger_str(site);
	req.n_pairs = n;
	req.pairs = ptrs;
	if (allot_call(client, "allot.v1.FairShare/GetPriorities", &req.base,
	        &allot__v1__get_priorities_response__descriptor, &resp, error) != 0)
		goto out;
	ret = ledger_priorities(out, n, (const Allot__V1__GetPrioritiesResponse *)resp, error) ? 0
	                                                                                       : -1;
	protobuf_c_message_free_unpacked(resp, NULL);
out:
	free(items);
	free(ptrs);
	return ret;
}
