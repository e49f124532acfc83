/*
 * ingest: `allot ingest --site S [--batch-id ID] [--batch-size N] FILE`.
 *
 * Reads the whole input first, so that a bad line stops everything before any
 * record is sent; then sends batches of --batch-size records and reports each
 * batch's counts and rejected records. A batch id not given is derived from the
 * site and the batch's content. Retrying and spooling are left to collectors.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jobrecords.h"
#include "render.h"

#define INGEST_DEFAULT_BATCH 1000
#define INGEST_MAX_BATCH 1000000

static const char ingest_usage_text[] =
    "usage: allot ingest --site S [--batch-id ID] [--batch-size N] FILE\n"
    "\n"
    "Sends job records to allotd. FILE (or - for standard input) holds one\n"
    "allot.v1.JobRecord in proto3 JSON per line, for example\n"
    "  {\"jobId\": \"4242\", \"startTime\": \"2026-03-01T10:00:00Z\", \"account\": \"acme\",\n"
    "   \"partition\": \"boost_usr_prod\", \"gpus\": 4, \"elapsedS\": \"3600\"}\n"
    "Blank lines and lines starting with # are skipped. A line that does not decode\n"
    "stops the command before anything is sent.\n"
    "\n"
    "options:\n"
    "  --site S            the site the records come from (required)\n"
    "  --batch-id ID       id of the batch (ID-1, ID-2, ... when there are several);\n"
    "                      default: the site and a hash of the batch's records, so that\n"
    "                      sending the same file again is a harmless replay\n"
    "  --batch-size N      records per request (default 1000)\n"
    "  --format table|json output format, as the global option\n"
    "  --help              show this help\n"
    "\n"
    "Prints each batch's counts and each rejected record; exits 1 if any record was\n"
    "rejected.\n";

/* Prints one batch's outcome; counts its rejected records into *rejected. */
static bool
ingest_report(const struct cli *cli, const Allot__V1__IngestResponse *resp,
    const struct jobrecords *recs, size_t first, size_t count, size_t *rejected)
{
	for (size_t i = 0; i < resp->n_results; i++)
		if (resp->results[i]->status == ALLOT__V1__INGEST_STATUS__INGEST_STATUS_REJECTED)
			(*rejected)++;
	if (cli->format == CLI_FORMAT_JSON)
		return render_json(stdout, &resp->base);

	printf("batch %s: %d charged, %d duplicate, %d recorded, %d rejected\n", resp->batch_id,
	    resp->charged, resp->duplicates, resp->recorded, resp->rejected);
	for (size_t i = 0; i < resp->n_results; i++) {
		const Allot__V1__RecordResult *res = resp->results[i];

		if (res->status != ALLOT__V1__INGEST_STATUS__INGEST_STATUS_REJECTED)
			continue;
		printf("  rejected record %d", res->index);
		if (res->index >= 0 && (size_t)res->index < count)
			printf(" (line %zu)", recs->lines[first + (size_t)res->index]);
		printf(", job %s%s%s: %s\n", res->job_id, res->step[0] != '\0' ? " step " : "",
		    res->step, res->reason);
	}
	return true;
}

/* Sends recs in batches; returns an exit status. */
static int
ingest_send(struct cli *cli, const char *site, const char *batch_id, size_t batch_size,
    const struct jobrecords *recs)
{
	Allot__V1__IngestRequest req = ALLOT__V1__INGEST_REQUEST__INIT;
	ProtobufCMessage *resp;
	char id[256];
	size_t nbatches = (recs->n + batch_size - 1) / batch_size, rejected = 0;
	bool ok;

	for (size_t b = 0; b < nbatches; b++) {
		size_t first = b * batch_size;
		size_t count = recs->n - first < batch_size ? recs->n - first : batch_size;

		if (batch_id == NULL) {
			if (jobrecords_batch_id(
			        site, recs->records + first, count, id, sizeof(id)) < 0) {
				fprintf(stderr, "allot: could not hash batch %zu\n", b + 1);
				return CLI_EXIT_FAIL;
			}
		} else if (nbatches == 1) {
			snprintf(id, sizeof(id), "%s", batch_id);
		} else {
			snprintf(id, sizeof(id), "%s-%zu", batch_id, b + 1);
		}
		req.site = (char *)site;
		req.batch_id = id;
		req.records = recs->records + first;
		req.n_records = count;

		if (cli->dry_run) {
			if (!render_json(stdout, &req.base))
				return CLI_EXIT_FAIL;
			continue;
		}
		if (cli_call(cli, "allot.v1.Usage/Ingest", &req.base,
		        &allot__v1__ingest_response__descriptor, &resp) < 0)
			return CLI_EXIT_FAIL;
		ok = ingest_report(
		    cli, (const Allot__V1__IngestResponse *)resp, recs, first, count, &rejected);
		protobuf_c_message_free_unpacked(resp, NULL);
		if (!ok) {
			fprintf(stderr, "allot: could not print the answer to batch %s\n", id);
			return CLI_EXIT_FAIL;
		}
		/* Progress shows as batches go, not all at the end. */
		fflush(stdout);
	}
	return rejected > 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int
ingest_main(struct cli *cli, int argc, char **argv)
{
	struct jobrecords recs;
	const char *site = NULL, *batch_id = NULL, *file = NULL, *value;
	char name[64], err[512], *end;
	unsigned long long batch_size = INGEST_DEFAULT_BATCH;
	FILE *in;
	int i = 1, r, status;

	while (i < argc) {
		r = cli_next_flag(argc, argv, &i, name, sizeof(name), &value, "ingest");
		if (r < 0)
			return CLI_EXIT_USAGE;
		if (r == 0) {
			if (file != NULL)
				return cli_usage_error(
				    "ingest", "unexpected argument \"%s\"", argv[i]);
			file = argv[i++];
			continue;
		}
		if (strcmp(name, "help") == 0) {
			fputs(ingest_usage_text, stdout);
			return CLI_EXIT_OK;
		}
		if (strcmp(name, "site") != 0 && strcmp(name, "batch-id") != 0 &&
		    strcmp(name, "batch-size") != 0 && strcmp(name, "format") != 0)
			return cli_usage_error("ingest", "unknown flag --%s", name);
		if (!cli_has_value("ingest", name, value))
			return CLI_EXIT_USAGE;
		if (strcmp(name, "site") == 0) {
			site = value;
		} else if (strcmp(name, "batch-id") == 0) {
			batch_id = value;
		} else if (strcmp(name, "batch-size") == 0) {
			errno = 0;
			batch_size =
			    isdigit((unsigned char)value[0]) ? strtoull(value, &end, 10) : 0;
			if (!isdigit((unsigned char)value[0]) || *end != '\0' || errno != 0 ||
			    batch_size < 1 || batch_size > INGEST_MAX_BATCH)
				return cli_usage_error("ingest",
				    "--batch-size: \"%s\" is not a number from 1 to %d", value,
				    INGEST_MAX_BATCH);
		} else if (strcmp(name, "format") == 0) {
			if (!cli_set_format(cli, value))
				return cli_usage_error(
				    "ingest", "--format: \"%s\" is not table or json", value);
		}
	}
	if (site == NULL || site[0] == '\0')
		return cli_usage_error("ingest", "--site is required");
	if (batch_id != NULL && batch_id[0] == '\0')
		return cli_usage_error("ingest", "--batch-id: empty id");
	if (file == NULL)
		return cli_usage_error("ingest", "no input file given (use - for standard input)");

	if (strcmp(file, "-") == 0) {
		in = stdin;
	} else {
		in = fopen(file, "r");
		if (in == NULL) {
			fprintf(
			    stderr, "allot: could not open \"%s\": %s\n", file, strerror(errno));
			return CLI_EXIT_FAIL;
		}
	}
	jobrecords_init(&recs);
	r = jobrecords_read(in, &recs, err, sizeof(err));
	if (in != stdin)
		fclose(in);
	if (r < 0) {
		fprintf(stderr, "allot: %s: %s\n", strcmp(file, "-") == 0 ? "stdin" : file, err);
		jobrecords_cleanup(&recs);
		return r == -1 ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
	}
	if (recs.n == 0) {
		fprintf(stderr, "allot: no records in %s\n",
		    strcmp(file, "-") == 0 ? "standard input" : file);
		jobrecords_cleanup(&recs);
		return CLI_EXIT_OK;
	}
	status = ingest_send(cli, site, batch_id, (size_t)batch_size, &recs);
	jobrecords_cleanup(&recs);
	return status;
}
