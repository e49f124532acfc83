/*
 * Fuzz driver for the client library's reading of error answers: the first two
 * bytes pick an HTTP status, the rest is the body, Twirp's JSON or whatever an
 * intermediary sent. The error must come out as a known code and a terminated
 * message, whatever the bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "allot_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct allot_error e;
	int status;

	if (size < 2)
		return 0;
	status = 100 + (data[0] << 8 | data[1]) % 500;
	memset(&e, 0xa5, sizeof(e));
	allot_error_from_http(&e, status, (const char *)data + 2, size - 2);
	if ((unsigned)e.code > ALLOT_DATALOSS || e.code == ALLOT_OK ||
	    memchr(e.msg, '\0', sizeof(e.msg)) == NULL ||
	    memchr(e.code_name, '\0', sizeof(e.code_name)) == NULL || e.http_status != status)
		abort();
	return 0;
}
