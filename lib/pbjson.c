/*
 * pbjson: proto3 JSON for any protobuf-c message, from its descriptors.
 *
 * Encoding walks the descriptor and writes straight into a strbuf. Decoding
 * parses with jansson, then builds the message field by field at the offsets
 * the descriptor gives, allocating with malloc so that
 * protobuf_c_message_free_unpacked(msg, NULL) releases it, also halfway through
 * a failed decode: counts of repeated fields are only ever raised after their
 * element is in place. Which message a route expects is the caller's business.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pbjson.h"

#define PBJSON_MAX_DEPTH 32
#define MEMBER(msg, off) ((void *)((char *)(msg) + (off)))
#define CMEMBER(msg, off) ((const void *)((const char *)(msg) + (off)))

/* lowerCamelCase of a .proto field name, as protoc's json_name would be. */
static void
json_name(const char *name, char *out, size_t len)
{
	size_t n = 0;
	int upper = 0;

	for (; *name != '\0' && n + 1 < len; name++) {
		if (*name == '_') {
			upper = 1;
			continue;
		}
		out[n++] = upper ? (char)toupper((unsigned char)*name) : *name;
		upper = 0;
	}
	out[n] = '\0';
}

size_t
pbjson_field_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return 4;
	}
}

/* ---- encoding ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
put_base64(struct strbuf *out, const uint8_t *p, size_t len)
{
	strbuf_putc(out, '"');
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		char q[4];

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		q[0] = b64[(v >> 18) & 63];
		q[1] = b64[(v >> 12) & 63];
		q[2] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		q[3] = i + 2 < len ? b64[v & 63] : '=';
		strbuf_append(out, q, 4);
	}
	strbuf_putc(out, '"');
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t
utf8_seq(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f))
			return 0; /* overlong, or a surrogate */
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

static bool
utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	while (*p != '\0') {
		if ((n = utf8_seq(p)) == 0)
			return false;
		p += n;
	}
	return true;
}

static bool
strings_valid(const ProtobufCMessage *msg, int depth)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;

	if (depth > PBJSON_MAX_DEPTH)
		return false;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = CMEMBER(msg, f->offset);
		size_t n = 1;

		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)CMEMBER(msg, f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(const size_t *)CMEMBER(msg, f->quantifier_offset);
			p = *(const void *const *)p;
		}
		for (size_t k = 0; k < n; k++) {
			const void *v = *((const void *const *)p + k);

			if (v == NULL)
				continue;
			if (f->type == PROTOBUF_C_TYPE_STRING ? !utf8_valid(v)
			                                      : !strings_valid(v, depth + 1))
				return false;
		}
	}
	return true;
}

bool
pbjson_strings_valid(const ProtobufCMessage *msg)
{
	return strings_valid(msg, 0);
}

static bool
put_string(struct strbuf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");

	strbuf_putc(out, '"');
	while (*p != '\0') {
		size_t n;

		if (*p == '"' || *p == '\\') {
			strbuf_putc(out, '\\');
			strbuf_putc(out, (char)*p++);
		} else if (*p < 0x20) {
			static const char short_escapes[] = "\bb\ff\nn\rr\tt";
			const char *e = memchr(short_escapes, *p, sizeof(short_escapes) - 1);

			if (e != NULL && (e - short_escapes) % 2 == 0) {
				strbuf_putc(out, '\\');
				strbuf_putc(out, e[1]);
			} else {
				strbuf_printf(out, "\\u%04x", *p);
			}
			p++;
		} else if ((n = utf8_seq(p)) == 0) {
			return false; /* proto3 strings are UTF-8; JSON cannot carry anything else */
		} else {
			strbuf_append(out, p, n);
			p += n;
		}
	}
	strbuf_putc(out, '"');
	return true;
}

static void
put_double(struct strbuf *out, double v, bool is_float)
{
	if (isnan(v))
		strbuf_puts(out, "\"NaN\"");
	else if (isinf(v))
		strbuf_puts(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
	else if (v == 0 && signbit(v))
		strbuf_puts(out, "-0.0"); /* "-0" would read back as the integer 0 */
	else
		strbuf_printf(out, is_float ? "%.9g" : "%.17g", v);
}

static bool encode_message(const ProtobufCMessage *msg, struct strbuf *out, int depth);

static bool
encode_value(const ProtobufCFieldDescriptor *f, const void *p, struct strbuf *out, int depth)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		strbuf_printf(out, "%" PRId32, *(const int32_t *)p);
		return true;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		strbuf_printf(out, "%" PRIu32, *(const uint32_t *)p);
		return true;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		strbuf_printf(out, "\"%" PRId64 "\"", *(const int64_t *)p);
		return true;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		strbuf_printf(out, "\"%" PRIu64 "\"", *(const uint64_t *)p);
		return true;
	case PROTOBUF_C_TYPE_FLOAT:
		put_double(out, *(const float *)p, true);
		return true;
	case PROTOBUF_C_TYPE_DOUBLE:
		put_double(out, *(const double *)p, false);
		return true;
	case PROTOBUF_C_TYPE_BOOL:
		strbuf_puts(out, *(const protobuf_c_boolean *)p ? "true" : "false");
		return true;
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)p;
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
		    (const ProtobufCEnumDescriptor *)f->descriptor, v);

		/* An unknown number (a newer peer's value) is written as the number. */
		if (ev != NULL)
			strbuf_printf(out, "\"%s\"", ev->name);
		else
			strbuf_printf(out, "%d", v);
		return true;
	}
	case PROTOBUF_C_TYPE_STRING:
		return put_string(out, *(const char *const *)p);
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;

		put_base64(out, b->data, b->len);
		return true;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;

		/* An unset message field is null: its presence is information, and a type may
		 * contain itself. */
		if (sub == NULL) {
			strbuf_puts(out, "null");
			return true;
		}
		return encode_message(sub, out, depth + 1);
	}
	}
	return false;
}

static bool
encode_message(const ProtobufCMessage *msg, struct strbuf *out, int depth)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	bool first = true;

	if (depth > PBJSON_MAX_DEPTH)
		return false;
	strbuf_putc(out, '{');
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = CMEMBER(msg, f->offset);
		char name[128];

		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)CMEMBER(msg, f->quantifier_offset) != f->id)
				continue;
		} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
			/* proto3 optional: an unset field is left out. */
			if (f->type == PROTOBUF_C_TYPE_STRING ||
			    f->type == PROTOBUF_C_TYPE_MESSAGE) {
				if (*(const void *const *)p == NULL)
					continue;
			} else if (!*(const protobuf_c_boolean *)CMEMBER(
			               msg, f->quantifier_offset)) {
				continue;
			}
		}
		json_name(f->name, name, sizeof(name));
		strbuf_printf(out, "%s\"%s\":", first ? "" : ",", name);
		first = false;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)CMEMBER(msg, f->quantifier_offset);
			const char *arr = *(const char *const *)p;

			strbuf_putc(out, '[');
			for (size_t k = 0; k < n; k++) {
				if (k > 0)
					strbuf_putc(out, ',');
				if (!encode_value(f, arr + k * pbjson_field_size(f), out, depth))
					return false;
			}
			strbuf_putc(out, ']');
		} else if (!encode_value(f, p, out, depth)) {
			return false;
		}
	}
	strbuf_putc(out, '}');
	return !strbuf_failed(out);
}

bool
pbjson_encode(const ProtobufCMessage *msg, struct strbuf *out)
{
	return encode_message(msg, out, 0);
}

/* ---- decoding ---- */

struct dec {
	char *err;
	size_t errlen;
	char path[256];
};

static bool dec_fail(struct dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool
dec_fail(struct dec *d, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (d->path[0] != '\0')
		snprintf(d->err, d->errlen, "%s: %s", d->path, msg);
	else
		snprintf(d->err, d->errlen, "%s", msg);
	return false;
}

/* Reads an integer from a JSON integer, an integral real, or a decimal string. */
static bool
read_integer(struct dec *d, const json_t *v, bool is_unsigned, int64_t *s, uint64_t *u)
{
	if (json_is_integer(v)) {
		json_int_t x = json_integer_value(v);

		if (is_unsigned && x < 0)
			return dec_fail(d, "expected a non-negative integer");
		*s = (int64_t)x;
		*u = (uint64_t)x;
		return true;
	}
	if (json_is_real(v)) {
		double x = json_real_value(v);

		/* 2^63 is exact as a double: anything at or past it is out of range. */
		if (x != floor(x) || x < -9223372036854775808.0 || x >= 9223372036854775808.0 ||
		    (is_unsigned && x < 0))
			return dec_fail(d, "expected an integer");
		*s = (int64_t)x;
		*u = (uint64_t)*s;
		return true;
	}
	if (json_is_string(v)) {
		const char *str = json_string_value(v);
		char *end;

		errno = 0;
		if (str[0] == '\0' || isspace((unsigned char)str[0]))
			return dec_fail(d, "expected an integer");
		if (is_unsigned) {
			if (str[0] == '-')
				return dec_fail(d, "expected a non-negative integer");
			*u = strtoull(str, &end, 10);
			*s = (int64_t)*u;
		} else {
			*s = strtoll(str, &end, 10);
			*u = (uint64_t)*s;
		}
		if (errno != 0 || *end != '\0')
			return dec_fail(d, "\"%s\" is not an integer in range", str);
		return true;
	}
	return dec_fail(d, "expected an integer");
}

static int
b64_value(char c)
{
	const char *p;

	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	if (c == '\0' || (p = strchr(b64, c)) == NULL)
		return -1;
	return (int)(p - b64);
}

static bool
read_bytes(struct dec *d, const char *s, ProtobufCBinaryData *out)
{
	size_t len = strlen(s), n = 0;
	uint32_t acc = 0;
	int bits = 0;
	uint8_t *buf;

	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return dec_fail(d, "not valid base64");
	if ((buf = malloc(len * 3 / 4 + 1)) == NULL)
		return dec_fail(d, "out of memory");
	for (size_t i = 0; i < len; i++) {
		int v = b64_value(s[i]);

		if (v < 0) {
			free(buf);
			return dec_fail(d, "not valid base64");
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (uint8_t)(acc >> bits);
		}
	}
	out->data = buf;
	out->len = n;
	return true;
}

static ProtobufCMessage *decode_object(
    struct dec *d, const ProtobufCMessageDescriptor *desc, const json_t *obj, int depth);

/* Stores one JSON value into the field storage at p (zeroed or holding the default). */
static bool
decode_value(struct dec *d, const ProtobufCFieldDescriptor *f, const json_t *v, void *p, int depth)
{
	int64_t s;
	uint64_t u;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if (!read_integer(d, v, false, &s, &u))
			return false;
		if (s < INT32_MIN || s > INT32_MAX)
			return dec_fail(d, "%" PRId64 " is out of range for a 32-bit integer", s);
		*(int32_t *)p = (int32_t)s;
		return true;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		if (!read_integer(d, v, true, &s, &u))
			return false;
		if (u > UINT32_MAX)
			return dec_fail(d, "%" PRIu64 " is out of range for a 32-bit integer", u);
		*(uint32_t *)p = (uint32_t)u;
		return true;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (!read_integer(d, v, false, &s, &u))
			return false;
		*(int64_t *)p = s;
		return true;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (!read_integer(d, v, true, &s, &u))
			return false;
		*(uint64_t *)p = u;
		return true;
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE: {
		double x;

		if (json_is_number(v)) {
			x = json_number_value(v);
		} else if (json_is_string(v) && strcmp(json_string_value(v), "NaN") == 0) {
			x = NAN;
		} else if (json_is_string(v) && strcmp(json_string_value(v), "Infinity") == 0) {
			x = INFINITY;
		} else if (json_is_string(v) && strcmp(json_string_value(v), "-Infinity") == 0) {
			x = -INFINITY;
		} else if (json_is_string(v)) {
			char *end;

			x = strtod(json_string_value(v), &end);
			if (json_string_value(v)[0] == '\0' || *end != '\0')
				return dec_fail(d, "expected a number");
		} else {
			return dec_fail(d, "expected a number");
		}
		if (f->type == PROTOBUF_C_TYPE_FLOAT)
			*(float *)p = (float)x;
		else
			*(double *)p = x;
		return true;
	}
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v))
			return dec_fail(d, "expected true or false");
		*(protobuf_c_boolean *)p = json_is_true(v);
		return true;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		const ProtobufCEnumValue *ev;

		if (json_is_string(v)) {
			ev = protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
			if (ev == NULL)
				return dec_fail(d, "\"%s\" is not a value of %s",
				    json_string_value(v), ed->name);
			*(int *)p = ev->value;
			return true;
		}
		if (!read_integer(d, v, false, &s, &u))
			return false;
		if (s < INT32_MIN || s > INT32_MAX)
			return dec_fail(d, "enum number out of range");
		*(int *)p = (int)s;
		return true;
	}
	case PROTOBUF_C_TYPE_STRING: {
		char **slot = p, *copy;
		const char *str;

		if (!json_is_string(v))
			return dec_fail(d, "expected a string");
		str = json_string_value(v);
		if (memchr(str, '\0', json_string_length(v)) != NULL)
			return dec_fail(d, "a string must not contain NUL");
		/*
		 * A plain field keeps its default for "", which free_unpacked leaves alone;
		 * repeated, optional and oneof strings are freed whatever they hold.
		 */
		if (str[0] == '\0' && f->label == PROTOBUF_C_LABEL_NONE &&
		    !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			return true;
		if ((copy = strdup(str)) == NULL)
			return dec_fail(d, "out of memory");
		if (*slot != NULL && *slot != (const char *)f->default_value &&
		    *slot != protobuf_c_empty_string)
			free(*slot);
		*slot = copy;
		return true;
	}
	case PROTOBUF_C_TYPE_BYTES:
		if (!json_is_string(v))
			return dec_fail(d, "expected a base64 string");
		return read_bytes(d, json_string_value(v), p);
	case PROTOBUF_C_TYPE_MESSAGE: {
		ProtobufCMessage *sub;

		if (!json_is_object(v))
			return dec_fail(d, "expected an object");
		if ((sub = decode_object(d, f->descriptor, v, depth + 1)) == NULL)
			return false;
		*(ProtobufCMessage **)p = sub;
		return true;
	}
	}
	return dec_fail(d, "unsupported field type");
}

static bool
decode_field(struct dec *d, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
    const json_t *v, int depth)
{
	void *p = MEMBER(msg, f->offset);

	if (json_is_null(v))
		return true; /* the default */
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t *count = MEMBER(msg, f->quantifier_offset);
		size_t n, size = pbjson_field_size(f), plen = strlen(d->path);
		char *arr;

		if (!json_is_array(v))
			return dec_fail(d, "expected an array");
		if ((n = json_array_size(v)) == 0)
			return true;
		if (*count != 0)
			return dec_fail(d, "is given twice");
		if ((arr = calloc(n, size)) == NULL)
			return dec_fail(d, "out of memory");
		*(char **)p = arr;
		for (size_t i = 0; i < n; i++) {
			snprintf(d->path + plen, sizeof(d->path) - plen, "[%zu]", i);
			if (!decode_value(d, f, json_array_get(v, i), arr + i * size, depth))
				return false;
			/* Only now is element i something free_unpacked may release. */
			*count = i + 1;
		}
		d->path[plen] = '\0';
		return true;
	}
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *which = MEMBER(msg, f->quantifier_offset);

		if (*which != 0)
			return dec_fail(d, "another member of its oneof is already set");
		if (!decode_value(d, f, v, p, depth))
			return false;
		*which = f->id;
		return true;
	}
	if (!decode_value(d, f, v, p, depth))
		return false;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
	    f->type != PROTOBUF_C_TYPE_STRING)
		*(protobuf_c_boolean *)MEMBER(msg, f->quantifier_offset) = 1;
	return true;
}

static const ProtobufCFieldDescriptor *
find_field(const ProtobufCMessageDescriptor *desc, const char *key)
{
	char name[128];

	for (unsigned i = 0; i < desc->n_fields; i++) {
		if (strcmp(desc->fields[i].name, key) == 0)
			return &desc->fields[i];
		json_name(desc->fields[i].name, name, sizeof(name));
		if (strcmp(name, key) == 0)
			return &desc->fields[i];
	}
	return NULL;
}

static ProtobufCMessage *
decode_object(struct dec *d, const ProtobufCMessageDescriptor *desc, const json_t *obj, int depth)
{
	ProtobufCMessage *msg;
	const char *key;
	json_t *v;
	size_t plen = strlen(d->path);

	if (depth > PBJSON_MAX_DEPTH) {
		dec_fail(d, "nested more than %d deep", PBJSON_MAX_DEPTH);
		return NULL;
	}
	if ((msg = malloc(desc->sizeof_message)) == NULL) {
		dec_fail(d, "out of memory");
		return NULL;
	}
	desc->message_init(msg);
	json_object_foreach((json_t *)(uintptr_t)obj, key, v)
	{
		const ProtobufCFieldDescriptor *f = find_field(desc, key);

		if (f == NULL)
			continue; /* unknown fields are skipped, as Twirp servers do */
		snprintf(
		    d->path + plen, sizeof(d->path) - plen, "%s%s", plen > 0 ? "." : "", f->name);
		if (!decode_field(d, msg, f, v, depth)) {
			d->path[plen] = '\0';
			protobuf_c_message_free_unpacked(msg, NULL);
			return NULL;
		}
		d->path[plen] = '\0';
	}
	return msg;
}

ProtobufCMessage *
pbjson_decode(
    const ProtobufCMessageDescriptor *desc, const char *json, size_t len, char *err, size_t errlen)
{
	struct dec d = {.err = err, .errlen = errlen, .path = ""};
	json_error_t je;
	json_t *root;
	ProtobufCMessage *msg;

	root =
	    json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
	if (root == NULL) {
		snprintf(err, errlen, "invalid JSON at line %d column %d: %s", je.line, je.column,
		    je.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		snprintf(err, errlen, "expected a JSON object");
		return NULL;
	}
	msg = decode_object(&d, desc, root, 0);
	json_decref(root);
	return msg;
}
