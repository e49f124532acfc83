/*
 * Fuzz driver for lib/pbjson.c. Any bytes are read as JSON for an
 * allot.v1.IngestRequest (what collectors send), a GetBalanceResponse (nested
 * messages, doubles) and, where the build links it, the unit tests' message with
 * every field kind: what decodes must encode, decode again to a message that
 * packs to the same bytes, and encode again to the same text. The bytes are also
 * read as protobuf: what unpacks and encodes must read back, and a message whose
 * strings are not UTF-8 must not encode. A broken rule aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/ledger.pb-c.h"
#include "allot/v1/usage.pb-c.h"
#include "pbjson.h"

/* tests/fuzz/meson.build adds the generated test message to this driver's sources. */
#if defined(__has_include)
#if __has_include("testmsg.pb-c.h")
#include "testmsg.pb-c.h"
#define HAVE_TESTMSG 1
#endif
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *
pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(m);
	if ((buf = malloc(*len + 1)) == NULL)
		abort();
	if (protobuf_c_message_pack(m, buf) != *len)
		abort();
	return buf;
}

/* Encodes m into a new string, or returns NULL when the mapping refuses it. */
static char *
encode(const ProtobufCMessage *m, size_t *len)
{
	struct strbuf sb;

	strbuf_init(&sb);
	if (!pbjson_encode(m, &sb)) {
		strbuf_cleanup(&sb);
		return NULL;
	}
	*len = sb.len;
	return strbuf_steal(&sb);
}

/* Text we wrote must read back, and write again the same. */
static ProtobufCMessage *
read_back(const ProtobufCMessageDescriptor *desc, const char *text, size_t len)
{
	ProtobufCMessage *m;
	char err[256], *again;
	size_t alen;

	if ((m = pbjson_decode(desc, text, len, err, sizeof(err))) == NULL)
		abort();
	if ((again = encode(m, &alen)) == NULL)
		abort();
	if (alen != len || memcmp(again, text, len) != 0)
		abort();
	free(again);
	return m;
}

static void
check_json(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size)
{
	ProtobufCMessage *m, *again;
	uint8_t *a, *b;
	size_t alen, blen, tlen;
	char err[256], *text;

	m = pbjson_decode(desc, (const char *)data, size, err, sizeof(err));
	if (m == NULL) {
		if (memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		return;
	}
	/* Decoded strings are UTF-8 (jansson checks) and nesting is bounded the same
	 * both ways, so the encoder has no reason to refuse. */
	if (!pbjson_strings_valid(m) || (text = encode(m, &tlen)) == NULL)
		abort();
	again = read_back(desc, text, tlen);
	a = pack(m, &alen);
	b = pack(again, &blen);
	if (alen != blen || memcmp(a, b, alen) != 0)
		abort();
	free(a);
	free(b);
	free(text);
	protobuf_c_message_free_unpacked(again, NULL);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void
check_protobuf(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size)
{
	ProtobufCMessage *m, *again;
	size_t tlen;
	char *text;

	if ((m = protobuf_c_message_unpack(desc, NULL, size, data)) == NULL)
		return;
	/* Unknown fields, maps and deep nesting may make the encoder refuse; bad
	 * UTF-8 must. What it writes must be JSON it reads back. */
	text = encode(m, &tlen);
	if (text != NULL && !pbjson_strings_valid(m))
		abort();
	if (text != NULL) {
		again = read_back(desc, text, tlen);
		protobuf_c_message_free_unpacked(again, NULL);
		free(text);
	}
	protobuf_c_message_free_unpacked(m, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const ProtobufCMessageDescriptor *const descs[] = {
	    &allot__v1__ingest_request__descriptor,
	    &allot__v1__get_balance_response__descriptor,
#ifdef HAVE_TESTMSG
	    &allot__test__everything__descriptor,
#endif
	};

	for (size_t i = 0; i < sizeof(descs) / sizeof(descs[0]); i++) {
		check_json(descs[i], data, size);
		check_protobuf(descs[i], data, size);
	}
	return 0;
}
