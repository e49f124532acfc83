/*
 * Fuzz driver for lib/auditfmt.c: any bytes as an exported journal, fed line by
 * line to the verifier (no key: the signatures are not checked, all the rest is).
 * Either it verifies or it fails with "line N: ..."; and every line that parses
 * as an entry is written back byte for byte, hash aside (the format has one
 * spelling for each entry, so its hash is well defined).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_round_trip(struct auditfmt_line *l, const char *line, size_t len)
{
	char err[256];
	struct strbuf sb;

	if (auditfmt_parse_line(l, line, len, err, sizeof(err)) != 0 ||
	    l->type != AUDITFMT_LINE_ENTRY)
		return;
	strbuf_init(&sb);
	if (auditfmt_entry_line(&sb, &l->entry) != 0)
		abort();
	if (sb.len != len || memcmp(sb.data, line, l->hashed_len) != 0)
		abort();
	strbuf_cleanup(&sb);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auditfmt_verifier *v = auditfmt_verifier_new(NULL);
	struct auditfmt_summary sum;
	struct auditfmt_line l;
	const char *p = (const char *)data, *end = p + size, *nl;
	char err[1024];
	int rc = 0;

	if (v == NULL)
		abort();
	auditfmt_line_init(&l);
	auditfmt_verifier_watch(v, 1, "2026-01-31T12:00:00.000000Z");
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		check_round_trip(&l, p, (size_t)(nl - p));
		if (rc == 0) {
			err[0] = '\0';
			rc = auditfmt_verifier_line(v, p, (size_t)(nl - p), err, sizeof(err));
			if (rc != 0 && strncmp(err, "line ", 5) != 0)
				abort();
		}
		p = nl + 1;
	}
	if (rc == 0 && auditfmt_verifier_finish(v, &sum, err, sizeof(err)) == 0 && sum.blocks > 0 &&
	    sum.last_block < sum.first_block)
		abort();
	auditfmt_line_cleanup(&l);
	auditfmt_verifier_free(v);
	return 0;
}
