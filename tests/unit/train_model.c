/*
 * Unit tests for clients/train/model.c and ckpt.c: the hand-written backward
 * pass against central finite differences on a tiny model, every parameter
 * tensor; two runs with one seed equal to the bit; a checkpoint's round trip,
 * and its refusals (truncated, a flipped byte, another model's config).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckpt.h"
#include "model.h"

static const struct model_config tiny = {
    .vocab = 256, .ctx = 5, .layers = 2, .heads = 2, .channels = 8, .batch = 2};

static void
tiny_batch(uint8_t *in, uint8_t *tg, size_t n)
{
	const char *text = "the quick brown fox jumps";
	for (size_t i = 0; i < n; i++) {
		in[i] = (uint8_t)text[i % 24];
		tg[i] = (uint8_t)text[(i + 1) % 24];
	}
}

/*
 * The tolerance: |analytic - numeric| <= 2e-3 + 3e-2 * max(|analytic|,
 * |numeric|), with the numeric derivative (L(p+h) - L(p-h)) / 2h, h = 1e-2,
 * the loss computed in float. Every element of each tensor is checked, but
 * the embeddings' rows of bytes that do not occur (their gradient is 0 and
 * checked as such at a sample).
 */
static void
test_gradients(void **state)
{
	(void)state;
	struct model m;
	assert_int_equal(model_alloc(&m, &tiny), 0);
	uint64_t rng = 42;
	model_init(&m, &rng);
	/* layer norms and biases away from 1 and 0, so that their gradients are general */
	for (size_t i = 0; i < m.nparams; i++)
		m.params[i] += 0.05f * rng_normal(&rng);
	size_t n = (size_t)tiny.batch * tiny.ctx;
	uint8_t in[64], tg[64];
	tiny_batch(in, tg, n);
	model_forward(&m, in, tg);
	model_backward(&m, in, tg);
	float *analytic = malloc(m.nparams * sizeof(float));
	assert_non_null(analytic);
	memcpy(analytic, m.grads, m.nparams * sizeof(float));
	const float h = 1e-2f;
	size_t off = 0, checked = 0;
	for (int t = 0; t < MODEL_NTENSORS; t++) {
		double worst = 0.0;
		for (size_t k = 0; k < m.sizes[t]; k++) {
			size_t i = off + k;
			if (t == 0 && analytic[i] == 0.0f && k % 97 != 0)
				continue;
			float saved = m.params[i];
			m.params[i] = saved + h;
			float lp = model_forward(&m, in, tg);
			m.params[i] = saved - h;
			float lm = model_forward(&m, in, tg);
			m.params[i] = saved;
			double num = ((double)lp - (double)lm) / (2.0 * h), an = analytic[i];
			double err = fabs(num - an), tol = 2e-3 + 3e-2 * fmax(fabs(num), fabs(an));
			if (err > tol)
				fail_msg("%s[%zu]: analytic %g, numeric %g", model_tensor_names[t],
				    k, an, num);
			if (err > worst)
				worst = err;
			checked++;
		}
		print_message("%-9s %6zu elements, worst |error| %.2e\n", model_tensor_names[t],
		    m.sizes[t], worst);
		off += m.sizes[t];
	}
	assert_true(checked > 1000);
	free(analytic);
	model_free(&m);
}

static void
train_run(uint64_t seed, int steps, float *losses)
{
	struct model m;
	assert_int_equal(model_alloc(&m, &tiny), 0);
	uint64_t rng = seed;
	model_init(&m, &rng);
	uint8_t in[64], tg[64];
	tiny_batch(in, tg, (size_t)tiny.batch * tiny.ctx);
	for (int s = 0; s < steps; s++) {
		losses[s] = model_forward(&m, in, tg);
		model_backward(&m, in, tg);
		model_adamw(&m, 1e-2f, 0.0f);
	}
	model_free(&m);
}

static void
test_deterministic_and_learns(void **state)
{
	(void)state;
	float a[40], b[40], c[40];
	train_run(7, 40, a);
	train_run(7, 40, b);
	train_run(8, 40, c);
	assert_memory_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, c, sizeof(a));
	/* one batch again and again: the loss falls well below ln 256 = 5.55 */
	assert_true(a[0] > 5.0f);
	assert_true(a[39] < 3.0f);
}

static void
write_file(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static uint8_t *
read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	uint8_t *p = malloc(1 << 20);
	assert_non_null(p);
	*n = fread(p, 1, 1 << 20, f);
	fclose(f);
	return p;
}

static void
test_checkpoint(void **state)
{
	(void)state;
	char dir[] = "/tmp/unit-train-XXXXXX", path[64], why[512];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ckpt", dir);
	struct model m, r;
	assert_int_equal(model_alloc(&m, &tiny), 0);
	uint64_t rng = 5;
	model_init(&m, &rng);
	for (size_t i = 0; i < m.nparams; i++) {
		m.m[i] = (float)i * 1e-3f;
		m.v[i] = (float)i * 1e-6f;
	}
	struct ckpt_state st = {.seed = 5,
	                      .step = 17,
	                      .data_pos = 999,
	                      .corpus_len = 4096,
	                      .corpus_hash = 0x1234,
	                      .rng = rng,
	                      .lr = 3e-3f,
	                      .loss = 2.5f},
	                  got;
	assert_int_equal(ckpt_write(path, &m, &st, why, sizeof(why)), 0);
	assert_int_equal(ckpt_read(path, &tiny, &r, &got, why, sizeof(why)), 0);
	assert_memory_equal(&st, &got, sizeof(st));
	assert_memory_equal(m.params, r.params, m.nparams * sizeof(float));
	assert_memory_equal(m.m, r.m, m.nparams * sizeof(float));
	assert_memory_equal(m.v, r.v, m.nparams * sizeof(float));
	assert_int_equal(r.adam_step, 17);
	model_free(&r);

	size_t n;
	uint8_t *buf = read_file(path, &n);
	assert_int_equal(n, CKPT_HEADER + 12 * m.nparams + 8);
	/* truncated */
	assert_int_equal(ckpt_parse(buf, n - 1, &tiny, &r, &got, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "truncated"));
	assert_int_equal(ckpt_parse(buf, 50, &tiny, &r, &got, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "truncated"));
	/* a flipped byte anywhere in the parameters or the header's numbers */
	size_t at[] = {CKPT_HEADER + 3, n / 2, n - 9, 50, 90};
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		buf[at[i]] ^= 0x10;
		assert_int_equal(ckpt_parse(buf, n, &tiny, &r, &got, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "checksum"));
		buf[at[i]] ^= 0x10;
	}
	/* another model's */
	struct model_config other = tiny;
	other.channels = 16;
	assert_int_equal(ckpt_parse(buf, n, &other, &r, &got, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "another model's checkpoint"));
	/* bad magic, version */
	buf[0] = 'X';
	assert_int_equal(ckpt_parse(buf, n, &tiny, &r, &got, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "magic"));
	buf[0] = 'A';
	buf[8] = 2;
	assert_int_equal(ckpt_parse(buf, n, &tiny, &r, &got, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "version 2"));
	buf[8] = 1;
	assert_int_equal(ckpt_parse(buf, n, &tiny, &r, &got, why, sizeof(why)), 0);
	model_free(&r);
	write_file(path, buf, n - 100);
	assert_int_equal(ckpt_read(path, &tiny, &r, &got, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "truncated"));
	free(buf);
	model_free(&m);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gradients),
	    cmocka_unit_test(test_deterministic_and_learns),
	    cmocka_unit_test(test_checkpoint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
