/*
 * auditfmt: the sealed journal's lines, hashes, signatures and the offline
 * verifier (auditfmt.h states the format; README "The audit journal" is its
 * specification). What a line means for the ledger is the rule of the
 * database's allot.transfers_apply, repeated here on purpose: the verifier must
 * recompute the balances without the database. Reading files and printing are
 * the callers'.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "auditfmt.h"

#define ZERO_HASH_HEX "0000000000000000000000000000000000000000000000000000000000000000"

/* ---------------------------------------------------------------- writing */

void
auditfmt_escape(struct strbuf *sb, const char *s)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc = NULL;

		switch (*s) {
		case '\\':
			esc = "\\\\";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		default:
			continue;
		}
		strbuf_append(sb, run, (size_t)(s - run));
		strbuf_append(sb, esc, 2);
		run = s + 1;
	}
	strbuf_append(sb, run, (size_t)(s - run));
}

void
auditfmt_hex(const uint8_t *bytes, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
auditfmt_unhex(const char *s, size_t len, uint8_t *out, size_t n)
{
	if (len != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int
auditfmt_sha256(const void *data, size_t len, uint8_t out[AUDITFMT_HASH_LEN])
{
	unsigned int n = 0;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != AUDITFMT_HASH_LEN)
		return -1;
	return 0;
}

/* Appends TAB and the hex of hash. */
static void
put_hex(struct strbuf *sb, const uint8_t *bytes, size_t n)
{
	char hex[2 * AUDITFMT_SIG_LEN + 1];

	auditfmt_hex(bytes, n, hex);
	strbuf_putc(sb, '\t');
	strbuf_append(sb, hex, 2 * n);
}

int
auditfmt_entry_line(struct strbuf *sb, const struct auditfmt_entry *e)
{
	uint8_t hash[AUDITFMT_HASH_LEN];
	size_t start = sb->len;

	strbuf_printf(sb, "E\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t", e->block, e->pos, e->id);
	auditfmt_escape(sb, e->created_at);
	strbuf_putc(sb, '\t');
	auditfmt_escape(sb, e->transfer_id);
	strbuf_putc(sb, '\t');
	auditfmt_escape(sb, e->kind);
	strbuf_printf(
	    sb, "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t", e->debit, e->credit, e->amount);
	auditfmt_escape(sb, e->lien);
	strbuf_putc(sb, '\t');
	auditfmt_escape(sb, e->principal);
	strbuf_putc(sb, '\t');
	auditfmt_escape(sb, e->reason);
	strbuf_putc(sb, '\t');
	auditfmt_escape(sb, e->body_hash);
	if (strbuf_failed(sb) || auditfmt_sha256(sb->data + start, sb->len - start, hash) != 0)
		return -1;
	put_hex(sb, hash, sizeof(hash));
	return strbuf_failed(sb) ? -1 : 0;
}

void
auditfmt_balance_line(struct strbuf *sb, const struct auditfmt_balance *b)
{
	strbuf_printf(sb,
	    "A\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64,
	    b->block, b->account, b->debits_posted, b->credits_posted, b->debits_pending,
	    b->credits_pending);
}

/* The B line up to its hash, without the TAB before it. */
static void
block_head(struct strbuf *sb, const struct auditfmt_block *blk)
{
	strbuf_printf(sb, "B\t%" PRId64 "\t", blk->number);
	strbuf_puts(sb, blk->sealed_at);
	put_hex(sb, blk->prev_hash, AUDITFMT_HASH_LEN);
	strbuf_printf(sb, "\t%" PRId64, blk->entries);
	put_hex(sb, blk->entries_hash, AUDITFMT_HASH_LEN);
	strbuf_printf(sb, "\t%" PRId64, blk->accounts);
	put_hex(sb, blk->balances_hash, AUDITFMT_HASH_LEN);
}

int
auditfmt_block_hash(struct auditfmt_block *blk)
{
	struct strbuf sb;
	int rc;

	strbuf_init(&sb);
	block_head(&sb, blk);
	rc = strbuf_failed(&sb) ? -1 : auditfmt_sha256(sb.data, sb.len, blk->hash);
	strbuf_cleanup(&sb);
	return rc;
}

void
auditfmt_block_line(struct strbuf *sb, const struct auditfmt_block *blk)
{
	block_head(sb, blk);
	put_hex(sb, blk->hash, AUDITFMT_HASH_LEN);
	put_hex(sb, blk->signature, AUDITFMT_SIG_LEN);
}

struct auditfmt_digest {
	EVP_MD_CTX *ctx;
	bool started;
};

struct auditfmt_digest *
auditfmt_digest_new(void)
{
	struct auditfmt_digest *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	if ((d->ctx = EVP_MD_CTX_new()) == NULL) {
		free(d);
		return NULL;
	}
	return d;
}

void
auditfmt_digest_free(struct auditfmt_digest *d)
{
	if (d == NULL)
		return;
	EVP_MD_CTX_free(d->ctx);
	free(d);
}

static int
digest_start(struct auditfmt_digest *d)
{
	if (d->started)
		return 0;
	if (EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1)
		return -1;
	d->started = true;
	return 0;
}

int
auditfmt_digest_line(struct auditfmt_digest *d, const char *line, size_t len)
{
	if (digest_start(d) != 0 || EVP_DigestUpdate(d->ctx, line, len) != 1 ||
	    EVP_DigestUpdate(d->ctx, "\n", 1) != 1)
		return -1;
	return 0;
}

int
auditfmt_digest_finish(struct auditfmt_digest *d, uint8_t out[AUDITFMT_HASH_LEN])
{
	unsigned int n = 0;

	if (digest_start(d) != 0 || EVP_DigestFinal_ex(d->ctx, out, &n) != 1 ||
	    n != AUDITFMT_HASH_LEN)
		return -1;
	d->started = false;
	return 0;
}

int
auditfmt_sign(EVP_PKEY *key, const uint8_t hash[AUDITFMT_HASH_LEN], uint8_t sig[AUDITFMT_SIG_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t len = AUDITFMT_SIG_LEN;
	int rc = -1;

	if (ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
	    EVP_DigestSign(ctx, sig, &len, hash, AUDITFMT_HASH_LEN) == 1 && len == AUDITFMT_SIG_LEN)
		rc = 0;
	EVP_MD_CTX_free(ctx);
	return rc;
}

bool
auditfmt_signature_ok(
    EVP_PKEY *key, const uint8_t hash[AUDITFMT_HASH_LEN], const uint8_t sig[AUDITFMT_SIG_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = false;

	if (ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
	    EVP_DigestVerify(ctx, sig, AUDITFMT_SIG_LEN, hash, AUDITFMT_HASH_LEN) == 1)
		ok = true;
	EVP_MD_CTX_free(ctx);
	return ok;
}

void
auditfmt_entry_effect(const char *kind, int64_t amount, int64_t *posted, int64_t *pending)
{
	/* allot.transfer_posted and allot.transfer_pending (0003_ledger). */
	if (strcmp(kind, "reserve") == 0) {
		*posted = 0;
		*pending = amount;
	} else if (strcmp(kind, "void") == 0) {
		*posted = 0;
		*pending = -amount;
	} else if (strcmp(kind, "post") == 0) {
		*posted = amount;
		*pending = -amount;
	} else {
		*posted = amount;
		*pending = 0;
	}
}

/* ---------------------------------------------------------------- parsing */

void
auditfmt_line_init(struct auditfmt_line *l)
{
	memset(l, 0, sizeof(*l));
}

void
auditfmt_line_cleanup(struct auditfmt_line *l)
{
	free(l->storage);
	auditfmt_line_init(l);
}

struct field {
	const char *p;
	size_t len;
};

/* Splits line at TABs into at most max fields; returns how many there are (max + 1: too many). */
static size_t
split(const char *line, size_t len, struct field *f, size_t max)
{
	size_t n = 0;
	const char *start = line, *end = line + len;

	for (const char *p = line;; p++) {
		if (p == end || *p == '\t') {
			if (n == max)
				return max + 1;
			f[n].p = start;
			f[n].len = (size_t)(p - start);
			n++;
			if (p == end)
				return n;
			start = p + 1;
		}
	}
}

/* A decimal integer 0..INT64_MAX written without a sign or a leading zero. */
static int
parse_count(const struct field *f, int64_t *out)
{
	int64_t v = 0;

	if (f->len == 0 || f->len > 19 || (f->len > 1 && f->p[0] == '0'))
		return -1;
	for (size_t i = 0; i < f->len; i++) {
		int d = f->p[i] - '0';

		if (d < 0 || d > 9 || v > (INT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Unescapes f into dst (which has f->len + 1 bytes); returns -1 on a bad escape. */
static int
unescape(const struct field *f, char *dst)
{
	size_t j = 0;

	for (size_t i = 0; i < f->len; i++) {
		char c = f->p[i];

		/* one spelling per value: a CR is written \r, never raw */
		if (c == '\0' || c == '\r')
			return -1;
		if (c != '\\') {
			dst[j++] = c;
			continue;
		}
		if (++i == f->len)
			return -1;
		switch (f->p[i]) {
		case '\\':
			dst[j++] = '\\';
			break;
		case 't':
			dst[j++] = '\t';
			break;
		case 'n':
			dst[j++] = '\n';
			break;
		case 'r':
			dst[j++] = '\r';
			break;
		default:
			return -1;
		}
	}
	dst[j] = '\0';
	return 0;
}

static bool
is_time(const struct field *f)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";

	if (f->len != AUDITFMT_TIME_LEN)
		return false;
	for (size_t i = 0; i < f->len; i++) {
		char c = f->p[i];

		if (shape[i] == 'd' ? (c < '0' || c > '9') : c != shape[i])
			return false;
	}
	return true;
}

static const char *const entry_names[] = {"type", "block", "position", "id", "created_at",
    "transfer_id", "kind", "debit account", "credit account", "amount", "lien", "principal",
    "reason", "body_hash", "hash"};
static const char *const balance_names[] = {"type", "block", "account", "debits_posted",
    "credits_posted", "debits_pending", "credits_pending"};
static const char *const block_names[] = {"type", "number", "sealed_at", "prev_hash", "entries",
    "entries_hash", "accounts", "balances_hash", "hash", "signature"};

#define NENTRY (sizeof(entry_names) / sizeof(entry_names[0]))
#define NBALANCE (sizeof(balance_names) / sizeof(balance_names[0]))
#define NBLOCK (sizeof(block_names) / sizeof(block_names[0]))

static int
parse_entry(struct auditfmt_line *l, const struct field *f, char *err, size_t errlen)
{
	static const size_t text[] = {4, 5, 6, 10, 11, 12, 13};
	const char **dst[] = {&l->entry.created_at, &l->entry.transfer_id, &l->entry.kind,
	    &l->entry.lien, &l->entry.principal, &l->entry.reason, &l->entry.body_hash};
	int64_t *nums[] = {&l->entry.block, &l->entry.pos, &l->entry.id, &l->entry.debit,
	    &l->entry.credit, &l->entry.amount};
	static const size_t numf[] = {1, 2, 3, 7, 8, 9};
	size_t need = 0, off = 0;
	char *s;

	for (size_t i = 0; i < sizeof(numf) / sizeof(numf[0]); i++)
		if (parse_count(&f[numf[i]], nums[i]) != 0) {
			snprintf(err, errlen, "field %zu (%s): not a number", numf[i] + 1,
			    entry_names[numf[i]]);
			return -1;
		}
	if (!is_time(&f[4])) {
		snprintf(err, errlen,
		    "field 5 (created_at): not a time like 2026-01-31T12:00:00.000000Z");
		return -1;
	}
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		need += f[text[i]].len + 1;
	if (need > l->storage_cap) {
		if ((s = realloc(l->storage, need)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		l->storage = s;
		l->storage_cap = need;
	}
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
		if (unescape(&f[text[i]], l->storage + off) != 0) {
			snprintf(err, errlen, "field %zu (%s): a bad escape", text[i] + 1,
			    entry_names[text[i]]);
			return -1;
		}
		*dst[i] = l->storage + off;
		off += f[text[i]].len + 1;
	}
	if (l->entry.kind[0] == '\0' || l->entry.transfer_id[0] == '\0') {
		snprintf(
		    err, errlen, "an empty %s", l->entry.kind[0] == '\0' ? "kind" : "transfer_id");
		return -1;
	}
	if (auditfmt_unhex(f[14].p, f[14].len, l->hash, AUDITFMT_HASH_LEN) != 0) {
		snprintf(err, errlen, "field 15 (hash): not 64 hex digits");
		return -1;
	}
	l->hashed_len = (size_t)(f[13].p + f[13].len - f[0].p);
	return 0;
}

static int
parse_balance(struct auditfmt_line *l, const struct field *f, char *err, size_t errlen)
{
	int64_t *nums[] = {&l->balance.block, &l->balance.account, &l->balance.debits_posted,
	    &l->balance.credits_posted, &l->balance.debits_pending, &l->balance.credits_pending};

	for (size_t i = 0; i < 6; i++)
		if (parse_count(&f[i + 1], nums[i]) != 0) {
			snprintf(err, errlen, "field %zu (%s): not a number", i + 2,
			    balance_names[i + 1]);
			return -1;
		}
	return 0;
}

static int
parse_block(struct auditfmt_line *l, const struct field *f, char *err, size_t errlen)
{
	struct auditfmt_block *b = &l->block;
	static const size_t hashf[] = {3, 5, 7, 8};
	uint8_t *hashes[] = {b->prev_hash, b->entries_hash, b->balances_hash, b->hash};

	if (parse_count(&f[1], &b->number) != 0 || parse_count(&f[4], &b->entries) != 0 ||
	    parse_count(&f[6], &b->accounts) != 0) {
		snprintf(err, errlen, "field %d (%s): not a number",
		    parse_count(&f[1], &b->number) != 0        ? 2
		        : parse_count(&f[4], &b->entries) != 0 ? 5
		                                               : 7,
		    parse_count(&f[1], &b->number) != 0        ? "number"
		        : parse_count(&f[4], &b->entries) != 0 ? "entries"
		                                               : "accounts");
		return -1;
	}
	if (!is_time(&f[2])) {
		snprintf(err, errlen,
		    "field 3 (sealed_at): not a time like 2026-01-31T12:00:00.000000Z");
		return -1;
	}
	memcpy(b->sealed_at, f[2].p, AUDITFMT_TIME_LEN);
	b->sealed_at[AUDITFMT_TIME_LEN] = '\0';
	for (size_t i = 0; i < 4; i++)
		if (auditfmt_unhex(f[hashf[i]].p, f[hashf[i]].len, hashes[i], AUDITFMT_HASH_LEN) !=
		    0) {
			snprintf(err, errlen, "field %zu (%s): not 64 hex digits", hashf[i] + 1,
			    block_names[hashf[i]]);
			return -1;
		}
	if (auditfmt_unhex(f[9].p, f[9].len, b->signature, AUDITFMT_SIG_LEN) != 0) {
		snprintf(err, errlen, "field 10 (signature): not 128 hex digits");
		return -1;
	}
	l->hashed_len = (size_t)(f[7].p + f[7].len - f[0].p);
	return 0;
}

int
auditfmt_parse_line(struct auditfmt_line *l, const char *line, size_t len, char *err, size_t errlen)
{
	struct field f[NENTRY + 1];
	size_t n, want;
	const char *what;

	if (len == 0 || line[0] == '#') {
		l->type = AUDITFMT_LINE_COMMENT;
		return 0;
	}
	if (len < 2 || line[1] != '\t' || (line[0] != 'E' && line[0] != 'A' && line[0] != 'B')) {
		snprintf(err, errlen, "not a line of the journal (E, A or B and a TAB)");
		return -1;
	}
	switch (line[0]) {
	case 'E':
		l->type = AUDITFMT_LINE_ENTRY;
		want = NENTRY;
		what = "an entry";
		break;
	case 'A':
		l->type = AUDITFMT_LINE_BALANCE;
		want = NBALANCE;
		what = "a balance";
		break;
	default:
		l->type = AUDITFMT_LINE_BLOCK;
		want = NBLOCK;
		what = "a block";
		break;
	}
	n = split(line, len, f, want);
	if (n != want) {
		snprintf(err, errlen, "%s line has %s%zu fields, not %zu", what,
		    n > want ? "more than " : "", n > want ? want : n, want);
		return -1;
	}
	if (l->type == AUDITFMT_LINE_ENTRY)
		return parse_entry(l, f, err, errlen);
	if (l->type == AUDITFMT_LINE_BALANCE)
		return parse_balance(l, f, err, errlen);
	return parse_block(l, f, err, errlen);
}

/* ---------------------------------------------------------------- the verifier */

struct acct {
	int64_t account; /* 0: free slot (account ids start at 1) */
	int64_t dp, cp, dq, cq;
	/* this block's deltas and whether it stated the account */
	int64_t bdp, bcp, bdq, bcq;
	int64_t touched_in; /* block number that last touched it */
	int64_t stated_in;  /* block number that last stated its balance */
	bool known;         /* balance known before the current block */
};

struct auditfmt_verifier {
	EVP_PKEY *key;
	struct auditfmt_digest *entries_digest, *balances_digest;
	struct auditfmt_line line;
	struct acct *accts;
	size_t cap, used;
	/* accounts touched by the current block, in no order */
	int64_t *touched;
	size_t ntouched, touched_cap;

	bool failed, from_genesis;
	int64_t lineno;
	int64_t cur_block; /* block whose lines are being read; 0 before the first */
	bool in_block;     /* lines of cur_block were read since the last B */
	int64_t pos, nbalances, last_account;
	bool have_prev;
	uint8_t prev_hash[AUDITFMT_HASH_LEN];
	char prev_sealed_at[AUDITFMT_TIME_LEN + 1];

	int64_t watch_account;
	char watch_at[AUDITFMT_TIME_LEN + 1];
	/* the watched account's entries at or before the time, summed */
	int64_t w_dp, w_cp, w_dq, w_cq;
	/* its balance before its first block in the export */
	int64_t o_dp, o_cp, o_dq, o_cq;

	struct auditfmt_summary sum;
};

struct auditfmt_verifier *
auditfmt_verifier_new(EVP_PKEY *key)
{
	struct auditfmt_verifier *v = calloc(1, sizeof(*v));

	if (v == NULL)
		return NULL;
	v->key = key;
	auditfmt_line_init(&v->line);
	v->entries_digest = auditfmt_digest_new();
	v->balances_digest = auditfmt_digest_new();
	v->cap = 1024;
	v->accts = calloc(v->cap, sizeof(*v->accts));
	if (v->entries_digest == NULL || v->balances_digest == NULL || v->accts == NULL) {
		auditfmt_verifier_free(v);
		return NULL;
	}
	return v;
}

void
auditfmt_verifier_free(struct auditfmt_verifier *v)
{
	if (v == NULL)
		return;
	auditfmt_digest_free(v->entries_digest);
	auditfmt_digest_free(v->balances_digest);
	auditfmt_line_cleanup(&v->line);
	free(v->accts);
	free(v->touched);
	free(v);
}

void
auditfmt_verifier_watch(struct auditfmt_verifier *v, int64_t account, const char *at)
{
	v->watch_account = account;
	snprintf(v->watch_at, sizeof(v->watch_at), "%s", at);
}

static size_t
slot_of(const struct acct *t, size_t cap, int64_t account)
{
	size_t i = (size_t)((uint64_t)account * 0x9E3779B97F4A7C15ull) & (cap - 1);

	while (t[i].account != 0 && t[i].account != account)
		i = (i + 1) & (cap - 1);
	return i;
}

/* The account's slot, made when missing; NULL when out of memory. */
static struct acct *
acct_get(struct auditfmt_verifier *v, int64_t account)
{
	size_t i;

	if (2 * (v->used + 1) > v->cap) {
		size_t ncap = 2 * v->cap;
		struct acct *n = calloc(ncap, sizeof(*n));

		if (n == NULL)
			return NULL;
		for (size_t j = 0; j < v->cap; j++)
			if (v->accts[j].account != 0)
				n[slot_of(n, ncap, v->accts[j].account)] = v->accts[j];
		free(v->accts);
		v->accts = n;
		v->cap = ncap;
	}
	i = slot_of(v->accts, v->cap, account);
	if (v->accts[i].account == 0) {
		v->accts[i].account = account;
		v->used++;
	}
	return &v->accts[i];
}

static struct acct *
acct_find(struct auditfmt_verifier *v, int64_t account)
{
	size_t i = slot_of(v->accts, v->cap, account);

	return v->accts[i].account == account ? &v->accts[i] : NULL;
}

static int
touch(struct auditfmt_verifier *v, int64_t account, int64_t dp, int64_t cp, int64_t dq, int64_t cq)
{
	struct acct *a = acct_get(v, account);

	if (a == NULL)
		return -1;
	if (a->touched_in != v->cur_block) {
		if (v->ntouched == v->touched_cap) {
			size_t ncap = v->touched_cap ? 2 * v->touched_cap : 256;
			int64_t *n = realloc(v->touched, ncap * sizeof(*n));

			if (n == NULL)
				return -1;
			v->touched = n;
			v->touched_cap = ncap;
		}
		v->touched[v->ntouched++] = account;
		a->touched_in = v->cur_block;
		a->bdp = a->bcp = a->bdq = a->bcq = 0;
	}
	a->bdp += dp;
	a->bcp += cp;
	a->bdq += dq;
	a->bcq += cq;
	return 0;
}

static int fail(struct auditfmt_verifier *v, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(struct auditfmt_verifier *v, char *err, size_t errlen, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "line %" PRId64 ": %s", v->lineno, msg);
	v->failed = true;
	return -1;
}

/* "entry 17 (transfer "grant:x", block 3, position 2)" */
static void
entry_name(const struct auditfmt_entry *e, char *out, size_t outlen)
{
	snprintf(out, outlen,
	    "entry %" PRId64 " (transfer \"%.200s\", block %" PRId64 ", position %" PRId64 ")",
	    e->id, e->transfer_id, e->block, e->pos);
}

static int
verify_entry(struct auditfmt_verifier *v, const char *line, char *err, size_t errlen)
{
	const struct auditfmt_entry *e = &v->line.entry;
	uint8_t hash[AUDITFMT_HASH_LEN];
	int64_t posted, pending;
	char name[320];

	entry_name(e, name, sizeof(name));
	if (!v->in_block) {
		int64_t want = v->cur_block + 1;

		if (v->cur_block != 0 && e->block != want)
			return fail(
			    v, err, errlen, "%s: expected an entry of block %" PRId64, name, want);
		if (e->block == 0)
			return fail(v, err, errlen, "%s: blocks are numbered from 1", name);
		v->cur_block = e->block;
		v->in_block = true;
		v->pos = 0;
		v->nbalances = 0;
		v->last_account = 0;
		v->ntouched = 0;
	} else if (e->block != v->cur_block) {
		return fail(
		    v, err, errlen, "%s: expected an entry of block %" PRId64, name, v->cur_block);
	} else if (v->nbalances > 0) {
		return fail(v, err, errlen, "%s: an entry after the balances of its block", name);
	}
	if (e->pos != v->pos + 1)
		return fail(v, err, errlen, "%s: expected position %" PRId64, name, v->pos + 1);
	v->pos++;
	if (auditfmt_sha256(line, v->line.hashed_len, hash) != 0)
		return fail(v, err, errlen, "%s: could not hash it", name);
	if (memcmp(hash, v->line.hash, sizeof(hash)) != 0)
		return fail(v, err, errlen, "%s: its hash does not match its fields", name);
	if (e->amount == 0)
		return fail(v, err, errlen, "%s: an amount of 0", name);
	if (e->debit == 0 || e->credit == 0 || e->debit == e->credit)
		return fail(v, err, errlen,
		    "%s: debits and credits account %" PRId64 " and %" PRId64, name, e->debit,
		    e->credit);
	auditfmt_entry_effect(e->kind, e->amount, &posted, &pending);
	if (touch(v, e->debit, posted, 0, pending, 0) != 0 ||
	    touch(v, e->credit, 0, posted, 0, pending) != 0)
		return fail(v, err, errlen, "out of memory");
	if (v->watch_account != 0 &&
	    (e->debit == v->watch_account || e->credit == v->watch_account)) {
		bool debit = e->debit == v->watch_account;

		if (strcmp(e->created_at, v->watch_at) <= 0) {
			v->w_dp += debit ? posted : 0;
			v->w_cp += debit ? 0 : posted;
			v->w_dq += debit ? pending : 0;
			v->w_cq += debit ? 0 : pending;
			v->sum.watched_entries++;
		}
		v->sum.watched_seen = true;
	}
	v->sum.entries++;
	return 0;
}

/* a + b without overflow (balances are sums of positive amounts, so never near it). */
static bool
add_ok(int64_t a, int64_t b, int64_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}

static int
verify_balance(struct auditfmt_verifier *v, char *err, size_t errlen)
{
	const struct auditfmt_balance *b = &v->line.balance;
	struct acct *a;
	int64_t want[4],
	    got[4] = {b->debits_posted, b->credits_posted, b->debits_pending, b->credits_pending};
	static const char *const what[] = {
	    "debits posted", "credits posted", "debits pending", "credits pending"};

	if (!v->in_block || b->block != v->cur_block)
		return fail(v, err, errlen,
		    "block %" PRId64 ": a balance of account %" PRId64 " outside its block's lines",
		    b->block, b->account);
	if (b->account <= v->last_account)
		return fail(v, err, errlen,
		    "block %" PRId64 ": the balance of account %" PRId64
		    " is out of order (accounts ascending, once each)",
		    b->block, b->account);
	v->last_account = b->account;
	a = acct_find(v, b->account);
	if (a == NULL || a->touched_in != v->cur_block)
		return fail(v, err, errlen,
		    "block %" PRId64 ": states a balance of account %" PRId64
		    ", which none of its entries touches",
		    b->block, b->account);
	if (!a->known && !v->from_genesis) {
		/* the export starts later: the balance before this block is what it implies */
		a->dp = b->debits_posted - a->bdp;
		a->cp = b->credits_posted - a->bcp;
		a->dq = b->debits_pending - a->bdq;
		a->cq = b->credits_pending - a->bcq;
	}
	if (!add_ok(a->dp, a->bdp, &want[0]) || !add_ok(a->cp, a->bcp, &want[1]) ||
	    !add_ok(a->dq, a->bdq, &want[2]) || !add_ok(a->cq, a->bcq, &want[3]))
		return fail(v, err, errlen, "block %" PRId64 ": account %" PRId64 " overflows",
		    b->block, b->account);
	for (int i = 0; i < 4; i++)
		if (want[i] != got[i] || want[i] < 0)
			return fail(v, err, errlen,
			    "block %" PRId64 ": account %" PRId64 " states %s %" PRId64
			    ", its entries make %" PRId64,
			    b->block, b->account, what[i], got[i], want[i]);
	if (b->account == v->watch_account && !a->known) {
		v->o_dp = a->dp;
		v->o_cp = a->cp;
		v->o_dq = a->dq;
		v->o_cq = a->cq;
	}
	a->stated_in = v->cur_block;
	a->dp = got[0];
	a->cp = got[1];
	a->dq = got[2];
	a->cq = got[3];
	if (!a->known) {
		a->known = true;
		v->sum.accounts++;
	}
	v->nbalances++;
	return 0;
}

static int
verify_block(struct auditfmt_verifier *v, char *err, size_t errlen)
{
	struct auditfmt_block *b = &v->line.block;
	uint8_t eh[AUDITFMT_HASH_LEN], bh[AUDITFMT_HASH_LEN];
	char hex[2 * AUDITFMT_HASH_LEN + 1];

	if (!v->in_block)
		return fail(v, err, errlen, "block %" PRId64 ": no entries before it", b->number);
	if (b->number != v->cur_block)
		return fail(v, err, errlen, "block %" PRId64 ": its entries say block %" PRId64,
		    b->number, v->cur_block);
	if (b->entries != v->pos)
		return fail(v, err, errlen,
		    "block %" PRId64 ": states %" PRId64 " entries, %" PRId64 " precede it",
		    b->number, b->entries, v->pos);
	for (size_t i = 0; i < v->ntouched; i++) {
		struct acct *a = acct_find(v, v->touched[i]);

		if (a != NULL && a->stated_in != v->cur_block)
			return fail(v, err, errlen,
			    "block %" PRId64 ": account %" PRId64
			    " is touched by its entries and has no balance",
			    b->number, a->account);
	}
	if (b->accounts != v->nbalances)
		return fail(v, err, errlen,
		    "block %" PRId64 ": states %" PRId64 " accounts, %" PRId64
		    " balances precede it",
		    b->number, b->accounts, v->nbalances);
	if (auditfmt_digest_finish(v->entries_digest, eh) != 0 ||
	    auditfmt_digest_finish(v->balances_digest, bh) != 0)
		return fail(v, err, errlen, "block %" PRId64 ": could not hash it", b->number);
	if (memcmp(eh, b->entries_hash, sizeof(eh)) != 0)
		return fail(v, err, errlen,
		    "block %" PRId64 ": entries_hash does not match its entries (changed, "
		    "reordered, removed or added)",
		    b->number);
	if (memcmp(bh, b->balances_hash, sizeof(bh)) != 0)
		return fail(v, err, errlen,
		    "block %" PRId64 ": balances_hash does not match its balances", b->number);
	if (v->have_prev) {
		if (memcmp(v->prev_hash, b->prev_hash, sizeof(eh)) != 0)
			return fail(v, err, errlen,
			    "block %" PRId64 ": prev_hash is not the hash of block %" PRId64,
			    b->number, b->number - 1);
		if (strcmp(b->sealed_at, v->prev_sealed_at) < 0)
			return fail(v, err, errlen,
			    "block %" PRId64 ": sealed at %s, before block %" PRId64 " (%s)",
			    b->number, b->sealed_at, b->number - 1, v->prev_sealed_at);
	} else {
		auditfmt_hex(b->prev_hash, AUDITFMT_HASH_LEN, hex);
		if (b->number == 1 && strcmp(hex, ZERO_HASH_HEX) != 0)
			return fail(v, err, errlen,
			    "block 1: prev_hash is not zero (the chain starts there)");
		snprintf(v->sum.first_prev_hash, sizeof(v->sum.first_prev_hash), "%s", hex);
		v->sum.first_block = b->number;
	}
	memcpy(eh, b->hash, sizeof(eh));
	if (auditfmt_block_hash(b) != 0)
		return fail(v, err, errlen, "block %" PRId64 ": could not hash it", b->number);
	if (memcmp(eh, b->hash, sizeof(eh)) != 0)
		return fail(v, err, errlen, "block %" PRId64 ": its hash does not match its fields",
		    b->number);
	if (v->key != NULL && !auditfmt_signature_ok(v->key, b->hash, b->signature))
		return fail(v, err, errlen,
		    "block %" PRId64 ": the signature is not the audit key's", b->number);
	memcpy(v->prev_hash, b->hash, sizeof(eh));
	memcpy(v->prev_sealed_at, b->sealed_at, sizeof(v->prev_sealed_at));
	v->have_prev = true;
	v->in_block = false;
	v->sum.blocks++;
	v->sum.last_block = b->number;
	auditfmt_hex(b->hash, AUDITFMT_HASH_LEN, v->sum.last_hash);
	memcpy(v->sum.last_sealed_at, b->sealed_at, sizeof(v->sum.last_sealed_at));
	return 0;
}

int
auditfmt_verifier_line(
    struct auditfmt_verifier *v, const char *line, size_t len, char *err, size_t errlen)
{
	char msg[512];

	if (v->failed) {
		snprintf(err, errlen, "the verification failed already");
		return -1;
	}
	v->lineno++;
	if (v->lineno == 1) {
		if (len != strlen(AUDITFMT_HEADER) || memcmp(line, AUDITFMT_HEADER, len) != 0)
			return fail(v, err, errlen,
			    "not an audit journal (the first line must be "
			    "\"" AUDITFMT_HEADER "\")");
		return 0;
	}
	if (auditfmt_parse_line(&v->line, line, len, msg, sizeof(msg)) != 0)
		return fail(v, err, errlen, "%s", msg);
	switch (v->line.type) {
	case AUDITFMT_LINE_COMMENT:
		return 0;
	case AUDITFMT_LINE_ENTRY:
		if (v->cur_block == 0 && !v->in_block)
			v->from_genesis = v->line.entry.block == 1;
		if (verify_entry(v, line, err, errlen) != 0)
			return -1;
		if (auditfmt_digest_line(v->entries_digest, line, len) != 0)
			return fail(v, err, errlen, "could not hash it");
		return 0;
	case AUDITFMT_LINE_BALANCE:
		if (verify_balance(v, err, errlen) != 0)
			return -1;
		if (auditfmt_digest_line(v->balances_digest, line, len) != 0)
			return fail(v, err, errlen, "could not hash it");
		return 0;
	case AUDITFMT_LINE_BLOCK:
		return verify_block(v, err, errlen);
	}
	return fail(v, err, errlen, "not a line of the journal");
}

int
auditfmt_verifier_finish(
    struct auditfmt_verifier *v, struct auditfmt_summary *summary, char *err, size_t errlen)
{
	if (v->failed) {
		snprintf(err, errlen, "the verification failed");
		return -1;
	}
	if (v->lineno == 0)
		return fail(v, err, errlen, "empty: not an audit journal");
	if (v->in_block)
		return fail(v, err, errlen,
		    "the lines of block %" PRId64 " end without their block line", v->cur_block);
	*summary = v->sum;
	summary->watched.account = v->watch_account;
	summary->watched.block = v->sum.last_block;
	summary->watched.debits_posted = v->o_dp + v->w_dp;
	summary->watched.credits_posted = v->o_cp + v->w_cp;
	summary->watched.debits_pending = v->o_dq + v->w_dq;
	summary->watched.credits_pending = v->o_cq + v->w_cq;
	summary->from_genesis = v->from_genesis;
	return 0;
}
