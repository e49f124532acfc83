/* allot-train's calls to Allot. See budget.h. */
#include "budget.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
job_of(const struct budget *b, struct allot_job *job, int64_t time_s)
{
	memset(job, 0, sizeof(*job));
	job->site = b->o->site;
	job->partition = b->o->partition;
	job->account = b->o->account;
	job->user = b->o->user;
	job->gpus = b->o->gpus;
	job->nodes = 1;
	job->time_limit_s = time_s;
}

int
budget_start(struct budget *b, const struct budget_opts *o, char *why, size_t whylen)
{
	memset(b, 0, sizeof(*b));
	b->o = o;
	const char *slurm = getenv("SLURM_JOB_ID");
	if (o->job_id)
		snprintf(b->job_id, sizeof(b->job_id), "%s", o->job_id);
	else if (slurm && *slurm)
		snprintf(b->job_id, sizeof(b->job_id), "%s", slurm);
	else
		snprintf(b->job_id, sizeof(b->job_id), "train-%ld-%ld", (long)getpid(),
		    (long)time(NULL));
	b->slurm = slurm && *slurm && strcmp(b->job_id, slurm) == 0;

	struct allot_options ao;
	allot_options_init(&ao);
	ao.server_url = o->server;
	ao.cert_file = o->cert;
	ao.key_file = o->key;
	ao.ca_file = o->ca;
	ao.max_attempts = 3;
	ao.deadline_ms = 15000;
	ao.timeout_ms = 10000;
	struct allot_error err;
	b->client = allot_connect(&ao, &err);
	if (!b->client) {
		snprintf(why, whylen, "connect: %s: %s", err.code_name, err.msg);
		return -1;
	}
	if (b->slurm) {
		/* the site's PrologSlurmctld holds the job's lien: heartbeat and settle it */
		snprintf(b->lien_id, sizeof(b->lien_id), "slurm-%s-%s", o->site, b->job_id);
		return 0;
	}

	/* Quote: for the planned time, or for an hour to find what the budget allows */
	struct allot_job job;
	struct allot_quote q;
	int64_t time_s = o->time_s;
	job_of(b, &job, o->as_far ? 3600 : time_s);
	if (allot_quote(b->client, &job, NULL, &q, &err) != 0) {
		snprintf(why, whylen, "quote: %s: %s", err.code_name, err.msg);
		return -1;
	}
	if (o->as_far) {
		int64_t can = q.cost_units > 0 && q.available_units > 0
		    ? (int64_t)((double)q.available_units * 3600.0 / (double)q.cost_units)
		    : 0;
		if (o->time_s > 0 && o->time_s < can)
			can = o->time_s;
		if (can < 1) {
			snprintf(why, whylen,
			    "exhausted: %.6f GPU-h available, not one second of %d GPU(s)",
			    q.available_gpu_hours, o->gpus);
			return 1;
		}
		time_s = can;
	} else if (!q.allowed) {
		snprintf(why, whylen, "%s: %.6f GPU-h needed, %.6f available", q.reason,
		    q.cost_gpu_hours, q.available_gpu_hours);
		return 1;
	}
	b->reserved_s = time_s;

	snprintf(b->lien_id, sizeof(b->lien_id), "train-%s-%s", o->site, b->job_id);
	struct allot_reservation r = {
	    .lien_id = b->lien_id, .job_id = b->job_id, .expires_in_s = o->expires_s};
	job_of(b, &r.job, time_s);
	struct allot_lien lien;
	if (allot_reserve(b->client, &r, &lien, &err) != 0) {
		snprintf(why, whylen, "reserve: %s: %s", err.code_name, err.msg);
		return err.code == ALLOT_RESOURCE_EXHAUSTED ? 1 : -1;
	}
	b->held_units = lien.held_units;
	b->available_units = lien.available_units;
	return 0;
}

int
budget_heartbeat(struct budget *b, int64_t elapsed_s, bool *stop, char *why, size_t whylen)
{
	struct allot_heartbeat hb;
	struct allot_error err;
	*stop = false;
	if (allot_heartbeat(b->client, b->o->site, b->job_id, elapsed_s, &hb, &err) != 0) {
		snprintf(why, whylen, "heartbeat: %s: %s", err.code_name, err.msg);
		return -1;
	}
	b->charged_units += hb.charged_units;
	b->held_units = hb.held_units;
	b->available_units = hb.available_units;
	if (hb.action == ALLOT_ACTION_STOP) {
		*stop = true;
		snprintf(why, whylen, "%s", hb.reason[0] ? hb.reason : "stop");
	}
	return 0;
}

int
budget_settle(struct budget *b, char *why, size_t whylen)
{
	struct allot_lien lien;
	struct allot_error err;
	if (allot_settle(b->client, b->o->site, b->job_id, NULL, &lien, &err) != 0) {
		snprintf(why, whylen, "settle: %s: %s", err.code_name, err.msg);
		return -1;
	}
	b->held_units = lien.held_units;
	b->available_units = lien.available_units;
	return 0;
}

void
budget_close(struct budget *b)
{
	allot_close(b->client);
	b->client = NULL;
}
