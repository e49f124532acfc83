/*
 * Fuzz driver for lib/pbjson.c: any bytes as an allot.v1.IngestRequest (what
 * collectors send) and as a GetBalanceResponse (nested messages, doubles). What
 * decodes must encode, and decode again to the same message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/ledger.pb-c.h"
#include "allot/v1/usage.pb-c.h"
#include "pbjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *
pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(m);
	if ((buf = malloc(*len + 1)) == NULL)
		abort();
	protobuf_c_message_pack(m, buf);
	return buf;
}

static void
check(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size)
{
	ProtobufCMessage *m, *again;
	struct strbuf sb;
	uint8_t *a, *b;
	size_t alen, blen;
	char err[256];

	m = pbjson_decode(desc, (const char *)data, size, err, sizeof(err));
	if (m == NULL)
		return;
	strbuf_init(&sb);
	/* Decoded strings are valid UTF-8 (jansson checks), so encoding cannot fail. */
	if (!pbjson_encode(m, &sb))
		abort();
	again = pbjson_decode(desc, sb.data, sb.len, err, sizeof(err));
	if (again == NULL)
		abort();
	a = pack(m, &alen);
	b = pack(again, &blen);
	if (alen != blen || memcmp(a, b, alen) != 0)
		abort();
	free(a);
	free(b);
	strbuf_cleanup(&sb);
	protobuf_c_message_free_unpacked(again, NULL);
	protobuf_c_message_free_unpacked(m, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(&allot__v1__ingest_request__descriptor, data, size);
	check(&allot__v1__get_balance_response__descriptor, data, size);
	return 0;
}
