/*
 * Fuzz driver for clients/collect/collect_config.c: any bytes as allot-collect's
 * configuration file. A file either loads, with every string set and every
 * number within its key's bounds, or is refused with "path..." naming where;
 * nothing else. A file that loads loads again, as a reload would read it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collect_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/allot-collect-config-fuzz-XXXXXX";
	char err[1024] = "";
	struct collect_config *cfg, *again;
	int fd;

	if ((fd = mkstemp(path)) < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	if ((cfg = collect_config_new()) == NULL || (again = collect_config_new()) == NULL)
		abort();
	if (collect_config_load(cfg, path, err, sizeof(err)) != 0) {
		if (strncmp(err, path, strlen(path)) != 0)
			abort();
	} else {
		if (cfg->site == NULL || cfg->server == NULL || cfg->tls_ca == NULL ||
		    cfg->metrics_host == NULL || cfg->batch_records < 1 ||
		    cfg->batch_records > 100000 || cfg->backoff_max_ms < cfg->backoff_base_ms)
			abort();
		if (collect_config_load(again, path, err, sizeof(err)) != 0 ||
		    collect_config_reload_merge(cfg, again, err, sizeof(err)) != 0)
			abort();
	}
	collect_config_free(cfg);
	collect_config_free(again);
	unlink(path);
	return 0;
}
