/*
 * allot-collect's entry point until the parsers' main.c (branch collect-parse)
 * takes these commands into its table.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "run.h"

int
main(int argc, char **argv)
{
	log_set_ident("allot-collect");
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return collect_run_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "send") == 0)
		return collect_send_main(argc - 1, argv + 1);
	fprintf(stderr, "usage: allot-collect run|send ...\n");
	return COLLECT_EXIT_USAGE;
}
