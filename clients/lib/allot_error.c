/*
 * allot_error: liballot's errors: Twirp's codes under their public names, and
 * the error of an HTTP answer (a Twirp error body or an intermediary's status).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "allot_internal.h"

/* allot_code is twirp_code shifted by one, to make room for ALLOT_OK. */
_Static_assert((int)ALLOT_CANCELED == (int)TWIRP_CANCELED + 1, "allot_code follows twirp_code");
_Static_assert((int)ALLOT_DATALOSS == (int)TWIRP_DATALOSS + 1, "allot_code follows twirp_code");
_Static_assert((int)ALLOT_DATALOSS == (int)TWIRP_NCODES, "allot_code covers twirp_code");

enum allot_code
allot_code_from_twirp(enum twirp_code code)
{
	if ((unsigned)code >= TWIRP_NCODES)
		return ALLOT_UNKNOWN;
	return (enum allot_code)(code + 1);
}

const char *
allot_code_name(enum allot_code code)
{
	if (code == ALLOT_OK)
		return "ok";
	if ((unsigned)code > ALLOT_DATALOSS)
		return "unknown";
	return twirp_code_name((enum twirp_code)(code - 1));
}

void
allot_error_set(struct allot_error *error, enum allot_code code, const char *fmt, ...)
{
	va_list ap;

	error->code = code;
	snprintf(error->code_name, sizeof(error->code_name), "%s", allot_code_name(code));
	va_start(ap, fmt);
	vsnprintf(error->msg, sizeof(error->msg), fmt, ap);
	va_end(ap);
	error->http_status = 0;
	error->attempts = 0;
}

/* Twirp v7's code for an HTTP status that did not come with a Twirp error body. */
static enum allot_code
error_code_from_status(int status)
{
	if (status >= 300 && status < 400)
		return ALLOT_INTERNAL;
	switch (status) {
	case 400:
		return ALLOT_INTERNAL;
	case 401:
		return ALLOT_UNAUTHENTICATED;
	case 403:
		return ALLOT_PERMISSION_DENIED;
	case 404:
		return ALLOT_BAD_ROUTE;
	case 429:
	case 502:
	case 503:
	case 504:
		return ALLOT_UNAVAILABLE;
	default:
		return ALLOT_UNKNOWN;
	}
}

/* Decodes {"code": "...", "msg": "..."}; false when body is not such an object. */
static bool
error_from_json(struct allot_error *error, const char *body, size_t len)
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
	error->code = allot_code_from_twirp(twirp_code_from_name(json_string_value(code)));
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

	if (body != NULL && len > 0 && error_from_json(error, body, len)) {
		error->http_status = http_status;
		return;
	}
	allot_error_set(error, error_code_from_status(http_status),
	    "http status %d from an intermediary", http_status);
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
