/*
 * cli: what the commands of `allot` share: the global options, the RPC call
 * with its error report, flag scanning, and the commands' entry points.
 */
#ifndef ALLOT_CLI_CLI_H
#define ALLOT_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>

#include "allot.h"

/* Exit statuses: the spec's contract with scripts. */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,  /* an RPC error, or records rejected */
	CLI_EXIT_USAGE = 2, /* a bad command line or input file */
};

enum cli_format {
	CLI_FORMAT_TABLE,
	CLI_FORMAT_JSON,
};

struct cli {
	struct allot_options opts;
	enum cli_format format;
	bool dry_run;                /* print the requests' JSON instead of sending them */
	struct allot_client *client; /* created on the first call */
};

/*
 * Prints "allot: <message>" and a pointer to `allot <help_cmd> --help` on
 * stderr. Returns CLI_EXIT_USAGE.
 */
int cli_usage_error(const char *help_cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Scans the flag at argv[*i]: "--name value" or "--name=value". Copies the
 * name without dashes into name (namelen bytes), sets *value (NULL for --help
 * and -h, and when the command line ends before the value: see cli_has_value)
 * and moves *i past them. Returns 1 for a flag, 0 when argv[*i] is not one (a
 * positional argument, "-" included), -1 after printing a usage error for a
 * name too long.
 */
int cli_next_flag(int argc, char **argv, int *i, char *name, size_t namelen, const char **value,
    const char *help_cmd) __attribute__((warn_unused_result));

/* True when value is set; otherwise prints "flag --name needs a value" as a usage error. */
bool cli_has_value(const char *help_cmd, const char *name, const char *value)
    __attribute__((warn_unused_result));

/* Sets cli->format from "table" or "json"; false for anything else. */
bool cli_set_format(struct cli *cli, const char *value) __attribute__((warn_unused_result));

/*
 * Calls service_method with request. Returns 0 and a new *response (freed by
 * the caller with protobuf_c_message_free_unpacked), or -1 after printing
 * "allot: <code>: <msg>" on stderr.
 */
int cli_call(struct cli *cli, const char *service_method, const ProtobufCMessage *request,
    const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response)
    __attribute__((warn_unused_result));

/* Prints a response in cli's format; returns an exit status. */
int cli_print(const struct cli *cli, const ProtobufCMessage *msg);

/* Prints a method's response; returns an exit status. */
typedef int (*cli_print_fn)(const struct cli *cli, const ProtobufCMessage *msg);

/*
 * Runs `allot CMD METHOD [--field value ...]` for any method of service sd, from its
 * descriptor (argv[0] is cmd); print (NULL: cli_print) prints the response.
 */
int cli_service_run(struct cli *cli, const ProtobufCServiceDescriptor *sd, const char *cmd,
    int argc, char **argv, cli_print_fn print);

/* `allot admin ...`; argv[0] is "admin". Returns an exit status. */
int admin_main(struct cli *cli, int argc, char **argv);
/* allot ledger METHOD ...: any method of the Ledger service (quote, reserve, settle, ...). */
int ledger_main(struct cli *cli, int argc, char **argv);

/* `allot allocation deposit|move|refund|adjust|credit-limit|changes ...`. */
int allocation_main(struct cli *cli, int argc, char **argv);
/* `allot incident declare|list|show ...`: the Incidents service. */
int incident_main(struct cli *cli, int argc, char **argv);
/* `allot events [list] --project P ...`: the Events service's List. */
int events_main(struct cli *cli, int argc, char **argv);

/* `allot share --project P [--what-if HOURS]`: FairShare.Explain and WhatIf. */
int share_main(struct cli *cli, int argc, char **argv);

/* `allot jobs ...`; argv[0] is "jobs". Returns an exit status. */
int jobs_main(struct cli *cli, int argc, char **argv);

/* `allot ingest ...`; argv[0] is "ingest". Returns an exit status. */
int ingest_main(struct cli *cli, int argc, char **argv);

/* `allot completeness --site S ...`: a site's days. Returns an exit status. */
int completeness_main(struct cli *cli, int argc, char **argv);
/* `allot reconcile --site S ... BOOKS_FILE`: the site's books against Allot's. */
int reconcile_main(struct cli *cli, int argc, char **argv);
/* `allot audit export|verify|balance ...`: the sealed journal. */
int audit_main(struct cli *cli, int argc, char **argv);
/*
 * Reads an Ed25519 public key (PEM) at path; NULL after printing why as
 * "allot: <cmd>: ..." (audit.c). The caller frees it with EVP_PKEY_free.
 */
EVP_PKEY *cli_read_pubkey(const char *path, const char *cmd);
/* `allot statement ...` and `allot statement verify` (statement.c). */
int statement_main(struct cli *cli, int argc, char **argv);

#endif
