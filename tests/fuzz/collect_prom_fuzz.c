/*
 * Fuzz driver for clients/collect/prom.c: any bytes as a DCGM exporter scrape and as an
 * AMD device metrics exporter scrape, with and without a default host.
 */
#include "collect_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct collect_opts plain = {.scrape_time = "2026-11-21T08:00:00Z"};
	static const struct collect_opts host = {
	    .scrape_time = "2026-11-21T08:00:00Z", .host = "n", .job_label = "jobid"};

	collect_fuzz_one(COLLECT_DCGM, &plain, data, size);
	collect_fuzz_one(COLLECT_DCGM, &host, data, size);
	collect_fuzz_one(COLLECT_AMD, &plain, data, size);
	return 0;
}
