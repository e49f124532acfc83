/*
 * statement: Reports.GetStatement (see statement.h and README "Statements").
 */
#include "statement.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "allot/v1/reports.pb-c.h"
#include "db.h"
#include "log.h"
#include "pbjson.h"
#include "stmtfmt.h"
#include "strbuf.h"
#include "twirp.h"

/* Set once at start and cleared at shutdown, from the loop's thread only. */
static EVP_PKEY *statement_key;

int
statement_set_key(EVP_PKEY *key)
{
	if (EVP_PKEY_up_ref(key) != 1)
		return -1;
	EVP_PKEY_free(statement_key);
	statement_key = key;
	return 0;
}

void
statement_clear_key(void)
{
	EVP_PKEY_free(statement_key);
	statement_key = NULL;
}

static void
statement_done(const struct db_result *r, void *arg)
{
	struct twirp_call *call = arg;
	Allot__V1__GetStatementResponse resp = ALLOT__V1__GET_STATEMENT_RESPONSE__INIT;
	char sig[STMTFMT_SIG_HEX + 1], hash[STMTFMT_HASH_HEX + 1], err[256];
	const char *text, *cursor;
	json_t *obj;

	if (r->status != DB_OK) {
		twirp_reply_db_error(call, r);
		return;
	}
	if (db_result_rows(r) != 1 ||
	    (obj = json_loadb(db_result_value(r, 0, 0), db_result_length(r, 0, 0), 0, NULL)) ==
	        NULL) {
		twirp_reply_error(call, TWIRP_INTERNAL, "the statement's answer is not JSON");
		return;
	}
	text = json_string_value(json_object_get(obj, "statement"));
	if (text == NULL || stmtfmt_check(text, strlen(text), err, sizeof(err)) != 0) {
		log_errorx("statement: the database wrote no canonical statement: %s",
		    text == NULL ? "no text" : err);
		json_decref(obj);
		twirp_reply_error(call, TWIRP_INTERNAL, "the statement is not canonical");
		return;
	}
	if (stmtfmt_hash_hex(text, strlen(text), hash) != 0 ||
	    stmtfmt_sign(statement_key, text, strlen(text), sig) != 0) {
		json_decref(obj);
		twirp_reply_error(call, TWIRP_INTERNAL, "could not sign the statement");
		return;
	}
	resp.statement = (char *)text;
	resp.signature = sig;
	resp.statement_hash = hash;
	cursor = json_string_value(json_object_get(obj, "nextJobCursor"));
	resp.next_job_cursor = (char *)(cursor != NULL ? cursor : "");
	twirp_reply(call, &resp.base);
	json_decref(obj);
}

void
statement_get(struct twirp_call *call)
{
	struct strbuf sb;

	if (statement_key == NULL) {
		twirp_reply_error(call, TWIRP_FAILED_PRECONDITION,
		    "this allotd holds no audit key (audit_key), so it signs no statement");
		return;
	}
	strbuf_init(&sb);
	if (!pbjson_encode(call->request, &sb) || strbuf_failed(&sb)) {
		strbuf_cleanup(&sb);
		twirp_reply_error(call, TWIRP_INTERNAL, "out of memory");
		return;
	}
	twirp_sql_json(call, "rpc_get_statement", sb.data, statement_done);
	strbuf_cleanup(&sb);
}
