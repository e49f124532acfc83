/*
 * The budget of one training run through liballot: Quote and Reserve a lien
 * before the first step (or, under Slurm, take the lien the site's prolog
 * holds), Heartbeat as it goes, Settle at the end.
 */
#ifndef TRAIN_BUDGET_H
#define TRAIN_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

#include <allot.h>

#define UNITS_PER_GPU_HOUR 3600000.0 /* normalized GPU-milliseconds */

struct budget_opts {
	const char *server, *cert, *key, *ca;
	const char *site, *account, *partition, *user;
	const char *job_id; /* NULL: SLURM_JOB_ID, or one of our own */
	int gpus;
	int64_t time_s;    /* planned run time; 0 with as_far */
	bool as_far;       /* reserve what the budget allows */
	int64_t expires_s; /* the lien's expiry (0: allotd's default) */
};

struct budget {
	struct allot_client *client;
	const struct budget_opts *o;
	char job_id[128];
	char lien_id[256];
	bool slurm;         /* the prolog's lien, not ours */
	int64_t reserved_s; /* the time the lien holds */
	int64_t held_units;
	int64_t charged_units;
	int64_t available_units;
};

/*
 * Connects, quotes and reserves (outside Slurm). 0 when the run may start;
 * 1 when the budget refuses it (why says so: the caller exits 75); -1 on
 * any other failure.
 */
int budget_start(struct budget *b, const struct budget_opts *o, char *why, size_t whylen);
/* One heartbeat; 0 with *stop and why filled, -1 when the call failed (why). */
int budget_heartbeat(struct budget *b, int64_t elapsed_s, bool *stop, char *why, size_t whylen);
/* Settles the lien; 0, or -1 with why. */
int budget_settle(struct budget *b, char *why, size_t whylen);
void budget_close(struct budget *b);

#endif
