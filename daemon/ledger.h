/*
 * ledger: the Ledger service's handlers that need billing (Quote, Reserve,
 * Heartbeat), the coalescing of reservations, and the sweep that releases
 * expired liens. GetBalance, ReserveCampaign, Settle and Release are SQL
 * functions served by twirp's generic path.
 */
#ifndef ALLOT_LEDGER_H
#define ALLOT_LEDGER_H

#include "twirp.h"

struct event_base;
struct db;
struct ledger;
struct metrics;

/*
 * Returns a new ledger on base, db and metrics (kept), or NULL. sweep_s: seconds
 * between expiry sweeps; group_max: most reservations in one transaction. The
 * caller frees it with ledger_free after the loop stops.
 */
struct ledger *ledger_new(
    struct event_base *base, struct db *db, struct metrics *metrics, int sweep_s, int group_max);
void ledger_free(struct ledger *lg);
/* Starts the expiry sweep. */
int ledger_start(struct ledger *lg) __attribute__((warn_unused_result));
/* New settings from a reload; they take effect at the next sweep and group. */
void ledger_set_limits(struct ledger *lg, int sweep_s, int group_max);

/* Handlers of the route table: the call's context (twirp_context) is the ledger. */
void ledger_quote(struct twirp_call *call);
void ledger_reserve(struct twirp_call *call);
void ledger_heartbeat(struct twirp_call *call);

#endif
