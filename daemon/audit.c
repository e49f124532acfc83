/*
 * audit: seals the journal into signed, hash-chained blocks in the background.
 *
 * One round: allot.seal_next proposes the next block (the queued, hence
 * committed, transfers, at most AUDIT_BLOCK_MAX of them, their accounts'
 * balances after them, the block's number, time and previous hash); this module
 * writes their lines with lib/auditfmt, hashes and signs, and calls
 * allot.seal_block, which under an advisory lock writes the block only if it is
 * still the next one. Two statements, each its own transaction: a sealer that
 * dies between them wrote nothing, and a sealer that lost the race to another
 * allotd answers false and tries again with the new head. A full block is
 * followed at once by the next; otherwise the next round waits period_s.
 * What the lines are, and checking them, is lib/auditfmt's and the CLI's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit.h"
#include "auditfmt.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "strbuf.h"

#define AUDIT_BLOCK_MAX 10000
#define AUDIT_BLOCK_MAX_TEXT "10000"

/* Columns of allot.seal_next. */
enum {
	COL_PART,
	COL_N1,
	COL_N2,
	COL_N3,
	COL_N4,
	COL_N5,
	COL_T1,
	COL_T2,
	COL_T3,
	COL_T4,
	COL_T5,
	COL_T6,
	COL_T7,
	NCOLS
};

struct audit {
	struct db *db;
	struct metrics *metrics;
	EVP_PKEY *key;
	struct event *timer;
	int period_s;
	bool busy;
	struct auditfmt_digest *entries, *balances;
	struct strbuf line, ids;
	int64_t number, count; /* the block in the database's hands */
};

EVP_PKEY *
audit_key_load(const char *path, char *err, size_t errlen)
{
	EVP_PKEY *key;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "could not open the audit key %s: %s", path, strerror(errno));
		return NULL;
	}
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (key == NULL) {
		snprintf(
		    err, errlen, "could not read the audit key %s: not a PEM private key", path);
		ERR_clear_error();
		return NULL;
	}
	if (EVP_PKEY_id(key) != EVP_PKEY_ED25519) {
		snprintf(err, errlen,
		    "the audit key %s is not an Ed25519 key (make one with openssl genpkey "
		    "-algorithm ed25519)",
		    path);
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

int
audit_key_print_public(EVP_PKEY *key, FILE *f)
{
	return PEM_write_PUBKEY(f, key) == 1 ? 0 : -1;
}

static void
schedule(struct audit *a, int seconds)
{
	struct timeval tv = {seconds, 0};

	if (evtimer_add(a->timer, &tv) != 0)
		log_errorx("could not schedule the next sealing of the journal");
}

static int64_t
num(const struct db_result *r, int row, int col)
{
	return strtoll(db_result_value(r, row, col), NULL, 10);
}

static void
seal_block_cb(const struct db_result *r, void *arg)
{
	struct audit *a = arg;

	a->busy = false;
	if (r->status != DB_OK) {
		if (r->status == DB_ERROR)
			log_errorx("could not seal block %" PRId64 ": %s (SQLSTATE %s)", a->number,
			    r->message, r->sqlstate);
		schedule(a, a->period_s);
		return;
	}
	if (strcmp(db_result_value(r, 0, 0), "t") == 0) {
		log_debug("sealed block %" PRId64 ": %" PRId64 " entries", a->number, a->count);
		if (a->metrics != NULL)
			metrics_count_sealed(a->metrics, (unsigned long long)a->count);
		schedule(a, a->count == AUDIT_BLOCK_MAX ? 0 : a->period_s);
	} else {
		/* another allotd sealed first: propose again from its block */
		log_debug("block %" PRId64 " was sealed by another allotd", a->number);
		schedule(a, 0);
	}
}

/* Builds, hashes and signs the proposed block and hands it back. Returns 0 or -1. */
static int
seal(struct audit *a, const struct db_result *r, int rows)
{
	struct auditfmt_block blk;
	struct auditfmt_entry e;
	struct auditfmt_balance b;
	char number[24], accounts_n[24];
	char prev[2 * AUDITFMT_HASH_LEN + 1], eh[2 * AUDITFMT_HASH_LEN + 1];
	char bh[2 * AUDITFMT_HASH_LEN + 1], hh[2 * AUDITFMT_HASH_LEN + 1];
	char sig[2 * AUDITFMT_SIG_LEN + 1];
	const char *params[9];
	int row = 1;

	memset(&blk, 0, sizeof(blk));
	if (strcmp(db_result_value(r, 0, COL_PART), "H") != 0 ||
	    db_result_length(r, 0, COL_T1) != AUDITFMT_TIME_LEN ||
	    auditfmt_unhex(db_result_value(r, 0, COL_T2), db_result_length(r, 0, COL_T2),
	        blk.prev_hash, AUDITFMT_HASH_LEN) != 0) {
		log_errorx("allot.seal_next answered no block head");
		return -1;
	}
	blk.number = num(r, 0, COL_N1);
	blk.entries = num(r, 0, COL_N2);
	memcpy(blk.sealed_at, db_result_value(r, 0, COL_T1), AUDITFMT_TIME_LEN);
	strbuf_reset(&a->ids);
	strbuf_putc(&a->ids, '{');
	for (; row < rows && strcmp(db_result_value(r, row, COL_PART), "E") == 0; row++) {
		e = (struct auditfmt_entry){
		    .block = blk.number,
		    .pos = row,
		    .id = num(r, row, COL_N1),
		    .debit = num(r, row, COL_N2),
		    .credit = num(r, row, COL_N3),
		    .amount = num(r, row, COL_N4),
		    .created_at = db_result_value(r, row, COL_T1),
		    .transfer_id = db_result_value(r, row, COL_T2),
		    .kind = db_result_value(r, row, COL_T3),
		    .lien = db_result_value(r, row, COL_T4),
		    .principal = db_result_value(r, row, COL_T5),
		    .reason = db_result_value(r, row, COL_T6),
		    .body_hash = db_result_value(r, row, COL_T7),
		};
		strbuf_reset(&a->line);
		if (auditfmt_entry_line(&a->line, &e) != 0 ||
		    auditfmt_digest_line(a->entries, a->line.data, a->line.len) != 0)
			goto nomem;
		strbuf_printf(&a->ids, "%s%" PRId64, row == 1 ? "" : ",", e.id);
	}
	strbuf_putc(&a->ids, '}');
	if (row - 1 != blk.entries) {
		log_errorx("allot.seal_next proposed block %" PRId64 " of %" PRId64
		           " entries with %d entry rows",
		    blk.number, blk.entries, row - 1);
		return -1;
	}
	for (; row < rows; row++) {
		b = (struct auditfmt_balance){
		    .block = blk.number,
		    .account = num(r, row, COL_N1),
		    .debits_posted = num(r, row, COL_N2),
		    .credits_posted = num(r, row, COL_N3),
		    .debits_pending = num(r, row, COL_N4),
		    .credits_pending = num(r, row, COL_N5),
		};
		strbuf_reset(&a->line);
		auditfmt_balance_line(&a->line, &b);
		if (strbuf_failed(&a->line) ||
		    auditfmt_digest_line(a->balances, a->line.data, a->line.len) != 0)
			goto nomem;
		blk.accounts++;
	}
	if (auditfmt_digest_finish(a->entries, blk.entries_hash) != 0 ||
	    auditfmt_digest_finish(a->balances, blk.balances_hash) != 0 ||
	    auditfmt_block_hash(&blk) != 0 || strbuf_failed(&a->ids))
		goto nomem;
	if (auditfmt_sign(a->key, blk.hash, blk.signature) != 0) {
		log_errorx("could not sign block %" PRId64 " with the audit key", blk.number);
		ERR_clear_error();
		return -1;
	}
	snprintf(number, sizeof(number), "%" PRId64, blk.number);
	snprintf(accounts_n, sizeof(accounts_n), "%" PRId64, blk.accounts);
	auditfmt_hex(blk.prev_hash, AUDITFMT_HASH_LEN, prev);
	auditfmt_hex(blk.entries_hash, AUDITFMT_HASH_LEN, eh);
	auditfmt_hex(blk.balances_hash, AUDITFMT_HASH_LEN, bh);
	auditfmt_hex(blk.hash, AUDITFMT_HASH_LEN, hh);
	auditfmt_hex(blk.signature, AUDITFMT_SIG_LEN, sig);
	params[0] = number;
	params[1] = blk.sealed_at;
	params[2] = prev;
	params[3] = a->ids.data;
	params[4] = eh;
	params[5] = accounts_n;
	params[6] = bh;
	params[7] = hh;
	params[8] = sig;
	a->number = blk.number;
	a->count = blk.entries;
	if (db_query(a->db,
	        "SELECT allot.seal_block($1::bigint, $2, $3, $4::bigint[], $5, $6::integer, $7, "
	        "$8, $9)",
	        9, params, seal_block_cb, a) != 0)
		return -1;
	return 0;
nomem:
	log_errorx("could not build block %" PRId64 ": out of memory", blk.number);
	return -1;
}

static void
seal_next_cb(const struct db_result *r, void *arg)
{
	struct audit *a = arg;
	int rows = db_result_rows(r);
	uint8_t scratch[AUDITFMT_HASH_LEN];

	if (r->status != DB_OK || rows == 0 || db_result_columns(r) != NCOLS) {
		if (r->status == DB_ERROR)
			log_errorx("could not read the entries to seal: %s (SQLSTATE %s)",
			    r->message, r->sqlstate);
		a->busy = false;
		schedule(a, a->period_s);
		return;
	}
	if (seal(a, r, rows) != 0) {
		/* start the next round's digests afresh */
		if (auditfmt_digest_finish(a->entries, scratch) != 0 ||
		    auditfmt_digest_finish(a->balances, scratch) != 0)
			log_errorx("could not reset the sealer's hashes");
		a->busy = false;
		schedule(a, a->period_s);
	}
}

static void
audit_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct audit *a = arg;
	const char *params[1] = {AUDIT_BLOCK_MAX_TEXT};

	(void)fd;
	(void)what;
	if (a->busy)
		return;
	if (!db_is_up(a->db) ||
	    db_query(a->db,
	        "SELECT part, n1, n2, n3, n4, n5, t1, t2, t3, t4, t5, t6, t7 "
	        "FROM allot.seal_next($1::integer)",
	        1, params, seal_next_cb, a) != 0) {
		schedule(a, a->period_s);
		return;
	}
	a->busy = true;
}

struct audit *
audit_new(
    struct event_base *base, struct db *db, struct metrics *metrics, EVP_PKEY *key, int period_s)
{
	struct audit *a;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		EVP_PKEY_free(key);
		return NULL;
	}
	a->db = db;
	a->metrics = metrics;
	a->key = key;
	audit_set_period(a, period_s);
	strbuf_init(&a->line);
	strbuf_init(&a->ids);
	a->timer = evtimer_new(base, audit_timer_cb, a);
	a->entries = auditfmt_digest_new();
	a->balances = auditfmt_digest_new();
	if (a->timer == NULL || a->entries == NULL || a->balances == NULL) {
		audit_free(a);
		return NULL;
	}
	return a;
}

void
audit_free(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->timer != NULL)
		event_free(a->timer);
	auditfmt_digest_free(a->entries);
	auditfmt_digest_free(a->balances);
	strbuf_cleanup(&a->line);
	strbuf_cleanup(&a->ids);
	EVP_PKEY_free(a->key);
	free(a);
}

int
audit_start(struct audit *a)
{
	struct timeval tv = {a->period_s, 0};

	return evtimer_add(a->timer, &tv);
}

void
audit_set_period(struct audit *a, int period_s)
{
	a->period_s = period_s > 0 ? period_s : 1;
}
