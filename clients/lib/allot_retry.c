/*
 * allot_retry: the options' defaults and checks, and the backoff schedule.
 * Pure: no I/O, no clock, no randomness of its own.
 */
#include <string.h>
#include <strings.h>

#include "allot_internal.h"

void
allot_options_init(struct allot_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->wire = ALLOT_WIRE_PROTOBUF;
	opts->connect_timeout_ms = 10000;
	opts->timeout_ms = 30000;
	opts->max_attempts = 1;
	opts->backoff_initial_ms = 100;
	opts->backoff_max_ms = 5000;
	opts->deadline_ms = 60000;
}

int
allot_options_check(const struct allot_options *opts, struct allot_error *error)
{
	const char *url = opts->server_url;

	if (url == NULL || url[0] == '\0') {
		allot_error_set(error, ALLOT_INVALID_ARGUMENT, "no server URL given");
		return -1;
	}
	if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0) {
		allot_error_set(error, ALLOT_INVALID_ARGUMENT,
		    "server URL \"%s\" is not http:// or https://", url);
		return -1;
	}
	if (opts->wire != ALLOT_WIRE_PROTOBUF && opts->wire != ALLOT_WIRE_JSON) {
		allot_error_set(
		    error, ALLOT_INVALID_ARGUMENT, "invalid wire format %d", (int)opts->wire);
		return -1;
	}
	if (opts->connect_timeout_ms < 0 || opts->timeout_ms < 0 || opts->deadline_ms < 0 ||
	    opts->backoff_initial_ms < 0 || opts->backoff_max_ms < 0 || opts->max_attempts < 0) {
		allot_error_set(error, ALLOT_INVALID_ARGUMENT,
		    "timeouts, deadline, backoff and attempts must not be negative");
		return -1;
	}
	return 0;
}

long
allot_backoff_ms(const struct allot_options *opts, int retry, uint32_t rnd)
{
	long ceiling = opts->backoff_initial_ms;
	long top = opts->backoff_max_ms > ceiling ? opts->backoff_max_ms : ceiling;
	long low;

	/* Double up to the top; stopping there also keeps the product from overflowing. */
	for (int i = 1; i < retry && ceiling < top; i++)
		ceiling = ceiling > top / 2 ? top : ceiling * 2;
	if (ceiling > top)
		ceiling = top;
	low = ceiling / 2;
	return low + (long)((uint64_t)rnd % (uint64_t)(ceiling - low + 1));
}
