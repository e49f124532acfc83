/*
 * liballot: the C client library of Allot. See allot(3).
 *
 * A client talks Twirp to allotd over HTTPS with a client certificate. It
 * calls any RPC with protobuf-c messages (allot_call), and the Ledger's
 * Quote, Reserve, Settle, Release and Heartbeat, and FairShare's
 * GetPriorities (since 1.1), with plain C structs (no protobuf-c needed). A call that fails with unavailable, or in transport
 * before the server could have answered, is sent again with exponential
 * backoff and jitter, the same bytes each time (so the same lien ids and batch
 * ids: allotd's calls are idempotent on them), bounded by max_attempts and
 * deadline_ms; retries are off by default (max_attempts 1). A timeout is
 * always deadline_exceeded, never unavailable; one after the request went out
 * is not retried.
 *
 * The library never prints and never exits; every failure comes back in a
 * struct allot_error with the server's Twirp code and message. A client is not
 * thread-safe: use one per thread. This header needs nothing else of Allot's.
 */
#ifndef ALLOT_H
#define ALLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ALLOT_VERSION_MAJOR 1
#define ALLOT_VERSION_MINOR 1

/* Twirp's error codes, and ALLOT_OK. allot_code_name gives Twirp's names. */
enum allot_code {
	ALLOT_OK = 0,
	ALLOT_CANCELED,
	ALLOT_UNKNOWN,
	ALLOT_INVALID_ARGUMENT,
	ALLOT_MALFORMED,
	ALLOT_DEADLINE_EXCEEDED,
	ALLOT_NOT_FOUND,
	ALLOT_BAD_ROUTE,
	ALLOT_ALREADY_EXISTS,
	ALLOT_PERMISSION_DENIED,
	ALLOT_UNAUTHENTICATED,
	ALLOT_RESOURCE_EXHAUSTED,
	ALLOT_FAILED_PRECONDITION,
	ALLOT_ABORTED,
	ALLOT_OUT_OF_RANGE,
	ALLOT_UNIMPLEMENTED,
	ALLOT_INTERNAL,
	ALLOT_UNAVAILABLE,
	ALLOT_DATALOSS,
};

/*
 * A failed call. code_name is the code as the server named it (kept as sent
 * when the library does not know it: code is then ALLOT_UNKNOWN), or as the
 * library chose it; msg is the server's message, or the library's.
 * http_status is 0 when no HTTP answer came back. attempts is how many times
 * the request was sent (or tried to be).
 */
struct allot_error {
	enum allot_code code;
	char code_name[32];
	char msg[1024];
	int http_status;
	int attempts;
};

/* The encoding of bodies on the wire. */
enum allot_wire {
	ALLOT_WIRE_PROTOBUF, /* application/protobuf */
	ALLOT_WIRE_JSON,     /* application/json, the proto3 JSON mapping */
};

/*
 * How to reach allotd and how hard to try. Fill it with allot_options_init,
 * then set what differs; allot_connect copies what it needs. Times are in
 * milliseconds; 0 means none for timeout_ms and deadline_ms, and libcurl's
 * 300 s for connect_timeout_ms (the other two still bound it).
 */
struct allot_options {
	const char *server_url;  /* "https://host:port", required */
	const char *cert_file;   /* client certificate (PEM); NULL: none */
	const char *key_file;    /* its key (PEM); NULL: none */
	const char *ca_file;     /* CA of the server's certificate; NULL: the system's */
	enum allot_wire wire;    /* default ALLOT_WIRE_PROTOBUF */
	long connect_timeout_ms; /* TCP and TLS set-up of one attempt; default 10000 */
	long timeout_ms;         /* one attempt, from start to answer; default 30000 */
	int max_attempts;        /* 1 (the default) or 0: no retry */
	long backoff_initial_ms; /* the wait before the first retry; default 100 */
	long backoff_max_ms;     /* the longest wait; default 5000 */
	long deadline_ms;        /* all attempts and waits together; default 60000 */
};

struct allot_client;

/* Fills opts with the defaults above, and NULL paths. */
void allot_options_init(struct allot_options *opts);

/*
 * Returns a new client for opts, or NULL with the reason in error
 * (invalid_argument for bad options). Nothing is sent yet: the connection is
 * made by the first call and kept alive for the next. The first client of the
 * process initialises libcurl. Free it with allot_close.
 */
struct allot_client *allot_connect(const struct allot_options *opts, struct allot_error *error)
    __attribute__((warn_unused_result));

/* Closes the connection and frees client; NULL is a no-op. */
void allot_close(struct allot_client *client);

/*
 * Calls method ("allot.v1.Ledger/Reserve") with request, decoding the answer
 * as a response_desc message. Returns 0 and sets *response to a new message
 * (free it with protobuf_c_message_free_unpacked(msg, NULL)); or returns -1,
 * sets *response to NULL and fills error: the server's Twirp error; the code
 * Twirp derives from the HTTP status when an intermediary answered;
 * unavailable when the server could not be reached; deadline_exceeded when a
 * timeout (connect, attempt) or the deadline passed; internal when a body could not be
 * encoded or decoded. On success error says ALLOT_OK ("ok") and how many
 * attempts it took.
 */
int allot_call(struct allot_client *client, const char *method, const ProtobufCMessage *request,
    const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
    struct allot_error *error) __attribute__((warn_unused_result));

/*
 * As allot_call, with the request already packed as protobuf (a spooled
 * batch), sent as it is. Needs the protobuf wire (invalid_argument otherwise).
 */
int allot_call_packed(struct allot_client *client, const char *method, const uint8_t *request,
    size_t len, const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
    struct allot_error *error) __attribute__((warn_unused_result));

/* "invalid_argument" and so on; "ok" for ALLOT_OK, "unknown" for a value out of range. */
const char *allot_code_name(enum allot_code code);

/* The library's version, "1.1.0". */
const char *allot_version(void);

/* ---- The Ledger in plain structs. Strings in are NUL-terminated; NULL is "". */

/* A job as the site's scheduler sees it before it runs. */
struct allot_job {
	const char *site;
	const char *partition;
	const char *account; /* the site's account: the project's name or a mapped one */
	const char *user;
	int gpus;
	int cpus;
	int nodes;
	int64_t mem_mb;
	int64_t time_limit_s;
};

/* Quote's answer; costs for the job's whole time limit. */
struct allot_quote {
	bool allowed;     /* a Reserve of this job would be accepted now */
	char reason[512]; /* why not ("exhausted", ...), cut to fit */
	int64_t allocation_id;
	int64_t occupied_gpus;
	int64_t cost_units; /* normalized GPU-milliseconds */
	double cost_gpu_hours;
	int64_t available_units;
	double available_gpu_hours;
	int64_t native_cost_milli; /* in the site's unit, thousandths */
	char native_unit[32];
};

/* Reserve's request: hold the job's cost until it settles. */
struct allot_reservation {
	const char *lien_id; /* the caller's id, 1 to 200 bytes: the call's idempotency key */
	const char *job_id;  /* the site's job id, 1 to 128 bytes */
	struct allot_job job;
	int64_t expires_in_s; /* 0: time_limit_s plus one hour */
	const char *campaign; /* a campaign's lien id, or NULL */
};

enum allot_lien_status {
	ALLOT_LIEN_UNSPECIFIED,
	ALLOT_LIEN_ACTIVE,
	ALLOT_LIEN_SETTLED,
	ALLOT_LIEN_RELEASED,
	ALLOT_LIEN_EXPIRED,
	ALLOT_LIEN_REPLACED,
};

/* A lien as allotd answers it (Reserve, Settle, Release, Heartbeat). */
struct allot_lien {
	char lien_id[256];
	char kind[16]; /* "job" or "campaign" */
	char site[128];
	char job_id[256];
	char project[128];
	int64_t allocation_id;
	enum allot_lien_status status;
	int64_t amount_units;   /* held when it was made */
	int64_t held_units;     /* still held */
	int64_t drawn_units;    /* charged by usage */
	int64_t released_units; /* back to available when it closed */
	double held_gpu_hours;
	char expires_at[64]; /* RFC 3339 */
	char campaign[256];
	char replaced[256]; /* the lien this Reserve replaced, or "" */
	int64_t available_units;
};

enum allot_action {
	ALLOT_ACTION_UNSPECIFIED,
	ALLOT_ACTION_CONTINUE,
	ALLOT_ACTION_STOP,
};

struct allot_heartbeat {
	enum allot_action action;
	char reason[512]; /* why STOP, cut to fit */
	int64_t charged_units;
	int64_t held_units;
	int64_t available_units;
	struct allot_lien lien;
};

/*
 * The typed calls: each returns 0 with *out filled, or -1 with error filled as
 * allot_call does (internal as well when an answer's string does not fit its
 * field in *out). start_time (RFC 3339) chooses the allocation; NULL: now.
 * Settle and Release close the job's (site, job_id) active lien, or the lien
 * named by lien_id when it is not NULL (a campaign).
 */
int allot_quote(struct allot_client *client, const struct allot_job *job, const char *start_time,
    struct allot_quote *out, struct allot_error *error) __attribute__((warn_unused_result));
int allot_reserve(struct allot_client *client, const struct allot_reservation *reservation,
    struct allot_lien *out, struct allot_error *error) __attribute__((warn_unused_result));
int allot_settle(struct allot_client *client, const char *site, const char *job_id,
    const char *lien_id, struct allot_lien *out, struct allot_error *error)
    __attribute__((warn_unused_result));
int allot_release(struct allot_client *client, const char *site, const char *job_id,
    const char *lien_id, struct allot_lien *out, struct allot_error *error)
    __attribute__((warn_unused_result));
int allot_heartbeat(struct allot_client *client, const char *site, const char *job_id,
    int64_t elapsed_s, struct allot_heartbeat *out, struct allot_error *error)
    __attribute__((warn_unused_result));

/* ---- FairShare.GetPriorities in plain structs (since 1.1). */

/* One job owner as the site's scheduler names it. */
struct allot_priority_pair {
	const char *account; /* the site's account: the project's name or a mapped one */
	const char *user;
};

/* The answer for one pair. */
struct allot_priority {
	char project[128]; /* what the account resolved to; "" when it names no project */
	double fairshare;  /* [0, 1]: Fair Tree's rank / users, or classic's 2^(-UE/S) */
	double pacing;     /* [0, 1]: 0.5 on the straight line of the allocation window */
	double combined;   /* [0, 1]: the two weighted by allotd's fairshare_pacing_permille */
	bool known_user;   /* false: the user has no usage and is not in the project */
};

/*
 * The fair share of n pairs (1 to 20,000) whose accounts are named at site,
 * from the usage of all sites: fills out[0 .. n-1] in the order of pairs and
 * returns 0, or returns -1 with error filled as the typed calls above do
 * (invalid_argument from the server for 0 or too many pairs).
 */
int allot_priorities(struct allot_client *client, const char *site,
    const struct allot_priority_pair *pairs, size_t n, struct allot_priority *out,
    struct allot_error *error) __attribute__((warn_unused_result));

#ifdef __cplusplus
}
#endif

#endif
