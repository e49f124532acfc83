/*
 * Fuzz driver for clients/collect/sacct.c: any bytes as sacct output whose first line
 * is the header, in Europe/Rome (local times, DST gaps), and as `-n` output with a
 * --fields list.
 */
#include "collect_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct collect_opts header = {.timezone = "Europe/Rome"};
	static const struct collect_opts fields = {.timezone = "Europe/Rome",
	    .fields = "JobID,JobName,Account,Partition,QOS,State,Submit,Start,End,ElapsedRaw,"
	              "NNodes,AllocCPUS,AllocTRES,CPUTimeRAW,ExitCode,WorkDir,ConsumedEnergyRaw"};

	collect_fuzz_one(COLLECT_SACCT, &header, data, size);
	collect_fuzz_one(COLLECT_SACCT, &fields, data, size);
	return 0;
}
