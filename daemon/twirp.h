/*
 * twirp: Twirp v7 over evhttp. One table of routes; for each request, in this
 * order and once: route, method, content type, client certificate, principal,
 * role, body decoding, scope. Only then does a handler run. Errors are Twirp's
 * JSON body with its fixed HTTP status.
 */
#ifndef ALLOT_TWIRP_H
#define ALLOT_TWIRP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "arena.h"
#include "auth.h"
#include "db.h"
#include "twirp_codes.h"

struct evhttp_request;
struct auth;
struct db;
struct db_result;
struct metrics;
struct twirp;
struct twirp_call;

typedef void (*twirp_handler)(struct twirp_call *call);

struct twirp_route {
	const ProtobufCServiceDescriptor *service;
	const char *method;        /* as in the .proto: "CreateSite" */
	unsigned roles;            /* ROLE_BIT()s allowed to call it */
	const char *site_field;    /* request field a collector's or scheduler's site must equal */
	const char *project_field; /* request field a project principal's project must equal */
	const char *sql_function;  /* generic: SELECT allot.<fn>(request JSON, subject) */
	twirp_handler handle;      /* or a handler of its own when sql_function is NULL */
};

/* One request, from receipt to reply. Handlers read it; twirp owns and frees it. */
struct twirp_call {
	struct twirp *tw;
	struct evhttp_request *req;
	int route_index; /* -1 until a route matched */
	const struct twirp_route *route;
	const ProtobufCMethodDescriptor *md;
	bool json; /* application/json on the wire, else application/protobuf */
	struct principal principal;
	ProtobufCMessage *request; /* decoded into arena; freed with the call */
	uint64_t start_usec;
	/*
	 * Everything that lives as long as the call: its decoded request, the database's
	 * decoded answer, and whatever a handler allocates with twirp_call_alloc (the
	 * messages of its answer). Freed at once when the call is answered, whatever
	 * the outcome.
	 */
	struct arena arena;
};

/*
 * n zeroed elements of size bytes that live until the call is answered (an answer's
 * messages), or NULL when memory is exhausted or n * size overflows.
 */
static inline void *
twirp_call_calloc(struct twirp_call *call, size_t n, size_t size)
{
	return arena_calloc(&call->arena, n, size);
}

/*
 * Returns a new dispatcher for routes (kept: the table must outlive it), whose
 * methods are checked against their service descriptors, or NULL with the
 * reason in err. auth (kept) tells principals; db serves the generic SQL routes.
 */
struct twirp *twirp_new(struct db *db, struct auth *auth, const struct twirp_route *routes,
    size_t nroutes, char *err, size_t errlen);
void twirp_free(struct twirp *tw);

/* A pointer the handlers share (allotd's ledger); twirp only keeps it. */
void twirp_set_context(struct twirp *tw, void *context);
void *twirp_context(const struct twirp *tw);
struct metrics *twirp_metrics(const struct twirp *tw);
struct db *twirp_db(const struct twirp *tw);
int twirp_inflight(const struct twirp *tw);
/* cb(arg) runs each time the number of calls in flight drops to zero. */
void twirp_set_idle_cb(struct twirp *tw, void (*cb)(void *), void *arg);

/* Takes a request whose path starts with "/twirp/"; always ends in a reply. */
void twirp_handle(struct twirp *tw, struct evhttp_request *req);

/* Answer a call; the call is freed and must not be used after. */
void twirp_reply(struct twirp_call *call, const ProtobufCMessage *response);
void twirp_reply_error(struct twirp_call *call, enum twirp_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Answers an error whose meta is a JSON object (borrowed; NULL for none). */
void twirp_reply_error_json(
    struct twirp_call *call, enum twirp_code code, const char *msg, const json_t *meta);
/* The Twirp code of a SQLSTATE (table in twirp.c); TWIRP_INTERNAL for the others. */
enum twirp_code twirp_code_for_sqlstate(const char *sqlstate);
/* Maps a failed query to a Twirp error (SQLSTATE table in twirp.c) and answers. */
void twirp_reply_db_error(struct twirp_call *call, const struct db_result *r);
/*
 * Answers with the response the database returned as proto3 JSON in the first
 * column of the first row of r (r must be DB_OK), or an internal error.
 */
void twirp_reply_db_json(struct twirp_call *call, const struct db_result *r);

/*
 * Sends SELECT allot.<fn>(json, the caller's subject) and hands the result to cb(r,
 * call); answers unavailable itself when the pool cannot take it. json is copied.
 * twirp_sql_done_cb answers the call with the function's JSON, or its error.
 */
void twirp_sql_json(struct twirp_call *call, const char *fn, const char *json, db_result_cb cb);
void twirp_sql_done_cb(const struct db_result *r, void *arg);

/* Microseconds on the monotonic clock. */
uint64_t twirp_now_usec(void);

#endif
