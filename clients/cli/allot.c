/*
 * allot: the command-line client of allotd.
 *
 * Parses the global options (each with its environment variable), dispatches
 * to a command (admin, ledger, balance, allocation, jobs, ingest, completeness,
 * reconcile, audit, incident, events) and turns outcomes into exit statuses:
 * 0 success, 1 an RPC error, 2 a usage error. The commands' own flags and
 * output live in admin.c, ingest.c and render.c; the transport in the client
 * library.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/ledger.pb-c.h"
#include "cli.h"
#include "render.h"

#define CLI_DEFAULT_SERVER "https://127.0.0.1:8443"
#define CLI_TIMEOUT_MS 120000L

static const char usage_text[] =
    "usage: allot [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "The command-line client of allotd, the GPU-hour accounting service.\n"
    "\n"
    "commands:\n"
    "  admin METHOD [--FIELD VALUE ...]   call an Admin method (allot admin --help)\n"
    "  ledger METHOD [--FIELD VALUE ...]  quote, reserve, heartbeat, settle (allot ledger --help)\n"
    "  balance --project P                show a project's balance\n"
    "  allocation deposit|move|refund|adjust|credit-limit|changes ...\n"
    "                                     an allocation's life (allot allocation --help)\n"
    "  jobs --project P [--since T] [--site S] [--format table|json|csv]\n"
    "                                     list a project's jobs, with efficiency and energy\n"
    "  ingest --site S [--batch-id ID] [--batch-size N] FILE\n"
    "                                     send job records, JSON lines (FILE or -)\n"
    "  completeness --site S [--since D] [--until D]\n"
    "                                     what a site reported per day; gaps shown\n"
    "  reconcile --site S [--tolerance PCT] BOOKS_FILE\n"
    "                                     the site's own budget tool against Allot\n"
    "  audit export|verify|balance ...    the sealed journal, offline (allot audit --help)\n"
    "  statement --project P --from T --to T [--format csv|json|html]\n"
    "                                     a signed statement; statement verify FILE --pubkey KEY\n"
    "  incident declare|list|show [--FIELD VALUE ...]\n"
    "                                     credit the jobs of an outage (allot incident --help)\n"
    "  events --project P                 a project's events: thresholds of its grant crossed\n"
    "  events list-thresholds             the shares of a grant whose crossing is an event\n"
    "  events set-thresholds --percents N [--percents N ...]   replace them (admin)\n"
    "  share --project P [--usage-site S] [--what-if HOURS]\n"
    "                                     a project's fair share, like sshare -l (allot share "
    "--help)\n"
    "\n"
    "options (before the command):\n"
    "  --server URL            allotd's URL (ALLOT_SERVER, default " CLI_DEFAULT_SERVER ")\n"
    "  --cert FILE             client certificate, PEM (ALLOT_CERT)\n"
    "  --key FILE              its private key, PEM (ALLOT_KEY)\n"
    "  --ca FILE               CA certificate to verify the server with (ALLOT_CA)\n"
    "  --format table|json     output: aligned text or proto3 JSON (default table)\n"
    "  --wire protobuf|json    encoding of request and response bodies (default protobuf)\n"
    "  --help                  show this help\n"
    "\n"
    "Exit status: 0 success, 1 RPC error (or records rejected by ingest), 2 usage error.\n"
    "Every command takes --help.\n";

static const char balance_usage_text[] =
    "usage: allot balance --project P\n"
    "\n"
    "Shows what project P was granted, has used and has left, per allocation and in\n"
    "total, in normalized GPU-hours and in each site's own unit.\n"
    "\n"
    "options:\n"
    "  --project P             the project (required)\n"
    "  --format table|json     output format, as the global option\n"
    "  --help                  show this help\n";

int
cli_usage_error(const char *help_cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("allot: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'allot%s%s --help'.\n", help_cmd[0] != '\0' ? " " : "", help_cmd);
	return CLI_EXIT_USAGE;
}

bool
cli_has_value(const char *help_cmd, const char *name, const char *value)
{
	if (value != NULL)
		return true;
	cli_usage_error(help_cmd, "flag --%s needs a value", name);
	return false;
}

int
cli_next_flag(int argc, char **argv, int *i, char *name, size_t namelen, const char **value,
    const char *help_cmd)
{
	const char *arg = argv[*i];
	const char *eq;
	size_t n;

	if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
		snprintf(name, namelen, "help");
		*value = NULL;
		(*i)++;
		return 1;
	}
	if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
		return 0;
	arg += 2;
	eq = strchr(arg, '=');
	n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
	if (n + 1 > namelen) {
		cli_usage_error(help_cmd, "flag --%.*s is too long", 40, arg);
		return -1;
	}
	memcpy(name, arg, n);
	name[n] = '\0';
	if (eq != NULL) {
		*value = eq + 1;
		(*i)++;
		return 1;
	}
	if (*i + 1 >= argc) {
		*value = NULL;
		(*i)++;
		return 1;
	}
	*value = argv[*i + 1];
	*i += 2;
	return 1;
}

bool
cli_set_format(struct cli *cli, const char *value)
{
	if (strcmp(value, "table") == 0)
		cli->format = CLI_FORMAT_TABLE;
	else if (strcmp(value, "json") == 0)
		cli->format = CLI_FORMAT_JSON;
	else
		return false;
	return true;
}

int
cli_call(struct cli *cli, const char *service_method, const ProtobufCMessage *request,
    const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response)
{
	struct allot_error error;

	*response = NULL;
	if (cli->client == NULL) {
		cli->client = allot_connect(&cli->opts, &error);
		if (cli->client == NULL) {
			fprintf(stderr, "allot: %s\n", error.msg);
			return -1;
		}
	}
	if (allot_call(cli->client, service_method, request, response_desc, response, &error) < 0) {
		fprintf(stderr, "allot: %s: %s\n", error.code_name, error.msg);
		return -1;
	}
	return 0;
}

int
cli_print(const struct cli *cli, const ProtobufCMessage *msg)
{
	bool ok;

	if (cli->format == CLI_FORMAT_JSON)
		ok = render_json(stdout, msg);
	else
		ok = render_message(stdout, msg);
	if (!ok) {
		fprintf(stderr, "allot: could not print the %s response\n", msg->descriptor->name);
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

static int
balance_main(struct cli *cli, int argc, char **argv)
{
	Allot__V1__GetBalanceRequest req = ALLOT__V1__GET_BALANCE_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	const char *project = NULL, *value;
	char name[64];
	int i = 1, r, status;
	bool ok;

	while (i < argc) {
		r = cli_next_flag(argc, argv, &i, name, sizeof(name), &value, "balance");
		if (r < 0)
			return CLI_EXIT_USAGE;
		if (r == 0)
			return cli_usage_error("balance", "unexpected argument \"%s\"", argv[i]);
		if (strcmp(name, "help") == 0) {
			fputs(balance_usage_text, stdout);
			return CLI_EXIT_OK;
		} else if (strcmp(name, "project") == 0) {
			if (!cli_has_value("balance", name, value))
				return CLI_EXIT_USAGE;
			project = value;
		} else if (strcmp(name, "format") == 0) {
			if (!cli_has_value("balance", name, value))
				return CLI_EXIT_USAGE;
			if (!cli_set_format(cli, value))
				return cli_usage_error(
				    "balance", "--format: \"%s\" is not table or json", value);
		} else {
			return cli_usage_error("balance", "unknown flag --%s", name);
		}
	}
	if (project == NULL || project[0] == '\0')
		return cli_usage_error("balance", "--project is required");

	req.project = (char *)project;
	if (cli->dry_run)
		return render_json(stdout, &req.base) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	if (cli_call(cli, "allot.v1.Ledger/GetBalance", &req.base,
	        &allot__v1__get_balance_response__descriptor, &resp) < 0)
		return CLI_EXIT_FAIL;
	if (cli->format == CLI_FORMAT_JSON) {
		status = cli_print(cli, resp);
	} else {
		ok = render_balance(stdout, (const Allot__V1__GetBalanceResponse *)resp);
		status = ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	return status;
}

/* Reads an option's environment variable; an empty one counts as unset. */
static const char *
cli_getenv(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

int
main(int argc, char **argv)
{
	struct cli cli;
	const char *value, *cmd, *server;
	char name[64];
	int i = 1, r, status;

	memset(&cli, 0, sizeof(cli));
	/*
	 * liballot's defaults, but one attempt (a command run by hand or a script
	 * says what failed at once) and the CLI's longer limit for one call (an
	 * audit export); no deadline beyond it.
	 */
	allot_options_init(&cli.opts);
	cli.opts.max_attempts = 1;
	cli.opts.deadline_ms = 0;
	server = cli_getenv("ALLOT_SERVER");
	cli.opts.server_url = server != NULL ? server : CLI_DEFAULT_SERVER;
	cli.opts.cert_file = cli_getenv("ALLOT_CERT");
	cli.opts.key_file = cli_getenv("ALLOT_KEY");
	cli.opts.ca_file = cli_getenv("ALLOT_CA");
	cli.opts.wire = ALLOT_WIRE_PROTOBUF;
	cli.opts.timeout_ms = CLI_TIMEOUT_MS;
	cli.format = CLI_FORMAT_TABLE;

	while (i < argc) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strcmp(argv[i], "--dry-run") == 0) {
			/* Hidden: print the requests instead of sending them (tests). */
			cli.dry_run = true;
			i++;
			continue;
		}
		r = cli_next_flag(argc, argv, &i, name, sizeof(name), &value, "");
		if (r < 0)
			return CLI_EXIT_USAGE;
		if (r == 0)
			break;
		if (strcmp(name, "help") == 0) {
			fputs(usage_text, stdout);
			return CLI_EXIT_OK;
		}
		if (strcmp(name, "server") != 0 && strcmp(name, "cert") != 0 &&
		    strcmp(name, "key") != 0 && strcmp(name, "ca") != 0 &&
		    strcmp(name, "format") != 0 && strcmp(name, "wire") != 0)
			return cli_usage_error("", "unknown option --%s", name);
		if (!cli_has_value("", name, value))
			return CLI_EXIT_USAGE;
		if (strcmp(name, "server") == 0) {
			cli.opts.server_url = value;
		} else if (strcmp(name, "cert") == 0) {
			cli.opts.cert_file = value;
		} else if (strcmp(name, "key") == 0) {
			cli.opts.key_file = value;
		} else if (strcmp(name, "ca") == 0) {
			cli.opts.ca_file = value;
		} else if (strcmp(name, "format") == 0) {
			if (!cli_set_format(&cli, value))
				return cli_usage_error(
				    "", "--format: \"%s\" is not table or json", value);
		} else if (strcmp(name, "wire") == 0) {
			if (strcmp(value, "protobuf") == 0)
				cli.opts.wire = ALLOT_WIRE_PROTOBUF;
			else if (strcmp(value, "json") == 0)
				cli.opts.wire = ALLOT_WIRE_JSON;
			else
				return cli_usage_error(
				    "", "--wire: \"%s\" is not protobuf or json", value);
		}
	}
	if (i >= argc)
		return cli_usage_error("", "no command given");
	if (cli.opts.server_url[0] == '\0')
		return cli_usage_error("", "--server: empty URL");

	cmd = argv[i];
	if (strcmp(cmd, "admin") == 0)
		status = admin_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "ledger") == 0)
		status = ledger_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "balance") == 0)
		status = balance_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "allocation") == 0)
		status = allocation_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "jobs") == 0)
		status = jobs_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "ingest") == 0)
		status = ingest_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "completeness") == 0)
		status = completeness_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "reconcile") == 0)
		status = reconcile_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "audit") == 0)
		status = audit_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "statement") == 0)
		status = statement_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "incident") == 0)
		status = incident_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "events") == 0)
		status = events_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "share") == 0)
		status = share_main(&cli, argc - i, argv + i);
	else if (strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		status = CLI_EXIT_OK;
	} else
		status = cli_usage_error("", "unknown command \"%s\"", cmd);

	allot_close(cli.client);
	if (fflush(stdout) != 0 && status == CLI_EXIT_OK) {
		perror("allot: could not write the output");
		status = CLI_EXIT_FAIL;
	}
	return status;
}
