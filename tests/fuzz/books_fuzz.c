/*
 * Fuzz driver for clients/cli/books.c: the first byte chooses the budget tool's
 * format (saldo, bsc_acct, jutil, lumi-allocations), the rest is its output. The
 * text either parses into accounts with names and non-negative figures, or is
 * refused with a reason and nothing kept; nothing else.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "books.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum books_format formats[] = {
	    BOOKS_SALDO, BOOKS_BSC_ACCT, BOOKS_JUTIL, BOOKS_LUMI};
	struct books b;
	char err[512] = "";

	if (size == 0)
		return 0;
	if (books_parse(formats[data[0] % 4], (const char *)data + 1, size - 1, &b, err,
	        sizeof(err)) != 0) {
		if (err[0] == '\0' || b.entries != NULL || b.n != 0)
			abort();
		return 0;
	}
	if (b.n == 0)
		abort();
	for (size_t i = 0; i < b.n; i++) {
		const struct books_entry *e = &b.entries[i];

		if (e->account[0] == '\0' || e->unit[0] == '\0' || e->used_milli < 0 ||
		    e->round_milli < 0 || (e->since[0] != '\0' && strlen(e->since) != 10))
			abort();
	}
	books_cleanup(&b);
	return 0;
}
