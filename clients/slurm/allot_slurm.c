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

#include "allot/v1/ledger.pb-c.h"
#include "allot_client.h"
#include "confline.h"
#include "slurm_job.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

#define DEFAULT_CONF "/etc/allot/slurm.conf"

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
};

static int
conf_setting(void *arg, const char *key, const char *value, int lineno, char *msg, size_t msglen)
{
	struct slurm_conf *c = arg;
	char *dst = NULL;
	size_t dstlen = 0;

	(void)lineno;
	if (strcmp(key, "server") == 0) {
		dst = c->server, dstlen = sizeof(c->server);
		c->seen_server = true;
	} else if (strcmp(key, "site") == 0) {
		dst = c->site, dstlen = sizeof(c->site);
		c->seen_site = true;
	} else if (strcmp(key, "tls_cert") == 0) {
		dst = c->tls_cert, dstlen = sizeof(c->tls_cert);
	} else if (strcmp(key, "tls_key") == 0) {
		dst = c->tls_key, dstlen = sizeof(c->tls_key);
	} else if (strcmp(key, "tls_ca") == 0) {
		dst = c->tls_ca, dstlen = sizeof(c->tls_ca);
	} else if (strcmp(key, "scontrol") == 0) {
		dst = c->scontrol, dstlen = sizeof(c->scontrol);
	} else if (strcmp(key, "timeout_ms") == 0 || strcmp(key, "lien_grace_s") == 0) {
		long long v;
		bool t = key[0] == 't';

		if (confline_number(value, false, &v) != 0 || v < (t ? 100 : 0) ||
		    v > (t ? 600000 : 604800)) {
			snprintf(msg, msglen, "%s must be a number from %d to %d", key, t ? 100 : 0,
			    t ? 600000 : 604800);
			return -1;
		}
		*(t ? &c->timeout_ms : &c->lien_grace_s) = v;
		return 0;
	} else if (strcmp(key, "unreachable") == 0) {
		if (strcmp(value, "admit") != 0 && strcmp(value, "refuse") != 0) {
			snprintf(
			    msg, msglen, "unreachable must be admit or refuse, not \"%s\"", value);
			return -1;
		}
		c->admit_unreachable = value[0] == 'a';
		return 0;
	} else {
		snprintf(msg, msglen, "unknown key \"%s\"", key);
		return -1;
	}
	if (strlen(value) >= dstlen) {
		snprintf(msg, msglen, "%s is longer than %zu bytes", key, dstlen - 1);
		return -1;
	}
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

static int
conf_load(const char *path, struct slurm_conf *c)
{
	char err[1200];
	FILE *f;
	int r;

	memset(c, 0, sizeof(*c));
	snprintf(c->scontrol, sizeof(c->scontrol), "scontrol");
	c->timeout_ms = 2000;
	c->lien_grace_s = 3600;
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "allot-slurm: %s: %s\n", path, strerror(errno));
		return -1;
	}
	r = confline_read(f, path, conf_setting, c, err, sizeof(err));
	fclose(f);
	if (r != 0) {
		fprintf(stderr, "allot-slurm: %s\n", err);
		return -1;
	}
	if (!c->seen_server || !c->seen_site) {
		fprintf(stderr, "allot-slurm: %s: server and site are required\n", path);
		return -1;
	}
	return 0;
}

static struct allot_client *
connect_allot(const struct slurm_conf *c)
{
	struct allot_client_options o = {0};
	struct allot_client *client;
	char err[512];

	o.server_url = c->server;
	o.cert_file = c->tls_cert[0] != '\0' ? c->tls_cert : NULL;
	o.key_file = c->tls_key[0] != '\0' ? c->tls_key : NULL;
	o.ca_file = c->tls_ca[0] != '\0' ? c->tls_ca : NULL;
	o.wire = ALLOT_WIRE_PROTOBUF;
	o.timeout_ms = c->timeout_ms;
	if ((client = allot_client_new(&o, err, sizeof(err))) == NULL)
		fprintf(stderr, "allot-slurm: %s\n", err);
	return client;
}

/* A transport failure or an answer that says Allot cannot decide now. */
static bool
unreachable_error(const struct allot_error *e)
{
	return e->code == TWIRP_UNAVAILABLE || e->code == TWIRP_DEADLINE_EXCEEDED ||
	    e->code == TWIRP_INTERNAL || e->code == TWIRP_UNKNOWN;
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
	if ((client = connect_allot(c)) == NULL)
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
	if (allot_client_call(client, "allot.v1.Ledger/Quote", &req.base,
	        &allot__v1__quote_response__descriptor, (ProtobufCMessage **)&resp, &e) < 0) {
		status = failed_call(c, "quote", &e, true);
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
	allot_client_free(client);
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
	if ((client = connect_allot(c)) == NULL)
		return EXIT_USAGE;
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
	if (allot_client_call(client, "allot.v1.Ledger/Reserve", &req.base,
	        &allot__v1__lien__descriptor, (ProtobufCMessage **)&lien, &e) < 0) {
		status = failed_call(c, "reserve", &e, false);
	} else {
		fprintf(stderr,
		    "allot-slurm: job %s holds lien %s: %.2f GPU-hours on allocation %" PRId64 "\n",
		    job.job_id, lien->lien_id, lien->held_gpu_hours, lien->allocation_id);
		protobuf_c_message_free_unpacked(&lien->base, NULL);
		status = 0;
	}
	allot_client_free(client);
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
	if ((client = connect_allot(c)) == NULL)
		return EXIT_USAGE;
	hb.site = st.site = (char *)c->site;
	hb.job_id = st.job_id = job.job_id;
	hb.elapsed_s = job.run_time_s;
	if (allot_client_call(client, "allot.v1.Ledger/Heartbeat", &hb.base,
	        &allot__v1__heartbeat_response__descriptor, &resp, &e) < 0) {
		status = failed_call(c, "heartbeat", &e, false);
	} else {
		protobuf_c_message_free_unpacked(resp, NULL);
		if (allot_client_call(client, "allot.v1.Ledger/Settle", &st.base,
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
	allot_client_free(client);
	return status;
}

static void
usage(FILE *out)
{
	fputs("usage: allot-slurm [-c FILE] admit --account A --user U --partition P --gpus N\n"
	      "                   [--nodes N] [--cpus N] --time-limit-s S\n"
	      "       allot-slurm [-c FILE] prolog     (PrologSlurmctld)\n"
	      "       allot-slurm [-c FILE] epilog     (EpilogSlurmctld)\n"
	      "FILE defaults to " DEFAULT_CONF ".\n",
	    out);
}

int
main(int argc, char **argv)
{
	const char *path = DEFAULT_CONF;
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
	if (conf_load(path, &conf) < 0)
		return EXIT_USAGE;
	if (strcmp(argv[i], "admit") == 0)
		return cmd_admit(&conf, argc - i, argv + i);
	if (strcmp(argv[i], "prolog") == 0 && i + 1 == argc)
		return cmd_prolog(&conf);
	if (strcmp(argv[i], "epilog") == 0 && i + 1 == argc)
		return cmd_epilog(&conf);
	usage(stderr);
	return EXIT_USAGE;
}
