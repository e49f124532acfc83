/*
 * backoff: the wait before the next attempt to reach a server that failed,
 * exponential with jitter and bounded.
 *
 * After the n-th failure in a row (n from 1) the ceiling is
 * min(max_ms, base_ms * 2^(n-1)) and the wait is drawn uniformly from
 * [ceiling / 2, ceiling] ("equal jitter"): never less than half the ceiling, so
 * that a fleet of collectors spreads out without any of them hammering, and never
 * more than max_ms. A success resets the count. Pure: the caller brings the
 * random numbers.
 */
#ifndef ALLOT_COLLECT_BACKOFF_H
#define ALLOT_COLLECT_BACKOFF_H

#include <stdint.h>

struct backoff {
	uint32_t base_ms, max_ms;
	uint32_t failures; /* in a row */
};

/* Sets b up; base_ms at least 1, max_ms at least base_ms (raised if less). */
void backoff_init(struct backoff *b, uint32_t base_ms, uint32_t max_ms);

/* Counts one more failure and returns the wait in ms, given a random number rnd. */
uint32_t backoff_fail(struct backoff *b, uint32_t rnd);

/* A success: the next failure starts from base_ms again. */
void backoff_reset(struct backoff *b);

#endif
