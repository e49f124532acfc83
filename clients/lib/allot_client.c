/*
 * allot_client: Twirp calls to allotd over libcurl.
 *
 * Encodes a request (protobuf or proto3 JSON through pbjson), POSTs it to
 * /twirp/<service>/<method> on one reused easy handle (keep-alive, TLS 1.2 or
 * newer, peer and host verified against the configured CA, client certificate)
 * and decodes the answer or Twirp's error body. It leaves retries, output and
 * the choice of what to call to its callers.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "allot_client.h"
#include "pbjson.h"
#include "strbuf.h"

/* A bound on what a server may make us buffer; larger answers are refused. */
#define ALLOT_CLIENT_MAX_RESPONSE (256u * 1024 * 1024)

struct allot_client {
	CURL *curl;
	char *base_url; /* server URL without trailing slashes */
	enum allot_wire wire;
	struct curl_slist *headers;
	struct strbuf body; /* the response being received */
	bool body_too_large;
	char curl_err[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void
client_init_curl(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void
allot_error_set(struct allot_error *error, enum twirp_code code, const char *fmt, ...)
{
	va_list ap;

	error->code = code;
	snprintf(error->code_name, sizeof(error->code_name), "%s", twirp_code_name(code));
	va_start(ap, fmt);
	vsnprintf(error->msg, sizeof(error->msg), fmt, ap);
	va_end(ap);
	error->http_status = 0;
}

/* Twirp v7's code for an HTTP status that did not come with a Twirp error body. */
static enum twirp_code
client_code_from_status(int status)
{
	if (status >= 300 && status < 400)
		return TWIRP_INTERNAL;
	switch (status) {
	case 400:
		return TWIRP_INTERNAL;
	case 401:
		return TWIRP_UNAUTHENTICATED;
	case 403:
		return TWIRP_PERMISSION_DENIED;
	case 404:
		return TWIRP_BAD_ROUTE;
	case 429:
	case 502:
	case 503:
	case 504:
		return TWIRP_UNAVAILABLE;
	default:
		return TWIRP_UNKNOWN;
	}
}

/* Decodes {"code": "...", "msg": "..."}; false when body is not such an object. */
static bool
client_error_from_json(struct allot_error *error, const char *body, size_t len)
{
	json_t *root, *code, *msg;

	root = json_loadb(body, len, 0, NULL);
	if (root == NULL)
		return false;
	code = json_object_get(root, "code");
	if (!json_is_object(root) || !json_is_string(code) || json_string_length(code) == 0) {
		json_decref(root);
		return false;
	}
	msg = json_object_get(root, "msg");
	error->code = twirp_code_from_name(json_string_value(code));
	/* An unknown name is kept as sent: it tells more than "unknown". */
	snprintf(error->code_name, sizeof(error->code_name), "%s", json_string_value(code));
	snprintf(error->msg, sizeof(error->msg), "%s",
	    json_is_string(msg) ? json_string_value(msg) : "");
	json_decref(root);
	return true;
}

void
allot_error_from_http(struct allot_error *error, int http_status, const char *body, size_t len)
{
	size_t n, i, start, end;
	enum twirp_code code;

	if (body != NULL && len > 0 && client_error_from_json(error, body, len)) {
		error->http_status = http_status;
		return;
	}
	code = client_code_from_status(http_status);
	allot_error_set(error, code, "http status %d from an intermediary", http_status);
	error->http_status = http_status;
	if (body == NULL)
		return;

	/* Keep the body text, on one line, trimmed, as much as fits. */
	start = 0;
	end = len;
	while (start < end && isspace((unsigned char)body[start]))
		start++;
	while (end > start && isspace((unsigned char)body[end - 1]))
		end--;
	if (start == end)
		return;
	n = strlen(error->msg);
	if (n + 2 >= sizeof(error->msg))
		return;
	error->msg[n++] = ':';
	error->msg[n++] = ' ';
	for (i = start; i < end && n + 1 < sizeof(error->msg); i++) {
		unsigned char c = (unsigned char)body[i];

		error->msg[n++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	error->msg[n] = '\0';
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

static char *
client_strdup(const char *s)
{
	return s == NULL ? NULL : strdup(s);
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

/* Sets the options that hold for every call; false with the reason in err. */
static bool
client_setup_handle(
    struct allot_client *client, const struct allot_client_options *opts, char *err, size_t errlen)
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
	if (opts->timeout_ms > 0) {
		SETOPT(CURLOPT_TIMEOUT_MS, opts->timeout_ms);
		SETOPT(CURLOPT_CONNECTTIMEOUT_MS, opts->timeout_ms);
	}
	SETOPT(CURLOPT_USERAGENT,
	    "allot-client/"
	    "0.1");
	SETOPT(CURLOPT_POST, 1L);
	SETOPT(CURLOPT_WRITEFUNCTION, client_write_cb);
	SETOPT(CURLOPT_WRITEDATA, client);
#undef SETOPT
	if (rc != CURLE_OK) {
		snprintf(
		    err, errlen, "could not set up the HTTP client: %s", curl_easy_strerror(rc));
		return false;
	}

	ctype = client->wire == ALLOT_WIRE_JSON ? "application/json" : "application/protobuf";
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
		snprintf(err, errlen, "could not set up the HTTP client headers");
		return false;
	}
	return true;

nomem:
	snprintf(err, errlen, "out of memory");
	return false;
}

struct allot_client *
allot_client_new(const struct allot_client_options *opts, char *err, size_t errlen)
{
	struct allot_client *client = NULL;
	size_t n;

	if (opts->server_url == NULL || opts->server_url[0] == '\0') {
		snprintf(err, errlen, "no server URL given");
		return NULL;
	}
	if (strncasecmp(opts->server_url, "https://", 8) != 0 &&
	    strncasecmp(opts->server_url, "http://", 7) != 0) {
		snprintf(
		    err, errlen, "server URL \"%s\" is not http:// or https://", opts->server_url);
		return NULL;
	}
	if (opts->wire != ALLOT_WIRE_PROTOBUF && opts->wire != ALLOT_WIRE_JSON) {
		snprintf(err, errlen, "invalid wire format %d", (int)opts->wire);
		return NULL;
	}
	pthread_once(&curl_once, client_init_curl);
	if (curl_init_result != CURLE_OK) {
		snprintf(err, errlen, "could not initialise libcurl: %s",
		    curl_easy_strerror(curl_init_result));
		return NULL;
	}

	client = calloc(1, sizeof(*client));
	if (client == NULL)
		goto nomem;
	strbuf_init(&client->body);
	client->wire = opts->wire;
	client->base_url = client_strdup(opts->server_url);
	if (client->base_url == NULL)
		goto nomem;
	n = strlen(client->base_url);
	while (n > 0 && client->base_url[n - 1] == '/')
		client->base_url[--n] = '\0';
	client->curl = curl_easy_init();
	if (client->curl == NULL) {
		snprintf(err, errlen, "could not create an HTTP handle");
		goto fail;
	}
	if (!client_setup_handle(client, opts, err, errlen))
		goto fail;
	return client;

nomem:
	snprintf(err, errlen, "out of memory");
fail:
	allot_client_free(client);
	return NULL;
}

void
allot_client_free(struct allot_client *client)
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

	if (client->wire == ALLOT_WIRE_JSON)
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

/* Maps a libcurl failure to a Twirp error. */
static void
client_error_from_curl(struct allot_client *client, CURLcode rc, struct allot_error *error)
{
	const char *detail =
	    client->curl_err[0] != '\0' ? client->curl_err : curl_easy_strerror(rc);

	if (rc == CURLE_WRITE_ERROR && client->body_too_large) {
		allot_error_set(error, TWIRP_INTERNAL, "response larger than %u bytes",
		    ALLOT_CLIENT_MAX_RESPONSE);
		return;
	}
	if (rc == CURLE_WRITE_ERROR) {
		allot_error_set(error, TWIRP_INTERNAL, "out of memory while reading the response");
		return;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		allot_error_set(error, TWIRP_DEADLINE_EXCEEDED, "%s", detail);
		return;
	}
	allot_error_set(error, TWIRP_UNAVAILABLE, "%s", detail);
}

/*
 * Posts body[0..len) to service_method and decodes the answer: what
 * allot_client_call and allot_client_call_packed share.
 */
static int
client_post(struct allot_client *client, const char *service_method, const uint8_t *body,
    size_t len, const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
    struct allot_error *error)
{
	struct strbuf url;
	ProtobufCMessage *msg = NULL;
	char err[256];
	long status = 0;
	CURLcode rc;
	int ret = -1;

	strbuf_init(&url);
	strbuf_printf(&url, "%s/twirp/%s", client->base_url, service_method);
	if (strbuf_failed(&url)) {
		allot_error_set(error, TWIRP_INTERNAL, "out of memory");
		goto done;
	}

	strbuf_reset(&client->body);
	client->body_too_large = false;
	client->curl_err[0] = '\0';
	if (curl_easy_setopt(client->curl, CURLOPT_URL, url.data) != CURLE_OK ||
	    curl_easy_setopt(client->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) !=
	        CURLE_OK ||
	    curl_easy_setopt(client->curl, CURLOPT_POSTFIELDS, len > 0 ? (const char *)body : "") !=
	        CURLE_OK) {
		allot_error_set(
		    error, TWIRP_INTERNAL, "could not set up the request to %s", url.data);
		goto done;
	}
	rc = curl_easy_perform(client->curl);
	if (rc != CURLE_OK) {
		client_error_from_curl(client, rc, error);
		goto done;
	}
	curl_easy_getinfo(client->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		allot_error_from_http(error, (int)status, client->body.data, client->body.len);
		goto done;
	}

	if (client->wire == ALLOT_WIRE_JSON) {
		msg =
		    pbjson_decode(response_desc, client->body.data != NULL ? client->body.data : "",
		        client->body.len, err, sizeof(err));
		if (msg == NULL) {
			allot_error_set(error, TWIRP_INTERNAL,
			    "could not decode the %s response: %s", response_desc->name, err);
			error->http_status = 200;
			goto done;
		}
	} else {
		msg = protobuf_c_message_unpack(response_desc, NULL, client->body.len,
		    client->body.data != NULL ? (const uint8_t *)client->body.data
		                              : (const uint8_t *)"");
		if (msg == NULL) {
			allot_error_set(error, TWIRP_INTERNAL, "could not decode the %s response",
			    response_desc->name);
			error->http_status = 200;
			goto done;
		}
	}
	*response = msg;
	ret = 0;

done:
	/* Do not keep a large answer alive between calls. */
	if (client->body.cap > 65536) {
		strbuf_cleanup(&client->body);
		strbuf_init(&client->body);
	} else
		strbuf_reset(&client->body);
	curl_easy_setopt(client->curl, CURLOPT_POSTFIELDS, "");
	strbuf_cleanup(&url);
	return ret;
}

int
allot_client_call(struct allot_client *client, const char *service_method,
    const ProtobufCMessage *request, const ProtobufCMessageDescriptor *response_desc,
    ProtobufCMessage **response, struct allot_error *error)
{
	struct strbuf req;
	int ret;

	*response = NULL;
	memset(error, 0, sizeof(*error));
	strbuf_init(&req);
	if (!client_encode(client, request, &req)) {
		allot_error_set(error, TWIRP_INTERNAL, "could not encode the %s request",
		    request->descriptor->name);
		strbuf_cleanup(&req);
		return -1;
	}
	ret = client_post(client, service_method, (const uint8_t *)req.data, req.len, response_desc,
	    response, error);
	strbuf_cleanup(&req);
	return ret;
}

int
allot_client_call_packed(struct allot_client *client, const char *service_method,
    const uint8_t *request, size_t len, const ProtobufCMessageDescriptor *response_desc,
    ProtobufCMessage **response, struct allot_error *error)
{
	*response = NULL;
	memset(error, 0, sizeof(*error));
	if (client->wire != ALLOT_WIRE_PROTOBUF) {
		allot_error_set(error, TWIRP_INTERNAL, "a packed request needs the protobuf wire");
		return -1;
	}
	return client_post(client, service_method, request, len, response_desc, response, error);
}
