/*
 * slurm_job: what allot-slurm reads of Slurm's own words, with no Slurm library:
 * a job as `scontrol show job -o ID` prints it (one line of Key=Value fields),
 * Slurm's durations, and the GPUs a job asked for in its TRES strings.
 * Pure functions, tested in tests/unit/slurm_job.c.
 */
#ifndef ALLOT_SLURM_JOB_H
#define ALLOT_SLURM_JOB_H

#include <stdbool.h>
#include <stddef.h>

/* What allot-slurm needs of a job. Strings are empty when scontrol did not say. */
struct slurm_job {
	char job_id[64];
	char account[128];
	char user[128]; /* UserId's name, "ada" of "ada(1001)" */
	char partition[128];
	char state[32];
	long long time_limit_s; /* -1: UNLIMITED */
	long long run_time_s;
	int nodes;
	int cpus;
	int gpus; /* of the whole job */
};

/*
 * Parses Slurm's duration: "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM",
 * "D-HH:MM:SS"; "UNLIMITED" and "INFINITE" are -1. Returns 0 with seconds in
 * *out, or -1 when text is none of these.
 */
int slurm_duration(const char *text, long long *out) __attribute__((warn_unused_result));

/*
 * The GPUs of one TRES string, as Slurm 22.05 prints them in TresPerNode and
 * TresPerJob ("gres:gpu:2", "gres/gpu:a100:2", "gres/gpu=2", several
 * comma-separated, "gres:gpu" meaning one). Returns the count (0 when no GPU is
 * named), or -1 on a count that is not a number of at most 6 digits.
 */
int slurm_tres_gpus(const char *tres) __attribute__((warn_unused_result));

/*
 * Fills job from one line of `scontrol show job -o`. Returns 0, or -1 with the
 * reason in err (no JobId, a duration or a number that does not parse, GPUs per
 * node times nodes above a million).
 */
int slurm_job_parse(const char *line, struct slurm_job *job, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* A pending job as allot-slurm-sync reads it: `squeue -o '%i %a %u'`. */
struct slurm_pending {
	char job_id[64];
	char account[128];
	char user[128];
};

/*
 * Parses "JOBID ACCOUNT USER". Returns 0, or -1 with the reason in err (a field
 * missing or too long, or a fourth one).
 */
int slurm_pending_parse(const char *line, struct slurm_pending *p, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
