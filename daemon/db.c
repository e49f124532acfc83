/*
 * db: asynchronous libpq on the event loop.
 *
 * Each connection is a small state machine: DOWN (waiting for its reconnect
 * timer), CONNECTING (PQconnectPoll steps on socket readiness), IDLE (watching
 * its socket, so a server that goes away is noticed at once) and BUSY (one query
 * sent with PQsendQueryParams, flushed and read without blocking). Queries wait
 * in a FIFO when every connection is busy. This module does not know SQL or
 * what a result means: callers interpret results and clear nothing themselves.
 *
 * A listener's connection is the same state machine outside the pool: once
 * connected it is BUSY with its own LISTEN, then IDLE for good, handing what
 * PQnotifies returns to its owner after each read. It takes no queries, and its
 * failures fail none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "db.h"
#include "log.h"

#define DB_QUEUE_MAX 4096
#define DB_BACKOFF_MIN_MS 100

enum conn_state {
	CONN_DOWN,
	CONN_CONNECTING,
	CONN_IDLE,
	CONN_BUSY,
};

struct query {
	struct query *next;
	char *sql;
	int nparams;
	char **params;
	db_result_cb cb;
	void *arg;
};

struct conn {
	struct db *db;
	struct db_listener *listener; /* NULL for the pool's connections */
	char name[96];                /* for the log: "database connection 2" */
	enum conn_state state;
	PGconn *pg;
	struct event *io; /* on PQsocket(pg); re-created when the socket changes */
	int io_fd;
	struct event *retry; /* reconnect timer */
	int backoff_ms;
	struct query *query; /* BUSY: the query on the wire */
	PGresult *result;    /* BUSY: its first result, kept until the last is read */
};

struct db {
	struct event_base *base;
	char *conninfo;
	int nconns;
	struct conn *conns;
	struct query *head, *tail;
	int queued;
	struct query *failed; /* answered unavailable on the next loop turn */
	struct event *deliver;
	int reconnect_max_ms;
	unsigned long long queries, failures, reconnects;
};

struct db_listener {
	struct conn conn;
	char *channel;
	char *listen_sql;
	db_listen_cb cb;
	void *arg;
	bool listening; /* READY delivered, LOST not yet */
};

static void conn_io_cb(evutil_socket_t fd, short what, void *arg);
static void conn_connect(struct conn *c);
static void db_dispatch(struct db *db);
static void listener_connected(struct conn *c);
static void listener_listened(struct conn *c, enum db_status st, PGresult *r);
static void listener_deliver(struct conn *c);

static void
query_free(struct query *q)
{
	if (q == NULL)
		return;
	for (int i = 0; i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	free(q->sql);
	free(q);
}

static void
query_finish(struct query *q, enum db_status status, PGresult *res, const char *message)
{
	struct db_result r = {.status = status, .res = res, .sqlstate = "", .message = ""};

	if (res != NULL && status == DB_ERROR) {
		const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		r.sqlstate = s != NULL ? s : "";
		r.message = m != NULL ? m : PQresultErrorMessage(res);
	} else if (message != NULL) {
		r.message = message;
	}
	q->cb(&r, q->arg);
	query_free(q);
}

/* Watches the connection's socket for the given events, re-creating the event if the socket
 * changed (libpq may open a new one for each host it tries). */
static int
conn_watch(struct conn *c, short what)
{
	int fd = PQsocket(c->pg);

	if (fd < 0)
		return -1;
	if (c->io != NULL && (c->io_fd != fd || event_get_events(c->io) != (what | EV_PERSIST))) {
		event_free(c->io);
		c->io = NULL;
	}
	if (c->io == NULL) {
		c->io = event_new(c->db->base, fd, what | EV_PERSIST, conn_io_cb, c);
		if (c->io == NULL)
			return -1;
		c->io_fd = fd;
	}
	return event_add(c->io, NULL);
}

static void
conn_schedule_retry(struct conn *c)
{
	struct timeval tv;

	tv.tv_sec = c->backoff_ms / 1000;
	tv.tv_usec = (c->backoff_ms % 1000) * 1000;
	if (evtimer_add(c->retry, &tv) != 0)
		log_errorx("could not schedule reconnection of %s", c->name);
	c->backoff_ms *= 2;
	if (c->backoff_ms > c->db->reconnect_max_ms)
		c->backoff_ms = c->db->reconnect_max_ms;
}

/* True when no connection is up or on its way up: queries cannot be served soon. */
static bool
db_all_down(const struct db *db)
{
	for (int i = 0; i < db->nconns; i++)
		if (db->conns[i].state != CONN_DOWN)
			return false;
	return true;
}

/* Failures are answered from the loop, never from inside the call (db_query) that found them. */
static void
db_defer_fail(struct db *db, struct query *q)
{
	db->failures++;
	q->next = db->failed;
	db->failed = q;
	event_active(db->deliver, EV_TIMEOUT, 0);
}

static void
db_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db *db = arg;
	struct query *q;

	(void)fd;
	(void)what;
	while ((q = db->failed) != NULL) {
		db->failed = q->next;
		query_finish(q, DB_UNAVAILABLE, NULL, "database is unavailable");
	}
}

static void
db_fail_queue(struct db *db)
{
	struct query *q;

	while ((q = db->head) != NULL) {
		db->head = q->next;
		db->queued--;
		db_defer_fail(db, q);
	}
	db->tail = NULL;
}

/* Closes a broken connection, fails its query, and schedules a new attempt. */
static void
conn_down(struct conn *c, const char *why)
{
	struct db *db = c->db;
	struct query *q = c->query;
	bool was_up = c->state == CONN_IDLE || c->state == CONN_BUSY;

	if (was_up)
		log_warnx("%s lost: %s", c->name, why);
	else if (c->backoff_ms == DB_BACKOFF_MIN_MS)
		log_warnx("%s could not connect: %s", c->name, why);
	else
		log_debug("%s could not connect: %s", c->name, why);
	if (c->io != NULL) {
		event_free(c->io);
		c->io = NULL;
	}
	if (c->result != NULL) {
		PQclear(c->result);
		c->result = NULL;
	}
	PQfinish(c->pg);
	c->pg = NULL;
	c->state = CONN_DOWN;
	c->query = NULL;
	if (was_up)
		c->backoff_ms = DB_BACKOFF_MIN_MS;
	conn_schedule_retry(c);
	if (c->listener != NULL) {
		/* Its only query is its own LISTEN: nobody waits for it. */
		query_free(q);
		if (c->listener->listening) {
			c->listener->listening = false;
			c->listener->cb(DB_LISTEN_LOST, NULL, c->listener->arg);
		}
		return;
	}
	if (q != NULL)
		db_defer_fail(db, q);
	if (db_all_down(db))
		db_fail_queue(db);
}

static void
conn_copy_error(struct conn *c, char *buf, size_t len)
{
	const char *m = c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory";
	size_t n;

	/* libpq's messages span lines ("...\n\tIs the server running..."): keep one line. */
	n = 0;
	for (; *m != '\0' && n + 1 < len; m++) {
		if (*m == '\n' || *m == '\t') {
			if (n > 0 && buf[n - 1] != ' ')
				buf[n++] = ' ';
			continue;
		}
		buf[n++] = *m;
	}
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = '\0';
}

static void
conn_fail(struct conn *c)
{
	char why[512];

	conn_copy_error(c, why, sizeof(why));
	conn_down(c, why);
}

static void
conn_poll_connect(struct conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		if (conn_watch(c, EV_READ) != 0)
			conn_fail(c);
		return;
	case PGRES_POLLING_WRITING:
		if (conn_watch(c, EV_WRITE) != 0)
			conn_fail(c);
		return;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(c->pg, 1) != 0 || conn_watch(c, EV_READ) != 0) {
			conn_fail(c);
			return;
		}
		c->state = CONN_IDLE;
		c->backoff_ms = DB_BACKOFF_MIN_MS;
		log_info("%s ready", c->name);
		if (c->listener != NULL)
			listener_connected(c);
		else
			db_dispatch(c->db);
		return;
	default:
		conn_fail(c);
		return;
	}
}

static void
conn_connect(struct conn *c)
{
	/*
	 * connect_timeout comes before dbname so that a connection string that names its own
	 * wins; with several hosts it bounds the attempt on each, so a dead host cannot hang
	 * the connection.
	 */
	static const char *const keys[] = {
	    "connect_timeout", "dbname", "options", "application_name", NULL};
	/*
	 * No JIT: the merge's and the reservations' statements are estimated costly
	 * enough to be compiled, and compiling them took longer (half a second, measured)
	 * than running them, on every call.
	 */
	const char *values[] = {"5", c->db->conninfo, "-c TimeZone=UTC -c jit=off",
	    c->listener != NULL ? "allotd-listener" : "allotd", NULL};

	c->pg = PQconnectStartParams(keys, values, 1);
	if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
		conn_fail(c);
		return;
	}
	c->state = CONN_CONNECTING;
	conn_poll_connect(c);
}

static void
conn_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (c->listener == NULL)
		c->db->reconnects++;
	conn_connect(c);
}

/*
 * True for the errors that mean this server cannot serve writes any longer: a standby
 * (read_only_sql_transaction, after a failover left us on the old primary's peer) or a
 * server shutting down (admin_shutdown, crash_shutdown, cannot_connect_now).
 */
static bool
conn_lost_sqlstate(const PGresult *r)
{
	const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	return s != NULL &&
	    (strcmp(s, "25006") == 0 || strcmp(s, "57P01") == 0 || strcmp(s, "57P02") == 0 ||
	        strcmp(s, "57P03") == 0);
}

/* Reads what the server sent; finishes the query once its last result is in. */
static void
conn_read(struct conn *c)
{
	PGresult *res;

	if (!PQconsumeInput(c->pg)) {
		conn_fail(c);
		return;
	}
	if (c->state == CONN_IDLE) {
		/* Nothing is expected on an idle connection but notices or the server's goodbye. */
		if (PQstatus(c->pg) == CONNECTION_BAD)
			conn_fail(c);
		while (
		    c->state == CONN_IDLE && !PQisBusy(c->pg) && (res = PQgetResult(c->pg)) != NULL)
			PQclear(res);
		if (c->state == CONN_IDLE && c->listener != NULL)
			listener_deliver(c);
		return;
	}
	while (!PQisBusy(c->pg)) {
		res = PQgetResult(c->pg);
		if (res == NULL) {
			struct query *q = c->query;
			PGresult *r = c->result;
			enum db_status st;

			c->query = NULL;
			c->result = NULL;
			c->state = CONN_IDLE;
			if (r == NULL) {
				st = DB_UNAVAILABLE;
				if (c->listener == NULL)
					c->db->failures++;
			} else {
				ExecStatusType es = PQresultStatus(r);

				st = es == PGRES_TUPLES_OK || es == PGRES_COMMAND_OK ? DB_OK
				                                                     : DB_ERROR;
				if (st == DB_ERROR && conn_lost_sqlstate(r)) {
					/* A standby or a server going down: another host may serve. */
					PQclear(r);
					if (c->listener != NULL) {
						query_free(q);
					} else {
						c->db->failures++;
						query_finish(q, DB_UNAVAILABLE, NULL,
						    "database is unavailable");
					}
					conn_down(c, "server is read-only or shutting down");
					return;
				}
			}
			if (c->listener != NULL) {
				query_free(q);
				listener_listened(c, st, r);
				return;
			}
			if (conn_watch(c, EV_READ) != 0) {
				query_finish(q, st, r, "database connection lost");
				PQclear(r);
				conn_fail(c);
				return;
			}
			query_finish(q, st, r, "no result from the database");
			PQclear(r);
			db_dispatch(c->db);
			return;
		}
		if (c->result == NULL)
			c->result = res;
		else
			PQclear(res);
	}
	if (PQstatus(c->pg) == CONNECTION_BAD)
		conn_fail(c);
}

static void
conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int rc;

	(void)fd;
	switch (c->state) {
	case CONN_CONNECTING:
		conn_poll_connect(c);
		return;
	case CONN_BUSY:
		if (what & EV_WRITE) {
			rc = PQflush(c->pg);
			if (rc < 0) {
				conn_fail(c);
				return;
			}
			if (rc == 0 && conn_watch(c, EV_READ) != 0) {
				conn_fail(c);
				return;
			}
		}
		if (what & EV_READ)
			conn_read(c);
		return;
	case CONN_IDLE:
		conn_read(c);
		return;
	case CONN_DOWN:
		return;
	}
}

static void
conn_send(struct conn *c, struct query *q)
{
	int rc;

	c->query = q;
	c->state = CONN_BUSY;
	if (!PQsendQueryParams(
	        c->pg, q->sql, q->nparams, NULL, (const char *const *)q->params, NULL, NULL, 0)) {
		conn_fail(c);
		return;
	}
	rc = PQflush(c->pg);
	if (rc < 0 || conn_watch(c, rc == 1 ? EV_READ | EV_WRITE : EV_READ) != 0)
		conn_fail(c);
}

static void
db_dispatch(struct db *db)
{
	for (int i = 0; i < db->nconns && db->head != NULL; i++) {
		struct conn *c = &db->conns[i];
		struct query *q;

		if (c->state != CONN_IDLE)
			continue;
		q = db->head;
		db->head = q->next;
		if (db->head == NULL)
			db->tail = NULL;
		db->queued--;
		q->next = NULL;
		conn_send(c, q);
	}
}

/* Frees what a connection holds, whatever its state; the loop must not be running it. */
static void
conn_cleanup(struct conn *c)
{
	if (c->io != NULL)
		event_free(c->io);
	if (c->retry != NULL)
		event_free(c->retry);
	if (c->result != NULL)
		PQclear(c->result);
	if (c->pg != NULL)
		PQfinish(c->pg);
	query_free(c->query);
}

struct db *
db_new(struct event_base *base, const char *conninfo, int pool_size)
{
	struct db *db;

	if (pool_size < 1)
		return NULL;
	if ((db = calloc(1, sizeof(*db))) == NULL)
		return NULL;
	db->base = base;
	db->nconns = pool_size;
	db->reconnect_max_ms = 10000;
	db->conninfo = strdup(conninfo);
	db->conns = calloc((size_t)pool_size, sizeof(*db->conns));
	if (db->conninfo == NULL || db->conns == NULL)
		goto fail;
	for (int i = 0; i < pool_size; i++) {
		struct conn *c = &db->conns[i];

		c->db = db;
		snprintf(c->name, sizeof(c->name), "database connection %d", i);
		c->state = CONN_DOWN;
		c->io_fd = -1;
		c->backoff_ms = DB_BACKOFF_MIN_MS;
		if ((c->retry = evtimer_new(base, conn_retry_cb, c)) == NULL)
			goto fail;
	}
	if ((db->deliver = event_new(base, -1, 0, db_deliver_cb, db)) == NULL)
		goto fail;
	return db;
fail:
	db_free(db);
	return NULL;
}

void
db_free(struct db *db)
{
	if (db == NULL)
		return;
	for (int i = 0; db->conns != NULL && i < db->nconns; i++)
		conn_cleanup(&db->conns[i]);
	while (db->head != NULL) {
		struct query *q = db->head;

		db->head = q->next;
		query_free(q);
	}
	while (db->failed != NULL) {
		struct query *q = db->failed;

		db->failed = q->next;
		query_free(q);
	}
	if (db->deliver != NULL)
		event_free(db->deliver);
	free(db->conns);
	free(db->conninfo);
	free(db);
}

int
db_start(struct db *db)
{
	for (int i = 0; i < db->nconns; i++)
		conn_connect(&db->conns[i]);
	return 0;
}

void
db_set_reconnect_max(struct db *db, int seconds)
{
	db->reconnect_max_ms = seconds * 1000;
	if (db->reconnect_max_ms < DB_BACKOFF_MIN_MS)
		db->reconnect_max_ms = DB_BACKOFF_MIN_MS;
}

int
db_query(struct db *db, const char *sql, int nparams, const char *const *params, db_result_cb cb,
    void *arg)
{
	struct query *q;

	if (db_all_down(db) || db->queued >= DB_QUEUE_MAX) {
		db->failures++;
		return -1;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->cb = cb;
	q->arg = arg;
	q->nparams = nparams;
	if ((q->sql = strdup(sql)) == NULL)
		goto fail;
	if (nparams > 0 && (q->params = calloc((size_t)nparams, sizeof(char *))) == NULL)
		goto fail;
	for (int i = 0; i < nparams; i++)
		if (params[i] != NULL && (q->params[i] = strdup(params[i])) == NULL)
			goto fail;
	db->queries++;
	if (db->tail != NULL)
		db->tail->next = q;
	else
		db->head = q;
	db->tail = q;
	db->queued++;
	db_dispatch(db);
	return 0;
fail:
	query_free(q);
	return -1;
}

bool
db_is_up(const struct db *db)
{
	for (int i = 0; i < db->nconns; i++)
		if (db->conns[i].state == CONN_IDLE || db->conns[i].state == CONN_BUSY)
			return true;
	return false;
}

void
db_get_stats(const struct db *db, struct db_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	stats->connections = db->nconns;
	for (int i = 0; i < db->nconns; i++) {
		if (db->conns[i].state == CONN_IDLE || db->conns[i].state == CONN_BUSY)
			stats->connected++;
		if (db->conns[i].state == CONN_BUSY)
			stats->busy++;
	}
	stats->queued = db->queued;
	stats->queries = db->queries;
	stats->failures = db->failures;
	stats->reconnects = db->reconnects;
}

int
db_result_rows(const struct db_result *r)
{
	return r->status == DB_OK && r->res != NULL ? PQntuples(r->res) : 0;
}

int
db_result_columns(const struct db_result *r)
{
	return r->status == DB_OK && r->res != NULL ? PQnfields(r->res) : 0;
}

const char *
db_result_value(const struct db_result *r, int row, int column)
{
	if (row < 0 || row >= db_result_rows(r) || column < 0 || column >= db_result_columns(r))
		return "";
	return PQgetvalue(r->res, row, column);
}

size_t
db_result_length(const struct db_result *r, int row, int column)
{
	if (row < 0 || row >= db_result_rows(r) || column < 0 || column >= db_result_columns(r))
		return 0;
	return (size_t)PQgetlength(r->res, row, column);
}

/* ---------------------------------------------------------------- listeners */

static bool
channel_valid(const char *channel)
{
	size_t n = strlen(channel);

	if (n == 0 || n > 63 || !((channel[0] >= 'a' && channel[0] <= 'z') || channel[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++) {
		char ch = channel[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
			return false;
	}
	return true;
}

/* Connected: sends the LISTEN, which makes the connection BUSY until its answer is in. */
static void
listener_connected(struct conn *c)
{
	struct db_listener *l = c->listener;
	struct query *q;

	if ((q = calloc(1, sizeof(*q))) == NULL || (q->sql = strdup(l->listen_sql)) == NULL) {
		query_free(q);
		conn_down(c, "out of memory");
		return;
	}
	conn_send(c, q);
}

/* The LISTEN's answer; r is cleared here. From now on every commit that notifies reaches us. */
static void
listener_listened(struct conn *c, enum db_status st, PGresult *r)
{
	struct db_listener *l = c->listener;
	char why[512];

	if (st != DB_OK) {
		const char *m = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

		snprintf(why, sizeof(why), "could not listen on \"%s\": %s", l->channel,
		    m != NULL ? m : "no answer");
		PQclear(r);
		conn_down(c, why);
		return;
	}
	PQclear(r);
	if (conn_watch(c, EV_READ) != 0) {
		conn_fail(c);
		return;
	}
	log_debug("%s: LISTEN in effect", c->name);
	l->listening = true;
	l->cb(DB_LISTEN_READY, NULL, l->arg);
	/* Notifications may have come in the same read as the LISTEN's answer. */
	if (c->state == CONN_IDLE)
		listener_deliver(c);
}

static void
listener_deliver(struct conn *c)
{
	struct db_listener *l = c->listener;
	PGnotify *n;

	while (c->state == CONN_IDLE && (n = PQnotifies(c->pg)) != NULL) {
		if (strcmp(n->relname, l->channel) == 0)
			l->cb(DB_LISTEN_NOTIFY, n->extra != NULL ? n->extra : "", l->arg);
		PQfreemem(n);
	}
}

struct db_listener *
db_listener_new(struct db *db, const char *channel, db_listen_cb cb, void *arg)
{
	struct db_listener *l;
	struct conn *c;
	size_t n;

	if (!channel_valid(channel) || (l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	c = &l->conn;
	c->db = db;
	c->listener = l;
	snprintf(c->name, sizeof(c->name), "database listener on \"%s\"", channel);
	c->state = CONN_DOWN;
	c->io_fd = -1;
	c->backoff_ms = DB_BACKOFF_MIN_MS;
	l->cb = cb;
	l->arg = arg;
	n = strlen(channel) + sizeof("LISTEN \"\"");
	l->channel = strdup(channel);
	l->listen_sql = malloc(n);
	if (l->channel == NULL || l->listen_sql == NULL ||
	    (c->retry = evtimer_new(db->base, conn_retry_cb, c)) == NULL) {
		db_listener_free(l);
		return NULL;
	}
	/* channel_valid admits only characters that need no quoting inside "". */
	snprintf(l->listen_sql, n, "LISTEN \"%s\"", channel);
	return l;
}

void
db_listener_free(struct db_listener *l)
{
	if (l == NULL)
		return;
	conn_cleanup(&l->conn);
	free(l->channel);
	free(l->listen_sql);
	free(l);
}

int
db_listener_start(struct db_listener *l)
{
	conn_connect(&l->conn);
	return 0;
}

bool
db_listener_is_up(const struct db_listener *l)
{
	return l->listening;
}
