/*
 * share: `allot share --project P [--usage-site S] [--what-if HOURS [--user U]]`, a
 * project's fair share as Slurm's `sshare -l` shows it (FairShare.Explain), or where it
 * would stand after HOURS more GPU-hours (FairShare.WhatIf, which changes nothing);
 * with --usage-site, counting the usage of site S alone.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/fairshare.pb-c.h"
#include "cli.h"

static const char share_usage_text[] =
    "usage: allot share --project P [--usage-site S] [--what-if HOURS [--user U]]\n"
    "                   [--format table|json]\n"
    "\n"
    "Shows project P's fair share like Slurm's `sshare -l`: for the path root >\n"
    "program > organization > project and each user of the project, the raw and\n"
    "normalized shares, the raw (decayed, GPU-hours) and normalized usage, classic's\n"
    "effective usage, the fair-share factor and Fair Tree's level fair share; then\n"
    "the pacing of the project's allocations. With --what-if, the same as it would\n"
    "be after HOURS more GPU-hours (nothing is changed).\n"
    "\n"
    "options:\n"
    "  --project P         the project (required)\n"
    "  --usage-site S      count the usage of site S alone (default: all sites)\n"
    "  --what-if HOURS     hypothetical extra GPU-hours, more than 0\n"
    "  --user U            who would use them (default: shared by the project's users)\n"
    "  --format table|json output format (default table, or the global option)\n"
    "  --help              show this help\n";

static void
print_num(double v)
{
	if (isinf(v))
		printf(" %11s", "inf");
	else
		printf(" %11.6f", v);
}

static void
print_explain(const Allot__V1__ExplainResponse *e)
{
	printf("%-24s %-10s %10s %11s %11s %11s %11s %11s %11s\n", "Account", "User", "RawShares",
	    "NormShares", "RawUsage", "NormUsage", "EffectvUsage", "FairShare", "LevelFS");
	printf("------------------------ ---------- ---------- ----------- ----------- "
	       "----------- ----------- ----------- -----------\n");
	for (size_t i = 0; i < e->n_levels; i++) {
		const Allot__V1__ShareLevel *l = e->levels[i];
		bool user = strcmp(l->kind, "user") == 0;
		char account[64];
		size_t depth = user ? 3 : i;

		snprintf(
		    account, sizeof(account), "%*s%s", (int)depth, "", user ? e->project : l->name);
		printf("%-24s %-10s %10.2f", account, user ? l->name : "", l->shares_raw);
		print_num(l->shares_norm);
		print_num(l->usage_raw);
		print_num(l->usage_norm);
		print_num(l->usage_efctv);
		if (user)
			print_num(l->fairshare);
		else
			printf(" %11s", "");
		print_num(l->level_fs);
		printf("\n");
	}
	printf("evaluated at %s (%s, half-life %lld s, %d users in all; usage of %s%s)\n",
	    e->evaluated_at, e->algorithm, (long long)e->half_life_s, e->users_total,
	    e->usage_site[0] != '\0' ? "site " : "all sites", e->usage_site);
	if (e->pacing == NULL || !e->pacing->active) {
		printf("pacing: no allocation active now (factor 0.5)\n");
		return;
	}
	printf("pacing: %.2f of %.2f GPU-hours used, %.2f expected by now (%+.2f), window %s .. "
	       "%s\n",
	    e->pacing->used_gpu_hours, e->pacing->granted_gpu_hours, e->pacing->expected_gpu_hours,
	    e->pacing->ahead_gpu_hours, e->pacing->window_start, e->pacing->window_end);
	printf("pacing: month %d of %d, quota %.2f (base %.2f, carry %+.2f), used %.2f, rest %.2f,"
	       " overdraw limit %.2f%s\n",
	    e->pacing->month + 1, e->pacing->months, e->pacing->month_quota_gpu_hours,
	    e->pacing->month_base_gpu_hours, e->pacing->carry_gpu_hours,
	    e->pacing->month_used_gpu_hours, e->pacing->month_rest_gpu_hours,
	    e->pacing->overdraw_limit_gpu_hours, e->pacing->overdrawn ? " (overdrawn)" : "");
	printf("pacing: burn %.2f GPU-hours/day, runs out %s, factor %.6f (weight %.3f)\n",
	    e->pacing->burn_gpu_hours_per_day,
	    e->pacing->exhausted_at[0] != '\0' ? e->pacing->exhausted_at : "never at this rate",
	    e->pacing->factor, e->pacing_weight);
}

int
share_main(struct cli *cli, int argc, char **argv)
{
	const char *project = NULL, *user = "", *what_if = NULL, *site = "", *value;
	ProtobufCMessage *resp = NULL;
	double hours = 0;
	char name[64], *end;
	int i = 1, r, status;

	while (i < argc) {
		r = cli_next_flag(argc, argv, &i, name, sizeof(name), &value, "share");
		if (r < 0)
			return CLI_EXIT_USAGE;
		if (r == 0)
			return cli_usage_error("share", "unexpected argument \"%s\"", argv[i]);
		if (strcmp(name, "help") == 0) {
			fputs(share_usage_text, stdout);
			return CLI_EXIT_OK;
		}
		if (strcmp(name, "project") != 0 && strcmp(name, "what-if") != 0 &&
		    strcmp(name, "user") != 0 && strcmp(name, "format") != 0 &&
		    strcmp(name, "usage-site") != 0)
			return cli_usage_error("share", "unknown flag --%s", name);
		if (!cli_has_value("share", name, value))
			return CLI_EXIT_USAGE;
		if (strcmp(name, "project") == 0)
			project = value;
		else if (strcmp(name, "user") == 0)
			user = value;
		else if (strcmp(name, "usage-site") == 0)
			site = value;
		else if (strcmp(name, "what-if") == 0)
			what_if = value;
		else if (!cli_set_format(cli, value))
			return cli_usage_error(
			    "share", "--format: \"%s\" is not table or json", value);
	}
	if (project == NULL || project[0] == '\0')
		return cli_usage_error("share", "--project is required");
	if (what_if != NULL) {
		errno = 0;
		hours = strtod(what_if, &end);
		if (errno != 0 || end == what_if || *end != '\0' || !isfinite(hours) || hours <= 0)
			return cli_usage_error("share",
			    "--what-if: \"%s\" is not a number of GPU-hours more than 0", what_if);
	} else if (user[0] != '\0') {
		return cli_usage_error("share", "--user goes with --what-if");
	}

	if (what_if == NULL) {
		Allot__V1__ExplainRequest req = ALLOT__V1__EXPLAIN_REQUEST__INIT;

		req.project = (char *)project;
		req.usage_site = (char *)site;
		if (cli_call(cli, "allot.v1.FairShare/Explain", &req.base,
		        &allot__v1__explain_response__descriptor, &resp) < 0)
			return CLI_EXIT_FAIL;
		if (cli->format == CLI_FORMAT_JSON)
			status = cli_print(cli, resp);
		else {
			print_explain((const void *)resp);
			status = CLI_EXIT_OK;
		}
	} else {
		Allot__V1__WhatIfRequest req = ALLOT__V1__WHAT_IF_REQUEST__INIT;
		const Allot__V1__WhatIfResponse *w;

		req.project = (char *)project;
		req.gpu_hours = hours;
		req.user = (char *)user;
		req.usage_site = (char *)site;
		if (cli_call(cli, "allot.v1.FairShare/WhatIf", &req.base,
		        &allot__v1__what_if_response__descriptor, &resp) < 0)
			return CLI_EXIT_FAIL;
		w = (const void *)resp;
		if (cli->format == CLI_FORMAT_JSON)
			status = cli_print(cli, resp);
		else if (w->now == NULL || w->after == NULL) {
			fputs("allot: the answer lacks its figures\n", stderr);
			status = CLI_EXIT_FAIL;
		} else {
			printf("what if %s uses %g GPU-hours more%s%s (nothing is changed):\n\n",
			    project, hours, user[0] != '\0' ? " by " : "", user);
			print_explain(w->after);
			printf("\nfair share of each user, now -> after:\n");
			for (size_t j = 0; j < w->after->n_levels; j++) {
				const Allot__V1__ShareLevel *a = w->after->levels[j];
				double before = 0;

				if (strcmp(a->kind, "user") != 0)
					continue;
				for (size_t k = 0; k < w->now->n_levels; k++)
					if (strcmp(w->now->levels[k]->kind, "user") == 0 &&
					    strcmp(w->now->levels[k]->name, a->name) == 0)
						before = w->now->levels[k]->fairshare;
				printf("  %-10s %.6f -> %.6f\n", a->name, before, a->fairshare);
			}
			status = CLI_EXIT_OK;
		}
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	return status;
}
