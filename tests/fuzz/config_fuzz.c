/*
 * Fuzz driver for daemon/config.c: any bytes as a configuration file. A file
 * either loads or is refused with "path:..." naming where; nothing else.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/allot-config-fuzz-XXXXXX";
	char err[1024] = "";
	struct config *cfg;
	int fd;

	if ((fd = mkstemp(path)) < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	if ((cfg = config_new()) == NULL)
		abort();
	if (config_load(cfg, path, err, sizeof(err)) != 0 && strncmp(err, path, strlen(path)) != 0)
		abort();
	config_free(cfg);
	unlink(path);
	return 0;
}
