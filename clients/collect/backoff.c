/*
 * backoff: exponential backoff with equal jitter (see backoff.h). The doubling
 * stops at max_ms, so the arithmetic never overflows however long the outage.
 */
#include "backoff.h"

void
backoff_init(struct backoff *b, uint32_t base_ms, uint32_t max_ms)
{
	b->base_ms = base_ms > 0 ? base_ms : 1;
	b->max_ms = max_ms >= b->base_ms ? max_ms : b->base_ms;
	b->failures = 0;
}

uint32_t
backoff_fail(struct backoff *b, uint32_t rnd)
{
	uint64_t ceiling = b->base_ms;
	uint32_t half;

	if (b->failures < UINT32_MAX)
		b->failures++;
	for (uint32_t i = 1; i < b->failures && ceiling < b->max_ms; i++)
		ceiling *= 2;
	if (ceiling > b->max_ms)
		ceiling = b->max_ms;
	half = (uint32_t)(ceiling / 2);
	return half + (uint32_t)(rnd % ((uint32_t)ceiling - half + 1));
}

void
backoff_reset(struct backoff *b)
{
	b->failures = 0;
}
