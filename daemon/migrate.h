/*
 * migrate: start-up tasks on the database, run before (never inside) the event
 * loop: applying the schema's migrations, and adding the first principal.
 */
#ifndef ALLOT_MIGRATE_H
#define ALLOT_MIGRATE_H

#include <stddef.h>

struct migration {
	int version;
	const char *name; /* "0001_core" */
	const char *sql;
};

/* Embedded at build time from sql/migrations (gen_migrations.c). */
extern const struct migration migrations[];
extern const size_t nmigrations;

/*
 * Applies the migrations not yet recorded in allot.schema_migrations, each in
 * one transaction, under an advisory lock so that concurrent runs wait for each
 * other. Prints one line per migration applied. Returns 0, or -1 with err set.
 */
int migrate_run(const char *conninfo, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Adds (or updates) the principal subject with role and scope (NULL or "" for
 * none). Returns 0, or -1 with err set.
 */
int migrate_add_principal(const char *conninfo, const char *subject, const char *role,
    const char *scope, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
