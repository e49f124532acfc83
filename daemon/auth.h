/*
 * auth: who a request comes from. A verified client certificate's subject is
 * looked up in allotd's copy of allot.principals, which gives a role and, for
 * the roles that have one, a scope (a site or a project). The copy is read at
 * start, again on every notification that the table changed (a trigger
 * NOTIFYs allot_principals), and again after every reconnection of the
 * listening connection, so a lookup is a search in memory.
 */
#ifndef ALLOT_AUTH_H
#define ALLOT_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct db;
struct event_base;
struct auth;

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

/* The channel that allot.principals' trigger notifies (sql/migrations/0005). */
#define AUTH_CHANNEL "allot_principals"

enum auth_status {
	AUTH_FOUND,       /* the principal is filled in */
	AUTH_UNKNOWN,     /* no principal has this subject */
	AUTH_UNAVAILABLE, /* the principals could not be read yet (no database) */
	AUTH_FAILED,      /* reading them failed, or this one's role is not one allotd knows */
	AUTH_PENDING,     /* auth_lookup only: the answer comes later, through its callback */
};
typedef void (*auth_cb)(enum auth_status status, const struct principal *p, void *arg);

/*
 * Returns a new, empty principal cache that reads allot.principals through the
 * pool db and listens for changes on a connection of its own, on loop base; or
 * NULL when out of memory. Freed with auth_free, before db.
 */
struct auth *auth_new(struct event_base *base, struct db *db);
void auth_free(struct auth *a);

/* Starts the first load and the listener; call it after db_start. */
int auth_start(struct auth *a) __attribute__((warn_unused_result));

/*
 * Looks subject up. Once the principals have been loaded once, the answer is
 * immediate, from memory: AUTH_FOUND (and *p filled in), AUTH_UNKNOWN or
 * AUTH_FAILED; cb is not called. Before that: AUTH_PENDING while the first load
 * is on its way, and then cb(status, principal, arg) is called from the loop
 * when it ends; or AUTH_UNAVAILABLE at once when no load is on its way (the
 * database is down) or too many requests wait already. Call it from the loop.
 */
enum auth_status auth_lookup(
    struct auth *a, const char *subject, struct principal *p, auth_cb cb, void *arg);

#endif
