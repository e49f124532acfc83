/*
 * Unit tests for daemon/fairshare.c: Fair Tree and classic on small trees worked out
 * by hand (each figure's arithmetic in a comment), the tie rules of Slurm's Fair Tree
 * (sibling users of equal level fair share share a rank, sibling accounts of equal
 * level fair share have their children merged), explicit shares, decay over simulated
 * time and incremental charges, pacing (ahead, behind, carry, a debt, overdraw, the
 * forecast), refusals, and a tree of 10,000 users recomputed within a bound.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fairshare.h"

#define EPS 1e-9

/* A tree root > program "p" > organization "o", with projects added by the tests. */
struct fixture {
	struct fs_tree *t;
	int org;
};

static void
fixture_init(struct fixture *f, int64_t half_life_s, enum fs_algorithm alg)
{
	int prog;

	f->t = fs_tree_new(half_life_s, alg, 0);
	assert_non_null(f->t);
	prog = fs_tree_add(f->t, FS_ROOT_NODE, FS_PROGRAM, "p");
	assert_true(prog > 0);
	f->org = fs_tree_add(f->t, prog, FS_ORGANIZATION, "o");
	assert_true(f->org > 0);
}

static int
add_project(struct fixture *f, const char *name, double granted_hours)
{
	int p = fs_tree_add(f->t, f->org, FS_PROJECT, name);

	assert_true(p > 0);
	assert_int_equal(fs_tree_set_default_shares(f->t, p, granted_hours), 0);
	return p;
}

static int
add_user(struct fixture *f, int project, const char *name, double usage)
{
	int u = fs_tree_add(f->t, project, FS_USER, name);

	assert_true(u > 0);
	assert_int_equal(fs_tree_add_usage(f->t, u, usage, 0), 0);
	return u;
}

static struct fs_node_info
info(const struct fs_tree *t, int node)
{
	struct fs_node_info i;

	assert_int_equal(fs_tree_node_info(t, node, &i), 0);
	return i;
}

/*
 * Projects a (30 GPU-hours granted) and b (10); users a/u1 used 30, a/u2 10, b/u3
 * nothing.
 *   p, o: only children: S = 1, U = 40/40 = 1, LF = 1.
 *   a: S = 30/40 = 0.75, U = 40/40 = 1, LF = 0.75.  b: S = 0.25, U = 0 -> LF = inf.
 *   Sorted: b, a. Three users, rank starts at 3.
 *   b/u3: S = 1, U = 0 (its project used nothing) -> inf; rank 3 -> 3/3 = 1.0.
 *   a/u1: S = 0.5, U = 30/40 = 0.75, LF = 0.667. a/u2: S = 0.5, U = 0.25, LF = 2.
 *   Sorted: u2 (rank 2 -> 0.667), u1 (rank 1 -> 0.333).
 */
static void
test_fair_tree_basic(void **state)
{
	struct fixture f;
	int a, b, u1, u2, u3;
	struct fs_node_info i;

	(void)state;
	fixture_init(&f, 0, FS_FAIR_TREE);
	a = add_project(&f, "a", 30);
	b = add_project(&f, "b", 10);
	u1 = add_user(&f, a, "u1", 30);
	u2 = add_user(&f, a, "u2", 10);
	u3 = add_user(&f, b, "u3", 0);
	assert_int_equal(fs_tree_compute(f.t), 0);
	assert_int_equal(fs_tree_users(f.t), 3);

	i = info(f.t, a);
	assert_float_equal(i.shares_raw, 30, EPS);
	assert_float_equal(i.shares_norm, 0.75, EPS);
	assert_float_equal(i.usage_raw, 40, EPS);
	assert_float_equal(i.usage_norm, 1.0, EPS);
	assert_float_equal(i.level_fs, 0.75, EPS);
	i = info(f.t, b);
	assert_true(isinf(i.level_fs));
	i = info(f.t, f.org);
	assert_float_equal(i.shares_raw, 40, EPS); /* the sum of its projects' */
	assert_float_equal(i.level_fs, 1.0, EPS);

	i = info(f.t, u3);
	assert_int_equal(i.rank, 3);
	assert_float_equal(i.factor, 1.0, EPS);
	i = info(f.t, u2);
	assert_float_equal(i.level_fs, 2.0, EPS);
	assert_int_equal(i.rank, 2);
	assert_float_equal(i.factor, 2.0 / 3, EPS);
	i = info(f.t, u1);
	assert_float_equal(i.level_fs, 0.5 / 0.75, EPS);
	assert_int_equal(i.rank, 1);
	assert_float_equal(i.factor, 1.0 / 3, EPS);

	/* A new user of a would have no usage: LF inf, ahead of u2 (rank 2): 2/3. A new
	 * user of b ties with u3, who has none either: 3/3. */
	assert_float_equal(fs_tree_new_user_factor(f.t, a), 2.0 / 3, EPS);
	assert_float_equal(fs_tree_new_user_factor(f.t, b), 1.0, EPS);
	assert_float_equal(fs_tree_new_user_factor(f.t, u1), -1.0, EPS);
	fs_tree_free(f.t);
}

/*
 * Sibling users of equal LF share a rank. Project a, users used 10, 10, 20, 0 of 40:
 * S = 0.25 each; U = 0.25, 0.25, 0.5, 0; LF = 1, 1, 0.5, inf.
 * Sorted u4 (rank 4 -> 1.0), u1 (3 -> 0.75), u2 tied (3 -> 0.75), u3 (rank without
 * ties: 1 -> 0.25).
 */
static void
test_fair_tree_tied_users(void **state)
{
	struct fixture f;
	int a, u[4];

	(void)state;
	fixture_init(&f, 0, FS_FAIR_TREE);
	a = add_project(&f, "a", 100);
	u[0] = add_user(&f, a, "u1", 10);
	u[1] = add_user(&f, a, "u2", 10);
	u[2] = add_user(&f, a, "u3", 20);
	u[3] = add_user(&f, a, "u4", 0);
	assert_int_equal(fs_tree_compute(f.t), 0);
	assert_int_equal(info(f.t, u[3]).rank, 4);
	assert_float_equal(info(f.t, u[3]).factor, 1.0, EPS);
	assert_int_equal(info(f.t, u[0]).rank, 3);
	assert_int_equal(info(f.t, u[1]).rank, 3);
	assert_float_equal(info(f.t, u[0]).factor, 0.75, EPS);
	assert_float_equal(info(f.t, u[1]).factor, 0.75, EPS);
	assert_int_equal(info(f.t, u[2]).rank, 1);
	assert_float_equal(info(f.t, u[2]).factor, 0.25, EPS);
	fs_tree_free(f.t);
}

/*
 * Sibling accounts of equal LF have their children merged and sorted as one list.
 * Projects a, b, c, 10 GPU-hours each: S = 1/3. Usage a 20 (a1 15, a2 5), b 20
 * (b1 10, b2 10), c 40 (c1); total 80.
 *   a: U = 20/80 = 0.25, LF = (1/3)/0.25 = 1.333; b the same; c: U = 0.5, LF = 0.667.
 *   a and b tie: their users are merged: a1 LF 0.5/0.75 = 0.667, a2 0.5/0.25 = 2,
 *   b1 and b2 0.5/0.5 = 1. Merged order a2, b1, b2, a1; then c1.
 *   Five users: a2 rank 5 -> 1.0, b1 4 -> 0.8, b2 tied 4 -> 0.8, a1 2 -> 0.4,
 *   c1 (LF 1 within c, alone) 1 -> 0.2.
 * Without the merge a's users would both rank above b's (a2 1.0, a1 0.8, b1 and b2
 * 0.6): the figures tell the two apart.
 */
static void
test_fair_tree_tied_accounts_merge(void **state)
{
	struct fixture f;
	int a, b, c, a1, a2, b1, b2, c1;

	(void)state;
	fixture_init(&f, 0, FS_FAIR_TREE);
	a = add_project(&f, "a", 10);
	b = add_project(&f, "b", 10);
	c = add_project(&f, "c", 10);
	a1 = add_user(&f, a, "a1", 15);
	a2 = add_user(&f, a, "a2", 5);
	b1 = add_user(&f, b, "b1", 10);
	b2 = add_user(&f, b, "b2", 10);
	c1 = add_user(&f, c, "c1", 40);
	assert_int_equal(fs_tree_compute(f.t), 0);
	assert_float_equal(info(f.t, a).level_fs, 4.0 / 3, EPS);
	assert_true(info(f.t, a).level_fs == info(f.t, b).level_fs);
	assert_float_equal(info(f.t, c).level_fs, 2.0 / 3, EPS);
	assert_float_equal(info(f.t, a2).factor, 1.0, EPS);
	assert_int_equal(info(f.t, b1).rank, 4);
	assert_int_equal(info(f.t, b2).rank, 4);
	assert_float_equal(info(f.t, b1).factor, 0.8, EPS);
	assert_float_equal(info(f.t, a1).factor, 0.4, EPS);
	assert_float_equal(info(f.t, c1).factor, 0.2, EPS);
	fs_tree_free(f.t);
}

/*
 * Fair Tree's promise across levels (fair_tree.html's introduction): if sibling
 * accounts A and B have LF(A) > LF(B), every user under A ranks above every user
 * under B, whatever their own usage. Two organizations under p: o1 (project x, 10
 * GPU-hours) and o2 (project y, 10). x's users used 1 and 99 (100 in all), y's one
 * user used 50. o1: S 0.5, U 100/150 -> LF 0.75; o2: S 0.5, U 50/150 -> LF 1.5. So
 * y/w (1.0, rank 3) ranks above both of x's users, even x/light who used 1:
 * x/light LF 0.5/0.01 = 50 -> rank 2 -> 0.667, x/heavy 0.5/0.99 -> rank 1 -> 0.333.
 */
static void
test_fair_tree_accounts_before_users(void **state)
{
	struct fs_tree *t = fs_tree_new(0, FS_FAIR_TREE, 0);
	int p, o1, o2, x, y, light, heavy, w;

	(void)state;
	assert_non_null(t);
	p = fs_tree_add(t, FS_ROOT_NODE, FS_PROGRAM, "p");
	o1 = fs_tree_add(t, p, FS_ORGANIZATION, "o1");
	o2 = fs_tree_add(t, p, FS_ORGANIZATION, "o2");
	x = fs_tree_add(t, o1, FS_PROJECT, "x");
	y = fs_tree_add(t, o2, FS_PROJECT, "y");
	assert_int_equal(fs_tree_set_default_shares(t, x, 10), 0);
	assert_int_equal(fs_tree_set_default_shares(t, y, 10), 0);
	light = fs_tree_add(t, x, FS_USER, "light");
	heavy = fs_tree_add(t, x, FS_USER, "heavy");
	w = fs_tree_add(t, y, FS_USER, "w");
	assert_true(light > 0 && heavy > 0 && w > 0);
	assert_int_equal(fs_tree_add_usage(t, light, 1, 0), 0);
	assert_int_equal(fs_tree_add_usage(t, heavy, 99, 0), 0);
	assert_int_equal(fs_tree_add_usage(t, w, 50, 0), 0);
	assert_int_equal(fs_tree_compute(t), 0);
	assert_float_equal(info(t, o1).level_fs, 0.75, EPS);
	assert_float_equal(info(t, o2).level_fs, 1.5, EPS);
	assert_float_equal(info(t, w).factor, 1.0, EPS);
	assert_float_equal(info(t, light).level_fs, 50.0, EPS);
	assert_float_equal(info(t, light).factor, 2.0 / 3, EPS);
	assert_float_equal(info(t, heavy).factor, 1.0 / 3, EPS);
	fs_tree_free(t);
}

/*
 * Explicit shares win over the default and count in the parent's sum; zero shares
 * rank last (LF 0). Projects a (30 granted) and b (10); set b to 90 explicitly:
 * o's shares 30 + 90 = 120, S(b) = 0.75. Usage a 10 (u1), b 10 (u2): U 0.5 each.
 * LF a = 0.25/0.5 = 0.5, b = 0.75/0.5 = 1.5: u2 ranks 2 (1.0), u1 1 (0.5). With
 * b's shares at 0: LF(b) = 0, b's user last: u1 1.0, u2 0.5. Clearing the explicit
 * figure brings back the default: S(a) = 0.75, LF 1.5 vs 0.5: u1 first.
 */
static void
test_explicit_shares(void **state)
{
	struct fixture f;
	int a, b, u1, u2;

	(void)state;
	fixture_init(&f, 0, FS_FAIR_TREE);
	a = add_project(&f, "a", 30);
	b = add_project(&f, "b", 10);
	u1 = add_user(&f, a, "u1", 10);
	u2 = add_user(&f, b, "u2", 10);
	assert_int_equal(fs_tree_set_shares(f.t, b, true, 90), 0);
	assert_int_equal(fs_tree_compute(f.t), 0);
	assert_float_equal(info(f.t, f.org).shares_raw, 120, EPS);
	assert_true(info(f.t, b).shares_explicit);
	assert_float_equal(info(f.t, b).shares_norm, 0.75, EPS);
	assert_float_equal(info(f.t, b).level_fs, 1.5, EPS);
	assert_float_equal(info(f.t, u2).factor, 1.0, EPS);
	assert_float_equal(info(f.t, u1).factor, 0.5, EPS);

	assert_int_equal(fs_tree_set_shares(f.t, b, true, 0), 0);
	assert_int_equal(fs_tree_compute(f.t), 0);
	assert_float_equal(info(f.t, b).level_fs, 0.0, EPS);
	assert_float_equal(info(f.t, u1).factor, 1.0, EPS);
	assert_float_equal(info(f.t, u2).factor, 0.5, EPS);

	assert_int_equal(fs_tree_set_shares(f.t, b, false, 0), 0);
	assert_int_equal(fs_tree_compute(f.t), 0);
	assert_false(info(f.t, b).shares_explicit);
	assert_float_equal(info(f.t, a).level_fs, 1.5, EPS);
	assert_float_equal(info(f.t, u1).factor, 1.0, EPS);

	/* Refusals change nothing. */
	assert_int_equal(fs_tree_set_shares(f.t, b, true, -1), -1);
	assert_int_equal(fs_tree_set_shares(f.t, b, true, NAN), -1);
	assert_int_equal(fs_tree_set_shares(f.t, FS_ROOT_NODE, true, 1), -1);
	assert_int_equal(fs_tree_set_default_shares(f.t, u1, 5), -1);
	assert_false(info(f.t, b).shares_explicit);
	fs_tree_free(f.t);
}

/*
 * Classic. Projects a (30) and b (10); a/u1 used 30, a/u2 10, b/u3 40; total 80.
 *   root UE = 1. p and o: S 1, U_norm 80/80 = 1, UE = 1 + (1 - 1) * 1 = 1.
 *   a: s = 0.75, U_norm = 40/80 = 0.5, UE = 0.5 + (1 - 0.5) * 0.75 = 0.875.
 *   b: s = 0.25, U_norm = 0.5, UE = 0.5 + 0.5 * 0.25 = 0.625.
 *   u1: s 0.5, S_norm 0.375, U_norm 30/80 = 0.375,
 *       UE = 0.375 + (0.875 - 0.375) * 0.5 = 0.625, F = 2^(-0.625/0.375) = 2^(-5/3).
 *   u2: U_norm 0.125, UE = 0.125 + 0.75 * 0.5 = 0.5, F = 2^(-0.5/0.375) = 2^(-4/3).
 *   u3: s 1, S_norm 0.25, U_norm 0.5, UE = 0.5 + 0.125 = 0.625, F = 2^(-2.5).
 *   A new user of a: 2^(-UE(a)/S(a)) = 2^(-0.875/0.75) = 2^(-7/6).
 */
static void
test_classic(void **state)
{
	struct fixture f;
	int a, b, u1, u2, u3;

	(void)state;
	fixture_init(&f, 0, FS_CLASSIC);
	a = add_project(&f, "a", 30);
	b = add_project(&f, "b", 10);
	u1 = add_user(&f, a, "u1", 30);
	u2 = add_user(&f, a, "u2", 10);
	u3 = add_user(&f, b, "u3", 40);
	assert_int_equal(fs_tree_compute(f.t), 0);
	assert_float_equal(info(f.t, a).usage_efctv, 0.875, EPS);
	assert_float_equal(info(f.t, b).usage_efctv, 0.625, EPS);
	assert_float_equal(info(f.t, u1).shares_global, 0.375, EPS);
	assert_float_equal(info(f.t, u1).usage_efctv, 0.625, EPS);
	assert_float_equal(info(f.t, u1).factor, exp2(-5.0 / 3), EPS);
	assert_float_equal(info(f.t, u2).usage_efctv, 0.5, EPS);
	assert_float_equal(info(f.t, u2).factor, exp2(-4.0 / 3), EPS);
	assert_float_equal(info(f.t, u3).factor, exp2(-2.5), EPS);
	assert_float_equal(fs_tree_new_user_factor(f.t, a), exp2(-7.0 / 6), EPS);
	assert_int_equal(info(f.t, u1).rank, 0);
	fs_tree_free(f.t);
}

/* Classic with nothing used anywhere: every UE is 0, every F 2^0 = 1. */
static void
test_classic_no_usage(void **state)
{
	struct fixture f;
	int a, u1;

	(void)state;
	fixture_init(&f, 0, FS_CLASSIC);
	a = add_project(&f, "a", 30);
	u1 = add_user(&f, a, "u1", 0);
	assert_int_equal(fs_tree_compute(f.t), 0);
	assert_float_equal(info(f.t, u1).factor, 1.0, EPS);
	fs_tree_free(f.t);
}

/*
 * Decay: d = 1 - ln 2 / 3600 per second; after one half-life, d^3600 =
 * exp(3600 * ln(1 - 0.000192541)) = exp(-0.693214) = 0.499967 (Slurm's linear d is
 * a hair under an exact halving). 100 units charged at 0, clock moved to 3600: 49.9967.
 * A charge of 100 that happened at 0 arriving when the clock is at 3600 counts the
 * same; one at 7200 moves the clock and decays what was there: 2 * 49.9967 * 0.499967
 * + 100 = 149.9934. The project and the program above follow the user. Half-life 0
 * never decays.
 */
static void
test_decay(void **state)
{
	struct fixture f, g;
	int a, u1, ga, gu;
	double h = pow(1 - M_LN2 / 3600, 3600);

	(void)state;
	assert_float_equal(fs_decay(3600, 3600), h, 1e-12);
	assert_float_equal(h, 0.499967, 1e-6);
	assert_float_equal(fs_decay(0, 1000000), 1.0, 0);
	assert_float_equal(fs_decay(3600, -5), 1.0, 0);
	fixture_init(&f, 3600, FS_FAIR_TREE);
	a = add_project(&f, "a", 10);
	u1 = add_user(&f, a, "u1", 100);
	fs_tree_advance(f.t, 3600);
	assert_int_equal(fs_tree_now(f.t), 3600);
	assert_float_equal(info(f.t, u1).usage_raw, 100 * h, 1e-9);
	assert_int_equal(fs_tree_add_usage(f.t, u1, 100, 0), 0);
	assert_float_equal(info(f.t, u1).usage_raw, 200 * h, 1e-9);
	assert_int_equal(fs_tree_add_usage(f.t, u1, 100, 7200), 0);
	assert_int_equal(fs_tree_now(f.t), 7200);
	assert_float_equal(info(f.t, u1).usage_raw, 200 * h * h + 100, 1e-9);
	assert_float_equal(info(f.t, u1).usage_raw, 149.9934, 1e-4);
	assert_float_equal(info(f.t, a).usage_raw, info(f.t, u1).usage_raw, 1e-9);
	assert_float_equal(info(f.t, FS_ROOT_NODE).usage_raw, info(f.t, u1).usage_raw, 1e-9);
	/* The clock never goes back. */
	fs_tree_advance(f.t, 10);
	assert_int_equal(fs_tree_now(f.t), 7200);
	assert_int_equal(fs_tree_add_usage(f.t, u1, -1, 7200), -1);
	assert_int_equal(fs_tree_add_usage(f.t, a, 1, 7200), -1);
	fs_tree_free(f.t);

	fixture_init(&g, 0, FS_FAIR_TREE);
	ga = add_project(&g, "a", 10);
	gu = add_user(&g, ga, "u1", 100);
	fs_tree_advance(g.t, 86400 * 365);
	assert_float_equal(info(g.t, gu).usage_raw, 100, 0);
	fs_tree_free(g.t);
	assert_null(fs_tree_new(-1, FS_FAIR_TREE, 0));
}

/*
 * Decay changes the order: u1 used 100 a day ago, u2 60 now, half-life one hour. At
 * the time u2 charged, u1's 100 are worth 100 * d^86400 (about 6e-6), so u1 (LF
 * 0.5 / tiny) ranks above u2. Without decay u1's 100 > 60 put u2 first.
 */
static void
test_decay_changes_order(void **state)
{
	for (int hl = 0; hl <= 3600; hl += 3600) {
		struct fixture f;
		int a, u1, u2;

		(void)state;
		fixture_init(&f, hl, FS_FAIR_TREE);
		a = add_project(&f, "a", 10);
		u1 = add_user(&f, a, "u1", 100);
		u2 = fs_tree_add(f.t, a, FS_USER, "u2");
		assert_int_equal(fs_tree_add_usage(f.t, u2, 60, 86400), 0);
		assert_int_equal(fs_tree_compute(f.t), 0);
		if (hl == 0) {
			assert_float_equal(info(f.t, u2).factor, 1.0, EPS);
			assert_float_equal(info(f.t, u1).factor, 0.5, EPS);
		} else {
			assert_float_equal(
			    info(f.t, u1).usage_raw, 100 * fs_decay(3600, 86400), 1e-12);
			assert_float_equal(info(f.t, u1).factor, 1.0, EPS);
			assert_float_equal(info(f.t, u2).factor, 0.5, EPS);
		}
		fs_tree_free(f.t);
	}
}

/* Names: the same name under the same parent is the same node; a kind that cannot go
 * under the parent is refused; a clone answers alike and changes apart. */
static void
test_tree_names_and_clone(void **state)
{
	struct fixture f;
	struct fs_tree *c;
	int a, u1, u1c;

	(void)state;
	fixture_init(&f, 0, FS_FAIR_TREE);
	a = add_project(&f, "a", 10);
	u1 = add_user(&f, a, "u1", 5);
	assert_int_equal(fs_tree_add(f.t, a, FS_USER, "u1"), u1);
	assert_int_equal(fs_tree_find(f.t, a, "u1"), u1);
	assert_int_equal(fs_tree_find(f.t, a, "nobody"), -1);
	assert_int_equal(fs_tree_add(f.t, a, FS_PROJECT, "x"), -1);
	assert_int_equal(fs_tree_add(f.t, FS_ROOT_NODE, FS_USER, "x"), -1);
	assert_int_equal(fs_tree_add(f.t, 999, FS_USER, "x"), -1);
	assert_int_equal(fs_tree_add(f.t, f.org, FS_PROJECT, "a"), a);
	c = fs_tree_clone(f.t);
	assert_non_null(c);
	u1c = fs_tree_find(c, a, "u1");
	assert_int_equal(u1c, u1);
	assert_int_equal(fs_tree_add_usage(c, u1c, 100, 0), 0);
	assert_float_equal(info(c, u1c).usage_raw, 105, EPS);
	assert_float_equal(info(f.t, u1).usage_raw, 5, EPS);
	assert_true(fs_tree_add(c, a, FS_USER, "u2") > 0);
	assert_int_equal(fs_tree_users(c), 2);
	assert_int_equal(fs_tree_users(f.t), 1);
	fs_tree_clear_usage(c);
	assert_float_equal(info(c, FS_ROOT_NODE).usage_raw, 0, 0);
	fs_tree_free(c);
	fs_tree_free(f.t);
	fs_tree_free(NULL);
}

/* ------------------------------------------------------------------ pacing */

/*
 * A year's window, 2026-01-01 to 2027-01-01: 365 days = 31,536,000 s;
 * M = round(31,536,000 / 2,629,746) = round(11.99) = 12 months; 1,200 units granted:
 * q = 100 a month.
 */
#define Y_START INT64_C(1767225600) /* 2026-01-01T00:00:00Z */
#define Y_END (Y_START + INT64_C(31536000))
#define Y_HALF (Y_START + INT64_C(15768000))

static struct fs_pacing
pace(int64_t now, double used, const double *months, int n, double burn)
{
	struct fs_pacing_input in = {Y_START, Y_END, now, 1200, used, months, n, burn};
	struct fs_pacing out;
	char err[128];

	assert_int_equal(fs_pacing_compute(&in, &out, err, sizeof(err)), 0);
	return out;
}

/*
 * Half way (month floor(0.5 * 12) = 6): the line expects 600. Used 600: ahead 0,
 * factor 0.5. Used 550: 50 behind, 0.5 + 50/200 = 0.75; 500: a month behind, 1.0;
 * 400: still 1.0 (clamped). Used 650: 50 ahead, 0.25; 700: a month ahead, 0.0.
 */
static void
test_pacing_line(void **state)
{
	static const struct {
		double used, ahead, factor;
	} cases[] = {
	    {600, 0, 0.5},
	    {550, -50, 0.75},
	    {500, -100, 1.0},
	    {400, -200, 1.0},
	    {650, 50, 0.25},
	    {700, 100, 0.0},
	    {900, 300, 0.0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fs_pacing p = pace(Y_HALF, cases[i].used, NULL, 0, 0);

		assert_int_equal(p.months, 12);
		assert_int_equal(p.month, 6);
		assert_float_equal(p.month_base, 100, EPS);
		assert_float_equal(p.expected_units, 600, EPS);
		assert_float_equal(p.ahead_units, cases[i].ahead, EPS);
		assert_float_equal(p.factor, cases[i].factor, EPS);
	}
	/* Before the window nothing is expected; after it, everything. */
	assert_float_equal(pace(Y_START - 100, 0, NULL, 0, 0).expected_units, 0, EPS);
	assert_int_equal(pace(Y_END + 100, 0, NULL, 0, 0).month, 11);
	assert_float_equal(pace(Y_END + 100, 0, NULL, 0, 0).expected_units, 1200, EPS);
}

/*
 * JSC's carry. Month length 31,536,000 / 12 = 2,628,000 s; "now" in month 1 is
 * start + 2,628,000 + 1000, in month 2 start + 5,256,000 + 1000.
 *   month 0 used 50: rest 100 - 50 = 50, month 1's quota 150, limit 250.
 *   months 0 and 1 used nothing: rest(0) = 100, rest(1) = min(100 + 100 - 0, 100)
 *   = 100 (quota unused for two months is lost): month 2's quota 200, not 300.
 *   month 0 used 180 (overdrawn within 100 + 100): debt 80, month 1's quota
 *   100 - 80 = 20, limit 120; month 1 used 119: not overdrawn; used 120: overdrawn,
 *   factor 0 whatever the line says.
 */
static void
test_pacing_carry(void **state)
{
	const int64_t m1 = Y_START + 2628000 + 1000, m2 = Y_START + 5256000 + 1000;
	struct fs_pacing p;

	(void)state;
	p = pace(m1, 50, (const double[]){50}, 1, 0);
	assert_int_equal(p.month, 1);
	assert_float_equal(p.carry_units, 50, EPS);
	assert_float_equal(p.month_quota, 150, EPS);
	assert_float_equal(p.month_rest, 150, EPS);
	assert_float_equal(p.overdraw_limit, 250, EPS);
	assert_false(p.overdrawn);

	p = pace(m2, 0, (const double[]){0, 0, 0}, 3, 0);
	assert_int_equal(p.month, 2);
	assert_float_equal(p.carry_units, 100, EPS);
	assert_float_equal(p.month_quota, 200, EPS);

	p = pace(m1, 299, (const double[]){180, 119}, 2, 0);
	assert_float_equal(p.carry_units, -80, EPS);
	assert_float_equal(p.month_quota, 20, EPS);
	assert_float_equal(p.month_used, 119, EPS);
	assert_float_equal(p.month_rest, -99, EPS);
	assert_float_equal(p.overdraw_limit, 120, EPS);
	assert_false(p.overdrawn);
	p = pace(m1, 300, (const double[]){180, 120}, 2, 0);
	assert_true(p.overdrawn);
	assert_float_equal(p.factor, 0.0, 0);
	/* The same month under its limit, on the line: 100 * 2,629,000/2,628,000 = 100.04
	 * expected, 100 used: factor 0.5 + 0.04/200, about 0.5. */
	p = pace(m1, 100, (const double[]){50, 50}, 2, 0);
	assert_float_equal(p.factor, 0.5, 1e-3);
}

/*
 * Forecast: half way, 600 used, 600 left; at 0.001 units a second they last
 * 600,000 s. Nothing left: now. No burn: never (0).
 */
static void
test_pacing_forecast(void **state)
{
	(void)state;
	assert_int_equal(pace(Y_HALF, 600, NULL, 0, 0.001).exhausted_at_s, Y_HALF + 600000);
	assert_int_equal(pace(Y_HALF, 1200, NULL, 0, 0.001).exhausted_at_s, Y_HALF);
	assert_int_equal(pace(Y_HALF, 1300, NULL, 0, 0).exhausted_at_s, Y_HALF);
	assert_int_equal(pace(Y_HALF, 600, NULL, 0, 0).exhausted_at_s, 0);
}

/* A short window is one month: 10 days, 100 units: q = 100. */
static void
test_pacing_short_and_refusals(void **state)
{
	struct fs_pacing_input in = {0, 864000, 432000, 100, 50, NULL, 0, 0};
	struct fs_pacing out;
	char err[128];

	(void)state;
	assert_int_equal(fs_pacing_compute(&in, &out, err, sizeof(err)), 0);
	assert_int_equal(out.months, 1);
	assert_float_equal(out.month_base, 100, EPS);
	assert_float_equal(out.factor, 0.5, EPS);
	in.end_s = 0;
	assert_int_equal(fs_pacing_compute(&in, &out, err, sizeof(err)), -1);
	assert_string_equal(err, "allocation window is empty");
	in.end_s = 864000;
	in.granted_units = 0;
	assert_int_equal(fs_pacing_compute(&in, &out, err, sizeof(err)), -1);
	assert_string_equal(err, "granted units must be positive");
	in.granted_units = 100;
	in.used_units = -1;
	assert_int_equal(fs_pacing_compute(&in, &out, err, sizeof(err)), -1);
	in.used_units = 0;
	in.month_used = (const double[]){NAN};
	in.month_count = 1;
	assert_int_equal(fs_pacing_compute(&in, &out, err, sizeof(err)), -1);
	assert_string_equal(err, "usage of month 0 must be finite and not negative");
}

static void
test_combine(void **state)
{
	(void)state;
	/* 0.75 * 0.8 + 0.25 * 0.4 = 0.7 */
	assert_float_equal(fs_combine(0.8, 0.4, 0.25), 0.7, EPS);
	assert_float_equal(fs_combine(0.8, 0.4, 0), 0.8, EPS);
	assert_float_equal(fs_combine(0.8, 0.4, 1), 0.4, EPS);
	assert_float_equal(fs_combine(2, 2, 0.5), 1.0, EPS);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/*
 * 10,000 users in 1,000 projects of 10 organizations of 2 programs: every user ranked
 * once (ranks 1 .. 10,000 with no two users alike, since usage grows with the
 * index), the best at 1.0, and a recompute in a bound loose enough for a sanitized
 * build (tests/bench/fairshare measures the real figure).
 */
static void
test_ten_thousand_users(void **state)
{
	struct fs_tree *t = fs_tree_new(86400, FS_FAIR_TREE, 0);
	int users[10000];
	bool seen[10001] = {false};
	double t0, ms;
	char name[32];

	(void)state;
	assert_non_null(t);
	for (int i = 0; i < 10000; i++) {
		int prog, org, proj;

		snprintf(name, sizeof(name), "p%d", i % 2);
		prog = fs_tree_add(t, FS_ROOT_NODE, FS_PROGRAM, name);
		snprintf(name, sizeof(name), "o%d", (i / 10) % 10);
		org = fs_tree_add(t, prog, FS_ORGANIZATION, name);
		snprintf(name, sizeof(name), "j%d", i / 10);
		proj = fs_tree_add(t, org, FS_PROJECT, name);
		assert_true(proj > 0);
		assert_int_equal(fs_tree_set_default_shares(t, proj, 100 + i % 7), 0);
		snprintf(name, sizeof(name), "u%d", i);
		users[i] = fs_tree_add(t, proj, FS_USER, name);
		assert_true(users[i] > 0);
		assert_int_equal(fs_tree_add_usage(t, users[i], 1 + i, i), 0);
	}
	assert_int_equal(fs_tree_users(t), 10000);
	t0 = now_ms();
	assert_int_equal(fs_tree_compute(t), 0);
	ms = now_ms() - t0;
	print_message("fairshare: 10,000 users recomputed in %.2f ms\n", ms);
	assert_true(ms < 200);
	for (int i = 0; i < 10000; i++) {
		struct fs_node_info n = info(t, users[i]);

		assert_true(n.rank >= 1 && n.rank <= 10000);
		assert_false(seen[n.rank]);
		seen[n.rank] = true;
		assert_float_equal(n.factor, n.rank / 10000.0, EPS);
	}
	fs_tree_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fair_tree_basic),
	    cmocka_unit_test(test_fair_tree_tied_users),
	    cmocka_unit_test(test_fair_tree_tied_accounts_merge),
	    cmocka_unit_test(test_fair_tree_accounts_before_users),
	    cmocka_unit_test(test_explicit_shares),
	    cmocka_unit_test(test_classic),
	    cmocka_unit_test(test_classic_no_usage),
	    cmocka_unit_test(test_decay),
	    cmocka_unit_test(test_decay_changes_order),
	    cmocka_unit_test(test_tree_names_and_clone),
	    cmocka_unit_test(test_pacing_line),
	    cmocka_unit_test(test_pacing_carry),
	    cmocka_unit_test(test_pacing_forecast),
	    cmocka_unit_test(test_pacing_short_and_refusals),
	    cmocka_unit_test(test_combine),
	    cmocka_unit_test(test_ten_thousand_users),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
