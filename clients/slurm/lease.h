/*
 * lease: what allot-slurm keeps on the site's disk so that Slurm can go on
 * admitting jobs, within a bound, while Allot cannot be reached.
 *
 * A lease is a campaign lien (Ledger.ReserveCampaign) that allot-slurm holds per
 * project: Allot has already set its GPU-hours aside. While Allot does not
 * answer, the prolog admits a job against the lease when the lease's rest covers
 * the job's whole time limit, and writes the job to the journal; the epilog
 * writes its end. When Allot answers again, the journal is replayed in order
 * (Reserve drawing from the campaign, Heartbeat, Settle), each call idempotent by
 * the job's lien id, so each job is in the ledger exactly once; then the journal
 * is emptied. Overspend while disconnected is bounded by the lease: jobs are
 * admitted only up to what it holds, and each runs at most its time limit.
 *
 * Files in the state folder, each written under the lock of DIR/lock:
 *   lease.PROJECT  "LIEN_ID HELD_UNITS EXPIRES_EPOCH UNITS_PER_GPU_HOUR\n",
 *                  replaced atomically
 *   journal        "start PROJECT JOB COST GPUS CPUS NODES LIMIT_S PARTITION USER\n"
 *                  and "end JOB ELAPSED_S\n", appended and fsync'ed
 */
#ifndef ALLOT_SLURM_LEASE_H
#define ALLOT_SLURM_LEASE_H

#include <stdbool.h>
#include <stddef.h>

struct lease {
	char lien_id[256];
	long long held_units;
	long long expires;            /* Unix time */
	long long units_per_gpu_hour; /* the lease partition's price, from a Quote */
};

/* One journal line. */
struct lease_entry {
	bool start;
	char project[128];
	char job_id[64];
	long long cost_units;
	int gpus, cpus, nodes;
	long long limit_s;
	long long elapsed_s; /* end */
	char partition[128];
	char user[128];
};

/* True when text is 1 to 127 characters of [A-Za-z0-9_.@+-]: safe in a line. */
bool lease_word(const char *text);

/*
 * Parses one journal line (without its newline). Returns 0, or -1 with the reason
 * in err.
 */
int lease_parse_line(const char *line, struct lease_entry *e, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Formats e as its journal line, with the newline, into out. Returns the length or -1. */
int lease_format_line(const struct lease_entry *e, char *out, size_t outlen);

/*
 * Takes the state folder's lock (creating the folder and its lock file). Returns
 * the lock's descriptor, or -1 with the reason in err. lease_unlock releases it.
 */
int lease_lock(const char *dir, char *err, size_t errlen) __attribute__((warn_unused_result));
void lease_unlock(int fd);

/* Reads the lease of project: 1 with *l, 0 when there is none, -1 with err. */
int lease_read(const char *dir, const char *project, struct lease *l, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Replaces the lease of project (temp file, fsync, rename). 0 or -1 with err. */
int lease_write(const char *dir, const char *project, const struct lease *l, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/*
 * Reads the journal into a new array (*entries, *n; the caller frees it).
 * Returns 0, or -1 with the line that does not parse in err.
 */
int lease_journal_read(const char *dir, struct lease_entry **entries, size_t *n, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* Appends e to the journal and fsyncs it. 0 or -1 with err. */
int lease_journal_append(const char *dir, const struct lease_entry *e, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Empties the journal (after a whole replay). 0 or -1 with err. */
int lease_journal_clear(const char *dir, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* What the journal's started jobs of project spent of its lease. */
long long lease_spent(const struct lease_entry *entries, size_t n, const char *project);

#endif
