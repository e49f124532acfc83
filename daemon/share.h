/*
 * share: allotd's fair-share engine and the FairShare service (README "Fair share").
 *
 * Every fairshare_period_s seconds, at the boundaries of that period (multiples of it
 * since the epoch), it reads the whole state in one snapshot (allot.fairshare_state:
 * the tree, the shares, the usage per user and day, the allocation windows, the site
 * accounts; allot.fairshare_site_usage: the usage of each site) and builds with
 * fairshare.c a new tree of all sites' usage and one per site of that site's alone
 * (usage_site), decayed to that boundary: two allotd on one database, or one after a
 * restart, evaluate the same instant of the same data and answer the same. The period,
 * not each charge: README "Fair share" says why. A thread reads and builds it off the event loop; the
 * new state replaces the old one whole once built;
 * until the first is built, calls wait for it (a bounded number; then unavailable).
 *
 * One share per process: the route table's handlers find it through share_attach.
 */
#ifndef ALLOT_SHARE_H
#define ALLOT_SHARE_H

#include <stdint.h>

#include "fairshare.h"
#include "twirp.h"

struct event_base;
struct share;

struct share_settings {
	int period_s;        /* >= 1 */
	int64_t half_life_s; /* 0: no decay */
	enum fs_algorithm alg;
	double pacing_weight; /* [0, 1] */
};

/* The most (account, user) pairs one GetPriorities may ask for. */
#define SHARE_MAX_PAIRS 20000

/*
 * Returns a new engine on base, loading over connections of its own to conninfo (a
 * libpq connection string, copied), or NULL when out of memory. It becomes
 * the one the FairShare handlers use. The caller frees it with share_free after the
 * loop stops.
 */
struct share *share_new(
    struct event_base *base, const char *conninfo, const struct share_settings *s);
void share_free(struct share *sh);

/* Starts the first load now, then one at each period boundary. */
int share_start(struct share *sh) __attribute__((warn_unused_result));

/* New settings from a reload: they take effect at the next boundary's recompute. */
void share_set_settings(struct share *sh, const struct share_settings *s);

/* Handlers of the route table. */
void share_get_priorities(struct twirp_call *call);
void share_explain(struct twirp_call *call);
void share_what_if(struct twirp_call *call);

#endif
