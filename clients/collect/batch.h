/*
 * batch: cuts what the sources read into batches and hands them to the spool.
 *
 * Records and samples are gathered per kind; every batch_records of them, or
 * batch_bytes of them packed, whichever comes first (or on batcher_flush), they
 * are packed into one IngestRequest or IngestMetricsRequest
 * whose batch id is derived from the site and the content (jobrecords.h: the same
 * records always make the same id, so reading them again is a replay), then
 * spooled. A batch the spool cannot take (SPOOL_FULL) is held in memory, in
 * order, and spooled first next time: nothing is dropped. While batches are
 * held, batcher_full says so and the caller stops reading.
 */
#ifndef ALLOT_COLLECT_BATCH_H
#define ALLOT_COLLECT_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allot/v1/usage.pb-c.h"

#include "spool.h"

struct batcher;

/*
 * A new batcher of site's records into spool (which stays the caller's), cutting
 * batches of at most batch_records messages and about batch_bytes packed (0: no
 * bound; a single larger message makes a batch of its own); NULL when out of
 * memory.
 */
struct batcher *batcher_new(
    struct spool *spool, const char *site, size_t batch_records, size_t batch_bytes);

/* Frees b with what it holds (the caller flushes first; batcher_held says how much). */
void batcher_free(struct batcher *b);

void batcher_set_size(struct batcher *b, size_t batch_records, size_t batch_bytes);

/*
 * Sends only the job records of these partitions (comma-separated; NULL or "":
 * all), their steps with them: see batcher_add_job. Returns 0, -1 out of memory
 * (b unchanged).
 */
int batcher_set_partitions(struct batcher *b, const char *list) __attribute__((warn_unused_result));

/*
 * Calls fn(arg) after each batch is spooled (a sending thread's wake-up, so that
 * the first batch goes out while the next are still written); NULL: none.
 */
void batcher_on_spooled(struct batcher *b, void (*fn)(void *arg), void *arg);

/* Job records and steps left out by batcher_set_partitions' list since batcher_new. */
uint64_t batcher_skipped(const struct batcher *b);

/*
 * Takes ownership of rec (freed whatever happens). A job record whose partition
 * is not in the partitions list is dropped (counted in batcher_skipped), and so
 * is a step that follows it: the step of the job record just before, or else
 * one whose own partition is not listed (a step without a partition is kept).
 * Returns 0; 1 (SPOOL_FULL) when
 * a batch is held because the spool is full; -1 with err on another failure.
 */
int batcher_add_job(struct batcher *b, Allot__V1__JobRecord *rec, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int batcher_add_sample(struct batcher *b, Allot__V1__GpuSample *s, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Packs what is gathered into batches and spools every held batch in order.
 * Returns 0 when nothing is held any more, SPOOL_FULL (err says why) when
 * something still is, -1 with err on another failure.
 */
int batcher_flush(struct batcher *b, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Whether batches wait in memory for room in the spool. */
bool batcher_full(const struct batcher *b);

/* Records and samples gathered but not yet spooled (held or not yet packed). */
uint64_t batcher_pending(const struct batcher *b);

/* Whether records are gathered but not packed yet (a flush timer is due). */
bool batcher_has_partial(const struct batcher *b);

/* Records (kind 0) and samples (kind 1) spooled since batcher_new. */
uint64_t batcher_spooled(const struct batcher *b, enum spool_kind kind);

/*
 * Reads JSON lines from buf[0..len): each line one allot.v1.JobRecord or
 * allot.v1.GpuSample in proto3 JSON (what `allot-collect parse` prints); blank
 * lines and '#' lines are skipped. first_line numbers the first line, for
 * messages. Every message decoded goes to b; returns 0, SPOOL_FULL as
 * batcher_add_job, -1 with "line N: reason" in err at the first line that
 * does not decode (the lines before it are kept).
 */
int batch_read_jsonl(struct batcher *b, const char *buf, size_t len, size_t first_line, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/*
 * The batch id of samples: jobrecords_batch_id_of the IngestMetricsRequest
 * {site, samples}, as jobrecords_batch_id is for job records. Returns 0 or -1.
 */
int batch_metrics_id(const char *site, Allot__V1__GpuSample **samples, size_t n, char *out,
    size_t outlen) __attribute__((warn_unused_result));

#endif
