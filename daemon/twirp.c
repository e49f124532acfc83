/*
 * twirp: the RPC layer. It matches a request to its route, authenticates the
 * caller, checks role and scope, decodes the body and hands the call to a
 * handler; it encodes answers and errors. It knows nothing of the domain: the
 * route table (rpc.c) says who may call what, and the generic routes are one
 * SQL function each, taking and returning proto3 JSON.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "db.h"
#include "log.h"
#include "metrics.h"
#include "pbjson.h"
#include "strbuf.h"
#include "tls.h"
#include "twirp.h"

#define TWIRP_PREFIX "/twirp/"

struct resolved_route {
	char path[160];
	size_t len;    /* strlen(path) */
	uint64_t hash; /* path_hash(path) */
	const ProtobufCMethodDescriptor *md;
};

/*
 * A call and the first block of its arena, one malloc: a GetPriorities call of 100
 * pairs (its request decoded, its answer's messages) fits, and most others do.
 */
#define CALL_ARENA_INLINE 16384

struct call_box {
	struct twirp_call call;
	alignas(max_align_t) char space[CALL_ARENA_INLINE];
};

/* FNV-1a of a route's path: the table is looked up by it before any comparison. */
static uint64_t
path_hash(const char *s, size_t len)
{
	uint64_t h = 14695981039346656037u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211u;
	return h;
}

struct twirp {
	struct db *db;
	struct auth *auth;
	struct metrics *metrics;
	const struct twirp_route *routes;
	size_t nroutes;
	struct resolved_route *resolved;
	const char **names;
	int inflight;
	void (*idle_cb)(void *);
	void *idle_arg;
	void *context;
};

/*
 * What a connection's calls share, kept with its SSL (ex_data, freed with it): the
 * peer's subject, which tls_peer_subject prints anew (a BIO and a dozen mallocs)
 * for every call otherwise, for the certificate it was read from (a reference is
 * held, so that the pointer names that certificate for as long as this lives).
 */
struct peer_cache {
	X509 *cert;
	bool nodelay; /* TCP_NODELAY was set on its socket */
	char subject[sizeof(((struct principal *)0)->subject)];
};

static int peer_cache_index = -1;

static void
peer_cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct peer_cache *pc = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (pc == NULL)
		return;
	X509_free(pc->cert);
	free(pc);
}

/* The connection's cache, made when make is true and memory allows; NULL otherwise. */
static struct peer_cache *
peer_cache_get(SSL *ssl, bool make)
{
	struct peer_cache *pc;

	if (ssl == NULL || peer_cache_index < 0)
		return NULL;
	if ((pc = SSL_get_ex_data(ssl, peer_cache_index)) != NULL || !make)
		return pc;
	if ((pc = calloc(1, sizeof(*pc))) == NULL)
		return NULL;
	if (SSL_set_ex_data(ssl, peer_cache_index, pc) != 1) {
		free(pc);
		return NULL;
	}
	return pc;
}

uint64_t
twirp_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct twirp *
twirp_new(struct db *db, struct auth *auth, const struct twirp_route *routes, size_t nroutes,
    char *err, size_t errlen)
{
	struct twirp *tw;

	/* One index for the process (allotd has one dispatcher; tests may make more). */
	if (peer_cache_index < 0)
		peer_cache_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, peer_cache_free);
	if ((tw = calloc(1, sizeof(*tw))) == NULL)
		goto nomem;
	tw->db = db;
	tw->auth = auth;
	tw->routes = routes;
	tw->nroutes = nroutes;
	tw->resolved = calloc(nroutes, sizeof(*tw->resolved));
	tw->names = calloc(nroutes, sizeof(*tw->names));
	if (tw->resolved == NULL || tw->names == NULL)
		goto nomem;
	for (size_t i = 0; i < nroutes; i++) {
		const struct twirp_route *r = &routes[i];
		struct resolved_route *rr = &tw->resolved[i];

		rr->md = protobuf_c_service_descriptor_get_method_by_name(r->service, r->method);
		if (rr->md == NULL) {
			snprintf(err, errlen, "route %s/%s: no such method", r->service->name,
			    r->method);
			twirp_free(tw);
			return NULL;
		}
		if ((r->sql_function == NULL) == (r->handle == NULL)) {
			snprintf(err, errlen,
			    "route %s/%s: needs exactly one of sql_function, handle",
			    r->service->name, r->method);
			twirp_free(tw);
			return NULL;
		}
		snprintf(
		    rr->path, sizeof(rr->path), TWIRP_PREFIX "%s/%s", r->service->name, r->method);
		rr->len = strlen(rr->path);
		rr->hash = path_hash(rr->path, rr->len);
		tw->names[i] = rr->path;
	}
	if ((tw->metrics = metrics_new(nroutes, tw->names)) == NULL)
		goto nomem;
	return tw;
nomem:
	snprintf(err, errlen, "out of memory");
	twirp_free(tw);
	return NULL;
}

void
twirp_free(struct twirp *tw)
{
	if (tw == NULL)
		return;
	metrics_free(tw->metrics);
	free(tw->resolved);
	free(tw->names);
	free(tw);
}

void
twirp_set_context(struct twirp *tw, void *context)
{
	tw->context = context;
}

void *
twirp_context(const struct twirp *tw)
{
	return tw->context;
}

struct metrics *
twirp_metrics(const struct twirp *tw)
{
	return tw->metrics;
}

struct db *
twirp_db(const struct twirp *tw)
{
	return tw->db;
}

int
twirp_inflight(const struct twirp *tw)
{
	return tw->inflight;
}

void
twirp_set_idle_cb(struct twirp *tw, void (*cb)(void *), void *arg)
{
	tw->idle_cb = cb;
	tw->idle_arg = arg;
}

static const char *
call_name(const struct twirp_call *call)
{
	return call->route_index >= 0 ? call->tw->names[call->route_index] : "(no route)";
}

/* Sends status and whatever the output buffer holds, counts the call and frees it. */
static void
twirp_finish(struct twirp_call *call, int status, const char *code)
{
	struct twirp *tw = call->tw;
	struct evhttp_connection *evcon = evhttp_request_get_connection(call->req);
	double seconds = (double)(twirp_now_usec() - call->start_usec) / 1e6;

	/*
	 * Without TCP_NODELAY, Nagle's algorithm holds the last TLS record of a reply until
	 * the peer's delayed ACK, about 40 ms. The listener sets it too (Linux copies it to
	 * accepted sockets); this covers every other case for one cheap system call.
	 */
	if (evcon != NULL) {
		struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
		struct peer_cache *pc =
		    bev != NULL ? peer_cache_get(bufferevent_openssl_get_ssl(bev), false) : NULL;
		int one = 1;
		evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;

		/* Once a connection, where its calls share a cache. */
		if (fd >= 0 && (pc == NULL || !pc->nodelay) &&
		    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0 && pc != NULL)
			pc->nodelay = true;
	}
	evhttp_send_reply(call->req, status, status == 200 ? "OK" : "Error", NULL);
	metrics_observe_request(tw->metrics, call->route_index, code, seconds);
	log_debug("%s %s: %s in %.3f ms",
	    call->principal.subject[0] != '\0' ? call->principal.subject : "(anonymous)",
	    call_name(call), code, seconds * 1e3);
	/* The request, the database's answer and the handler's messages, all at once. */
	arena_cleanup(&call->arena);
	free(call); /* its call_box: the call is the first member */
	if (--tw->inflight == 0 && tw->idle_cb != NULL)
		tw->idle_cb(tw->idle_arg);
}

void
twirp_reply_error_json(
    struct twirp_call *call, enum twirp_code code, const char *msg, const json_t *meta)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(call->req);
	json_t *body;
	char *text = NULL;

	/* "o" takes the copy's reference, on failure too. */
	body = json_pack("{s:s, s:s, s:o}", "code", twirp_code_name(code), "msg", msg, "meta",
	    json_is_object(meta) ? json_copy((json_t *)(uintptr_t)meta) : json_object());
	if (body != NULL)
		text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	evbuffer_drain(out, evbuffer_get_length(out));
	if (text != NULL)
		evbuffer_add(out, text, strlen(text));
	else
		evbuffer_add_printf(
		    out, "{\"code\":\"internal\",\"msg\":\"out of memory\",\"meta\":{}}");
	free(text);
	evhttp_add_header(
	    evhttp_request_get_output_headers(call->req), "Content-Type", "application/json");
	twirp_finish(call, twirp_code_status(code), twirp_code_name(code));
}

static void
twirp_reply_error_meta(struct twirp_call *call, enum twirp_code code, const char *meta_key,
    const char *meta_value, const char *msg)
{
	json_t *meta = meta_key != NULL ? json_pack("{s:s}", meta_key, meta_value) : NULL;

	twirp_reply_error_json(call, code, msg, meta);
	json_decref(meta);
}

void
twirp_reply_error(struct twirp_call *call, enum twirp_code code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	twirp_reply_error_meta(call, code, NULL, NULL, msg);
}

void
twirp_reply(struct twirp_call *call, const ProtobufCMessage *response)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(call->req);
	const char *type;

	if (call->json) {
		struct strbuf sb;

		strbuf_init(&sb);
		if (!pbjson_encode(response, &sb)) {
			strbuf_cleanup(&sb);
			log_errorx("%s: could not encode the answer as JSON", call_name(call));
			twirp_reply_error(call, TWIRP_INTERNAL, "could not encode the answer");
			return;
		}
		evbuffer_add(out, sb.data, sb.len);
		strbuf_cleanup(&sb);
		type = "application/json";
	} else {
		size_t len = protobuf_c_message_get_packed_size(response);
		struct evbuffer_iovec v;

		/* Packed straight into the reply's buffer, in one piece. */
		if (len > 0 &&
		    (evbuffer_reserve_space(out, (ev_ssize_t)len, &v, 1) != 1 || v.iov_len < len)) {
			twirp_reply_error(call, TWIRP_INTERNAL, "out of memory");
			return;
		}
		if (len > 0) {
			v.iov_len = protobuf_c_message_pack(response, v.iov_base);
			if (v.iov_len != len || evbuffer_commit_space(out, &v, 1) != 0) {
				log_errorx("%s: could not encode the answer", call_name(call));
				twirp_reply_error(
				    call, TWIRP_INTERNAL, "could not encode the answer");
				return;
			}
		}
		type = "application/protobuf";
	}
	evhttp_add_header(evhttp_request_get_output_headers(call->req), "Content-Type", type);
	twirp_finish(call, 200, "ok");
}

static const struct {
	const char *sqlstate;
	enum twirp_code code;
} sqlstate_codes[] = {
    {"P0002", TWIRP_NOT_FOUND},         /* no_data_found: raised for unknown names */
    {"23505", TWIRP_ALREADY_EXISTS},    /* unique_violation, reused ids */
    {"23503", TWIRP_NOT_FOUND},         /* foreign_key_violation */
    {"22023", TWIRP_INVALID_ARGUMENT},  /* invalid_parameter_value */
    {"23514", TWIRP_INVALID_ARGUMENT},  /* check_violation */
    {"23502", TWIRP_INVALID_ARGUMENT},  /* not_null_violation */
    {"22003", TWIRP_INVALID_ARGUMENT},  /* numeric_value_out_of_range */
    {"22007", TWIRP_INVALID_ARGUMENT},  /* invalid_datetime_format */
    {"22008", TWIRP_INVALID_ARGUMENT},  /* datetime_field_overflow */
    {"22P02", TWIRP_INVALID_ARGUMENT},  /* invalid_text_representation */
    {"22001", TWIRP_INVALID_ARGUMENT},  /* string_data_right_truncation */
    {"42501", TWIRP_PERMISSION_DENIED}, /* insufficient_privilege */
    {"53400",
        TWIRP_RESOURCE_EXHAUSTED}, /* configuration_limit_exceeded: a hold that does not fit */
    {"55000", TWIRP_FAILED_PRECONDITION}, /* object_not_in_prerequisite_state */
    {"40001", TWIRP_ABORTED},             /* serialization_failure: retry */
    {"40P01", TWIRP_ABORTED},             /* deadlock_detected: retry */
    {"57P01", TWIRP_UNAVAILABLE},         /* admin_shutdown */
    {"57P02", TWIRP_UNAVAILABLE},         /* crash_shutdown */
    {"57P03", TWIRP_UNAVAILABLE},         /* cannot_connect_now */
};

enum twirp_code
twirp_code_for_sqlstate(const char *sqlstate)
{
	for (size_t i = 0; i < sizeof(sqlstate_codes) / sizeof(sqlstate_codes[0]); i++)
		if (strcmp(sqlstate, sqlstate_codes[i].sqlstate) == 0)
			return sqlstate_codes[i].code;
	if (strncmp(sqlstate, "08", 2) == 0)
		return TWIRP_UNAVAILABLE;
	return TWIRP_INTERNAL;
}

void
twirp_reply_db_error(struct twirp_call *call, const struct db_result *r)
{
	enum twirp_code code;

	if (r->status == DB_UNAVAILABLE) {
		twirp_reply_error(call, TWIRP_UNAVAILABLE, "database is unavailable");
		return;
	}
	code = twirp_code_for_sqlstate(r->sqlstate);
	if (code == TWIRP_UNAVAILABLE) {
		twirp_reply_error(call, TWIRP_UNAVAILABLE, "database is unavailable");
		return;
	}
	if (code != TWIRP_INTERNAL) {
		twirp_reply_error(call, code, "%s", r->message);
		return;
	}
	log_errorx("%s by \"%s\" failed in the database: %s (SQLSTATE %s)", call_name(call),
	    call->principal.subject, r->message, r->sqlstate);
	twirp_reply_error(call, TWIRP_INTERNAL, "internal error");
}

void
twirp_reply_db_json(struct twirp_call *call, const struct db_result *r)
{
	ProtobufCMessage *msg;
	char err[256];

	if (db_result_rows(r) != 1 || db_result_length(r, 0, 0) == 0) {
		log_errorx("%s: the database returned no answer", call_name(call));
		twirp_reply_error(call, TWIRP_INTERNAL, "internal error");
		return;
	}
	msg = pbjson_decode_in(call->md->output, db_result_value(r, 0, 0),
	    db_result_length(r, 0, 0), arena_protobuf(&call->arena), err, sizeof(err));
	if (msg == NULL) {
		log_errorx("%s: could not decode the database's answer: %s", call_name(call), err);
		twirp_reply_error(call, TWIRP_INTERNAL, "internal error");
		return;
	}
	twirp_reply(call, msg); /* msg goes with the call's arena */
}

void
twirp_sql_done_cb(const struct db_result *r, void *arg)
{
	struct twirp_call *call = arg;

	if (r->status != DB_OK)
		twirp_reply_db_error(call, r);
	else
		twirp_reply_db_json(call, r);
}

void
twirp_sql_json(struct twirp_call *call, const char *fn, const char *json, db_result_cb cb)
{
	char sql[160];
	const char *params[2];

	snprintf(sql, sizeof(sql), "SELECT allot.%s($1::jsonb, $2::text)", fn);
	params[0] = json;
	params[1] = call->principal.subject;
	if (db_query(call->tw->db, sql, 2, params, cb, call) != 0)
		twirp_reply_error(call, TWIRP_UNAVAILABLE, "database is unavailable");
}

static void
twirp_sql_call(struct twirp_call *call)
{
	struct strbuf json;

	strbuf_init(&json);
	if (!pbjson_encode(call->request, &json)) {
		strbuf_cleanup(&json);
		twirp_reply_error(call, TWIRP_INTERNAL, "could not encode the request");
		return;
	}
	twirp_sql_json(call, call->route->sql_function, json.data, twirp_sql_done_cb);
	strbuf_cleanup(&json);
}

/* The string value of the request's field name, or NULL when it has none. */
static const char *
request_string_field(const ProtobufCMessage *msg, const char *name)
{
	const ProtobufCFieldDescriptor *f;

	f = protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, name);
	if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
		return NULL;
	return *(const char *const *)(const void *)((const char *)msg + f->offset);
}

/* Applies the principal's scope: a site for collectors and schedulers, a project for projects. */
static bool
scope_allows(const struct twirp_call *call, char *why, size_t whylen)
{
	const struct principal *p = &call->principal;
	const char *field = NULL, *value;

	if (p->role == ROLE_COLLECTOR || p->role == ROLE_SCHEDULER)
		field = call->route->site_field;
	else if (p->role == ROLE_PROJECT)
		field = call->route->project_field;
	if (field == NULL)
		return true;
	value = request_string_field(call->request, field);
	if (value != NULL && strcmp(value, p->scope) == 0)
		return true;
	snprintf(why, whylen, "principal \"%.200s\" (%s of %s) may not act for %s \"%.200s\"",
	    p->subject, auth_role_name(p->role), p->scope, field, value != NULL ? value : "");
	return false;
}

/*
 * True when no byte of p[0..len) has its high bit set. Every string of a message
 * unpacked from such a body is then ASCII, so valid UTF-8, without walking the
 * message (pbjson_strings_valid was 3 % of a GetPriorities call): the common case,
 * since only varints past 127 and fixed-width numbers put such bytes in a body.
 */
static bool
bytes_are_ascii(const uint8_t *p, size_t len)
{
	uint64_t acc = 0, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		acc |= w;
	}
	for (; i < len; i++)
		acc |= p[i];
	return (acc & 0x8080808080808080u) == 0;
}

/* The checks after the principal's: role, body, scope; then the handler. */
static void
twirp_authenticated(struct twirp_call *call, enum auth_status status, const struct principal *p)
{
	struct evbuffer *body;
	const uint8_t *data;
	size_t len;
	char err[512];

	switch (status) {
	case AUTH_PENDING: /* auth_lookup's own answer, never passed here */
	case AUTH_UNAVAILABLE:
		twirp_reply_error(call, TWIRP_UNAVAILABLE, "database is unavailable");
		return;
	case AUTH_FAILED:
		twirp_reply_error(call, TWIRP_INTERNAL, "internal error");
		return;
	case AUTH_UNKNOWN:
		twirp_reply_error(call, TWIRP_UNAUTHENTICATED,
		    "certificate subject \"%s\" is not a known principal", call->principal.subject);
		return;
	case AUTH_FOUND:
		break;
	}
	call->principal = *p;
	if ((call->route->roles & ROLE_BIT(p->role)) == 0) {
		twirp_reply_error(call, TWIRP_PERMISSION_DENIED,
		    "principal \"%s\" (%s) may not call %s", p->subject, auth_role_name(p->role),
		    call_name(call) + strlen(TWIRP_PREFIX));
		return;
	}
	body = evhttp_request_get_input_buffer(call->req);
	len = evbuffer_get_length(body);
	data = evbuffer_pullup(body, -1);
	if (call->json)
		call->request = pbjson_decode_in(call->md->input, (const char *)data, len,
		    arena_protobuf(&call->arena), err, sizeof(err));
	else
		call->request = protobuf_c_message_unpack(
		    call->md->input, arena_protobuf(&call->arena), len, data);
	if (call->request != NULL && !call->json && !bytes_are_ascii(data, len) &&
	    !pbjson_strings_valid(call->request)) {
		twirp_reply_error(call, TWIRP_MALFORMED,
		    "the protobuf body is not a valid %s: a string is not UTF-8",
		    call->md->input->name);
		return;
	}
	if (call->request == NULL) {
		if (call->json)
			twirp_reply_error(call, TWIRP_MALFORMED,
			    "the JSON body is not a valid %s: %s", call->md->input->name, err);
		else
			twirp_reply_error(call, TWIRP_MALFORMED,
			    "the protobuf body is not a valid %s", call->md->input->name);
		return;
	}
	if (!scope_allows(call, err, sizeof(err))) {
		twirp_reply_error(call, TWIRP_PERMISSION_DENIED, "%s", err);
		return;
	}
	if (call->route->handle != NULL)
		call->route->handle(call);
	else
		twirp_sql_call(call);
}

/* A call that came before the principals were first loaded goes on from here. */
static void
twirp_auth_cb(enum auth_status status, const struct principal *p, void *arg)
{
	twirp_authenticated(arg, status, p);
}

static SSL *
request_ssl(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;

	if (evcon == NULL || (bev = evhttp_connection_get_bufferevent(evcon)) == NULL)
		return NULL;
	return bufferevent_openssl_get_ssl(bev);
}

static const char *
method_name(struct evhttp_request *req)
{
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	default:
		return "OTHER";
	}
}

static bool
content_type_is(const char *value, const char *want)
{
	size_t n = strlen(want);

	/* Parameters such as "; charset=utf-8" may follow the media type. */
	return strncasecmp(value, want, n) == 0 &&
	    (value[n] == '\0' || value[n] == ';' || value[n] == ' ');
}

/*
 * The client certificate's subject into call->principal, as tls_peer_subject reads
 * it; from the connection's cache when its certificate is the one read before and
 * still verified. Returns 0, or -1 with the reason in why.
 */
static int
peer_subject(struct twirp_call *call, char *why, size_t whylen)
{
	SSL *ssl = request_ssl(call->req);
	struct peer_cache *pc = peer_cache_get(ssl, true);
	char *subject = call->principal.subject;
	size_t len = sizeof(call->principal.subject);

	if (pc != NULL && pc->cert != NULL && SSL_get0_peer_certificate(ssl) == pc->cert &&
	    SSL_get_verify_result(ssl) == X509_V_OK) {
		memcpy(subject, pc->subject, strlen(pc->subject) + 1);
		return 0;
	}
	if (tls_peer_subject(ssl, subject, len, why, whylen) != 0)
		return -1;
	if (pc != NULL) {
		X509_free(pc->cert);
		pc->cert = SSL_get1_peer_certificate(ssl);
		memcpy(pc->subject, subject, strlen(subject) + 1);
	}
	return 0;
}

/* Answers bad_route, the method and path in its meta: built here, off every call's way. */
static void
bad_route(struct twirp_call *call, const char *path, const char *msg)
{
	char route_meta[256];

	snprintf(route_meta, sizeof(route_meta), "%s %.200s", method_name(call->req), path);
	twirp_reply_error_meta(call, TWIRP_BAD_ROUTE, "twirp_invalid_route", route_meta, msg);
}

void
twirp_handle(struct twirp *tw, struct evhttp_request *req)
{
	struct twirp_call *call;
	struct principal p;
	enum auth_status status;
	const char *path, *type;
	char why[256];
	size_t path_len;
	uint64_t hash;

	{
		struct call_box *box = malloc(sizeof(*box));

		if (box == NULL) {
			evhttp_send_error(req, 500, "out of memory");
			return;
		}
		call = &box->call;
		memset(call, 0, sizeof(*call));
		arena_init(&call->arena, box->space, sizeof(box->space));
	}
	call->tw = tw;
	call->req = req;
	call->route_index = -1;
	call->start_usec = twirp_now_usec();
	tw->inflight++;

	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (path == NULL)
		path = "";
	path_len = strlen(path);
	hash = path_hash(path, path_len);
	for (size_t i = 0; i < tw->nroutes; i++) {
		const struct resolved_route *rr = &tw->resolved[i];

		if (rr->hash == hash && rr->len == path_len &&
		    memcmp(path, rr->path, path_len) == 0) {
			call->route_index = (int)i;
			call->route = &tw->routes[i];
			call->md = tw->resolved[i].md;
			break;
		}
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		bad_route(call, path, "unsupported method (only POST is allowed)");
		return;
	}
	if (call->route == NULL) {
		snprintf(why, sizeof(why), "no handler for path \"%.150s\"", path);
		bad_route(call, path, why);
		return;
	}
	type = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	if (type != NULL && content_type_is(type, "application/json")) {
		call->json = true;
	} else if (type == NULL || !content_type_is(type, "application/protobuf")) {
		snprintf(why, sizeof(why), "unexpected Content-Type: \"%.100s\"",
		    type != NULL ? type : "");
		bad_route(call, path, why);
		return;
	}
	if (peer_subject(call, why, sizeof(why)) != 0) {
		call->principal.subject[0] = '\0';
		twirp_reply_error(call, TWIRP_UNAUTHENTICATED, "%s", why);
		return;
	}
	/* From memory, at once, but while allotd starts and has yet to read the principals. */
	status = auth_lookup(tw->auth, call->principal.subject, &p, twirp_auth_cb, call);
	if (status != AUTH_PENDING)
		twirp_authenticated(call, status, &p);
}
