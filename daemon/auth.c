/*
 * auth: principals from the database. The certificate check itself is tls.c's;
 * which role may call which route is the route table's (rpc.c), applied once by
 * twirp.c before any handler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "db.h"
#include "log.h"

static const char *const role_names[] = {
    [ROLE_NONE] = "none",
    [ROLE_ADMIN] = "admin",
    [ROLE_COLLECTOR] = "collector",
    [ROLE_SCHEDULER] = "scheduler",
    [ROLE_PROJECT] = "project",
    [ROLE_AUDITOR] = "auditor",
};

const char *
auth_role_name(enum role role)
{
	if ((unsigned)role >= sizeof(role_names) / sizeof(role_names[0]))
		return "none";
	return role_names[role];
}

bool
auth_role_parse(const char *name, enum role *role)
{
	for (size_t i = ROLE_ADMIN; i < sizeof(role_names) / sizeof(role_names[0]); i++) {
		if (strcmp(name, role_names[i]) == 0) {
			*role = (enum role)i;
			return true;
		}
	}
	return false;
}

struct lookup {
	auth_cb cb;
	void *arg;
	struct principal p;
};

static void
auth_result_cb(const struct db_result *r, void *arg)
{
	struct lookup *l = arg;

	if (r->status == DB_UNAVAILABLE) {
		l->cb(AUTH_UNAVAILABLE, NULL, l->arg);
	} else if (r->status == DB_ERROR) {
		log_errorx("could not look up principal \"%s\": %s", l->p.subject, r->message);
		l->cb(AUTH_FAILED, NULL, l->arg);
	} else if (PQntuples(r->res) != 1) {
		l->cb(AUTH_UNKNOWN, NULL, l->arg);
	} else if (!auth_role_parse(PQgetvalue(r->res, 0, 0), &l->p.role)) {
		log_errorx("principal \"%s\" has unknown role \"%s\"", l->p.subject,
		    PQgetvalue(r->res, 0, 0));
		l->cb(AUTH_FAILED, NULL, l->arg);
	} else {
		snprintf(l->p.scope, sizeof(l->p.scope), "%s", PQgetvalue(r->res, 0, 1));
		l->cb(AUTH_FOUND, &l->p, l->arg);
	}
	free(l);
}

int
auth_lookup(struct db *db, const char *subject, auth_cb cb, void *arg)
{
	struct lookup *l;
	const char *params[1] = {subject};

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return -1;
	l->cb = cb;
	l->arg = arg;
	snprintf(l->p.subject, sizeof(l->p.subject), "%s", subject);
	if (db_query(db,
	        "SELECT role, coalesce(scope, '') FROM allot.principals WHERE subject = $1", 1,
	        params, auth_result_cb, l) != 0) {
		free(l);
		return -1;
	}
	return 0;
}
