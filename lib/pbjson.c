/*
 * pbjson: proto3 JSON for any protobuf-c message, from its descriptors.
 *
 * Encoding walks the descriptor and writes straight into a strbuf. Decoding
 * parses into a jtree (one flat node array), then builds the message field by
 * field at the offsets
 * the descriptor gives, allocating with the caller's ProtobufCAllocator (malloc
 * by default) so that protobuf_c_message_free_unpacked(msg, alloc) releases it,
 * also halfway through
 * a failed decode: a repeated field's count is only raised once its element is
 * in place, and a oneof case or a has_ flag only once its value is. Recursion,
 * both ways, stops at PBJSON_MAX_DEPTH nested messages.
 *
 * Left to others: which message a route expects, size limits on the input
 * (the caller bounds the body), the well-known types, and map fields, which
 * protobuf-c 1.4 cannot mark as such and Allot's protos do not use: an empty map
 * reads and writes as {}, anything else is refused.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jtree.h"
#include "pbjson.h"

#define PBJSON_MAX_DEPTH 32
#define MEMBER(msg, off) ((void *)((char *)(msg) + (off)))
#define CMEMBER(msg, off) ((const void *)((const char *)(msg) + (off)))

/* ---- names and field kinds ---- */

static char
ascii_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/*
 * Matches the camel-case form of a .proto name (underscores dropped, the letter
 * after one upper-cased, the first one too when upper) against the start of s.
 * Returns where s goes on after it, or NULL when s does not start with it. This
 * is protoc's rule for json_name and for the entry type of a map field.
 */
static const char *
camel_match(const char *name, const char *s, bool upper)
{
	for (; *name != '\0'; name++) {
		if (*name == '_') {
			upper = true;
			continue;
		}
		if (*s++ != (upper ? ascii_upper(*name) : *name))
			return NULL;
		upper = false;
	}
	return s;
}

static void
put_json_name(struct strbuf *out, const char *name)
{
	bool upper = false;

	strbuf_putc(out, '"');
	for (; *name != '\0'; name++) {
		if (*name == '_') {
			upper = true;
			continue;
		}
		strbuf_putc(out, upper ? ascii_upper(*name) : *name);
		upper = false;
	}
	strbuf_putc(out, '"');
}

/*
 * protoc-c 1.4 turns map<K, V> foo_bar into repeated FooBarEntry {K key = 1;
 * V value = 2;}, nested in the message, and leaves no mark on the descriptor: the
 * shape and the name are all there is to go by.
 */
static bool
is_map_field(const ProtobufCMessageDescriptor *md, const ProtobufCFieldDescriptor *f)
{
	const ProtobufCMessageDescriptor *e = f->descriptor;
	size_t plen = strlen(md->name);
	const char *rest;

	if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE ||
	    e == NULL || e->n_fields != 2)
		return false;
	if (e->fields[0].id != 1 || strcmp(e->fields[0].name, "key") != 0 || e->fields[1].id != 2 ||
	    strcmp(e->fields[1].name, "value") != 0)
		return false;
	if (strncmp(e->name, md->name, plen) != 0 || e->name[plen] != '.')
		return false;
	rest = camel_match(f->name, e->short_name, true);
	return rest != NULL && strcmp(rest, "Entry") == 0;
}

size_t
pbjson_field_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return sizeof(int32_t);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return sizeof(uint32_t);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return sizeof(int64_t);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int); /* protobuf-c stores enums as C enums */
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

static const char *
type_name(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
		return "int32";
	case PROTOBUF_C_TYPE_SINT32:
		return "sint32";
	case PROTOBUF_C_TYPE_SFIXED32:
		return "sfixed32";
	case PROTOBUF_C_TYPE_UINT32:
		return "uint32";
	case PROTOBUF_C_TYPE_FIXED32:
		return "fixed32";
	case PROTOBUF_C_TYPE_INT64:
		return "int64";
	case PROTOBUF_C_TYPE_SINT64:
		return "sint64";
	case PROTOBUF_C_TYPE_SFIXED64:
		return "sfixed64";
	case PROTOBUF_C_TYPE_UINT64:
		return "uint64";
	case PROTOBUF_C_TYPE_FIXED64:
		return "fixed64";
	case PROTOBUF_C_TYPE_ENUM:
		return "an enum";
	default:
		return "this field";
	}
}

/*
 * Whether a singular field holds a value of its own: a oneof member when it is
 * the one chosen, an optional field (proto2, or proto3 `optional`) when its has_
 * flag is set or its pointer is neither NULL nor the default, as protobuf-c's
 * packer decides. Plain proto3 fields always do.
 */
static bool
field_is_set(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)CMEMBER(msg, f->quantifier_offset) == f->id;
	if (f->label != PROTOBUF_C_LABEL_OPTIONAL)
		return true;
	if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
		const void *p = *(const void *const *)CMEMBER(msg, f->offset);

		return p != NULL && p != f->default_value;
	}
	return *(const protobuf_c_boolean *)CMEMBER(msg, f->quantifier_offset) != 0;
}

/* ---- UTF-8 ---- */

static bool
utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	for (;;) {
		/* ASCII, nearly every string Allot sees, without a call a byte. */
		while (*p != '\0' && *p < 0x80)
			p++;
		if (*p == '\0')
			return true;
		if ((n = jtree_utf8_seq(p)) == 0)
			return false;
		p += n;
	}
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
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && !field_is_set(msg, f))
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

static bool
put_string(struct strbuf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");

	strbuf_putc(out, '"');
	while (*p != '\0') {
		size_t n;

		if (*p == '"' || *p == '\\') {
			strbuf_putc(out, '\\');
			strbuf_putc(out, (char)*p++);
		} else if (*p < 0x20) {
			char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};

			switch (*p) {
			case '\b':
				strbuf_puts(out, "\\b");
				break;
			case '\f':
				strbuf_puts(out, "\\f");
				break;
			case '\n':
				strbuf_puts(out, "\\n");
				break;
			case '\r':
				strbuf_puts(out, "\\r");
				break;
			case '\t':
				strbuf_puts(out, "\\t");
				break;
			default:
				strbuf_append(out, esc, sizeof(esc));
			}
			p++;
		} else if ((n = jtree_utf8_seq(p)) == 0) {
			return false; /* proto3 strings are UTF-8; JSON cannot carry anything else */
		} else {
			strbuf_append(out, p, n);
			p += n;
		}
	}
	strbuf_putc(out, '"');
	return true;
}

/*
 * Writes the shortest %g text, from DBL_DIG or FLT_DIG digits up, that reads
 * back, through strtod as the decoder reads it (and a cast for a float, as the
 * decoder does), to the same value. Assumes the C locale for LC_NUMERIC, as the
 * rest of Allot does.
 */
static void
put_double(struct strbuf *out, double v, bool is_float)
{
	char buf[40];

	if (isnan(v)) {
		strbuf_puts(out, "\"NaN\"");
		return;
	}
	if (isinf(v)) {
		strbuf_puts(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
		return;
	}
	if (v == 0 && signbit(v)) {
		strbuf_puts(out, "-0.0"); /* "-0" would read back as the integer 0 */
		return;
	}
	for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
		double back;

		snprintf(buf, sizeof(buf), "%.*g", prec, v);
		back = strtod(buf, NULL);
		if (is_float ? (float)back == (float)v : back == v)
			break;
	}
	strbuf_puts(out, buf);
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

		/* A number this side does not know (a newer peer's value) stays a number. */
		if (ev != NULL)
			return put_string(out, ev->name);
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

		/* An unset message is null: presence is information, and a type may
		 * contain itself, so its defaults could not be written out. */
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

		if (f->label != PROTOBUF_C_LABEL_REPEATED && !field_is_set(msg, f))
			continue;
		if (!first)
			strbuf_putc(out, ',');
		first = false;
		put_json_name(out, f->name);
		strbuf_putc(out, ':');
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)CMEMBER(msg, f->quantifier_offset);
			const char *arr = *(const char *const *)p;
			size_t size = pbjson_field_size(f);

			if (is_map_field(d, f)) {
				if (n > 0)
					return false;
				strbuf_puts(out, "{}");
				continue;
			}
			strbuf_putc(out, '[');
			for (size_t k = 0; k < n; k++) {
				if (k > 0)
					strbuf_putc(out, ',');
				if (!encode_value(f, arr + k * size, out, depth))
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
	return encode_message(msg, out, 0) && !strbuf_failed(out);
}

/* ---- decoding ---- */

struct dec {
	const struct jtree *t;
	ProtobufCAllocator *alloc; /* the decoded message's memory; NULL: malloc */
	char *err;
	size_t errlen;
	char path[256]; /* the field being read: records[2].gpus */
};

/*
 * Writes s (n bytes) into the path at plen, truncated to what fits. The path is
 * kept for the error messages only, so it is built with copies, not snprintf: a
 * batch of records reads it for every field of every record.
 */
static void
path_put(struct dec *d, size_t plen, const char *s, size_t n)
{
	size_t room = sizeof(d->path) - 1 - (plen < sizeof(d->path) ? plen : sizeof(d->path) - 1);

	if (plen >= sizeof(d->path))
		return;
	if (n > room)
		n = room;
	memcpy(d->path + plen, s, n);
	d->path[plen + n] = '\0';
}

/* The path of field name under the one at plen: "name" or "parent.name". */
static void
path_field(struct dec *d, size_t plen, const char *name)
{
	if (plen > 0) {
		path_put(d, plen, ".", 1);
		plen++;
	}
	path_put(d, plen, name, strlen(name));
}

/* The path of element i of the array at plen: "records[2]". */
static void
path_index(struct dec *d, size_t plen, size_t i)
{
	char num[24], *q = num + sizeof(num);

	*--q = ']';
	do {
		*--q = (char)('0' + i % 10);
		i /= 10;
	} while (i > 0);
	*--q = '[';
	path_put(d, plen, q, (size_t)(num + sizeof(num) - q));
}

/* Memory for the decoded message, from its allocator. */
static void *
dec_alloc(struct dec *d, size_t n)
{
	return d->alloc != NULL ? d->alloc->alloc(d->alloc->allocator_data, n) : malloc(n);
}

static void
dec_free(struct dec *d, void *p)
{
	if (d->alloc != NULL)
		d->alloc->free(d->alloc->allocator_data, p);
	else
		free(p);
}

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

/* An integer read from JSON, as a sign and a magnitude, before its range is known. */
struct dec_int {
	bool neg;
	uint64_t mag;
	char text[48]; /* as given, for messages */
};

/* Reads a JSON integer, an integral real, or a string of decimal digits. */
static bool
read_integer(struct dec *d, const struct jnode *v, struct dec_int *r)
{
	if (v->type == JT_INTEGER) {
		long long x = v->integer;

		r->neg = x < 0;
		/* The magnitude of LLONG_MIN does not fit in a long long. */
		r->mag = x < 0 ? (uint64_t)(-(x + 1)) + 1 : (uint64_t)x;
		snprintf(r->text, sizeof(r->text), "%lld", (long long)x);
		return true;
	}
	if (v->type == JT_REAL) {
		double x = v->real;

		snprintf(r->text, sizeof(r->text), "%.17g", x);
		if (x != floor(x))
			return dec_fail(d, "expected an integer, not %s", r->text);
		if (fabs(x) >= 18446744073709551616.0) /* 2^64, exact as a double */
			return dec_fail(d, "%s is out of range", r->text);
		r->neg = signbit(x) != 0;
		r->mag = (uint64_t)fabs(x);
		return true;
	}
	if (v->type == JT_STRING) {
		const char *s = v->str;
		const char *digits = s + (s[0] == '-');

		snprintf(r->text, sizeof(r->text), "\"%.40s\"", s);
		r->neg = s[0] == '-';
		r->mag = 0;
		if (*digits == '\0')
			return dec_fail(d, "expected an integer, not %s", r->text);
		for (const char *c = digits; *c != '\0'; c++) {
			if (*c < '0' || *c > '9')
				return dec_fail(d, "expected an integer, not %s", r->text);
			if (r->mag > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
				return dec_fail(d, "%s is out of range", r->text);
			r->mag = r->mag * 10 + (uint64_t)(*c - '0');
		}
		return true;
	}
	return dec_fail(d, "expected an integer");
}

/*
 * Reads an integer that must lie in [min, max] into *s (signed) and *u (unsigned,
 * for max past INT64_MAX); f names the type for the message.
 */
static bool
read_ranged(struct dec *d, const ProtobufCFieldDescriptor *f, const struct jnode *v, int64_t min,
    uint64_t max, int64_t *s, uint64_t *u)
{
	struct dec_int r;
	uint64_t neg_limit = min < 0 ? (uint64_t)(-(min + 1)) + 1 : 0;

	if (!read_integer(d, v, &r))
		return false;
	if (r.neg ? r.mag > neg_limit : r.mag > max)
		return dec_fail(d, "%s is out of range for %s", r.text, type_name(f->type));
	if (r.neg && r.mag > 0)
		*s = -(int64_t)(r.mag - 1) - 1;
	else
		*s = r.mag <= INT64_MAX ? (int64_t)r.mag : 0; /* unsigned: *u holds it */
	*u = r.neg ? 0 : r.mag;
	return true;
}

static int
b64_value(char c)
{
	const char *p;

	if (c == '-')
		return 62; /* the URL-safe alphabet */
	if (c == '_')
		return 63;
	if (c == '\0' || (p = strchr(b64, c)) == NULL)
		return -1;
	return (int)(p - b64);
}

/* Standard or URL-safe base64, padded or not; padding, where given, must be right. */
static bool
read_bytes(struct dec *d, const char *s, ProtobufCBinaryData *out)
{
	size_t len = strlen(s), pad = 0, n = 0;
	uint32_t acc = 0;
	int bits = 0;
	uint8_t *buf;

	while (len > 0 && s[len - 1] == '=') {
		len--;
		pad++;
	}
	if (len % 4 == 1 || pad > 2 || (pad > 0 && (len + pad) % 4 != 0))
		return dec_fail(d, "not valid base64");
	if (len == 0) {
		out->data = NULL;
		out->len = 0;
		return true;
	}
	if ((buf = dec_alloc(d, len * 3 / 4 + 1)) == NULL)
		return dec_fail(d, "out of memory");
	for (size_t i = 0; i < len; i++) {
		int v = b64_value(s[i]);

		if (v < 0) {
			dec_free(d, buf);
			return dec_fail(d, "not valid base64");
		}
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
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

/* A JSON number written as a string: -?digits[.digits][e[+-]digits], nothing else. */
static bool
is_decimal_text(const char *s)
{
	const char *p = s + (*s == '-');

	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

static bool
read_double(struct dec *d, const ProtobufCFieldDescriptor *f, const struct jnode *v, double *x)
{
	const char *s;

	if (v->type == JT_INTEGER) {
		*x = (double)v->integer;
	} else if (v->type == JT_REAL) {
		*x = v->real;
	} else if (v->type != JT_STRING) {
		return dec_fail(d, "expected a number");
	} else if (strcmp((s = v->str), "NaN") == 0) {
		*x = NAN;
		return true;
	} else if (strcmp(s, "Infinity") == 0) {
		*x = INFINITY;
		return true;
	} else if (strcmp(s, "-Infinity") == 0) {
		*x = -INFINITY;
		return true;
	} else if (is_decimal_text(s)) {
		*x = strtod(s, NULL);
		if (isinf(*x))
			return dec_fail(d, "\"%.40s\" is out of range for a double", s);
	} else {
		return dec_fail(d, "expected a number, not \"%.40s\"", s);
	}
	/* Only the three strings above may stand for the values a float cannot hold. */
	if (f->type == PROTOBUF_C_TYPE_FLOAT && isinf((float)*x))
		return dec_fail(d, "%g is out of range for a float", *x);
	return true;
}

static ProtobufCMessage *decode_object(
    struct dec *d, const ProtobufCMessageDescriptor *desc, const struct jnode *obj, int depth);

/* Stores one JSON value into the field storage at p, which holds the field's default. */
static bool
decode_value(
    struct dec *d, const ProtobufCFieldDescriptor *f, const struct jnode *v, void *p, int depth)
{
	int64_t s;
	uint64_t u;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if (!read_ranged(d, f, v, INT32_MIN, INT32_MAX, &s, &u))
			return false;
		*(int32_t *)p = (int32_t)s;
		return true;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		if (!read_ranged(d, f, v, 0, UINT32_MAX, &s, &u))
			return false;
		*(uint32_t *)p = (uint32_t)u;
		return true;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (!read_ranged(d, f, v, INT64_MIN, INT64_MAX, &s, &u))
			return false;
		*(int64_t *)p = s;
		return true;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (!read_ranged(d, f, v, 0, UINT64_MAX, &s, &u))
			return false;
		*(uint64_t *)p = u;
		return true;
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE: {
		double x = 0; /* set by read_double when it succeeds; gcc -O3 cannot tell */

		if (!read_double(d, f, v, &x))
			return false;
		if (f->type == PROTOBUF_C_TYPE_FLOAT)
			*(float *)p = (float)x;
		else
			*(double *)p = x;
		return true;
	}
	case PROTOBUF_C_TYPE_BOOL:
		if (v->type != JT_TRUE && v->type != JT_FALSE)
			return dec_fail(d, "expected true or false");
		*(protobuf_c_boolean *)p = v->type == JT_TRUE;
		return true;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		const ProtobufCEnumValue *ev;

		if (v->type == JT_STRING) {
			ev = protobuf_c_enum_descriptor_get_value_by_name(ed, v->str);
			if (ev == NULL)
				return dec_fail(
				    d, "\"%.60s\" is not a value of %s", v->str, ed->name);
			*(int *)p = ev->value;
			return true;
		}
		if (v->type != JT_INTEGER && v->type != JT_REAL)
			return dec_fail(d, "expected a name of %s", ed->name);
		/* proto3 enums are open: a number this side does not know is kept. */
		if (!read_ranged(d, f, v, INT32_MIN, INT32_MAX, &s, &u))
			return false;
		*(int *)p = (int)s;
		return true;
	}
	case PROTOBUF_C_TYPE_STRING: {
		char **slot = p, *copy;
		const char *str;

		if (v->type != JT_STRING)
			return dec_fail(d, "expected a string");
		str = v->str;
		if (memchr(str, '\0', v->len) != NULL)
			return dec_fail(d, "a string must not contain NUL");
		/*
		 * A plain field keeps its default for "", which free_unpacked leaves alone;
		 * repeated, optional and oneof strings are freed whatever they hold.
		 */
		if (str[0] == '\0' && f->label == PROTOBUF_C_LABEL_NONE &&
		    !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			return true;
		if ((copy = dec_alloc(d, v->len + 1)) == NULL)
			return dec_fail(d, "out of memory");
		memcpy(copy, str, v->len + 1);
		*slot = copy; /* over a default: each field is read once */
		return true;
	}
	case PROTOBUF_C_TYPE_BYTES:
		if (v->type != JT_STRING)
			return dec_fail(d, "expected a base64 string");
		return read_bytes(d, v->str, p);
	case PROTOBUF_C_TYPE_MESSAGE: {
		ProtobufCMessage *sub;

		if (v->type != JT_OBJECT)
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
    const struct jnode *v, int depth)
{
	const ProtobufCMessageDescriptor *md = msg->descriptor;
	void *p = MEMBER(msg, f->offset);

	if (v->type == JT_NULL)
		return true; /* the default */
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t *count = MEMBER(msg, f->quantifier_offset);
		size_t n, i = 0, size = pbjson_field_size(f), plen = strlen(d->path);
		const struct jnode *e;
		char *arr;

		if (is_map_field(md, f)) {
			if (v->type == JT_OBJECT && v->count == 0)
				return true;
			return dec_fail(d, "map fields are not supported");
		}
		if (v->type != JT_ARRAY)
			return dec_fail(d, "expected an array");
		if ((n = v->count) == 0)
			return true;
		if (n > SIZE_MAX / size || (arr = dec_alloc(d, n * size)) == NULL)
			return dec_fail(d, "out of memory");
		memset(arr, 0, n * size);
		*(char **)p = arr;
		for (e = jtree_node(d->t, v->first); e != NULL;
		     e = jtree_node(d->t, e->next), i++) {
			path_index(d, plen, i);
			if (!decode_value(d, f, e, arr + i * size, depth))
				return false;
			/* Only now is element i something free_unpacked may release. */
			*count = i + 1;
		}
		d->path[plen] = '\0';
		return true;
	}
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *which = MEMBER(msg, f->quantifier_offset);

		if (*which != 0) {
			const ProtobufCFieldDescriptor *other =
			    protobuf_c_message_descriptor_get_field(md, *which);

			return dec_fail(d, "another member of its oneof, %s, is already set",
			    other != NULL ? other->name : "?");
		}
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

/* Index of the field named key, in lowerCamelCase or as in the .proto; -1 if none. */
static int
find_field(const ProtobufCMessageDescriptor *desc, const char *key)
{
	const ProtobufCFieldDescriptor *f;

	/*
	 * By the .proto name first, a binary search: one-word names (most of them) are
	 * the same in lowerCamelCase. protoc refuses a message where one field's JSON
	 * name is another's name, so this finds the field the scan below would.
	 */
	if ((f = protobuf_c_message_descriptor_get_field_by_name(desc, key)) != NULL)
		return (int)(f - desc->fields);
	for (unsigned i = 0; i < desc->n_fields; i++) {
		const char *rest;

		if (strcmp(desc->fields[i].name, key) == 0)
			return (int)i;
		if ((rest = camel_match(desc->fields[i].name, key, false)) != NULL && *rest == '\0')
			return (int)i;
	}
	return -1;
}

static ProtobufCMessage *
decode_object(
    struct dec *d, const ProtobufCMessageDescriptor *desc, const struct jnode *obj, int depth)
{
	ProtobufCMessage *msg = NULL;
	unsigned char small[32], *seen = small; /* which fields were given */
	size_t plen = strlen(d->path);
	const struct jnode *v;

	if (depth > PBJSON_MAX_DEPTH) {
		dec_fail(d, "nested more than %d deep", PBJSON_MAX_DEPTH);
		return NULL;
	}
	if (desc->n_fields > sizeof(small))
		seen = calloc(desc->n_fields, 1);
	else
		memset(small, 0, sizeof(small));
	if (seen == NULL || (msg = dec_alloc(d, desc->sizeof_message)) == NULL) {
		if (seen != small)
			free(seen);
		dec_fail(d, "out of memory");
		return NULL;
	}
	desc->message_init(msg);
	for (v = jtree_node(d->t, obj->first); v != NULL; v = jtree_node(d->t, v->next)) {
		/* A name holding NUL is no field's: strcmp would see only its start. */
		int i = memchr(v->key, '\0', v->keylen) == NULL ? find_field(desc, v->key) : -1;

		if (i < 0)
			continue; /* unknown fields are skipped, as Twirp servers do */
		path_field(d, plen, desc->fields[i].name);
		/* Under both names: the second must neither leak the first nor silently win. */
		if (seen[i]) {
			dec_fail(d, "given twice");
			goto fail;
		}
		seen[i] = 1;
		if (!decode_field(d, msg, &desc->fields[i], v, depth))
			goto fail;
		d->path[plen] = '\0';
	}
	if (seen != small)
		free(seen);
	return msg;
fail:
	d->path[plen] = '\0';
	if (seen != small)
		free(seen);
	protobuf_c_message_free_unpacked(msg, d->alloc);
	return NULL;
}

ProtobufCMessage *
pbjson_decode(
    const ProtobufCMessageDescriptor *desc, const char *json, size_t len, char *err, size_t errlen)
{
	return pbjson_decode_in(desc, json, len, NULL, err, errlen);
}

ProtobufCMessage *
pbjson_decode_in(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
    ProtobufCAllocator *alloc, char *err, size_t errlen)
{
	char spare[1], why[200];
	struct dec d = {.alloc = alloc, .err = err, .errlen = errlen, .path = ""};
	struct jtree t;
	ProtobufCMessage *msg;

	if (err == NULL || errlen == 0) {
		d.err = spare;
		d.errlen = sizeof(spare);
	}
	if (json == NULL && len == 0)
		json = ""; /* an empty body, as evbuffer_pullup gives it */
	if (!jtree_parse(&t, json, len, why, sizeof(why))) {
		jtree_free(&t);
		snprintf(d.err, d.errlen, "invalid JSON at %s", why);
		return NULL;
	}
	if (jtree_root(&t)->type != JT_OBJECT) {
		jtree_free(&t);
		snprintf(d.err, d.errlen, "expected a JSON object");
		return NULL;
	}
	d.t = &t;
	msg = decode_object(&d, desc, jtree_root(&t), 0);
	jtree_free(&t);
	return msg;
}
