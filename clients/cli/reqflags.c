/*
 * reqflags: turns --field value flags into a request message's proto3 JSON.
 *
 * Each value is parsed per the field's protobuf-c type (integers with range
 * checks, enums by name, bools as true/false) and written as a JSON value; the
 * object is decoded by pbjson later, so message construction has one path.
 * Printing of messages and the command line itself are left to the callers.
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reqflags.h"

struct reqflags {
	const ProtobufCMessageDescriptor *desc;
	struct strbuf *values; /* per field: its JSON values, comma-separated */
	unsigned *counts;      /* per field: how many values */
};

struct reqflags *
reqflags_new(const ProtobufCMessageDescriptor *desc)
{
	struct reqflags *rf;
	size_t n = desc->n_fields > 0 ? desc->n_fields : 1;

	rf = calloc(1, sizeof(*rf));
	if (rf == NULL)
		return NULL;
	rf->desc = desc;
	rf->values = calloc(n, sizeof(*rf->values));
	rf->counts = calloc(n, sizeof(*rf->counts));
	if (rf->values == NULL || rf->counts == NULL) {
		free(rf->values);
		free(rf->counts);
		free(rf);
		return NULL;
	}
	for (unsigned i = 0; i < desc->n_fields; i++)
		strbuf_init(&rf->values[i]);
	return rf;
}

void
reqflags_free(struct reqflags *rf)
{
	if (rf == NULL)
		return;
	for (unsigned i = 0; i < rf->desc->n_fields; i++)
		strbuf_cleanup(&rf->values[i]);
	free(rf->values);
	free(rf->counts);
	free(rf);
}

bool
reqflags_empty(const struct reqflags *rf)
{
	for (unsigned i = 0; i < rf->desc->n_fields; i++)
		if (rf->counts[i] > 0)
			return false;
	return true;
}

void
reqflags_kebab(const char *name, char *out, size_t outlen)
{
	size_t i;

	if (outlen == 0)
		return;
	for (i = 0; name[i] != '\0' && i + 1 < outlen; i++)
		out[i] = name[i] == '_' ? '-' : name[i];
	out[i] = '\0';
}

/* Appends s as a JSON string literal. */
static void
reqflags_put_json_string(struct strbuf *sb, const char *s)
{
	strbuf_putc(sb, '"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '"':
			strbuf_puts(sb, "\\\"");
			break;
		case '\\':
			strbuf_puts(sb, "\\\\");
			break;
		case '\n':
			strbuf_puts(sb, "\\n");
			break;
		case '\r':
			strbuf_puts(sb, "\\r");
			break;
		case '\t':
			strbuf_puts(sb, "\\t");
			break;
		default:
			if (c < 0x20)
				strbuf_printf(sb, "\\u%04x", c);
			else
				strbuf_putc(sb, (char)c);
		}
	}
	strbuf_putc(sb, '"');
}

/* "BillingRule" -> "BILLING_RULE_": the prefix protobuf's style gives enum values. */
static void
reqflags_enum_prefix(const ProtobufCEnumDescriptor *ed, char *out, size_t outlen)
{
	const char *s = ed->short_name;
	size_t n = 0;

	for (size_t i = 0; s[i] != '\0' && n + 3 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i > 0 && isupper(c) &&
		    (islower((unsigned char)s[i - 1]) || isdigit((unsigned char)s[i - 1]) ||
		        (isupper((unsigned char)s[i - 1]) && islower((unsigned char)s[i + 1]))))
			out[n++] = '_';
		out[n++] = (char)toupper(c);
	}
	out[n++] = '_';
	out[n] = '\0';
}

/* Compares a and b ignoring case and taking '-' for '_'. */
static bool
reqflags_name_eq(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++) {
		int ca = *a == '-' ? '_' : tolower((unsigned char)*a);
		int cb = *b == '-' ? '_' : tolower((unsigned char)*b);

		if (ca != cb)
			return false;
	}
	return *a == *b;
}

const ProtobufCEnumValue *
reqflags_enum_lookup(const ProtobufCEnumDescriptor *ed, const char *name)
{
	char prefix[128];
	size_t plen;

	if (name[0] == '\0')
		return NULL;
	for (unsigned i = 0; i < ed->n_values; i++)
		if (strcmp(ed->values[i].name, name) == 0)
			return &ed->values[i];
	reqflags_enum_prefix(ed, prefix, sizeof(prefix));
	plen = strlen(prefix);
	for (unsigned i = 0; i < ed->n_values; i++) {
		const char *full = ed->values[i].name;

		if (reqflags_name_eq(full, name))
			return &ed->values[i];
		if (strncmp(full, prefix, plen) == 0 && reqflags_name_eq(full + plen, name))
			return &ed->values[i];
	}
	return NULL;
}

void
reqflags_enum_short(
    const ProtobufCEnumDescriptor *ed, const ProtobufCEnumValue *v, char *out, size_t outlen)
{
	char prefix[128];
	size_t plen, i;
	const char *s = v->name;

	if (outlen == 0)
		return;
	reqflags_enum_prefix(ed, prefix, sizeof(prefix));
	plen = strlen(prefix);
	if (strncmp(s, prefix, plen) == 0 && s[plen] != '\0') {
		s += plen;
		for (i = 0; s[i] != '\0' && i + 1 < outlen; i++)
			out[i] = (char)tolower((unsigned char)s[i]);
		out[i] = '\0';
		return;
	}
	snprintf(out, outlen, "%s", s);
}

/* The enum's short names joined by ", ", for messages and help. */
static void
reqflags_enum_choices(const ProtobufCEnumDescriptor *ed, const char *sep, struct strbuf *out)
{
	char name[128];

	for (unsigned i = 0; i < ed->n_values; i++) {
		reqflags_enum_short(ed, &ed->values[i], name, sizeof(name));
		if (i > 0)
			strbuf_puts(out, sep);
		strbuf_puts(out, name);
	}
}

static const char *
reqflags_type_name(const ProtobufCFieldDescriptor *fd)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return "int32";
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return "int64";
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return "uint32";
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return "uint64";
	case PROTOBUF_C_TYPE_FLOAT:
		return "float";
	case PROTOBUF_C_TYPE_DOUBLE:
		return "double";
	case PROTOBUF_C_TYPE_BOOL:
		return "bool";
	case PROTOBUF_C_TYPE_ENUM:
		return "enum";
	case PROTOBUF_C_TYPE_STRING:
		return "string";
	case PROTOBUF_C_TYPE_BYTES:
		return "bytes";
	case PROTOBUF_C_TYPE_MESSAGE:
		return "message";
	}
	return "?";
}

/* Parses a whole decimal signed integer within [min, max]; false otherwise. */
static bool
reqflags_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, bool *range)
{
	char *end;
	long long v;

	*range = false;
	if (s[0] == '\0' || isspace((unsigned char)s[0]))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0')
		return false;
	if (errno == ERANGE || v < min || v > max) {
		*range = true;
		return false;
	}
	*out = v;
	return true;
}

static bool
reqflags_parse_uint(const char *s, uint64_t max, uint64_t *out, bool *range)
{
	char *end;
	unsigned long long v;

	*range = false;
	if (s[0] == '\0' || isspace((unsigned char)s[0]))
		return false;
	if (s[0] == '-') {
		/* strtoull would wrap a negative number around. */
		*range = isdigit((unsigned char)s[1]) != 0;
		return false;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return false;
	if (errno == ERANGE || v > max) {
		*range = true;
		return false;
	}
	*out = v;
	return true;
}

/* Appends value as the JSON value of one element of fd; -1 with err when it does not parse. */
static int
reqflags_put_value(struct strbuf *sb, const ProtobufCFieldDescriptor *fd, const char *flag,
    const char *value, char *err, size_t errlen)
{
	int64_t i64;
	uint64_t u64;
	double d;
	char *end;
	bool range;
	const ProtobufCEnumValue *ev;
	struct strbuf choices;

	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if (!reqflags_parse_int(value, INT32_MIN, INT32_MAX, &i64, &range))
			goto bad_int;
		strbuf_printf(sb, "%" PRId64, i64);
		return 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (!reqflags_parse_int(value, INT64_MIN, INT64_MAX, &i64, &range))
			goto bad_int;
		strbuf_printf(sb, "\"%" PRId64 "\"", i64);
		return 0;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		if (!reqflags_parse_uint(value, UINT32_MAX, &u64, &range))
			goto bad_int;
		strbuf_printf(sb, "%" PRIu64, u64);
		return 0;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (!reqflags_parse_uint(value, UINT64_MAX, &u64, &range))
			goto bad_int;
		strbuf_printf(sb, "\"%" PRIu64 "\"", u64);
		return 0;
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		errno = 0;
		d = value[0] == '\0' || isspace((unsigned char)value[0]) ? NAN
		                                                         : strtod(value, &end);
		if (isnan(d) || *end != '\0') {
			snprintf(err, errlen, "--%s: \"%s\" is not a number", flag, value);
			return -1;
		}
		if (!isfinite(d) || errno == ERANGE ||
		    (fd->type == PROTOBUF_C_TYPE_FLOAT && fabs(d) > FLT_MAX)) {
			snprintf(err, errlen, "--%s: %s is out of range for %s", flag, value,
			    reqflags_type_name(fd));
			return -1;
		}
		strbuf_printf(sb, "%.17g", d);
		return 0;
	case PROTOBUF_C_TYPE_BOOL:
		if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
			snprintf(err, errlen, "--%s: \"%s\" is not true or false", flag, value);
			return -1;
		}
		strbuf_puts(sb, value);
		return 0;
	case PROTOBUF_C_TYPE_ENUM:
		ev = reqflags_enum_lookup(fd->descriptor, value);
		if (ev == NULL) {
			strbuf_init(&choices);
			reqflags_enum_choices(fd->descriptor, ", ", &choices);
			snprintf(err, errlen, "--%s: \"%s\" is not one of %s", flag, value,
			    choices.data != NULL ? choices.data : "");
			strbuf_cleanup(&choices);
			return -1;
		}
		reqflags_put_json_string(sb, ev->name);
		return 0;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES: /* base64, checked by the JSON decoder */
		reqflags_put_json_string(sb, value);
		return 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		/* A nested message is given as its JSON object, checked by the decoder. */
		if (value[0] == '\0') {
			snprintf(err, errlen, "--%s: expected a JSON object", flag);
			return -1;
		}
		strbuf_puts(sb, value);
		return 0;
	}
	snprintf(err, errlen, "--%s: unsupported field type", flag);
	return -1;

bad_int:
	if (range)
		snprintf(err, errlen, "--%s: %s is out of range for %s", flag, value,
		    reqflags_type_name(fd));
	else
		snprintf(err, errlen, "--%s: \"%s\" is not an integer", flag, value);
	return -1;
}

int
reqflags_set(struct reqflags *rf, const char *flag, const char *value, char *err, size_t errlen)
{
	const ProtobufCFieldDescriptor *fd;
	char name[128];
	size_t i, idx;
	bool repeated;

	for (i = 0; flag[i] != '\0' && i + 1 < sizeof(name); i++)
		name[i] = flag[i] == '-' ? '_' : flag[i];
	name[i] = '\0';
	fd = flag[i] == '\0' ? protobuf_c_message_descriptor_get_field_by_name(rf->desc, name)
	                     : NULL;
	if (fd == NULL) {
		snprintf(err, errlen, "unknown flag --%s", flag);
		return -1;
	}
	if (value == NULL) {
		snprintf(err, errlen, "flag --%s needs a value", flag);
		return -1;
	}
	idx = (size_t)(fd - rf->desc->fields);
	repeated = fd->label == PROTOBUF_C_LABEL_REPEATED;
	if (!repeated && rf->counts[idx] > 0) {
		snprintf(err, errlen, "--%s given more than once", flag);
		return -1;
	}
	if (rf->counts[idx] > 0)
		strbuf_putc(&rf->values[idx], ',');
	if (reqflags_put_value(&rf->values[idx], fd, flag, value, err, errlen) < 0)
		return -1;
	rf->counts[idx]++;
	return 0;
}

void
reqflags_to_json(const struct reqflags *rf, struct strbuf *out)
{
	bool first = true;

	strbuf_putc(out, '{');
	for (unsigned i = 0; i < rf->desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &rf->desc->fields[i];

		if (rf->counts[i] == 0)
			continue;
		if (!first)
			strbuf_putc(out, ',');
		first = false;
		reqflags_put_json_string(out, fd->name);
		strbuf_putc(out, ':');
		if (fd->label == PROTOBUF_C_LABEL_REPEATED)
			strbuf_putc(out, '[');
		strbuf_append(out, rf->values[i].data, rf->values[i].len);
		if (fd->label == PROTOBUF_C_LABEL_REPEATED)
			strbuf_putc(out, ']');
	}
	strbuf_putc(out, '}');
}

void
reqflags_print_fields(FILE *out, const ProtobufCMessageDescriptor *desc)
{
	char kebab[128];
	struct strbuf sb;
	int width = 0;

	for (unsigned i = 0; i < desc->n_fields; i++) {
		int n = (int)strlen(desc->fields[i].name);

		if (n > width)
			width = n;
	}
	strbuf_init(&sb);
	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &desc->fields[i];

		strbuf_reset(&sb);
		if (fd->type == PROTOBUF_C_TYPE_ENUM) {
			strbuf_puts(&sb, "one of ");
			reqflags_enum_choices(fd->descriptor, ", ", &sb);
		} else if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
			strbuf_printf(&sb, "%s as a JSON object",
			    ((const ProtobufCMessageDescriptor *)fd->descriptor)->name);
		} else {
			strbuf_puts(&sb, reqflags_type_name(fd));
		}
		if (fd->label == PROTOBUF_C_LABEL_REPEATED)
			strbuf_puts(&sb, "; repeat the flag for more");
		reqflags_kebab(fd->name, kebab, sizeof(kebab));
		fprintf(out, "  --%-*s  %s\n", width, kebab, sb.data != NULL ? sb.data : "");
	}
	strbuf_cleanup(&sb);
}
