/* The transformer of allot-train, forward and backward by hand. See model.h. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

const char *const model_tensor_names[MODEL_NTENSORS] = {"wte", "wpe", "ln1w", "ln1b", "qkvw",
    "qkvb", "attprojw", "attprojb", "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw",
    "lnfb"};

struct matmul_stats model_matmul_stats;
struct matmul_shape model_matmul_shapes[MODEL_MAX_SHAPES];
int model_matmul_nshapes;

void
model_matmul_reset(void)
{
	memset(&model_matmul_stats, 0, sizeof(model_matmul_stats));
	memset(model_matmul_shapes, 0, sizeof(model_matmul_shapes));
	model_matmul_nshapes = 0;
}

static void
shape_count(int ta, int tb, size_t M, size_t N, size_t K)
{
	for (int i = 0; i < model_matmul_nshapes; i++) {
		struct matmul_shape *s = &model_matmul_shapes[i];
		if (s->ta == ta && s->tb == tb && s->M == M && s->N == N && s->K == K) {
			s->count++;
			return;
		}
	}
	if (model_matmul_nshapes < MODEL_MAX_SHAPES)
		model_matmul_shapes[model_matmul_nshapes++] =
		    (struct matmul_shape){ta, tb, M, N, K, 1};
}

void
model_config_default(struct model_config *cfg)
{
	cfg->vocab = MODEL_VOCAB;
	cfg->ctx = 64;
	cfg->layers = 2;
	cfg->heads = 4;
	cfg->channels = 64;
	cfg->batch = 8;
}

int
model_config_check(const struct model_config *cfg, char *why, size_t whylen)
{
	const char *bad = NULL;
	if (cfg->vocab != MODEL_VOCAB)
		bad = "vocab must be 256 (bytes)";
	else if (cfg->ctx < 1 || cfg->ctx > 1024)
		bad = "ctx must be 1 to 1024";
	else if (cfg->layers < 1 || cfg->layers > 48)
		bad = "layers must be 1 to 48";
	else if (cfg->heads < 1 || cfg->heads > 64)
		bad = "heads must be 1 to 64";
	else if (cfg->channels < 1 || cfg->channels > 2048 || cfg->channels % cfg->heads != 0)
		bad = "channels must be 1 to 2048 and a multiple of heads";
	else if (cfg->batch < 1 || cfg->batch > 512)
		bad = "batch must be 1 to 512";
	if (bad) {
		snprintf(why, whylen, "%s", bad);
		return -1;
	}
	return 0;
}

size_t
model_param_count(const struct model_config *cfg, size_t s[MODEL_NTENSORS])
{
	size_t V = cfg->vocab, T = cfg->ctx, L = cfg->layers, C = cfg->channels;
	s[0] = V * C;
	s[1] = T * C;
	s[2] = L * C;
	s[3] = L * C;
	s[4] = L * 3 * C * C;
	s[5] = L * 3 * C;
	s[6] = L * C * C;
	s[7] = L * C;
	s[8] = L * C;
	s[9] = L * C;
	s[10] = L * 4 * C * C;
	s[11] = L * 4 * C;
	s[12] = L * C * 4 * C;
	s[13] = L * C;
	s[14] = C;
	s[15] = C;
	size_t n = 0;
	for (int i = 0; i < MODEL_NTENSORS; i++)
		n += s[i];
	return n;
}

/* The activations of one step, laid out in one buffer. */
struct acts {
	float *encoded;                   /* (B,T,C) */
	float *ln1, *ln1_mean, *ln1_rstd; /* (L,B,T,C), (L,B,T) */
	float *qkv;                       /* (L,B,T,3C) */
	float *atty;                      /* (L,B,T,C) */
	float *preatt, *att;              /* (L,B,NH,T,T) */
	float *attproj, *residual2;       /* (L,B,T,C) */
	float *ln2, *ln2_mean, *ln2_rstd;
	float *fch, *fch_gelu;     /* (L,B,T,4C) */
	float *fcproj, *residual3; /* (L,B,T,C) */
	float *lnf, *lnf_mean, *lnf_rstd;
	float *logits, *probs; /* (B,T,V) */
	float *losses;         /* (B,T) */
};

static size_t
acts_layout(const struct model_config *cfg, float *base, struct acts *a)
{
	size_t B = cfg->batch, T = cfg->ctx, C = cfg->channels, L = cfg->layers, NH = cfg->heads,
	       V = cfg->vocab, BT = B * T;
	size_t off = 0;
#define TAKE(field, n) \
	do { \
		a->field = base ? base + off : NULL; \
		off += (n); \
	} while (0)
	TAKE(encoded, BT * C);
	TAKE(ln1, L * BT * C);
	TAKE(ln1_mean, L * BT);
	TAKE(ln1_rstd, L * BT);
	TAKE(qkv, L * BT * 3 * C);
	TAKE(atty, L * BT * C);
	TAKE(preatt, L * B * NH * T * T);
	TAKE(att, L * B * NH * T * T);
	TAKE(attproj, L * BT * C);
	TAKE(residual2, L * BT * C);
	TAKE(ln2, L * BT * C);
	TAKE(ln2_mean, L * BT);
	TAKE(ln2_rstd, L * BT);
	TAKE(fch, L * BT * 4 * C);
	TAKE(fch_gelu, L * BT * 4 * C);
	TAKE(fcproj, L * BT * C);
	TAKE(residual3, L * BT * C);
	TAKE(lnf, BT * C);
	TAKE(lnf_mean, BT);
	TAKE(lnf_rstd, BT);
	TAKE(logits, BT * V);
	TAKE(probs, BT * V);
	TAKE(losses, BT);
#undef TAKE
	return off;
}

/* ---- RNG */

uint64_t
rng_next(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static float
rng_uniform(uint64_t *state)
{
	/* 24 bits in (0, 1] */
	return ((float)(rng_next(state) >> 40) + 1.0f) / 16777216.0f;
}

float
rng_normal(uint64_t *state)
{
	float u1 = rng_uniform(state), u2 = rng_uniform(state);
	return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

/* ---- allocation and initialisation */

float *
model_tensor(const struct model *m, float *base, int i)
{
	size_t off = 0;
	for (int k = 0; k < i; k++)
		off += m->sizes[k];
	return base + off;
}

int
model_alloc(struct model *m, const struct model_config *cfg)
{
	memset(m, 0, sizeof(*m));
	m->cfg = *cfg;
	m->nparams = model_param_count(cfg, m->sizes);
	struct acts a;
	m->nacts = acts_layout(cfg, NULL, &a);
	size_t BT = (size_t)cfg->batch * cfg->ctx;
	m->params = calloc(m->nparams, sizeof(float));
	m->grads = calloc(m->nparams, sizeof(float));
	m->m = calloc(m->nparams, sizeof(float));
	m->v = calloc(m->nparams, sizeof(float));
	m->acts = calloc(m->nacts, sizeof(float));
	m->dacts = calloc(m->nacts, sizeof(float));
	m->scratch = calloc(BT * 4 * cfg->channels, sizeof(float));
	if (!m->params || !m->grads || !m->m || !m->v || !m->acts || !m->dacts || !m->scratch) {
		model_free(m);
		return -1;
	}
	return 0;
}

void
model_free(struct model *m)
{
	free(m->params);
	free(m->grads);
	free(m->m);
	free(m->v);
	free(m->acts);
	free(m->dacts);
	free(m->scratch);
	memset(m, 0, sizeof(*m));
}

void
model_init(struct model *m, uint64_t *rng)
{
	float proj_scale = 0.02f / sqrtf(2.0f * (float)m->cfg.layers);
	for (int i = 0; i < MODEL_NTENSORS; i++) {
		float *p = model_tensor(m, m->params, i);
		size_t n = m->sizes[i];
		int is_lnw = i == 2 || i == 8 || i == 14;
		int is_bias = i == 3 || i == 5 || i == 7 || i == 9 || i == 11 || i == 13 || i == 15;
		float scale = (i == 6 || i == 12) ? proj_scale : 0.02f;
		for (size_t k = 0; k < n; k++)
			p[k] = is_lnw ? 1.0f : is_bias ? 0.0f : scale * rng_normal(rng);
	}
	memset(m->m, 0, m->nparams * sizeof(float));
	memset(m->v, 0, m->nparams * sizeof(float));
	m->adam_step = 0;
}

/* ---- the layers */

double
model_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* C (M,N) = alpha op(A) op(B) + beta C, row-major, counted in model_matmul_stats. */
static void
gemm(int ta, int tb, size_t M, size_t N, size_t K, const float *A, size_t lda, const float *Bm,
    size_t ldb, float beta, float *Cm, size_t ldc)
{
	double t0 = model_now_s();
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
	    (int)M, (int)N, (int)K, 1.0f, A, (int)lda, Bm, (int)ldb, beta, Cm, (int)ldc);
	model_matmul_stats.seconds += model_now_s() - t0;
	model_matmul_stats.flops += 2.0 * (double)M * (double)N * (double)K;
	model_matmul_stats.calls++;
	shape_count(ta, tb, M, N, K);
}

static void
encoder_forward(float *out, const uint8_t *inp, const float *wte, const float *wpe, size_t B,
    size_t T, size_t C)
{
	for (size_t b = 0; b < B; b++)
		for (size_t t = 0; t < T; t++) {
			float *o = out + (b * T + t) * C;
			const float *te = wte + (size_t)inp[b * T + t] * C, *pe = wpe + t * C;
			for (size_t i = 0; i < C; i++)
				o[i] = te[i] + pe[i];
		}
}

static void
encoder_backward(
    float *dwte, float *dwpe, const float *dout, const uint8_t *inp, size_t B, size_t T, size_t C)
{
	for (size_t b = 0; b < B; b++)
		for (size_t t = 0; t < T; t++) {
			const float *d = dout + (b * T + t) * C;
			float *dte = dwte + (size_t)inp[b * T + t] * C, *dpe = dwpe + t * C;
			for (size_t i = 0; i < C; i++) {
				dte[i] += d[i];
				dpe[i] += d[i];
			}
		}
}

static void
layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
    const float *b, size_t N, size_t C)
{
	for (size_t n = 0; n < N; n++) {
		const float *x = inp + n * C;
		float mu = 0.0f, var = 0.0f;
		for (size_t i = 0; i < C; i++)
			mu += x[i];
		mu /= (float)C;
		for (size_t i = 0; i < C; i++)
			var += (x[i] - mu) * (x[i] - mu);
		var /= (float)C;
		float r = 1.0f / sqrtf(var + 1e-5f);
		float *o = out + n * C;
		for (size_t i = 0; i < C; i++)
			o[i] = (x[i] - mu) * r * w[i] + b[i];
		mean[n] = mu;
		rstd[n] = r;
	}
}

static void
layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
    const float *w, const float *mean, const float *rstd, size_t N, size_t C)
{
	for (size_t n = 0; n < N; n++) {
		const float *d = dout + n * C, *x = inp + n * C;
		float *di = dinp + n * C;
		float mu = mean[n], r = rstd[n];
		float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
		for (size_t i = 0; i < C; i++) {
			float norm = (x[i] - mu) * r, dn = w[i] * d[i];
			dnorm_mean += dn;
			dnorm_norm_mean += dn * norm;
		}
		dnorm_mean /= (float)C;
		dnorm_norm_mean /= (float)C;
		for (size_t i = 0; i < C; i++) {
			float norm = (x[i] - mu) * r, dn = w[i] * d[i];
			db[i] += d[i];
			dw[i] += norm * d[i];
			di[i] += (dn - dnorm_mean - norm * dnorm_norm_mean) * r;
		}
	}
}

/* out (N,OC) = inp (N,IC) W^T (W is (OC,IC)) + bias */
static void
matmul_forward(
    float *out, const float *inp, const float *w, const float *bias, size_t N, size_t IC, size_t OC)
{
	for (size_t n = 0; n < N; n++)
		for (size_t o = 0; o < OC; o++)
			out[n * OC + o] = bias ? bias[o] : 0.0f;
	gemm(0, 1, N, OC, IC, inp, IC, w, IC, 1.0f, out, OC);
}

static void
matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
    const float *w, size_t N, size_t IC, size_t OC)
{
	gemm(0, 0, N, IC, OC, dout, OC, w, IC, 1.0f, dinp, IC);
	gemm(1, 0, OC, IC, N, dout, OC, inp, IC, 1.0f, dw, IC);
	if (dbias)
		for (size_t n = 0; n < N; n++)
			for (size_t o = 0; o < OC; o++)
				dbias[o] += dout[n * OC + o];
}

static void
attention_forward(float *out, float *preatt, float *att, const float *qkv, size_t B, size_t T,
    size_t C, size_t NH)
{
	size_t hs = C / NH;
	float scale = 1.0f / sqrtf((float)hs);
	for (size_t b = 0; b < B; b++)
		for (size_t t = 0; t < T; t++)
			for (size_t h = 0; h < NH; h++) {
				const float *q = qkv + (b * T + t) * 3 * C + h * hs;
				float *pre = preatt + ((b * NH + h) * T + t) * T;
				float *a = att + ((b * NH + h) * T + t) * T;
				float maxv = -INFINITY;
				for (size_t t2 = 0; t2 <= t; t2++) {
					const float *k = qkv + (b * T + t2) * 3 * C + C + h * hs;
					float s = 0.0f;
					for (size_t i = 0; i < hs; i++)
						s += q[i] * k[i];
					s *= scale;
					pre[t2] = s;
					if (s > maxv)
						maxv = s;
				}
				float sum = 0.0f;
				for (size_t t2 = 0; t2 <= t; t2++) {
					float e = expf(pre[t2] - maxv);
					a[t2] = e;
					sum += e;
				}
				float inv = 1.0f / sum;
				for (size_t t2 = 0; t2 < T; t2++)
					a[t2] = t2 <= t ? a[t2] * inv : 0.0f;
				for (size_t t2 = t + 1; t2 < T; t2++)
					pre[t2] = 0.0f;
				float *o = out + (b * T + t) * C + h * hs;
				for (size_t i = 0; i < hs; i++)
					o[i] = 0.0f;
				for (size_t t2 = 0; t2 <= t; t2++) {
					const float *v =
					    qkv + (b * T + t2) * 3 * C + 2 * C + h * hs;
					for (size_t i = 0; i < hs; i++)
						o[i] += a[t2] * v[i];
				}
			}
}

static void
attention_backward(float *dqkv, float *datt_buf, const float *dout, const float *qkv,
    const float *att, size_t B, size_t T, size_t C, size_t NH)
{
	size_t hs = C / NH;
	float scale = 1.0f / sqrtf((float)hs);
	for (size_t b = 0; b < B; b++)
		for (size_t t = 0; t < T; t++)
			for (size_t h = 0; h < NH; h++) {
				const float *a = att + ((b * NH + h) * T + t) * T;
				float *da = datt_buf + ((b * NH + h) * T + t) * T;
				const float *d = dout + (b * T + t) * C + h * hs;
				const float *q = qkv + (b * T + t) * 3 * C + h * hs;
				float *dq = dqkv + (b * T + t) * 3 * C + h * hs;
				/* out = sum att v */
				for (size_t t2 = 0; t2 <= t; t2++) {
					const float *v =
					    qkv + (b * T + t2) * 3 * C + 2 * C + h * hs;
					float *dv = dqkv + (b * T + t2) * 3 * C + 2 * C + h * hs;
					float s = 0.0f;
					for (size_t i = 0; i < hs; i++) {
						s += d[i] * v[i];
						dv[i] += a[t2] * d[i];
					}
					da[t2] = s;
				}
				/* softmax */
				float dot = 0.0f;
				for (size_t t2 = 0; t2 <= t; t2++)
					dot += a[t2] * da[t2];
				for (size_t t2 = 0; t2 <= t; t2++) {
					float dpre = a[t2] * (da[t2] - dot) * scale;
					const float *k = qkv + (b * T + t2) * 3 * C + C + h * hs;
					float *dk = dqkv + (b * T + t2) * 3 * C + C + h * hs;
					for (size_t i = 0; i < hs; i++) {
						dq[i] += dpre * k[i];
						dk[i] += dpre * q[i];
					}
				}
			}
}

#define GELU_SCALE 0.7978845608f /* sqrt(2/pi) */

static void
gelu_forward(float *out, const float *inp, size_t N)
{
	for (size_t i = 0; i < N; i++) {
		float x = inp[i], cube = 0.044715f * x * x * x;
		out[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + cube)));
	}
}

static void
gelu_backward(float *dinp, const float *inp, const float *dout, size_t N)
{
	for (size_t i = 0; i < N; i++) {
		float x = inp[i], cube = 0.044715f * x * x * x;
		float arg = GELU_SCALE * (x + cube), th = tanhf(arg);
		float sech2 = 1.0f - th * th;
		float g = 0.5f * (1.0f + th) +
		    0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
		dinp[i] += g * dout[i];
	}
}

static void
residual_forward(float *out, const float *a, const float *b, size_t N)
{
	for (size_t i = 0; i < N; i++)
		out[i] = a[i] + b[i];
}

static void
residual_backward(float *da, float *db, const float *dout, size_t N)
{
	for (size_t i = 0; i < N; i++) {
		da[i] += dout[i];
		db[i] += dout[i];
	}
}

/* ---- the model */

struct params {
	float *t[MODEL_NTENSORS];
};

static void
params_of(const struct model *m, float *base, struct params *p)
{
	size_t off = 0;
	for (int i = 0; i < MODEL_NTENSORS; i++) {
		p->t[i] = base + off;
		off += m->sizes[i];
	}
}

float
model_forward(struct model *m, const uint8_t *inputs, const uint8_t *targets)
{
	size_t B = m->cfg.batch, T = m->cfg.ctx, C = m->cfg.channels, L = m->cfg.layers,
	       NH = m->cfg.heads, V = m->cfg.vocab, BT = B * T;
	struct params p;
	struct acts a;
	params_of(m, m->params, &p);
	acts_layout(&m->cfg, m->acts, &a);

	encoder_forward(a.encoded, inputs, p.t[0], p.t[1], B, T, C);
	for (size_t l = 0; l < L; l++) {
		const float *res = l == 0 ? a.encoded : a.residual3 + (l - 1) * BT * C;
		float *ln1 = a.ln1 + l * BT * C, *qkv = a.qkv + l * BT * 3 * C;
		float *atty = a.atty + l * BT * C;
		float *preatt = a.preatt + l * B * NH * T * T, *att = a.att + l * B * NH * T * T;
		float *attproj = a.attproj + l * BT * C, *res2 = a.residual2 + l * BT * C;
		float *ln2 = a.ln2 + l * BT * C, *fch = a.fch + l * BT * 4 * C;
		float *fchg = a.fch_gelu + l * BT * 4 * C, *fcproj = a.fcproj + l * BT * C;
		float *res3 = a.residual3 + l * BT * C;
		layernorm_forward(ln1, a.ln1_mean + l * BT, a.ln1_rstd + l * BT, res,
		    p.t[2] + l * C, p.t[3] + l * C, BT, C);
		matmul_forward(qkv, ln1, p.t[4] + l * 3 * C * C, p.t[5] + l * 3 * C, BT, C, 3 * C);
		attention_forward(atty, preatt, att, qkv, B, T, C, NH);
		matmul_forward(attproj, atty, p.t[6] + l * C * C, p.t[7] + l * C, BT, C, C);
		residual_forward(res2, res, attproj, BT * C);
		layernorm_forward(ln2, a.ln2_mean + l * BT, a.ln2_rstd + l * BT, res2,
		    p.t[8] + l * C, p.t[9] + l * C, BT, C);
		matmul_forward(
		    fch, ln2, p.t[10] + l * 4 * C * C, p.t[11] + l * 4 * C, BT, C, 4 * C);
		gelu_forward(fchg, fch, BT * 4 * C);
		matmul_forward(
		    fcproj, fchg, p.t[12] + l * C * 4 * C, p.t[13] + l * C, BT, 4 * C, C);
		residual_forward(res3, res2, fcproj, BT * C);
	}
	const float *last = a.residual3 + (L - 1) * BT * C;
	layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, last, p.t[14], p.t[15], BT, C);
	matmul_forward(a.logits, a.lnf, p.t[0], NULL, BT, C, V);
	double total = 0.0;
	for (size_t n = 0; n < BT; n++) {
		const float *lg = a.logits + n * V;
		float *pr = a.probs + n * V;
		float maxv = -INFINITY, sum = 0.0f;
		for (size_t i = 0; i < V; i++)
			if (lg[i] > maxv)
				maxv = lg[i];
		for (size_t i = 0; i < V; i++) {
			pr[i] = expf(lg[i] - maxv);
			sum += pr[i];
		}
		for (size_t i = 0; i < V; i++)
			pr[i] /= sum;
		a.losses[n] = -logf(pr[targets[n]]);
		total += a.losses[n];
	}
	return (float)(total / (double)BT);
}

void
model_backward(struct model *m, const uint8_t *inputs, const uint8_t *targets)
{
	size_t B = m->cfg.batch, T = m->cfg.ctx, C = m->cfg.channels, L = m->cfg.layers,
	       NH = m->cfg.heads, V = m->cfg.vocab, BT = B * T;
	struct params p, g;
	struct acts a, d;
	params_of(m, m->params, &p);
	params_of(m, m->grads, &g);
	acts_layout(&m->cfg, m->acts, &a);
	acts_layout(&m->cfg, m->dacts, &d);
	memset(m->grads, 0, m->nparams * sizeof(float));
	memset(m->dacts, 0, m->nacts * sizeof(float));

	float dloss = 1.0f / (float)BT;
	for (size_t n = 0; n < BT; n++) {
		const float *pr = a.probs + n * V;
		float *dl = d.logits + n * V;
		for (size_t i = 0; i < V; i++)
			dl[i] = (pr[i] - (i == targets[n] ? 1.0f : 0.0f)) * dloss;
	}
	matmul_backward(d.lnf, g.t[0], NULL, d.logits, a.lnf, p.t[0], BT, C, V);
	const float *last = a.residual3 + (L - 1) * BT * C;
	float *dlast = d.residual3 + (L - 1) * BT * C;
	layernorm_backward(
	    dlast, g.t[14], g.t[15], d.lnf, last, p.t[14], a.lnf_mean, a.lnf_rstd, BT, C);
	for (size_t l = L; l-- > 0;) {
		const float *res = l == 0 ? a.encoded : a.residual3 + (l - 1) * BT * C;
		float *dres = l == 0 ? d.encoded : d.residual3 + (l - 1) * BT * C;
		size_t o1 = l * BT * C, o3 = l * BT * 3 * C, o4 = l * BT * 4 * C,
		       oa = l * B * NH * T * T;
		residual_backward(d.residual2 + o1, d.fcproj + o1, d.residual3 + o1, BT * C);
		matmul_backward(d.fch_gelu + o4, g.t[12] + l * C * 4 * C, g.t[13] + l * C,
		    d.fcproj + o1, a.fch_gelu + o4, p.t[12] + l * C * 4 * C, BT, 4 * C, C);
		gelu_backward(d.fch + o4, a.fch + o4, d.fch_gelu + o4, BT * 4 * C);
		matmul_backward(d.ln2 + o1, g.t[10] + l * 4 * C * C, g.t[11] + l * 4 * C,
		    d.fch + o4, a.ln2 + o1, p.t[10] + l * 4 * C * C, BT, C, 4 * C);
		layernorm_backward(d.residual2 + o1, g.t[8] + l * C, g.t[9] + l * C, d.ln2 + o1,
		    a.residual2 + o1, p.t[8] + l * C, a.ln2_mean + l * BT, a.ln2_rstd + l * BT, BT,
		    C);
		residual_backward(dres, d.attproj + o1, d.residual2 + o1, BT * C);
		matmul_backward(d.atty + o1, g.t[6] + l * C * C, g.t[7] + l * C, d.attproj + o1,
		    a.atty + o1, p.t[6] + l * C * C, BT, C, C);
		attention_backward(
		    d.qkv + o3, d.att + oa, d.atty + o1, a.qkv + o3, a.att + oa, B, T, C, NH);
		matmul_backward(d.ln1 + o1, g.t[4] + l * 3 * C * C, g.t[5] + l * 3 * C, d.qkv + o3,
		    a.ln1 + o1, p.t[4] + l * 3 * C * C, BT, C, 3 * C);
		layernorm_backward(dres, g.t[2] + l * C, g.t[3] + l * C, d.ln1 + o1, res,
		    p.t[2] + l * C, a.ln1_mean + l * BT, a.ln1_rstd + l * BT, BT, C);
	}
	encoder_backward(g.t[0], g.t[1], d.encoded, inputs, B, T, C);
}

void
model_adamw(struct model *m, float lr, float wd)
{
	const float b1 = 0.9f, b2 = 0.95f, eps = 1e-8f;
	m->adam_step++;
	float c1 = 1.0f - powf(b1, (float)m->adam_step), c2 = 1.0f - powf(b2, (float)m->adam_step);
	for (size_t i = 0; i < m->nparams; i++) {
		float gr = m->grads[i];
		float mi = b1 * m->m[i] + (1.0f - b1) * gr;
		float vi = b2 * m->v[i] + (1.0f - b2) * gr * gr;
		m->m[i] = mi;
		m->v[i] = vi;
		float mh = mi / c1, vh = vi / c2;
		m->params[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * m->params[i]);
	}
}
