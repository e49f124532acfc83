/*
 * auth: principals from the database, kept in memory. The certificate check
 * itself is tls.c's; which role may call which route is the route table's
 * (rpc.c), applied once by twirp.c before any handler.
 *
 * The whole table is read through the pool into a new array sorted by subject,
 * which replaces the old one in the query's callback, on the loop: a lookup
 * sees the old table or the new, never a mix. A load runs at start, on every
 * notification (those that arrive during a load fold into one more load after
 * it), and whenever the listener is READY again, since notifications sent while
 * it was away are lost. While the listener is down, or after a load failed, the
 * table is read again every AUTH_RETRY_MS, so that a removed principal is not
 * honoured for long even then. A load that fails keeps the table in use.
 *
 * A subject the table does not hold is not refused at once: the principal may
 * have been created a moment ago, its notification not in yet (or answered by
 * another allotd). Such a lookup waits for a load that starts after it, and is
 * answered from that table: a principal is known from the moment its creation
 * committed, on every allotd. Those lookups fold into one load at a time, so
 * clients the table does not know cost at most one read of it in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth.h"
#include "db.h"
#include "log.h"

#define AUTH_RETRY_MS 1000
#define AUTH_WAIT_MAX 4096

#define PRINCIPALS_SQL "SELECT subject, role, coalesce(scope, '') FROM allot.principals"

static const char *const role_names[] = {
    [ROLE_NONE] = "none",
    [ROLE_ADMIN] = "admin",
    [ROLE_COLLECTOR] = "collector",
    [ROLE_SCHEDULER] = "scheduler",
    [ROLE_PROJECT] = "project",
    [ROLE_AUDITOR] = "auditor",
};

struct entry {
	const char *subject; /* these three point into the table's strings */
	const char *role_name;
	const char *scope;
	enum role role; /* ROLE_NONE: a role this allotd does not know */
};

struct table {
	size_t n;
	struct entry *entries; /* sorted by subject, in strcmp order */
	char *strings;
};

/* A request that came before the first load ended. */
struct waiter {
	struct waiter *next;
	auth_cb cb;
	void *arg;
	char subject[sizeof(((struct principal *)0)->subject)];
};

struct auth {
	struct db *db;
	struct db_listener *listener;
	struct event *retry;
	struct table *table; /* NULL until the first load succeeded */
	bool loading;        /* a load is queued or running in the pool */
	bool dirty;          /* a change was notified after the running load began */
	bool failing;        /* the last load failed */
	bool error_logged;   /* an error of this run of failures was logged */
	struct waiter *waiters, *waiters_tail; /* answered when the running load ends */
	struct waiter *later, *later_tail;     /* lookups that missed: for the next load */
	int nwaiters;                          /* in both lists */
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

static void
table_free(struct table *t)
{
	if (t == NULL)
		return;
	free(t->entries);
	free(t->strings);
	free(t);
}

static int
entry_cmp(const void *x, const void *y)
{
	const struct entry *a = x, *b = y;

	return strcmp(a->subject, b->subject);
}

static char *
copy_string(char **at, const char *s)
{
	char *start = *at;
	size_t n = strlen(s) + 1;

	memcpy(start, s, n);
	*at += n;
	return start;
}

/* Returns a new table of the rows (subject, role, scope) of r, or NULL when out of memory. */
static struct table *
table_new(const struct db_result *r)
{
	struct table *t;
	size_t n = (size_t)db_result_rows(r), size = 1;
	char *at;

	for (size_t i = 0; i < n; i++)
		for (int col = 0; col < 3; col++)
			size += strlen(db_result_value(r, (int)i, col)) + 1;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->n = n;
	t->entries = calloc(n > 0 ? n : 1, sizeof(*t->entries));
	t->strings = malloc(size);
	if (t->entries == NULL || t->strings == NULL) {
		table_free(t);
		return NULL;
	}
	at = t->strings;
	for (size_t i = 0; i < n; i++) {
		struct entry *e = &t->entries[i];

		e->subject = copy_string(&at, db_result_value(r, (int)i, 0));
		e->role_name = copy_string(&at, db_result_value(r, (int)i, 1));
		e->scope = copy_string(&at, db_result_value(r, (int)i, 2));
		if (!auth_role_parse(e->role_name, &e->role))
			e->role = ROLE_NONE;
	}
	if (n > 1)
		qsort(t->entries, n, sizeof(*t->entries), entry_cmp);
	return t;
}

static enum auth_status
table_lookup(const struct table *t, const char *subject, struct principal *p)
{
	struct entry key = {.subject = subject};
	const struct entry *e;

	e = t->n > 0 ? bsearch(&key, t->entries, t->n, sizeof(*t->entries), entry_cmp) : NULL;
	if (e == NULL)
		return AUTH_UNKNOWN;
	if (e->role == ROLE_NONE) {
		log_errorx("principal \"%s\" has unknown role \"%s\"", e->subject, e->role_name);
		return AUTH_FAILED;
	}
	snprintf(p->subject, sizeof(p->subject), "%s", e->subject);
	p->role = e->role;
	snprintf(p->scope, sizeof(p->scope), "%s", e->scope);
	return AUTH_FOUND;
}

/*
 * Answers the lookups that waited for the load that just ended (or could not
 * start): from the table, or with failure when there is none yet.
 */
static void
auth_answer_waiters(struct auth *a, enum auth_status failure)
{
	struct waiter *w = a->waiters;

	/* Detached first: an answer may start requests that look up again. */
	a->waiters = a->waiters_tail = NULL;
	for (struct waiter *c = w; c != NULL; c = c->next)
		a->nwaiters--;
	while (w != NULL) {
		struct waiter *next = w->next;
		struct principal p;
		enum auth_status st =
		    a->table != NULL ? table_lookup(a->table, w->subject, &p) : failure;

		w->cb(st, st == AUTH_FOUND ? &p : NULL, w->arg);
		free(w);
		w = next;
	}
}

static void
auth_schedule_retry(struct auth *a)
{
	struct timeval tv = {AUTH_RETRY_MS / 1000, (AUTH_RETRY_MS % 1000) * 1000};

	if (!evtimer_pending(a->retry, NULL) && evtimer_add(a->retry, &tv) != 0)
		log_errorx("could not schedule a new reading of the principals");
}

static void auth_loaded_cb(const struct db_result *r, void *arg);

/* Moves the lookups that wait for the next load to those that the running one answers. */
static void
auth_take_later(struct auth *a)
{
	if (a->later == NULL)
		return;
	if (a->waiters_tail != NULL)
		a->waiters_tail->next = a->later;
	else
		a->waiters = a->later;
	a->waiters_tail = a->later_tail;
	a->later = a->later_tail = NULL;
}

/* Starts a load, or when one is running, asks for another after it. */
static void
auth_reload(struct auth *a)
{
	if (a->loading) {
		a->dirty = true;
		return;
	}
	a->dirty = false;
	evtimer_del(a->retry);
	if (db_query(a->db, PRINCIPALS_SQL, 0, NULL, auth_loaded_cb, a) != 0) {
		log_debug("could not read the principals: the database is unavailable");
		a->failing = true;
		/* The lookups that missed get the table's answer: it is all there is. */
		auth_take_later(a);
		auth_answer_waiters(a, AUTH_UNAVAILABLE);
		auth_schedule_retry(a);
		return;
	}
	a->loading = true;
	/* This load began after they missed: its table answers them. */
	auth_take_later(a);
}

static void
auth_loaded_cb(const struct db_result *r, void *arg)
{
	struct auth *a = arg;
	struct table *t = NULL;
	enum auth_status failure = AUTH_UNAVAILABLE;

	a->loading = false;
	if (r->status == DB_OK && (t = table_new(r)) != NULL) {
		if (a->table == NULL || a->failing)
			log_info("loaded %zu principals", t->n);
		else
			log_debug("loaded %zu principals", t->n);
		table_free(a->table);
		a->table = t;
		a->failing = false;
		a->error_logged = false;
	} else if (r->status == DB_UNAVAILABLE || strncmp(r->sqlstate, "08", 2) == 0 ||
	    strncmp(r->sqlstate, "57P", 3) == 0) {
		/* The server went away (or is shutting down) under the load: the pool says so. */
		log_debug("could not read the principals: %s", r->message);
		a->failing = true;
	} else {
		/* Once per run of failures: the retries would say the same every second. */
		if (!a->error_logged)
			log_errorx("could not read the principals%s: %s",
			    a->table != NULL ? ", keeping those read before" : "",
			    r->status == DB_OK ? "out of memory" : r->message);
		failure = AUTH_FAILED;
		a->failing = true;
		a->error_logged = true;
	}
	auth_answer_waiters(a, failure);
	if (a->dirty)
		auth_reload(a);
	else if (a->failing || !db_listener_is_up(a->listener))
		auth_schedule_retry(a);
}

static void
auth_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	auth_reload(arg);
}

static void
auth_listen_cb(enum db_listen_event event, const char *payload, void *arg)
{
	struct auth *a = arg;

	(void)payload;
	switch (event) {
	case DB_LISTEN_READY:
		/* What changed while nobody listened was not notified: read it all again. */
	case DB_LISTEN_NOTIFY:
		auth_reload(a);
		return;
	case DB_LISTEN_LOST:
		auth_schedule_retry(a);
		return;
	}
}

struct auth *
auth_new(struct event_base *base, struct db *db)
{
	struct auth *a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	a->db = db;
	a->listener = db_listener_new(db, AUTH_CHANNEL, auth_listen_cb, a);
	a->retry = evtimer_new(base, auth_retry_cb, a);
	if (a->listener == NULL || a->retry == NULL) {
		auth_free(a);
		return NULL;
	}
	return a;
}

void
auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	db_listener_free(a->listener);
	if (a->retry != NULL)
		event_free(a->retry);
	table_free(a->table);
	auth_take_later(a);
	while (a->waiters != NULL) {
		struct waiter *w = a->waiters;

		a->waiters = w->next;
		free(w);
	}
	free(a);
}

int
auth_start(struct auth *a)
{
	/*
	 * The first load does not wait for the listener: requests are served as soon as
	 * the pool answers, and the listener's READY reads the table again.
	 */
	auth_reload(a);
	return db_listener_start(a->listener);
}

/* A new waiter for subject, or NULL when too many wait or memory is exhausted. */
static struct waiter *
waiter_new(struct auth *a, const char *subject, auth_cb cb, void *arg)
{
	struct waiter *w;

	if (a->nwaiters >= AUTH_WAIT_MAX || (w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->cb = cb;
	w->arg = arg;
	snprintf(w->subject, sizeof(w->subject), "%s", subject);
	a->nwaiters++;
	return w;
}

enum auth_status
auth_lookup(struct auth *a, const char *subject, struct principal *p, auth_cb cb, void *arg)
{
	struct waiter *w;
	enum auth_status st;

	if (a->table == NULL) {
		/* Before the first load: any load that is on its way answers. */
		if (!a->loading || (w = waiter_new(a, subject, cb, arg)) == NULL)
			return AUTH_UNAVAILABLE;
		if (a->waiters_tail != NULL)
			a->waiters_tail->next = w;
		else
			a->waiters = w;
		a->waiters_tail = w;
		return AUTH_PENDING;
	}
	if ((st = table_lookup(a->table, subject, p)) != AUTH_UNKNOWN)
		return st;
	/* Unknown to this table: perhaps not yet. A load that starts from now on tells. */
	if ((w = waiter_new(a, subject, cb, arg)) == NULL)
		return AUTH_UNKNOWN;
	if (a->later_tail != NULL)
		a->later_tail->next = w;
	else
		a->later = w;
	a->later_tail = w;
	if (a->loading)
		a->dirty = true; /* the running load may have begun before: one more after it */
	else
		auth_reload(a);
	return AUTH_PENDING;
}
