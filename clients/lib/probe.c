/*
 * probe: one liballot call with the options given, its outcome on one line;
 * what tests/integration/test_liballot.py drives (retries, timeouts, errors).
 *
 *   allot-probe [--attempts N] [--timeout-ms N] [--connect-timeout-ms N]
 *               [--deadline-ms N] [--backoff-ms N] [--json] SERVER CALL ARGS...
 *   CALL: quote SITE PARTITION ACCOUNT GPUS LIMIT_S
 *         reserve SITE PARTITION ACCOUNT GPUS LIMIT_S LIEN_ID JOB_ID
 *         settle SITE JOB_ID | release SITE JOB_ID
 *         heartbeat SITE JOB_ID ELAPSED_S
 *         priorities SITE [ACCOUNT:USER...]   (at most PROBE_PAIRS; none: an empty call)
 *
 * The certificate, key and CA come from ALLOT_CERT, ALLOT_KEY, ALLOT_CA. Prints
 * "ok attempts=N ms=T FIELDS" and exits 0 (priorities: pI=PROJECT,FAIRSHARE,PACING,
 * COMBINED,KNOWN for each pair I, the figures as %.17g, exactly as the doubles are), or "error code=C attempts=N ms=T
 * http=S msg=M" and exits 1; 2 for a bad command line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allot.h"

static long long
probe_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
probe_usage(void)
{
	fprintf(stderr,
	    "usage: allot-probe [--attempts N] [--timeout-ms N] "
	    "[--connect-timeout-ms N] [--deadline-ms N] [--backoff-ms N] [--json] "
	    "SERVER CALL ARGS...\n");
	return 2;
}

#define PROBE_PAIRS 64

static const char *const lien_status[] = {
    "unspecified", "active", "settled", "released", "expired", "replaced"};

static void
probe_print_lien(char *out, size_t size, const struct allot_lien *l)
{
	size_t n = strlen(out);

	snprintf(out + n, size - n,
	    " lien=%s status=%s project=%s held=%" PRId64 " drawn=%" PRId64 " released=%" PRId64
	    " available=%" PRId64,
	    l->lien_id, (unsigned)l->status < 6 ? lien_status[l->status] : "?", l->project,
	    l->held_units, l->drawn_units, l->released_units, l->available_units);
}

/*
 * Runs the call named by argv[0]: 1 with the answer's fields in out, 0 with
 * err filled, -1 for a bad command line.
 */
static int
probe_call(
    struct allot_client *c, int argc, char **argv, char *out, size_t size, struct allot_error *err)
{
	struct allot_job job = {.user = "probe", .nodes = 1};
	struct allot_lien lien;
	int r;

	if (argc >= 6 && (strcmp(argv[0], "quote") == 0 || strcmp(argv[0], "reserve") == 0)) {
		job.site = argv[1];
		job.partition = argv[2];
		job.account = argv[3];
		job.gpus = atoi(argv[4]);
		job.cpus = 8 * job.gpus;
		job.time_limit_s = atoll(argv[5]);
	}
	if (argc == 6 && strcmp(argv[0], "quote") == 0) {
		struct allot_quote q;

		if ((r = allot_quote(c, &job, NULL, &q, err)) == 0)
			snprintf(out, size,
			    "allowed=%d cost=%" PRId64 " available=%" PRId64 " reason=%s",
			    q.allowed, q.cost_units, q.available_units, q.reason);
		return r == 0 ? 1 : 0;
	}
	if (argc == 8 && strcmp(argv[0], "reserve") == 0) {
		struct allot_reservation res = {.lien_id = argv[6], .job_id = argv[7], .job = job};

		if ((r = allot_reserve(c, &res, &lien, err)) == 0)
			probe_print_lien(out, size, &lien);
		return r == 0 ? 1 : 0;
	}
	if (argc == 3 && (strcmp(argv[0], "settle") == 0 || strcmp(argv[0], "release") == 0)) {
		r = argv[0][0] == 's' ? allot_settle(c, argv[1], argv[2], NULL, &lien, err)
		                      : allot_release(c, argv[1], argv[2], NULL, &lien, err);
		if (r == 0)
			probe_print_lien(out, size, &lien);
		return r == 0 ? 1 : 0;
	}
	if (argc == 4 && strcmp(argv[0], "heartbeat") == 0) {
		struct allot_heartbeat hb;

		if ((r = allot_heartbeat(c, argv[1], argv[2], atoll(argv[3]), &hb, err)) == 0) {
			snprintf(out, size, "action=%s reason=%s charged=%" PRId64,
			    hb.action == ALLOT_ACTION_STOP ? "stop" : "continue", hb.reason,
			    hb.charged_units);
			probe_print_lien(out, size, &hb.lien);
		}
		return r == 0 ? 1 : 0;
	}
	if (argc >= 2 && argc - 2 <= PROBE_PAIRS && strcmp(argv[0], "priorities") == 0) {
		struct allot_priority_pair pairs[PROBE_PAIRS];
		struct allot_priority pr[PROBE_PAIRS];
		size_t n = (size_t)argc - 2;

		for (size_t k = 0; k < n; k++) {
			char *colon = strchr(argv[2 + k], ':');

			if (colon == NULL)
				return -1;
			*colon = '\0';
			pairs[k] = (struct allot_priority_pair){argv[2 + k], colon + 1};
		}
		if ((r = allot_priorities(c, argv[1], pairs, n, pr, err)) != 0)
			return 0;
		for (size_t k = 0; k < n; k++) {
			size_t len = strlen(out);

			snprintf(out + len, size - len, "%sp%zu=%s,%.17g,%.17g,%.17g,%d",
			    k ? " " : "", k, pr[k].project, pr[k].fairshare, pr[k].pacing,
			    pr[k].combined, pr[k].known_user);
		}
		return 1;
	}
	return -1;
}

int
main(int argc, char **argv)
{
	struct allot_options opts;
	struct allot_error err;
	struct allot_client *c;
	char out[16384] = "";
	long long t0;
	int i = 1, r;

	allot_options_init(&opts);
	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		long v = atol(argv[i + 1]);

		if (strcmp(argv[i], "--json") == 0) {
			opts.wire = ALLOT_WIRE_JSON;
			i--;
		} else if (strcmp(argv[i], "--attempts") == 0)
			opts.max_attempts = (int)v;
		else if (strcmp(argv[i], "--timeout-ms") == 0)
			opts.timeout_ms = v;
		else if (strcmp(argv[i], "--connect-timeout-ms") == 0)
			opts.connect_timeout_ms = v;
		else if (strcmp(argv[i], "--deadline-ms") == 0)
			opts.deadline_ms = v;
		else if (strcmp(argv[i], "--backoff-ms") == 0)
			opts.backoff_initial_ms = v;
		else
			return probe_usage();
	}
	if (argc - i < 2)
		return probe_usage();
	opts.server_url = argv[i++];
	opts.cert_file = getenv("ALLOT_CERT");
	opts.key_file = getenv("ALLOT_KEY");
	opts.ca_file = getenv("ALLOT_CA");
	t0 = probe_now_ms();
	if ((c = allot_connect(&opts, &err)) == NULL) {
		printf("error code=%s attempts=0 ms=0 http=0 msg=%s\n", err.code_name, err.msg);
		return 1;
	}
	r = probe_call(c, argc - i, argv + i, out, sizeof(out), &err);
	if (r < 0) {
		allot_close(c);
		return probe_usage();
	}
	if (r > 0)
		printf("ok attempts=%d ms=%lld %s\n", err.attempts, probe_now_ms() - t0, out);
	else
		printf("error code=%s attempts=%d ms=%lld http=%d msg=%s\n", err.code_name,
		    err.attempts, probe_now_ms() - t0, err.http_status, err.msg);
	allot_close(c);
	return r > 0 ? 0 : 1;
}
