/*
 * allot_client: Twirp calls to allotd over libcurl, with retries.
 *
 * Encodes a request (protobuf, or proto3 JSON through pbjson) once, POSTs it
 * to /twirp/<service>/<method> on one reused easy handle (keep-alive, TLS 1.2
 * or newer, peer and host verified against the configured CA, client
 * certificate) and decodes the answer or Twirp's error body. An attempt that
 * fails with unavailable, or in transport before an answer came (refused,
 * reset, closed with nothing, a connect timeout), is retried with the same
 * bytes after allot_backoff_ms, while attempts and the deadline allow. Every
 * timeout is deadline_exceeded (a failure to reach the server otherwise is
 * unavailable); an attempt whose request went out and whose answer did not
 * come within timeout_ms is not retried, as the server may be acting on it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "allot_internal.h"
#include "pbjson.h"
#include "strbuf.h"

/* A bound on what a server may make us buffer; larger answers are refused. */
#define ALLOT_CLIENT_MAX_RESPONSE (256u * 1024 * 1024)

struct allot_client {
	CURL *curl;
	char *base_url;            /* server URL without trailing slashes */
	struct allot_options opts; /* the times and attempts; its paths are not kept */
	struct curl_slist *headers;
	struct strbuf body; /* the answer being received */
	bool body_too_large;
	unsigned int rnd; /* rand_r's state for the jitter: spread, not secrecy */
	char curl_err[CURL_ERROR_SIZE];
};

/* What one attempt left to do. */
enum attempt { ATTEMPT_OK, ATTEMPT_FAILED, ATTEMPT_RETRY };

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void
client_init_curl(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *
allot_version(void)
{
	return "1.1.0";
}

/* Milliseconds on the monotonic clock since *since. */
static long
client_elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

static void
client_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static size_t
client_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct allot_client *client = arg;
	size_t n = size * nmemb;

	if (client->body.len + n > ALLOT_CLIENT_MAX_RESPONSE) {
		client->body_too_large = true;
		return 0;
	}
	strbuf_append(&client->body, data, n);
	if (strbuf_failed(&client->body))
		return 0;
	return n;
}

static bool
client_add_header(struct allot_client *client, const char *line)
{
	struct curl_slist *h = curl_slist_append(client->headers, line);

	if (h == NULL)
		return false;
	client->headers = h;
	return true;
}

/* Sets the options that hold for every call; -1 with the reason in error. */
static int
client_setup_handle(
    struct allot_client *client, const struct allot_options *opts, struct allot_error *error)
{
	CURL *c = client->curl;
	const char *ctype;
	char line[64];
	CURLcode rc = CURLE_OK;

#define SETOPT(opt, val) \
	do { \
		if (rc == CURLE_OK) \
			rc = curl_easy_setopt(c, opt, val); \
	} while (0)

	SETOPT(CURLOPT_ERRORBUFFER, client->curl_err);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_TCP_NODELAY, 1L);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(CURLOPT_PROTOCOLS_STR, "https,http");
#else
	SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTPS | CURLPROTO_HTTP));
#endif
	/* evhttp speaks HTTP/1.1; asking for h2 through ALPN would gain nothing. */
	SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (opts->ca_file != NULL)
		SETOPT(CURLOPT_CAINFO, opts->ca_file);
	if (opts->cert_file != NULL) {
		SETOPT(CURLOPT_SSLCERT, opts->cert_file);
		SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (opts->key_file != NULL) {
		SETOPT(CURLOPT_SSLKEY, opts->key_file);
		SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
	}
	SETOPT(CURLOPT_USERAGENT, "liballot/1.1");
	SETOPT(CURLOPT_POST, 1L);
	SETOPT(CURLOPT_WRITEFUNCTION, client_write_cb);
	SETOPT(CURLOPT_WRITEDATA, client);
#undef SETOPT
	if (rc != CURLE_OK) {
		allot_error_set(error, ALLOT_INTERNAL, "could not set up the HTTP client: %s",
		    curl_easy_strerror(rc));
		return -1;
	}

	ctype = opts->wire == ALLOT_WIRE_JSON ? "application/json" : "application/protobuf";
	snprintf(line, sizeof(line), "Content-Type: %s", ctype);
	if (!client_add_header(client, line))
		goto nomem;
	snprintf(line, sizeof(line), "Accept: %s", ctype);
	if (!client_add_header(client, line))
		goto nomem;
	/* No "Expect: 100-continue": it costs a round trip on larger bodies. */
	if (!client_add_header(client, "Expect:"))
		goto nomem;
	if (curl_easy_setopt(c, CURLOPT_HTTPHEADER, client->headers) != CURLE_OK) {
		allot_error_set(error, ALLOT_INTERNAL, "could not set up the HTTP client headers");
		return -1;
	}
	return 0;

nomem:
	allot_error_set(error, ALLOT_INTERNAL, "out of memory");
	return -1;
}

struct allot_client *
allot_connect(const struct allot_options *opts, struct allot_error *error)
{
	struct allot_client *client = NULL;
	unsigned int seed = 0;
	size_t n;

	memset(error, 0, sizeof(*error));
	if (allot_options_check(opts, error) != 0)
		return NULL;
	pthread_once(&curl_once, client_init_curl);
	if (curl_init_result != CURLE_OK) {
		allot_error_set(error, ALLOT_INTERNAL, "could not initialise libcurl: %s",
		    curl_easy_strerror(curl_init_result));
		return NULL;
	}

	client = calloc(1, sizeof(*client));
	if (client == NULL)
		goto nomem;
	strbuf_init(&client->body);
	client->opts = *opts;
	client->opts.server_url = client->opts.cert_file = client->opts.key_file =
	    client->opts.ca_file = NULL;
	if (client->opts.max_attempts == 0)
		client->opts.max_attempts = 1;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = (unsigned int)getpid() ^ (unsigned int)time(NULL);
	client->rnd = seed;
	client->base_url = strdup(opts->server_url);
	if (client->base_url == NULL)
		goto nomem;
	n = strlen(client->base_url);
	while (n > 0 && client->base_url[n - 1] == '/')
		client->base_url[--n] = '\0';
	client->curl = curl_easy_init();
	if (client->curl == NULL) {
		allot_error_set(error, ALLOT_INTERNAL, "could not create an HTTP handle");
		goto fail;
	}
	if (client_setup_handle(client, opts, error) != 0)
		goto fail;
	return client;

nomem:
	allot_error_set(error, ALLOT_INTERNAL, "out of memory");
fail:
	allot_close(client);
	return NULL;
}

void
allot_close(struct allot_client *client)
{
	if (client == NULL)
		return;
	if (client->curl != NULL)
		curl_easy_cleanup(client->curl);
	curl_slist_free_all(client->headers);
	strbuf_cleanup(&client->body);
	free(client->base_url);
	free(client);
}

/* Encodes request per the wire format into out; false on failure. */
static bool
client_encode(struct allot_client *client, const ProtobufCMessage *request, struct strbuf *out)
{
	size_t size;
	uint8_t *buf;

	if (client->opts.wire == ALLOT_WIRE_JSON)
		return pbjson_encode(request, out) && !strbuf_failed(out);

	size = protobuf_c_message_get_packed_size(request);
	buf = malloc(size > 0 ? size : 1);
	if (buf == NULL)
		return false;
	protobuf_c_message_pack(request, buf);
	strbuf_append(out, buf, size);
	free(buf);
	return !strbuf_failed(out);
}

/* The smaller of a limit and the time left (0 for either: none). */
static long
client_bound(long limit_ms, long left_ms)
{
	if (left_ms <= 0)
		return limit_ms;
	if (limit_ms <= 0 || left_ms < limit_ms)
		return left_ms;
	return limit_ms;
}

/*
 * Maps a libcurl failure to an error and says whether it may be retried:
 * failures before any answer that sending again may cure.
 */
static enum attempt
client_error_from_curl(struct allot_client *client, CURLcode rc, struct allot_error *error)
{
	const char *detail =
	    client->curl_err[0] != '\0' ? client->curl_err : curl_easy_strerror(rc);
	long sent = 0;

	switch (rc) {
	case CURLE_WRITE_ERROR:
		if (client->body_too_large)
			allot_error_set(error, ALLOT_INTERNAL, "response larger than %u bytes",
			    ALLOT_CLIENT_MAX_RESPONSE);
		else
			allot_error_set(
			    error, ALLOT_INTERNAL, "out of memory while reading the response");
		return ATTEMPT_FAILED;
	case CURLE_OPERATION_TIMEDOUT:
		/* Was the request sent? Then the server may be working on it. */
		curl_easy_getinfo(client->curl, CURLINFO_REQUEST_SIZE, &sent);
		if (sent > 0) {
			allot_error_set(
			    error, ALLOT_DEADLINE_EXCEEDED, "no answer in time: %s", detail);
			return ATTEMPT_FAILED;
		}
		/* It was not: a connect timeout, a timeout still, but worth another try. */
		allot_error_set(
		    error, ALLOT_DEADLINE_EXCEEDED, "could not connect in time: %s", detail);
		return ATTEMPT_RETRY;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		allot_error_set(error, ALLOT_UNAVAILABLE, "%s", detail);
		return ATTEMPT_RETRY;
	default:
		/* Certificates, protocol: sending again would fail the same way. */
		allot_error_set(error, ALLOT_UNAVAILABLE, "%s", detail);
		return ATTEMPT_FAILED;
	}
}

/* Decodes the 200 answer in client->body as response_desc into *response. */
static int
client_decode(struct allot_client *client, const ProtobufCMessageDescriptor *response_desc,
    ProtobufCMessage **response, struct allot_error *error)
{
	const char *data = client->body.data != NULL ? client->body.data : "";
	ProtobufCMessage *msg;
	char err[256];

	if (client->opts.wire == ALLOT_WIRE_JSON) {
		msg = pbjson_decode(response_desc, data, client->body.len, err, sizeof(err));
		if (msg == NULL)
			allot_error_set(error, ALLOT_INTERNAL,
			    "could not decode the %s response: %s", response_desc->name, err);
	} else {
		msg = protobuf_c_message_unpack(
		    response_desc, NULL, client->body.len, (const uint8_t *)data);
		if (msg == NULL)
			allot_error_set(error, ALLOT_INTERNAL, "could not decode the %s response",
			    response_desc->name);
	}
	if (msg == NULL) {
		error->http_status = 200;
		return -1;
	}
	*response = msg;
	return 0;
}

/* One POST of body[0..len) to url within the time left (0: no deadline). */
static enum attempt
client_attempt(struct allot_client *client, const char *url, const uint8_t *body, size_t len,
    long left_ms, const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
    struct allot_error *error)
{
	CURL *c = client->curl;
	long status = 0;
	CURLcode rc;

	strbuf_reset(&client->body);
	client->body_too_large = false;
	client->curl_err[0] = '\0';
	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POSTFIELDS, len > 0 ? (const char *)body : "") !=
	        CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	        client_bound(client->opts.connect_timeout_ms, left_ms)) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
	        client_bound(client->opts.timeout_ms, left_ms)) != CURLE_OK) {
		allot_error_set(error, ALLOT_INTERNAL, "could not set up the request to %s", url);
		return ATTEMPT_FAILED;
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		return client_error_from_curl(client, rc, error);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		allot_error_from_http(error, (int)status, client->body.data, client->body.len);
		return error->code == ALLOT_UNAVAILABLE ? ATTEMPT_RETRY : ATTEMPT_FAILED;
	}
	return client_decode(client, response_desc, response, error) == 0 ? ATTEMPT_OK
	                                                                  : ATTEMPT_FAILED;
}

/* Notes in error's message how many attempts it took, when more than one. */
static void
client_note_attempts(struct allot_error *error, int attempts, const char *why)
{
	size_t n = strlen(error->msg);

	error->attempts = attempts;
	if (attempts > 1 || why != NULL)
		snprintf(error->msg + n, sizeof(error->msg) - n, " (%d attempts%s%s)", attempts,
		    why != NULL ? ", " : "", why != NULL ? why : "");
}

/*
 * Posts body[0..len) to method until an answer, a failure not worth retrying,
 * the last attempt or the deadline; what allot_call and allot_call_packed share.
 */
static int
client_post(struct allot_client *client, const char *method, const uint8_t *body, size_t len,
    const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
    struct allot_error *error)
{
	const long deadline_ms = client->opts.deadline_ms;
	struct strbuf url;
	struct timespec start;
	long left_ms = 0, wait_ms;
	enum attempt r = ATTEMPT_FAILED;
	int attempt;

	strbuf_init(&url);
	strbuf_printf(&url, "%s/twirp/%s", client->base_url, method);
	if (strbuf_failed(&url)) {
		allot_error_set(error, ALLOT_INTERNAL, "out of memory");
		strbuf_cleanup(&url);
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (attempt = 1;; attempt++) {
		if (deadline_ms > 0)
			left_ms = deadline_ms - client_elapsed_ms(&start);
		r = client_attempt(
		    client, url.data, body, len, left_ms, response_desc, response, error);
		if (r == ATTEMPT_OK) {
			memset(error, 0, sizeof(*error));
			snprintf(error->code_name, sizeof(error->code_name), "ok");
			error->attempts = attempt;
			break;
		}
		if (r == ATTEMPT_RETRY && deadline_ms > 0 &&
		    client_elapsed_ms(&start) >= deadline_ms) {
			allot_error_set(error, ALLOT_DEADLINE_EXCEEDED,
			    "no answer within the deadline of %ld ms", deadline_ms);
			client_note_attempts(error, attempt, NULL);
			break;
		}
		if (r == ATTEMPT_FAILED || attempt >= client->opts.max_attempts) {
			client_note_attempts(error, attempt, NULL);
			break;
		}
		wait_ms = allot_backoff_ms(&client->opts, attempt, (uint32_t)rand_r(&client->rnd));
		if (deadline_ms > 0 && client_elapsed_ms(&start) + wait_ms >= deadline_ms) {
			/* No time for another attempt: the last failure is the answer. */
			client_note_attempts(
			    error, attempt, "the deadline leaves no time for more");
			break;
		}
		client_sleep_ms(wait_ms);
	}

	/* Do not keep a large answer alive between calls. */
	if (client->body.cap > 65536) {
		strbuf_cleanup(&client->body);
		strbuf_init(&client->body);
	} else
		strbuf_reset(&client->body);
	curl_easy_setopt(client->curl, CURLOPT_POSTFIELDS, "");
	strbuf_cleanup(&url);
	return r == ATTEMPT_OK ? 0 : -1;
}

int
allot_call(struct allot_client *client, const char *method, const ProtobufCMessage *request,
    const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
    struct allot_error *error)
{
	struct strbuf req;
	int ret;

	*response = NULL;
	memset(error, 0, sizeof(*error));
	strbuf_init(&req);
	if (!client_encode(client, request, &req)) {
		allot_error_set(error, ALLOT_INTERNAL, "could not encode the %s request",
		    request->descriptor->name);
		strbuf_cleanup(&req);
		return -1;
	}
	ret = client_post(
	    client, method, (const uint8_t *)req.data, req.len, response_desc, response, error);
	strbuf_cleanup(&req);
	return ret;
}

int
allot_call_packed(struct allot_client *client, const char *method, const uint8_t *request,
    size_t len, const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
    struct allot_error *error)
{
	*response = NULL;
	memset(error, 0, sizeof(*error));
	if (client->opts.wire != ALLOT_WIRE_PROTOBUF) {
		allot_error_set(
		    error, ALLOT_INVALID_ARGUMENT, "a packed request needs the protobuf wire");
		return -1;
	}
	return client_post(client, method, request, len, response_desc, response, error);
}
