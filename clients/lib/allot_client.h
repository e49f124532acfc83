/*
 * allot_client: a Twirp client of allotd over HTTPS with a client certificate.
 *
 * Library-grade: it never prints and never exits; every failure is returned as
 * a Twirp error in a struct allot_error. A client is one libcurl easy handle,
 * reused from call to call so that the TLS connection is kept alive. A client
 * is not thread-safe: use one per thread.
 */
#ifndef ALLOT_CLIENT_H
#define ALLOT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "twirp_codes.h"

/* The encoding of request and response bodies on the wire. */
enum allot_wire {
	ALLOT_WIRE_PROTOBUF, /* application/protobuf */
	ALLOT_WIRE_JSON,     /* application/json, proto3 JSON mapping */
};

struct allot_client_options {
	/* "https://host:port", without the /twirp prefix; required. */
	const char *server_url;
	/* PEM files; NULL leaves them unset (no client certificate, the system CAs). */
	const char *cert_file;
	const char *key_file;
	const char *ca_file;
	enum allot_wire wire;
	/* Whole-call limit in milliseconds; 0 means none. */
	long timeout_ms;
};

/*
 * A failed call. code_name is the code as the server named it (or as the client
 * chose it for a transport failure); http_status is 0 when no HTTP response
 * came back.
 */
struct allot_error {
	enum twirp_code code;
	char code_name[32];
	char msg[1024];
	int http_status;
};

struct allot_client;

/*
 * Returns a new client for opts (the strings are copied), or NULL with the
 * reason in err. The first call initialises libcurl for the process. The caller
 * frees the client with allot_client_free.
 */
struct allot_client *allot_client_new(const struct allot_client_options *opts, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* Closes the connection and frees client; NULL is a no-op. */
void allot_client_free(struct allot_client *client);

/*
 * Calls service_method ("allot.v1.Admin/CreateSite") with request and decodes
 * the answer as a response_desc message. Returns 0 and sets *response to a new
 * message that the caller frees with protobuf_c_message_free_unpacked(msg,
 * NULL); or returns -1, sets *response to NULL and fills error: the server's
 * Twirp error, a code derived from the HTTP status when an intermediary
 * answered, unavailable when the server could not be reached, deadline_exceeded
 * when the timeout passed, internal when a body could not be encoded or decoded.
 */
int allot_client_call(struct allot_client *client, const char *service_method,
    const ProtobufCMessage *request, const ProtobufCMessageDescriptor *response_desc,
    ProtobufCMessage **response, struct allot_error *error) __attribute__((warn_unused_result));

/*
 * As allot_client_call, with the request already packed as protobuf (a spooled
 * batch): it is sent as it is, not decoded and encoded again. Needs the protobuf
 * wire (internal otherwise).
 */
int allot_client_call_packed(struct allot_client *client, const char *service_method,
    const uint8_t *request, size_t len, const ProtobufCMessageDescriptor *response_desc,
    ProtobufCMessage **response, struct allot_error *error) __attribute__((warn_unused_result));

/*
 * Fills error from a non-200 HTTP response: Twirp's JSON error body
 * {"code","msg","meta"} when the body is one, otherwise the code that Twirp
 * derives from the status of an intermediary's answer (400 internal, 401
 * unauthenticated, 403 permission_denied, 404 bad_route, 429, 502, 503 and 504
 * unavailable, any other unknown) with the status and body text in msg.
 * Exposed for the tests and for callers that bring their own transport.
 */
void allot_error_from_http(
    struct allot_error *error, int http_status, const char *body, size_t len);

/* Fills error with code and a printf-formatted message. */
void allot_error_set(struct allot_error *error, enum twirp_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
