/*
 * metrics: counters and histograms for Prometheus, rendered as its text format.
 * Everything is updated from the one loop thread; nothing here locks.
 */
#ifndef ALLOT_METRICS_H
#define ALLOT_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;
struct db_stats;
struct metrics;

/*
 * Returns a new set of metrics for nroutes routes named by route_names (kept,
 * not copied: they must outlive the metrics), or NULL when out of memory.
 */
struct metrics *metrics_new(size_t nroutes, const char *const *route_names);
void metrics_free(struct metrics *m);

/*
 * Counts one answered request: route is an index into route_names, or -1 for a
 * request that matched no route; code is a Twirp code name or "ok".
 */
void metrics_observe_request(struct metrics *m, int route, const char *code, double seconds);

/* Counts ingested records by what became of them. */
void metrics_count_records(
    struct metrics *m, long charged, long duplicate, long recorded, long rejected);

/* Counts one transaction of the ledger's coalesced reservations and its size. */
void metrics_count_reserve_group(struct metrics *m, size_t reservations);
/* n allocations whose remainder this allotd moved to expired. */
void metrics_count_expired(struct metrics *m, unsigned long long n);
/* A block of entries sealed (signed and chained) by this allotd. */
void metrics_count_sealed(struct metrics *m, unsigned long long entries);

/*
 * Counts one event announced by this allotd: kind ("threshold", copied) and, for a
 * threshold, its percentage (0 for other kinds).
 */
void metrics_count_event(struct metrics *m, const char *kind, int threshold_pct);

/* Appends every metric in Prometheus text format (version 0.0.4) to out. */
void metrics_render(
    const struct metrics *m, const struct db_stats *db, bool draining, struct strbuf *out);

#endif
