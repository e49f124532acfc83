/*
 * example: a job's life through liballot. Quotes the job, reserves its cost
 * under a lien id of its own, and settles it when the job "ended".
 *
 *   ALLOT_SERVER=https://allot.example:8443 ALLOT_CA=ca.crt \
 *   ALLOT_CERT=scheduler.crt ALLOT_KEY=scheduler.key \
 *   allot-example SITE PARTITION ACCOUNT JOB_ID
 *
 * Build it against the installed library:
 *   cc example.c $(pkg-config --cflags --libs allot) -o allot-example
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <allot.h>

static int
fail(const char *what, const struct allot_error *err)
{
	fprintf(stderr, "allot-example: %s: %s: %s\n", what, err->code_name, err->msg);
	return 1;
}

int
main(int argc, char **argv)
{
	struct allot_options opts;
	struct allot_error err;
	struct allot_client *client;
	struct allot_quote quote;
	struct allot_lien lien;
	char lien_id[300];
	int status = 1;

	if (argc != 5) {
		fprintf(stderr, "usage: allot-example SITE PARTITION ACCOUNT JOB_ID\n");
		return 2;
	}
	allot_options_init(&opts);
	opts.server_url = getenv("ALLOT_SERVER");
	opts.ca_file = getenv("ALLOT_CA");
	opts.cert_file = getenv("ALLOT_CERT");
	opts.key_file = getenv("ALLOT_KEY");
	/* Retry unavailable up to 5 times within 20 s: the lien id makes it safe. */
	opts.max_attempts = 5;
	opts.deadline_ms = 20000;
	if ((client = allot_connect(&opts, &err)) == NULL)
		return fail("connect", &err);

	struct allot_job job = {
	    .site = argv[1],
	    .partition = argv[2],
	    .account = argv[3],
	    .user = "example",
	    .gpus = 1,
	    .cpus = 8,
	    .nodes = 1,
	    .time_limit_s = 3600,
	};
	if (allot_quote(client, &job, NULL, &quote, &err) != 0) {
		fail("quote", &err);
		goto done;
	}
	printf("quote: allowed=%s cost=%.2f GPU-h available=%.2f GPU-h%s%s\n",
	    quote.allowed ? "yes" : "no", quote.cost_gpu_hours, quote.available_gpu_hours,
	    quote.allowed ? "" : " reason=", quote.reason);
	if (!quote.allowed)
		goto done;

	snprintf(lien_id, sizeof(lien_id), "example:%s:%s", argv[1], argv[4]);
	struct allot_reservation res = {.lien_id = lien_id, .job_id = argv[4], .job = job};
	if (allot_reserve(client, &res, &lien, &err) != 0) {
		fail("reserve", &err);
		goto done;
	}
	printf("reserve: lien=%s held=%" PRId64 " units\n", lien.lien_id, lien.held_units);

	/* ... the job runs; its usage reaches Allot through the site's collector ... */

	if (allot_settle(client, argv[1], argv[4], NULL, &lien, &err) != 0) {
		fail("settle", &err);
		goto done;
	}
	printf("settle: lien=%s released=%" PRId64 " units\n", lien.lien_id, lien.released_units);
	status = 0;
done:
	allot_close(client);
	return status;
}
