/*
 * collector: what allot-collect's commands share: the parts (configuration,
 * spool, sender, batcher, the site's zone), their state in the daemon's loop, and
 * the step from bytes read to batches spooled. The daemon (run.c), its sources
 * (sources.c), its report (report.c) and the one-shot commands (oneshot.c) use it.
 * Internal to allot-collect: not a library.
 */
#ifndef ALLOT_COLLECT_COLLECTOR_H
#define ALLOT_COLLECT_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>

#include "batch.h"
#include "collect_config.h"
#include "parse_int.h"
#include "send.h"
#include "spool.h"
#include "strbuf.h"

#define COLLECT_DEFAULT_CONFIG "/etc/allot/allot-collect.conf"
/* The most a single read of a source may bring (sacct output, a scrape, a file). */
#define COLLECT_SOURCE_MAX (1024LL * 1024 * 1024)
#define COLLECT_READ_CHUNK 65536

struct collector;

/* A child sacct and what it printed so far. */
struct sacct_run {
	pid_t pid;
	int fd;
	struct event *ev, *reap;
	struct strbuf out;
	time_t started;
	bool truncated;
};

struct scrape {
	const char *name; /* "dcgm" or "amd" */
	char *url;        /* the cfg's string: re-pointed at each reload */
	struct evhttp_connection *conn;
	bool busy, stale; /* stale: the URL may have changed, make a new connection */
	uint64_t scrapes, failures, samples;
	struct collector *c;
};

struct collector {
	const char *config_path;
	struct collect_config *cfg;
	struct event_base *base;
	struct spool *spool;
	struct sender *sender;
	struct batcher *batcher;
	struct event *sigterm, *sigint, *sighup;
	struct event *flush_ev, *retry_ev, *report_ev, *sacct_ev, *scrape_ev, *poll_ev;
	struct evhttp *http;
	bool paused, stopping;
	char full_reason[512];

	/* input_file */
	int in_fd;
	struct event *in_ev;
	struct strbuf in_buf;
	size_t in_line; /* number of the first line in in_buf */
	off_t in_offset;
	bool in_fifo, in_done;

	struct sacct_run sacct;
	time_t sacct_last_end; /* end of the last run whose records were all spooled */
	uint64_t sacct_runs, sacct_failures;

	struct scrape scrapes[2];
	struct collect_zone zone;
	uint64_t records_read, parse_errors;
	size_t last_backlog;
};

/*
 * Parses buf[0..len) in format (jsonl, or one of collect_parse's) into b. For
 * sacct with first_line 0 the fields are the configuration's sacct_fields (output
 * without a header). Returns 0, SPOOL_FULL when the spool is full (what was read
 * is held), -1 with the reason in err.
 */
int collector_parse(struct batcher *b, const struct collect_config *cfg, const char *format,
    const char *buf, size_t len, size_t first_line, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Wall-clock Unix milliseconds. */
int64_t collector_wall_ms(void);

/* The backoff bounds of cfg. */
void collector_sender_settings(const struct collect_config *cfg, struct sender_settings *s);

/* Reads the configuration at path; NULL after printing why on stderr. */
struct collect_config *collector_load_config(const char *path);

/*
 * Enters the site's zone, opens the spool (spool_override, or the configuration's)
 * and makes the sender and the batcher: c->cfg must be loaded. Returns 0, or -1
 * after printing why; collector_close frees what was made either way.
 */
int collector_open(struct collector *c, const char *spool_override)
    __attribute__((warn_unused_result));
void collector_close(struct collector *c);

/* The daemon's loop: stops the sources, the spool being full (reason for the log). */
void collector_pause(struct collector *c, const char *reason);

/*
 * After the batcher's result rc (err its reason): wakes the sender, stops the
 * sources when the spool is full, arms the flush timer for a partial batch.
 * Returns false when reading must stop.
 */
bool collector_after_batch(struct collector *c, int rc, const char *err);

/* Timers of the daemon's loop: a partial batch due, a held batch to try again. */
void collector_flush_cb(evutil_socket_t fd, short what, void *arg);
void collector_retry_cb(evutil_socket_t fd, short what, void *arg);

#endif
