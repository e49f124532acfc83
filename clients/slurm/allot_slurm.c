/*
 * allot-slurm: what a Slurm site runs to make Slurm obey Allot.
 *
 *   allot-slurm [-c FILE] admit --account A --user U --partition P --gpus N
 *               [--nodes N] [--cpus N] --time-limit-s S
 *       job_submit.lua's question: may this job run? Ledger.Quote; prints one
 *       line, "ok ..." or "refused: <Allot's reason and figures>".
 *   allot-slurm [-c FILE] prolog
 *       PrologSlurmctld: Ledger.Reserve a lien for the job in SLURM_JOB_ID, its
 *       GPUs and time limit read from `scontrol show job -o`.
 *   allot-slurm [-c FILE] epilog
 *       EpilogSlurmctld: Ledger.Heartbeat with the job's run time (charging it
 *       as GPUs x elapsed), then Ledger.Settle, releasing what is left.
 *   allot-slurm [-c FILE] lease
 *       Run every few minutes: replays the journal of jobs admitted against a
 *       lease while Allot was away, then renews each project's lease (lease.h).
 *
 * Exit status: 0 done (or admitted), 1 refused by Allot, 2 usage or
 * configuration error, 3 Allot could not be reached or failed, and the
 * configuration's `unreachable` said refuse. Every message goes to stderr
 * except admit's answer line, which job_submit.lua reads from stdout.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allot/v1/ledger.pb-c.h"
#include "allot.h"
#include "confline.h"
#include "lease.h"
#include "slurm_conf.h"
#include "slurm_job.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

/* A transport failure or an answer that says Allot cannot decide now. */
static bool
unreachable_error(const struct allot_error *e)
{
	return e->code == ALLOT_UNAVAILABLE || e->code == ALLOT_DEADLINE_EXCEEDED ||
	    e->code == ALLOT_INTERNAL || e->code == ALLOT_UNKNOWN;
}

/* The exit status and message for a call that failed with e. */
static int
failed_call(const struct slurm_conf *c, const char *what, const struct allot_error *e, bool admit)
{
	if (unreachable_error(e)) {
		fprintf(stderr, "allot-slurm: %s: Allot could not answer (%s: %s); %s\n", what,
		    e->code_name, e->msg, c->admit_unreachable ? "admitted" : "refused");
		if (admit)
			printf("%s: Allot could not be reached (%s)\n",
			    c->admit_unreachable ? "ok" : "refused", e->code_name);
		return c->admit_unreachable ? 0 : EXIT_UNREACHABLE;
	}
	fprintf(stderr, "allot-slurm: %s: %s: %s\n", what, e->code_name, e->msg);
	if (admit)
		printf("refused: %s\n", e->msg);
	return EXIT_REFUSED;
}

static int
parse_count(const char *flag, const char *v, long long max, long long *out)
{
	char *end;

	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < 0 || n > max) {
		fprintf(stderr, "allot-slurm: --%s: \"%s\" is not a number from 0 to %lld\n", flag,
		    v, max);
		return -1;
	}
	*out = n;
	return 0;
}

/* ---------------------------------------------------------------- leases */

/* A job's price against a lease: GPUs x time limit at the lease's price, rounded up. */
static long long
lease_cost(const struct lease *l, long long gpus, long long limit_s)
{
	long long gpu_s = gpus * limit_s;

	return (gpu_s * l->units_per_gpu_hour + 3599) / 3600;
}

/*
 * Whether a job of project may run against its lease now. Returns 1 with its
 * *cost, 0 with the reason in why, -1 on a state error (said on stderr). The
 * caller holds the lock and passes the journal.
 */
static int
lease_check(const struct slurm_conf *c, const char *project, const char *partition, long long gpus,
    long long limit_s, const struct lease_entry *entries, size_t n, long long *cost, char *why,
    size_t whylen)
{
	struct lease l;
	char err[512];
	int r;

	if ((r = lease_read(c->state_dir, project, &l, err, sizeof(err))) < 0) {
		fprintf(stderr, "allot-slurm: %s\n", err);
		return -1;
	}
	if (r == 0) {
		snprintf(why, whylen, "project \"%s\" holds no lease", project);
		return 0;
	}
	if (l.expires <= (long long)time(NULL)) {
		snprintf(why, whylen, "the lease of project \"%s\" has expired", project);
		return 0;
	}
	if (strcmp(partition, c->lease_partition) != 0) {
		snprintf(why, whylen, "the lease of project \"%s\" is for partition %s, not %s",
		    project, c->lease_partition, partition);
		return 0;
	}
	*cost = lease_cost(&l, gpus, limit_s);
	long long rest = l.held_units - lease_spent(entries, n, project);
	if (*cost > rest) {
		snprintf(why, whylen,
		    "the lease of project \"%s\" has %.2f GPU-hours left, the job needs %.2f",
		    project, rest / 3600000.0, *cost / 3600000.0);
		return 0;
	}
	snprintf(why, whylen, "%.2f GPU-hours of the lease of project \"%s\", %.2f left after it",
	    *cost / 3600000.0, project, (rest - *cost) / 3600000.0);
	return 1;
}

/* Replays one journal entry. Returns 0, or -1 with the failed call in *e. */
static int
replay_entry(const struct slurm_conf *c, struct allot_client *client, const struct lease_entry *x,
    struct allot_error *e)
{
	ProtobufCMessage *resp = NULL;
	char lien_id[256];
	struct lease l;
	char err[512];

	snprintf(lien_id, sizeof(lien_id), "slurm-%s-%s", c->site, x->job_id);
	if (x->start) {
		Allot__V1__ReserveRequest req = ALLOT__V1__RESERVE_REQUEST__INIT;

		req.lien_id = lien_id;
		req.site = (char *)c->site;
		req.job_id = (char *)x->job_id;
		req.partition = (char *)x->partition;
		req.account = (char *)x->project;
		req.user = strcmp(x->user, "-") == 0 ? (char *)"" : (char *)x->user;
		req.gpus = x->gpus;
		req.cpus = x->cpus;
		req.nodes = x->nodes;
		req.time_limit_s = x->limit_s;
		req.expires_in_s = x->limit_s + c->lien_grace_s;
		/* Drawn from the lease, which Allot set aside for it. */
		if (lease_read(c->state_dir, x->project, &l, err, sizeof(err)) == 1)
			req.campaign = l.lien_id;
		int r = allot_call(client, "allot.v1.Ledger/Reserve", &req.base,
		    &allot__v1__lien__descriptor, &resp, e);
		/* A lease that closed meanwhile: the job's hold comes from the allocation. */
		if (r < 0 && e->code == ALLOT_FAILED_PRECONDITION && req.campaign[0] != '\0') {
			req.campaign = (char *)"";
			r = allot_call(client, "allot.v1.Ledger/Reserve", &req.base,
			    &allot__v1__lien__descriptor, &resp, e);
		}
		if (r < 0)
			return -1;
	} else {
		Allot__V1__HeartbeatRequest hb = ALLOT__V1__HEARTBEAT_REQUEST__INIT;
		Allot__V1__SettleRequest st = ALLOT__V1__SETTLE_REQUEST__INIT;

		hb.site = st.site = (char *)c->site;
		hb.job_id = st.job_id = (char *)x->job_id;
		hb.elapsed_s = x->elapsed_s;
		if (allot_call(client, "allot.v1.Ledger/Heartbeat", &hb.base,
		        &allot__v1__heartbeat_response__descriptor, &resp, e) < 0)
			return -1;
		protobuf_c_message_free_unpacked(resp, NULL);
		if (allot_call(client, "allot.v1.Ledger/Settle", &st.base,
		        &allot__v1__lien__descriptor, &resp, e) < 0)
			return -1;
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

/*
 * Replays the journal in order and empties it when every entry went through.
 * Returns the number of entries replayed, or -1 (said on stderr; the journal is
 * kept: each entry is idempotent, so the next run replays it again). *unreachable
 * tells whether Allot could not be reached.
 */
static int
sync_journal(const struct slurm_conf *c, struct allot_client *client, bool *unreachable)
{
	struct lease_entry *entries = NULL;
	struct allot_error e;
	char err[512];
	size_t n = 0;
	int fd, r = -1;

	*unreachable = false;
	if ((fd = lease_lock(c->state_dir, err, sizeof(err))) < 0) {
		fprintf(stderr, "allot-slurm: %s\n", err);
		return -1;
	}
	if (lease_journal_read(c->state_dir, &entries, &n, err, sizeof(err)) < 0) {
		fprintf(stderr, "allot-slurm: %s\n", err);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (replay_entry(c, client, &entries[i], &e) == 0)
			continue;
		fprintf(stderr, "allot-slurm: replaying the %s of job %s: %s: %s\n",
		    entries[i].start ? "start" : "end", entries[i].job_id, e.code_name, e.msg);
		if ((*unreachable = unreachable_error(&e)))
			goto out;
		/*
		 * Allot refused it (the project ran dry while the job ran on its lease, say):
		 * replaying it again would be refused again. The job ran; its charge comes
		 * with the site collector's record of it.
		 */
		fprintf(stderr, "allot-slurm: job %s: left to the site's collector\n",
		    entries[i].job_id);
	}
	if (n > 0 && lease_journal_clear(c->state_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "allot-slurm: %s\n", err);
		goto out;
	}
	if (n > 0)
		fprintf(stderr, "allot-slurm: replayed %zu journal entries\n", n);
	r = (int)n;
out:
	free(entries);
	lease_unlock(fd);
	return r;
}

/* Holds a new lease for project (replacing its old one). Returns 0 or -1 (said). */
static int
renew_lease(const struct slurm_conf *c, struct allot_client *client, const char *project)
{
	Allot__V1__QuoteRequest q = ALLOT__V1__QUOTE_REQUEST__INIT;
	Allot__V1__ReserveCampaignRequest rc = ALLOT__V1__RESERVE_CAMPAIGN_REQUEST__INIT;
	Allot__V1__SettleRequest rel = ALLOT__V1__SETTLE_REQUEST__INIT;
	Allot__V1__QuoteResponse *quote = NULL;
	Allot__V1__Lien *lien = NULL;
	ProtobufCMessage *resp = NULL;
	struct lease old, now_lease = {0};
	struct allot_error e;
	char err[512], lien_id[400], ends[32];
	time_t now = time(NULL), end = now + (time_t)c->lease_ttl_s;
	struct tm tm;
	int had, fd = -1;

	/* The partition's price: a 1-GPU hour, as Quote bills it. */
	q.site = (char *)c->site;
	q.account = (char *)project;
	q.user = (char *)"";
	q.partition = (char *)c->lease_partition;
	q.gpus = 1;
	q.nodes = 1;
	q.time_limit_s = 3600;
	if (allot_call(client, "allot.v1.Ledger/Quote", &q.base,
	        &allot__v1__quote_response__descriptor, (ProtobufCMessage **)&quote, &e) < 0)
		goto failed;
	now_lease.units_per_gpu_hour = quote->cost_units > 0 ? quote->cost_units : 3600000;
	protobuf_c_message_free_unpacked(&quote->base, NULL);

	gmtime_r(&end, &tm);
	strftime(ends, sizeof(ends), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(lien_id, sizeof(lien_id), "lease-%s-%s-%lld", c->site, project, (long long)now);
	rc.lien_id = lien_id;
	rc.project = (char *)project;
	rc.site = (char *)c->site;
	rc.partition = (char *)c->lease_partition;
	rc.gpu_hours = c->lease_gpu_hours;
	rc.starts_at = (char *)"";
	rc.ends_at = ends;
	if (allot_call(client, "allot.v1.Ledger/ReserveCampaign", &rc.base,
	        &allot__v1__lien__descriptor, (ProtobufCMessage **)&lien, &e) < 0)
		goto failed;
	snprintf(now_lease.lien_id, sizeof(now_lease.lien_id), "%s", lien->lien_id);
	now_lease.held_units = lien->held_units;
	now_lease.expires = (long long)end;
	protobuf_c_message_free_unpacked(&lien->base, NULL);

	if ((fd = lease_lock(c->state_dir, err, sizeof(err))) < 0 ||
	    (had = lease_read(c->state_dir, project, &old, err, sizeof(err))) < 0 ||
	    lease_write(c->state_dir, project, &now_lease, err, sizeof(err)) < 0) {
		fprintf(stderr, "allot-slurm: %s\n", err);
		lease_unlock(fd);
		return -1;
	}
	lease_unlock(fd);
	fprintf(stderr, "allot-slurm: project %s holds lease %s: %.2f GPU-hours until %s\n",
	    project, now_lease.lien_id, now_lease.held_units / 3600000.0, ends);
	if (had == 1) {
		/* The old lease's rest goes back; if this fails it expires by itself. */
		rel.site = (char *)c->site;
		rel.lien_id = old.lien_id;
		if (allot_call(client, "allot.v1.Ledger/Release", &rel.base,
		        &allot__v1__lien__descriptor, &resp, &e) < 0)
			fprintf(stderr, "allot-slurm: releasing lease %s: %s: %s\n", old.lien_id,
			    e.code_name, e.msg);
		else
			protobuf_c_message_free_unpacked(resp, NULL);
	}
	return 0;
failed:
	fprintf(stderr, "allot-slurm: lease of project %s: %s: %s\n", project, e.code_name, e.msg);
	return -1;
}

/*
 * With the state lock held and the journal read: calls lease_check and, when
 * add is set and the job fits, appends add to the journal. Returns 1 admitted, 0
 * refused (why), -1 error.
 */
static int
on_lease(const struct slurm_conf *c, const char *project, const char *partition, long long gpus,
    long long limit_s, struct lease_entry *add, char *why, size_t whylen)
{
	struct lease_entry *entries = NULL;
	char err[512];
	size_t n = 0;
	long long cost = 0;
	int fd, r = -1;

	if (!lease_word(project)) {
		snprintf(why, whylen, "account \"%.100s\" cannot hold a lease", project);
		return 0;
	}
	if ((fd = lease_lock(c->state_dir, err, sizeof(err))) < 0 ||
	    lease_journal_read(c->state_dir, &entries, &n, err, sizeof(err)) < 0) {
		fprintf(stderr, "allot-slurm: %s\n", err);
		goto out;
	}
	r = lease_check(c, project, partition, gpus, limit_s, entries, n, &cost, why, whylen);
	if (r == 1 && add != NULL) {
		add->cost_units = cost;
		if (lease_journal_append(c->state_dir, add, err, sizeof(err)) < 0) {
			fprintf(stderr, "allot-slurm: %s\n", err);
			r = -1;
		}
	}
out:
	free(entries);
	lease_unlock(fd);
	return r;
}

/* Appends "end JOB ELAPSED" to the journal; says whether the job started on a lease. */
static int
end_on_journal(
    const struct slurm_conf *c, const struct slurm_job *job, bool only_if_started, bool *appended)
{
	struct lease_entry *entries = NULL, end = {0};
	char err[512];
	size_t n = 0;
	int fd, r = -1;
	bool started = false;

	*appended = false;
	if ((fd = lease_lock(c->state_dir, err, sizeof(err))) < 0 ||
	    lease_journal_read(c->state_dir, &entries, &n, err, sizeof(err)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (entries[i].start && strcmp(entries[i].job_id, job->job_id) == 0)
			started = true;
	if (!only_if_started || started) {
		snprintf(end.job_id, sizeof(end.job_id), "%s", job->job_id);
		end.elapsed_s = job->run_time_s;
		if (lease_journal_append(c->state_dir, &end, err, sizeof(err)) < 0)
			goto out;
		*appended = true;
	}
	r = 0;
out:
	if (r < 0)
		fprintf(stderr, "allot-slurm: %s\n", err);
	free(entries);
	lease_unlock(fd);
	return r;
}

/* `allot-slurm lease`: replay the journal, then renew every lease that needs it. */
static int
cmd_lease(const struct slurm_conf *c)
{
	struct allot_client *client;
	bool unreachable;
	int replayed, status = 0;

	if (c->lease_projects[0] == '\0') {
		fprintf(stderr, "allot-slurm: lease_projects is empty: no lease to hold\n");
		return EXIT_USAGE;
	}
	if ((client = slurm_conf_connect(c)) == NULL)
		return EXIT_USAGE;
	if ((replayed = sync_journal(c, client, &unreachable)) < 0) {
		allot_close(client);
		return unreachable ? EXIT_UNREACHABLE : EXIT_REFUSED;
	}
	for (const char *p = c->lease_projects; *p != '\0';) {
		char project[128], err[512];
		size_t len = strcspn(p, ", ");
		struct lease l;
		int r;

		snprintf(project, sizeof(project), "%.*s", (int)(len < 127 ? len : 127), p);
		p += len;
		p += strspn(p, ", ");
		r = lease_read(c->state_dir, project, &l, err, sizeof(err));
		/* Renewed when missing, past half its life, or drawn from by a replay. */
		if (r == 1 && replayed == 0 &&
		    l.expires - (long long)time(NULL) > c->lease_ttl_s / 2)
			continue;
		if (renew_lease(c, client, project) < 0)
			status = EXIT_REFUSED;
	}
	allot_close(client);
	return status;
}

static int
cmd_admit(const struct slurm_conf *c, int argc, char **argv)
{
	Allot__V1__QuoteRequest req = ALLOT__V1__QUOTE_REQUEST__INIT;
	Allot__V1__QuoteResponse *resp = NULL;
	struct allot_client *client;
	struct allot_error e;
	long long gpus = -1, nodes = 1, cpus = 0, limit = -1;
	const char *account = NULL, *user = "", *partition = "";
	int r = 0;

	for (int i = 1; i < argc; i += 2) {
		const char *flag = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strncmp(flag, "--", 2) != 0 || v == NULL) {
			fprintf(stderr, "allot-slurm: admit: \"%s\" is not --FLAG VALUE\n", flag);
			return EXIT_USAGE;
		}
		flag += 2;
		if (strcmp(flag, "account") == 0)
			account = v;
		else if (strcmp(flag, "user") == 0)
			user = v;
		else if (strcmp(flag, "partition") == 0)
			partition = v;
		else if (strcmp(flag, "gpus") == 0)
			r = parse_count(flag, v, 1000000, &gpus);
		else if (strcmp(flag, "nodes") == 0)
			r = parse_count(flag, v, 100000, &nodes);
		else if (strcmp(flag, "cpus") == 0)
			r = parse_count(flag, v, 100000000, &cpus);
		else if (strcmp(flag, "time-limit-s") == 0)
			r = parse_count(flag, v, 366LL * 86400, &limit);
		else {
			fprintf(stderr, "allot-slurm: admit: unknown flag --%s\n", flag);
			r = -1;
		}
		if (r < 0)
			return EXIT_USAGE;
	}
	/* job_submit.lua passes "-" for a user or partition the job does not name. */
	if (strcmp(user, "-") == 0)
		user = "";
	if (strcmp(partition, "-") == 0)
		partition = "";
	if (account == NULL || account[0] == '\0') {
		printf("refused: the job names no account (sbatch -A PROJECT)\n");
		return EXIT_REFUSED;
	}
	if (gpus < 0 || limit < 0) {
		fprintf(stderr, "allot-slurm: admit: --gpus and --time-limit-s are required\n");
		return EXIT_USAGE;
	}
	if ((client = slurm_conf_connect(c)) == NULL)
		return EXIT_USAGE;
	req.site = (char *)c->site;
	req.account = (char *)account;
	req.user = (char *)user;
	req.partition = (char *)partition;
	req.gpus = (int32_t)gpus;
	req.nodes = (int32_t)nodes;
	req.cpus = (int32_t)cpus;
	req.time_limit_s = limit;
	int status;
	if (allot_call(client, "allot.v1.Ledger/Quote", &req.base,
	        &allot__v1__quote_response__descriptor, (ProtobufCMessage **)&resp, &e) < 0) {
		if (unreachable_error(&e) && slurm_conf_leased(c, account)) {
			char why[512];
			int lr =
			    on_lease(c, account, partition, gpus, limit, NULL, why, sizeof(why));

			printf("%s: Allot could not be reached; %s\n", lr == 1 ? "ok" : "refused",
			    lr >= 0 ? why : "the lease could not be read");
			status = lr == 1 ? 0 : EXIT_REFUSED;
		} else {
			status = failed_call(c, "quote", &e, true);
		}
	} else if (!resp->allowed) {
		/* Quote's reason carries the figures ("exhausted: the job needs ..."). */
		printf("refused: project of account \"%s\": %s\n", account, resp->reason);
		status = EXIT_REFUSED;
	} else {
		printf("ok: the job costs %.2f GPU-hours of allocation %" PRId64
		       ", %.2f available\n",
		    resp->cost_gpu_hours, resp->allocation_id, resp->available_gpu_hours);
		status = 0;
	}
	if (resp != NULL)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	allot_close(client);
	return status;
}

/* The job of SLURM_JOB_ID as scontrol tells it. Returns 0 or -1 (said on stderr). */
static int
load_job(const struct slurm_conf *c, struct slurm_job *job)
{
	const char *id = getenv("SLURM_JOB_ID");
	char cmd[1200], line[16384], err[256];
	FILE *p;

	if (id == NULL || id[0] == '\0' || strspn(id, "0123456789_") != strlen(id) ||
	    strlen(id) > 32) {
		fprintf(stderr, "allot-slurm: SLURM_JOB_ID is not set to a job id\n");
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "%s show job -o %s", c->scontrol, id);
	if ((p = popen(cmd, "r")) == NULL) {
		fprintf(stderr, "allot-slurm: could not run %s: %s\n", cmd, strerror(errno));
		return -1;
	}
	bool got = fgets(line, sizeof(line), p) != NULL;
	int rc = pclose(p);
	if (!got || rc != 0) {
		fprintf(stderr, "allot-slurm: %s failed (status %d)\n", cmd, rc);
		return -1;
	}
	if (slurm_job_parse(line, job, err, sizeof(err)) < 0) {
		fprintf(stderr, "allot-slurm: %s\n", err);
		return -1;
	}
	/* The environment's account and user are the job's own; scontrol's may be empty. */
	const char *acct = getenv("SLURM_JOB_ACCOUNT"), *user = getenv("SLURM_JOB_USER");
	if (acct != NULL && acct[0] != '\0')
		snprintf(job->account, sizeof(job->account), "%s", acct);
	if (user != NULL && user[0] != '\0')
		snprintf(job->user, sizeof(job->user), "%s", user);
	return 0;
}

static int
cmd_prolog(const struct slurm_conf *c)
{
	Allot__V1__ReserveRequest req = ALLOT__V1__RESERVE_REQUEST__INIT;
	Allot__V1__Lien *lien = NULL;
	struct allot_client *client;
	struct allot_error e;
	struct slurm_job job;
	char lien_id[256];
	int status;

	if (load_job(c, &job) < 0)
		return EXIT_USAGE;
	if (job.time_limit_s < 0) {
		fprintf(stderr,
		    "allot-slurm: job %s has no time limit: Allot cannot hold its cost\n",
		    job.job_id);
		return EXIT_REFUSED;
	}
	if ((client = slurm_conf_connect(c)) == NULL)
		return EXIT_USAGE;
	/* What ran while Allot was away goes first, so that the ledger keeps their order. */
	bool unreachable = false;
	if (c->lease_projects[0] != '\0')
		(void)sync_journal(c, client, &unreachable);
	/* One lien id per job and site: a prolog run again (a requeue) replays it. */
	snprintf(lien_id, sizeof(lien_id), "slurm-%s-%s", c->site, job.job_id);
	req.lien_id = lien_id;
	req.site = (char *)c->site;
	req.job_id = job.job_id;
	req.partition = job.partition;
	req.account = job.account;
	req.user = job.user;
	req.gpus = job.gpus;
	req.cpus = job.cpus;
	req.nodes = job.nodes;
	req.time_limit_s = job.time_limit_s;
	req.expires_in_s = job.time_limit_s + c->lien_grace_s;
	if (allot_call(client, "allot.v1.Ledger/Reserve", &req.base, &allot__v1__lien__descriptor,
	        (ProtobufCMessage **)&lien, &e) < 0) {
		if (unreachable_error(&e) && slurm_conf_leased(c, job.account)) {
			struct lease_entry start = {.start = true};
			char why[512];

			snprintf(start.project, sizeof(start.project), "%s", job.account);
			snprintf(start.job_id, sizeof(start.job_id), "%s", job.job_id);
			snprintf(start.partition, sizeof(start.partition), "%s", job.partition);
			snprintf(
			    start.user, sizeof(start.user), "%s", job.user[0] ? job.user : "-");
			start.gpus = job.gpus;
			start.cpus = job.cpus;
			start.nodes = job.nodes;
			start.limit_s = job.time_limit_s;
			/* Every field goes into a journal line: only safe words do. */
			int r = lease_word(job.account) && lease_word(job.partition) &&
			        lease_word(start.user)
			    ? on_lease(c, job.account, job.partition, job.gpus, job.time_limit_s,
			          &start, why, sizeof(why))
			    : 0;
			if (r != 1 && lease_word(job.account))
				fprintf(stderr,
				    "allot-slurm: job %s: Allot could not be reached; %s\n",
				    job.job_id, r == 0 ? why : "the lease could not be read");
			else if (r == 1)
				fprintf(stderr, "allot-slurm: job %s runs on its lease: %s\n",
				    job.job_id, why);
			status = r == 1 ? 0 : EXIT_REFUSED;
		} else {
			status = failed_call(c, "reserve", &e, false);
		}
	} else {
		fprintf(stderr,
		    "allot-slurm: job %s holds lien %s: %.2f GPU-hours on allocation %" PRId64 "\n",
		    job.job_id, lien->lien_id, lien->held_gpu_hours, lien->allocation_id);
		protobuf_c_message_free_unpacked(&lien->base, NULL);
		status = 0;
	}
	allot_close(client);
	return status;
}

static int
cmd_epilog(const struct slurm_conf *c)
{
	Allot__V1__HeartbeatRequest hb = ALLOT__V1__HEARTBEAT_REQUEST__INIT;
	Allot__V1__SettleRequest st = ALLOT__V1__SETTLE_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	struct allot_client *client;
	struct allot_error e;
	struct slurm_job job;
	int status = 0;

	if (load_job(c, &job) < 0)
		return EXIT_USAGE;
	if ((client = slurm_conf_connect(c)) == NULL)
		return EXIT_USAGE;
	if (c->lease_projects[0] != '\0') {
		bool appended, unreachable;

		/* A job that started on a lease ends in the journal, replayed in order. */
		if (end_on_journal(c, &job, true, &appended) < 0) {
			allot_close(client);
			return EXIT_USAGE;
		}
		if (appended) {
			(void)sync_journal(c, client, &unreachable);
			allot_close(client);
			return 0;
		}
	}
	hb.site = st.site = (char *)c->site;
	hb.job_id = st.job_id = job.job_id;
	hb.elapsed_s = job.run_time_s;
	if (allot_call(client, "allot.v1.Ledger/Heartbeat", &hb.base,
	        &allot__v1__heartbeat_response__descriptor, &resp, &e) < 0) {
		bool appended;

		/* With leases, a job's end is kept until Allot can take it. */
		if (unreachable_error(&e) && c->lease_projects[0] != '\0' &&
		    end_on_journal(c, &job, false, &appended) == 0) {
			fprintf(stderr,
			    "allot-slurm: job %s: Allot could not be reached; its end is "
			    "kept in the journal\n",
			    job.job_id);
			status = 0;
		} else {
			status = failed_call(c, "heartbeat", &e, false);
		}
	} else {
		protobuf_c_message_free_unpacked(resp, NULL);
		if (allot_call(client, "allot.v1.Ledger/Settle", &st.base,
		        &allot__v1__lien__descriptor, &resp, &e) < 0) {
			status = failed_call(c, "settle", &e, false);
		} else {
			const Allot__V1__Lien *l = (const Allot__V1__Lien *)resp;

			fprintf(stderr,
			    "allot-slurm: job %s settled after %lld s: %" PRId64
			    " units charged, %" PRId64 " released\n",
			    job.job_id, job.run_time_s, l->drawn_units, l->released_units);
			protobuf_c_message_free_unpacked(resp, NULL);
		}
	}
	allot_close(client);
	return status;
}

static void
usage(FILE *out)
{
	fputs("usage: allot-slurm [-c FILE] admit --account A --user U --partition P --gpus N\n"
	      "                   [--nodes N] [--cpus N] --time-limit-s S\n"
	      "       allot-slurm [-c FILE] prolog     (PrologSlurmctld)\n"
	      "       allot-slurm [-c FILE] epilog     (EpilogSlurmctld)\n"
	      "       allot-slurm [-c FILE] lease      (every few minutes, with leases)\n"
	      "FILE defaults to " SLURM_CONF_DEFAULT ".\n",
	    out);
}

int
main(int argc, char **argv)
{
	const char *path = SLURM_CONF_DEFAULT;
	struct slurm_conf conf;
	int i = 1;

	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc > 2 && strcmp(argv[1], "-c") == 0) {
		path = argv[2];
		i = 3;
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (slurm_conf_load(path, &conf) < 0)
		return EXIT_USAGE;
	if (strcmp(argv[i], "admit") == 0)
		return cmd_admit(&conf, argc - i, argv + i);
	if (strcmp(argv[i], "prolog") == 0 && i + 1 == argc)
		return cmd_prolog(&conf);
	if (strcmp(argv[i], "epilog") == 0 && i + 1 == argc)
		return cmd_epilog(&conf);
	if (strcmp(argv[i], "lease") == 0 && i + 1 == argc)
		return cmd_lease(&conf);
	usage(stderr);
	return EXIT_USAGE;
}
