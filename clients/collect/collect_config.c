/*
 * collect_config: the table of allot-collect's keys and its reader. The syntax is
 * lib/confline's, as allotd's; the keys and what they must say together are the
 * collector's. Whether files exist, URLs answer or the zone is known is left to
 * the modules that use them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "collect_config.h"
#include "confline.h"

#define OFF(f) offsetof(struct collect_config, f)
#define SLOT(cfg, k, type) ((type *)(void *)((char *)(cfg) + (k)->offset))
#define CSLOT(cfg, k, type) ((const type *)(const void *)((const char *)(cfg) + (k)->offset))

/* sacct's fields when sacct_fields is not set: what the sacct parser needs. */
#define DEFAULT_SACCT_FIELDS \
	"JobID,JobIDRaw,Start,End,Account,User,Partition,AllocTRES,NCPUS,NNodes,ElapsedRaw,State"

static const struct collect_config_key keys[] = {
    {"site", CCONF_STRING, NULL, 0, 0, false,
        "the site's name in allot, as its certificate's scope", OFF(site)},
    {"server", CCONF_STRING, NULL, 0, 0, false, "allotd's URL, https://host:port", OFF(server)},
    {"tls_cert", CCONF_PATH, NULL, 0, 0, false, "the collector's client certificate (PEM)",
        OFF(tls_cert)},
    {"tls_key", CCONF_PATH, NULL, 0, 0, false, "its private key", OFF(tls_key)},
    {"tls_ca", CCONF_PATH, NULL, 0, 0, false, "CA that signs allotd's certificate", OFF(tls_ca)},
    {"timezone", CCONF_STRING, "", 0, 0, false,
        "IANA zone of the times sacct prints (empty: the machine's)", OFF(timezone)},
    {"spool_dir", CCONF_PATH, "/var/spool/allot-collect", 0, 0, false,
        "directory of batches not yet acknowledged", OFF(spool_dir)},
    {"spool_max_bytes", CCONF_SIZE, "1G", 0, 1LL << 40, true,
        "stop reading when the spool holds this much (0: until the disk is full)",
        OFF(spool_max_bytes)},
    {"spool_retry_s", CCONF_INT, "5", 1, 3600, true,
        "while the spool is full, try to write the held batch this often", OFF(spool_retry_s)},
    {"batch_records", CCONF_INT, "10000", 1, 100000, true, "records or samples per batch",
        OFF(batch_records)},
    {"batch_max_bytes", CCONF_SIZE, "2M", 4096, 268435456, true,
        "cut a batch before it packs to more than this (keep it under allotd's "
        "max_body_bytes)",
        OFF(batch_max_bytes)},
    {"batch_delay_ms", CCONF_INT, "1000", 0, 600000, true,
        "spool a batch not yet full once its first record is this old", OFF(batch_delay_ms)},
    {"send_timeout_s", CCONF_INT, "60", 1, 3600, false, "limit of one call to allotd",
        OFF(send_timeout_s)},
    {"backoff_base_ms", CCONF_INT, "500", 1, 600000, true, "first wait after a failed send",
        OFF(backoff_base_ms)},
    {"backoff_max_ms", CCONF_INT, "60000", 1, 3600000, true, "longest wait between sends",
        OFF(backoff_max_ms)},
    {"partitions", CCONF_STRING, "", 0, 0, true,
        "the partitions whose jobs are sent, comma-separated (empty: all); a job's "
        "steps follow it",
        OFF(partitions)},
    {"sacct_command", CCONF_STRING, "", 0, 0, true,
        "sacct to run every sacct_interval_s (empty: no sacct source)", OFF(sacct_command)},
    {"sacct_fields", CCONF_STRING, DEFAULT_SACCT_FIELDS, 0, 0, true,
        "the --format list given to sacct", OFF(sacct_fields)},
    {"sacct_interval_s", CCONF_INT, "300", 1, 86400, true, "how often sacct runs",
        OFF(sacct_interval_s)},
    {"sacct_window_s", CCONF_INT, "3600", 1, 31 * 86400, true,
        "how far back past the last run each run reads again", OFF(sacct_window_s)},
    {"input_file", CCONF_PATH, "", 0, 0, false, "a file or FIFO to read records from (empty: none)",
        OFF(input_file)},
    {"input_format", CCONF_STRING, "jsonl", 0, 0, false,
        "format of input_file: jsonl, sacct, jobcomp, dcgm, amd", OFF(input_format)},
    {"dcgm_url", CCONF_STRING, "", 0, 0, true,
        "DCGM exporter to scrape, http://host:port/metrics (empty: none)", OFF(dcgm_url)},
    {"amd_url", CCONF_STRING, "", 0, 0, true, "AMD device metrics exporter to scrape",
        OFF(amd_url)},
    {"scrape_interval_s", CCONF_INT, "30", 1, 3600, true, "how often the exporters are scraped",
        OFF(scrape_interval_s)},
    {"job_label", CCONF_STRING, "", 0, 0, true,
        "exporter label naming the job (empty: hpc_job, jobid, job_id)", OFF(job_label)},
    {"metrics_listen", CCONF_LISTEN, "127.0.0.1:9465", 0, 0, false,
        "loopback host:port of the collector's /metrics (empty: none)", OFF(metrics_listen)},
    {"log_level", CCONF_LOGLEVEL, "info", 0, 0, true, "least severe level logged", OFF(log_level)},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const formats[] = {"jsonl", "sacct", "jobcomp", "dcgm", "amd", "rocm-smi"};

const struct collect_config_key *
collect_config_keys(size_t *n)
{
	*n = NKEYS;
	return keys;
}

static bool
is_string(enum collect_config_type t)
{
	return t == CCONF_STRING || t == CCONF_PATH || t == CCONF_LISTEN;
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

/* The metrics listener must be loopback: /metrics is plain HTTP without authentication. */
static int
parse_listen(struct collect_config *cfg, const char *text, char *err, size_t errlen)
{
	const char *colon = strrchr(text, ':');
	long long port;
	char *host;

	if (text[0] == '\0') {
		free(cfg->metrics_host);
		cfg->metrics_host = strdup("");
		cfg->metrics_port = 0;
		return cfg->metrics_host != NULL ? 0 : -1;
	}
	if (colon == NULL || colon == text || confline_number(colon + 1, false, &port) != 0 ||
	    port < 1 || port > 65535) {
		errf(err, errlen, "value \"%s\" of \"metrics_listen\" is not host:port", text);
		return -1;
	}
	if ((host = strndup(text, (size_t)(colon - text))) == NULL) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	if (strcmp(host, "localhost") != 0 && strncmp(host, "127.", 4) != 0 &&
	    strcmp(host, "[::1]") != 0) {
		errf(err, errlen,
		    "value \"%s\" of \"metrics_listen\" is not a loopback address (127.x.x.x, "
		    "[::1] or localhost)",
		    text);
		free(host);
		return -1;
	}
	free(cfg->metrics_host);
	cfg->metrics_host = host;
	cfg->metrics_port = (int)port;
	return 0;
}

static int
set_value(struct collect_config *cfg, const struct collect_config_key *k, const char *text,
    char *err, size_t errlen)
{
	long long v;
	char *copy;
	int r;

	switch (k->type) {
	case CCONF_LISTEN:
		if (parse_listen(cfg, text, err, errlen) != 0)
			return -1;
		/* fall through */
	case CCONF_STRING:
	case CCONF_PATH:
		if (text[0] == '\0' && k->default_value == NULL) {
			errf(err, errlen, "\"%s\" has an empty value", k->name);
			return -1;
		}
		if ((copy = strdup(text)) == NULL) {
			errf(err, errlen, "out of memory");
			return -1;
		}
		free(*SLOT(cfg, k, char *));
		*SLOT(cfg, k, char *) = copy;
		return 0;
	case CCONF_INT:
	case CCONF_SIZE:
		if ((r = confline_number(text, k->type == CCONF_SIZE, &v)) < 0) {
			errf(err, errlen, "value \"%s\" of \"%s\" is not %s", text, k->name,
			    k->type == CCONF_SIZE ? "a size (bytes, with an optional k, M or G)"
			                          : "an integer");
			return -1;
		}
		if (r > 0 || v < k->min || v > k->max) {
			errf(err, errlen, "value %s of \"%s\" is out of range %lld..%lld", text,
			    k->name, k->min, k->max);
			return -1;
		}
		if (k->type == CCONF_SIZE)
			*SLOT(cfg, k, long long) = v;
		else
			*SLOT(cfg, k, int) = (int)v;
		return 0;
	case CCONF_LOGLEVEL:
		if (!log_level_parse(text, SLOT(cfg, k, enum log_level))) {
			errf(err, errlen,
			    "value \"%s\" of \"%s\" is not one of fatal, error, warn, info, debug",
			    text, k->name);
			return -1;
		}
		return 0;
	}
	return -1;
}

static void
config_cleanup(struct collect_config *cfg)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (is_string(keys[i].type)) {
			free(*SLOT(cfg, &keys[i], char *));
			*SLOT(cfg, &keys[i], char *) = NULL;
		}
	}
	free(cfg->metrics_host);
	cfg->metrics_host = NULL;
}

static int
config_copy(struct collect_config *dst, const struct collect_config *src)
{
	*dst = *src;
	for (size_t i = 0; i < NKEYS; i++)
		if (is_string(keys[i].type))
			*SLOT(dst, &keys[i], char *) = NULL;
	dst->metrics_host = NULL;
	for (size_t i = 0; i < NKEYS; i++) {
		const char *s;

		if (!is_string(keys[i].type) || (s = *CSLOT(src, &keys[i], char *)) == NULL)
			continue;
		if ((*SLOT(dst, &keys[i], char *) = strdup(s)) == NULL)
			goto fail;
	}
	if (src->metrics_host != NULL && (dst->metrics_host = strdup(src->metrics_host)) == NULL)
		goto fail;
	return 0;
fail:
	config_cleanup(dst);
	return -1;
}

struct collect_config *
collect_config_new(void)
{
	struct collect_config *cfg;
	char err[256];

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return NULL;
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].default_value != NULL &&
		    set_value(cfg, &keys[i], keys[i].default_value, err, sizeof(err)) != 0) {
			collect_config_free(cfg);
			return NULL;
		}
	}
	return cfg;
}

void
collect_config_free(struct collect_config *cfg)
{
	if (cfg == NULL)
		return;
	config_cleanup(cfg);
	free(cfg);
}

struct load_ctx {
	struct collect_config *tmp;
	int seen[NKEYS];
};

static int
load_setting(void *arg, const char *key, const char *value, int lineno, char *msg, size_t msglen)
{
	struct load_ctx *ctx = arg;
	size_t i;

	for (i = 0; i < NKEYS && strcmp(keys[i].name, key) != 0; i++)
		;
	if (i == NKEYS) {
		errf(msg, msglen, "unknown key \"%s\"", key);
		return -1;
	}
	if (ctx->seen[i] != 0) {
		errf(msg, msglen, "\"%s\" is set twice (first on line %d)", key, ctx->seen[i]);
		return -1;
	}
	ctx->seen[i] = lineno;
	return set_value(ctx->tmp, &keys[i], value, msg, msglen);
}

/* What the keys must say together. */
static int
check_together(const struct collect_config *cfg, const char *path, char *err, size_t errlen)
{
	bool known = false;

	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		known = known || strcmp(cfg->input_format, formats[i]) == 0;
	if (!known) {
		errf(err, errlen,
		    "%s: input_format \"%s\" is not one of jsonl, sacct, jobcomp, dcgm, amd, "
		    "rocm-smi",
		    path, cfg->input_format);
		return -1;
	}
	for (const char *p = cfg->partitions; p[0] != '\0';) {
		size_t len = strcspn(p, ",");

		bool trailing = p[len] == ',' && p[len + 1] == '\0';

		if (len == 0 || trailing || strcspn(p, " \t") < len) {
			errf(err, errlen,
			    "%s: partitions \"%s\" is not a comma-separated list of partition "
			    "names",
			    path, cfg->partitions);
			return -1;
		}
		p += len + (p[len] == ',');
	}
	if (cfg->backoff_max_ms < cfg->backoff_base_ms) {
		errf(err, errlen, "%s: backoff_max_ms %d is less than backoff_base_ms %d", path,
		    cfg->backoff_max_ms, cfg->backoff_base_ms);
		return -1;
	}
	if (strncmp(cfg->server, "https://", 8) != 0 && strncmp(cfg->server, "http://", 7) != 0) {
		errf(err, errlen, "%s: server \"%s\" is not an https:// URL", path, cfg->server);
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		const char *u = i == 0 ? cfg->dcgm_url : cfg->amd_url;

		if (u[0] != '\0' && strncmp(u, "http://", 7) != 0) {
			errf(err, errlen, "%s: %s \"%s\" is not an http:// URL", path,
			    i == 0 ? "dcgm_url" : "amd_url", u);
			return -1;
		}
	}
	return 0;
}

int
collect_config_load(struct collect_config *cfg, const char *path, char *err, size_t errlen)
{
	struct load_ctx ctx = {0};
	struct collect_config tmp;
	FILE *f;
	int rc = -1;

	if ((f = fopen(path, "r")) == NULL) {
		errf(err, errlen, "%s: could not open: %s", path, strerror(errno));
		return -1;
	}
	if (config_copy(&tmp, cfg) != 0) {
		errf(err, errlen, "%s: out of memory", path);
		fclose(f);
		return -1;
	}
	ctx.tmp = &tmp;
	if (confline_read(f, path, load_setting, &ctx, err, errlen) != 0)
		goto out;
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].default_value == NULL && ctx.seen[i] == 0) {
			errf(err, errlen, "%s: required key \"%s\" is not set", path, keys[i].name);
			goto out;
		}
	}
	if (check_together(&tmp, path, err, errlen) != 0)
		goto out;
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
same(const struct collect_config *a, const struct collect_config *b,
    const struct collect_config_key *k)
{
	switch (k->type) {
	case CCONF_STRING:
	case CCONF_PATH:
	case CCONF_LISTEN:
		return strcmp(*CSLOT(a, k, char *), *CSLOT(b, k, char *)) == 0;
	case CCONF_INT:
		return *CSLOT(a, k, int) == *CSLOT(b, k, int);
	case CCONF_SIZE:
		return *CSLOT(a, k, long long) == *CSLOT(b, k, long long);
	case CCONF_LOGLEVEL:
		return *CSLOT(a, k, enum log_level) == *CSLOT(b, k, enum log_level);
	}
	return false;
}

int
collect_config_reload_merge(
    struct collect_config *running, const struct collect_config *fresh, char *err, size_t errlen)
{
	char *copies[NKEYS] = {NULL};
	bool apply[NKEYS] = {false};
	size_t used = 0;
	int rc = 0;

	err[0] = '\0';
	for (size_t i = 0; i < NKEYS; i++) {
		const struct collect_config_key *k = &keys[i];

		if (same(running, fresh, k))
			continue;
		if (!k->reloadable || k->type == CCONF_LISTEN) {
			used += (size_t)snprintf(err + used, used < errlen ? errlen - used : 0,
			    "%s\"%s\"", rc == 0 ? "" : ", ", k->name);
			if (used >= errlen)
				used = errlen - 1;
			rc = 1;
			continue;
		}
		apply[i] = true;
		if (is_string(k->type) && (copies[i] = strdup(*CSLOT(fresh, k, char *))) == NULL) {
			for (size_t j = 0; j < i; j++)
				free(copies[j]);
			errf(err, errlen, "out of memory");
			return -1;
		}
	}
	for (size_t i = 0; i < NKEYS; i++) {
		const struct collect_config_key *k = &keys[i];

		if (!apply[i])
			continue;
		if (is_string(k->type)) {
			free(*SLOT(running, k, char *));
			*SLOT(running, k, char *) = copies[i];
		} else if (k->type == CCONF_INT)
			*SLOT(running, k, int) = *CSLOT(fresh, k, int);
		else if (k->type == CCONF_SIZE)
			*SLOT(running, k, long long) = *CSLOT(fresh, k, long long);
		else
			*SLOT(running, k, enum log_level) = *CSLOT(fresh, k, enum log_level);
	}
	if (rc == 1 && used + 1 < errlen)
		snprintf(err + used, errlen - used,
		    " changed but only a restart applies: keeping "
		    "the running values");
	return rc;
}

void
collect_config_print_help(FILE *f)
{
	fprintf(f, "Keys of the allot-collect configuration file (\"key = value\" lines):\n");
	for (size_t i = 0; i < NKEYS; i++) {
		const struct collect_config_key *k = &keys[i];

		fprintf(f, "\n%s (", k->name);
		if (k->default_value == NULL)
			fprintf(f, "required");
		else
			fprintf(f, "default \"%s\"", k->default_value);
		if (k->type == CCONF_INT || k->type == CCONF_SIZE)
			fprintf(f, ", %lld..%lld", k->min, k->max);
		fprintf(f, ", %s)\n    %s\n",
		    k->reloadable ? "reloads on SIGHUP" : "needs a restart", k->help);
	}
}
