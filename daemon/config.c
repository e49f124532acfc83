/*
 * config: the key table, the file parser and reload merging. It checks syntax,
 * types and bounds; whether the files named exist is left to the modules that
 * open them (tls.c for certificates, db.c for the database).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define LINE_MAX_LEN 4096
/* The value of key k in cfg, as a pointer to type. */
#define SLOT(cfg, k, type) ((type *)(void *)((char *)(cfg) + (k)->offset))

#define OFF(field) offsetof(struct config, field)

static const struct config_key keys[] = {
    {"listen", CONFIG_LISTEN, "127.0.0.1:8443", 0, 0, false, OFF(listen),
        "address and port of the HTTPS listener"},
    {"tls_cert", CONFIG_STRING, NULL, 0, 0, true, OFF(tls_cert), "server certificate (PEM, ECDSA)"},
    {"tls_key", CONFIG_STRING, NULL, 0, 0, true, OFF(tls_key), "its private key (PEM)"},
    {"tls_ca", CONFIG_STRING, NULL, 0, 0, true, OFF(tls_ca),
        "CA that signs client certificates (PEM)"},
    {"database", CONFIG_STRING, NULL, 0, 0, false, OFF(database), "libpq connection string"},
    {"db_pool_size", CONFIG_INT, "4", 1, 64, false, OFF(db_pool_size), "PostgreSQL connections"},
    {"db_reconnect_max_s", CONFIG_INT, "10", 1, 600, true, OFF(db_reconnect_max_s),
        "longest wait between reconnection attempts, in seconds"},
    {"max_body_bytes", CONFIG_SIZE, "4M", 1024, 268435456, true, OFF(max_body_bytes),
        "largest request body accepted (k, M, G suffixes)"},
    {"idle_timeout_s", CONFIG_INT, "60", 1, 3600, true, OFF(idle_timeout_s),
        "close a connection idle this long, in seconds"},
    {"log_level", CONFIG_LOG_LEVEL, "info", 0, 0, true, OFF(log_level),
        "least severe level logged: fatal, error, warn, info, debug"},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

const struct config_key *
config_keys(size_t *n)
{
	*n = NKEYS;
	return keys;
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
parse_number(const char *value, bool size, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	if (!isdigit((unsigned char)value[0]) && value[0] != '-')
		return -1;
	v = strtoll(value, &end, 10);
	if (errno != 0 || end == value)
		return -1;
	if (size && *end != '\0') {
		int shift = *end == 'k' || *end == 'K' ? 10
		    : *end == 'M'                      ? 20
		    : *end == 'G'                      ? 30
		                                       : -1;

		if (shift < 0 || end[1] != '\0' || v > (LLONG_MAX >> shift) || v < 0)
			return -1;
		v <<= shift;
		end++;
	}
	if (*end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int
replace_string(char **slot, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return -1;
	free(*slot);
	*slot = copy;
	return 0;
}

/* Sets key k of cfg from value; returns 0 or -1 with a message (no location) in err. */
static int
config_set(
    struct config *cfg, const struct config_key *k, const char *value, char *err, size_t errlen)
{
	long long v;

	switch (k->type) {
	case CONFIG_STRING:
		if (value[0] == '\0') {
			errf(err, errlen, "\"%s\" must not be empty", k->name);
			return -1;
		}
		if (replace_string(SLOT(cfg, k, char *), value) != 0)
			goto nomem;
		return 0;
	case CONFIG_INT:
	case CONFIG_SIZE:
		if (parse_number(value, k->type == CONFIG_SIZE, &v) != 0) {
			errf(err, errlen, "value \"%s\" of \"%s\" is not %s", value, k->name,
			    k->type == CONFIG_SIZE ? "a size" : "an integer");
			return -1;
		}
		if (v < k->min || v > k->max) {
			errf(err, errlen, "value %lld of \"%s\" is out of range %lld..%lld", v,
			    k->name, k->min, k->max);
			return -1;
		}
		if (k->type == CONFIG_SIZE)
			*SLOT(cfg, k, long long) = v;
		else
			*SLOT(cfg, k, int) = (int)v;
		return 0;
	case CONFIG_LISTEN: {
		const char *colon = strrchr(value, ':');
		char *host;

		if (colon == NULL || colon == value || parse_number(colon + 1, false, &v) != 0 ||
		    v < 1 || v > 65535) {
			errf(err, errlen, "\"%s\" is not host:port with a port of 1..65535", value);
			return -1;
		}
		if ((host = strndup(value, (size_t)(colon - value))) == NULL)
			goto nomem;
		if (replace_string(SLOT(cfg, k, char *), value) != 0) {
			free(host);
			goto nomem;
		}
		free(cfg->listen_host);
		cfg->listen_host = host;
		cfg->listen_port = (int)v;
		return 0;
	}
	case CONFIG_LOG_LEVEL:
		if (!log_level_parse(value, SLOT(cfg, k, enum log_level))) {
			errf(err, errlen,
			    "log level \"%s\" is not one of fatal, error, warn, info, debug",
			    value);
			return -1;
		}
		return 0;
	}
	return -1;
nomem:
	errf(err, errlen, "out of memory");
	return -1;
}

struct config *
config_new(void)
{
	struct config *cfg;
	char err[256];

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return NULL;
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].default_value != NULL &&
		    config_set(cfg, &keys[i], keys[i].default_value, err, sizeof(err)) != 0) {
			config_free(cfg);
			return NULL;
		}
	}
	return cfg;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].type == CONFIG_STRING || keys[i].type == CONFIG_LISTEN)
			free(*SLOT(cfg, &keys[i], char *));
	free(cfg->listen_host);
	free(cfg);
}

/*
 * Splits one line into key and value in place. Returns 1 for a setting, 0 for a
 * blank or comment line, -1 with err set for a malformed one.
 */
static int
split_line(char *line, char **key, char **value, char *err, size_t errlen)
{
	char *p = line, *out;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	*key = p;
	while (isalnum((unsigned char)*p) || *p == '_')
		p++;
	if (p == *key) {
		errf(err, errlen, "expected a key");
		return -1;
	}
	if (*p != '\0' && !isspace((unsigned char)*p) && *p != '=') {
		errf(err, errlen, "unexpected character '%c' in key", *p);
		return -1;
	}
	out = p;
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '=') {
		*out = '\0';
		errf(err, errlen, "missing \"=\" after key \"%s\"", *key);
		return -1;
	}
	*out = '\0';
	p++;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '"') {
		*value = out = ++p;
		for (;; p++) {
			if (*p == '\0') {
				errf(err, errlen, "unterminated quoted value of \"%s\"", *key);
				return -1;
			}
			if (*p == '"')
				break;
			if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
				p++;
			*out++ = *p;
		}
		*out = '\0';
		p++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '\0' && *p != '#') {
			errf(err, errlen, "unexpected text after the quoted value of \"%s\"", *key);
			return -1;
		}
		return 1;
	}
	*value = p;
	while (*p != '\0' && *p != '#')
		p++;
	while (p > *value && isspace((unsigned char)p[-1]))
		p--;
	*p = '\0';
	return 1;
}

int
config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char line[LINE_MAX_LEN + 2], msg[512];
	bool seen[NKEYS] = {false};
	FILE *f;
	int lineno = 0, rc = -1;

	if ((f = fopen(path, "r")) == NULL) {
		errf(err, errlen, "%s: could not open: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *key, *value;
		size_t len = strlen(line), i;
		int r;

		lineno++;
		if (len > LINE_MAX_LEN) {
			errf(err, errlen, "%s:%d: line is longer than %d bytes", path, lineno,
			    LINE_MAX_LEN);
			goto out;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if ((r = split_line(line, &key, &value, msg, sizeof(msg))) < 0) {
			errf(err, errlen, "%s:%d: %s", path, lineno, msg);
			goto out;
		}
		if (r == 0)
			continue;
		for (i = 0; i < NKEYS && strcmp(keys[i].name, key) != 0; i++)
			;
		if (i == NKEYS) {
			errf(err, errlen, "%s:%d: unknown key \"%s\"", path, lineno, key);
			goto out;
		}
		if (seen[i]) {
			errf(err, errlen, "%s:%d: \"%s\" is set twice", path, lineno, key);
			goto out;
		}
		seen[i] = true;
		if (config_set(cfg, &keys[i], value, msg, sizeof(msg)) != 0) {
			errf(err, errlen, "%s:%d: %s", path, lineno, msg);
			goto out;
		}
	}
	if (ferror(f)) {
		errf(err, errlen, "%s: could not read: %s", path, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].default_value == NULL && !seen[i]) {
			errf(err, errlen, "%s: required key \"%s\" is not set", path, keys[i].name);
			goto out;
		}
	}
	rc = 0;
out:
	fclose(f);
	return rc;
}

static bool
same_value(const struct config *a, const struct config *b, const struct config_key *k)
{
	switch (k->type) {
	case CONFIG_STRING:
	case CONFIG_LISTEN: {
		const char *x = *SLOT(a, k, char *), *y = *SLOT(b, k, char *);

		return (x == NULL && y == NULL) || (x != NULL && y != NULL && strcmp(x, y) == 0);
	}
	case CONFIG_INT:
		return *SLOT(a, k, int) == *SLOT(b, k, int);
	case CONFIG_SIZE:
		return *SLOT(a, k, long long) == *SLOT(b, k, long long);
	case CONFIG_LOG_LEVEL:
		return *SLOT(a, k, enum log_level) == *SLOT(b, k, enum log_level);
	}
	return false;
}

int
config_reload_merge(struct config *running, const struct config *fresh, char *err, size_t errlen)
{
	char kept[256] = "";

	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &keys[i];

		if (same_value(running, fresh, k))
			continue;
		if (!k->reloadable) {
			/* Needs a restart: note the change, keep the running value. */
			strncat(kept, " ", sizeof(kept) - strlen(kept) - 1);
			strncat(kept, k->name, sizeof(kept) - strlen(kept) - 1);
			continue;
		}
		switch (k->type) {
		case CONFIG_STRING:
			if (replace_string(SLOT(running, k, char *), *SLOT(fresh, k, char *)) !=
			    0) {
				errf(err, errlen, "out of memory");
				return 1;
			}
			break;
		case CONFIG_INT:
			*SLOT(running, k, int) = *SLOT(fresh, k, int);
			break;
		case CONFIG_SIZE:
			*SLOT(running, k, long long) = *SLOT(fresh, k, long long);
			break;
		case CONFIG_LOG_LEVEL:
			*SLOT(running, k, enum log_level) = *SLOT(fresh, k, enum log_level);
			break;
		case CONFIG_LISTEN:
			abort(); /* the listener is never reloadable: see the table */
		}
	}
	if (kept[0] == '\0')
		return 0;
	errf(err, errlen, "changes to%s need a restart: keeping the running values", kept);
	return 1;
}

void
config_print_help(FILE *f)
{
	static const char *const types[] = {"string", "integer", "size", "host:port", "level"};

	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &keys[i];

		fprintf(f, "%-20s %-9s default %s", k->name, types[k->type],
		    k->default_value != NULL ? k->default_value : "(required)");
		if (k->type == CONFIG_INT || k->type == CONFIG_SIZE)
			fprintf(f, ", %lld..%lld", k->min, k->max);
		fprintf(
		    f, "%s\n    %s\n", k->reloadable ? ", reloads" : ", needs a restart", k->help);
	}
}
