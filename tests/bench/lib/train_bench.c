/*
 * The benchmark of allot-train's CPU path (tests/bench/train): trains the
 * default model for STEPS steps on CORPUS and measures the FLOP/s its matrix
 * products achieved inside the step (model.c counts and times each
 * cblas_sgemm); then, in the same process with the same BLAS and thread
 * count, calls cblas_sgemm alone on each shape the training used, as many
 * times as it did, on warm buffers, best of three, as the reference. Prints
 *   RESULT train_cpu ratio=<achieved / reference> tokens_per_s=<training tokens/s>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "model.h"

void openblas_set_num_threads(int num_threads);

int
main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: train_bench CORPUS STEPS THREADS\n");
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	static uint8_t corpus[1 << 22];
	size_t len = fread(corpus, 1, sizeof(corpus), f);
	fclose(f);
	int steps = atoi(argv[2]), threads = atoi(argv[3]);
	openblas_set_num_threads(threads);
	struct model_config cfg;
	model_config_default(&cfg);
	struct model m;
	if (len <= cfg.ctx * cfg.batch || model_alloc(&m, &cfg) != 0) {
		fprintf(stderr, "train_bench: corpus too short or out of memory\n");
		return 1;
	}
	uint64_t rng = 1;
	model_init(&m, &rng);
	size_t n = (size_t)cfg.batch * cfg.ctx, pos = 0;
	uint8_t *in = malloc(n), *tg = malloc(n);
	/* two warm-up steps, not counted */
	model_matmul_reset();
	double t0 = 0;
	for (int s = -2; s < steps; s++) {
		if (s == 0) {
			model_matmul_reset();
			t0 = model_now_s();
		}
		for (size_t i = 0; i < n; i++) {
			in[i] = corpus[(pos + i) % len];
			tg[i] = corpus[(pos + i + 1) % len];
		}
		pos = (pos + n) % len;
		model_forward(&m, in, tg);
		model_backward(&m, in, tg);
		model_adamw(&m, 1e-2f, 0.0f);
	}
	double train_s = model_now_s() - t0;
	struct matmul_stats got = model_matmul_stats;
	double achieved = got.flops / got.seconds;

	/* the reference: each shape alone, as often as the training ran it */
	double ref_s = 0.0, ref_flops = 0.0;
	for (int i = 0; i < model_matmul_nshapes; i++) {
		struct matmul_shape sh = model_matmul_shapes[i];
		size_t asz = sh.M * sh.K, bsz = sh.K * sh.N;
		float *A = calloc(asz, 4), *B = calloc(bsz, 4), *C = calloc(sh.M * sh.N, 4);
		for (size_t k = 0; k < asz; k++)
			A[k] = 0.01f * (float)(k % 13);
		for (size_t k = 0; k < bsz; k++)
			B[k] = 0.01f * (float)(k % 7);
		int lda = (int)(sh.ta ? sh.M : sh.K), ldb = (int)(sh.tb ? sh.K : sh.N);
		double best = 1e30;
		for (int rep = 0; rep < 3; rep++) {
			double s0 = model_now_s();
			for (uint64_t c = 0; c < sh.count; c++)
				cblas_sgemm(CblasRowMajor, sh.ta ? CblasTrans : CblasNoTrans,
				    sh.tb ? CblasTrans : CblasNoTrans, (int)sh.M, (int)sh.N,
				    (int)sh.K, 1.0f, A, lda, B, ldb, 1.0f, C, (int)sh.N);
			double e = model_now_s() - s0;
			if (e < best)
				best = e;
		}
		ref_s += best;
		ref_flops += 2.0 * (double)sh.M * (double)sh.N * (double)sh.K * (double)sh.count;
		printf("shape %c%c M=%zu N=%zu K=%zu x%llu: %.2f GFLOP/s alone\n",
		    sh.ta ? 'T' : 'N', sh.tb ? 'T' : 'N', sh.M, sh.N, sh.K,
		    (unsigned long long)sh.count,
		    2.0 * (double)sh.M * (double)sh.N * (double)sh.K * (double)sh.count / best /
		        1e9);
		free(A);
		free(B);
		free(C);
	}
	double reference = ref_flops / ref_s;
	printf("training: %d steps in %.2f s; matrix products %.2f GFLOP/s (%.0f%% of the step's "
	       "time), sgemm alone on the same shapes %.2f GFLOP/s\n",
	    steps, train_s, achieved / 1e9, 100.0 * got.seconds / train_s, reference / 1e9);
	printf("RESULT train_cpu ratio=%.3f tokens_per_s=%.0f\n", achieved / reference,
	    (double)steps * (double)n / train_s);
	free(in);
	free(tg);
	model_free(&m);
	return 0;
}
