/*
 * config: allotd's configuration file, read through one table of keys.
 *
 * The file is made of "key = value" lines. A '#' outside quotes starts a comment;
 * blank lines are skipped. A value is bare (everything up to a comment or the end
 * of the line, spaces trimmed at both ends) or double-quoted, where \" and \\ are
 * the only escapes. Sizes take an optional suffix k, M or G (1024-based). Each key
 * is set at most once. Errors read "path:line: message".
 *
 * Each key has a type, a default (or none: it is required), bounds, whether a
 * reload (SIGHUP) applies it, and one line of help; the table in config.c is the
 * one place that says so, and the sample configuration and the README follow it
 * (tests/unit/config.c checks that they name every key).
 */
#ifndef ALLOT_CONFIG_H
#define ALLOT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "log.h"

/*
 * Every setting. Strings are owned by the struct (malloc'ed) and never NULL once loaded,
 * but for an optional key's (an empty default in the table), NULL while unset.
 */
struct config {
	char *listen;      /* "host:port" or "[v6addr]:port", as written */
	char *listen_host; /* the host of listen, without brackets */
	int listen_port;   /* the port of listen, 1..65535 */
	char *tls_cert;
	char *tls_key;
	char *tls_ca;
	char *database;
	int db_pool_size;
	int db_reconnect_max_s;
	long long max_body_bytes;
	int idle_timeout_s;
	int lien_sweep_s;
	int allocation_expiry_s;
	int reserve_group_max;
	char *audit_key; /* optional: NULL when unset */
	int audit_seal_s;
	int fairshare_period_s;
	int fairshare_half_life_s; /* 0: no decay */
	int fairshare_algorithm;   /* enum fs_algorithm (fairshare.h): 0 fair_tree, 1 classic */
	int fairshare_pacing_permille;
	enum log_level log_level;
};

enum config_type {
	CONFIG_STRING,       /* char *, not empty */
	CONFIG_PATH,         /* char *, not empty, used as written */
	CONFIG_INT,          /* int, decimal, within min..max */
	CONFIG_SIZE,         /* long long bytes, suffix k, M or G allowed, within min..max */
	CONFIG_LISTEN,       /* char *listen plus listen_host and listen_port */
	CONFIG_LOG_LEVEL,    /* enum log_level, by name */
	CONFIG_FS_ALGORITHM, /* int: 0 "fair_tree", 1 "classic" (enum fs_algorithm) */
};

struct config_key {
	const char *name;
	enum config_type type;
	const char
	    *default_value; /* as it would be written in the file; NULL: required; "": optional */
	long long min, max; /* CONFIG_INT and CONFIG_SIZE only */
	bool reloadable;    /* a reload applies a new value; otherwise a restart must */
	const char *help;   /* one line, lower case, no period */
	size_t offset;      /* of the value in struct config */
};

/*
 * Returns a new configuration with every default set (the required strings NULL), or
 * NULL when out of memory. The caller frees it with config_free.
 */
struct config *config_new(void);

/* Frees cfg and its strings; NULL is a no-op. */
void config_free(struct config *cfg);

/*
 * Reads the file at path over cfg: keys in the file replace cfg's values, the others
 * keep them. Returns 0, or -1 with the reason in err ("path:line: message", or
 * "path: message" for an unreadable file or a required key left unset); cfg is then
 * unchanged. A successful load replaces every string of cfg: pointers to the old
 * ones are no longer valid.
 */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Applies a reload: copies the reloadable settings of fresh into running, leaving
 * running's other settings alone. Returns 0 when done; 1 when keys that only a
 * restart applies differ in fresh, in which case running keeps their values and err
 * names them (a warning; the reloadable settings were applied); -1 when out of
 * memory, running unchanged. Strings of running whose value changed are freed and
 * replaced, the others stay where they are; fresh is not modified and stays the
 * caller's.
 */
int config_reload_merge(struct config *running, const struct config *fresh, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* The table of keys, in the order the help lists them; *n is set to its length. */
const struct config_key *config_keys(size_t *n);

/* The name of a type as the help prints it: "string", "path", "int", "size", ... */
const char *config_type_name(enum config_type type);

/* Writes the keys with type, default, bounds, reload and help to f (allotd --help-config). */
void config_print_help(FILE *f);

#endif
