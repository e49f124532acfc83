/*
 * auth: who a request comes from. A verified client certificate's subject is
 * looked up in allot.principals, which gives a role and, for the roles that have
 * one, a scope (a site or a project).
 */
#ifndef ALLOT_AUTH_H
#define ALLOT_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct db;

enum role {
	ROLE_NONE = 0,
	ROLE_ADMIN,
	ROLE_COLLECTOR, /* scope: a site */
	ROLE_SCHEDULER, /* scope: a site */
	ROLE_PROJECT,   /* scope: a project */
	ROLE_AUDITOR,
};

#define ROLE_BIT(r) (1u << (r))

struct principal {
	char subject[512];
	enum role role;
	char scope[128];
};

/* "admin", "collector", ...; "none" for ROLE_NONE. */
const char *auth_role_name(enum role role);
/* Reads a role name as stored in the database; false for anything else. */
bool auth_role_parse(const char *name, enum role *role);

/*
 * Called with the principal filled in (found) or not (unknown subject), or with
 * an error: unavailable (no database) or failed (the lookup itself failed).
 */
enum auth_status {
	AUTH_FOUND,
	AUTH_UNKNOWN,
	AUTH_UNAVAILABLE,
	AUTH_FAILED,
};
typedef void (*auth_cb)(enum auth_status status, const struct principal *p, void *arg);

/*
 * Looks subject up on db and calls cb from the loop. Returns 0, or -1 when the
 * database cannot take the query (cb is not called: answer unavailable).
 */
int auth_lookup(struct db *db, const char *subject, auth_cb cb, void *arg)
    __attribute__((warn_unused_result));

#endif
