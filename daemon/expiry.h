/*
 * expiry: the timer that ends allocations. Every allocation_expiry_s seconds it
 * calls allot.expire_allocations(now()), which closes the liens of the
 * allocations whose window has ended and moves their remainder to the expired
 * account. The database makes it happen once however many allotd run the timer
 * (sql/migrations/0011_allocation_life.sql); this module only keeps time.
 */
#ifndef ALLOT_EXPIRY_H
#define ALLOT_EXPIRY_H

struct event_base;
struct db;
struct expiry;

/*
 * Returns a new expiry timer on base and db (kept, not owned), every period_s
 * seconds, or NULL when out of memory. The caller frees it with expiry_free after
 * the loop stops.
 */
struct metrics;

/* Counts what it expired in metrics (may be NULL). */
struct expiry *expiry_new(
    struct event_base *base, struct db *db, struct metrics *metrics, int period_s);
/* Frees ex; NULL is a no-op. After the loop stops: no query's callback runs then. */
void expiry_free(struct expiry *ex);
/* Arms the timer; the first run is one period from now. */
int expiry_start(struct expiry *ex) __attribute__((warn_unused_result));
/* A new period from a reload, from the next run on. */
void expiry_set_period(struct expiry *ex, int period_s);

#endif
