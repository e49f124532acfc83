/*
 * audit: the background sealer of the journal. Every few seconds it asks the
 * database for the committed transfers not yet sealed (allot.seal_next), builds
 * their lines, hashes and chains them into a block, signs the block's hash with
 * the audit key (Ed25519) and hands it back (allot.seal_block), which writes it
 * only if the chain has not moved: several allotd may run a sealer, one block
 * is written at a time, and a sealer that dies mid-block leaves nothing behind.
 * The format is lib/auditfmt's; export and verification are the CLI's.
 */
#ifndef ALLOT_AUDIT_H
#define ALLOT_AUDIT_H

#include <stdio.h>

#include <openssl/evp.h>

struct event_base;
struct db;
struct audit;

/*
 * Reads the Ed25519 private key at path (PEM). Returns a new key that the caller
 * frees with EVP_PKEY_free, or NULL with the reason in err.
 */
EVP_PKEY *audit_key_load(const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Writes key's public half as PEM to f. Returns 0 or -1. */
int audit_key_print_public(EVP_PKEY *key, FILE *f) __attribute__((warn_unused_result));

/*
 * Returns a new sealer on base and db that seals every period_s seconds with key
 * (ownership taken, also on failure), or NULL. Freed with audit_free after the
 * loop stops.
 */
struct metrics;

/* Counts the blocks it seals in metrics (may be NULL). */
struct audit *audit_new(
    struct event_base *base, struct db *db, struct metrics *metrics, EVP_PKEY *key, int period_s);
void audit_free(struct audit *a);
/* Starts the timer. */
int audit_start(struct audit *a) __attribute__((warn_unused_result));
/* A new period from a reload; it applies from the next round. */
void audit_set_period(struct audit *a, int period_s);

#endif
