/*
 * spool: the collector's durable queue of batches, one file per batch in a
 * directory.
 *
 * A batch (the packed IngestRequest or IngestMetricsRequest, its batch id inside)
 * is written to a temporary file, fsynced, renamed to its final name and the
 * directory fsynced before spool_put returns: once it returns 0 the batch survives
 * a crash or a power cut. A crash before the rename leaves only a temporary file,
 * which spool_open deletes: never a partial batch under a batch's name. A batch
 * leaves the spool when acknowledged (spool_ack) or refused for good
 * (spool_reject, which moves it into rejected/ beside a file with the reason).
 *
 * Batches are numbered in the order they were put; each kind (job records,
 * GPU samples) is its own queue, read in that order, so that a kind the server
 * cannot take yet never holds the other back.
 *
 * Thread-safe: one mutex guards the lists, so one thread may put while another
 * reads, acknowledges and rejects. The files themselves never change once named.
 * One process per directory: spool_open takes an exclusive lock on it.
 */
#ifndef ALLOT_COLLECT_SPOOL_H
#define ALLOT_COLLECT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum spool_kind {
	SPOOL_JOBS,    /* allot.v1.IngestRequest */
	SPOOL_METRICS, /* allot.v1.IngestMetricsRequest */
};
#define SPOOL_NKINDS 2

/* The results of spool_put besides 0 and -1. */
#define SPOOL_FULL 1

/* One spooled batch, as listed. */
struct spool_entry {
	uint64_t seq; /* order of spool_put, from 1, never reused in a directory */
	enum spool_kind kind;
	uint32_t nrecords;  /* records or samples in the batch */
	int64_t created_ms; /* wall clock, Unix milliseconds, when it was spooled */
	uint64_t bytes;     /* size of the file */
};

/* What waits in the spool: the backlog. */
struct spool_stats {
	size_t batches;
	uint64_t records;
	uint64_t bytes;
	int64_t oldest_ms; /* created_ms of the oldest batch; 0 when empty */
};

struct spool;

/*
 * Opens (creating it when missing, with rejected/ inside) the spool directory dir,
 * locks it, deletes the temporary files a crash left and lists the batches. A
 * file whose header or size is wrong is moved to rejected/ with the reason.
 * max_bytes bounds the spool's size (0: only the file system's). Returns a new
 * spool that the caller frees with spool_free, or NULL with the reason in err.
 */
struct spool *spool_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Unlocks and frees spool; NULL is a no-op. The files stay. */
void spool_free(struct spool *spool);

/* Changes the size bound (a reload). */
void spool_set_max_bytes(struct spool *spool, uint64_t max_bytes);

/*
 * Writes one batch durably (see above). Returns 0 with its number in *seq (when
 * seq is not NULL); SPOOL_FULL when the file system is full (ENOSPC, EDQUOT) or
 * the batch would take the spool past max_bytes, with nothing left behind and
 * the reason in err: the caller keeps the batch and tries again later; -1 with
 * the reason in err for any other failure. An empty spool takes a batch larger
 * than max_bytes, so that one large batch cannot block it forever.
 */
int spool_put(struct spool *spool, enum spool_kind kind, uint32_t nrecords, const uint8_t *payload,
    size_t len, uint64_t *seq, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Copies the oldest batch of kind into *entry. Returns false when there is none.
 */
bool spool_head(struct spool *spool, enum spool_kind kind, struct spool_entry *entry);

/*
 * Copies the n-th oldest batch of kind (0 is the head) into *entry; false past
 * the end. For listings and tests.
 */
bool spool_nth(struct spool *spool, enum spool_kind kind, size_t n, struct spool_entry *entry);

/*
 * Reads the payload of the batch entry names and checks it against the digest in
 * its header. Returns 0 with a new buffer in *payload (the caller frees it) and
 * its length in *len; 1 when the file is corrupt (the caller should reject it);
 * -1 with the reason in err when it could not be read.
 */
int spool_read(struct spool *spool, const struct spool_entry *entry, uint8_t **payload, size_t *len,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Removes the batch numbered seq, which must be the head of kind (the one sent).
 * Returns 0, or -1 with the reason in err (the batch stays listed, and is sent
 * again: a replay).
 */
int spool_ack(struct spool *spool, enum spool_kind kind, uint64_t seq, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Moves the batch numbered seq, the head of kind, into rejected/, with reason
 * written beside it in NAME.reason. Returns 0, or -1 with the reason in err.
 */
int spool_reject(struct spool *spool, enum spool_kind kind, uint64_t seq, const char *reason,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* The backlog of kind, or of both kinds when kind is -1. */
void spool_get_stats(struct spool *spool, int kind, struct spool_stats *stats);

/* Batches moved to rejected/ since spool_open. */
uint64_t spool_rejected(struct spool *spool);

/* The directory, as given to spool_open. */
const char *spool_dir(const struct spool *spool);

/* The name of kind in file names and metrics: "jobs" or "metrics". */
const char *spool_kind_name(enum spool_kind kind);

#endif
