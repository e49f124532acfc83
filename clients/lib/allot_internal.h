/*
 * allot_internal: what liballot's modules share and the unit tests reach, but
 * the installed library does not export (liballot.map lists what it does).
 */
#ifndef ALLOT_INTERNAL_H
#define ALLOT_INTERNAL_H

#include <stdint.h>

#include "allot.h"
#include "twirp_codes.h"

/* The public code of a Twirp code. */
enum allot_code allot_code_from_twirp(enum twirp_code code);

/* Fills error with code, its name and a printf-formatted message; attempts 0. */
void allot_error_set(struct allot_error *error, enum allot_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Fills error from a non-200 HTTP answer: Twirp's JSON error body
 * {"code","msg","meta"} when the body is one, otherwise the code Twirp derives
 * from an intermediary's status (400 internal, 401 unauthenticated, 403
 * permission_denied, 404 bad_route, 429, 502, 503 and 504 unavailable, any
 * other unknown) with the status and the body's text in msg.
 */
void allot_error_from_http(
    struct allot_error *error, int http_status, const char *body, size_t len);

/*
 * Checks opts: 0, or -1 with invalid_argument in error. Negative times or
 * attempts, a missing or non-http(s) URL and an unknown wire are refused.
 */
int allot_options_check(const struct allot_options *opts, struct allot_error *error)
    __attribute__((warn_unused_result));

/*
 * The wait in ms before retry number retry (1 for the first): the ceiling
 * min(backoff_max_ms, backoff_initial_ms * 2^(retry-1)), and the wait drawn
 * from [ceiling / 2, ceiling] by rnd ("equal jitter"). Pure. A backoff_max_ms
 * below backoff_initial_ms counts as backoff_initial_ms.
 */
long allot_backoff_ms(const struct allot_options *opts, int retry, uint32_t rnd);

#endif
