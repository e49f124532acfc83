/*
 * parse: the collector's readers of the sites' own formats, each turning one whole
 * buffer into allot.v1 messages: job records from Slurm's sacct and job-completion
 * output, GPU samples from Prometheus scrapes (NVIDIA DCGM exporter, AMD device
 * metrics exporter) and from rocm-smi.
 *
 * Pure but for two things: the time zone named in the options is read from the
 * system's zoneinfo (through TZ, set for the call and restored after it: not
 * thread-safe), and a sample time not given is the clock's. No other I/O, no
 * logging, no policy on what to send or when; spooling and sending are the
 * daemon's.
 */
#ifndef ALLOT_COLLECT_PARSE_H
#define ALLOT_COLLECT_PARSE_H

#include <stddef.h>

#include "allot/v1/usage.pb-c.h"

enum collect_format {
	COLLECT_SACCT,    /* sacct --parsable2 (or -p) output: job records */
	COLLECT_JOBCOMP,  /* Slurm job-completion JSON (elasticsearch, kafka): job records */
	COLLECT_DCGM,     /* DCGM exporter Prometheus text: GPU samples */
	COLLECT_AMD,      /* AMD device metrics exporter text or rocm-smi output, told apart
	                     by content: GPU samples */
	COLLECT_ROCM_SMI, /* rocm-smi output only: GPU samples */
};

struct collect_opts {
	const char *site;        /* for messages; may be NULL */
	const char *timezone;    /* IANA name of the site's zone for times printed without an
	                         offset; NULL: the process's local zone */
	const char *fields;      /* sacct: the --format field list, comma-separated, when the
	                         input has no header line; NULL: the first line is the header */
	const char *job_label;   /* DCGM/AMD: the job label's name; NULL: hpc_job, then jobid,
	                          then job_id */
	const char *scrape_time; /* RFC 3339 time of samples whose lines carry no timestamp;
	                            NULL: now */
	const char *host;        /* the node of samples without a host label (rocm-smi
	                            always); NULL: such samples are refused */
	int tres_gpu_id;         /* jobcomp: the TRES id of gres/gpu in numeric TRES strings;
	                            0: 1001, the id the first GRES gets in most databases */
};

/* The messages parsed so far; caller's storage, zeroed (or collect_out_init). */
struct collect_out {
	Allot__V1__JobRecord **jobs;
	size_t njobs, jobs_cap;
	Allot__V1__GpuSample **samples;
	size_t nsamples, samples_cap;
};

void collect_out_init(struct collect_out *out);
/* Frees every message and the arrays; out may be used again afterwards. */
void collect_out_cleanup(struct collect_out *out);

/*
 * Parses buf[0..len) (need not be NUL-terminated) in format f and appends what it
 * holds to out: job records for sacct and jobcomp, GPU samples for the others. Each
 * message and its strings are malloc'd, owned by out, freed by collect_out_cleanup
 * (or protobuf_c_message_free_unpacked). Returns 0, or -1 with err saying where and
 * why ("line 7: ElapsedRaw: not a number: \"x\""), out then unchanged. Lines that
 * say nothing to charge (a pending job) are skipped without error.
 */
int collect_parse(enum collect_format f, const struct collect_opts *o, const char *buf, size_t len,
    struct collect_out *out, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Reads a format's name ("sacct", "jobcomp", "dcgm", "amd", "rocm-smi"); 0 or -1. */
int collect_format_parse(const char *name, enum collect_format *f)
    __attribute__((warn_unused_result));

#endif
