/*
 * share: the fair-share state of this allotd, rebuilt from PostgreSQL at each period
 * boundary, and the FairShare handlers that read it (share.h says what it promises).
 *
 * A state is immutable once built: the tree of all sites' usage (fairshare.c,
 * computed), one tree per site with the same nodes and that site's usage alone, the
 * projects with their pacing, and maps (project name, site account) to a project. A
 * load runs off the event loop: a thread of its own queries PostgreSQL on a connection
 * of its own (one beyond db_pool_size) and builds the new state from the rows (at 10,000
 * projects and 100,000 users the rows take 0.6 to 1.1 s to arrive and 0.1 s to build:
 * measured by tests/bench/priorities, too long to stall every call); the loop then swaps
 * it in and frees the old one, so no handler ever sees a half-built tree. WhatIf works
 * on a clone of the tree it is asked about.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "allot/v1/fairshare.pb-c.h"

#include "log.h"
#include "share.h"

#define GPU_H_DAY_S 86400
#define BURN_DAYS 7
#define MAX_PARKED 4096
#define RETRY_S 2 /* after a failed load with no state yet */

/* ---------------------------------------------------------------- string map */

/* Open addressing from a string key (copied) to an int value. */
struct smap {
	char **keys;
	int *vals;
	size_t cap, n;
};

static uint64_t
smap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static void
smap_free(struct smap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

static int
smap_grow(struct smap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 256;
	char **keys = calloc(cap, sizeof(*keys));
	int *vals = calloc(cap, sizeof(*vals));

	if (keys == NULL || vals == NULL) {
		free(keys);
		free(vals);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++) {
		size_t j;

		if (m->keys[i] == NULL)
			continue;
		j = smap_hash(m->keys[i]) & (cap - 1);
		while (keys[j] != NULL)
			j = (j + 1) & (cap - 1);
		keys[j] = m->keys[i];
		vals[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = cap;
	return 0;
}

/* The value of key, or -1. */
static int
smap_get(const struct smap *m, const char *key)
{
	if (m->cap == 0)
		return -1;
	for (size_t j = smap_hash(key) & (m->cap - 1); m->keys[j] != NULL;
	     j = (j + 1) & (m->cap - 1))
		if (strcmp(m->keys[j], key) == 0)
			return m->vals[j];
	return -1;
}

/* Sets key to val (a key present keeps its first value). Returns 0 or -1. */
static int
smap_put(struct smap *m, const char *key, int val)
{
	size_t j;

	if ((m->n + 1) * 2 > m->cap && smap_grow(m) != 0)
		return -1;
	for (j = smap_hash(key) & (m->cap - 1); m->keys[j] != NULL; j = (j + 1) & (m->cap - 1))
		if (strcmp(m->keys[j], key) == 0)
			return 0;
	if ((m->keys[j] = strdup(key)) == NULL)
		return -1;
	m->vals[j] = val;
	m->n++;
	return 0;
}

/* Open addressing from a project id (> 0) to an index, sized once. */
struct imap {
	int64_t *keys; /* 0: empty */
	int *vals;
	size_t cap;
};

static int
imap_init(struct imap *m, size_t n)
{
	m->cap = 64;
	while (m->cap < 2 * n)
		m->cap *= 2;
	m->keys = calloc(m->cap, sizeof(*m->keys));
	m->vals = calloc(m->cap, sizeof(*m->vals));
	return m->keys != NULL && m->vals != NULL ? 0 : -1;
}

static void
imap_free(struct imap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

static size_t
imap_slot(const struct imap *m, int64_t key)
{
	size_t j = (size_t)(((uint64_t)key * 0x9e3779b97f4a7c15ULL) >> 20) & (m->cap - 1);

	while (m->keys[j] != 0 && m->keys[j] != key)
		j = (j + 1) & (m->cap - 1);
	return j;
}

/* The index of key, or -1. */
static int
imap_get(const struct imap *m, int64_t key)
{
	size_t j;

	if (m->cap == 0 || key <= 0)
		return -1;
	j = imap_slot(m, key);
	return m->keys[j] == key ? m->vals[j] : -1;
}

/* Sets key (> 0) to val; the map never fills (sized for n keys at twice that). */
static void
imap_put(struct imap *m, int64_t key, int val)
{
	size_t j = imap_slot(m, key);

	m->keys[j] = key;
	m->vals[j] = val;
}

/* ---------------------------------------------------------------- state */

struct sh_project {
	int node; /* in the tree */
	bool active;
	int64_t start_s, end_s;
	double granted, used, burn_per_day; /* GPU-hours */
	double *month_used;
	int months;
	struct fs_pacing pacing; /* when active */
};

/* One site's usage alone: the tree of all sites with only that site's usage. */
struct sh_site {
	char *name;
	struct fs_tree *tree;
};

struct sh_state {
	struct fs_tree *tree;  /* the usage of all sites */
	struct sh_site *sites; /* every site, in name order */
	size_t nsites;
	int64_t at_s;
	struct share_settings set;
	struct sh_project *projects;
	size_t nprojects;
	struct smap by_name;    /* project name -> index */
	struct imap by_id;      /* project id -> index */
	struct smap by_account; /* "site\naccount" -> index */
};

static void
state_free(struct sh_state *st)
{
	if (st == NULL)
		return;
	fs_tree_free(st->tree);
	for (size_t i = 0; i < st->nsites; i++) {
		free(st->sites[i].name);
		fs_tree_free(st->sites[i].tree);
	}
	free(st->sites);
	for (size_t i = 0; i < st->nprojects; i++)
		free(st->projects[i].month_used);
	free(st->projects);
	smap_free(&st->by_name);
	imap_free(&st->by_id);
	smap_free(&st->by_account);
	free(st);
}

struct parked {
	struct parked *next;
	struct twirp_call *call;
	void (*serve)(struct twirp_call *call, const struct sh_state *st);
};

struct share {
	struct event_base *base;
	char *conninfo;
	struct event *timer;
	struct share_settings set;
	struct sh_state *state; /* NULL until the first load */
	struct parked *parked;
	int nparked;
	/* The worker's: written by the thread while worker_running, read by the loop after. */
	pthread_t worker;
	bool worker_running;
	int wake[2]; /* the thread writes a byte when it is done */
	struct event *wake_ev;
	PGconn *pg;
	int64_t wat;                /* the instant it loads */
	struct share_settings wset; /* with these settings */
	struct sh_state *built;     /* or NULL and werr */
	char werr[256];
	double query_ms, build_ms, build_cpu_ms, sites_ms;
};

static struct share *the_share;

/* The window's month of time t (clamped into the window). */
static int
month_of(const struct sh_project *p, int64_t t)
{
	double len = (double)(p->end_s - p->start_s);
	double e = (double)(t - p->start_s);
	int m;

	if (e < 0)
		e = 0;
	m = (int)floor(e * p->months / len);
	return m < 0 ? 0 : m >= p->months ? p->months - 1 : m;
}

/*
 * The rows come in binary (PQexecParams' resultFormat 1): PostgreSQL prints no float
 * and allotd parses none (strtod alone was a fifth of the build at 100,000 users).
 * state_build checks the column types first. libpq ends every value with a zero byte,
 * so a text value is a C string.
 */
static const char *
row_text(const PGresult *r, int row, int col)
{
	return PQgetvalue(r, row, col);
}

static uint64_t
row_bits(const PGresult *r, int row, int col, int len)
{
	const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
	uint64_t v = 0;

	if (PQgetlength(r, row, col) != len)
		return 0;
	for (int i = 0; i < len; i++)
		v = v << 8 | p[i];
	return v;
}

static double
row_num(const PGresult *r, int row, int col)
{
	uint64_t v = row_bits(r, row, col, 8);
	double d;

	memcpy(&d, &v, sizeof(d));
	return d;
}

static int64_t
row_int8(const PGresult *r, int row, int col)
{
	return (int64_t)row_bits(r, row, col, 8);
}

static int
row_int4(const PGresult *r, int row, int col)
{
	return (int)(int32_t)(uint32_t)row_bits(r, row, col, 4);
}

static bool
row_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) != 0;
}

/* Whether the columns are allot.fairshare_state's, in binary: int4, int8, 3 text, 6 float8. */
static bool
state_columns_ok(const PGresult *r)
{
	enum { INT4OID = 23, INT8OID = 20, TEXTOID = 25, FLOAT8OID = 701 };

	if (PQnfields(r) != 11 || PQftype(r, 0) != INT4OID || PQftype(r, 1) != INT8OID)
		return false;
	for (int c = 0; c < 11; c++)
		if (PQfformat(r, c) != 1)
			return false;
	for (int c = 2; c < 5; c++)
		if (PQftype(r, c) != TEXTOID)
			return false;
	for (int c = 5; c < 11; c++)
		if (PQftype(r, c) != FLOAT8OID)
			return false;
	return true;
}

/* Sets a node's explicit shares when the row's column holds some. */
static int
explicit_shares(struct fs_tree *t, int node, const PGresult *r, int row, int col)
{
	if (row_null(r, row, col))
		return 0;
	return fs_tree_set_shares(t, node, true, row_num(r, row, col));
}

/* A project row (kind 0): its nodes, default and explicit shares, window. */
static int
add_project_row(struct sh_state *st, const PGresult *r, int row)
{
	struct fs_tree *t = st->tree;
	struct sh_project *p = &st->projects[st->nprojects];
	int prog, org, proj;
	double len;

	prog = fs_tree_add(t, FS_ROOT_NODE, FS_PROGRAM, row_text(r, row, 2));
	org = prog < 0 ? -1 : fs_tree_add(t, prog, FS_ORGANIZATION, row_text(r, row, 3));
	proj = org < 0 ? -1 : fs_tree_add(t, org, FS_PROJECT, row_text(r, row, 4));
	if (proj < 0 || fs_tree_set_default_shares(t, proj, row_num(r, row, 5)) != 0 ||
	    explicit_shares(t, prog, r, row, 8) != 0 || explicit_shares(t, org, r, row, 9) != 0 ||
	    explicit_shares(t, proj, r, row, 10) != 0)
		return -1;
	memset(p, 0, sizeof(*p));
	p->node = proj;
	p->granted = row_num(r, row, 5);
	if (!row_null(r, row, 6) && p->granted > 0) {
		p->active = true;
		p->start_s = (int64_t)row_num(r, row, 6);
		p->end_s = (int64_t)row_num(r, row, 7);
		len = (double)(p->end_s - p->start_s);
		p->months = (int)lround(len / 2629746.0);
		if (p->months < 1)
			p->months = 1;
		if ((p->month_used = calloc((size_t)p->months, sizeof(double))) == NULL)
			return -1;
	}
	if (smap_put(&st->by_name, row_text(r, row, 4), (int)st->nprojects) != 0) {
		free(p->month_used);
		return -1;
	}
	imap_put(&st->by_id, row_int8(r, row, 1), (int)st->nprojects);
	st->nprojects++;
	return 0;
}

/* The instant a day's usage counts at: its midday, or at_s when that is later. */
static int64_t
day_instant(int64_t day, int64_t at_s)
{
	int64_t mid = day + GPU_H_DAY_S / 2;

	return mid > at_s ? at_s : mid;
}

/* A usage row (kind 2): the tree's usage, decayed, and the project's pacing figures. */
static int
add_usage_row(struct sh_state *st, struct sh_project *p, int user, const PGresult *r, int row)
{
	int64_t day = (int64_t)row_num(r, row, 5);
	int64_t mid = day_instant(day, st->at_s);
	double h = row_num(r, row, 6);

	if (fs_tree_add_usage(st->tree, user, h, mid) != 0)
		return -1;
	if (p->active && day + GPU_H_DAY_S > p->start_s && day < p->end_s && day <= st->at_s) {
		p->used += h;
		p->month_used[month_of(p, mid)] += h;
	}
	if (day + GPU_H_DAY_S > st->at_s - BURN_DAYS * GPU_H_DAY_S && day <= st->at_s)
		p->burn_per_day += h / BURN_DAYS;
	return 0;
}

static int
project_pacing(
    const struct sh_state *st, const struct sh_project *p, double extra, struct fs_pacing *out)
{
	struct fs_pacing_input in;
	double *months;
	int rc, cur;
	char err[128];

	if (!p->active) {
		memset(out, 0, sizeof(*out));
		out->factor = 0.5;
		return 0;
	}
	if ((months = malloc((size_t)p->months * sizeof(double))) == NULL)
		return -1;
	memcpy(months, p->month_used, (size_t)p->months * sizeof(double));
	cur = month_of(p, st->at_s);
	months[cur] += extra;
	in = (struct fs_pacing_input){.start_s = p->start_s,
	    .end_s = p->end_s,
	    .now_s = st->at_s,
	    .granted_units = p->granted,
	    .used_units = p->used + extra,
	    .month_used = months,
	    .month_count = p->months,
	    .burn_units_per_s = p->burn_per_day / GPU_H_DAY_S};
	/* Only a window the query cannot give (empty, no grant) fails: it is then inactive. */
	rc = fs_pacing_compute(&in, out, err, sizeof(err));
	free(months);
	return rc;
}

/*
 * Builds a state from the rows of allot.fairshare_state; NULL when out of memory or
 * when the columns are not the function's.
 */
static struct sh_state *
state_build(const PGresult *r, int64_t at_s, const struct share_settings *set)
{
	struct sh_state *st = calloc(1, sizeof(*st));
	int rows = PQntuples(r), row;
	size_t nproj = 0;

	if (st == NULL)
		return NULL;
	st->at_s = at_s;
	st->set = *set;
	if (!state_columns_ok(r))
		goto fail;
	for (row = 0; row < rows && row_int4(r, row, 0) == 0; row++)
		nproj++;
	st->tree = fs_tree_new(set->half_life_s, set->alg, at_s);
	st->projects = calloc(nproj ? nproj : 1, sizeof(*st->projects));
	if (st->tree == NULL || st->projects == NULL || imap_init(&st->by_id, nproj) != 0)
		goto fail;
	for (row = 0; row < (int)nproj; row++)
		if (add_project_row(st, r, row) != 0)
			goto fail;
	for (; row < rows; row++) {
		int kind = row_int4(r, row, 0);
		int pi = imap_get(&st->by_id, row_int8(r, row, 1));
		int user;

		if (pi < 0)
			continue; /* a project made after the projects were read: next time */
		if (kind == 3) {
			char key[512];

			snprintf(
			    key, sizeof(key), "%s\n%s", row_text(r, row, 2), row_text(r, row, 3));
			if (smap_put(&st->by_account, key, pi) != 0)
				goto fail;
			continue;
		}
		user = fs_tree_add(st->tree, st->projects[pi].node, FS_USER, row_text(r, row, 2));
		if (user < 0)
			goto fail;
		if (kind == 1 && explicit_shares(st->tree, user, r, row, 5) != 0)
			goto fail;
		if (kind == 2 && add_usage_row(st, &st->projects[pi], user, r, row) != 0)
			goto fail;
	}
	if (fs_tree_compute(st->tree) != 0)
		goto fail;
	for (size_t i = 0; i < st->nprojects; i++)
		if (project_pacing(st, &st->projects[i], 0, &st->projects[i].pacing) != 0)
			st->projects[i].active = false;
	return st;
fail:
	state_free(st);
	return NULL;
}

/* Whether the columns are allot.fairshare_site_usage's, in binary: text, int8, text, 2 float8. */
static bool
site_columns_ok(const PGresult *r)
{
	enum { INT8OID = 20, TEXTOID = 25, FLOAT8OID = 701 };
	static const unsigned types[] = {TEXTOID, INT8OID, TEXTOID, FLOAT8OID, FLOAT8OID};

	if (PQnfields(r) != 5)
		return false;
	for (int c = 0; c < 5; c++)
		if (PQfformat(r, c) != 1 || PQftype(r, c) != types[c])
			return false;
	return true;
}

/*
 * Adds to st (built, computed) one tree per site from the rows of
 * allot.fairshare_site_usage: a clone of the tree of all sites, its usage cleared, then
 * that site's added and computed. The nodes are the same, so a project's node is the
 * same in every tree. Returns 0, or -1 when out of memory or the columns are not the
 * function's.
 */
static int
state_add_sites(struct sh_state *st, const PGresult *r)
{
	int rows = PQntuples(r);
	size_t n = 0;
	struct sh_site *cur = NULL;

	if (!site_columns_ok(r))
		return -1;
	for (int row = 0; row < rows; row++)
		if (row == 0 || strcmp(row_text(r, row, 0), row_text(r, row - 1, 0)) != 0)
			n++;
	if (n > 0 && (st->sites = calloc(n, sizeof(*st->sites))) == NULL)
		return -1;
	for (int row = 0; row < rows; row++) {
		int pi, user;

		if (cur == NULL || strcmp(row_text(r, row, 0), cur->name) != 0) {
			if (cur != NULL && fs_tree_compute(cur->tree) != 0)
				return -1;
			cur = &st->sites[st->nsites++];
			if ((cur->name = strdup(row_text(r, row, 0))) == NULL ||
			    (cur->tree = fs_tree_clone(st->tree)) == NULL)
				return -1;
			fs_tree_clear_usage(cur->tree);
		}
		if (row_null(r, row, 1) || (pi = imap_get(&st->by_id, row_int8(r, row, 1))) < 0)
			continue; /* a site with no usage, or a project made after the projects */
		user = fs_tree_add(cur->tree, st->projects[pi].node, FS_USER, row_text(r, row, 2));
		if (user < 0 ||
		    fs_tree_add_usage(cur->tree, user, row_num(r, row, 4),
		        day_instant((int64_t)row_num(r, row, 3), st->at_s)) != 0)
			return -1;
	}
	return cur != NULL && fs_tree_compute(cur->tree) != 0 ? -1 : 0;
}

/* ---------------------------------------------------------------- loading */

static void schedule(struct share *sh, int delay_s);

static void
answer_parked(struct share *sh, const char *why)
{
	struct parked *p;

	while ((p = sh->parked) != NULL) {
		sh->parked = p->next;
		if (sh->state != NULL)
			p->serve(p->call, sh->state);
		else
			twirp_reply_error(
			    p->call, TWIRP_UNAVAILABLE, "fair share is not computed yet: %s", why);
		free(p);
	}
	sh->nparked = 0;
}

/* The CPU time of the calling thread, in milliseconds. */
static double
thread_cpu_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Runs a command on the worker's connection; false with werr filled when it fails. */
static bool
worker_command(struct share *sh, const char *sql)
{
	PGresult *r = PQexec(sh->pg, sql);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok && sh->werr[0] == '\0')
		snprintf(sh->werr, sizeof(sh->werr), "%s", PQerrorMessage(sh->pg));
	PQclear(r);
	return ok;
}

/*
 * The worker: one thread per load, on a connection of its own (kept from one load to
 * the next, remade after a failure), runs the query and builds the state, then wakes
 * the loop through a pipe. While it runs the loop touches none of the worker's fields
 * but worker_running; the pipe and pthread_join order what the thread wrote before
 * what the loop reads.
 */
static void *
worker_main(void *arg)
{
	static const char *const keys[] = {
	    "connect_timeout", "dbname", "options", "application_name", NULL};
	struct share *sh = arg;
	char at[32];
	const char *params[1] = {at};
	const char *values[] = {"5", sh->conninfo,
	    "-c TimeZone=UTC -c jit=off -c statement_timeout=60000", "allotd-fairshare", NULL};
	uint64_t t0 = twirp_now_usec(), t1, t2;
	double cpu0;
	PGresult *res = NULL, *sites = NULL;

	sh->built = NULL;
	sh->werr[0] = '\0';
	if (sh->pg != NULL && PQstatus(sh->pg) != CONNECTION_OK) {
		PQfinish(sh->pg);
		sh->pg = NULL;
	}
	if (sh->pg == NULL)
		sh->pg = PQconnectdbParams(keys, values, 1);
	if (sh->pg == NULL || PQstatus(sh->pg) != CONNECTION_OK) {
		snprintf(sh->werr, sizeof(sh->werr), "%s",
		    sh->pg != NULL ? PQerrorMessage(sh->pg) : "out of memory");
		goto out;
	}
	snprintf(at, sizeof(at), "%" PRId64, sh->wat);
	/* The state and the usage per site in one snapshot: the trees agree. */
	if (!worker_command(sh, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
		goto out;
	res = PQexecParams(sh->pg, "SELECT * FROM allot.fairshare_state(to_timestamp($1))", 1, NULL,
	    params, NULL, NULL, 1);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		sites = PQexecParams(sh->pg, "SELECT * FROM allot.fairshare_site_usage()", 0, NULL,
		    NULL, NULL, NULL, 1);
	t1 = twirp_now_usec();
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQresultStatus(sites) != PGRES_TUPLES_OK) {
		snprintf(sh->werr, sizeof(sh->werr), "%s", PQerrorMessage(sh->pg));
		PQclear(res);
		PQclear(sites);
		(void)worker_command(sh, "ROLLBACK");
		goto out;
	}
	if (!worker_command(sh, "COMMIT"))
		goto done;
	cpu0 = thread_cpu_ms();
	sh->built = state_build(res, sh->wat, &sh->wset);
	sh->build_cpu_ms = thread_cpu_ms() - cpu0;
	t2 = twirp_now_usec();
	sh->build_ms = (double)(t2 - t1) / 1000.0;
	sh->query_ms = (double)(t1 - t0) / 1000.0;
	if (sh->built != NULL && state_add_sites(sh->built, sites) != 0) {
		state_free(sh->built);
		sh->built = NULL;
	}
	sh->sites_ms = (double)(twirp_now_usec() - t2) / 1000.0;
	if (sh->built == NULL)
		snprintf(sh->werr, sizeof(sh->werr),
		    "out of memory building the trees, or the state's columns are not as expected");
done:
	PQclear(res);
	PQclear(sites);
out:
	/* The loop reads the byte; a full pipe cannot happen with one load at a time. */
	while (write(sh->wake[1], "x", 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void
trim_newline(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/* The worker is done: takes its state, or keeps the old one. */
static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct share *sh = arg;
	struct sh_state *st;
	char byte;

	(void)what;
	if (read(fd, &byte, 1) != 1 || !sh->worker_running)
		return;
	pthread_join(sh->worker, NULL);
	sh->worker_running = false;
	if ((st = sh->built) == NULL) {
		trim_newline(sh->werr);
		log_warnx("fair share: could not read the state: %s", sh->werr);
		if (sh->state == NULL) {
			answer_parked(sh, "the database cannot be read");
			schedule(sh, RETRY_S);
		}
		return;
	}
	sh->built = NULL;
	log_info("fair share: %d nodes, %d users at %" PRId64
	         " (query %.1f ms, build %.1f ms, %.1f ms of CPU); %zu site trees in %.1f ms",
	    fs_tree_count(st->tree), fs_tree_users(st->tree), st->at_s, sh->query_ms, sh->build_ms,
	    sh->build_cpu_ms, st->nsites, sh->sites_ms);
	state_free(sh->state);
	sh->state = st;
	answer_parked(sh, "");
}

/* Starts a load of the state at the last period boundary, unless one is running. */
static void
load(struct share *sh)
{
	int64_t now = (int64_t)time(NULL);
	int rc;

	if (sh->worker_running)
		return;
	sh->wat = now - now % sh->set.period_s;
	sh->wset = sh->set;
	if ((rc = pthread_create(&sh->worker, NULL, worker_main, sh)) != 0) {
		log_warnx("fair share: could not start a thread: %s", strerror(rc));
		if (sh->state == NULL) {
			answer_parked(sh, "no thread could be started");
			schedule(sh, RETRY_S);
		}
		return;
	}
	sh->worker_running = true;
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct share *sh = arg;
	int64_t now = (int64_t)time(NULL);

	(void)fd;
	(void)what;
	/* The next boundary, a second past it so that every allotd's clock is there; a
	 * load that fails with no state yet brings it forward (schedule replaces it). */
	schedule(sh, (int)(sh->set.period_s - now % sh->set.period_s) + 1);
	load(sh);
}

static void
schedule(struct share *sh, int delay_s)
{
	struct timeval tv = {delay_s, 0};

	if (evtimer_add(sh->timer, &tv) != 0)
		log_warnx("fair share: could not arm the recompute timer");
}

struct share *
share_new(struct event_base *base, const char *conninfo, const struct share_settings *s)
{
	struct share *sh = calloc(1, sizeof(*sh));

	if (sh == NULL)
		return NULL;
	sh->base = base;
	sh->set = *s;
	sh->wake[0] = sh->wake[1] = -1;
	if ((sh->conninfo = strdup(conninfo)) == NULL || pipe2(sh->wake, O_CLOEXEC) != 0 ||
	    (sh->timer = evtimer_new(base, timer_cb, sh)) == NULL ||
	    (sh->wake_ev = event_new(base, sh->wake[0], EV_READ | EV_PERSIST, wake_cb, sh)) ==
	        NULL ||
	    event_add(sh->wake_ev, NULL) != 0) {
		share_free(sh);
		return NULL;
	}
	the_share = sh;
	return sh;
}

void
share_free(struct share *sh)
{
	struct parked *p;

	if (sh == NULL)
		return;
	while ((p = sh->parked) != NULL) {
		sh->parked = p->next;
		free(p);
	}
	/* A load in flight ends within its timeouts (connect 5 s, statement 60 s). */
	if (sh->worker_running)
		pthread_join(sh->worker, NULL);
	state_free(sh->built);
	PQfinish(sh->pg);
	if (sh->timer != NULL)
		event_free(sh->timer);
	if (sh->wake_ev != NULL)
		event_free(sh->wake_ev);
	for (int i = 0; i < 2; i++)
		if (sh->wake[i] >= 0)
			close(sh->wake[i]);
	free(sh->conninfo);
	state_free(sh->state);
	if (the_share == sh)
		the_share = NULL;
	free(sh);
}

int
share_start(struct share *sh)
{
	struct timeval now = {0, 0};

	return evtimer_add(sh->timer, &now);
}

void
share_set_settings(struct share *sh, const struct share_settings *s)
{
	sh->set = *s;
}

/* Serves call from the state, or parks it until the first state is built. */
static void
with_state(struct twirp_call *call, void (*serve)(struct twirp_call *, const struct sh_state *))
{
	struct share *sh = the_share;
	struct parked *p;

	if (sh != NULL && sh->state != NULL) {
		serve(call, sh->state);
		return;
	}
	if (sh == NULL || sh->nparked >= MAX_PARKED || (p = calloc(1, sizeof(*p))) == NULL) {
		twirp_reply_error(call, TWIRP_UNAVAILABLE, "fair share is not computed yet");
		return;
	}
	p->call = call;
	p->serve = serve;
	p->next = sh->parked;
	sh->parked = p;
	sh->nparked++;
}

/* ---------------------------------------------------------------- answers */

static const char *
alg_name(enum fs_algorithm a)
{
	return a == FS_CLASSIC ? "classic" : "fair_tree";
}

static void
format_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%s", "");
}

/* The project an account names at site, as ingestion resolves it; -1 for none. */
static int
resolve(const struct sh_state *st, const char *site, const char *account)
{
	size_t ls = strlen(site), la = strlen(account);
	char key[512];
	int pi;

	/* No snprintf on this path: it was 4 % of GetPriorities' CPU (perf). */
	if (st->by_account.n > 0 && ls + la + 2 <= sizeof(key)) {
		memcpy(key, site, ls);
		key[ls] = '\n';
		memcpy(key + ls + 1, account, la + 1);
		if ((pi = smap_get(&st->by_account, key)) >= 0)
			return pi;
	}
	return smap_get(&st->by_name, account);
}

/*
 * The tree of the usage asked for: "" all sites, else that site's; NULL after
 * answering not_found for a name that is no site.
 */
static const struct fs_tree *
usage_tree(struct twirp_call *call, const struct sh_state *st, const char *site)
{
	char at[32];

	if (site == NULL || site[0] == '\0')
		return st->tree;
	for (size_t i = 0; i < st->nsites; i++)
		if (strcmp(st->sites[i].name, site) == 0)
			return st->sites[i].tree;
	format_time(st->at_s, at, sizeof(at));
	twirp_reply_error(call, TWIRP_NOT_FOUND,
	    "usage_site: \"%.64s\" is not a site (the sites of the recompute at %s)", site, at);
	return NULL;
}

static double
user_factor(const struct fs_tree *t, int project_node, const char *user, bool *known)
{
	struct fs_node_info info;
	int u = fs_tree_find(t, project_node, user);

	*known = u >= 0 && fs_tree_node_info(t, u, &info) == 0;
	return *known ? info.factor : fs_tree_new_user_factor(t, project_node);
}

static void
serve_priorities(struct twirp_call *call, const struct sh_state *st)
{
	const Allot__V1__GetPrioritiesRequest *req = (const void *)call->request;
	Allot__V1__GetPrioritiesResponse resp = ALLOT__V1__GET_PRIORITIES_RESPONSE__INIT;
	Allot__V1__Priority *items = calloc(req->n_pairs, sizeof(*items));
	Allot__V1__Priority **ptrs = calloc(req->n_pairs, sizeof(*ptrs));
	const struct fs_tree *t = usage_tree(call, st, req->usage_site);
	char at[32];

	if (t == NULL) {
		free(items);
		free(ptrs);
		return;
	}
	if (items == NULL || ptrs == NULL) {
		free(items);
		free(ptrs);
		twirp_reply_error(call, TWIRP_INTERNAL, "out of memory");
		return;
	}
	for (size_t i = 0; i < req->n_pairs; i++) {
		const Allot__V1__PriorityPair *pair = req->pairs[i];
		Allot__V1__Priority *it = &items[i];
		int pi = resolve(st, req->site, pair->account);
		struct fs_node_info pinfo;
		bool known;

		allot__v1__priority__init(it);
		ptrs[i] = it;
		it->account = pair->account;
		it->user = pair->user;
		if (pi < 0 || fs_tree_node_info(t, st->projects[pi].node, &pinfo) != 0) {
			it->project = (char *)"";
			continue;
		}
		it->project = (char *)pinfo.name;
		it->fairshare = user_factor(t, st->projects[pi].node, pair->user, &known);
		it->known_user = known;
		it->pacing = st->projects[pi].pacing.factor;
		if (!st->projects[pi].active)
			it->pacing = 0.5;
		it->combined = fs_combine(it->fairshare, it->pacing, st->set.pacing_weight);
	}
	format_time(st->at_s, at, sizeof(at));
	resp.n_priorities = req->n_pairs;
	resp.priorities = ptrs;
	resp.evaluated_at = at;
	resp.algorithm = (char *)alg_name(st->set.alg);
	resp.usage_site = req->usage_site;
	twirp_reply(call, &resp.base);
	free(items);
	free(ptrs);
}

void
share_get_priorities(struct twirp_call *call)
{
	const Allot__V1__GetPrioritiesRequest *req = (const void *)call->request;

	if (req->n_pairs == 0) {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT, "pairs: at least one is required");
		return;
	}
	if (req->n_pairs > SHARE_MAX_PAIRS) {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT,
		    "pairs: %zu asked, at most %d in one call", req->n_pairs, SHARE_MAX_PAIRS);
		return;
	}
	with_state(call, serve_priorities);
}

/* An Explain answer and the storage it points into. */
struct explain {
	Allot__V1__ExplainResponse resp;
	Allot__V1__Pacing pacing;
	Allot__V1__ShareLevel *levels;
	Allot__V1__ShareLevel **ptrs;
	char at[32], wstart[32], wend[32], exhausted[32];
};

static const char *
kind_name(enum fs_kind k)
{
	static const char *const names[] = {"root", "program", "organization", "project", "user"};

	return k >= FS_ROOT && k <= FS_USER ? names[k] : "?";
}

static void
fill_level(Allot__V1__ShareLevel *l, const struct fs_node_info *n, double pacing, double w)
{
	allot__v1__share_level__init(l);
	l->kind = (char *)kind_name(n->kind);
	l->name = (char *)n->name;
	l->shares_raw = n->shares_raw;
	l->shares_explicit = n->shares_explicit;
	l->shares_norm = n->shares_norm;
	l->shares_global = n->shares_global;
	l->usage_raw = n->usage_raw;
	l->usage_norm = n->usage_norm;
	l->usage_global = n->usage_global;
	l->usage_efctv = n->usage_efctv;
	l->level_fs = n->level_fs;
	if (n->kind == FS_USER) {
		l->fairshare = n->factor;
		l->rank = n->rank;
		l->combined = fs_combine(n->factor, pacing, w);
	}
}

static void
fill_pacing(struct explain *e, const struct sh_project *p, const struct fs_pacing *pc)
{
	Allot__V1__Pacing *o = &e->pacing;

	allot__v1__pacing__init(o);
	o->active = p->active;
	o->factor = p->active ? pc->factor : 0.5;
	o->window_start = o->window_end = o->exhausted_at = (char *)"";
	if (!p->active)
		return;
	format_time(p->start_s, e->wstart, sizeof(e->wstart));
	format_time(p->end_s, e->wend, sizeof(e->wend));
	o->window_start = e->wstart;
	o->window_end = e->wend;
	o->granted_gpu_hours = p->granted;
	o->used_gpu_hours = pc->expected_units + pc->ahead_units;
	o->expected_gpu_hours = pc->expected_units;
	o->ahead_gpu_hours = pc->ahead_units;
	o->months = pc->months;
	o->month = pc->month;
	o->month_base_gpu_hours = pc->month_base;
	o->carry_gpu_hours = pc->carry_units;
	o->month_quota_gpu_hours = pc->month_quota;
	o->month_used_gpu_hours = pc->month_used;
	o->month_rest_gpu_hours = pc->month_rest;
	o->overdraw_limit_gpu_hours = pc->overdraw_limit;
	o->overdrawn = pc->overdrawn;
	o->burn_gpu_hours_per_day = p->burn_per_day;
	if (pc->exhausted_at_s != 0) {
		format_time(pc->exhausted_at_s, e->exhausted, sizeof(e->exhausted));
		o->exhausted_at = e->exhausted;
	}
}

/*
 * Fills e for the project node of p in tree t (computed), with pacing pc. Returns 0,
 * or -1 when out of memory (e then holds nothing to free).
 */
static int
explain_build(struct explain *e, const struct sh_state *st, const struct fs_tree *t,
    const char *usage_site, const struct sh_project *p, const struct fs_pacing *pc)
{
	struct fs_node_info n;
	int path[4], depth = 0, count = fs_tree_count(t), nusers = 0, k = 0;
	double pf = p->active ? pc->factor : 0.5;

	for (int i = p->node; i >= 0 && depth < 4; i = n.parent) {
		if (fs_tree_node_info(t, i, &n) != 0)
			return -1;
		path[depth++] = i;
	}
	for (int i = 0; i < count; i++)
		if (fs_tree_node_info(t, i, &n) == 0 && n.parent == p->node)
			nusers++;
	e->levels = calloc((size_t)(depth + nusers), sizeof(*e->levels));
	e->ptrs = calloc((size_t)(depth + nusers), sizeof(*e->ptrs));
	if (e->levels == NULL || e->ptrs == NULL) {
		free(e->levels);
		free(e->ptrs);
		return -1;
	}
	for (int d = depth - 1; d >= 0; d--) {
		if (fs_tree_node_info(t, path[d], &n) != 0)
			continue;
		e->ptrs[k] = &e->levels[k];
		fill_level(&e->levels[k++], &n, pf, st->set.pacing_weight);
	}
	for (int i = 0; i < count; i++)
		if (fs_tree_node_info(t, i, &n) == 0 && n.parent == p->node) {
			e->ptrs[k] = &e->levels[k];
			fill_level(&e->levels[k++], &n, pf, st->set.pacing_weight);
		}
	allot__v1__explain_response__init(&e->resp);
	if (fs_tree_node_info(t, p->node, &n) != 0)
		return -1;
	e->resp.project = (char *)n.name;
	e->resp.algorithm = (char *)alg_name(st->set.alg);
	format_time(st->at_s, e->at, sizeof(e->at));
	e->resp.evaluated_at = e->at;
	e->resp.half_life_s = st->set.half_life_s;
	e->resp.pacing_weight = st->set.pacing_weight;
	e->resp.users_total = fs_tree_users(t);
	e->resp.n_levels = (size_t)k;
	e->resp.levels = e->ptrs;
	e->resp.usage_site = (char *)usage_site;
	fill_pacing(e, p, pc);
	e->resp.pacing = &e->pacing;
	return 0;
}

static void
explain_cleanup(struct explain *e)
{
	free(e->levels);
	free(e->ptrs);
}

/* The project of name, or -1 after answering not_found. */
static int
find_project(struct twirp_call *call, const struct sh_state *st, const char *name)
{
	int pi = name[0] != '\0' ? smap_get(&st->by_name, name) : -1;

	if (name[0] == '\0')
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT, "project is required");
	else if (pi < 0)
		twirp_reply_error(call, TWIRP_NOT_FOUND, "project \"%.64s\" does not exist", name);
	return pi;
}

static void
serve_explain(struct twirp_call *call, const struct sh_state *st)
{
	const Allot__V1__ExplainRequest *req = (const void *)call->request;
	struct explain e;
	const struct fs_tree *t;
	int pi = find_project(call, st, req->project);

	if (pi < 0 || (t = usage_tree(call, st, req->usage_site)) == NULL)
		return;
	memset(&e, 0, sizeof(e));
	if (explain_build(
	        &e, st, t, req->usage_site, &st->projects[pi], &st->projects[pi].pacing) != 0) {
		twirp_reply_error(call, TWIRP_INTERNAL, "out of memory");
		return;
	}
	twirp_reply(call, &e.resp.base);
	explain_cleanup(&e);
}

void
share_explain(struct twirp_call *call)
{
	with_state(call, serve_explain);
}

/* Adds h GPU-hours now to user (or, "", shared by the project's users) in t. */
static int
what_if_usage(struct fs_tree *t, int project, const char *user, double h, int64_t at)
{
	struct fs_node_info n;
	int count = fs_tree_count(t), users = 0, u;

	if (user[0] != '\0') {
		u = fs_tree_add(t, project, FS_USER, user);
		return u < 0 ? -1 : fs_tree_add_usage(t, u, h, at);
	}
	for (int i = 0; i < count; i++)
		if (fs_tree_node_info(t, i, &n) == 0 && n.parent == project)
			users++;
	if (users == 0) {
		u = fs_tree_add(t, project, FS_USER, "-");
		return u < 0 ? -1 : fs_tree_add_usage(t, u, h, at);
	}
	for (int i = 0; i < count; i++)
		if (fs_tree_node_info(t, i, &n) == 0 && n.parent == project &&
		    fs_tree_add_usage(t, i, h / users, at) != 0)
			return -1;
	return 0;
}

static bool
valid_user(const char *u)
{
	size_t n = strlen(u);

	if (n > 64)
		return false;
	for (; *u; u++)
		if (!((*u >= 'A' && *u <= 'Z') || (*u >= 'a' && *u <= 'z') ||
		        (*u >= '0' && *u <= '9') || strchr("_.@-", *u) != NULL))
			return false;
	return true;
}

static void
serve_what_if(struct twirp_call *call, const struct sh_state *st)
{
	const Allot__V1__WhatIfRequest *req = (const void *)call->request;
	Allot__V1__WhatIfResponse resp = ALLOT__V1__WHAT_IF_RESPONSE__INIT;
	struct explain now, after;
	struct fs_pacing pc;
	struct fs_tree *t;
	const struct fs_tree *base;
	const struct sh_project *p;
	int pi = find_project(call, st, req->project);

	if (pi < 0 || (base = usage_tree(call, st, req->usage_site)) == NULL)
		return;
	p = &st->projects[pi];
	memset(&now, 0, sizeof(now));
	memset(&after, 0, sizeof(after));
	if ((t = fs_tree_clone(base)) == NULL)
		goto oom;
	if (what_if_usage(t, p->node, req->user, req->gpu_hours, st->at_s) != 0 ||
	    fs_tree_compute(t) != 0 || project_pacing(st, p, req->gpu_hours, &pc) != 0) {
		fs_tree_free(t);
		goto oom;
	}
	if (explain_build(&now, st, base, req->usage_site, p, &p->pacing) != 0) {
		fs_tree_free(t);
		goto oom;
	}
	if (explain_build(&after, st, t, req->usage_site, p, &pc) != 0) {
		explain_cleanup(&now);
		fs_tree_free(t);
		goto oom;
	}
	resp.now = &now.resp;
	resp.after = &after.resp;
	resp.gpu_hours = req->gpu_hours;
	twirp_reply(call, &resp.base);
	explain_cleanup(&now);
	explain_cleanup(&after);
	fs_tree_free(t);
	return;
oom:
	twirp_reply_error(call, TWIRP_INTERNAL, "out of memory");
}

void
share_what_if(struct twirp_call *call)
{
	const Allot__V1__WhatIfRequest *req = (const void *)call->request;

	if (!isfinite(req->gpu_hours) || req->gpu_hours <= 0 || req->gpu_hours > 1e9) {
		twirp_reply_error(call, TWIRP_INVALID_ARGUMENT,
		    "gpu_hours must be more than 0 and at most 1e9, not %g", req->gpu_hours);
		return;
	}
	if (!valid_user(req->user)) {
		twirp_reply_error(
		    call, TWIRP_INVALID_ARGUMENT, "user \"%.64s\" is not valid", req->user);
		return;
	}
	with_state(call, serve_what_if);
}
