/* Fuzz driver for clients/collect/jobcomp.c: any bytes as job-completion JSON records. */
#include "collect_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct collect_opts o = {.timezone = "Europe/Zurich"};

	collect_fuzz_one(COLLECT_JOBCOMP, &o, data, size);
	return 0;
}
