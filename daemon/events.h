/*
 * events: what allotd does with a project's events (allot.events, made by the
 * database when a project's use crosses a threshold of its grant). Each allotd
 * listens on the channel allot_events and claims the events no allotd announced
 * yet (allot.announce_events, SKIP LOCKED), so that each event is logged once
 * and counted once (allot_events_total) across all the allotd of a database.
 */
#ifndef ALLOT_EVENTS_H
#define ALLOT_EVENTS_H

struct event_base;
struct db;
struct metrics;
struct events;

/* Returns a new announcer on base, db and metrics (kept), or NULL. */
struct events *events_new(struct event_base *base, struct db *db, struct metrics *metrics);
/* Frees it; before db, whose loop and settings its listening connection shares. */
void events_free(struct events *ev);
/* Starts listening; the first claim runs once the listener is ready. */
int events_start(struct events *ev) __attribute__((warn_unused_result));

#endif
