/*
 * sources: what the daemon reads, each on its loop: input_file (a file followed
 * as it grows, or a FIFO), sacct run over a trailing window, exporters scraped
 * over HTTP. Each hands what it read to collector_parse and its result to
 * collector_after_batch, and stays still while the collector is paused.
 */
#ifndef ALLOT_COLLECT_SOURCES_H
#define ALLOT_COLLECT_SOURCES_H

#include <sys/types.h>

#include "collector.h"

/* Opens input_file (none: nothing to do) and starts reading it. 0 or -1 (logged). */
int source_input_open(struct collector *c) __attribute__((warn_unused_result));
/* Parses the complete lines read so far (all of it at eof) until the spool is full. */
void source_input_process(struct collector *c, bool eof);
/* Reading again after a pause. */
void source_input_resume(struct collector *c);
/* Every second: a regular file that grew is read on. */
void source_input_poll_cb(evutil_socket_t fd, short what, void *arg);

/* Reads SPOOL/sacct.state: where the last spooled run ended. */
void source_sacct_load_state(struct collector *c);
/* Every sacct_interval_s: runs sacct over the window (skipped while paused). */
void source_sacct_cb(evutil_socket_t fd, short what, void *arg);
/* Reaps the sacct child once its output ended. */
void source_sacct_reap_cb(evutil_socket_t fd, short what, void *arg);
/*
 * Outside the loop (backfill): runs sacct from start to end to completion, its
 * output appended to out. Returns its wait status, or -1.
 */
int source_sacct_run_sync(
    const struct collect_config *cfg, const char *start, const char *end, struct strbuf *out);

/* Every scrape_interval_s: scrapes dcgm_url and amd_url (skipped while paused). */
void source_scrape_cb(evutil_socket_t fd, short what, void *arg);

#endif
