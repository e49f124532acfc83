/*
 * fairshare: the fair-share tree (Fair Tree and classic) and allocation pacing, as
 * fairshare.h states them. Pure computation: reading the tree from PostgreSQL, the
 * clock and the RPC are share.c's.
 *
 * Nodes live in one array, a parent always before its children (fs_tree_add appends),
 * so one pass in reverse index order sums children into parents and one pass in index
 * order normalizes parents before children. Names are found through an open-addressing
 * hash of (parent, name). The children lists are rebuilt only when nodes were added.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fairshare.h"

#define FS_MONTH_S 2629746.0 /* 365.2425 days / 12 */

struct fs_node {
	char *name;
	int parent;
	enum fs_kind kind;
	bool shares_explicit;
	double shares_set;     /* explicit figure */
	double shares_default; /* projects: granted GPU-hours; users: 1 */
	double shares_raw;     /* in effect, after fs_tree_compute */
	double child_shares;   /* sum of the children's shares_raw */
	double usage_raw;
	double shares_norm, shares_global, usage_norm, usage_global, usage_efctv, level_fs;
	double factor;
	uint32_t rank;
	uint32_t entry_rank; /* projects: where a user with no usage would rank */
};

struct fs_tree {
	struct fs_node *nodes;
	int count, cap;
	int users;
	int *hash; /* node index + 1, 0 empty */
	size_t hash_cap;
	int *child_start; /* CSR: children of i are child_idx[child_start[i] .. [i+1]) */
	int *child_idx;
	bool children_dirty;
	int64_t half_life_s;
	double log_d; /* ln d */
	enum fs_algorithm alg;
	int64_t now_s;
};

/* A sibling being sorted by level fair share. */
struct fs_entry {
	double lf;
	int idx;
};

double
fs_decay(int64_t half_life_s, int64_t t_s)
{
	if (half_life_s <= 0 || t_s <= 0)
		return 1.0;
	return exp((double)t_s * log1p(-M_LN2 / (double)half_life_s));
}

static uint64_t
fs_hash_key(int parent, const char *name)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uint32_t)parent;

	h *= 1099511628211ULL;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return h;
}

static int
fs_hash_grow(struct fs_tree *t)
{
	size_t cap = t->hash_cap ? t->hash_cap * 2 : 64;
	int *h = calloc(cap, sizeof(*h));

	if (h == NULL)
		return -1;
	for (int i = 1; i < t->count; i++) {
		size_t j = fs_hash_key(t->nodes[i].parent, t->nodes[i].name) & (cap - 1);

		while (h[j] != 0)
			j = (j + 1) & (cap - 1);
		h[j] = i + 1;
	}
	free(t->hash);
	t->hash = h;
	t->hash_cap = cap;
	return 0;
}

struct fs_tree *
fs_tree_new(int64_t half_life_s, enum fs_algorithm alg, int64_t now_s)
{
	struct fs_tree *t;

	if (half_life_s < 0 || (alg != FS_FAIR_TREE && alg != FS_CLASSIC))
		return NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->cap = 16;
	t->nodes = calloc((size_t)t->cap, sizeof(*t->nodes));
	if (t->nodes == NULL)
		goto fail;
	t->count = 1;
	t->nodes[0].name = strdup("root");
	if (t->nodes[0].name == NULL || fs_hash_grow(t) < 0)
		goto fail;
	t->nodes[0].parent = -1;
	t->nodes[0].kind = FS_ROOT;
	t->children_dirty = true;
	t->half_life_s = half_life_s;
	t->log_d = half_life_s > 0 ? log1p(-M_LN2 / (double)half_life_s) : 0.0;
	t->alg = alg;
	t->now_s = now_s;
	return t;
fail:
	fs_tree_free(t);
	return NULL;
}

void
fs_tree_free(struct fs_tree *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < t->count; i++)
		free(t->nodes[i].name);
	free(t->nodes);
	free(t->hash);
	free(t->child_start);
	free(t->child_idx);
	free(t);
}

struct fs_tree *
fs_tree_clone(const struct fs_tree *t)
{
	struct fs_tree *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	*c = *t;
	c->nodes = calloc((size_t)t->cap, sizeof(*c->nodes));
	c->hash = malloc(t->hash_cap * sizeof(*c->hash));
	c->child_start = NULL;
	c->child_idx = NULL;
	c->children_dirty = true;
	c->count = 0;
	if (c->nodes == NULL || c->hash == NULL)
		goto fail;
	memcpy(c->hash, t->hash, t->hash_cap * sizeof(*c->hash));
	for (int i = 0; i < t->count; i++) {
		c->nodes[i] = t->nodes[i];
		c->nodes[i].name = strdup(t->nodes[i].name);
		if (c->nodes[i].name == NULL)
			goto fail;
		c->count = i + 1;
	}
	return c;
fail:
	fs_tree_free(c);
	return NULL;
}

int
fs_tree_find(const struct fs_tree *t, int parent, const char *name)
{
	size_t j = fs_hash_key(parent, name) & (t->hash_cap - 1);

	for (; t->hash[j] != 0; j = (j + 1) & (t->hash_cap - 1)) {
		const struct fs_node *n = &t->nodes[t->hash[j] - 1];

		if (n->parent == parent && strcmp(n->name, name) == 0)
			return t->hash[j] - 1;
	}
	return -1;
}

int
fs_tree_add(struct fs_tree *t, int parent, enum fs_kind kind, const char *name)
{
	int i;
	size_t j;
	struct fs_node *n;

	if (parent < 0 || parent >= t->count || kind != t->nodes[parent].kind + 1 ||
	    kind > FS_USER || name == NULL)
		return -1;
	i = fs_tree_find(t, parent, name);
	if (i >= 0)
		return t->nodes[i].kind == kind ? i : -1;
	if (t->count == t->cap) {
		struct fs_node *nn = realloc(t->nodes, (size_t)t->cap * 2 * sizeof(*nn));

		if (nn == NULL)
			return -1;
		t->nodes = nn;
		t->cap *= 2;
	}
	if ((size_t)(t->count + 1) * 2 > t->hash_cap && fs_hash_grow(t) < 0)
		return -1;
	n = &t->nodes[t->count];
	memset(n, 0, sizeof(*n));
	n->name = strdup(name);
	if (n->name == NULL)
		return -1;
	n->parent = parent;
	n->kind = kind;
	n->shares_default = kind == FS_USER ? 1.0 : 0.0;
	i = t->count++;
	j = fs_hash_key(parent, name) & (t->hash_cap - 1);
	while (t->hash[j] != 0)
		j = (j + 1) & (t->hash_cap - 1);
	t->hash[j] = i + 1;
	if (kind == FS_USER)
		t->users++;
	t->children_dirty = true;
	return i;
}

int
fs_tree_count(const struct fs_tree *t)
{
	return t->count;
}

int
fs_tree_users(const struct fs_tree *t)
{
	return t->users;
}

int64_t
fs_tree_now(const struct fs_tree *t)
{
	return t->now_s;
}

int
fs_tree_set_default_shares(struct fs_tree *t, int node, double shares)
{
	if (node <= 0 || node >= t->count || t->nodes[node].kind != FS_PROJECT ||
	    !isfinite(shares) || shares < 0)
		return -1;
	t->nodes[node].shares_default = shares;
	return 0;
}

int
fs_tree_set_shares(struct fs_tree *t, int node, bool explicit_, double shares)
{
	if (node <= 0 || node >= t->count || !isfinite(shares) || shares < 0)
		return -1;
	t->nodes[node].shares_explicit = explicit_;
	t->nodes[node].shares_set = explicit_ ? shares : 0.0;
	return 0;
}

void
fs_tree_advance(struct fs_tree *t, int64_t now_s)
{
	double f;

	if (now_s <= t->now_s)
		return;
	f = t->half_life_s > 0 ? exp((double)(now_s - t->now_s) * t->log_d) : 1.0;
	t->now_s = now_s;
	if (f == 1.0)
		return;
	for (int i = 0; i < t->count; i++)
		t->nodes[i].usage_raw *= f;
}

int
fs_tree_add_usage(struct fs_tree *t, int user, double units, int64_t at_s)
{
	if (user <= 0 || user >= t->count || t->nodes[user].kind != FS_USER || !isfinite(units) ||
	    units < 0)
		return -1;
	fs_tree_advance(t, at_s);
	if (at_s < t->now_s && t->half_life_s > 0)
		units *= exp((double)(t->now_s - at_s) * t->log_d);
	for (int i = user; i >= 0; i = t->nodes[i].parent)
		t->nodes[i].usage_raw += units;
	return 0;
}

void
fs_tree_clear_usage(struct fs_tree *t)
{
	for (int i = 0; i < t->count; i++)
		t->nodes[i].usage_raw = 0.0;
}

static int
fs_build_children(struct fs_tree *t)
{
	int *start = calloc((size_t)t->count + 1, sizeof(*start));
	int *idx = malloc(((size_t)t->count + 1) * sizeof(*idx));

	if (start == NULL || idx == NULL) {
		free(start);
		free(idx);
		return -1;
	}
	for (int i = 1; i < t->count; i++)
		start[t->nodes[i].parent + 1]++;
	for (int i = 0; i < t->count; i++)
		start[i + 1] += start[i];
	/* Fill in index order, so siblings keep the order they were added in. */
	{
		int *fill = malloc(((size_t)t->count + 1) * sizeof(*fill));

		if (fill == NULL) {
			free(start);
			free(idx);
			return -1;
		}
		memcpy(fill, start, (size_t)t->count * sizeof(*fill));
		for (int i = 1; i < t->count; i++)
			idx[fill[t->nodes[i].parent]++] = i;
		free(fill);
	}
	free(t->child_start);
	free(t->child_idx);
	t->child_start = start;
	t->child_idx = idx;
	t->children_dirty = false;
	return 0;
}

/* Higher LF first; equal LF in index order, so that a computation is reproducible. */
static int
fs_entry_cmp(const void *a, const void *b)
{
	const struct fs_entry *x = a, *y = b;

	if (x->lf != y->lf)
		return x->lf < y->lf ? 1 : -1;
	return (x->idx > y->idx) - (x->idx < y->idx);
}

/*
 * Ranks the users under the siblings sib[0 .. n) (sorted here), depth first, as
 * fairshare.h states; rank and rnt are Slurm's "rank" and "rank, no ties".
 */
static int
fs_rank(struct fs_tree *t, struct fs_entry *sib, int n, uint32_t *rank, uint32_t *rnt,
    bool account_tied)
{
	double prev = 0.0;

	qsort(sib, (size_t)n, sizeof(*sib), fs_entry_cmp);
	for (int i = 0; i < n; i++) {
		struct fs_node *node = &t->nodes[sib[i].idx];
		bool tied = i == 0 ? account_tied : prev == sib[i].lf;

		if (node->kind == FS_USER) {
			if (!tied)
				*rank = *rnt;
			node->rank = *rank;
			node->factor = t->users > 0 ? (double)*rank / t->users : 0.0;
			(*rnt)--;
		} else {
			int m = 0, total = 0, k = 0;
			struct fs_entry *kids;
			int rc;

			while (i + m + 1 < n && t->nodes[sib[i + m + 1].idx].kind != FS_USER &&
			    sib[i + m + 1].lf == sib[i].lf)
				m++;
			for (int a = i; a <= i + m; a++) {
				int c = sib[a].idx;

				total += t->child_start[c + 1] - t->child_start[c];
				/* A user with no usage ranks at the top of its project's list: tied
				 * with the first user when that one has no usage either. */
				t->nodes[c].entry_rank = tied ? *rank : *rnt;
			}
			kids = malloc(((size_t)total + 1) * sizeof(*kids));
			if (kids == NULL)
				return -1;
			for (int a = i; a <= i + m; a++) {
				int c = sib[a].idx;

				for (int j = t->child_start[c]; j < t->child_start[c + 1]; j++) {
					kids[k].idx = t->child_idx[j];
					kids[k].lf = t->nodes[kids[k].idx].level_fs;
					k++;
				}
			}
			rc = fs_rank(t, kids, total, rank, rnt, tied);
			if (rc == 0 && total > 0 && t->nodes[kids[0].idx].kind == FS_USER &&
			    isinf(kids[0].lf))
				for (int a = i; a <= i + m; a++)
					t->nodes[sib[a].idx].entry_rank =
					    t->nodes[kids[0].idx].rank;
			free(kids);
			if (rc < 0)
				return -1;
			i += m;
		}
		prev = sib[i].lf;
	}
	return 0;
}

int
fs_tree_compute(struct fs_tree *t)
{
	struct fs_node *nd = t->nodes;
	uint32_t rank, rnt;
	struct fs_entry *top;
	int ntop, rc;

	if (t->children_dirty && fs_build_children(t) < 0)
		return -1;
	for (int i = 0; i < t->count; i++)
		nd[i].child_shares = 0.0;
	/* Bottom-up: an account's default is the sum of its children's shares. */
	for (int i = t->count - 1; i >= 0; i--) {
		struct fs_node *n = &nd[i];

		if (n->shares_explicit)
			n->shares_raw = n->shares_set;
		else if (n->kind == FS_USER || n->kind == FS_PROJECT)
			n->shares_raw = n->shares_default;
		else
			n->shares_raw = n->child_shares;
		if (n->parent >= 0)
			nd[n->parent].child_shares += n->shares_raw;
	}
	nd[0].shares_norm = nd[0].shares_global = 1.0;
	nd[0].usage_norm = nd[0].usage_global = nd[0].usage_raw > 0 ? 1.0 : 0.0;
	nd[0].usage_efctv = nd[0].usage_global;
	nd[0].level_fs = 0.0;
	/* Top-down: parents are normalized before their children. */
	for (int i = 1; i < t->count; i++) {
		struct fs_node *n = &nd[i];
		const struct fs_node *p = &nd[n->parent];
		double s = p->child_shares > 0 ? n->shares_raw / p->child_shares : 0.0;

		n->shares_norm = s;
		n->shares_global = p->shares_global * s;
		n->usage_norm = p->usage_raw > 0 ? n->usage_raw / p->usage_raw : 0.0;
		n->usage_global = nd[0].usage_raw > 0 ? n->usage_raw / nd[0].usage_raw : 0.0;
		n->usage_efctv = n->usage_global + (p->usage_efctv - n->usage_global) * s;
		if (s == 0.0)
			n->level_fs = 0.0;
		else if (n->usage_norm == 0.0)
			n->level_fs = INFINITY;
		else
			n->level_fs = s / n->usage_norm;
		n->rank = 0;
		n->entry_rank = 0;
		n->factor = 0.0;
	}
	if (t->alg == FS_CLASSIC) {
		for (int i = 1; i < t->count; i++) {
			struct fs_node *n = &nd[i];

			if (n->kind == FS_USER)
				n->factor = n->shares_global > 0
				    ? exp2(-n->usage_efctv / n->shares_global)
				    : 0.0;
		}
		return 0;
	}
	ntop = t->child_start[1] - t->child_start[0];
	top = malloc(((size_t)ntop + 1) * sizeof(*top));
	if (top == NULL)
		return -1;
	for (int j = 0; j < ntop; j++) {
		top[j].idx = t->child_idx[t->child_start[0] + j];
		top[j].lf = nd[top[j].idx].level_fs;
	}
	rank = rnt = (uint32_t)t->users;
	rc = fs_rank(t, top, ntop, &rank, &rnt, false);
	free(top);
	return rc;
}

int
fs_tree_node_info(const struct fs_tree *t, int node, struct fs_node_info *out)
{
	const struct fs_node *n;

	if (node < 0 || node >= t->count)
		return -1;
	n = &t->nodes[node];
	out->kind = n->kind;
	out->name = n->name;
	out->parent = n->parent;
	out->shares_raw = n->shares_raw;
	out->shares_explicit = n->shares_explicit;
	out->shares_norm = n->shares_norm;
	out->shares_global = n->shares_global;
	out->usage_raw = n->usage_raw;
	out->usage_norm = n->usage_norm;
	out->usage_global = n->usage_global;
	out->usage_efctv = n->usage_efctv;
	out->level_fs = n->level_fs;
	out->factor = n->factor;
	out->rank = n->rank;
	return 0;
}

double
fs_tree_new_user_factor(const struct fs_tree *t, int project)
{
	const struct fs_node *n;

	if (project <= 0 || project >= t->count || t->nodes[project].kind != FS_PROJECT)
		return -1.0;
	n = &t->nodes[project];
	if (t->alg == FS_CLASSIC)
		return n->shares_global > 0 ? exp2(-n->usage_efctv / n->shares_global) : 0.0;
	if (t->users == 0)
		return 1.0;
	return (double)n->entry_rank / t->users;
}

/* --------------------------------------------------------------------- pacing */

static double
fs_clamp01(double x)
{
	return x < 0 ? 0 : x > 1 ? 1 : x;
}

int
fs_pacing_compute(const struct fs_pacing_input *in, struct fs_pacing *out, char *err, size_t errlen)
{
	double len, q, rest = 0.0, elapsed;
	int m, cur;

	memset(out, 0, sizeof(*out));
	if (in->end_s <= in->start_s) {
		snprintf(err, errlen, "allocation window is empty");
		return -1;
	}
	if (!isfinite(in->granted_units) || in->granted_units <= 0) {
		snprintf(err, errlen, "granted units must be positive");
		return -1;
	}
	if (!isfinite(in->used_units) || in->used_units < 0 || !isfinite(in->burn_units_per_s) ||
	    in->burn_units_per_s < 0 || in->month_count < 0 ||
	    (in->month_count > 0 && in->month_used == NULL)) {
		snprintf(err, errlen, "usage figures must be finite and not negative");
		return -1;
	}
	for (int i = 0; i < in->month_count; i++)
		if (!isfinite(in->month_used[i]) || in->month_used[i] < 0) {
			snprintf(
			    err, errlen, "usage of month %d must be finite and not negative", i);
			return -1;
		}
	len = (double)(in->end_s - in->start_s);
	m = (int)lround(len / FS_MONTH_S);
	if (m < 1)
		m = 1;
	q = in->granted_units / m;
	elapsed = (double)(in->now_s - in->start_s);
	if (elapsed < 0)
		elapsed = 0;
	if (elapsed > len)
		elapsed = len;
	cur = (int)floor(elapsed * m / len);
	if (cur > m - 1)
		cur = m - 1;
	for (int i = 0; i < cur; i++) {
		double used = i < in->month_count ? in->month_used[i] : 0.0;

		rest = q + rest - used;
		if (rest > q)
			rest = q;
	}
	out->months = m;
	out->month = cur;
	out->month_base = q;
	out->expected_units = in->granted_units * elapsed / len;
	out->ahead_units = in->used_units - out->expected_units;
	out->carry_units = rest;
	out->month_quota = q + rest;
	out->month_used = cur < in->month_count ? in->month_used[cur] : 0.0;
	out->month_rest = out->month_quota - out->month_used;
	out->overdraw_limit = out->month_quota + q;
	out->overdrawn = out->month_used >= out->overdraw_limit;
	if (in->used_units >= in->granted_units)
		out->exhausted_at_s = in->now_s;
	else if (in->burn_units_per_s > 0)
		out->exhausted_at_s = in->now_s +
		    (int64_t)ceil((in->granted_units - in->used_units) / in->burn_units_per_s);
	else
		out->exhausted_at_s = 0;
	out->factor = out->overdrawn ? 0.0 : fs_clamp01(0.5 - out->ahead_units / (2 * q));
	return 0;
}

double
fs_combine(double fairshare, double pacing, double pacing_weight)
{
	double w = fs_clamp01(pacing_weight);

	return fs_clamp01((1 - w) * fs_clamp01(fairshare) + w * fs_clamp01(pacing));
}
