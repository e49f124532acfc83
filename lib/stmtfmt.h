/*
 * stmtfmt: a statement's canonical text (README "Statements", the format byte for
 * byte), its signature by the audit key, and its two files: CSV (the canonical
 * lines as CSV records, then a `signature` record) and JSON (its sections, their
 * columns and rows, the hash and the signature). Either file gives back the exact
 * canonical bytes, so `allot statement verify` checks one signature for both (and
 * for the HTML file of lib/stmthtml, which embeds the text).
 *
 * The canonical text: UTF-8, LF-ended lines of TAB-separated fields escaped as in
 * the audit journal (\\ \t \n \r). Line 1 is `allot statement`, TAB, `1`. Then
 * sections: a `columns` line (`columns`, the section's name, its column names)
 * followed by its rows (the section's name, one field per column).
 */
#ifndef ALLOT_STMTFMT_H
#define ALLOT_STMTFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "auditfmt.h"
#include "strbuf.h"

#define STMTFMT_HEADER "allot statement\t1\n"
#define STMTFMT_FORMAT "allot statement 1"
#define STMTFMT_SIG_HEX (2 * AUDITFMT_SIG_LEN)
#define STMTFMT_HASH_HEX (2 * AUDITFMT_HASH_LEN)

/* Writes the printf-formatted message into err[0..errlen) (nothing when err is NULL). */
void stmtfmt_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Checks that text[0..len) is canonical: the header, then sections as above (a
 * row's name is its section's and it has one field per column; no raw CR, no
 * empty line, every line LF-ended). Returns 0, or -1 with the line and what is
 * wrong in err.
 */
int stmtfmt_check(const char *text, size_t len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Writes SHA-256 of text[0..len) as 64 hex digits and a NUL into hex. Returns 0 or -1. */
int stmtfmt_hash_hex(const char *text, size_t len, char hex[STMTFMT_HASH_HEX + 1])
    __attribute__((warn_unused_result));

/* Signs SHA-256 of text[0..len) with key (Ed25519): 128 hex digits and a NUL. 0 or -1. */
int stmtfmt_sign(EVP_PKEY *key, const char *text, size_t len, char sig[STMTFMT_SIG_HEX + 1])
    __attribute__((warn_unused_result));

/* Appends the CSV file of canonical text (checked) and its signature to out. 0 or -1. */
int stmtfmt_to_csv(const char *text, size_t len, const char *sig, struct strbuf *out, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* Returns the JSON file's object for canonical text (checked), or NULL with err. */
json_t *stmtfmt_to_json(const char *text, size_t len, const char *sig, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Rebuilds the canonical text of a CSV, JSON or HTML statement file (JSON when
 * its first non-blank byte is '{', HTML when it is '<': lib/stmthtml) into
 * canonical, and its signature's hex into sig.
 * Returns 0, or -1 with what is wrong in err.
 */
int stmtfmt_from_file(const char *data, size_t len, struct strbuf *canonical,
    char sig[STMTFMT_SIG_HEX + 1], char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Verifies a statement file with the audit key's public half: rebuilt, checked,
 * hashed (a JSON file's statementHash must match) and its signature checked.
 * Returns 0, or -1 naming what failed in err.
 */
int stmtfmt_verify(EVP_PKEY *pub, const char *data, size_t len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
