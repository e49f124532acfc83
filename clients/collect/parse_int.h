/*
 * parse_int: what the collector's parsers share (spans, lines, numbers, times, the
 * TRES string, job records, the sample set). Private to clients/collect.
 */
#ifndef ALLOT_COLLECT_PARSE_INT_H
#define ALLOT_COLLECT_PARSE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parse.h"

/* A piece of the input: not NUL-terminated. */
struct span {
	const char *p;
	size_t n;
};

/* Bytes of a span quoted in messages, at most. */
#define SPAN_QUOTE_MAX 64

bool span_eq(struct span s, const char *lit);    /* exact */
bool span_eq_ci(struct span s, const char *lit); /* ASCII case-insensitive */
struct span span_trim(struct span s);            /* spaces and tabs off both ends */
char *span_dup(struct span s);                   /* malloc'd copy, NUL-terminated */
/* Well-formed UTF-8 without NUL: what a proto3 string may hold and C keeps whole. */
bool span_utf8(struct span s);

/* Line-by-line walk over a buffer; a final line without '\n' counts; "\r\n" too. */
struct lines {
	const char *p, *end;
	size_t lineno; /* of the line last returned, 1-based */
};
void lines_init(struct lines *l, const char *buf, size_t len);
bool lines_next(struct lines *l, struct span *line);

/* Decimal digits only, no sign, into 0..max. 0 or -1. */
int parse_uint(struct span s, int64_t max, int64_t *out) __attribute__((warn_unused_result));

/*
 * The site's zone for the duration of one parse: collect_zone_enter sets TZ to the
 * name (checked against the zoneinfo folder: glibc silently takes an unknown name as
 * UTC) and collect_zone_leave puts the previous TZ back. name NULL: the process's own
 * zone, nothing changed.
 */
struct collect_zone {
	bool changed;
	char *saved; /* previous TZ, NULL when it was unset */
};
int collect_zone_enter(struct collect_zone *z, const char *name, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void collect_zone_leave(struct collect_zone *z);

/*
 * Reads a time "YYYY-MM-DDTHH:MM:SS" (or with a space for the T), with an optional
 * fraction, dropped, and an optional "Z" or "+HH:MM" offset. Without an offset it is
 * local time in the current zone: a time that a daylight saving change repeats is
 * taken at its first occurrence (the offset in force before the change), one that it
 * skips is refused. Returns 0 with *epoch_s, -1 with a reason in err.
 */
int collect_time_parse(struct span s, int64_t *epoch_s, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Slurm's words for "no time": "Unknown", "None", "" (and "N/A"). */
bool collect_time_absent(struct span s);
/* "2026-09-29T06:40:01Z", with ".123" when ms is not 0; NULL when out of memory. */
char *collect_time_format(int64_t epoch_s, int ms);

/* The resources of an AllocTRES (or jobcomp tres_alloc) string that allotd bills. */
struct tres {
	bool has_cpus, has_mem, has_nodes, has_gpus_untyped, has_gpus_typed;
	int64_t cpus, mem_mb, nodes, gpus_untyped, gpus_typed;
};
/*
 * Parses "billing=8,cpu=8,gres/gpu=1,mem=64G,node=1" (spaces after commas allowed),
 * or with numeric_ids the ids' form "1=4, 2=1000, 1001=4" (1 cpu, 2 mem in MB, 4
 * node, gpu_id gres/gpu). Keys not billed are skipped unread. 0 or -1 with err.
 */
int tres_parse(struct span s, bool numeric_ids, int gpu_id, struct tres *t, char *err,
    size_t errlen) __attribute__((warn_unused_result));
/* GPUs: the untyped count when given, else the typed ones summed. */
int64_t tres_gpus(const struct tres *t);

/* Strips " by 1000" and the like: "CANCELLED by 1000" -> "CANCELLED". */
struct span collect_state(struct span s);

/*
 * A job (or step) as a scheduler's record gives it, before the collector's rules:
 * spans into the input, times already read.
 */
struct job_fields {
	struct span job_id, step, account, user, partition, state; /* state: first word */
	struct span node_list; /* a Slurm hostlist; empty, "None assigned" or "(null)": none */
	bool has_start, has_end, has_cpus, has_nodes;
	int64_t start_s, end_s, elapsed_s, cpus, nodes;
	struct tres tres;
};
/*
 * Applies the rules every job source shares and appends the record to out, or skips
 * it: a PENDING job, or one that never started (no start time, nothing elapsed), has
 * used nothing and is not sent. A job with elapsed time but no start time takes
 * End - Elapsed; with no End either it is refused, as is an allocation naming several
 * partitions (only a pending job may). CPUs and nodes come from their own fields when
 * given, else from the TRES. A node list is checked (lib/hostlist.c, at most
 * JOB_MAX_NODE_LIST nodes) and sent with the allocation record only. Returns 0
 * (appended or skipped) or -1 with err.
 */
int collect_job_emit(const struct job_fields *j, struct collect_out *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Appends one message to out (takes ownership); false when out of memory. */
bool collect_out_push_job(struct collect_out *out, Allot__V1__JobRecord *rec);
bool collect_out_push_sample(struct collect_out *out, Allot__V1__GpuSample *s);
/* Frees what was appended past the counts given and restores them. */
void collect_out_truncate(struct collect_out *out, size_t njobs, size_t nsamples);

/* A new, empty job record with every string "" (protobuf-c's shared empty string). */
Allot__V1__JobRecord *collect_job_new(void);
/* Replaces *field (a string of a message) with a copy of s; false when out of memory. */
bool collect_set_str(char **field, struct span s);

/*
 * The samples of one scrape, one per (host, GPU, job, time), metrics merged into it as
 * lines name them. Found by hash: a scrape's cost is linear in its lines.
 */
struct sample_set;
struct sample_set *sample_set_new(void);
void sample_set_free(struct sample_set *set);
/*
 * The sample of that key, created empty when new, with *flags pointing at a word kept
 * beside it for the caller (0 when new); NULL when out of memory.
 */
Allot__V1__GpuSample *sample_set_get(struct sample_set *set, const char *host, const char *gpu,
    const char *job, const char *time, unsigned **flags);
/* The values of a sample. */
enum sample_field {
	SAMPLE_UTIL,
	SAMPLE_MEM,
	SAMPLE_POWER,
	SAMPLE_ENERGY,
};
/*
 * Puts one metric's value into s: d for utilization (0 to 100) and power (W, not
 * negative), v for memory (MiB) and energy (uJ). *flags (sample_set_get's word) keeps,
 * per field, the rank of the metric that set it: of several metrics for one field the
 * lowest rank wins, and the same rank twice is refused. Returns 0 (set, or the better
 * metric's value kept), or -1 with the reason in why.
 */
int sample_put(Allot__V1__GpuSample *s, unsigned *flags, enum sample_field f, unsigned rank,
    double d, int64_t v, char *why, size_t whylen) __attribute__((warn_unused_result));
/* Moves every sample, in the order first seen, to out; false when out of memory. */
bool sample_set_flush(struct sample_set *set, struct collect_out *out);

/* The default sample time: opts->scrape_time normalized, or now. NULL and err. */
char *collect_scrape_time(const struct collect_opts *o, char *err, size_t errlen);

int collect_parse_sacct(const struct collect_opts *o, const char *buf, size_t len,
    struct collect_out *out, char *err, size_t errlen);
int collect_parse_jobcomp(const struct collect_opts *o, const char *buf, size_t len,
    struct collect_out *out, char *err, size_t errlen);
/* Prometheus text; amd selects the AMD exporter's metric names, else DCGM's. */
int collect_parse_prom(const struct collect_opts *o, bool amd, const char *buf, size_t len,
    struct collect_out *out, char *err, size_t errlen);
int collect_parse_rocm_smi(const struct collect_opts *o, const char *buf, size_t len,
    struct collect_out *out, char *err, size_t errlen);

#endif
