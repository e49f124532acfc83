/*
 * migrate: synchronous libpq, for the command-line tasks of allotd only
 * (--migrate, --add-principal). The serving path never comes here.
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "migrate.h"

/* Any constant shared by every allotd: serializes concurrent migrations. */
#define MIGRATE_LOCK_KEY "4242017001"

static PGconn *
connect_db(const char *conninfo, char *err, size_t errlen)
{
	PGconn *pg = PQconnectdb(conninfo);

	if (PQstatus(pg) != CONNECTION_OK) {
		snprintf(err, errlen, "could not connect to the database: %s",
		    pg != NULL ? PQerrorMessage(pg) : "out of memory");
		err[strcspn(err, "\n")] = '\0';
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

/* Runs sql (with optional text parameters); returns its result when it succeeded, else NULL. */
static PGresult *
run(PGconn *pg, const char *sql, int nparams, const char *const *params, const char *what,
    char *err, size_t errlen)
{
	PGresult *res = nparams > 0 ? PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0)
	                            : PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	snprintf(err, errlen, "%s failed: %s", what,
	    res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(pg));
	err[strcspn(err, "\n")] = '\0';
	PQclear(res);
	return NULL;
}

static int
exec_ok(PGconn *pg, const char *sql, int nparams, const char *const *params, const char *what,
    char *err, size_t errlen)
{
	PGresult *res = run(pg, sql, nparams, params, what, err, errlen);

	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
migrate_run(const char *conninfo, char *err, size_t errlen)
{
	PGconn *pg;
	int applied = 0, rc = -1;

	if ((pg = connect_db(conninfo, err, errlen)) == NULL)
		return -1;
	if (exec_ok(pg, "SET client_min_messages = warning", 0, NULL, "setup", err, errlen) != 0 ||
	    exec_ok(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, "locking", err,
	        errlen) != 0 ||
	    exec_ok(pg,
	        "CREATE SCHEMA IF NOT EXISTS allot;"
	        "CREATE TABLE IF NOT EXISTS allot.schema_migrations ("
	        "  version integer PRIMARY KEY,"
	        "  name text NOT NULL,"
	        "  applied_at timestamptz NOT NULL DEFAULT now())",
	        0, NULL, "creating allot.schema_migrations", err, errlen) != 0)
		goto out;
	for (size_t i = 0; i < nmigrations; i++) {
		const struct migration *m = &migrations[i];
		char version[16], what[128];
		const char *params[2] = {version, m->name};
		PGresult *res;
		int done;

		snprintf(version, sizeof(version), "%d", m->version);
		snprintf(what, sizeof(what), "migration %s", m->name);
		if (exec_ok(pg, "BEGIN", 0, NULL, what, err, errlen) != 0)
			goto out;
		res = run(pg, "SELECT 1 FROM allot.schema_migrations WHERE version = $1", 1, params,
		    what, err, errlen);
		if (res == NULL)
			goto rollback;
		done = PQntuples(res) > 0;
		PQclear(res);
		if (done) {
			if (exec_ok(pg, "COMMIT", 0, NULL, what, err, errlen) != 0)
				goto out;
			continue;
		}
		if (exec_ok(pg, m->sql, 0, NULL, what, err, errlen) != 0 ||
		    exec_ok(pg,
		        "INSERT INTO allot.schema_migrations (version, name) VALUES ($1, $2)", 2,
		        params, what, err, errlen) != 0 ||
		    exec_ok(pg, "COMMIT", 0, NULL, what, err, errlen) != 0)
			goto rollback;
		printf("applied migration %s\n", m->name);
		applied++;
	}
	if (applied == 0)
		printf("schema is up to date (%zu migrations)\n", nmigrations);
	rc = 0;
	goto out;
rollback:
	PQclear(PQexec(pg, "ROLLBACK"));
out:
	PQfinish(pg);
	return rc;
}

int
migrate_add_principal(const char *conninfo, const char *subject, const char *role,
    const char *scope, char *err, size_t errlen)
{
	const char *params[3] = {subject, role, scope != NULL ? scope : ""};
	PGconn *pg;
	int rc;

	if ((pg = connect_db(conninfo, err, errlen)) == NULL)
		return -1;
	rc = exec_ok(pg,
	    "INSERT INTO allot.principals (subject, role, scope) VALUES ($1, $2, NULLIF($3, ''))"
	    " ON CONFLICT (subject) DO UPDATE SET role = excluded.role, scope = excluded.scope",
	    3, params, "adding the principal", err, errlen);
	PQfinish(pg);
	return rc;
}
