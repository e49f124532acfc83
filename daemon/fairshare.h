/*
 * fairshare: the fair-share tree and the pacing of a project's allocation, in memory,
 * with no I/O. allotd fills a tree from PostgreSQL (share.c) and asks it for factors;
 * the unit tests fill it by hand.
 *
 * The tree is root > program > organization > project > user. Each node has shares
 * (raw: its own figure) and a decayed usage in ledger units. Shares by default: a
 * user's 1; a project's its granted GPU-hours in allocations active now (the caller
 * sets them with fs_tree_set_default_shares); an organization's and a program's the
 * sum of their children's. Any node's shares may be set explicitly, which wins over
 * the default (and counts in its parent's sum).
 *
 * Usage decays with Slurm's factor d = 1 - ln 2 / half_life_s per second: usage t
 * seconds old counts d^t of its size. Half-life 0 means no decay. A node's usage is
 * the sum of its children's, kept so by fs_tree_add_usage (O(depth) per charge), and
 * fs_tree_advance multiplies every node by the same d^t, which keeps the sums.
 *
 * Fair Tree (Slurm's fair_tree.html semantics), among the children of each account:
 *   S  = shares_raw / sum of the siblings' shares_raw       (0 when that sum is 0)
 *   U  = usage_raw / the parent's usage_raw                 (0 when the parent's is 0)
 *   LF = S / U: 0 when S is 0, +infinity when U is 0 and S is not
 * siblings sorted by LF descending, visited depth first; each user met takes the rank
 * "users not yet ranked" (starting at the number of users), and its factor is
 * rank / number of users, so the best user has 1.0. Ties: sibling users of equal LF
 * share a rank (the next distinct user takes the rank it would have had without the
 * tie), and sibling accounts of equal LF have their children merged and sorted as one
 * list (a merged list starts tied with the account before it when that one was tied).
 *
 * Classic (Slurm's classic_fair_share.html):
 *   S_norm = product over the path of shares_raw / siblings' shares_raw
 *   U_norm = usage_raw / the root's usage_raw
 *   UE     = U_norm + (UE_parent - U_norm) * shares_raw / siblings' shares_raw,
 *            with the root's UE = 1 when anything was used, 0 otherwise
 *   F      = 2^(-UE / S_norm), 0 when S_norm is 0
 * A user's factor is its F.
 *
 * Pacing (fs_pacing_compute): the allocation window [start, end) is cut into
 * M = max(1, round(length / 30.436875 days)) months of equal length, each with the
 * quota q = granted / M. The straight line expects granted * elapsed / length by now;
 * ahead = used - expected (negative: behind). JSC's monthly quota with carry: the
 * quota of month i is q + rest(i-1), rest(i) = quota(i) - used(i), where a positive
 * rest carries at most q (quota unused for two months is lost) and a debt carries in
 * full; a month may be overdrawn up to quota(i) + q. The pacing factor is
 *   clamp(0.5 - ahead / (2 q), 0, 1)
 * (0.5 on the line, 1.0 a month behind, 0.0 a month ahead), and 0 once this month's
 * use reaches its overdraw limit. The forecast: at burn_units_per_s the hours left run
 * out at now + (granted - used) / burn (now when nothing is left, 0 when the burn is 0).
 *
 * Not thread-safe: one tree belongs to one loop.
 */
#ifndef ALLOT_FAIRSHARE_H
#define ALLOT_FAIRSHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fs_kind {
	FS_ROOT = 0,
	FS_PROGRAM = 1,
	FS_ORGANIZATION = 2,
	FS_PROJECT = 3,
	FS_USER = 4,
};

enum fs_algorithm {
	FS_FAIR_TREE = 0,
	FS_CLASSIC = 1,
};

/* The root is node 0 of every tree. */
#define FS_ROOT_NODE 0

struct fs_tree;

/* What fs_tree_node_info reports of a node after fs_tree_compute. */
struct fs_node_info {
	enum fs_kind kind;
	const char *name;  /* the tree's copy; valid until the tree changes or is freed */
	int parent;        /* -1 for the root */
	double shares_raw; /* explicit or default */
	bool shares_explicit;
	double shares_norm;   /* among siblings (Fair Tree's S) */
	double shares_global; /* product over the path (classic's S) */
	double usage_raw;     /* decayed, ledger units */
	double usage_norm;    /* among siblings (Fair Tree's U) */
	double usage_global;  /* of the root's usage */
	double usage_efctv;   /* classic's UE */
	double level_fs;      /* Fair Tree's LF (may be +infinity) */
	double factor;        /* users: the factor of the configured algorithm; others: 0 */
	uint32_t rank;        /* users under Fair Tree: the rank; otherwise 0 */
};

/*
 * Returns a new tree holding only the root, decaying with half_life_s (0: no decay,
 * else at least 1), computing with alg, its clock at now_s; NULL when out of memory
 * or when half_life_s is out of range. The caller frees it with fs_tree_free.
 */
struct fs_tree *fs_tree_new(int64_t half_life_s, enum fs_algorithm alg, int64_t now_s);
void fs_tree_free(struct fs_tree *t);

/* Returns a deep copy of t (for what-if questions), or NULL when out of memory. */
struct fs_tree *fs_tree_clone(const struct fs_tree *t);

/*
 * Adds a node of kind under parent, named name (copied), and returns its index; or
 * returns the existing node of that name under that parent when its kind is kind.
 * -1 when the kind cannot go under the parent's (program under root, organization
 * under program, project under organization, user under project), or out of memory.
 */
int fs_tree_add(struct fs_tree *t, int parent, enum fs_kind kind, const char *name)
    __attribute__((warn_unused_result));

/* The node named name under parent, or -1. */
int fs_tree_find(const struct fs_tree *t, int parent, const char *name);

/* Number of nodes (the root included) and of users. */
int fs_tree_count(const struct fs_tree *t);
int fs_tree_users(const struct fs_tree *t);

/*
 * Sets a project's default shares (its granted GPU-hours; users' default is 1 and
 * accounts above projects sum their children). Returns -1 for another kind or a
 * negative or non-finite figure.
 */
int fs_tree_set_default_shares(struct fs_tree *t, int node, double shares)
    __attribute__((warn_unused_result));

/*
 * Sets a node's explicit shares (>= 0, finite), or clears them with explicit false.
 * -1 for the root or a bad figure.
 */
int fs_tree_set_shares(struct fs_tree *t, int node, bool explicit_, double shares)
    __attribute__((warn_unused_result));

/*
 * Moves the clock to now_s, decaying every node's usage by d^(now_s - clock); a time
 * before the clock changes nothing.
 */
void fs_tree_advance(struct fs_tree *t, int64_t now_s);

/*
 * Adds units of usage that happened at at_s to user and its accounts: advances the
 * clock first when at_s is later, decays units by d^(clock - at_s) when earlier. -1
 * for a node that is not a user, or negative or non-finite units.
 */
int fs_tree_add_usage(struct fs_tree *t, int user, double units, int64_t at_s)
    __attribute__((warn_unused_result));

/* Sets every node's usage to 0 (before a rebuild). */
void fs_tree_clear_usage(struct fs_tree *t);

/*
 * Recomputes shares, normalized usage, level fair share and each user's factor.
 * O(n log n) in the nodes. Returns -1 when out of memory (the factors are then stale).
 */
int fs_tree_compute(struct fs_tree *t) __attribute__((warn_unused_result));

/* Fills *out for node (after fs_tree_compute); -1 for no such node. */
int fs_tree_node_info(const struct fs_tree *t, int node, struct fs_node_info *out);

/*
 * The factor a user of project with no usage would have, for a pair the tree does not
 * know yet: under Fair Tree, the rank the project's best user (or, with none, the
 * project's place) starts at, over the number of users; under classic, the project's
 * 2^(-UE/S). -1.0 for a node that is not a project.
 */
double fs_tree_new_user_factor(const struct fs_tree *t, int project);

/* The time a tree's clock stands at. */
int64_t fs_tree_now(const struct fs_tree *t);

/* The decay of t seconds under half_life_s: d^t, 1.0 for half-life 0 or t <= 0. */
double fs_decay(int64_t half_life_s, int64_t t_s);

/* --------------------------------------------------------------------- pacing */

struct fs_pacing_input {
	int64_t start_s, end_s, now_s; /* the allocation window, and now */
	double granted_units;          /* > 0 */
	double used_units;             /* in the window so far */
	/* used in each month of the window, months 0 .. month_count - 1 (those after the
	 * current one are ignored; missing ones count 0) */
	const double *month_used;
	int month_count;
	double burn_units_per_s; /* the current burn rate, >= 0 */
};

struct fs_pacing {
	int months;            /* M */
	int month;             /* the current one, 0 .. M-1 */
	double month_base;     /* q = granted / M */
	double expected_units; /* on the straight line by now */
	double ahead_units;    /* used - expected */
	double carry_units;    /* rest of last month carried in (negative: a debt) */
	double month_quota;    /* q + carry */
	double month_used;
	double month_rest;      /* quota - used */
	double overdraw_limit;  /* quota + q: what this month may use at most */
	bool overdrawn;         /* month_used >= overdraw_limit */
	int64_t exhausted_at_s; /* forecast; now when already spent; 0: never at this rate */
	double factor;          /* [0, 1] */
};

/*
 * Computes the pacing of one allocation. Returns -1 and writes err for a window that
 * is empty, a grant that is not positive, or a negative or non-finite figure.
 */
int fs_pacing_compute(const struct fs_pacing_input *in, struct fs_pacing *out, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* (1 - pacing_weight) * fairshare + pacing_weight * pacing, clamped to [0, 1]. */
double fs_combine(double fairshare, double pacing, double pacing_weight);

#endif
