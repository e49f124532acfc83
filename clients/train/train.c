/*
 * allot-train: trains the byte-level transformer of model.c on a text file,
 * spending a lien of Allot's (budget.c) and stopping cleanly when Allot says
 * STOP or a scheduler sends SIGTERM: it finishes the step, checkpoints
 * (ckpt.c), settles and exits 75 (EX_TEMPFAIL). --resume continues from a
 * checkpoint, to the bit as the uninterrupted run would have.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "budget.h"
#include "ckpt.h"
#include "model.h"

#define EXIT_TEMPFAIL 75
#define EXIT_USAGE 64

void openblas_set_num_threads(int num_threads);

static volatile sig_atomic_t got_signal;

static void
on_signal(int sig)
{
	got_signal = sig;
}

struct corpus {
	uint8_t *data;
	size_t len;
	uint64_t hash;
};

static int
corpus_load(struct corpus *c, const char *path, char *why, size_t whylen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	size_t cap = 1 << 16;
	c->data = malloc(cap);
	c->len = 0;
	while (c->data) {
		size_t r = fread(c->data + c->len, 1, cap - c->len, f);
		c->len += r;
		if (r == 0)
			break;
		if (c->len == cap) {
			uint8_t *n = cap > (1u << 30) ? NULL : realloc(c->data, cap * 2);
			if (!n) {
				free(c->data);
				c->data = NULL;
				break;
			}
			c->data = n;
			cap *= 2;
		}
	}
	int bad = ferror(f);
	fclose(f);
	if (!c->data || bad) {
		free(c->data);
		snprintf(why, whylen, "%s: %s", path, bad ? "read error" : "too large");
		return -1;
	}
	c->hash = ckpt_fnv1a(c->data, c->len, CKPT_FNV_INIT);
	return 0;
}

/*
 * The next batch at position pos: row b of the batch reads the ctx bytes at
 * b * stride + pos (stride = len / batch), and the bytes after them as its
 * targets, wrapping around the end; so a batch samples batch regions of the
 * corpus, each read in order. Returns the next position.
 */
static uint64_t
next_batch(const struct corpus *c, uint64_t pos, size_t batch, size_t ctx, uint8_t *in, uint8_t *tg)
{
	size_t stride = c->len / batch;
	for (size_t b = 0; b < batch; b++)
		for (size_t t = 0; t < ctx; t++) {
			size_t at = b * stride + pos + t;
			in[b * ctx + t] = c->data[at % c->len];
			tg[b * ctx + t] = c->data[(at + 1) % c->len];
		}
	return (pos + ctx) % (stride ? stride : 1);
}

static uint32_t
float_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

/* The mean of the last (up to) 10 losses of this run. */
static double
mean_recent(const float *recent, uint64_t n)
{
	double sum = 0.0;
	uint64_t k = n < 10 ? n : 10;
	for (int i = 0; i < 10; i++) /* the slots not yet written are 0 */
		sum += recent[i];
	return k ? sum / (double)k : 0.0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: allot-train [options] CORPUS\n"
	    "model:   --steps N (200) --seed N (1) --lr F (0.02) --wd F (0) --layers N (2)\n"
	    "         --heads N (4) --channels N (64) --ctx N (64) --batch N (8) --threads N (2)\n"
	    "         --log-every N (10)\n"
	    "state:   --checkpoint PATH [--checkpoint-every N] [--resume]\n"
	    "budget:  --server URL --cert F --key F --ca F --site S --account A --partition P\n"
	    "         [--user U] [--gpus N (1)] [--time S | --as-far-as-budget] [--heartbeat S "
	    "(60)]\n"
	    "         [--job-id ID] [--lien-expires S]\n"
	    "exit: 0 done, 75 stopped (Allot said STOP, or SIGTERM): resume later; 64 usage;\n"
	    "      65 a checkpoint refused; 1 any other failure\n");
}

static int
parse_u(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v > max || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

int
main(int argc, char **argv)
{
	struct model_config cfg;
	model_config_default(&cfg);
	unsigned long long steps = 200, seed = 1, threads = 2, log_every = 10, ckpt_every = 0,
	                   heartbeat_s = 60, gpus = 1, time_s = 0, expires_s = 0;
	float lr = 2e-2f, wd = 0.0f;
	const char *ckpt_path = NULL;
	bool resume = false;
	struct budget_opts bo = {.gpus = 1};
	enum {
		O_STEPS = 256,
		O_SEED,
		O_LR,
		O_WD,
		O_LAYERS,
		O_HEADS,
		O_CHANNELS,
		O_CTX,
		O_BATCH,
		O_THREADS,
		O_LOG,
		O_CKPT,
		O_CKPT_EVERY,
		O_RESUME,
		O_SERVER,
		O_CERT,
		O_KEY,
		O_CA,
		O_SITE,
		O_ACCOUNT,
		O_PARTITION,
		O_USER,
		O_GPUS,
		O_TIME,
		O_ASFAR,
		O_HB,
		O_JOB,
		O_EXPIRES,
		O_HELP
	};
	static const struct option longopts[] = {{"steps", 1, 0, O_STEPS}, {"seed", 1, 0, O_SEED},
	    {"lr", 1, 0, O_LR}, {"wd", 1, 0, O_WD}, {"layers", 1, 0, O_LAYERS},
	    {"heads", 1, 0, O_HEADS}, {"channels", 1, 0, O_CHANNELS}, {"ctx", 1, 0, O_CTX},
	    {"batch", 1, 0, O_BATCH}, {"threads", 1, 0, O_THREADS}, {"log-every", 1, 0, O_LOG},
	    {"checkpoint", 1, 0, O_CKPT}, {"checkpoint-every", 1, 0, O_CKPT_EVERY},
	    {"resume", 0, 0, O_RESUME}, {"server", 1, 0, O_SERVER}, {"cert", 1, 0, O_CERT},
	    {"key", 1, 0, O_KEY}, {"ca", 1, 0, O_CA}, {"site", 1, 0, O_SITE},
	    {"account", 1, 0, O_ACCOUNT}, {"partition", 1, 0, O_PARTITION}, {"user", 1, 0, O_USER},
	    {"gpus", 1, 0, O_GPUS}, {"time", 1, 0, O_TIME}, {"as-far-as-budget", 0, 0, O_ASFAR},
	    {"heartbeat", 1, 0, O_HB}, {"job-id", 1, 0, O_JOB}, {"lien-expires", 1, 0, O_EXPIRES},
	    {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};
	int opt;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		unsigned long long v = 0;
		int bad = 0;
		switch (opt) {
		case O_STEPS:
			bad = parse_u(optarg, 1ULL << 40, &steps);
			break;
		case O_SEED:
			bad = parse_u(optarg, UINT64_MAX, &seed);
			break;
		case O_THREADS:
			bad = parse_u(optarg, 256, &threads) || threads < 1;
			break;
		case O_LOG:
			bad = parse_u(optarg, 1ULL << 40, &log_every);
			break;
		case O_CKPT_EVERY:
			bad = parse_u(optarg, 1ULL << 40, &ckpt_every);
			break;
		case O_HB:
			bad = parse_u(optarg, 86400, &heartbeat_s) || heartbeat_s < 1;
			break;
		case O_GPUS:
			bad = parse_u(optarg, 100000, &gpus) || gpus < 1;
			break;
		case O_TIME:
			bad = parse_u(optarg, 1ULL << 40, &time_s) || time_s < 1;
			break;
		case O_EXPIRES:
			bad = parse_u(optarg, 1ULL << 40, &expires_s);
			break;
		case O_LAYERS:
			bad = parse_u(optarg, 1000, &v);
			cfg.layers = (uint32_t)v;
			break;
		case O_HEADS:
			bad = parse_u(optarg, 1000, &v);
			cfg.heads = (uint32_t)v;
			break;
		case O_CHANNELS:
			bad = parse_u(optarg, 100000, &v);
			cfg.channels = (uint32_t)v;
			break;
		case O_CTX:
			bad = parse_u(optarg, 100000, &v);
			cfg.ctx = (uint32_t)v;
			break;
		case O_BATCH:
			bad = parse_u(optarg, 100000, &v);
			cfg.batch = (uint32_t)v;
			break;
		case O_LR:
		case O_WD: {
			char *end;
			float f = strtof(optarg, &end);
			bad = end == optarg || *end || !(f >= 0.0f && f < 1.0f) ||
			    (opt == O_LR && f == 0.0f);
			if (opt == O_LR)
				lr = f;
			else
				wd = f;
			break;
		}
		case O_CKPT:
			ckpt_path = optarg;
			break;
		case O_RESUME:
			resume = true;
			break;
		case O_SERVER:
			bo.server = optarg;
			break;
		case O_CERT:
			bo.cert = optarg;
			break;
		case O_KEY:
			bo.key = optarg;
			break;
		case O_CA:
			bo.ca = optarg;
			break;
		case O_SITE:
			bo.site = optarg;
			break;
		case O_ACCOUNT:
			bo.account = optarg;
			break;
		case O_PARTITION:
			bo.partition = optarg;
			break;
		case O_USER:
			bo.user = optarg;
			break;
		case O_JOB:
			bo.job_id = optarg;
			break;
		case O_ASFAR:
			bo.as_far = true;
			break;
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
		if (bad) {
			fprintf(stderr, "allot-train: bad value for --%s: %s\n",
			    longopts[opt - O_STEPS].name, optarg);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	char why[1024];
	if (model_config_check(&cfg, why, sizeof(why)) != 0) {
		fprintf(stderr, "allot-train: %s\n", why);
		return EXIT_USAGE;
	}
	if (resume && !ckpt_path) {
		fprintf(stderr, "allot-train: --resume needs --checkpoint\n");
		return EXIT_USAGE;
	}
	bo.gpus = (int)gpus;
	bo.time_s = (int64_t)time_s;
	bo.expires_s = (int64_t)expires_s;
	bool budgeted = bo.server != NULL;
	if (budgeted && (!bo.site || !bo.account || !bo.partition)) {
		fprintf(stderr, "allot-train: --server needs --site, --account and --partition\n");
		return EXIT_USAGE;
	}
	if (budgeted && !bo.as_far && time_s == 0 && !getenv("SLURM_JOB_ID")) {
		fprintf(stderr, "allot-train: --server needs --time S or --as-far-as-budget\n");
		return EXIT_USAGE;
	}
	if (!bo.user)
		bo.user = getenv("USER");

	struct corpus corpus;
	if (corpus_load(&corpus, argv[optind], why, sizeof(why)) != 0) {
		fprintf(stderr, "allot-train: %s\n", why);
		return 1;
	}
	if (corpus.len <= (size_t)cfg.ctx) {
		fprintf(stderr, "allot-train: %s: %zu bytes, the context needs more than %u\n",
		    argv[optind], corpus.len, cfg.ctx);
		free(corpus.data);
		return 1;
	}
	openblas_set_num_threads((int)threads);

	struct model m;
	struct ckpt_state st = {
	    .seed = seed, .corpus_len = corpus.len, .corpus_hash = corpus.hash, .lr = lr};
	int rc = 0;
	if (resume) {
		if (ckpt_read(ckpt_path, &cfg, &m, &st, why, sizeof(why)) != 0) {
			fprintf(stderr, "allot-train: checkpoint refused: %s\n", why);
			free(corpus.data);
			return 65;
		}
		if (st.corpus_len != corpus.len || st.corpus_hash != corpus.hash) {
			fprintf(stderr,
			    "allot-train: checkpoint refused: %s: trained on another corpus "
			    "(%llu bytes, hash %016llx)\n",
			    ckpt_path, (unsigned long long)st.corpus_len,
			    (unsigned long long)st.corpus_hash);
			model_free(&m);
			free(corpus.data);
			return 65;
		}
		lr = st.lr;
		printf("resumed %s at step %llu (data position %llu, loss %.6f)\n", ckpt_path,
		    (unsigned long long)st.step, (unsigned long long)st.data_pos, (double)st.loss);
	} else {
		if (model_alloc(&m, &cfg) != 0) {
			fprintf(stderr, "allot-train: out of memory\n");
			free(corpus.data);
			return 1;
		}
		st.rng = seed ^ 0x9E3779B97F4A7C15ULL;
		if (st.rng == 0)
			st.rng = 1;
		model_init(&m, &st.rng);
	}
	size_t ntok = (size_t)cfg.batch * cfg.ctx;
	uint8_t *in = malloc(ntok), *tg = malloc(ntok);
	struct budget b;
	bool have_budget = false;
	if (!in || !tg) {
		fprintf(stderr, "allot-train: out of memory\n");
		rc = 1;
		goto out;
	}
	printf("model: layers %u heads %u channels %u ctx %u batch %u, %zu parameters; corpus %zu "
	       "bytes; seed %llu\n",
	    cfg.layers, cfg.heads, cfg.channels, cfg.ctx, cfg.batch, m.nparams, corpus.len,
	    (unsigned long long)st.seed);

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if (budgeted) {
		int brc = budget_start(&b, &bo, why, sizeof(why));
		if (brc != 0) {
			fprintf(stderr, "allot-train: %s\n", why);
			if (b.client)
				budget_close(&b);
			rc = brc > 0 ? EXIT_TEMPFAIL : 1;
			goto out;
		}
		have_budget = true;
		if (b.slurm)
			printf(
			    "budget: Slurm job %s, lien %s (the prolog's)\n", b.job_id, b.lien_id);
		else
			printf("budget: lien %s for job %s: %lld s of %d GPU(s), %.6f GPU-h held, "
			       "%.6f GPU-h left\n",
			    b.lien_id, b.job_id, (long long)b.reserved_s, bo.gpus,
			    (double)b.held_units / UNITS_PER_GPU_HOUR,
			    (double)b.available_units / UNITS_PER_GPU_HOUR);
		fflush(stdout);
	}

	double t0 = model_now_s(), last_hb = t0, tok_t0 = t0;
	uint64_t start_step = st.step, hb_tokens = 0;
	const char *stop_why = NULL;
	float recent[10] = {0};
	char stop_buf[1100];
	while (st.step < steps) {
		st.data_pos = next_batch(&corpus, st.data_pos, cfg.batch, cfg.ctx, in, tg);
		float loss = model_forward(&m, in, tg);
		model_backward(&m, in, tg);
		model_adamw(&m, lr, wd);
		st.step++;
		st.loss = loss;
		recent[st.step % 10] = loss;
		hb_tokens += ntok;
		if (log_every && (st.step % log_every == 0 || st.step == steps))
			printf("step %llu loss %.6f bits %08x mean10 %.4f\n",
			    (unsigned long long)st.step, (double)loss, float_bits(loss),
			    mean_recent(recent, st.step - start_step));
		if (ckpt_path && ckpt_every && st.step % ckpt_every == 0 &&
		    ckpt_write(ckpt_path, &m, &st, why, sizeof(why)) != 0) {
			fprintf(stderr, "allot-train: checkpoint: %s\n", why);
			rc = 1;
			goto settle;
		}
		fflush(stdout);
		if (got_signal) {
			snprintf(stop_buf, sizeof(stop_buf), "%s from the scheduler",
			    got_signal == SIGTERM ? "SIGTERM" : "SIGINT");
			stop_why = stop_buf;
			break;
		}
		double now = model_now_s();
		if (have_budget && now - last_hb >= (double)heartbeat_s) {
			bool stop;
			int64_t elapsed = (int64_t)(now - t0);
			if (budget_heartbeat(&b, elapsed, &stop, why, sizeof(why)) != 0) {
				fprintf(stderr, "allot-train: %s (training on)\n", why);
			} else {
				printf("heartbeat: elapsed %lld s, step %llu, %.0f tokens/s, loss "
				       "%.4f, "
				       "%.1f GPU-s, %s\n",
				    (long long)elapsed, (unsigned long long)st.step,
				    (double)hb_tokens / (now - tok_t0), (double)loss,
				    (double)elapsed * (double)bo.gpus, stop ? "STOP" : "CONTINUE");
				if (stop) {
					snprintf(
					    stop_buf, sizeof(stop_buf), "Allot said STOP: %s", why);
					stop_why = stop_buf;
					break;
				}
			}
			last_hb = now;
			tok_t0 = now;
			hb_tokens = 0;
			fflush(stdout);
		}
	}
	if (ckpt_path) {
		if (ckpt_write(ckpt_path, &m, &st, why, sizeof(why)) != 0) {
			fprintf(stderr, "allot-train: checkpoint: %s\n", why);
			rc = 1;
		} else {
			printf("checkpoint: %s at step %llu\n", ckpt_path,
			    (unsigned long long)st.step);
		}
	}
settle:;
	double elapsed = model_now_s() - t0;
	if (have_budget) {
		/* the usage of the last stretch, unless Allot's STOP has just charged it */
		bool stop;
		if (!stop_why || strncmp(stop_why, "Allot", 5) != 0) {
			if (budget_heartbeat(&b, (int64_t)elapsed, &stop, why, sizeof(why)) != 0)
				fprintf(stderr, "allot-train: final %s\n", why);
		}
		if (budget_settle(&b, why, sizeof(why)) != 0) {
			fprintf(stderr, "allot-train: %s\n", why);
			if (rc == 0)
				rc = 1;
		} else {
			printf("settled: lien %s\n", b.lien_id);
		}
	}
	if (stop_why) {
		printf("stopped: %s, after step %llu of %llu%s%s\n", stop_why,
		    (unsigned long long)st.step, steps,
		    ckpt_path ? "; resume with --resume --checkpoint " : "",
		    ckpt_path ? ckpt_path : "");
		if (rc == 0)
			rc = EXIT_TEMPFAIL;
	}
	printf(
	    "summary: steps %llu (this run %llu) of %llu, tokens %llu, final loss %.6f bits %08x, "
	    "%.1f s\n",
	    (unsigned long long)st.step, (unsigned long long)(st.step - start_step), steps,
	    (unsigned long long)((st.step - start_step) * ntok), (double)st.loss,
	    float_bits(st.loss), elapsed);
	if (have_budget)
		printf("summary: GPU-hours charged %.6f, budget left %.6f GPU-h\n",
		    (double)b.charged_units / UNITS_PER_GPU_HOUR,
		    (double)b.available_units / UNITS_PER_GPU_HOUR);
	if (have_budget)
		budget_close(&b);
out:
	free(in);
	free(tg);
	model_free(&m);
	free(corpus.data);
	return rc;
}
