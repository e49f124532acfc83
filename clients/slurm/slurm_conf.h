/*
 * slurm_conf: allot-slurm's configuration (README "Wiring Slurm to Allot").
 */
#ifndef ALLOT_SLURM_CONF_H
#define ALLOT_SLURM_CONF_H

#include <stdbool.h>

#include "allot.h"

#define SLURM_CONF_DEFAULT "/etc/allot/slurm.conf"

struct slurm_conf {
	char server[512];
	char tls_cert[1024];
	char tls_key[1024];
	char tls_ca[1024];
	char site[128];
	char scontrol[1024];
	long long timeout_ms;
	long long lien_grace_s;
	bool admit_unreachable; /* unreachable = admit */
	bool seen_server, seen_site;
	/* Leases (lease.h): projects (Slurm accounts), their size, life and partition. */
	char state_dir[1024];
	char lease_projects[2048];
	char lease_partition[128];
	long long lease_gpu_hours;
	long long lease_ttl_s;
	/* allot-slurm-sync */
	char squeue[1024];
	long long sync_interval_s;
	long long site_factor_max;
};

/* Reads path into c (defaults first). Returns 0, or -1 after saying why on stderr. */
int slurm_conf_load(const char *path, struct slurm_conf *c) __attribute__((warn_unused_result));

/* True when project holds a lease: it is one of lease_projects. */
bool slurm_conf_leased(const struct slurm_conf *c, const char *project);

/*
 * A client of the configured allotd: one attempt of timeout_ms, no retry, since
 * slurmctld waits on it. NULL after saying why on stderr.
 */
struct allot_client *slurm_conf_connect(const struct slurm_conf *c);

#endif
