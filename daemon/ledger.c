/*
 * ledger: quotes, reservations and heartbeats, which need a job's cost before
 * the database can act, and the sweep that releases liens nobody settled.
 *
 * Reservations are coalesced: each one waits in a queue until the loop turn
 * ends; then up to reserve_group_max of them become one group: one query for
 * the billing of their sites, then one call of allot.reserve_group, one
 * transaction and one commit, each reservation keeping its own answer. While a
 * group is in the database the next one gathers, so groups grow with the load.
 * The rule that a hold never makes available negative is the database's (the
 * journal's trigger and reserve_one's check under row locks), never a read here
 * followed by a write: several allotd may reserve on one allocation at once.
 *
 * Costs come from billing.c through tariff.c, at the weight in force now (a
 * quote may name a start time).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "allot/v1/ledger.pb-c.h"

#include "db.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "pbjson.h"
#include "rfc3339.h"
#include "strbuf.h"
#include "tariff.h"

struct pending {
	struct pending *next;
	struct twirp_call *call;
	json_t *item; /* the request's JSON, with bodyHash and principal */
};

struct group {
	struct ledger *lg;
	struct pending *head;
	size_t n;
};

struct ledger {
	struct db *db;
	struct metrics *metrics;
	struct event *flush; /* end of the loop turn: a group leaves */
	struct event *sweep;
	int sweep_s;
	int group_max;
	struct pending *head, *tail;
	struct group *inflight;
	bool sweeping;
};

static struct ledger *
call_ledger(const struct twirp_call *call)
{
	return twirp_context(call->tw);
}

/*
 * The request as a JSON object, and the hex SHA-256 of its canonical proto3 JSON
 * (every field, in field order) in hash when hash is not NULL: the same request
 * in protobuf or JSON has one hash. Returns a new object, or NULL.
 */
static json_t *
request_json(const ProtobufCMessage *msg, char *hash)
{
	struct strbuf sb;
	json_t *obj = NULL;

	strbuf_init(&sb);
	if (!pbjson_encode(msg, &sb))
		goto out;
	if (hash != NULL) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;

		if (EVP_Digest(sb.data, sb.len, md, &mdlen, EVP_sha256(), NULL) != 1)
			goto out;
		for (unsigned int i = 0; i < mdlen; i++)
			snprintf(hash + 2 * i, 3, "%02x", md[i]);
	}
	obj = json_loadb(sb.data, sb.len, 0, NULL);
out:
	strbuf_cleanup(&sb);
	return obj;
}

/* Adds what billing says of the job to obj as "bill". Returns 0 or -1. */
static int
add_bill(json_t *obj, const struct tariff_bill *b)
{
	return json_object_set_new(obj, "bill",
	    json_pack("{s:I, s:I, s:I, s:I, s:I, s:i, s:s}", "resourceId",
	        (json_int_t)b->resource_id, "occupiedGpus", (json_int_t)b->charge.occupied_gpus,
	        "gpuMs", (json_int_t)b->charge.gpu_ms, "chargeUnits",
	        (json_int_t)b->charge.charge_units, "nativeMilli",
	        (json_int_t)b->charge.native_milli, "weightPerMille", (int)b->weight_per_mille,
	        "nativeUnit", b->native_unit));
}

/* Sends SELECT allot.<fn>(obj, subject) and answers its JSON; takes obj. */
static void
call_sql(struct twirp_call *call, const char *fn, json_t *obj, db_result_cb cb)
{
	char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;

	json_decref(obj);
	if (text == NULL) {
		twirp_reply_error(call, TWIRP_INTERNAL, "out of memory");
		return;
	}
	twirp_sql_json(call, fn, text, cb);
	free(text);
}

/* What Quote and Reserve need of a job before it can be billed; answers the call if not. */
static bool
bad_job(struct twirp_call *call, const char *partition, const char *account, int64_t time_limit_s)
{
	if (partition[0] == '\0' || account[0] == '\0') {
		twirp_reply_error(
		    call, TWIRP_INVALID_ARGUMENT, "partition and account are required");
		return true;
	}
	if (time_limit_s >= 1 && time_limit_s <= BILLING_MAX_ELAPSED_S)
		return false;
	twirp_reply_error(call, TWIRP_INVALID_ARGUMENT,
	    "time_limit_s must be between 1 and %" PRId64 ", not %" PRId64, BILLING_MAX_ELAPSED_S,
	    time_limit_s);
	return true;
}

/* ---------------------------------------------------------------- Quote */

static void
quote_billing_cb(const struct db_result *r, void *arg)
{
	struct twirp_call *call = arg;
	const Allot__V1__QuoteRequest *req = (const void *)call->request;
	struct billing_usage u = {.gpus = req->gpus,
	    .cpus = req->cpus,
	    .nodes = req->nodes,
	    .mem_mb = req->mem_mb,
	    .elapsed_s = req->time_limit_s};
	struct tariff_bill bill;
	struct tariff *t;
	json_t *billing, *obj;
	int64_t start_s = (int64_t)time(NULL);
	char reason[512];

	if (r->status != DB_OK) {
		twirp_reply_db_error(call, r);
		return;
	}
	billing = json_loadb(db_result_value(r, 0, 0), db_result_length(r, 0, 0), 0, NULL);
	t = tariff_new(billing);
	json_decref(billing);
	if (t == NULL) {
		twirp_reply_error(call, TWIRP_INTERNAL, "internal error");
		return;
	}
	if (req->start_time[0] != '\0' && rfc3339_parse(req->start_time, &start_s) != 0) {
		tariff_free(t);
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT,
		    "start_time \"%.64s\" is not an RFC 3339 time", req->start_time);
		return;
	}
	if (tariff_bill(t, req->site, req->partition, start_s, &u, &bill, reason, sizeof(reason)) !=
	    0) {
		tariff_free(t);
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT, "%s", reason);
		return;
	}
	obj = request_json(call->request, NULL);
	if (obj != NULL && add_bill(obj, &bill) != 0) {
		json_decref(obj);
		obj = NULL;
	}
	tariff_free(t);
	call_sql(call, "rpc_quote", obj, twirp_sql_done_cb);
}

void
ledger_quote(struct twirp_call *call)
{
	const Allot__V1__QuoteRequest *req = (const void *)call->request;
	const char *params[1] = {req->site};

	if (bad_job(call, req->partition, req->account, req->time_limit_s))
		return;
	if (db_query(call_ledger(call)->db, "SELECT allot.site_billing($1)", 1, params,
	        quote_billing_cb, call) != 0)
		twirp_reply_error(call, TWIRP_UNAVAILABLE, "database is unavailable");
}

/* ---------------------------------------------------------------- Reserve */

static void ledger_schedule_flush(struct ledger *lg);

static void
pending_free(struct pending *p)
{
	json_decref(p->item);
	free(p);
}

/* Answers one reservation with the error the database gave it: {sqlstate, message, meta}. */
static void
pending_fail_json(struct pending *p, const json_t *answer)
{
	const char *st = json_string_value(json_object_get(answer, "sqlstate"));
	const char *msg = json_string_value(json_object_get(answer, "message"));
	enum twirp_code code = twirp_code_for_sqlstate(st != NULL ? st : "");

	if (code == TWIRP_INTERNAL) {
		log_errorx("Ledger/Reserve by \"%s\" failed in the database: %s (SQLSTATE %s)",
		    p->call->principal.subject, msg != NULL ? msg : "?", st != NULL ? st : "?");
		msg = "internal error";
	}
	twirp_reply_error_json(p->call, code, msg != NULL ? msg : "internal error",
	    code == TWIRP_INTERNAL ? NULL : json_object_get(answer, "meta"));
}

static void
group_free(struct group *g)
{
	struct pending *p;

	while ((p = g->head) != NULL) {
		g->head = p->next;
		pending_free(p);
	}
	free(g);
}

/* The group is answered (or failed): let the next one go. */
static void
group_done(struct group *g)
{
	struct ledger *lg = g->lg;

	group_free(g);
	lg->inflight = NULL;
	if (lg->head != NULL)
		ledger_schedule_flush(lg);
}

static void
group_fail(struct group *g, const struct db_result *r)
{
	for (struct pending *p = g->head; p != NULL; p = p->next)
		twirp_reply_db_error(p->call, r);
	group_done(g);
}

static void
group_reserved_cb(const struct db_result *r, void *arg)
{
	struct group *g = arg;
	json_t *answers;
	size_t i = 0;

	if (r->status != DB_OK) {
		group_fail(g, r);
		return;
	}
	answers = json_loadb(db_result_value(r, 0, 0), db_result_length(r, 0, 0), 0, NULL);
	if (!json_is_array(answers) || json_array_size(answers) != g->n) {
		log_errorx("Ledger/Reserve: the database answered a group of %zu with %zu answers",
		    g->n, json_array_size(answers));
		for (struct pending *p = g->head; p != NULL; p = p->next)
			twirp_reply_error(p->call, TWIRP_INTERNAL, "internal error");
		json_decref(answers);
		group_done(g);
		return;
	}
	for (struct pending *p = g->head; p != NULL; p = p->next, i++) {
		const json_t *a = json_array_get(answers, i);
		const json_t *ok = json_object_get(a, "ok");
		char *text = ok != NULL ? json_dumps(ok, JSON_COMPACT) : NULL;
		ProtobufCMessage *lien = NULL;
		char err[256];

		if (ok == NULL) {
			pending_fail_json(p, a);
			continue;
		}
		if (text != NULL)
			lien = pbjson_decode(
			    &allot__v1__lien__descriptor, text, strlen(text), err, sizeof(err));
		free(text);
		if (lien == NULL) {
			log_errorx("Ledger/Reserve: could not decode the database's answer");
			twirp_reply_error(p->call, TWIRP_INTERNAL, "internal error");
			continue;
		}
		twirp_reply(p->call, lien);
		protobuf_c_message_free_unpacked(lien, NULL);
	}
	json_decref(answers);
	group_done(g);
}

/* The tariff of site among the group's, parsed once per group. */
struct site_tariff {
	const char *site;
	struct tariff *t;
};

static struct tariff *
group_tariff(json_t *billing, struct site_tariff *cache, size_t *ncache, const char *site)
{
	for (size_t i = 0; i < *ncache; i++)
		if (strcmp(cache[i].site, site) == 0)
			return cache[i].t;
	cache[*ncache].site = site;
	cache[*ncache].t = tariff_new(json_object_get(billing, site));
	return cache[(*ncache)++].t;
}

static void
group_billing_cb(const struct db_result *r, void *arg)
{
	struct group *g = arg;
	struct site_tariff *cache;
	size_t ncache = 0;
	struct pending **link, *p;
	json_t *billing, *items;
	char *text;
	const char *params[1];

	if (r->status != DB_OK) {
		group_fail(g, r);
		return;
	}
	billing = json_loadb(db_result_value(r, 0, 0), db_result_length(r, 0, 0), 0, NULL);
	cache = calloc(g->n, sizeof(*cache));
	items = json_array();
	if (billing == NULL || cache == NULL || items == NULL) {
		for (p = g->head; p != NULL; p = p->next)
			twirp_reply_error(p->call, TWIRP_INTERNAL, "internal error");
		json_decref(billing);
		json_decref(items);
		free(cache);
		group_done(g);
		return;
	}
	/* A job whose cost cannot be worked out is answered now and leaves the group. */
	for (link = &g->head; (p = *link) != NULL;) {
		const Allot__V1__ReserveRequest *req = (const void *)p->call->request;
		struct billing_usage u = {.gpus = req->gpus,
		    .cpus = req->cpus,
		    .nodes = req->nodes,
		    .mem_mb = req->mem_mb,
		    .elapsed_s = req->time_limit_s};
		struct tariff *t = group_tariff(billing, cache, &ncache, req->site);
		struct tariff_bill bill;
		char reason[512];

		if (t == NULL ||
		    tariff_bill(t, req->site, req->partition, (int64_t)time(NULL), &u, &bill,
		        reason, sizeof(reason)) != 0 ||
		    add_bill(p->item, &bill) != 0 || json_array_append(items, p->item) != 0) {
			if (t == NULL)
				twirp_reply_error(p->call, TWIRP_INTERNAL, "internal error");
			else
				twirp_reply_error(p->call, TWIRP_INVALID_ARGUMENT, "%s", reason);
			*link = p->next;
			g->n--;
			pending_free(p);
			continue;
		}
		link = &p->next;
	}
	for (size_t i = 0; i < ncache; i++)
		tariff_free(cache[i].t);
	free(cache);
	json_decref(billing);
	if (g->n == 0) {
		json_decref(items);
		group_done(g);
		return;
	}
	text = json_dumps(items, JSON_COMPACT);
	json_decref(items);
	metrics_count_reserve_group(g->lg->metrics, g->n);
	params[0] = text;
	if (text == NULL ||
	    db_query(g->lg->db, "SELECT allot.reserve_group($1::jsonb)", 1, params,
	        group_reserved_cb, g) != 0) {
		for (p = g->head; p != NULL; p = p->next)
			twirp_reply_error(p->call, TWIRP_UNAVAILABLE, "database is unavailable");
		group_done(g);
	}
	free(text);
}

/* The sites of a group as a PostgreSQL text[] literal (site names are identifiers). */
static char *
group_sites(const struct group *g)
{
	struct strbuf sb;

	strbuf_init(&sb);
	strbuf_putc(&sb, '{');
	for (const struct pending *p = g->head; p != NULL; p = p->next) {
		const Allot__V1__ReserveRequest *req = (const void *)p->call->request;

		if (p != g->head)
			strbuf_putc(&sb, ',');
		strbuf_putc(&sb, '"');
		for (const char *c = req->site; *c != '\0'; c++) {
			if (*c == '"' || *c == '\\')
				strbuf_putc(&sb, '\\');
			strbuf_putc(&sb, *c);
		}
		strbuf_putc(&sb, '"');
	}
	strbuf_putc(&sb, '}');
	return strbuf_steal(&sb);
}

/* True when p names a lien id or a job that a reservation of g already names. */
static bool
group_overlaps(const struct group *g, const struct pending *p)
{
	const Allot__V1__ReserveRequest *a = (const void *)p->call->request;

	for (const struct pending *q = g->head; q != NULL; q = q->next) {
		const Allot__V1__ReserveRequest *b = (const void *)q->call->request;

		if (strcmp(a->lien_id, b->lien_id) == 0 ||
		    (strcmp(a->job_id, b->job_id) == 0 && strcmp(a->site, b->site) == 0))
			return true;
	}
	return false;
}

/*
 * Moves up to group_max reservations from the queue into g, in their order. One that
 * shares a lien id or a job with a reservation already in g waits for the next group:
 * within a group, the database weighs them as independent.
 */
static void
group_take(struct ledger *lg, struct group *g)
{
	struct pending **link = &lg->head, **tail = &g->head, *p;

	lg->tail = NULL;
	while ((p = *link) != NULL) {
		if (g->n < (size_t)lg->group_max && !group_overlaps(g, p)) {
			*link = p->next;
			p->next = NULL;
			*tail = p;
			tail = &p->next;
			g->n++;
			continue;
		}
		lg->tail = p;
		link = &p->next;
	}
}

static void
ledger_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ledger *lg = arg;
	struct group *g;
	const char *params[1];
	char *sites;

	(void)fd;
	(void)what;
	if (lg->inflight != NULL || lg->head == NULL)
		return;
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		struct pending *p;

		while ((p = lg->head) != NULL) {
			lg->head = p->next;
			twirp_reply_error(p->call, TWIRP_INTERNAL, "out of memory");
			pending_free(p);
		}
		lg->tail = NULL;
		return;
	}
	g->lg = lg;
	group_take(lg, g);
	lg->inflight = g;
	sites = group_sites(g);
	params[0] = sites;
	if (sites == NULL ||
	    db_query(lg->db, "SELECT allot.sites_billing($1::text[])", 1, params, group_billing_cb,
	        g) != 0) {
		for (struct pending *p = g->head; p != NULL; p = p->next)
			twirp_reply_error(p->call, TWIRP_UNAVAILABLE, "database is unavailable");
		group_done(g);
	}
	free(sites);
}

static void
ledger_schedule_flush(struct ledger *lg)
{
	static const struct timeval now = {0, 0};

	if (!evtimer_pending(lg->flush, NULL) && evtimer_add(lg->flush, &now) != 0)
		log_errorx("could not schedule the next group of reservations");
}

void
ledger_reserve(struct twirp_call *call)
{
	struct ledger *lg = call_ledger(call);
	const Allot__V1__ReserveRequest *req = (const void *)call->request;
	char hash[2 * EVP_MAX_MD_SIZE + 1];
	struct pending *p;

	if (req->lien_id[0] == '\0' || strlen(req->lien_id) > 200) {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT,
		    "lien_id is required (1 to 200 characters, chosen by the caller)");
		return;
	}
	if (req->job_id[0] == '\0' || strlen(req->job_id) > 128) {
		twirp_reply_error(
		    call, TWIRP_INVALID_ARGUMENT, "job_id is required (1 to 128 characters)");
		return;
	}
	if (bad_job(call, req->partition, req->account, req->time_limit_s))
		return;
	if (req->expires_in_s < 0 || req->expires_in_s > BILLING_MAX_ELAPSED_S) {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT,
		    "expires_in_s must be between 0 and %" PRId64 ", not %" PRId64,
		    BILLING_MAX_ELAPSED_S, req->expires_in_s);
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->item = request_json(call->request, hash)) == NULL ||
	    json_object_set_new(p->item, "bodyHash", json_string(hash)) != 0 ||
	    json_object_set_new(p->item, "principal", json_string(call->principal.subject)) != 0) {
		if (p != NULL)
			pending_free(p);
		twirp_reply_error(call, TWIRP_INTERNAL, "out of memory");
		return;
	}
	p->call = call;
	if (lg->tail != NULL)
		lg->tail->next = p;
	else
		lg->head = p;
	lg->tail = p;
	if (lg->inflight == NULL)
		ledger_schedule_flush(lg);
}

/* ---------------------------------------------------------------- Heartbeat */

static void
heartbeat_shape_cb(const struct db_result *r, void *arg)
{
	struct twirp_call *call = arg;
	const Allot__V1__HeartbeatRequest *req = (const void *)call->request;
	json_t *shape, *obj;
	struct tariff *t = NULL;
	int64_t start_s;
	char reason[512];
	int rc;

	if (r->status != DB_OK) {
		twirp_reply_db_error(call, r);
		return;
	}
	shape = json_loadb(db_result_value(r, 0, 0), db_result_length(r, 0, 0), 0, NULL);
	obj = request_json(call->request, NULL);
	if (shape == NULL || obj == NULL ||
	    rfc3339_parse(json_string_value(json_object_get(shape, "startTime")), &start_s) != 0 ||
	    (req->elapsed_s > 0 && (t = tariff_new(json_object_get(shape, "billing"))) == NULL)) {
		json_decref(shape);
		json_decref(obj);
		twirp_reply_error(call, TWIRP_INTERNAL, "internal error");
		return;
	}
	if (req->elapsed_s > 0) {
		struct billing_usage u = {
		    .gpus = (int32_t)json_integer_value(json_object_get(shape, "gpus")),
		    .cpus = (int32_t)json_integer_value(json_object_get(shape, "cpus")),
		    .nodes = (int32_t)json_integer_value(json_object_get(shape, "nodes")),
		    .mem_mb = json_integer_value(json_object_get(shape, "memMb")),
		    .elapsed_s = req->elapsed_s};
		struct tariff_bill bill;
		const char *part = json_string_value(json_object_get(shape, "partition"));

		if (tariff_bill(t, req->site, part != NULL ? part : "", start_s, &u, &bill, reason,
		        sizeof(reason)) != 0) {
			tariff_free(t);
			json_decref(shape);
			json_decref(obj);
			twirp_reply_error(call, TWIRP_INVALID_ARGUMENT, "%s", reason);
			return;
		}
		rc = add_bill(obj, &bill);
		tariff_free(t);
		if (rc != 0) {
			json_decref(shape);
			json_decref(obj);
			twirp_reply_error(call, TWIRP_INTERNAL, "out of memory");
			return;
		}
	}
	json_object_del(shape, "billing");
	json_object_set_new(obj, "shape", shape);
	call_sql(call, "rpc_heartbeat", obj, twirp_sql_done_cb);
}

void
ledger_heartbeat(struct twirp_call *call)
{
	const Allot__V1__HeartbeatRequest *req = (const void *)call->request;

	if (req->job_id[0] == '\0') {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT, "job_id is required");
		return;
	}
	if (req->elapsed_s < 0 || req->elapsed_s > BILLING_MAX_ELAPSED_S) {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT,
		    "elapsed_s must be between 0 and %" PRId64 ", not %" PRId64,
		    BILLING_MAX_ELAPSED_S, req->elapsed_s);
		return;
	}
	call_sql(call, "heartbeat_shape", request_json(call->request, NULL), heartbeat_shape_cb);
}

/* ---------------------------------------------------------------- expiry */

static void
sweep_done_cb(const struct db_result *r, void *arg)
{
	struct ledger *lg = arg;

	lg->sweeping = false;
	if (r->status == DB_ERROR)
		log_errorx("could not release expired liens: %s", r->message);
	else if (r->status == DB_OK && strcmp(db_result_value(r, 0, 0), "0") != 0)
		log_info("released %s expired liens", db_result_value(r, 0, 0));
}

static void
ledger_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ledger *lg = arg;
	struct timeval tv = {lg->sweep_s, 0};

	(void)fd;
	(void)what;
	if (!lg->sweeping && db_is_up(lg->db)) {
		if (db_query(lg->db, "SELECT allot.expire_liens()", 0, NULL, sweep_done_cb, lg) ==
		    0)
			lg->sweeping = true;
	}
	if (evtimer_add(lg->sweep, &tv) != 0)
		log_errorx("could not schedule the next sweep of expired liens");
}

struct ledger *
ledger_new(
    struct event_base *base, struct db *db, struct metrics *metrics, int sweep_s, int group_max)
{
	struct ledger *lg;

	if ((lg = calloc(1, sizeof(*lg))) == NULL)
		return NULL;
	lg->db = db;
	lg->metrics = metrics;
	ledger_set_limits(lg, sweep_s, group_max);
	lg->flush = evtimer_new(base, ledger_flush_cb, lg);
	lg->sweep = evtimer_new(base, ledger_sweep_cb, lg);
	if (lg->flush == NULL || lg->sweep == NULL) {
		ledger_free(lg);
		return NULL;
	}
	return lg;
}

void
ledger_free(struct ledger *lg)
{
	struct pending *p;

	if (lg == NULL)
		return;
	while ((p = lg->head) != NULL) {
		lg->head = p->next;
		pending_free(p);
	}
	if (lg->inflight != NULL)
		group_free(lg->inflight);
	if (lg->flush != NULL)
		event_free(lg->flush);
	if (lg->sweep != NULL)
		event_free(lg->sweep);
	free(lg);
}

int
ledger_start(struct ledger *lg)
{
	struct timeval tv = {lg->sweep_s, 0};

	return evtimer_add(lg->sweep, &tv);
}

void
ledger_set_limits(struct ledger *lg, int sweep_s, int group_max)
{
	lg->sweep_s = sweep_s > 0 ? sweep_s : 1;
	lg->group_max = group_max > 0 ? group_max : 1;
}
