/* Fuzz driver for clients/collect/rocmsmi.c: any bytes as rocm-smi output. */
#include "collect_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct collect_opts o = {.scrape_time = "2026-11-21T08:00:00Z", .host = "n"};

	collect_fuzz_one(COLLECT_ROCM_SMI, &o, data, size);
	return 0;
}
