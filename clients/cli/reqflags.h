/*
 * reqflags: a request message from command-line flags, for any message type.
 *
 * Flags name fields in kebab-case (--gpus-per-node for gpus_per_node); values
 * are checked against the field's type and gathered into the message's proto3
 * JSON text, which the caller decodes with pbjson_decode: one path for flags
 * and for --json.
 */
#ifndef ALLOT_CLI_REQFLAGS_H
#define ALLOT_CLI_REQFLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "strbuf.h"

struct reqflags;

/* Returns a new, empty set of flags for messages of type desc, NULL when out of memory. */
struct reqflags *reqflags_new(const ProtobufCMessageDescriptor *desc)
    __attribute__((warn_unused_result));
void reqflags_free(struct reqflags *rf);

/*
 * Sets the field that flag names ("gpus-per-node", without the dashes) from
 * value; a repeated field takes one more element each time. Returns 0, or -1
 * with the reason in err, naming the flag: unknown flag, no value (NULL), a
 * value that does not parse or is out of range, a scalar flag given twice.
 */
int reqflags_set(struct reqflags *rf, const char *flag, const char *value, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* True when no flag was set. */
bool reqflags_empty(const struct reqflags *rf);

/* Appends the proto3 JSON object of the fields set so far to out. */
void reqflags_to_json(const struct reqflags *rf, struct strbuf *out);

/* Prints one line per field of desc: its flag and the values it takes. */
void reqflags_print_fields(FILE *out, const ProtobufCMessageDescriptor *desc);

/* Writes name with '_' turned into '-' ("gpus_per_node" -> "gpus-per-node"). */
void reqflags_kebab(const char *name, char *out, size_t outlen);

/*
 * Finds an enum value by its full name ("BILLING_RULE_GPU_SHARE") or by the
 * name without the enum's prefix, in any case and with '-' for '_'
 * ("gpu_share", "gpu-share"). Returns NULL when none matches.
 */
const ProtobufCEnumValue *reqflags_enum_lookup(const ProtobufCEnumDescriptor *ed, const char *name);

/*
 * Writes the short lower-case name of v ("gpu_share" for
 * BILLING_RULE_GPU_SHARE), or its full name when it lacks the enum's prefix.
 */
void reqflags_enum_short(
    const ProtobufCEnumDescriptor *ed, const ProtobufCEnumValue *v, char *out, size_t outlen);

#endif
