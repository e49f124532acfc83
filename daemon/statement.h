/*
 * statement: Reports.GetStatement. The database writes the statement's canonical
 * text (allot.rpc_get_statement, sql/migrations/0020); allotd signs its SHA-256
 * with the audit key (lib/stmtfmt) and answers the text, its hash and signature.
 */
#ifndef ALLOT_STATEMENT_H
#define ALLOT_STATEMENT_H

#include <openssl/evp.h>

struct twirp_call;

/*
 * The key statements are signed with: a reference taken (EVP_PKEY_up_ref) from the
 * audit key (not NULL). Without one GetStatement is failed_precondition. Returns 0
 * or -1.
 */
int statement_set_key(EVP_PKEY *key) __attribute__((warn_unused_result));
/* Drops the key's reference, at shutdown. */
void statement_clear_key(void);

void statement_get(struct twirp_call *call);

#endif
