/*
 * jobrecords: job records read from JSON lines, and the batch ids derived from
 * their content, so that sending a file again replays the same batches.
 */
#ifndef ALLOT_CLI_JOBRECORDS_H
#define ALLOT_CLI_JOBRECORDS_H

#include <stddef.h>
#include <stdio.h>

#include "allot/v1/usage.pb-c.h"

/* The length of a derived batch id, at most. */
#define JOBRECORDS_BATCH_ID_LEN 48

/* The records of one input, with the line each came from. */
struct jobrecords {
	Allot__V1__JobRecord **records;
	size_t *lines; /* 1-based line numbers, parallel to records */
	size_t n, cap;
};

void jobrecords_init(struct jobrecords *recs);
/* Frees the records; recs may be used again after jobrecords_init. */
void jobrecords_cleanup(struct jobrecords *recs);

/*
 * Reads JSON lines from in, one allot.v1.JobRecord in proto3 JSON per line;
 * blank lines and lines whose first non-blank character is '#' are skipped.
 * Returns 0 with the records appended to recs; -1 with err saying which line
 * failed to decode and why ("line 3: ..."); -2 with err when reading failed or
 * memory ran out.
 */
int jobrecords_read(FILE *in, struct jobrecords *recs, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Writes the default batch id of the n records: site, "-", and the hex SHA-256
 * of the packed IngestRequest {site, records} (batch id empty), cut to 48
* characters in all (out needs JOBRECORDS_BATCH_ID_LEN + 1 bytes). Returns 0, or -1 when out of memory or hashing failed.
 */
int jobrecords_batch_id(const char *site, Allot__V1__JobRecord **records, size_t n, char *out,
    size_t outlen) __attribute__((warn_unused_result));

/*
 * The same id for any request message req whose batch id is empty (an
 * IngestMetricsRequest of GPU samples, say): site, "-", the hex SHA-256 of req
 * packed, cut to JOBRECORDS_BATCH_ID_LEN. Returns 0 or -1.
 */
int jobrecords_batch_id_of(const char *site, const ProtobufCMessage *req, char *out, size_t outlen)
    __attribute__((warn_unused_result));

#endif
