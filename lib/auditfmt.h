/*
 * auditfmt: the lines of the sealed journal's export, their hashes, and their
 * offline verification.
 *
 * One format for the three users: allotd's sealer builds the lines it hashes and
 * signs, `allot audit export` writes the same lines from the blocks it fetched,
 * and `allot audit verify` / `allot audit balance` read them back. README "The
 * audit journal" is the specification, byte for byte:
 *
 *   E <block> <pos> <id> <created_at> <transfer_id> <kind> <debit> <credit> <amount>
 *     <lien> <principal> <reason> <body_hash> <hash>
 *   A <block> <account> <debits_posted> <credits_posted> <debits_pending> <credits_pending>
 *   B <number> <sealed_at> <prev_hash> <entries> <entries_hash> <accounts>
 *     <balances_hash> <hash> <signature>
 *
 * fields separated by one TAB, lines ended by LF. An E line's hash is SHA-256 of its
 * bytes before the TAB that precedes the hash; a B line's hash likewise before the
 * TAB that precedes its hash, and the signature is Ed25519 over the 32 bytes of
 * that hash. entries_hash is SHA-256 of the block's E lines, each with its LF, in
 * order; balances_hash the same of its A lines. Text fields escape backslash, TAB,
 * LF and CR as \\, \t, \n and \r. Hashes and signatures are lower-case hex.
 *
 * Library-grade: no printing, errors in a caller's buffer. Uses OpenSSL's EVP.
 */
#ifndef ALLOT_AUDITFMT_H
#define ALLOT_AUDITFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "strbuf.h"

#define AUDITFMT_HASH_LEN 32
#define AUDITFMT_SIG_LEN 64
/* The first line of an export. */
#define AUDITFMT_HEADER "# allot audit journal, format 1"
/* allot.audit_time's width: "2026-12-02T07:41:24.123456Z". */
#define AUDITFMT_TIME_LEN 27

/* One journal entry; strings are the values, unescaped. lien is "" for none. */
struct auditfmt_entry {
	int64_t block, pos, id;
	const char *created_at, *transfer_id, *kind;
	int64_t debit, credit, amount;
	const char *lien, *principal, *reason, *body_hash;
};

/* One account after a block. */
struct auditfmt_balance {
	int64_t block, account;
	int64_t debits_posted, credits_posted, debits_pending, credits_pending;
};

struct auditfmt_block {
	int64_t number;
	char sealed_at[AUDITFMT_TIME_LEN + 1];
	uint8_t prev_hash[AUDITFMT_HASH_LEN];
	int64_t entries;
	uint8_t entries_hash[AUDITFMT_HASH_LEN];
	int64_t accounts;
	uint8_t balances_hash[AUDITFMT_HASH_LEN];
	uint8_t hash[AUDITFMT_HASH_LEN];
	uint8_t signature[AUDITFMT_SIG_LEN];
};

/* Appends s escaped (\\, \t, \n, \r) to sb. */
void auditfmt_escape(struct strbuf *sb, const char *s);

/* Lower-case hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void auditfmt_hex(const uint8_t *bytes, size_t n, char *out);
/* Reads exactly 2n hex digits of s (len bytes) into out. Returns 0 or -1. */
int auditfmt_unhex(const char *s, size_t len, uint8_t *out, size_t n)
    __attribute__((warn_unused_result));

/* SHA-256 of len bytes. Returns 0, or -1 when OpenSSL fails. */
int auditfmt_sha256(const void *data, size_t len, uint8_t out[AUDITFMT_HASH_LEN])
    __attribute__((warn_unused_result));

/* Appends e's E line, its hash computed, without the LF. Returns 0 or -1 (OpenSSL). */
int auditfmt_entry_line(struct strbuf *sb, const struct auditfmt_entry *e)
    __attribute__((warn_unused_result));
/* Appends b's A line, without the LF. */
void auditfmt_balance_line(struct strbuf *sb, const struct auditfmt_balance *b);
/* Sets blk->hash from its other fields (all but signature). Returns 0 or -1. */
int auditfmt_block_hash(struct auditfmt_block *blk) __attribute__((warn_unused_result));
/* Appends blk's B line (hash and signature as they are), without the LF. */
void auditfmt_block_line(struct strbuf *sb, const struct auditfmt_block *blk);

/* A running SHA-256 of lines, each taken with a LF after it. */
struct auditfmt_digest;
struct auditfmt_digest *auditfmt_digest_new(void);
void auditfmt_digest_free(struct auditfmt_digest *d);
int auditfmt_digest_line(struct auditfmt_digest *d, const char *line, size_t len)
    __attribute__((warn_unused_result));
/* Writes the hash of the lines so far and starts again empty. Returns 0 or -1. */
int auditfmt_digest_finish(struct auditfmt_digest *d, uint8_t out[AUDITFMT_HASH_LEN])
    __attribute__((warn_unused_result));

/* Ed25519 signature of a block hash by key; returns 0 or -1. */
int auditfmt_sign(EVP_PKEY *key, const uint8_t hash[AUDITFMT_HASH_LEN],
    uint8_t sig[AUDITFMT_SIG_LEN]) __attribute__((warn_unused_result));
/* True when sig is key's Ed25519 signature of hash. */
bool auditfmt_signature_ok(
    EVP_PKEY *key, const uint8_t hash[AUDITFMT_HASH_LEN], const uint8_t sig[AUDITFMT_SIG_LEN]);

enum auditfmt_line_type {
	AUDITFMT_LINE_COMMENT, /* empty, or starting with '#' */
	AUDITFMT_LINE_ENTRY,
	AUDITFMT_LINE_BALANCE,
	AUDITFMT_LINE_BLOCK,
};

/*
 * A parsed line. For an entry, entry's strings point into storage the struct owns
 * (valid until the next parse into it or auditfmt_line_cleanup), hash is the
 * line's own hash field and hashed_len the length of the bytes it covers.
 */
struct auditfmt_line {
	enum auditfmt_line_type type;
	struct auditfmt_entry entry;
	uint8_t hash[AUDITFMT_HASH_LEN];
	struct auditfmt_balance balance;
	struct auditfmt_block block;
	size_t hashed_len; /* ENTRY and BLOCK */
	char *storage;
	size_t storage_cap;
};

void auditfmt_line_init(struct auditfmt_line *l);
void auditfmt_line_cleanup(struct auditfmt_line *l);
/*
 * Parses line (len bytes, no LF; may hold any bytes). Returns 0, or -1 with why in
 * err ("field 4 (id): not a number"). It checks the syntax only: the hashes are
 * the verifier's.
 */
int auditfmt_parse_line(struct auditfmt_line *l, const char *line, size_t len, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/*
 * The offline verifier: fed an export's lines in order, it checks every entry's
 * hash and place, every block's hashes, the chain and the signatures (when given a
 * key), and recomputes each account's balance from the entries against what each
 * block states. An export that starts after block 1 takes an account's balance
 * before its first block there from that block (stated minus the block's entries).
 *
 * Optionally it answers one account's balance at a time: the entries of that
 * account created at or before `at` (a time as the lines write it).
 */
struct auditfmt_verifier;

struct auditfmt_summary {
	int64_t blocks, entries, accounts;
	int64_t first_block, last_block; /* 0 when no block */
	char first_prev_hash[2 * AUDITFMT_HASH_LEN + 1];
	char last_hash[2 * AUDITFMT_HASH_LEN + 1];
	char last_sealed_at[AUDITFMT_TIME_LEN + 1];
	bool from_genesis; /* the export starts at block 1 */
	/* the watched account at the time asked: its balance before its first block in
	 * the export plus its entries created at or before the time */
	bool watched_seen;
	struct auditfmt_balance watched;
	int64_t watched_entries;
};

/* Returns a new verifier; key (may be NULL: signatures not checked) is borrowed. */
struct auditfmt_verifier *auditfmt_verifier_new(EVP_PKEY *key);
void auditfmt_verifier_free(struct auditfmt_verifier *v);
/* Watches account's balance at time at (copied). */
void auditfmt_verifier_watch(struct auditfmt_verifier *v, int64_t account, const char *at);
/*
 * Checks the next line (len bytes, without its LF). Returns 0, or -1 with the
 * first failure in err, naming the entry or block ("entry 17 (transfer \"grant:x\",
 * block 3, position 2): ..."). After a failure the verifier only fails.
 */
int auditfmt_verifier_line(struct auditfmt_verifier *v, const char *line, size_t len, char *err,
    size_t errlen) __attribute__((warn_unused_result));
/* Ends the export: fails when lines follow the last block. Fills summary. */
int auditfmt_verifier_finish(struct auditfmt_verifier *v, struct auditfmt_summary *summary,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * What one entry of kind and amount does to each of its two accounts: *posted is
 * added to the debit account's debits posted and the credit account's credits
 * posted, *pending likewise to their pending columns.
 */
void auditfmt_entry_effect(const char *kind, int64_t amount, int64_t *posted, int64_t *pending);

#endif
