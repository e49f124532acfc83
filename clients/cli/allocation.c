/*
 * allocation: `allot allocation deposit|move|refund|adjust|credit-limit|changes`,
 * an allocation's life after its grant (the Allocations service). It turns the
 * command line into one AllocationChangeRequest (amounts in GPU-hours or units)
 * and prints the answer with render; the rules (who may, how much, which
 * allocations) are the server's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allot/v1/allocations.pb-c.h"
#include "cli.h"
#include "render.h"

#define UNITS_PER_GPU_HOUR 3600000LL
/* CreateAllocation's bound: a billion GPU-hours. */
#define MAX_GPU_HOURS 1000000000LL

static const char allocation_usage_text[] =
    "usage: allot allocation deposit ALLOCATION AMOUNT --reason TEXT --id TRANSFER_ID\n"
    "       allot allocation move --from ALLOCATION --to ALLOCATION AMOUNT --reason TEXT\n"
    "                             --id TRANSFER_ID\n"
    "       allot allocation refund ALLOCATION AMOUNT --reason TEXT --id TRANSFER_ID\n"
    "       allot allocation adjust ALLOCATION AMOUNT --reason TEXT --id TRANSFER_ID\n"
    "       allot allocation credit-limit ALLOCATION AMOUNT --reason TEXT --id TRANSFER_ID\n"
    "       allot allocation changes ALLOCATION\n"
    "\n"
    "Changes an allocation (by its id, as `allot admin list-allocations` shows it):\n"
    "  deposit       more hours, from the allocation's program\n"
    "  move          hours from one allocation to another of the same organization,\n"
    "                at most what the source has available\n"
    "  refund        hours given back from what usage charged the allocation\n"
    "  adjust        a correction, positive or negative, from or to the program\n"
    "  credit-limit  the overdraft its reservations may use (0: none)\n"
    "  changes       lists what was done to it, expiry included\n"
    "\n"
    "AMOUNT is --gpu-hours H (up to 5 decimals) or --units N (GPU-milliseconds);\n"
    "an adjustment may be negative. TRANSFER_ID is yours: sending the same command\n"
    "again does it once and prints the first answer. Admin only.\n"
    "\n"
    "options:\n"
    "  --gpu-hours H, --units N   the amount\n"
    "  --reason TEXT              why (required)\n"
    "  --id TRANSFER_ID           the change's id (required)\n"
    "  --from A, --to B           a move's allocations\n"
    "  --format table|json        output format (default table, or the global option)\n"
    "  --help                     show this help\n";

/*
 * Parses a signed decimal of GPU-hours with at most 5 decimals ("12", "-0.5",
 * "1.25") into exact units. Returns 0, or -1 when text is not one or is beyond a
 * billion GPU-hours.
 */
static int
parse_gpu_hours(const char *text, int64_t *units)
{
	const char *p = text;
	int64_t whole = 0, frac = 0, scale = 100000;
	bool neg = false, digits = false;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (*p - '0');
		digits = true;
		if (whole > MAX_GPU_HOURS)
			return -1;
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++) {
			if (scale == 1 && *p != '0')
				return -1;
			if (scale > 1) {
				scale /= 10;
				frac += (*p - '0') * scale;
			}
			digits = true;
		}
	}
	if (!digits || *p != '\0')
		return -1;
	/* 36 units per 1/100000 GPU-hour. */
	*units = whole * UNITS_PER_GPU_HOUR + frac * 36;
	if (neg)
		*units = -*units;
	return 0;
}

static int
parse_int64(const char *text, int64_t *v)
{
	char *end;
	long long x;

	errno = 0;
	x = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0')
		return -1;
	*v = x;
	return 0;
}

/* The Allocations method a subcommand calls, NULL for an unknown one. */
static const char *
allocation_method(const char *sub)
{
	static const struct {
		const char *sub, *method;
	} subs[] = {
	    {"deposit", "Deposit"},
	    {"move", "Move"},
	    {"refund", "Refund"},
	    {"adjust", "Adjust"},
	    {"credit-limit", "SetCreditLimit"},
	};

	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(sub, subs[i].sub) == 0)
			return subs[i].method;
	return NULL;
}

/* Prints allocation id's changes (Allocations.ListChanges); returns an exit status. */
static int
allocation_changes(struct cli *cli, int64_t id)
{
	Allot__V1__ListChangesRequest req = ALLOT__V1__LIST_CHANGES_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	int status;

	req.allocation_id = id;
	if (cli->dry_run)
		return render_json(stdout, &req.base) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	if (cli_call(cli, "allot.v1.Allocations/ListChanges", &req.base,
	        &allot__v1__list_changes_response__descriptor, &resp) < 0)
		return CLI_EXIT_FAIL;
	status = cli_print(cli, resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	return status;
}

int
allocation_main(struct cli *cli, int argc, char **argv)
{
	Allot__V1__AllocationChangeRequest req = ALLOT__V1__ALLOCATION_CHANGE_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	const char *method, *value, *sub;
	char name[64], path[96];
	bool have_amount = false, have_id = false, move, changes;
	int64_t *target;
	int i = 2, r, status;

	if (argc < 2)
		return cli_usage_error("allocation", "no subcommand given");
	sub = argv[1];
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
		fputs(allocation_usage_text, stdout);
		return CLI_EXIT_OK;
	}
	changes = strcmp(sub, "changes") == 0;
	if ((method = allocation_method(sub)) == NULL && !changes)
		return cli_usage_error("allocation", "unknown subcommand \"%s\"", sub);
	move = strcmp(sub, "move") == 0;

	while (i < argc) {
		r = cli_next_flag(argc, argv, &i, name, sizeof(name), &value, "allocation");
		if (r < 0)
			return CLI_EXIT_USAGE;
		if (r == 0) {
			if (move || have_id || parse_int64(argv[i], &req.allocation_id) != 0 ||
			    req.allocation_id <= 0)
				return cli_usage_error("allocation", "unexpected argument \"%s\"%s",
				    argv[i], move ? " (a move takes --from and --to)" : "");
			have_id = true;
			i++;
			continue;
		}
		if (strcmp(name, "help") == 0) {
			fputs(allocation_usage_text, stdout);
			return CLI_EXIT_OK;
		}
		if (!cli_has_value("allocation", name, value))
			return CLI_EXIT_USAGE;
		if (changes && strcmp(name, "format") != 0) {
			return cli_usage_error("allocation", "changes takes no --%s", name);
		} else if (strcmp(name, "gpu-hours") == 0 || strcmp(name, "units") == 0) {
			if (have_amount)
				return cli_usage_error(
				    "allocation", "give the amount once: --gpu-hours or --units");
			if (strcmp(name, "units") == 0
			        ? parse_int64(value, &req.amount_units) != 0
			        : parse_gpu_hours(value, &req.amount_units) != 0)
				return cli_usage_error("allocation", "--%s: \"%s\" is not %s", name,
				    value,
				    strcmp(name, "units") == 0 ? "an integer"
				                               : "a number of GPU-hours (at most 5 "
				                                 "decimals, at most 1e9)");
			have_amount = true;
		} else if (strcmp(name, "reason") == 0) {
			req.reason = (char *)value;
		} else if (strcmp(name, "id") == 0) {
			req.transfer_id = (char *)value;
		} else if (move && (strcmp(name, "from") == 0 || strcmp(name, "to") == 0)) {
			target = strcmp(name, "from") == 0 ? &req.from_allocation_id
			                                   : &req.allocation_id;
			if (parse_int64(value, target) != 0 || *target <= 0)
				return cli_usage_error("allocation",
				    "--%s: \"%s\" is not an allocation id", name, value);
		} else if (strcmp(name, "format") == 0) {
			if (!cli_set_format(cli, value))
				return cli_usage_error(
				    "allocation", "--format: table or json, not \"%s\"", value);
		} else {
			return cli_usage_error("allocation", "unknown flag --%s", name);
		}
	}
	if (!move && !have_id)
		return cli_usage_error("allocation", "%s needs an allocation id", sub);
	if (changes)
		return allocation_changes(cli, req.allocation_id);
	if (move && (req.from_allocation_id == 0 || req.allocation_id == 0))
		return cli_usage_error("allocation", "move needs --from and --to");
	if (!have_amount)
		return cli_usage_error("allocation", "%s needs --gpu-hours or --units", sub);
	if (req.reason[0] == '\0')
		return cli_usage_error("allocation", "%s needs --reason", sub);
	if (req.transfer_id[0] == '\0')
		return cli_usage_error("allocation",
		    "%s needs --id: a transfer id of yours, so that a retry is done once", sub);

	if (cli->dry_run)
		return render_json(stdout, &req.base) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "allot.v1.Allocations/%s", method);
	if (cli_call(cli, path, &req.base, &allot__v1__allocation_change__descriptor, &resp) < 0)
		return CLI_EXIT_FAIL;
	status = cli_print(cli, resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	return status;
}
