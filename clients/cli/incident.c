/*
 * incident: `allot incident declare|list|show` (the Incidents service) and
 * `allot events` (Events/List, ListThresholds, SetThresholds), both through the descriptor-driven runner of
 * admin.c. `incident show` prints the incident's fields, then its credits as a
 * table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/events.pb-c.h"
#include "allot/v1/incidents.pb-c.h"
#include "cli.h"
#include "render.h"

#define EVENTS_ARGV_MAX 256

static int
incident_print(const struct cli *cli, const ProtobufCMessage *msg)
{
	const Allot__V1__ShowIncidentResponse *show;
	Allot__V1__IncidentCreditList list = ALLOT__V1__INCIDENT_CREDIT_LIST__INIT;
	bool ok = true;

	if (cli->format != CLI_FORMAT_TABLE ||
	    msg->descriptor != &allot__v1__show_incident_response__descriptor)
		return cli_print(cli, msg);
	show = (const Allot__V1__ShowIncidentResponse *)msg;
	if (show->incident != NULL)
		ok = render_message(stdout, &show->incident->base);
	/* The credits, borrowed (not copied, not freed), as one table. */
	list.n_credits = show->n_credits;
	list.credits = show->credits;
	if (ok && show->n_credits > 0) {
		fputc('\n', stdout);
		ok = render_message(stdout, &list.base);
	}
	if (!ok) {
		fprintf(stderr, "allot: could not print the incident\n");
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

int
incident_main(struct cli *cli, int argc, char **argv)
{
	return cli_service_run(
	    cli, &allot__v1__incidents__descriptor, "incident", argc, argv, incident_print);
}

int
events_main(struct cli *cli, int argc, char **argv)
{
	static char list[] = "list";
	char *args[EVENTS_ARGV_MAX];

	/*
	 * "allot events --project P" is "allot events list --project P"; a first
	 * argument that is not a flag names the method (list-thresholds, ...).
	 */
	if (argc >= 2 && argv[1][0] != '-')
		return cli_service_run(
		    cli, &allot__v1__events__descriptor, "events", argc, argv, NULL);
	if (argc + 1 > EVENTS_ARGV_MAX)
		return cli_usage_error("events", "too many arguments");
	args[0] = argv[0];
	args[1] = list;
	for (int i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	return cli_service_run(cli, &allot__v1__events__descriptor, "events", argc + 1, args, NULL);
}
