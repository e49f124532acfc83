/*
 * incident: `allot incident declare|list|show` (the Incidents service) and
 * `allot events` (Events/List, ListThresholds, SetThresholds), both through the
 * descriptor-driven runner of admin.c. `incident declare --nodes HOSTLIST` takes
 * Slurm's compressed form (gpu[001-004],login1), expanded here (lib/hostlist.c)
 * into the request's node names. `incident show` prints the incident's fields,
 * then its credits as a table; in tables (show and list) an incident's nodes are
 * compressed again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/events.pb-c.h"
#include "allot/v1/incidents.pb-c.h"
#include "cli.h"
#include "hostlist.h"
#include "render.h"
#include "strbuf.h"

#define EVENTS_ARGV_MAX 256
/* What Incidents/Declare takes (allot.rpc_declare_incident). */
#define INCIDENT_MAX_NODES 65536

/*
 * A shallow copy of inc for a table, its nodes as one compressed hostlist
 * (lrdn[0001-0064]): copy borrows inc's strings; *store is the list, the caller's
 * to free after printing. 0, or -1 when out of memory.
 */
static int
incident_for_table(const Allot__V1__Incident *inc, Allot__V1__Incident *copy, char **store)
{
	struct strbuf sb;

	*copy = *inc;
	*store = NULL;
	if (inc->n_nodes == 0)
		return 0;
	strbuf_init(&sb);
	if (hostlist_compress((const char *const *)inc->nodes, inc->n_nodes, &sb) != 0 ||
	    (*store = strbuf_steal(&sb)) == NULL) {
		strbuf_cleanup(&sb);
		return -1;
	}
	copy->n_nodes = 1;
	copy->nodes = store;
	return 0;
}

/* A list of incidents as a table, each one's nodes compressed. */
static bool
incident_list_print(const Allot__V1__ListIncidentsResponse *list)
{
	Allot__V1__ListIncidentsResponse shown = *list;
	Allot__V1__Incident *copies = calloc(list->n_incidents + 1, sizeof(*copies));
	Allot__V1__Incident **ptrs = calloc(list->n_incidents + 1, sizeof(*ptrs));
	char **stores = calloc(list->n_incidents + 1, sizeof(*stores));
	bool ok = copies != NULL && ptrs != NULL && stores != NULL;

	for (size_t i = 0; ok && i < list->n_incidents; i++) {
		ok = incident_for_table(list->incidents[i], &copies[i], &stores[i]) == 0;
		ptrs[i] = &copies[i];
	}
	if (ok) {
		shown.incidents = ptrs;
		ok = render_message(stdout, &shown.base);
	}
	for (size_t i = 0; stores != NULL && i < list->n_incidents; i++)
		free(stores[i]);
	free(stores);
	free(ptrs);
	free(copies);
	return ok;
}

static int
incident_print(const struct cli *cli, const ProtobufCMessage *msg)
{
	const Allot__V1__ShowIncidentResponse *show;
	Allot__V1__IncidentCreditList list = ALLOT__V1__INCIDENT_CREDIT_LIST__INIT;
	Allot__V1__Incident inc;
	char *nodes = NULL;
	bool ok = true;

	if (cli->format == CLI_FORMAT_TABLE &&
	    msg->descriptor == &allot__v1__list_incidents_response__descriptor) {
		if (!incident_list_print((const Allot__V1__ListIncidentsResponse *)msg)) {
			fprintf(stderr, "allot: could not print the incidents\n");
			return CLI_EXIT_FAIL;
		}
		return CLI_EXIT_OK;
	}
	if (cli->format != CLI_FORMAT_TABLE ||
	    msg->descriptor != &allot__v1__show_incident_response__descriptor)
		return cli_print(cli, msg);
	show = (const Allot__V1__ShowIncidentResponse *)msg;
	if (show->incident != NULL) {
		ok = incident_for_table(show->incident, &inc, &nodes) == 0 &&
		    render_message(stdout, &inc.base);
		free(nodes);
	}
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

/*
 * The arguments of `incident declare` with each "--nodes HOSTLIST" (or
 * "--nodes=HOSTLIST") replaced by one "--nodes=NAME" per node, so that the
 * request's repeated field takes them one by one. The new argv points into argv
 * and into names (both the caller's to free: *out and names). Other flags and
 * their values are copied as cli_next_flag reads them. Returns the new argc, or
 * -1 after a usage error.
 */
static int
expand_nodes(int argc, char **argv, struct strbuf *names, char ***out)
{
	struct strbuf list;
	char **args = NULL, err[256];
	size_t cap = (size_t)argc + 1, n = 0, *offs = NULL, noffs = 0;
	int i = 2;

	strbuf_init(&list);
	if ((args = calloc(cap, sizeof(*args))) == NULL)
		goto oom;
	args[n++] = argv[0];
	args[n++] = argv[1];
	while (i < argc) {
		const char *arg = argv[i], *value;
		long count;

		if (strcmp(arg, "--nodes") != 0 && strncmp(arg, "--nodes=", 8) != 0) {
			bool pair = strncmp(arg, "--", 2) == 0 && arg[2] != '\0' &&
			    strchr(arg, '=') == NULL && strcmp(arg, "--help") != 0 && i + 1 < argc;

			args[n++] = argv[i++];
			if (pair)
				args[n++] = argv[i++];
			continue;
		}
		value = arg[7] == '=' ? arg + 8 : (i + 1 < argc ? argv[i + 1] : NULL);
		i += arg[7] == '=' ? 1 : 2;
		if (value == NULL || value[0] == '\0') {
			cli_usage_error(
			    "incident declare", "--nodes needs a node list (gpu[001-004])");
			goto fail;
		}
		strbuf_reset(&list);
		count = hostlist_expand(
		    value, strlen(value), INCIDENT_MAX_NODES, '\0', &list, err, sizeof(err));
		if (count < 0) {
			if (strbuf_failed(&list))
				goto oom;
			cli_usage_error("incident declare", "--nodes \"%.80s\": %s", value, err);
			goto fail;
		}
		{
			char **grown = realloc(args, (cap + (size_t)count) * sizeof(*args));
			size_t *more = realloc(offs, (noffs + (size_t)count) * sizeof(*offs));

			if (grown != NULL)
				args = grown;
			if (more != NULL)
				offs = more;
			if (grown == NULL || more == NULL)
				goto oom;
			cap += (size_t)count;
		}
		/* Names are NUL-separated in list: each becomes "--nodes=NAME" in names. */
		for (size_t at = 0; at < list.len; at += strlen(list.data + at) + 1) {
			offs[noffs++] = names->len;
			strbuf_printf(names, "--nodes=%s", list.data + at);
			strbuf_putc(names, '\0');
			args[n++] = NULL; /* set below, once names stops moving */
		}
		if (strbuf_failed(names))
			goto oom;
	}
	/* Point the expanded flags into names, in order. */
	for (size_t k = 0, o = 0; k < n; k++)
		if (args[k] == NULL)
			args[k] = names->data + offs[o++];
	strbuf_cleanup(&list);
	free(offs);
	*out = args;
	return (int)n;
oom:
	fprintf(stderr, "allot: out of memory\n");
fail:
	strbuf_cleanup(&list);
	free(offs);
	free(args);
	return -1;
}

int
incident_main(struct cli *cli, int argc, char **argv)
{
	struct strbuf names;
	char **args = NULL;
	int n, status;

	if (argc < 2 || strcmp(argv[1], "declare") != 0)
		return cli_service_run(
		    cli, &allot__v1__incidents__descriptor, "incident", argc, argv, incident_print);
	strbuf_init(&names);
	if ((n = expand_nodes(argc, argv, &names, &args)) < 0) {
		strbuf_cleanup(&names);
		return CLI_EXIT_USAGE;
	}
	status = cli_service_run(
	    cli, &allot__v1__incidents__descriptor, "incident", n, args, incident_print);
	free(args);
	strbuf_cleanup(&names);
	return status;
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
