/*
 * run: allot-collect's commands that talk to allotd, all through the spool:
 *   run -c FILE                     the per-site daemon (run.c)
 *   send -c FILE [--format F] FILE  parse, spool, send, wait for the acks
 *   backfill -c FILE --since DATE   sacct history day by day
 * Each returns the process's exit status: 0 done, 1 failed or records refused,
 * 2 usage, 75 (EX_TEMPFAIL) when batches are left in the spool for later.
 */
#ifndef ALLOT_COLLECT_RUN_H
#define ALLOT_COLLECT_RUN_H

#define COLLECT_EXIT_OK 0
#define COLLECT_EXIT_FAIL 1
#define COLLECT_EXIT_USAGE 2
#define COLLECT_EXIT_TEMPFAIL 75

int collect_run_main(int argc, char **argv);
int collect_send_main(int argc, char **argv);
int collect_backfill_main(int argc, char **argv);

#endif
