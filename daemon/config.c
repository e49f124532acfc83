/*
 * config: the table of keys, the file parser, and the merge of a reload into the
 * running settings. Everything about a key (type, default, bounds, reload, help,
 * where its value lives) is in the table; the functions below only interpret it.
 *
 * It checks syntax, types and bounds. Whether the files named exist and hold
 * certificates is left to tls.c, whether the database can be reached to db.c;
 * acting on a reload (new limits, new level) is main.c's job.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "confline.h"

#define OFF(field) offsetof(struct config, field)
/* The value of key k in cfg, as a pointer to type. */
#define SLOT(cfg, k, type) ((type *)(void *)((char *)(cfg) + (k)->offset))
#define CSLOT(cfg, k, type) ((const type *)(const void *)((const char *)(cfg) + (k)->offset))

static const struct config_key keys[] = {
    {"listen", CONFIG_LISTEN, "127.0.0.1:8443", 0, 0, false,
        "address and port of the HTTPS listener", OFF(listen)},
    {"tls_cert", CONFIG_PATH, NULL, 0, 0, true, "server certificate (PEM, ECDSA)", OFF(tls_cert)},
    {"tls_key", CONFIG_PATH, NULL, 0, 0, true, "its private key", OFF(tls_key)},
    {"tls_ca", CONFIG_PATH, NULL, 0, 0, true, "CA that signs client certificates", OFF(tls_ca)},
    {"database", CONFIG_STRING, NULL, 0, 0, false, "libpq connection string", OFF(database)},
    {"db_pool_size", CONFIG_INT, "4", 1, 64, false, "PostgreSQL connections", OFF(db_pool_size)},
    {"db_reconnect_max_s", CONFIG_INT, "10", 1, 600, true,
        "longest wait between reconnection attempts", OFF(db_reconnect_max_s)},
    {"max_body_bytes", CONFIG_SIZE, "4194304", 1024, 268435456, true,
        "largest request body accepted", OFF(max_body_bytes)},
    {"idle_timeout_s", CONFIG_INT, "60", 1, 3600, true, "close a connection idle this long",
        OFF(idle_timeout_s)},
    {"lien_sweep_s", CONFIG_INT, "5", 1, 3600, true,
        "release the liens past their expiry this often", OFF(lien_sweep_s)},
    {"allocation_expiry_s", CONFIG_INT, "30", 1, 3600, true,
        "expire the allocations whose window ended this often", OFF(allocation_expiry_s)},
    {"reserve_group_max", CONFIG_INT, "256", 1, 4096, true,
        "most reservations committed in one transaction", OFF(reserve_group_max)},
    {"audit_key", CONFIG_PATH, "", 0, 0, false,
        "Ed25519 private key (PEM) that signs the journal's blocks; unset: no sealing",
        OFF(audit_key)},
    {"audit_seal_s", CONFIG_INT, "5", 1, 3600, true, "seal the journal's new entries this often",
        OFF(audit_seal_s)},
    {"fairshare_period_s", CONFIG_INT, "60", 1, 86400, true,
        "recompute the fair-share tree from the database this often", OFF(fairshare_period_s)},
    {"fairshare_half_life_s", CONFIG_INT, "604800", 0, 315360000, true,
        "half-life of usage in fair share; 0: no decay", OFF(fairshare_half_life_s)},
    {"fairshare_algorithm", CONFIG_FS_ALGORITHM, "fair_tree", 0, 0, true,
        "fair-share algorithm: fair_tree or classic", OFF(fairshare_algorithm)},
    {"fairshare_pacing_permille", CONFIG_INT, "200", 0, 1000, true,
        "weight of pacing in the combined factor, in thousandths", OFF(fairshare_pacing_permille)},
    {"log_level", CONFIG_LOG_LEVEL, "info", 0, 0, true, "least severe level logged",
        OFF(log_level)},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

const struct config_key *
config_keys(size_t *n)
{
	*n = NKEYS;
	return keys;
}

const char *
config_type_name(enum config_type type)
{
	switch (type) {
	case CONFIG_STRING:
		return "string";
	case CONFIG_PATH:
		return "path";
	case CONFIG_INT:
		return "int";
	case CONFIG_SIZE:
		return "size";
	case CONFIG_LISTEN:
		return "host:port";
	case CONFIG_LOG_LEVEL:
	case CONFIG_FS_ALGORITHM:
		return "enum";
	}
	return "unknown";
}

static bool
is_string_type(enum config_type type)
{
	return type == CONFIG_STRING || type == CONFIG_PATH || type == CONFIG_LISTEN;
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Appends to the string in err, cutting at errlen. */
static void errcat(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errcat(char *err, size_t errlen, const char *fmt, ...)
{
	size_t len = strnlen(err, errlen);
	va_list ap;

	if (len + 1 >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + len, errlen - len, fmt, ap);
	va_end(ap);
}

/*
 * Splits "host:port" or "[v6addr]:port" into a new string *host (the caller frees it)
 * and *port. Returns 0, or -1 with a message in err.
 */
static int
parse_listen(const char *name, const char *text, char **host, int *port, char *err, size_t errlen)
{
	const char *host_start = text, *host_end, *port_text;
	long long v;

	if (text[0] == '[') {
		host_start = text + 1;
		if ((host_end = strchr(host_start, ']')) == NULL || host_end[1] != ':') {
			errf(err, errlen, "value \"%s\" of \"%s\" is not [address]:port", text,
			    name);
			return -1;
		}
		port_text = host_end + 2;
	} else {
		if ((host_end = strrchr(text, ':')) == NULL) {
			errf(err, errlen, "value \"%s\" of \"%s\" is not host:port", text, name);
			return -1;
		}
		if (strchr(text, ':') != host_end) {
			errf(err, errlen,
			    "value \"%s\" of \"%s\" is ambiguous: write an IPv6 address in "
			    "brackets, as in [::1]:8443",
			    text, name);
			return -1;
		}
		port_text = host_end + 1;
	}
	if (host_end == host_start) {
		errf(err, errlen,
		    "value \"%s\" of \"%s\" has no host (0.0.0.0 listens on every address)", text,
		    name);
		return -1;
	}
	for (const char *p = host_start; p < host_end; p++) {
		if (isspace((unsigned char)*p) || *p == '[' || *p == ']') {
			errf(err, errlen, "value \"%s\" of \"%s\" is not host:port", text, name);
			return -1;
		}
	}
	if (port_text[0] == '-' || confline_number(port_text, false, &v) != 0 || v < 1 ||
	    v > 65535) {
		errf(err, errlen, "port \"%s\" of \"%s\" is not a number in 1..65535", port_text,
		    name);
		return -1;
	}
	if ((*host = strndup(host_start, (size_t)(host_end - host_start))) == NULL) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	*port = (int)v;
	return 0;
}

/* Sets key k of cfg from its text. Returns 0, or -1 with a message (no location) in err. */
static int
set_value(
    struct config *cfg, const struct config_key *k, const char *text, char *err, size_t errlen)
{
	char *copy = NULL, *host = NULL;
	long long v = 0;
	int port = 0, r;

	if (text[0] == '\0') {
		errf(err, errlen, "\"%s\" has an empty value", k->name);
		return -1;
	}
	switch (k->type) {
	case CONFIG_STRING:
	case CONFIG_PATH:
		if ((copy = strdup(text)) == NULL)
			goto nomem;
		free(*SLOT(cfg, k, char *));
		*SLOT(cfg, k, char *) = copy;
		return 0;
	case CONFIG_LISTEN:
		if (parse_listen(k->name, text, &host, &port, err, errlen) != 0)
			return -1;
		if ((copy = strdup(text)) == NULL) {
			free(host);
			goto nomem;
		}
		/* One key, three fields: see struct config. */
		free(*SLOT(cfg, k, char *));
		*SLOT(cfg, k, char *) = copy;
		free(cfg->listen_host);
		cfg->listen_host = host;
		cfg->listen_port = port;
		return 0;
	case CONFIG_INT:
	case CONFIG_SIZE:
		if ((r = confline_number(text, k->type == CONFIG_SIZE, &v)) < 0) {
			if (k->type == CONFIG_SIZE)
				errf(err, errlen,
				    "value \"%s\" of \"%s\" is not a size: write a number of "
				    "bytes, "
				    "with an optional suffix k, M or G",
				    text, k->name);
			else
				errf(err, errlen, "value \"%s\" of \"%s\" is not an integer", text,
				    k->name);
			return -1;
		}
		if (r > 0 || v < k->min || v > k->max) {
			errf(err, errlen, "value %s of \"%s\" is out of range %lld..%lld", text,
			    k->name, k->min, k->max);
			return -1;
		}
		if (k->type == CONFIG_SIZE)
			*SLOT(cfg, k, long long) = v;
		else
			*SLOT(cfg, k, int) = (int)v;
		return 0;
	case CONFIG_LOG_LEVEL:
		if (!log_level_parse(text, SLOT(cfg, k, enum log_level))) {
			errf(err, errlen,
			    "value \"%s\" of \"%s\" is not one of fatal, error, warn, info, debug",
			    text, k->name);
			return -1;
		}
		return 0;
	case CONFIG_FS_ALGORITHM:
		if (strcmp(text, "fair_tree") == 0 || strcmp(text, "classic") == 0) {
			*SLOT(cfg, k, int) = strcmp(text, "classic") == 0;
			return 0;
		}
		errf(err, errlen, "value \"%s\" of \"%s\" is not one of fair_tree, classic", text,
		    k->name);
		return -1;
	}
	errf(err, errlen, "key \"%s\" has an unknown type", k->name);
	return -1;
nomem:
	errf(err, errlen, "out of memory");
	return -1;
}

/* Frees the strings of cfg and sets them to NULL; cfg itself stays. */
static void
config_cleanup(struct config *cfg)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (is_string_type(keys[i].type)) {
			free(*SLOT(cfg, &keys[i], char *));
			*SLOT(cfg, &keys[i], char *) = NULL;
		}
	}
	free(cfg->listen_host);
	cfg->listen_host = NULL;
}

/* Makes dst a deep copy of src. Returns 0, or -1 when out of memory (dst then owns nothing). */
static int
config_copy(struct config *dst, const struct config *src)
{
	*dst = *src;
	/* dst must own nothing before the first copy, so that a failure frees only copies. */
	for (size_t i = 0; i < NKEYS; i++)
		if (is_string_type(keys[i].type))
			*SLOT(dst, &keys[i], char *) = NULL;
	dst->listen_host = NULL;
	for (size_t i = 0; i < NKEYS; i++) {
		const char *s;

		if (!is_string_type(keys[i].type) || (s = *CSLOT(src, &keys[i], char *)) == NULL)
			continue;
		if ((*SLOT(dst, &keys[i], char *) = strdup(s)) == NULL)
			goto fail;
	}
	if (src->listen_host != NULL && (dst->listen_host = strdup(src->listen_host)) == NULL)
		goto fail;
	return 0;
fail:
	config_cleanup(dst);
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
		/* An empty default is an optional key: NULL until the file sets it. */
		if (keys[i].default_value != NULL && keys[i].default_value[0] != '\0' &&
		    set_value(cfg, &keys[i], keys[i].default_value, err, sizeof(err)) != 0) {
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
	config_cleanup(cfg);
	free(cfg);
}

static const struct config_key *
find_key(const char *name, size_t *index)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].name, name) == 0) {
			*index = i;
			return &keys[i];
		}
	}
	return NULL;
}

/* What config_load's callback needs: the copy being filled and where each key was set. */
struct load_ctx {
	struct config *tmp;
	int seen_on[NKEYS];
};

static int
load_setting(void *arg, const char *key, const char *value, int lineno, char *msg, size_t msglen)
{
	struct load_ctx *ctx = arg;
	const struct config_key *k;
	size_t i;

	if ((k = find_key(key, &i)) == NULL) {
		errf(msg, msglen, "unknown key \"%s\"", key);
		return -1;
	}
	if (ctx->seen_on[i] != 0) {
		errf(msg, msglen, "\"%s\" is set twice (first on line %d)", key, ctx->seen_on[i]);
		return -1;
	}
	ctx->seen_on[i] = lineno;
	return set_value(ctx->tmp, k, value, msg, msglen);
}

int
config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct load_ctx ctx = {0};
	struct config tmp;
	FILE *f;
	int rc = -1;

	if ((f = fopen(path, "r")) == NULL) {
		errf(err, errlen, "%s: could not open: %s", path, strerror(errno));
		return -1;
	}
	/* Parse into a copy: a file with an error must leave cfg as it was. */
	if (config_copy(&tmp, cfg) != 0) {
		errf(err, errlen, "%s: out of memory", path);
		fclose(f);
		return -1;
	}
	ctx.tmp = &tmp;
	if (confline_read(f, path, load_setting, &ctx, err, errlen) != 0)
		goto out;
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].default_value == NULL && ctx.seen_on[i] == 0) {
			errf(err, errlen, "%s: required key \"%s\" is not set", path, keys[i].name);
			goto out;
		}
	}
	config_cleanup(cfg);
	*cfg = tmp;
	rc = 0;
out:
	if (rc != 0)
		config_cleanup(&tmp);
	fclose(f);
	return rc;
}

static bool
same_string(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
same_value(const struct config *a, const struct config *b, const struct config_key *k)
{
	switch (k->type) {
	case CONFIG_STRING:
	case CONFIG_PATH:
		return same_string(*CSLOT(a, k, char *), *CSLOT(b, k, char *));
	case CONFIG_LISTEN:
		/* By address, not spelling: "[::1]:80" and "[::1]:080" are the same listener. */
		return same_string(a->listen_host, b->listen_host) &&
		    a->listen_port == b->listen_port;
	case CONFIG_INT:
	case CONFIG_FS_ALGORITHM:
		return *CSLOT(a, k, int) == *CSLOT(b, k, int);
	case CONFIG_SIZE:
		return *CSLOT(a, k, long long) == *CSLOT(b, k, long long);
	case CONFIG_LOG_LEVEL:
		return *CSLOT(a, k, enum log_level) == *CSLOT(b, k, enum log_level);
	}
	return false;
}

int
config_reload_merge(struct config *running, const struct config *fresh, char *err, size_t errlen)
{
	char *copies[NKEYS] = {NULL};
	bool apply[NKEYS] = {false};
	size_t kept[NKEYS], nkept = 0;

	/* Copy every new string first: out of memory must leave running untouched. */
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &keys[i];
		const char *s;

		if (same_value(running, fresh, k))
			continue;
		/* The listener is bound once, at start, whatever the table says. */
		if (!k->reloadable || k->type == CONFIG_LISTEN) {
			kept[nkept++] = i;
			continue;
		}
		apply[i] = true;
		if (is_string_type(k->type) && (s = *CSLOT(fresh, k, char *)) != NULL &&
		    (copies[i] = strdup(s)) == NULL) {
			for (size_t j = 0; j < i; j++)
				free(copies[j]);
			errf(err, errlen, "out of memory");
			return -1;
		}
	}
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &keys[i];

		if (!apply[i])
			continue;
		switch (k->type) {
		case CONFIG_STRING:
		case CONFIG_PATH:
		case CONFIG_LISTEN:
			free(*SLOT(running, k, char *));
			*SLOT(running, k, char *) = copies[i];
			break;
		case CONFIG_INT:
		case CONFIG_FS_ALGORITHM:
			*SLOT(running, k, int) = *CSLOT(fresh, k, int);
			break;
		case CONFIG_SIZE:
			*SLOT(running, k, long long) = *CSLOT(fresh, k, long long);
			break;
		case CONFIG_LOG_LEVEL:
			*SLOT(running, k, enum log_level) = *CSLOT(fresh, k, enum log_level);
			break;
		}
	}
	if (nkept == 0)
		return 0;
	errf(err, errlen, "%s", "");
	for (size_t j = 0; j < nkept; j++)
		errcat(err, errlen, "%s\"%s\"",
		    j == 0               ? ""
		        : j == nkept - 1 ? " and "
		                         : ", ",
		    keys[kept[j]].name);
	errcat(err, errlen, " changed but only a restart applies %s: keeping the running %s",
	    nkept == 1 ? "it" : "them", nkept == 1 ? "value" : "values");
	return 1;
}

void
config_print_help(FILE *f)
{
	fprintf(
	    f, "Keys of the allotd configuration file (\"key = value\" lines, '#' comments):\n");
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &keys[i];

		fprintf(f, "\n%s (%s, ", k->name, config_type_name(k->type));
		if (k->default_value != NULL && k->default_value[0] == '\0')
			fprintf(f, "optional");
		else if (k->default_value != NULL)
			fprintf(f, "default %s", k->default_value);
		else
			fprintf(f, "required");
		if (k->type == CONFIG_INT || k->type == CONFIG_SIZE)
			fprintf(f, ", %lld..%lld", k->min, k->max);
		if (k->type == CONFIG_SIZE)
			fprintf(f, " bytes, suffixes k, M, G");
		if (k->type == CONFIG_LOG_LEVEL) {
			fprintf(f, ", one of");
			for (int l = LOG_FATAL; l <= LOG_DEBUG; l++)
				fprintf(f, "%s %s", l == LOG_FATAL ? "" : ",",
				    log_level_name((enum log_level)l));
		}
		if (k->type == CONFIG_FS_ALGORITHM)
			fprintf(f, ", one of fair_tree, classic");
		fprintf(f, ", %s)\n    %s\n",
		    k->reloadable ? "reloads on SIGHUP" : "needs a restart", k->help);
	}
}
