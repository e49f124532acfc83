/*
 * jobcomp: Slurm job-completion records (jobcomp/elasticsearch, jobcomp/kafka) to job
 * records. The input is a sequence of JSON objects, one a line or pretty-printed over
 * several, or Elasticsearch hits ({"_source": {...}}).
 *
 * Keys read: jobid (with array_job_id/array_task_id as "A_T" and het_job_id/
 * het_job_offset as "H+O", as sacct names such jobs), account, username, partition,
 * state, @start/@end (or start/end: a local time without offset, an RFC 3339 time, or
 * seconds since the epoch), elapsed, total_cpus, total_nodes, nodes (the job's node list, a
 * Slurm hostlist), and the allocated TRES:
 * by name in tres_alloc (upstream) or tres_fmt_alloc_str (some forks), by id in
 * tres_alloc_raw or tres_alloc_str ("1=4, 2=1000, 4=1, 1001=4": 1 cpu, 2 mem in MB,
 * 4 node, gres/gpu the id in the options, 1001 by default). A record carries no step.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "parse_int.h"

#define JOBCOMP_DEFAULT_GPU_ID 1001
/* Slurm's NO_VAL for 32-bit fields: an array task id that is not one. */
#define JOBCOMP_NO_VAL INT64_C(0xfffffffe)

static struct span
str_of(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_string(v))
		return (struct span){json_string_value(v), json_string_length(v)};
	return (struct span){"", 0};
}

/* An integer key: 0 absent or null, 1 read, -1 of another type. */
static int
int_of(json_t *obj, const char *key, int64_t *v)
{
	json_t *j = json_object_get(obj, key);

	if (j == NULL || json_is_null(j))
		return 0;
	if (!json_is_integer(j))
		return -1;
	*v = (int64_t)json_integer_value(j);
	return 1;
}

/* A time key into *t: 0 absent, 1 read, -1 with err. */
static int
time_of(json_t *obj, const char *k1, const char *k2, int64_t *t, char *err, size_t errlen)
{
	const char *key = json_object_get(obj, k1) != NULL ? k1 : k2;
	json_t *v = json_object_get(obj, key);
	char why[160];

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		*t = (int64_t)json_integer_value(v);
		return *t > 0;
	}
	if (!json_is_string(v)) {
		snprintf(err, errlen, "%s: not a time", key);
		return -1;
	}
	if (collect_time_absent(str_of(obj, key)))
		return 0;
	if (collect_time_parse(str_of(obj, key), t, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: %s", key, why);
		return -1;
	}
	/* Slurm prints a start time of 0 (never started) as the epoch in local time. */
	return *t > 0;
}

/* Whether a TRES string is in the ids' form: its first key is a number. */
static bool
tres_numeric(struct span s)
{
	s = span_trim(s);
	return s.n > 0 && s.p[0] >= '0' && s.p[0] <= '9';
}

static int
record_read(
    json_t *rec, const struct collect_opts *o, struct collect_out *out, char *err, size_t errlen)
{
	static const char *const tres_keys[] = {
	    "tres_alloc", "tres_fmt_alloc_str", "tres_alloc_raw", "tres_alloc_str"};
	struct job_fields j;
	json_t *jid;
	char idbuf[64], why[200];
	int64_t id, a, b, v;
	int r;

	memset(&j, 0, sizeof(j));
	if (json_is_object(json_object_get(rec, "_source")))
		rec = json_object_get(rec, "_source");
	jid = json_object_get(rec, "jobid");
	if (json_is_integer(jid) && json_integer_value(jid) > 0) {
		id = (int64_t)json_integer_value(jid);
		if (int_of(rec, "array_job_id", &a) == 1 && a > 0 &&
		    int_of(rec, "array_task_id", &b) == 1 && b >= 0 && b != JOBCOMP_NO_VAL)
			snprintf(idbuf, sizeof(idbuf), "%lld_%lld", (long long)a, (long long)b);
		else if (int_of(rec, "het_job_id", &a) == 1 && a > 0 &&
		    int_of(rec, "het_job_offset", &b) == 1 && b >= 0 && b != JOBCOMP_NO_VAL)
			snprintf(idbuf, sizeof(idbuf), "%lld+%lld", (long long)a, (long long)b);
		else
			snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
		j.job_id = (struct span){idbuf, strlen(idbuf)};
	} else if (json_is_string(jid) && json_string_length(jid) > 0) {
		j.job_id = str_of(rec, "jobid");
	} else {
		snprintf(err, errlen, "jobid: missing or not a job id");
		return -1;
	}
	j.step = (struct span){"", 0};
	j.account = str_of(rec, "account");
	j.user = str_of(rec, "username");
	j.partition = str_of(rec, "partition");
	j.state = collect_state(str_of(rec, "state"));
	j.node_list = str_of(rec, "nodes");

	if ((r = int_of(rec, "elapsed", &j.elapsed_s)) < 0 || j.elapsed_s < 0) {
		snprintf(err, errlen, "elapsed: not a number of seconds");
		return -1;
	}
	if ((r = time_of(rec, "@start", "start", &j.start_s, err, errlen)) < 0)
		return -1;
	j.has_start = r == 1;
	if ((r = time_of(rec, "@end", "end", &j.end_s, err, errlen)) < 0)
		return -1;
	j.has_end = r == 1;
	/* Without elapsed, the job's span, when both ends are known. */
	if (json_object_get(rec, "elapsed") == NULL && j.has_start && j.has_end &&
	    j.end_s >= j.start_s)
		j.elapsed_s = j.end_s - j.start_s;
	if ((r = int_of(rec, "total_cpus", &v)) < 0 || (r == 1 && v < 0)) {
		snprintf(err, errlen, "total_cpus: not a count");
		return -1;
	}
	j.has_cpus = r == 1;
	j.cpus = v;
	if ((r = int_of(rec, "total_nodes", &v)) < 0 || (r == 1 && v < 0)) {
		snprintf(err, errlen, "total_nodes: not a count");
		return -1;
	}
	j.has_nodes = r == 1;
	j.nodes = v;
	for (size_t i = 0; i < sizeof(tres_keys) / sizeof(tres_keys[0]); i++) {
		struct span t = str_of(rec, tres_keys[i]);

		if (t.n == 0)
			continue;
		if (tres_parse(t, tres_numeric(t),
		        o->tres_gpu_id > 0 ? o->tres_gpu_id : JOBCOMP_DEFAULT_GPU_ID, &j.tres, why,
		        sizeof(why)) != 0) {
			snprintf(err, errlen, "%s: %s", tres_keys[i], why);
			return -1;
		}
		break;
	}
	return collect_job_emit(&j, out, err, errlen);
}

int
collect_parse_jobcomp(const struct collect_opts *o, const char *buf, size_t len,
    struct collect_out *out, char *err, size_t errlen)
{
	size_t pos = 0, line = 1;
	char why[256];

	for (;;) {
		json_error_t jerr;
		json_t *rec;
		int r;

		while (pos < len &&
		    (buf[pos] == ' ' || buf[pos] == '\t' || buf[pos] == '\r' || buf[pos] == '\n')) {
			if (buf[pos] == '\n')
				line++;
			pos++;
		}
		if (pos == len)
			return 0;
		rec = json_loadb(
		    buf + pos, len - pos, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &jerr);
		if (rec == NULL) {
			snprintf(err, errlen, "line %zu: %s",
			    line + (size_t)(jerr.line > 0 ? jerr.line - 1 : 0), jerr.text);
			return -1;
		}
		if (!json_is_object(rec)) {
			json_decref(rec);
			snprintf(err, errlen, "line %zu: a record is a JSON object", line);
			return -1;
		}
		r = record_read(rec, o, out, why, sizeof(why));
		json_decref(rec);
		if (r != 0) {
			snprintf(err, errlen, "line %zu: %s", line, why);
			return -1;
		}
		for (size_t end = pos + (size_t)jerr.position; pos < end && pos < len; pos++)
			if (buf[pos] == '\n')
				line++;
	}
}
