/*
 * allot-train's checkpoints: the model's config, its parameters and AdamW
 * moments, the step, the data position and the RNG state, with a checksum.
 * All integers little-endian, floats IEEE 754 binary32 little-endian:
 *
 *   off  size  field
 *     0     8  magic "ALLOTCKP"
 *     8     4  version (1)
 *    12    24  config: vocab, ctx, layers, heads, channels, batch (u32 each)
 *    36     8  seed (u64)
 *    44     8  step: optimizer steps taken (u64)
 *    52     8  data position: the corpus offset of the next batch (u64)
 *    60     8  corpus length (u64) and
 *    68     8  corpus FNV-1a 64 hash (u64): the corpus the run trained on
 *    76     8  RNG state (u64, never 0)
 *    84     4  learning rate (f32)
 *    88     4  loss of the last step (f32)
 *    92     8  parameter count N (u64), which must be the config's
 *   100    4N  parameters, then 4N first moments, then 4N second moments
 * 100+12N  8  FNV-1a 64 of every byte before it
 *
 * A file is written to PATH.tmp, fsynced, renamed over PATH, and the
 * directory fsynced, so PATH is always a whole checkpoint.
 */
#ifndef TRAIN_CKPT_H
#define TRAIN_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define CKPT_MAGIC "ALLOTCKP"
#define CKPT_VERSION 1u
#define CKPT_HEADER 100u

struct ckpt_state {
	uint64_t seed;
	uint64_t step;
	uint64_t data_pos;
	uint64_t corpus_len;
	uint64_t corpus_hash;
	uint64_t rng;
	float lr;
	float loss;
};

uint64_t ckpt_fnv1a(const uint8_t *p, size_t n, uint64_t h);
#define CKPT_FNV_INIT 0xcbf29ce484222325ULL

/* The bytes of a checkpoint of m and st (malloc'd, *len set), or NULL when memory runs out. */
uint8_t *ckpt_encode(const struct model *m, const struct ckpt_state *st, size_t *len);
/* Writes m and st to path atomically; 0, or -1 with why. */
int ckpt_write(
    const char *path, const struct model *m, const struct ckpt_state *st, char *why, size_t whylen);

/*
 * Parses a checkpoint in buf. With expect non-NULL the config must equal it
 * (another model's checkpoint is refused). On success allocates *m (free with
 * model_free), fills *st and returns 0; else -1 with the reason in why and
 * nothing allocated.
 */
int ckpt_parse(const uint8_t *buf, size_t len, const struct model_config *expect, struct model *m,
    struct ckpt_state *st, char *why, size_t whylen);

/* Reads path (at most 1 GiB) and parses it as ckpt_parse does. */
int ckpt_read(const char *path, const struct model_config *expect, struct model *m,
    struct ckpt_state *st, char *why, size_t whylen);

#endif
