/*
 * slurm_conf: the configuration of allot-slurm and allot-slurm-sync (one file,
 * the syntax of lib/confline), and the connection to Allot it describes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "confline.h"
#include "slurm_conf.h"

struct number_key {
	const char *name;
	long long min, max;
	long long *slot;
};

/* Finds the numeric key called name: its bounds and where it goes in c. */
static bool
conf_number_key(struct slurm_conf *c, const char *name, struct number_key *out)
{
	const struct number_key keys[] = {
	    {"timeout_ms", 100, 600000, &c->timeout_ms},
	    {"lien_grace_s", 0, 604800, &c->lien_grace_s},
	    {"lease_gpu_hours", 1, 1000000, &c->lease_gpu_hours},
	    {"lease_ttl_s", 60, 30 * 86400, &c->lease_ttl_s},
	    {"sync_interval_s", 1, 86400, &c->sync_interval_s},
	    {"site_factor_max", 1, 1000000000, &c->site_factor_max},
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(keys[i].name, name) == 0) {
			*out = keys[i];
			return true;
		}
	}
	return false;
}

static int
conf_setting(void *arg, const char *key, const char *value, int lineno, char *msg, size_t msglen)
{
	struct slurm_conf *c = arg;
	struct number_key nk;
	char *dst = NULL;
	size_t dstlen = 0;

	(void)lineno;
	if (strcmp(key, "server") == 0) {
		dst = c->server, dstlen = sizeof(c->server);
		c->seen_server = true;
	} else if (strcmp(key, "site") == 0) {
		dst = c->site, dstlen = sizeof(c->site);
		c->seen_site = true;
	} else if (strcmp(key, "tls_cert") == 0) {
		dst = c->tls_cert, dstlen = sizeof(c->tls_cert);
	} else if (strcmp(key, "tls_key") == 0) {
		dst = c->tls_key, dstlen = sizeof(c->tls_key);
	} else if (strcmp(key, "tls_ca") == 0) {
		dst = c->tls_ca, dstlen = sizeof(c->tls_ca);
	} else if (strcmp(key, "scontrol") == 0) {
		dst = c->scontrol, dstlen = sizeof(c->scontrol);
	} else if (strcmp(key, "squeue") == 0) {
		dst = c->squeue, dstlen = sizeof(c->squeue);
	} else if (strcmp(key, "state_dir") == 0) {
		dst = c->state_dir, dstlen = sizeof(c->state_dir);
	} else if (strcmp(key, "lease_projects") == 0) {
		dst = c->lease_projects, dstlen = sizeof(c->lease_projects);
	} else if (strcmp(key, "lease_partition") == 0) {
		dst = c->lease_partition, dstlen = sizeof(c->lease_partition);
	} else if (conf_number_key(c, key, &nk)) {
		long long v;

		if (confline_number(value, false, &v) != 0 || v < nk.min || v > nk.max) {
			snprintf(msg, msglen, "%s must be a number from %lld to %lld", key, nk.min,
			    nk.max);
			return -1;
		}
		*nk.slot = v;
		return 0;
	} else if (strcmp(key, "unreachable") == 0) {
		if (strcmp(value, "admit") != 0 && strcmp(value, "refuse") != 0) {
			snprintf(
			    msg, msglen, "unreachable must be admit or refuse, not \"%s\"", value);
			return -1;
		}
		c->admit_unreachable = value[0] == 'a';
		return 0;
	} else {
		snprintf(msg, msglen, "unknown key \"%s\"", key);
		return -1;
	}
	if (strlen(value) >= dstlen) {
		snprintf(msg, msglen, "%s is longer than %zu bytes", key, dstlen - 1);
		return -1;
	}
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

int
slurm_conf_load(const char *path, struct slurm_conf *c)
{
	char err[1200];
	FILE *f;
	int r;

	memset(c, 0, sizeof(*c));
	snprintf(c->scontrol, sizeof(c->scontrol), "scontrol");
	c->timeout_ms = 2000;
	c->lien_grace_s = 3600;
	snprintf(c->state_dir, sizeof(c->state_dir), "/var/lib/allot-slurm");
	snprintf(c->squeue, sizeof(c->squeue), "squeue");
	c->sync_interval_s = 60;
	c->site_factor_max = 100000;
	c->lease_gpu_hours = 10;
	c->lease_ttl_s = 86400;
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "allot-slurm: %s: %s\n", path, strerror(errno));
		return -1;
	}
	r = confline_read(f, path, conf_setting, c, err, sizeof(err));
	fclose(f);
	if (r != 0) {
		fprintf(stderr, "allot-slurm: %s\n", err);
		return -1;
	}
	if (!c->seen_server || !c->seen_site) {
		fprintf(stderr, "allot-slurm: %s: server and site are required\n", path);
		return -1;
	}
	if (c->lease_projects[0] != '\0' && c->lease_partition[0] == '\0') {
		fprintf(stderr, "allot-slurm: %s: lease_projects needs lease_partition\n", path);
		return -1;
	}
	return 0;
}

/* True when project holds a lease: it is one of lease_projects. */
bool
slurm_conf_leased(const struct slurm_conf *c, const char *project)
{
	size_t n = strlen(project);

	for (const char *p = c->lease_projects; *p != '\0';) {
		size_t len = strcspn(p, ", ");

		if (len == n && strncmp(p, project, n) == 0)
			return true;
		p += len;
		p += strspn(p, ", ");
	}
	return false;
}

struct allot_client *
slurm_conf_connect(const struct slurm_conf *c)
{
	struct allot_options o;
	struct allot_client *client;
	struct allot_error e;

	allot_options_init(&o);
	o.server_url = c->server;
	o.cert_file = c->tls_cert[0] != '\0' ? c->tls_cert : NULL;
	o.key_file = c->tls_key[0] != '\0' ? c->tls_key : NULL;
	o.ca_file = c->tls_ca[0] != '\0' ? c->tls_ca : NULL;
	o.wire = ALLOT_WIRE_PROTOBUF;
	/* slurmctld waits on every call: one short attempt, no retry. */
	o.connect_timeout_ms = c->timeout_ms;
	o.timeout_ms = c->timeout_ms;
	o.deadline_ms = c->timeout_ms;
	o.max_attempts = 1;
	if ((client = allot_connect(&o, &e)) == NULL)
		fprintf(stderr, "allot-slurm: %s: %s\n", e.code_name, e.msg);
	return client;
}
