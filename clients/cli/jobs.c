/*
 * jobs: `allot jobs --project P [--since T] [--site S] [--limit N]`, a
 * project's jobs newest first with their charges, mean GPU utilization and
 * energy (Usage.ListJobs). Pages of at most 1000 jobs are fetched until N jobs
 * are shown or the list ends; printing is render's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/usage.pb-c.h"
#include "cli.h"
#include "render.h"

#define JOBS_PAGE_MAX 1000
#define JOBS_DEFAULT_LIMIT 100

static const char jobs_usage_text[] =
    "usage: allot jobs --project P [--since T] [--site S] [--limit N]\n"
    "                  [--format table|json|csv]\n"
    "\n"
    "Lists project P's jobs, newest first: site, job id, user, GPUs, elapsed time,\n"
    "charged GPU-hours and the site's own units, mean GPU utilization, GPU-hours at\n"
    "0 % utilization and energy, where the site's GPU metrics reached Allot.\n"
    "\n"
    "options:\n"
    "  --project P             the project (required)\n"
    "  --since T               jobs started at or after T (RFC 3339 or a date)\n"
    "  --site S                jobs of one site only\n"
    "  --limit N               show at most N jobs (default 100)\n"
    "  --format table|json|csv output format (default table, or the global option)\n"
    "  --help                  show this help\n";

/* The pages fetched so far, and one response that lists all their jobs. */
struct pages {
	ProtobufCMessage **resps;
	size_t n;
	Allot__V1__JobSummary **jobs;
	size_t njobs;
};

static void
pages_cleanup(struct pages *p)
{
	for (size_t i = 0; i < p->n; i++)
		protobuf_c_message_free_unpacked(p->resps[i], NULL);
	free(p->resps);
	free(p->jobs);
}

/* Keeps resp (taken) and its jobs; returns -1 when out of memory (resp is freed). */
static int
pages_add(struct pages *p, ProtobufCMessage *resp)
{
	const Allot__V1__ListJobsResponse *r = (const void *)resp;
	ProtobufCMessage **resps = realloc(p->resps, (p->n + 1) * sizeof(*resps));
	Allot__V1__JobSummary **jobs;

	if (resps == NULL) {
		protobuf_c_message_free_unpacked(resp, NULL);
		return -1;
	}
	p->resps = resps;
	p->resps[p->n++] = resp;
	jobs = realloc(p->jobs, (p->njobs + r->n_jobs + 1) * sizeof(*jobs));
	if (jobs == NULL)
		return -1;
	p->jobs = jobs;
	if (r->n_jobs > 0)
		memcpy(p->jobs + p->njobs, r->jobs, r->n_jobs * sizeof(*jobs));
	p->njobs += r->n_jobs;
	return 0;
}

int
jobs_main(struct cli *cli, int argc, char **argv)
{
	Allot__V1__ListJobsRequest req = ALLOT__V1__LIST_JOBS_REQUEST__INIT;
	Allot__V1__ListJobsResponse all = ALLOT__V1__LIST_JOBS_RESPONSE__INIT;
	struct pages pages = {0};
	const char *project = NULL, *value;
	bool csv = false;
	long limit = JOBS_DEFAULT_LIMIT;
	char name[64], *end;
	int i = 1, r, status = CLI_EXIT_FAIL;

	while (i < argc) {
		r = cli_next_flag(argc, argv, &i, name, sizeof(name), &value, "jobs");
		if (r < 0)
			return CLI_EXIT_USAGE;
		if (r == 0)
			return cli_usage_error("jobs", "unexpected argument \"%s\"", argv[i]);
		if (strcmp(name, "help") == 0) {
			fputs(jobs_usage_text, stdout);
			return CLI_EXIT_OK;
		}
		if (strcmp(name, "project") != 0 && strcmp(name, "since") != 0 &&
		    strcmp(name, "site") != 0 && strcmp(name, "limit") != 0 &&
		    strcmp(name, "format") != 0)
			return cli_usage_error("jobs", "unknown flag --%s", name);
		if (!cli_has_value("jobs", name, value))
			return CLI_EXIT_USAGE;
		if (strcmp(name, "project") == 0) {
			project = value;
		} else if (strcmp(name, "since") == 0) {
			req.since = (char *)value;
		} else if (strcmp(name, "site") == 0) {
			req.site = (char *)value;
		} else if (strcmp(name, "limit") == 0) {
			errno = 0;
			limit = strtol(value, &end, 10);
			if (errno != 0 || end == value || *end != '\0' || limit < 1 ||
			    limit > 1000000)
				return cli_usage_error("jobs",
				    "--limit: \"%s\" is not a number from 1 to 1000000", value);
		} else if (strcmp(value, "csv") == 0) {
			csv = true;
		} else if (cli_set_format(cli, value)) {
			csv = false;
		} else {
			return cli_usage_error(
			    "jobs", "--format: \"%s\" is not table, json or csv", value);
		}
	}
	if (project == NULL || project[0] == '\0')
		return cli_usage_error("jobs", "--project is required");
	req.project = (char *)project;

	do {
		ProtobufCMessage *resp = NULL;
		const Allot__V1__ListJobsResponse *page;
		long left = limit - (long)pages.njobs;

		req.limit = (int32_t)(left < JOBS_PAGE_MAX ? left : JOBS_PAGE_MAX);
		if (cli->dry_run) {
			status = render_json(stdout, &req.base) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
			goto out;
		}
		if (cli_call(cli, "allot.v1.Usage/ListJobs", &req.base,
		        &allot__v1__list_jobs_response__descriptor, &resp) < 0)
			goto out;
		page = (const void *)resp;
		if (pages_add(&pages, resp) != 0) {
			fputs("allot: out of memory\n", stderr);
			goto out;
		}
		/* The token lives in the kept page until pages_cleanup. */
		req.page_token = page->next_page_token;
	} while (req.page_token[0] != '\0' && (long)pages.njobs < limit);

	all.n_jobs = pages.njobs;
	all.jobs = pages.jobs;
	all.next_page_token = req.page_token;
	if (cli->format == CLI_FORMAT_JSON && !csv)
		status = cli_print(cli, &all.base);
	else
		status = render_jobs(stdout, &all, csv) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
	pages_cleanup(&pages);
	return status;
}
