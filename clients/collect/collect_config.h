/*
 * collect_config: allot-collect's configuration file, one table of keys, in
 * allotd's style: "key = value" lines, '#' comments, values bare or
 * double-quoted (\" and \\ the only escapes), sizes with an optional suffix k, M
 * or G, each key at most once, errors as "path:line: message".
 *
 * Each key has a type, a default (or none: required), bounds, whether SIGHUP
 * applies it, and one line of help; the table in collect_config.c is the one
 * place that says so, and etc/allot-collect.conf.sample and the README follow it
 * (tests/unit/collect_config.c checks that they name every key).
 */
#ifndef ALLOT_COLLECT_CONFIG_H
#define ALLOT_COLLECT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "log.h"

/* Strings are owned by the struct; an optional string not set is "". */
struct collect_config {
	char *site;
	char *server;
	char *tls_cert, *tls_key, *tls_ca;
	char *timezone; /* "" for the machine's */
	char *spool_dir;
	long long spool_max_bytes;
	int spool_retry_s;
	int batch_records;
	long long batch_max_bytes;
	int batch_delay_ms;
	int send_timeout_s;
	int backoff_base_ms, backoff_max_ms;
	char *partitions;    /* comma-separated partitions whose jobs are sent; "" all */
	char *sacct_command; /* "" disables the sacct source */
	char *sacct_fields;
	int sacct_interval_s;
	int sacct_window_s;
	char *input_file;         /* a file or FIFO to read; "" for none */
	char *input_format;       /* jsonl, sacct, jobcomp, dcgm, amd */
	char *dcgm_url, *amd_url; /* exporters to scrape; "" for none */
	int scrape_interval_s;
	char *job_label;
	char *metrics_listen; /* "host:port" of /metrics; "" for none */
	char *metrics_host;
	int metrics_port;
	enum log_level log_level;
};

enum collect_config_type {
	CCONF_STRING,   /* char *, may be "" when optional */
	CCONF_PATH,     /* char *, used as written */
	CCONF_INT,      /* int within min..max */
	CCONF_SIZE,     /* long long bytes, k M G suffixes */
	CCONF_LISTEN,   /* loopback "host:port": metrics_listen plus host and port */
	CCONF_LOGLEVEL, /* enum log_level by name */
};

struct collect_config_key {
	const char *name;
	enum collect_config_type type;
	const char *default_value; /* NULL: required */
	long long min, max;
	bool reloadable;
	const char *help;
	size_t offset;
};

/* A new configuration with the defaults set; NULL when out of memory. Freed with collect_config_free. */
struct collect_config *collect_config_new(void);
void collect_config_free(struct collect_config *cfg);

/*
 * Reads path over cfg. Returns 0, or -1 with "path:line: message" in err, cfg
 * then unchanged. Besides each key's bounds it checks what keys say together
 * (input_format known; some source configured).
 */
int collect_config_load(struct collect_config *cfg, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Copies fresh's reloadable settings into running. Returns 0; 1 when keys only a
 * restart applies differ (named in err, running keeps them); -1 out of memory.
 */
int collect_config_reload_merge(struct collect_config *running, const struct collect_config *fresh,
    char *err, size_t errlen) __attribute__((warn_unused_result));

const struct collect_config_key *collect_config_keys(size_t *n);
void collect_config_print_help(FILE *f);

#endif
