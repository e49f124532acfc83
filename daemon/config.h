/*
 * config: allotd's configuration file, read through one table of keys.
 *
 * The file is "key = value" lines; '#' starts a comment outside quotes; values
 * are bare (trimmed, to the end of the line) or double-quoted with \" and \\.
 * Each key has a type, a default, bounds, whether a reload (SIGHUP) applies it,
 * and one line of help; the table is the one place that says so.
 */
#ifndef ALLOT_CONFIG_H
#define ALLOT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "log.h"

struct config {
	char *listen;      /* "host:port" as written */
	char *listen_host; /* parsed from listen */
	int listen_port;
	char *tls_cert;
	char *tls_key;
	char *tls_ca;
	char *database;
	int db_pool_size;
	int db_reconnect_max_s;
	long long max_body_bytes;
	int idle_timeout_s;
	enum log_level log_level;
};

enum config_type {
	CONFIG_STRING,
	CONFIG_INT,
	CONFIG_SIZE,   /* bytes; suffixes k, M, G (1024-based) */
	CONFIG_LISTEN, /* host:port */
	CONFIG_LOG_LEVEL,
};

struct config_key {
	const char *name;
	enum config_type type;
	const char *default_value; /* NULL: required */
	long long min, max;        /* CONFIG_INT, CONFIG_SIZE */
	bool reloadable;
	size_t offset; /* of the value in struct config */
	const char *help;
};

/* Returns a new configuration with every default set, or NULL when out of memory. */
struct config *config_new(void);
/* Frees cfg and its strings; NULL is a no-op. */
void config_free(struct config *cfg);

/*
 * Reads path into cfg. Returns 0, or -1 with "path:line: message" in err (or
 * "path: message" for what is missing at the end). cfg may hold part of the
 * file after a failure: the caller frees it.
 */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Copies the reloadable settings of fresh into running. Returns 0, or 1 when a
 * key that needs a restart changed: running keeps its value and err names the
 * keys.
 */
int config_reload_merge(
    struct config *running, const struct config *fresh, char *err, size_t errlen);

/* The table of keys, *n set to its length. */
const struct config_key *config_keys(size_t *n);

/* Lists the keys with type, default, bounds, reload and help. */
void config_print_help(FILE *f);

#endif
