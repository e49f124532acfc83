/*
 * render: responses as text for a person (tables, "field: value" lines) or as
 * proto3 JSON, for any message type.
 */
#ifndef ALLOT_CLI_RENDER_H
#define ALLOT_CLI_RENDER_H

#include <stdbool.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "allot/v1/ledger.pb-c.h"
#include "allot/v1/usage.pb-c.h"
#include "strbuf.h"

/*
 * Prints msg for a person. A message whose only field is a repeated message
 * (a List response) prints as a table: a header of the element's field names,
 * then one aligned row per element, with its scalar fields (repeated scalars
 * joined by ","). Any other message prints "field: value" lines, nested
 * messages as "outer.inner: value". Returns false when out of memory.
 */
bool render_message(FILE *out, const ProtobufCMessage *msg) __attribute__((warn_unused_result));

/* Prints msg's proto3 JSON and a newline; false when it could not be encoded. */
bool render_json(FILE *out, const ProtobufCMessage *msg) __attribute__((warn_unused_result));

/*
 * Prints a balance: one row per allocation (id, scope, window, granted,
 * charged, pending, available in GPU-hours, then a row in the site's native
 * unit when there is one), then the project's total.
 */
bool render_balance(FILE *out, const Allot__V1__GetBalanceResponse *resp)
    __attribute__((warn_unused_result));

/*
 * Prints a project's jobs, newest first as the server listed them: as an aligned
 * table for a person (elapsed as h:mm:ss, GPU-hours and the site's own units to
 * two decimals, "-" where a job has no metrics), or as CSV (RFC 4180, a header
 * line, elapsed in seconds, empty fields where a job has no metrics).
 */
bool render_jobs(FILE *out, const Allot__V1__ListJobsResponse *resp, bool csv)
    __attribute__((warn_unused_result));

/*
 * Formats the value of field fd in msg (repeated values joined by ","; a
 * nested message as its JSON) into out, for tables and tests.
 */
void render_field(
    const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd, struct strbuf *out);

#endif
