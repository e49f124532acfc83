/*
 * allot-slurm-sync: Allot's fair share, across every site, in Slurm's own
 * priorities.
 *
 *   allot-slurm-sync [-c FILE] [--once]
 *
 * Every sync_interval_s: the pending jobs (`squeue -t PENDING`), one
 * FairShare.GetPriorities for their distinct (account, user) pairs, and each
 * job's SiteFactor set to its pair's combined factor x site_factor_max
 * (`scontrol update jobid=... SiteFactor=N`, the jobs of one factor together).
 * A pair whose account names no project gets 0. Running, it sets a job again
 * only when its factor changed; --once sets every pending job and exits.
 * Slurm's multifactor priority adds the site factor to its own factors, so its
 * weights (PriorityWeight*) and site_factor_max decide how much Allot counts.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "allot.h"
#include "allot/v1/fairshare.pb-c.h"
#include "slurm_conf.h"
#include "slurm_job.h"

#define PAIRS_PER_CALL 20000
#define IDS_PER_UPDATE 200

struct pending {
	struct slurm_pending job;
	size_t pair; /* index into the round's distinct pairs */
	long long factor;
};

static volatile sig_atomic_t stopping;

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int
cmp_pair(const void *a, const void *b)
{
	const struct pending *x = *(const struct pending *const *)a;
	const struct pending *y = *(const struct pending *const *)b;
	int c = strcmp(x->job.account, y->job.account);

	return c != 0 ? c : strcmp(x->job.user, y->job.user);
}

static int
cmp_factor(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	return x->factor < y->factor ? -1 : x->factor > y->factor;
}

/* The pending jobs, from squeue. Returns the count (in *out), or -1 (said). */
static long
read_pending(const struct slurm_conf *c, struct pending **out)
{
	char cmd[1200], line[1024], err[256];
	struct pending *v = NULL;
	size_t n = 0, cap = 0;
	FILE *p;

	*out = NULL;
	/* squeue hangs while slurmctld is down: bounded. */
	snprintf(cmd, sizeof(cmd), "timeout -k 2 20 %s -h -t PENDING -o '%%i %%a %%u'", c->squeue);
	if ((p = popen(cmd, "r")) == NULL) {
		fprintf(stderr, "allot-slurm-sync: could not run %s: %s\n", cmd, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), p) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (n == cap) {
			size_t ncap = cap == 0 ? 256 : cap * 2;
			struct pending *nv = realloc(v, ncap * sizeof(*v));

			if (nv == NULL) {
				fprintf(stderr, "allot-slurm-sync: out of memory\n");
				pclose(p);
				free(v);
				return -1;
			}
			v = nv;
			cap = ncap;
		}
		if (slurm_pending_parse(line, &v[n].job, err, sizeof(err)) < 0) {
			fprintf(stderr, "allot-slurm-sync: %s\n", err);
			continue;
		}
		v[n].factor = 0;
		n++;
	}
	int rc = pclose(p);
	if (rc != 0) {
		fprintf(stderr, "allot-slurm-sync: %s failed (status %d)\n", cmd, rc);
		free(v);
		return -1;
	}
	*out = v;
	return (long)n;
}

/*
 * Asks GetPriorities for the distinct pairs of jobs and sets each job's factor.
 * Returns 0, or -1 (said).
 */
static int
ask_priorities(
    const struct slurm_conf *c, struct allot_client *client, struct pending *jobs, size_t n)
{
	struct pending **by_pair = malloc((n > 0 ? n : 1) * sizeof(*by_pair));
	Allot__V1__PriorityPair *pairs = malloc((n > 0 ? n : 1) * sizeof(*pairs));
	Allot__V1__PriorityPair **pair_ptrs = malloc((n > 0 ? n : 1) * sizeof(*pair_ptrs));
	double *combined = malloc((n > 0 ? n : 1) * sizeof(*combined));
	size_t npairs = 0;
	int r = -1;

	if (by_pair == NULL || pairs == NULL || pair_ptrs == NULL || combined == NULL) {
		fprintf(stderr, "allot-slurm-sync: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		by_pair[i] = &jobs[i];
	qsort(by_pair, n, sizeof(*by_pair), cmp_pair);
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || cmp_pair(&by_pair[i - 1], &by_pair[i]) != 0) {
			allot__v1__priority_pair__init(&pairs[npairs]);
			pairs[npairs].account = by_pair[i]->job.account;
			pairs[npairs].user = by_pair[i]->job.user;
			pair_ptrs[npairs] = &pairs[npairs];
			npairs++;
		}
		by_pair[i]->pair = npairs - 1;
	}
	for (size_t off = 0; off < npairs; off += PAIRS_PER_CALL) {
		Allot__V1__GetPrioritiesRequest req = ALLOT__V1__GET_PRIORITIES_REQUEST__INIT;
		Allot__V1__GetPrioritiesResponse *resp = NULL;
		struct allot_error e;
		size_t k = npairs - off < PAIRS_PER_CALL ? npairs - off : PAIRS_PER_CALL;

		req.site = (char *)c->site;
		req.pairs = pair_ptrs + off;
		req.n_pairs = k;
		if (allot_call(client, "allot.v1.FairShare/GetPriorities", &req.base,
		        &allot__v1__get_priorities_response__descriptor, (ProtobufCMessage **)&resp,
		        &e) < 0) {
			fprintf(stderr, "allot-slurm-sync: GetPriorities: %s: %s\n", e.code_name,
			    e.msg);
			goto out;
		}
		if (resp->n_priorities != k) {
			fprintf(stderr,
			    "allot-slurm-sync: GetPriorities answered %zu pairs of %zu\n",
			    resp->n_priorities, k);
			protobuf_c_message_free_unpacked(&resp->base, NULL);
			goto out;
		}
		for (size_t i = 0; i < k; i++) {
			const Allot__V1__Priority *pr = resp->priorities[i];
			double f = pr->project != NULL && pr->project[0] != '\0' ? pr->combined : 0;

			combined[off + i] = isfinite(f) ? fmin(fmax(f, 0), 1) : 0;
		}
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	for (size_t i = 0; i < n; i++)
		jobs[i].factor = llround(combined[jobs[i].pair] * (double)c->site_factor_max);
	r = 0;
out:
	free(by_pair);
	free(pairs);
	free(pair_ptrs);
	free(combined);
	return r;
}

/* Runs scontrol update for ids (comma-separated) at factor. Returns 0 or -1 (said). */
static int
update(const char *ids, long long factor)
{
	char *cmd = NULL;
	int rc;

	if (asprintf(&cmd, "timeout -k 2 20 scontrol update jobid=%s SiteFactor=%lld", ids,
	        factor) < 0) {
		fprintf(stderr, "allot-slurm-sync: out of memory\n");
		return -1;
	}
	rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "allot-slurm-sync: %s failed (status %d)\n", cmd, rc);
	free(cmd);
	return rc == 0 ? 0 : -1;
}

static int
cmp_job_id(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	return strcmp(x->job.job_id, y->job.job_id);
}

/*
 * The factor set on job_id by an earlier round, or -1 when there is none; prev is
 * sorted by job id (sync_round keeps it so), so the lookup is a binary search.
 */
static long long
previous(const struct pending *prev, size_t nprev, const char *job_id)
{
	struct pending key;
	const struct pending *hit;

	if (prev == NULL || nprev == 0)
		return -1;
	snprintf(key.job.job_id, sizeof(key.job.job_id), "%s", job_id);
	hit = bsearch(&key, prev, nprev, sizeof(*prev), cmp_job_id);
	return hit != NULL ? hit->factor : -1;
}

/*
 * One round. prev holds what the last round set (NULL and 0 for none); on
 * success it is replaced by this round's jobs. Returns the number of jobs
 * updated, or -1.
 */
static long
sync_round(
    const struct slurm_conf *c, struct allot_client *client, struct pending **prev, size_t *nprev)
{
	struct pending *jobs = NULL;
	long n = read_pending(c, &jobs), updated = 0;
	/* Room for IDS_PER_UPDATE ids of the longest length and their commas. */
	char ids[IDS_PER_UPDATE * sizeof(((struct slurm_pending *)0)->job_id)];
	int failed = 0;

	if (n < 0)
		return -1;
	if (ask_priorities(c, client, jobs, (size_t)n) < 0) {
		free(jobs);
		return -1;
	}
	qsort(jobs, (size_t)n, sizeof(*jobs), cmp_factor);
	for (long i = 0; i < n;) {
		long long f = jobs[i].factor;
		size_t len = 0, count = 0;

		ids[0] = '\0';
		for (; i < n && jobs[i].factor == f && count < IDS_PER_UPDATE; i++) {
			if (previous(*prev, *nprev, jobs[i].job.job_id) == f)
				continue;
			len += (size_t)snprintf(ids + len, sizeof(ids) - len, "%s%s",
			    count ? "," : "", jobs[i].job.job_id);
			count++;
		}
		if (count > 0) {
			if (update(ids, f) < 0)
				failed = 1;
			else
				updated += (long)count;
		}
	}
	if (failed) {
		free(jobs);
		return -1;
	}
	qsort(jobs, (size_t)n, sizeof(*jobs), cmp_job_id);
	free(*prev);
	*prev = jobs;
	*nprev = (size_t)n;
	return updated;
}

int
main(int argc, char **argv)
{
	const char *path = SLURM_CONF_DEFAULT;
	struct slurm_conf conf;
	struct allot_client *client;
	struct pending *prev = NULL;
	size_t nprev = 0;
	bool once = false;
	int status = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strcmp(argv[i], "--once") == 0) {
			once = true;
		} else {
			fprintf(stderr,
			    "usage: allot-slurm-sync [-c FILE] [--once]\n"
			    "FILE defaults to " SLURM_CONF_DEFAULT ".\n");
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	if (slurm_conf_load(path, &conf) < 0 || (client = slurm_conf_connect(&conf)) == NULL)
		return 2;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while (!stopping) {
		long r = sync_round(&conf, client, &prev, &nprev);

		if (r >= 0)
			fprintf(stderr,
			    "allot-slurm-sync: %zu pending jobs, %ld site factors set\n", nprev, r);
		if (once) {
			status = r < 0 ? 1 : 0;
			break;
		}
		/* A failed round keeps the last good one's factors; the next tries again. */
		for (long long s = 0; s < conf.sync_interval_s && !stopping; s++)
			sleep(1);
	}
	free(prev);
	allot_close(client);
	return status;
}
