/*
 * events: announcing a project's events. A claim (allot.announce_events) runs
 * when the listener is ready (what was notified while nobody listened is
 * claimed then), on every notification (those during a claim fold into one more
 * claim after it), again at once when a claim took a full batch, and every
 * EVENTS_RETRY_MS after a claim failed. A claimed event is logged and counted
 * here; it is never claimed again, by this allotd or another.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "db.h"
#include "events.h"
#include "log.h"
#include "metrics.h"

#define EVENTS_CHANNEL "allot_events"
#define EVENTS_BATCH "1000"
#define EVENTS_BATCH_N 1000
#define EVENTS_RETRY_MS 1000

#define EVENTS_SQL \
	"SELECT id, kind, project, coalesce(threshold_pct, 0), coalesce(used_units, 0)," \
	" coalesce(granted_units, 0) FROM allot.announce_events($1::integer)"

struct events {
	struct db *db;
	struct metrics *metrics;
	struct db_listener *listener;
	struct event *retry;
	bool claiming;     /* a claim is queued or running */
	bool dirty;        /* notified while it ran */
	bool error_logged; /* an error of this run of failures was logged */
};

static void events_claimed_cb(const struct db_result *r, void *arg);

static void
events_schedule_retry(struct events *ev)
{
	struct timeval tv = {EVENTS_RETRY_MS / 1000, (EVENTS_RETRY_MS % 1000) * 1000};

	if (!evtimer_pending(ev->retry, NULL) && evtimer_add(ev->retry, &tv) != 0)
		log_errorx("could not schedule a new claim of the events");
}

static void
events_claim(struct events *ev)
{
	const char *params[1] = {EVENTS_BATCH};

	if (ev->claiming) {
		ev->dirty = true;
		return;
	}
	ev->dirty = false;
	evtimer_del(ev->retry);
	if (db_query(ev->db, EVENTS_SQL, 1, params, events_claimed_cb, ev) != 0) {
		events_schedule_retry(ev);
		return;
	}
	ev->claiming = true;
}

static void
events_announce(struct events *ev, const struct db_result *r, int row)
{
	const char *kind = db_result_value(r, row, 1);
	long threshold = strtol(db_result_value(r, row, 3), NULL, 10);
	double used = strtod(db_result_value(r, row, 4), NULL);
	double granted = strtod(db_result_value(r, row, 5), NULL);

	if (strcmp(kind, "threshold") == 0)
		log_info(
		    "event %s: project \"%s\" crossed %ld %% of its grant: %s of %s units used "
		    "(%.2f %%)",
		    db_result_value(r, row, 0), db_result_value(r, row, 2), threshold,
		    db_result_value(r, row, 4), db_result_value(r, row, 5),
		    granted > 0 ? used * 100.0 / granted : 0.0);
	else
		log_info("event %s: %s of project \"%s\"", db_result_value(r, row, 0), kind,
		    db_result_value(r, row, 2));
	metrics_count_event(ev->metrics, kind, (int)threshold);
}

static void
events_claimed_cb(const struct db_result *r, void *arg)
{
	struct events *ev = arg;
	int n;

	ev->claiming = false;
	if (r->status == DB_UNAVAILABLE ||
	    (r->status == DB_ERROR &&
	        (strncmp(r->sqlstate, "08", 2) == 0 || strncmp(r->sqlstate, "57P", 3) == 0))) {
		/* The server went away (or is shutting down) under the claim: the pool says so. */
		log_debug("could not claim the events to announce: %s", r->message);
		events_schedule_retry(ev);
		return;
	}
	if (r->status != DB_OK) {
		/* Once per run of failures: the retries would say the same every second. */
		if (!ev->error_logged)
			log_errorx("could not claim the events to announce: %s (SQLSTATE %s)",
			    r->message, r->sqlstate);
		ev->error_logged = true;
		events_schedule_retry(ev);
		return;
	}
	ev->error_logged = false;
	n = db_result_rows(r);
	for (int i = 0; i < n; i++)
		events_announce(ev, r, i);
	if (ev->dirty || n >= EVENTS_BATCH_N)
		events_claim(ev);
}

static void
events_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	events_claim(arg);
}

static void
events_listen_cb(enum db_listen_event event, const char *payload, void *arg)
{
	struct events *ev = arg;

	(void)payload;
	switch (event) {
	case DB_LISTEN_READY:
	case DB_LISTEN_NOTIFY:
		events_claim(ev);
		return;
	case DB_LISTEN_LOST:
		/* READY claims again once the listener is back. */
		return;
	}
}

struct events *
events_new(struct event_base *base, struct db *db, struct metrics *metrics)
{
	struct events *ev;

	if ((ev = calloc(1, sizeof(*ev))) == NULL)
		return NULL;
	ev->db = db;
	ev->metrics = metrics;
	ev->listener = db_listener_new(db, EVENTS_CHANNEL, events_listen_cb, ev);
	ev->retry = evtimer_new(base, events_retry_cb, ev);
	if (ev->listener == NULL || ev->retry == NULL) {
		events_free(ev);
		return NULL;
	}
	return ev;
}

void
events_free(struct events *ev)
{
	if (ev == NULL)
		return;
	db_listener_free(ev->listener);
	if (ev->retry != NULL)
		event_free(ev->retry);
	free(ev);
}

int
events_start(struct events *ev)
{
	return db_listener_start(ev->listener);
}
