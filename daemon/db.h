/*
 * db: a pool of non-blocking libpq connections driven by the event loop.
 *
 * Every query of the serving path goes through here: nothing else in the daemon
 * calls libpq on the loop. A query waits in a bounded queue until a connection
 * is idle; a connection that breaks is closed and reconnected with exponential
 * backoff, and the queries that were on it or waiting fail as unavailable.
 */
#ifndef ALLOT_DB_H
#define ALLOT_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

struct event_base;
struct db;

enum db_status {
	DB_OK,          /* the statement ran: res holds its result */
	DB_ERROR,       /* the statement failed: sqlstate and message say why */
	DB_UNAVAILABLE, /* no connection to PostgreSQL: nothing ran */
};

struct db_result {
	enum db_status status;
	PGresult *res;        /* DB_OK and DB_ERROR; owned by db, cleared after the callback */
	const char *sqlstate; /* DB_ERROR: five characters; "" otherwise */
	const char *message;  /* DB_ERROR, DB_UNAVAILABLE: primary message */
};

/* Reading a DB_OK result: its rows, and the text of one value ("" for NULL). */
static inline int
db_result_rows(const struct db_result *r)
{
	return PQntuples(r->res);
}

static inline const char *
db_result_value(const struct db_result *r, int row, int col)
{
	return PQgetvalue(r->res, row, col);
}

static inline size_t
db_result_length(const struct db_result *r, int row, int col)
{
	return (size_t)PQgetlength(r->res, row, col);
}

/* Called once per query, from the loop, never from inside db_query. */
typedef void (*db_result_cb)(const struct db_result *result, void *arg);

struct db_stats {
	int connections; /* configured */
	int connected;   /* idle or busy */
	int busy;
	int queued;
	unsigned long long queries;
	unsigned long long failures; /* DB_UNAVAILABLE answers */
	unsigned long long reconnects;
};

/*
 * Returns a new pool of pool_size connections to conninfo (a libpq connection
 * string; sessions run with TimeZone=UTC), not yet connecting. The caller frees
 * it with db_free after the loop stops.
 */
struct db *db_new(struct event_base *base, const char *conninfo, int pool_size);
void db_free(struct db *db);

/* Starts connecting every connection of the pool on the loop. */
int db_start(struct db *db) __attribute__((warn_unused_result));

/* Longest wait between reconnection attempts; takes effect at the next failure. */
void db_set_reconnect_max(struct db *db, int seconds);

/*
 * Queues sql with nparams text parameters (copied; NULL is SQL NULL) and calls
 * cb(result, arg) when it is done. Returns 0, or -1 when the pool has no
 * connection that is up or coming up, or the queue is full: then cb is not
 * called and the caller answers unavailable at once.
 */
int db_query(struct db *db, const char *sql, int nparams, const char *const *params,
    db_result_cb cb, void *arg) __attribute__((warn_unused_result));

/* True when at least one connection is up. */
bool db_is_up(const struct db *db);
void db_get_stats(const struct db *db, struct db_stats *stats);

#endif
