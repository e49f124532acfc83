/*
 * admin: `allot admin METHOD [--field value ...]` for every method of the Admin
 * service, and `allot ledger METHOD ...` for the Ledger's, driven by the protobuf-c
 * service descriptor: method names, request and response types all come from the
 * descriptor, so a new method needs no code here. Building the request is
 * reqflags' job, printing render's.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/admin.pb-c.h"
#include "allot/v1/ledger.pb-c.h"
#include "cli.h"
#include "pbjson.h"
#include "reqflags.h"
#include "render.h"

/* "CreateSite" -> "create-site". */
static void
admin_kebab_method(const char *name, char *out, size_t outlen)
{
	size_t n = 0;

	for (size_t i = 0; name[i] != '\0' && n + 2 < outlen; i++) {
		unsigned char c = (unsigned char)name[i];

		if (i > 0 && isupper(c))
			out[n++] = '-';
		out[n++] = (char)tolower(c);
	}
	out[n] = '\0';
}

static const ProtobufCMethodDescriptor *
admin_find_method(const ProtobufCServiceDescriptor *sd, const char *kebab)
{
	char name[128];

	for (unsigned i = 0; i < sd->n_methods; i++) {
		admin_kebab_method(sd->methods[i].name, name, sizeof(name));
		if (strcmp(name, kebab) == 0)
			return &sd->methods[i];
	}
	return NULL;
}

static void
admin_print_methods(const ProtobufCServiceDescriptor *sd, const char *cmd)
{
	char name[128];

	printf("usage: allot %s METHOD [--FIELD VALUE ...]\n"
	       "       allot %s METHOD --json '{...}'\n"
	       "\n"
	       "Calls a method of %s. Flags are the request's fields in kebab-case;\n"
	       "--json gives the whole request as proto3 JSON instead.\n"
	       "\n"
	       "methods:\n",
	    cmd, cmd, sd->name);
	for (unsigned i = 0; i < sd->n_methods; i++) {
		admin_kebab_method(sd->methods[i].name, name, sizeof(name));
		printf("  %-22s %s -> %s\n", name, sd->methods[i].input->name,
		    sd->methods[i].output->name);
	}
	printf("\n'allot %s METHOD --help' lists a method's fields.\n", cmd);
}

static void
admin_print_method(const ProtobufCServiceDescriptor *sd, const ProtobufCMethodDescriptor *md,
    const char *cmd, const char *kebab)
{
	printf("usage: allot %s %s [--FIELD VALUE ...]\n"
	       "       allot %s %s --json '{...}'\n"
	       "\n"
	       "Calls %s/%s: request %s, response %s.\n"
	       "\n"
	       "fields:\n",
	    cmd, kebab, cmd, kebab, sd->name, md->name, md->input->name, md->output->name);
	reqflags_print_fields(stdout, md->input);
	printf("\nIntegers are decimal, bools true or false; enum values may also be given by\n"
	       "their full name (as in the .proto file). Unset fields take their default.\n");
}

int
cli_service_run(struct cli *cli, const ProtobufCServiceDescriptor *sd, const char *cmd, int argc,
    char **argv, cli_print_fn print)
{
	const ProtobufCMethodDescriptor *md;
	struct reqflags *rf = NULL;
	ProtobufCMessage *req = NULL, *resp = NULL;
	const char *json = NULL, *value, *kebab;
	char name[128], help_cmd[160], err[512], path[256];
	struct strbuf text;
	int i = 2, r, status = CLI_EXIT_USAGE;

	strbuf_init(&text);
	if (argc < 2)
		return cli_usage_error(cmd, "no method given");
	kebab = argv[1];
	if (strcmp(kebab, "--help") == 0 || strcmp(kebab, "-h") == 0) {
		admin_print_methods(sd, cmd);
		return CLI_EXIT_OK;
	}
	md = admin_find_method(sd, kebab);
	if (md == NULL)
		return cli_usage_error(cmd, "unknown method \"%s\"", kebab);
	snprintf(help_cmd, sizeof(help_cmd), "%s %s", cmd, kebab);

	rf = reqflags_new(md->input);
	if (rf == NULL) {
		fprintf(stderr, "allot: out of memory\n");
		return CLI_EXIT_FAIL;
	}
	while (i < argc) {
		r = cli_next_flag(argc, argv, &i, name, sizeof(name), &value, help_cmd);
		if (r < 0)
			goto done;
		if (r == 0) {
			cli_usage_error(help_cmd, "unexpected argument \"%s\"", argv[i]);
			goto done;
		}
		if (strcmp(name, "help") == 0) {
			admin_print_method(sd, md, cmd, kebab);
			status = CLI_EXIT_OK;
			goto done;
		}
		if (strcmp(name, "json") == 0) {
			if (!cli_has_value(help_cmd, name, value))
				goto done;
			if (json != NULL) {
				cli_usage_error(help_cmd, "--json given more than once");
				goto done;
			}
			json = value;
			continue;
		}
		if (reqflags_set(rf, name, value, err, sizeof(err)) < 0) {
			if (strcmp(name, "server") == 0 || strcmp(name, "format") == 0 ||
			    strcmp(name, "wire") == 0 || strcmp(name, "cert") == 0 ||
			    strcmp(name, "key") == 0 || strcmp(name, "ca") == 0)
				cli_usage_error(help_cmd,
				    "%s (--%s is a global option: give it before the command)", err,
				    name);
			else
				cli_usage_error(help_cmd, "%s", err);
			goto done;
		}
	}
	if (json != NULL && !reqflags_empty(rf)) {
		cli_usage_error(help_cmd, "--json cannot be combined with field flags");
		goto done;
	}
	if (json == NULL) {
		reqflags_to_json(rf, &text);
		if (strbuf_failed(&text)) {
			fprintf(stderr, "allot: out of memory\n");
			status = CLI_EXIT_FAIL;
			goto done;
		}
		json = text.data;
	}
	req = pbjson_decode(md->input, json, strlen(json), err, sizeof(err));
	if (req == NULL) {
		cli_usage_error(help_cmd, "invalid %s: %s", md->input->name, err);
		goto done;
	}

	if (cli->dry_run) {
		status = render_json(stdout, req) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
		goto done;
	}
	snprintf(path, sizeof(path), "%s/%s", sd->name, md->name);
	if (cli_call(cli, path, req, md->output, &resp) < 0) {
		status = CLI_EXIT_FAIL;
		goto done;
	}
	status = print != NULL ? print(cli, resp) : cli_print(cli, resp);

done:
	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	if (req != NULL)
		protobuf_c_message_free_unpacked(req, NULL);
	reqflags_free(rf);
	strbuf_cleanup(&text);
	return status;
}

int
admin_main(struct cli *cli, int argc, char **argv)
{
	return cli_service_run(cli, &allot__v1__admin__descriptor, "admin", argc, argv, NULL);
}

int
ledger_main(struct cli *cli, int argc, char **argv)
{
	return cli_service_run(cli, &allot__v1__ledger__descriptor, "ledger", argc, argv, NULL);
}
