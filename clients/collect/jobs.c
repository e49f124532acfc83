/*
 * jobs: the rules that turn a scheduler's view of a job into the allot.v1.JobRecord
 * that allotd bills, the same for sacct and job-completion records: what is not sent
 * (pending jobs), what a missing start time becomes, which count wins.
 */
#include <stdio.h>
#include <string.h>

#include "hostlist.h"
#include "parse_int.h"

/* allotd's bound on a record's node list (INGEST_MAX_RECORD_NODES). */
#define JOB_MAX_NODE_LIST 16384
/* allotd's bound on counts (BILLING_MAX_COUNT); beyond it a record is absurd. */
#define JOB_MAX_COUNT 1000000
#define JOB_MAX_MEM_MB INT64_C(1000000000)
/* 10000-01-01: RFC 3339 has four digits of year. */
#define JOB_MAX_TIME_S INT64_C(253402300800)

static int
fail(char *err, size_t errlen, const char *what, int64_t v)
{
	snprintf(err, errlen, "%s %lld is out of range", what, (long long)v);
	return -1;
}

/* What sacct and jobcomp print for a job that has no nodes (yet). */
static bool
node_list_absent(struct span s)
{
	return s.n == 0 || span_eq(s, "None assigned") || span_eq(s, "(null)");
}

int
collect_job_emit(const struct job_fields *j, struct collect_out *out, char *err, size_t errlen)
{
	Allot__V1__JobRecord *r;
	int64_t start_s, cpus, nodes, gpus;

	const struct {
		const char *name;
		struct span s;
	} strs[] = {{"job id", j->job_id}, {"step", j->step}, {"account", j->account},
	    {"user", j->user}, {"partition", j->partition}, {"state", j->state}};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (!span_utf8(strs[i].s)) {
			snprintf(err, errlen, "%s: not UTF-8 text", strs[i].name);
			return -1;
		}
	if (span_eq(j->state, "PENDING"))
		return 0;
	if (j->has_start) {
		start_s = j->start_s;
	} else if (j->elapsed_s == 0) {
		return 0; /* never ran: cancelled while pending */
	} else if (j->has_end) {
		start_s = j->end_s - j->elapsed_s;
	} else {
		snprintf(err, errlen,
		    "no start time for a job that ran %lld s, and no end time to derive it from",
		    (long long)j->elapsed_s);
		return -1;
	}
	if (j->step.n == 0 && !node_list_absent(j->node_list)) {
		char why[200];

		if (!span_utf8(j->node_list) ||
		    hostlist_count(
		        j->node_list.p, j->node_list.n, JOB_MAX_NODE_LIST, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "node list \"%.*s\": %s",
			    (int)(j->node_list.n < SPAN_QUOTE_MAX ? j->node_list.n
			                                          : SPAN_QUOTE_MAX),
			    j->node_list.p, span_utf8(j->node_list) ? why : "not UTF-8 text");
			return -1;
		}
	}
	if (j->step.n == 0 && memchr(j->partition.p, ',', j->partition.n) != NULL) {
		snprintf(err, errlen,
		    "partition \"%.*s\" names several partitions: only a pending job may",
		    (int)(j->partition.n < SPAN_QUOTE_MAX ? j->partition.n : SPAN_QUOTE_MAX),
		    j->partition.p);
		return -1;
	}
	cpus = j->has_cpus ? j->cpus : j->tres.cpus;
	nodes = j->has_nodes ? j->nodes : j->tres.nodes;
	gpus = tres_gpus(&j->tres);
	if (cpus > JOB_MAX_COUNT)
		return fail(err, errlen, "CPU count", cpus);
	if (nodes > JOB_MAX_COUNT)
		return fail(err, errlen, "node count", nodes);
	if (gpus > JOB_MAX_COUNT)
		return fail(err, errlen, "GPU count", gpus);
	if (j->tres.mem_mb > JOB_MAX_MEM_MB)
		return fail(err, errlen, "memory (MB)", j->tres.mem_mb);
	if (start_s < 0 || start_s >= JOB_MAX_TIME_S)
		return fail(err, errlen, "start time", start_s);

	if ((r = collect_job_new()) == NULL)
		goto oom;
	r->gpus = (int32_t)gpus;
	r->cpus = (int32_t)cpus;
	r->nodes = (int32_t)nodes;
	r->mem_mb = j->tres.mem_mb;
	r->elapsed_s = j->elapsed_s;
	if (!collect_set_str(&r->job_id, j->job_id) || !collect_set_str(&r->step, j->step) ||
	    !collect_set_str(&r->account, j->account) || !collect_set_str(&r->user, j->user) ||
	    !collect_set_str(&r->partition, j->partition) ||
	    !collect_set_str(&r->state, j->state) ||
	    (j->step.n == 0 && !node_list_absent(j->node_list) &&
	        !collect_set_str(&r->node_list, j->node_list)) ||
	    (r->start_time = collect_time_format(start_s, 0)) == NULL ||
	    !collect_out_push_job(out, r)) {
		if (r->start_time == NULL)
			r->start_time = (char *)protobuf_c_empty_string;
		protobuf_c_message_free_unpacked(&r->base, NULL);
		goto oom;
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}
