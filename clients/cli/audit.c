/*
 * audit: `allot audit export|verify|balance`, the auditor's commands.
 *
 * export fetches the sealed blocks page by page (Audit.ListBlocks) and writes
 * them as the lines of lib/auditfmt into DIR/journal (through a temporary file
 * renamed at the end, so a failed export leaves no half journal). verify and
 * balance need neither allotd nor the network: they read DIR/journal through
 * auditfmt's verifier, with the public key given. The format and its checks
 * are auditfmt's; this file reads command lines and files and prints.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "allot/v1/audit.pb-c.h"
#include "auditfmt.h"
#include "cli.h"
#include "rfc3339.h"

#define AUDIT_PAGE_ENTRIES 10000
#define UNITS_PER_GPU_HOUR 3600000.0

static const char audit_usage_text[] =
    "usage: allot audit export [--from T] [--to T] DIR\n"
    "       allot audit verify DIR --pubkey KEY\n"
    "       allot audit balance DIR --account A --at T [--pubkey KEY]\n"
    "\n"
    "The sealed journal, for auditors (README \"The audit journal\" specifies it).\n"
    "\n"
    "  export   write the sealed blocks (sealed from T, before T) and their entries\n"
    "           to DIR/journal (role auditor or admin)\n"
    "  verify   check DIR/journal offline with the audit public key (allotd\n"
    "           --audit-pubkey prints it): every entry's hash and place, every\n"
    "           block's hashes, the chain, every signature, and every account's\n"
    "           balance recomputed from the entries against what the blocks state\n"
    "  balance  account A's balance at time T (RFC 3339, to the microsecond) from\n"
    "           DIR/journal alone, after verifying it\n"
    "\n"
    "Exit status: 0 success, 1 an RPC error or a journal that fails verification\n"
    "(the first failing entry or block is named), 2 a usage error or unreadable file.\n";

struct audit_flags {
	const char *from, *to, *pubkey, *account, *at, *dir;
};

static int
audit_flags_parse(int argc, char **argv, struct audit_flags *f, const char *cmd)
{
	const char *value;
	char name[64];
	int i = 2, r;

	memset(f, 0, sizeof(*f));
	while (i < argc) {
		r = cli_next_flag(argc, argv, &i, name, sizeof(name), &value, "audit");
		if (r < 0)
			return CLI_EXIT_USAGE;
		if (r == 0) {
			if (f->dir != NULL)
				return cli_usage_error(
				    "audit", "unexpected argument \"%s\"", argv[i]);
			f->dir = argv[i++];
			continue;
		}
		if (strcmp(name, "help") == 0) {
			fputs(audit_usage_text, stdout);
			return CLI_EXIT_OK;
		}
		if (!cli_has_value("audit", name, value))
			return CLI_EXIT_USAGE;
		if (strcmp(cmd, "export") == 0 && strcmp(name, "from") == 0)
			f->from = value;
		else if (strcmp(cmd, "export") == 0 && strcmp(name, "to") == 0)
			f->to = value;
		else if (strcmp(cmd, "export") != 0 && strcmp(name, "pubkey") == 0)
			f->pubkey = value;
		else if (strcmp(cmd, "balance") == 0 && strcmp(name, "account") == 0)
			f->account = value;
		else if (strcmp(cmd, "balance") == 0 && strcmp(name, "at") == 0)
			f->at = value;
		else
			return cli_usage_error("audit", "%s: unknown flag --%s", cmd, name);
	}
	if (f->dir == NULL)
		return cli_usage_error("audit", "%s: DIR is required", cmd);
	return -1;
}

static bool
is_rfc3339(const char *s)
{
	int64_t t;

	return rfc3339_parse(s, &t) == 0;
}

/* ---------------------------------------------------------------- export */

/* Writes sb's line and a LF to f. Returns 0, or -1 after printing why (out of memory). */
static int
put_line(FILE *f, struct strbuf *sb)
{
	strbuf_putc(sb, '\n');
	if (strbuf_failed(sb)) {
		fprintf(stderr, "allot: audit export: out of memory\n");
		return -1;
	}
	fwrite(sb->data, 1, sb->len, f);
	return 0;
}

/* Writes one block's lines to f. Returns 0, or -1 after printing why. */
static int
write_block(FILE *f, const Allot__V1__AuditBlock *b, struct strbuf *sb)
{
	struct auditfmt_block blk;

	memset(&blk, 0, sizeof(blk));
	for (size_t i = 0; i < b->n_entries; i++) {
		const Allot__V1__AuditEntry *e = b->entries[i];
		struct auditfmt_entry ae = {
		    .block = b->number,
		    .pos = (int64_t)i + 1,
		    .id = e->id,
		    .created_at = e->created_at,
		    .transfer_id = e->transfer_id,
		    .kind = e->kind,
		    .debit = e->debit_account,
		    .credit = e->credit_account,
		    .amount = e->amount,
		    .lien = e->lien,
		    .principal = e->principal,
		    .reason = e->reason,
		    .body_hash = e->body_hash,
		};

		strbuf_reset(sb);
		if (auditfmt_entry_line(sb, &ae) != 0) {
			fprintf(stderr, "allot: audit export: could not write entry %" PRId64 "\n",
			    e->id);
			return -1;
		}
		if (put_line(f, sb) != 0)
			return -1;
	}
	for (size_t i = 0; i < b->n_balances; i++) {
		const Allot__V1__AuditBalance *a = b->balances[i];
		struct auditfmt_balance ab = {
		    .block = b->number,
		    .account = a->account,
		    .debits_posted = a->debits_posted,
		    .credits_posted = a->credits_posted,
		    .debits_pending = a->debits_pending,
		    .credits_pending = a->credits_pending,
		};

		strbuf_reset(sb);
		auditfmt_balance_line(sb, &ab);
		if (put_line(f, sb) != 0)
			return -1;
	}
	blk.number = b->number;
	blk.entries = (int64_t)b->n_entries;
	blk.accounts = (int64_t)b->n_balances;
	if (strlen(b->sealed_at) != AUDITFMT_TIME_LEN ||
	    auditfmt_unhex(b->prev_hash, strlen(b->prev_hash), blk.prev_hash, AUDITFMT_HASH_LEN) !=
	        0 ||
	    auditfmt_unhex(b->entries_hash, strlen(b->entries_hash), blk.entries_hash,
	        AUDITFMT_HASH_LEN) != 0 ||
	    auditfmt_unhex(b->balances_hash, strlen(b->balances_hash), blk.balances_hash,
	        AUDITFMT_HASH_LEN) != 0 ||
	    auditfmt_unhex(b->hash, strlen(b->hash), blk.hash, AUDITFMT_HASH_LEN) != 0 ||
	    auditfmt_unhex(b->signature, strlen(b->signature), blk.signature, AUDITFMT_SIG_LEN) !=
	        0) {
		fprintf(stderr,
		    "allot: audit export: block %" PRId64 " came with a malformed field\n",
		    b->number);
		return -1;
	}
	memcpy(blk.sealed_at, b->sealed_at, AUDITFMT_TIME_LEN);
	strbuf_reset(sb);
	auditfmt_block_line(sb, &blk);
	return put_line(f, sb);
}

static int
export_main(struct cli *cli, const struct audit_flags *fl)
{
	Allot__V1__ListBlocksRequest req = ALLOT__V1__LIST_BLOCKS_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	char path[4096], tmp[4200];
	int64_t blocks = 0, entries = 0;
	struct strbuf sb;
	FILE *f = NULL;
	int status = CLI_EXIT_FAIL;

	if (fl->from != NULL && !is_rfc3339(fl->from))
		return cli_usage_error("audit", "--from: \"%s\" is not an RFC 3339 time", fl->from);
	if (fl->to != NULL && !is_rfc3339(fl->to))
		return cli_usage_error("audit", "--to: \"%s\" is not an RFC 3339 time", fl->to);
	if (snprintf(path, sizeof(path), "%s/journal", fl->dir) >= (int)sizeof(path))
		return cli_usage_error("audit", "DIR is too long");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	req.from = (char *)(fl->from != NULL ? fl->from : "");
	req.to = (char *)(fl->to != NULL ? fl->to : "");
	req.max_entries = AUDIT_PAGE_ENTRIES;
	if (cli->dry_run)
		return CLI_EXIT_OK;
	if (mkdir(fl->dir, 0777) != 0 && errno != EEXIST) {
		fprintf(stderr, "allot: audit export: could not make %s: %s\n", fl->dir,
		    strerror(errno));
		return CLI_EXIT_USAGE;
	}
	if ((f = fopen(tmp, "w")) == NULL) {
		fprintf(
		    stderr, "allot: audit export: could not write %s: %s\n", tmp, strerror(errno));
		return CLI_EXIT_USAGE;
	}
	strbuf_init(&sb);
	fprintf(f, "%s\n# sealed from %s to %s\n", AUDITFMT_HEADER,
	    fl->from != NULL ? fl->from : "the first block", fl->to != NULL ? fl->to : "the last");
	for (;;) {
		const Allot__V1__ListBlocksResponse *r;

		if (cli_call(cli, "allot.v1.Audit/ListBlocks", &req.base,
		        &allot__v1__list_blocks_response__descriptor, &resp) < 0)
			goto done;
		r = (const void *)resp;
		for (size_t i = 0; i < r->n_blocks; i++) {
			if (write_block(f, r->blocks[i], &sb) != 0)
				goto done;
			blocks++;
			entries += (int64_t)r->blocks[i]->n_entries;
		}
		req.after = r->next_after;
		protobuf_c_message_free_unpacked(resp, NULL);
		resp = NULL;
		if (req.after == 0)
			break;
	}
	if (ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fprintf(
		    stderr, "allot: audit export: could not write %s: %s\n", tmp, strerror(errno));
		goto done;
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		f = NULL;
		fprintf(
		    stderr, "allot: audit export: could not write %s: %s\n", path, strerror(errno));
		goto done;
	}
	f = NULL;
	printf("exported %" PRId64 " blocks, %" PRId64 " entries to %s\n", blocks, entries, path);
	status = CLI_EXIT_OK;
done:
	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	if (f != NULL) {
		fclose(f);
		remove(tmp);
	}
	strbuf_cleanup(&sb);
	return status;
}

/* ---------------------------------------------------------------- verify and balance */

EVP_PKEY *
cli_read_pubkey(const char *path, const char *cmd)
{
	EVP_PKEY *key;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		fprintf(stderr, "allot: %s: could not open %s: %s\n", cmd, path, strerror(errno));
		return NULL;
	}
	key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (key == NULL || EVP_PKEY_id(key) != EVP_PKEY_ED25519) {
		fprintf(stderr, "allot: %s: %s is not an Ed25519 public key (PEM)\n", cmd, path);
		EVP_PKEY_free(key);
		ERR_clear_error();
		return NULL;
	}
	return key;
}

/*
 * Runs the verifier over DIR/journal. Returns CLI_EXIT_OK with *s filled, 1 after
 * printing the first failure, 2 when the file cannot be read.
 */
static int
verify_file(const char *dir, EVP_PKEY *key, int64_t watch, const char *at,
    struct auditfmt_summary *s, char *path, size_t pathlen)
{
	struct auditfmt_verifier *v;
	char *line = NULL, err[1024];
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int status = CLI_EXIT_OK;

	snprintf(path, pathlen, "%s/journal", dir);
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "allot: audit: could not open %s: %s\n", path, strerror(errno));
		return CLI_EXIT_USAGE;
	}
	if ((v = auditfmt_verifier_new(key)) == NULL) {
		fclose(f);
		fprintf(stderr, "allot: audit: out of memory\n");
		return CLI_EXIT_FAIL;
	}
	if (watch != 0)
		auditfmt_verifier_watch(v, watch, at);
	while ((n = getline(&line, &cap, f)) >= 0) {
		if (n == 0 || line[n - 1] != '\n') {
			fprintf(stderr, "allot: audit: %s: the last line has no end (cut short?)\n",
			    path);
			status = CLI_EXIT_FAIL;
			break;
		}
		if (auditfmt_verifier_line(v, line, (size_t)n - 1, err, sizeof(err)) != 0) {
			fprintf(stderr, "allot: audit: %s: %s\n", path, err);
			status = CLI_EXIT_FAIL;
			break;
		}
	}
	if (status == CLI_EXIT_OK && ferror(f)) {
		fprintf(stderr, "allot: audit: could not read %s: %s\n", path, strerror(errno));
		status = CLI_EXIT_USAGE;
	}
	if (status == CLI_EXIT_OK && auditfmt_verifier_finish(v, s, err, sizeof(err)) != 0) {
		fprintf(stderr, "allot: audit: %s: %s\n", path, err);
		status = CLI_EXIT_FAIL;
	}
	free(line);
	fclose(f);
	auditfmt_verifier_free(v);
	return status;
}

static int
verify_main(const struct audit_flags *fl)
{
	struct auditfmt_summary s;
	char path[4200];
	EVP_PKEY *key;
	int status;

	if (fl->pubkey == NULL)
		return cli_usage_error("audit", "verify: --pubkey KEY is required");
	if ((key = cli_read_pubkey(fl->pubkey, "audit")) == NULL)
		return CLI_EXIT_USAGE;
	status = verify_file(fl->dir, key, 0, "", &s, path, sizeof(path));
	EVP_PKEY_free(key);
	if (status != CLI_EXIT_OK)
		return status;
	if (s.blocks == 0) {
		printf("%s: verified: no blocks\n", path);
		return CLI_EXIT_OK;
	}
	printf("%s: verified %" PRId64 " entries in %" PRId64 " blocks (%" PRId64 "..%" PRId64
	       "), %" PRId64 " accounts\n",
	    path, s.entries, s.blocks, s.first_block, s.last_block, s.accounts);
	if (!s.from_genesis)
		printf("starts after block %" PRId64 " (prev_hash %s): balances before it are "
		       "taken from the blocks\n",
		    s.first_block - 1, s.first_prev_hash);
	printf("last block %" PRId64 " sealed at %s, hash %s\n", s.last_block, s.last_sealed_at,
	    s.last_hash);
	return CLI_EXIT_OK;
}

static int
balance_main_audit(const struct audit_flags *fl)
{
	struct auditfmt_summary s;
	const struct auditfmt_balance *b = &s.watched;
	char path[4200], at[AUDITFMT_TIME_LEN + 1], *end;
	const char *frac;
	EVP_PKEY *key = NULL;
	int64_t account, t, bal, avail;
	struct tm tm;
	time_t tt;
	int status;

	if (fl->account == NULL || fl->at == NULL)
		return cli_usage_error("audit", "balance: --account A and --at T are required");
	errno = 0;
	account = strtoll(fl->account, &end, 10);
	if (errno != 0 || *end != '\0' || account <= 0)
		return cli_usage_error(
		    "audit", "--account: \"%s\" is not an account number", fl->account);
	if (rfc3339_parse(fl->at, &t) != 0)
		return cli_usage_error("audit", "--at: \"%s\" is not an RFC 3339 time", fl->at);
	tt = (time_t)t;
	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S.000000Z", &tm) != AUDITFMT_TIME_LEN)
		return cli_usage_error("audit", "--at: \"%s\" is out of range", fl->at);
	/* rfc3339_parse drops the fraction: the lines' times have microseconds */
	if ((frac = strchr(fl->at, '.')) != NULL && strchr(fl->at, 'T') != NULL &&
	    frac > strchr(fl->at, 'T'))
		for (int k = 0; k < 6 && frac[k + 1] >= '0' && frac[k + 1] <= '9'; k++)
			at[20 + k] = frac[k + 1];
	if (fl->pubkey != NULL && (key = cli_read_pubkey(fl->pubkey, "audit")) == NULL)
		return CLI_EXIT_USAGE;
	status = verify_file(fl->dir, key, account, at, &s, path, sizeof(path));
	EVP_PKEY_free(key);
	if (status != CLI_EXIT_OK)
		return status;
	if (!s.watched_seen) {
		fprintf(stderr, "allot: audit balance: account %" PRId64 " has no entry in %s\n",
		    account, path);
		return CLI_EXIT_FAIL;
	}
	bal = b->credits_posted - b->debits_posted;
	avail = bal - b->debits_pending;
	printf("account %" PRId64 " at %s: %" PRId64 " entries of %s at or before it%s\n", account,
	    at, s.watched_entries, path,
	    s.from_genesis ? "" : ", on the balance before the export's first block");
	printf("debits posted    %20" PRId64 "\n", b->debits_posted);
	printf("credits posted   %20" PRId64 "\n", b->credits_posted);
	printf("debits pending   %20" PRId64 "\n", b->debits_pending);
	printf("credits pending  %20" PRId64 "\n", b->credits_pending);
	printf("balance          %20" PRId64 "  (%.2f GPU-h)\n", bal,
	    (double)bal / UNITS_PER_GPU_HOUR);
	printf("available        %20" PRId64 "  (%.2f GPU-h)\n", avail,
	    (double)avail / UNITS_PER_GPU_HOUR);
	if (!fl->pubkey)
		printf("signatures not checked: give --pubkey KEY\n");
	return CLI_EXIT_OK;
}

int
audit_main(struct cli *cli, int argc, char **argv)
{
	struct audit_flags fl;
	const char *cmd;
	int r;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(audit_usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	cmd = argv[1];
	if (strcmp(cmd, "export") != 0 && strcmp(cmd, "verify") != 0 && strcmp(cmd, "balance") != 0)
		return cli_usage_error("audit", "unknown command \"%s\"", cmd);
	if ((r = audit_flags_parse(argc, argv, &fl, cmd)) >= 0)
		return r;
	if (strcmp(cmd, "export") == 0)
		return export_main(cli, &fl);
	if (strcmp(cmd, "verify") == 0)
		return verify_main(&fl);
	return balance_main_audit(&fl);
}
