/*
 * What the collector's fuzz drivers share: one parse of the input in a format, and
 * the invariants checked on its outcome. A parse that succeeds yields messages that
 * encode as proto3 JSON and decode back to the same packed bytes (so `allot-collect
 * parse | allot ingest` never meets a line it cannot read); a parse that fails says
 * why and leaves the output as it was. A broken rule aborts.
 */
#ifndef ALLOT_TESTS_COLLECT_FUZZ_H
#define ALLOT_TESTS_COLLECT_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "pbjson.h"

static void
collect_fuzz_roundtrip(const ProtobufCMessage *m)
{
	struct strbuf sb;
	ProtobufCMessage *back;
	size_t n1, n2;
	uint8_t *p1, *p2;

	strbuf_init(&sb);
	if (!pbjson_encode(m, &sb) || strbuf_failed(&sb))
		abort();
	back = pbjson_decode(m->descriptor, sb.data, sb.len, NULL, 0);
	if (back == NULL)
		abort();
	n1 = protobuf_c_message_get_packed_size(m);
	n2 = protobuf_c_message_get_packed_size(back);
	if (n1 != n2)
		abort();
	p1 = malloc(n1 + 1);
	p2 = malloc(n2 + 1);
	if (p1 == NULL || p2 == NULL)
		abort();
	protobuf_c_message_pack(m, p1);
	protobuf_c_message_pack(back, p2);
	if (memcmp(p1, p2, n1) != 0)
		abort();
	free(p1);
	free(p2);
	protobuf_c_message_free_unpacked(back, NULL);
	strbuf_cleanup(&sb);
}

static void
collect_fuzz_one(
    enum collect_format f, const struct collect_opts *o, const uint8_t *data, size_t size)
{
	struct collect_out out;
	char err[512];

	collect_out_init(&out);
	err[0] = '\0';
	if (collect_parse(f, o, (const char *)data, size, &out, err, sizeof(err)) != 0) {
		if (out.njobs != 0 || out.nsamples != 0 || err[0] == '\0')
			abort();
	} else {
		for (size_t i = 0; i < out.njobs; i++)
			collect_fuzz_roundtrip(&out.jobs[i]->base);
		for (size_t i = 0; i < out.nsamples; i++)
			collect_fuzz_roundtrip(&out.samples[i]->base);
	}
	collect_out_cleanup(&out);
}

#endif
