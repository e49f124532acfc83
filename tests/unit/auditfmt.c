/*
 * Unit tests for lib/auditfmt.c: the lines byte for byte and their hashes (figures
 * worked out apart, with Python's hashlib over the README's rules), the parser's
 * refusals, and the verifier on a journal built here, whole and altered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "auditfmt.h"

/* ---------------------------------------------------------------- writing */

static void
test_escape(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"", ""},
	    {"plain text, é", "plain text, é"},
	    {"a\tb", "a\\tb"},
	    {"back\\slash", "back\\\\slash"},
	    {"l1\nl2\r", "l1\\nl2\\r"},
	    {"\\t", "\\\\t"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct strbuf sb;

		strbuf_init(&sb);
		auditfmt_escape(&sb, cases[i].in);
		assert_string_equal(sb.data != NULL ? sb.data : "", cases[i].out);
		strbuf_cleanup(&sb);
	}
}

static void
test_hex(void **state)
{
	const uint8_t bytes[] = {0x00, 0x7f, 0xa5, 0xff};
	uint8_t back[4];
	char hex[9];

	(void)state;
	auditfmt_hex(bytes, 4, hex);
	assert_string_equal(hex, "007fa5ff");
	assert_int_equal(auditfmt_unhex(hex, 8, back, 4), 0);
	assert_memory_equal(back, bytes, 4);
	assert_int_equal(auditfmt_unhex("007FA5FF", 8, back, 4), -1); /* lower case only */
	assert_int_equal(auditfmt_unhex("007fa5f", 7, back, 4), -1);
	assert_int_equal(auditfmt_unhex("007fa5fg", 8, back, 4), -1);
}

/* The entry of the README's example: escapes in transfer id and reason, no lien. */
static const struct auditfmt_entry example = {
    .block = 1,
    .pos = 1,
    .id = 7,
    .created_at = "2026-01-31T12:00:00.000000Z",
    .transfer_id = "t\t1",
    .kind = "grant",
    .debit = 2,
    .credit = 3,
    .amount = 3600000,
    .lien = "",
    .principal = "CN=admin,O=Allot Dev",
    .reason = "a\\b\nc",
    .body_hash = "abc",
};
#define EXAMPLE_LINE \
	"E\t1\t1\t7\t2026-01-31T12:00:00.000000Z\tt\\t1\tgrant\t2\t3\t3600000\t\tCN=admin," \
	"O=Allot Dev\ta\\\\b\\nc\tabc\t" \
	"a4d81baee9522f76fec6b3298ad066747b91a3150ec346cbdab6ab593223acbe"

static void
test_entry_line(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	assert_int_equal(auditfmt_entry_line(&sb, &example), 0);
	assert_string_equal(sb.data, EXAMPLE_LINE);
	strbuf_cleanup(&sb);
}

static void
test_block_hash(void **state)
{
	struct auditfmt_block blk;
	struct auditfmt_digest *d = auditfmt_digest_new();
	const char *a1 = "A\t1\t2\t3600000\t0\t0\t0", *a2 = "A\t1\t3\t0\t3600000\t0\t0";
	char hex[65];

	(void)state;
	memset(&blk, 0, sizeof(blk));
	blk.number = 1;
	strcpy(blk.sealed_at, "2026-01-31T12:00:01.000000Z");
	blk.entries = 1;
	blk.accounts = 2;
	assert_non_null(d);
	assert_int_equal(auditfmt_digest_line(d, EXAMPLE_LINE, strlen(EXAMPLE_LINE)), 0);
	assert_int_equal(auditfmt_digest_finish(d, blk.entries_hash), 0);
	auditfmt_hex(blk.entries_hash, 32, hex);
	assert_string_equal(
	    hex, "e961cfc0990b49867a88eacb74fcd86da863442b94550aa8a723d5c27e8a5ab2");
	assert_int_equal(auditfmt_digest_line(d, a1, strlen(a1)), 0);
	assert_int_equal(auditfmt_digest_line(d, a2, strlen(a2)), 0);
	assert_int_equal(auditfmt_digest_finish(d, blk.balances_hash), 0);
	auditfmt_hex(blk.balances_hash, 32, hex);
	assert_string_equal(
	    hex, "d873e78ec25b6e0924878175ef46790c5efcd22425b9a55df40be432d83ce78c");
	assert_int_equal(auditfmt_block_hash(&blk), 0);
	auditfmt_hex(blk.hash, 32, hex);
	assert_string_equal(
	    hex, "9878f6080ff6e505de3ba0ca0e86181ec435ed01d5d7540a55833a1a4c91f25a");
	auditfmt_digest_free(d);
}

static void
test_entry_effect(void **state)
{
	static const struct {
		const char *kind;
		int64_t posted, pending;
	} cases[] = {
	    {"grant", 5, 0},
	    {"charge", 5, 0},
	    {"reserve", 0, 5},
	    {"post", 5, -5},
	    {"void", 0, -5},
	    {"move", 5, 0},
	    {"adjust", 5, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t posted = -1, pending = -1;

		auditfmt_entry_effect(cases[i].kind, 5, &posted, &pending);
		assert_int_equal(posted, cases[i].posted);
		assert_int_equal(pending, cases[i].pending);
	}
}

/* ---------------------------------------------------------------- parsing */

static void
test_parse_entry(void **state)
{
	struct auditfmt_line l;
	char err[256];

	(void)state;
	auditfmt_line_init(&l);
	assert_int_equal(
	    auditfmt_parse_line(&l, EXAMPLE_LINE, strlen(EXAMPLE_LINE), err, sizeof(err)), 0);
	assert_int_equal(l.type, AUDITFMT_LINE_ENTRY);
	assert_int_equal(l.entry.id, 7);
	assert_int_equal(l.entry.amount, 3600000);
	assert_string_equal(l.entry.transfer_id, "t\t1");
	assert_string_equal(l.entry.reason, "a\\b\nc");
	assert_string_equal(l.entry.lien, "");
	assert_int_equal(l.hashed_len, strlen(EXAMPLE_LINE) - 65);
	assert_int_equal(auditfmt_parse_line(&l, "# a comment", 11, err, sizeof(err)), 0);
	assert_int_equal(l.type, AUDITFMT_LINE_COMMENT);
	auditfmt_line_cleanup(&l);
}

static void
test_parse_refusals(void **state)
{
	static const struct {
		const char *line, *err;
	} cases[] = {
	    {"X\t1", "not a line of the journal"},
	    {"E", "not a line of the journal"},
	    {"A\t1\t2\t3", "a balance line has 4 fields, not 7"},
	    {"A\t1\t2\t3\t4\t5\t6\t7", "more than 7 fields"},
	    {"A\t1\t02\t3\t4\t5\t6", "field 3 (account): not a number"},
	    {"A\t1\t2\t-3\t4\t5\t6", "field 4 (debits_posted): not a number"},
	    {"A\t1\t2\t3\t4\t5\t99999999999999999999", "field 7 (credits_pending): not a number"},
	    {"E\t1\t1\t7\t2026-01-31T12:00:00Z\tt\tgrant\t2\t3\t1\t\tp\tr\th\t"
	     "a4d81baee9522f76fec6b3298ad066747b91a3150ec346cbdab6ab593223acbe",
	        "field 5 (created_at): not a time"},
	    {"E\t1\t1\t7\t2026-01-31T12:00:00.000000Z\tt\\x\tgrant\t2\t3\t1\t\tp\tr\th\t"
	     "a4d81baee9522f76fec6b3298ad066747b91a3150ec346cbdab6ab593223acbe",
	        "field 6 (transfer_id): a bad escape"},
	    {"E\t1\t1\t7\t2026-01-31T12:00:00.000000Z\tt\tgrant\t2\t3\t1\t\tp\tr\rr\th\t"
	     "a4d81baee9522f76fec6b3298ad066747b91a3150ec346cbdab6ab593223acbe",
	        "field 13 (reason): a bad escape"},
	    {"E\t1\t1\t7\t2026-01-31T12:00:00.000000Z\tt\tgrant\t2\t3\t1\t\tp\tr\th\tA4",
	        "field 15 (hash): not 64 hex digits"},
	    {"E\t1\t1\t7\t2026-01-31T12:00:00.000000Z\tt\t\t2\t3\t1\t\tp\tr\th\t"
	     "a4d81baee9522f76fec6b3298ad066747b91a3150ec346cbdab6ab593223acbe",
	        "an empty kind"},
	    {"B\t1\t2026-01-31T12:00:01.000000Z\t00\t1\t00\t2\t00\t00\t00",
	        "field 4 (prev_hash): not 64 hex digits"},
	    {"B\tx\t2026-01-31T12:00:01.000000Z\t00\t1\t00\t2\t00\t00\t00",
	        "field 2 (number): not a number"},
	};
	struct auditfmt_line l;
	char err[256];

	(void)state;
	auditfmt_line_init(&l);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		print_message("%s\n", cases[i].line);
		assert_int_equal(
		    auditfmt_parse_line(&l, cases[i].line, strlen(cases[i].line), err, sizeof(err)),
		    -1);
		if (strstr(err, cases[i].err) == NULL)
			fail_msg("\"%s\" does not say \"%s\"", err, cases[i].err);
	}
	auditfmt_line_cleanup(&l);
}

/* ---------------------------------------------------------------- the verifier */

/* A journal of two blocks signed by key, one string of lines ending in LF. */
static char *
make_journal(EVP_PKEY *key)
{
	static const struct {
		int64_t id, debit, credit, amount;
		const char *kind, *lien, *at;
	} rows[2][3] = {
	    {{1, 2, 3, 1000, "grant", "", "2026-01-31T12:00:00.000000Z"},
	        {2, 3, 1, 300, "reserve", "leonardo:1", "2026-01-31T12:00:02.000000Z"},
	        {3, 3, 1, 100, "post", "leonardo:1", "2026-01-31T12:00:03.000000Z"}},
	    {{5, 3, 1, 200, "void", "leonardo:1", "2026-01-31T12:00:05.000000Z"},
	        {4, 3, 1, 50, "charge", "", "2026-01-31T12:00:04.000000Z"},
	        {0, 0, 0, 0, NULL, NULL, NULL}},
	};
	/* Debits and credits posted, debits and credits pending. Block 1: the grant
	 * credits 3 with 1000; the reserve holds 300 (3's pending debits, 1's pending
	 * credits); the post of 100 moves 100 of them to posted. Block 2: the void gives
	 * back the other 200, the charge posts 50. */
	static const struct auditfmt_balance after[2][3] = {
	    {{1, 1, 0, 100, 0, 200}, {1, 2, 1000, 0, 0, 0}, {1, 3, 100, 1000, 200, 0}},
	    {{2, 1, 0, 150, 0, 0}, {2, 3, 150, 1000, 0, 0}, {0, 0, 0, 0, 0, 0}},
	};
	struct strbuf out, line;
	struct auditfmt_digest *ed = auditfmt_digest_new(), *bd = auditfmt_digest_new();
	uint8_t prev[32] = {0};

	strbuf_init(&out);
	strbuf_init(&line);
	strbuf_puts(&out, AUDITFMT_HEADER "\n");
	for (int b = 0; b < 2; b++) {
		struct auditfmt_block blk;

		memset(&blk, 0, sizeof(blk));
		blk.number = b + 1;
		for (int i = 0; i < 3 && rows[b][i].kind != NULL; i++) {
			struct auditfmt_entry e = {.block = b + 1,
			    .pos = i + 1,
			    .id = rows[b][i].id,
			    .created_at = rows[b][i].at,
			    .transfer_id = "tid",
			    .kind = rows[b][i].kind,
			    .debit = rows[b][i].debit,
			    .credit = rows[b][i].credit,
			    .amount = rows[b][i].amount,
			    .lien = rows[b][i].lien,
			    .principal = "CN=x",
			    .reason = "",
			    .body_hash = "h"};

			strbuf_reset(&line);
			assert_int_equal(auditfmt_entry_line(&line, &e), 0);
			assert_int_equal(auditfmt_digest_line(ed, line.data, line.len), 0);
			strbuf_append(&out, line.data, line.len);
			strbuf_putc(&out, '\n');
			blk.entries++;
		}
		for (int i = 0; i < 3 && after[b][i].account != 0; i++) {
			strbuf_reset(&line);
			auditfmt_balance_line(&line, &after[b][i]);
			assert_int_equal(auditfmt_digest_line(bd, line.data, line.len), 0);
			strbuf_append(&out, line.data, line.len);
			strbuf_putc(&out, '\n');
			blk.accounts++;
		}
		snprintf(blk.sealed_at, sizeof(blk.sealed_at), "2026-01-31T12:00:0%d.500000Z",
		    3 + 2 * b);
		memcpy(blk.prev_hash, prev, 32);
		assert_int_equal(auditfmt_digest_finish(ed, blk.entries_hash), 0);
		assert_int_equal(auditfmt_digest_finish(bd, blk.balances_hash), 0);
		assert_int_equal(auditfmt_block_hash(&blk), 0);
		assert_int_equal(auditfmt_sign(key, blk.hash, blk.signature), 0);
		memcpy(prev, blk.hash, 32);
		strbuf_reset(&line);
		auditfmt_block_line(&line, &blk);
		strbuf_append(&out, line.data, line.len);
		strbuf_putc(&out, '\n');
	}
	auditfmt_digest_free(ed);
	auditfmt_digest_free(bd);
	strbuf_cleanup(&line);
	assert_false(strbuf_failed(&out));
	return strbuf_steal(&out);
}

static EVP_PKEY *
new_key(void)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *key = NULL;

	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_keygen(ctx, &key), 1);
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/* Runs the verifier over text; returns 0 or -1 with the error in err. */
static int
verify_text(EVP_PKEY *key, const char *text, char *err, size_t errlen, struct auditfmt_summary *sum,
    int64_t watch, const char *at)
{
	struct auditfmt_verifier *v = auditfmt_verifier_new(key);
	const char *p = text, *nl;
	int rc = 0;

	assert_non_null(v);
	if (watch != 0)
		auditfmt_verifier_watch(v, watch, at);
	while (rc == 0 && (nl = strchr(p, '\n')) != NULL) {
		rc = auditfmt_verifier_line(v, p, (size_t)(nl - p), err, errlen);
		p = nl + 1;
	}
	if (rc == 0)
		rc = auditfmt_verifier_finish(v, sum, err, errlen);
	auditfmt_verifier_free(v);
	return rc;
}

/* Returns a copy of text with line n (0 = the header) replaced by with (NULL: removed). */
static char *
replace_line(const char *text, int n, const char *with)
{
	struct strbuf sb;
	const char *p = text, *nl;

	strbuf_init(&sb);
	for (int i = 0; (nl = strchr(p, '\n')) != NULL; i++, p = nl + 1) {
		if (i != n) {
			strbuf_append(&sb, p, (size_t)(nl - p + 1));
		} else if (with != NULL) {
			strbuf_puts(&sb, with);
			strbuf_putc(&sb, '\n');
		}
	}
	return strbuf_steal(&sb);
}

/* Line n of text, in a new string. */
static char *
get_line(const char *text, int n)
{
	const char *p = text, *nl;

	for (int i = 0; (nl = strchr(p, '\n')) != NULL; i++, p = nl + 1)
		if (i == n)
			return strndup(p, (size_t)(nl - p));
	return NULL;
}

static void
test_verify_whole(void **state)
{
	EVP_PKEY *key = new_key();
	char *j = make_journal(key), err[512] = "";
	struct auditfmt_summary s;

	(void)state;
	if (verify_text(key, j, err, sizeof(err), &s, 0, "") != 0)
		fail_msg("%s", err);
	assert_int_equal(s.blocks, 2);
	assert_int_equal(s.entries, 5);
	assert_int_equal(s.accounts, 3);
	assert_int_equal(s.first_block, 1);
	assert_true(s.from_genesis);
	/* Account 3 at 12:00:03.5: the grant, the reserve of 300, the post of 100. */
	assert_int_equal(
	    verify_text(key, j, err, sizeof(err), &s, 3, "2026-01-31T12:00:03.500000Z"), 0);
	assert_true(s.watched_seen);
	assert_int_equal(s.watched_entries, 3);
	assert_int_equal(s.watched.credits_posted, 1000);
	assert_int_equal(s.watched.debits_posted, 100);
	assert_int_equal(s.watched.debits_pending, 200);
	/* At 12:00:04.0 the charge of 50 (sealed in block 2, created before the void). */
	assert_int_equal(
	    verify_text(key, j, err, sizeof(err), &s, 3, "2026-01-31T12:00:04.000000Z"), 0);
	assert_int_equal(s.watched.debits_posted, 150);
	assert_int_equal(s.watched.debits_pending, 200);
	/* Without a key the signatures are not checked; with another key they fail. */
	assert_int_equal(verify_text(NULL, j, err, sizeof(err), &s, 0, ""), 0);
	EVP_PKEY *other = new_key();
	assert_int_equal(verify_text(other, j, err, sizeof(err), &s, 0, ""), -1);
	assert_non_null(strstr(err, "line 8: block 1: the signature is not the audit key's"));
	EVP_PKEY_free(other);
	free(j);
	EVP_PKEY_free(key);
}

/* Lines by index (the verifier counts from 1): 0 header, 1..3 entries of block 1, 4..6
 * its balances, 7 block 1, 8..9 entries of block 2, 10..11 its balances, 12 block 2. */
static void
test_verify_altered(void **state)
{
	EVP_PKEY *key = new_key();
	char *j = make_journal(key);
	struct {
		const char *what;
		int line;         /* replaced, or -1 */
		const char *from; /* substring replaced in that line... */
		const char *to;   /* ...by this; NULL removes the line */
		const char *err;
	} cases[] = {
	    {"an entry's amount", 2, "\t300\t", "\t301\t",
	        "line 3: entry 2 (transfer \"tid\", block 1, position 2): its hash does not match"},
	    {"an entry's kind", 3, "\tpost\t", "\tvoid\t", "line 4: entry 3"},
	    {"a balance", 4, "\t100\t", "\t101\t",
	        "line 5: block 1: account 1 states credits posted 101, its entries make 100"},
	    {"a block's time", 7, "12:00:03.5", "12:00:03.4",
	        "line 8: block 1: its hash does not match its fields"},
	    {"a block's entry count", 7, "\t3\t", "\t2\t", "line 8: block 1: states 2 entries, 3"},
	    {"a signature", 12, NULL, NULL,
	        "line 13: block 2: the signature is not the audit key's"},
	    {"an entry removed", 2, NULL, NULL,
	        "line 3: entry 3 (transfer \"tid\", block 1, position 3): expected position 2"},
	    {"a balance removed", 5, NULL, NULL,
	        "line 7: block 1: account 2 is touched by its entries and has no balance"},
	    {"a block removed", 7, NULL, NULL,
	        "line 8: entry 5 (transfer \"tid\", block 2, "
	        "position 1): expected an entry of block 1"},
	    {"the header", 0, "format 1", "format 2", "line 1: not an audit journal"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *line = get_line(j, cases[i].line), *alt, *fixed = NULL, err[512] = "";
		struct auditfmt_summary s;

		print_message("%s\n", cases[i].what);
		assert_non_null(line);
		if (cases[i].from != NULL) {
			char *at = strstr(line, cases[i].from);
			struct strbuf sb;

			assert_non_null(at);
			strbuf_init(&sb);
			strbuf_append(&sb, line, (size_t)(at - line));
			strbuf_puts(&sb, cases[i].to);
			strbuf_puts(&sb, at + strlen(cases[i].from));
			fixed = strbuf_steal(&sb);
			alt = replace_line(j, cases[i].line, fixed);
		} else if (strcmp(cases[i].what, "a signature") == 0) {
			/* the last hex digit of the signature, changed */
			line[strlen(line) - 1] = line[strlen(line) - 1] == '0' ? '1' : '0';
			alt = replace_line(j, cases[i].line, line);
		} else {
			alt = replace_line(j, cases[i].line, NULL);
		}
		assert_int_equal(verify_text(key, alt, err, sizeof(err), &s, 0, ""), -1);
		if (strstr(err, cases[i].err) == NULL)
			fail_msg(
			    "%s: \"%s\" does not say \"%s\"", cases[i].what, err, cases[i].err);
		free(line);
		free(fixed);
		free(alt);
	}
	free(j);
	EVP_PKEY_free(key);
}

/* Two entries swapped with their positions and hashes made again: the block names it. */
static void
test_verify_swapped(void **state)
{
	EVP_PKEY *key = new_key();
	char *j = make_journal(key), *l1 = get_line(j, 1), *l2 = get_line(j, 2), *a, *b;
	struct auditfmt_line p;
	struct strbuf sb1, sb2;
	struct auditfmt_summary s;
	char err[512] = "";

	(void)state;
	auditfmt_line_init(&p);
	strbuf_init(&sb1);
	strbuf_init(&sb2);
	assert_int_equal(auditfmt_parse_line(&p, l1, strlen(l1), err, sizeof(err)), 0);
	p.entry.pos = 2;
	assert_int_equal(auditfmt_entry_line(&sb1, &p.entry), 0);
	assert_int_equal(auditfmt_parse_line(&p, l2, strlen(l2), err, sizeof(err)), 0);
	p.entry.pos = 1;
	assert_int_equal(auditfmt_entry_line(&sb2, &p.entry), 0);
	a = replace_line(j, 1, sb2.data);
	b = replace_line(a, 2, sb1.data);
	assert_int_equal(verify_text(key, b, err, sizeof(err), &s, 0, ""), -1);
	assert_non_null(strstr(err, "line 8: block 1: entries_hash does not match its entries"));
	/* swapped as they are: the positions say so at the first */
	free(a);
	free(b);
	a = replace_line(j, 1, l2);
	b = replace_line(a, 2, l1);
	assert_int_equal(verify_text(key, b, err, sizeof(err), &s, 0, ""), -1);
	assert_non_null(strstr(err,
	    "line 2: entry 2 (transfer \"tid\", block 1, position 2): "
	    "expected position 1"));
	free(a);
	free(b);
	free(l1);
	free(l2);
	strbuf_cleanup(&sb1);
	strbuf_cleanup(&sb2);
	auditfmt_line_cleanup(&p);
	free(j);
	EVP_PKEY_free(key);
}

/* An export from block 2 on: balances before it come from the block; the chain is open. */
static void
test_verify_partial(void **state)
{
	EVP_PKEY *key = new_key();
	char *j = make_journal(key), *part;
	struct auditfmt_summary s;
	struct strbuf sb;
	const char *p;
	char err[512] = "";

	(void)state;
	strbuf_init(&sb);
	strbuf_puts(&sb, AUDITFMT_HEADER "\n");
	p = strstr(j, "\nE\t2\t");
	assert_non_null(p);
	strbuf_puts(&sb, p + 1);
	part = strbuf_steal(&sb);
	if (verify_text(key, part, err, sizeof(err), &s, 0, "") != 0)
		fail_msg("%s", err);
	assert_false(s.from_genesis);
	assert_int_equal(s.first_block, 2);
	assert_int_equal(s.blocks, 1);
	/* account 1 after the void: its opening (0, 100, 0, 200) and the export's entries */
	assert_int_equal(
	    verify_text(key, part, err, sizeof(err), &s, 1, "2026-01-31T12:00:09.000000Z"), 0);
	assert_int_equal(s.watched.credits_posted, 150);
	assert_int_equal(s.watched.credits_pending, 0);
	free(part);
	free(j);
	EVP_PKEY_free(key);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_hex),
	    cmocka_unit_test(test_entry_line),
	    cmocka_unit_test(test_block_hash),
	    cmocka_unit_test(test_entry_effect),
	    cmocka_unit_test(test_parse_entry),
	    cmocka_unit_test(test_parse_refusals),
	    cmocka_unit_test(test_verify_whole),
	    cmocka_unit_test(test_verify_altered),
	    cmocka_unit_test(test_verify_swapped),
	    cmocka_unit_test(test_verify_partial),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
