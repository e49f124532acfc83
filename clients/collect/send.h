/*
 * send: empties the spool into allotd, oldest batch first in each kind.
 *
 * Each batch is sent as it lies in the spool (same batch id, same records) with
 * Usage.Ingest or Usage.IngestMetrics, and leaves the spool only on an answer:
 * - 200 (a replay is a 200 too): acknowledged, the file deleted;
 * - a permanent refusal (invalid_argument, malformed, already_exists,
 *   out_of_range, or HTTP 413: a body over allotd's limit), or a file that fails
 *   its digest: moved to rejected/ with the
 *   reason, logged as an error and counted, so it cannot block the spool;
 * - anything else (unreachable, unavailable, deadline, internal, permissions,
 *   an unknown route while allotd lacks the call): kept, and that kind waits
 *   with exponential backoff and jitter (backoff.h) before the next attempt.
 *
 * A sender runs either on its own thread (sender_start: the daemon, whose loop
 * must never wait on allotd) or in the caller's thread (sender_drain: the
 * one-shot commands). The allot_client it owns is used by that one thread only.
 */
#ifndef ALLOT_COLLECT_SEND_H
#define ALLOT_COLLECT_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allot.h"
#include "spool.h"

struct sender_settings {
	uint32_t backoff_base_ms, backoff_max_ms;
};

/* What the sender did, for the log and /metrics. Counters since sender_new. */
struct sender_stats {
	uint64_t batches_acked[SPOOL_NKINDS];
	uint64_t records_acked[SPOOL_NKINDS];   /* records or samples in acknowledged batches */
	uint64_t records_refused[SPOOL_NKINDS]; /* acknowledged, but refused one by one by allotd */
	uint64_t batches_rejected[SPOOL_NKINDS]; /* moved to rejected/ */
	uint64_t attempts_failed[SPOOL_NKINDS];
	uint32_t failures_in_a_row[SPOOL_NKINDS];
	int64_t last_ack_ms; /* wall clock of the last acknowledgement; 0 before */
	bool in_flight;
	char last_error[1200]; /* the latest failure, empty when the last call succeeded */
};

struct sender;

/*
 * Returns a new sender of spool's batches to the server opts names (copied), or
 * NULL with the reason in err. spool stays the caller's and must outlive it.
 */
struct sender *sender_new(struct spool *spool, const struct allot_options *opts,
    const struct sender_settings *settings, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Stops (see sender_stop) and frees s; NULL is a no-op. */
void sender_free(struct sender *s);

/* Starts the sending thread. Returns 0, or -1 with the reason in err. */
int sender_start(struct sender *s, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Tells the thread that a batch was spooled: it sends now unless backing off. */
void sender_wake(struct sender *s);

/*
 * Asks the thread to stop once the batch in flight (if any) has its answer, and
 * waits for it. Safe to call when not started or already stopped.
 */
void sender_stop(struct sender *s);

/*
 * In the caller's thread: sends until the spool is empty (returns 0) or until
 * wall-clock deadline_ms (Unix ms; 0 for none) passes first (returns 1, batches
 * left in the spool). Backs off between failed attempts as the thread does.
 */
int sender_drain(struct sender *s, int64_t deadline_ms);

/* Copies the counters. */
void sender_get_stats(struct sender *s, struct sender_stats *stats);

/* Applies new backoff bounds (a reload). */
void sender_set_settings(struct sender *s, const struct sender_settings *settings);

/* Whether a Twirp code refuses a batch for good (see above). */
bool send_code_is_permanent(enum allot_code code);

#endif
