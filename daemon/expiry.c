/*
 * expiry: a periodic call of allot.expire_allocations(now()) on the loop. One
 * call at a time per process; a run that finds the database down is skipped
 * until the next period. Which allocations end, what happens to their holds and
 * that each remainder moves once are the database's (the function takes an
 * advisory lock, so a second allotd's call returns 0 at once).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "db.h"
#include "expiry.h"
#include "log.h"
#include "metrics.h"

struct expiry {
	struct db *db;
	struct metrics *metrics;
	struct event *timer;
	int period_s;
	bool running; /* a query in flight: the next period skips */
};

static void
expiry_done_cb(const struct db_result *r, void *arg)
{
	struct expiry *ex = arg;

	ex->running = false;
	if (r->status == DB_ERROR)
		log_errorx("could not expire the allocations that ended: %s", r->message);
	else if (r->status == DB_OK && strcmp(db_result_value(r, 0, 0), "0") != 0) {
		log_info("expired the remainder of %s allocations", db_result_value(r, 0, 0));
		if (ex->metrics != NULL)
			metrics_count_expired(
			    ex->metrics, strtoull(db_result_value(r, 0, 0), NULL, 10));
	} else if (r->status == DB_OK)
		log_debug("no allocation to expire");
}

static void
expiry_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct expiry *ex = arg;
	struct timeval tv = {ex->period_s, 0};

	(void)fd;
	(void)what;
	if (!ex->running && db_is_up(ex->db)) {
		if (db_query(ex->db, "SELECT allot.expire_allocations(now())", 0, NULL,
		        expiry_done_cb, ex) == 0)
			ex->running = true;
	}
	if (evtimer_add(ex->timer, &tv) != 0)
		log_errorx("could not schedule the next expiry of allocations");
}

struct expiry *
expiry_new(struct event_base *base, struct db *db, struct metrics *metrics, int period_s)
{
	struct expiry *ex;

	if ((ex = calloc(1, sizeof(*ex))) == NULL)
		return NULL;
	ex->db = db;
	ex->metrics = metrics;
	expiry_set_period(ex, period_s);
	if ((ex->timer = evtimer_new(base, expiry_timer_cb, ex)) == NULL) {
		free(ex);
		return NULL;
	}
	return ex;
}

void
expiry_free(struct expiry *ex)
{
	if (ex == NULL)
		return;
	event_free(ex->timer);
	free(ex);
}

int
expiry_start(struct expiry *ex)
{
	struct timeval tv = {ex->period_s, 0};

	return evtimer_add(ex->timer, &tv);
}

void
expiry_set_period(struct expiry *ex, int period_s)
{
	ex->period_s = period_s > 0 ? period_s : 1;
}
