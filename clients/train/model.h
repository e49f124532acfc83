/*
 * The model of allot-train: a byte-level decoder-only transformer (GPT-2's
 * shape: token and position embeddings, L blocks of layer norm, causal
 * self-attention, layer norm, MLP with GELU, each with a residual; a final
 * layer norm and an LM head tied to the token embedding), its forward and
 * backward passes written out by hand, and AdamW. Matrix products go through
 * cblas_sgemm; everything else is plain loops in a fixed order, so a run is
 * the same to the bit for a given seed and BLAS thread count.
 */
#ifndef TRAIN_MODEL_H
#define TRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define MODEL_VOCAB 256
#define MODEL_NTENSORS 16

struct model_config {
	uint32_t vocab; /* 256: bytes */
	uint32_t ctx;   /* positions (sequence length) */
	uint32_t layers;
	uint32_t heads;
	uint32_t channels; /* a multiple of heads */
	uint32_t batch;    /* sequences per step */
};

/* Fills cfg with the default tiny model: 2 layers, 4 heads, 64 channels, ctx 64, batch 8. */
void model_config_default(struct model_config *cfg);
/* 0 when cfg is one this code can build (bounded sizes), else -1 with why. */
int model_config_check(const struct model_config *cfg, char *why, size_t whylen);
/* The parameter count of cfg, and the sizes of its tensors (MODEL_NTENSORS). */
size_t model_param_count(const struct model_config *cfg, size_t sizes[MODEL_NTENSORS]);
/* The tensors' names, for messages ("wte", "qkvw", ...). */
extern const char *const model_tensor_names[MODEL_NTENSORS];

struct model {
	struct model_config cfg;
	size_t nparams;
	size_t sizes[MODEL_NTENSORS];
	float *params; /* all tensors, one after another */
	float *grads;
	float *m, *v; /* AdamW moments */
	float *acts;  /* activations of one step */
	size_t nacts;
	float *dacts; /* their gradients */
	float *scratch;
	uint64_t adam_step;
};

/* The statistics of the matrix products since the last reset (for the benchmark). */
struct matmul_stats {
	double flops;
	double seconds;
	uint64_t calls;
};
extern struct matmul_stats model_matmul_stats;

/* The distinct shapes of the matrix products since the last reset, with their counts. */
#define MODEL_MAX_SHAPES 32
struct matmul_shape {
	int ta, tb;
	size_t M, N, K;
	uint64_t count;
};
extern struct matmul_shape model_matmul_shapes[MODEL_MAX_SHAPES];
extern int model_matmul_nshapes;
/* CLOCK_MONOTONIC in seconds (the clock of the statistics). */
double model_now_s(void);
/* Zeroes the statistics and the shapes. */
void model_matmul_reset(void);

/* A small deterministic RNG (xorshift64*). */
uint64_t rng_next(uint64_t *state);
float rng_normal(uint64_t *state);

/* Allocates a model for cfg (0, or -1 when memory runs out); model_init draws the weights from seed. */
int model_alloc(struct model *m, const struct model_config *cfg);
void model_init(struct model *m, uint64_t *rng);
void model_free(struct model *m);
/* Returns a pointer to tensor i within base (params, grads, m or v). */
float *model_tensor(const struct model *m, float *base, int i);

/*
 * One forward pass over inputs and targets (batch x ctx bytes each); returns
 * the mean cross-entropy loss in nats.
 */
float model_forward(struct model *m, const uint8_t *inputs, const uint8_t *targets);
/* The backward pass of the last forward: fills grads (zeroed first). */
void model_backward(struct model *m, const uint8_t *inputs, const uint8_t *targets);
/* One AdamW step with lr, betas 0.9/0.95, eps 1e-8 and weight decay wd. */
void model_adamw(struct model *m, float lr, float wd);

#endif
