/*
 * db: a pool of non-blocking libpq connections driven by the event loop.
 *
 * Every query of the serving path goes through here: nothing else in the daemon
 * calls libpq on the loop. A query waits in a bounded queue until a connection
 * is idle; a connection that breaks is closed and reconnected with exponential
 * backoff, and the queries that were on it or waiting fail as unavailable.
 *
 * A listener is one more connection of its own, outside the pool, that runs
 * LISTEN on a channel and hands the channel's notifications to its owner.
 */
#ifndef ALLOT_DB_H
#define ALLOT_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

struct event_base;
struct db;
struct db_listener;

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

/* Rows and columns of a DB_OK result; 0 for any other. */
int db_result_rows(const struct db_result *r);
int db_result_columns(const struct db_result *r);
/* The text of a field, "" for NULL or out of range; valid until the callback returns. */
const char *db_result_value(const struct db_result *r, int row, int column);
/* The length in bytes of that value; 0 out of range. */
size_t db_result_length(const struct db_result *r, int row, int column);

/* True when at least one connection is up. */
bool db_is_up(const struct db *db);
void db_get_stats(const struct db *db, struct db_stats *stats);

enum db_listen_event {
	DB_LISTEN_READY,  /* LISTEN is in effect on a new connection (the first, or after a
	                     reconnect): whatever was missed meanwhile must be read again */
	DB_LISTEN_NOTIFY, /* a notification on the channel; payload is its payload */
	DB_LISTEN_LOST,   /* the connection that was READY broke; reconnecting with backoff */
};

/*
 * Called from the loop, never from inside db_listener_start. payload is NULL but for
 * DB_LISTEN_NOTIFY, and valid during the call only. The callback may queue queries on
 * the pool; it must not free the listener.
 */
typedef void (*db_listen_cb)(enum db_listen_event event, const char *payload, void *arg);

/*
 * Returns a new listener on channel (a lower-case SQL identifier: [a-z_][a-z0-9_]*)
 * over one connection of its own to db's database, or NULL (bad channel, out of
 * memory). It takes db's loop, connection string and reconnection bounds, and must be
 * freed with db_listener_free before db is. Nothing happens until db_listener_start.
 */
struct db_listener *db_listener_new(struct db *db, const char *channel, db_listen_cb cb, void *arg);
void db_listener_free(struct db_listener *l);

/* Starts connecting; the connection is kept up, and remade after a failure, until freed. */
int db_listener_start(struct db_listener *l) __attribute__((warn_unused_result));

/* True while LISTEN is in effect, between DB_LISTEN_READY and DB_LISTEN_LOST. */
bool db_listener_is_up(const struct db_listener *l);

#endif
