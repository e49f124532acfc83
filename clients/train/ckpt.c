/* allot-train's checkpoint format: see ckpt.h. */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t
ckpt_fnv1a(const uint8_t *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void
putf(uint8_t *p, float f)
{
	uint32_t v;
	memcpy(&v, &f, 4);
	put32(p, v);
}

static float
getf(const uint8_t *p)
{
	uint32_t v = get32(p);
	float f;
	memcpy(&f, &v, 4);
	return f;
}

static void
config_put(uint8_t *p, const struct model_config *c)
{
	put32(p, c->vocab);
	put32(p + 4, c->ctx);
	put32(p + 8, c->layers);
	put32(p + 12, c->heads);
	put32(p + 16, c->channels);
	put32(p + 20, c->batch);
}

static void
floats_put(uint8_t *p, const float *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		putf(p + 4 * i, f[i]);
}

static void
floats_get(float *f, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		f[i] = getf(p + 4 * i);
}

static int
write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

uint8_t *
ckpt_encode(const struct model *m, const struct ckpt_state *st, size_t *lenp)
{
	size_t n = m->nparams, len = CKPT_HEADER + 12 * n + 8;
	uint8_t *buf = malloc(len);
	if (!buf)
		return NULL;
	memcpy(buf, CKPT_MAGIC, 8);
	put32(buf + 8, CKPT_VERSION);
	config_put(buf + 12, &m->cfg);
	put64(buf + 36, st->seed);
	put64(buf + 44, st->step);
	put64(buf + 52, st->data_pos);
	put64(buf + 60, st->corpus_len);
	put64(buf + 68, st->corpus_hash);
	put64(buf + 76, st->rng);
	putf(buf + 84, st->lr);
	putf(buf + 88, st->loss);
	put64(buf + 92, n);
	floats_put(buf + CKPT_HEADER, m->params, n);
	floats_put(buf + CKPT_HEADER + 4 * n, m->m, n);
	floats_put(buf + CKPT_HEADER + 8 * n, m->v, n);
	put64(buf + len - 8, ckpt_fnv1a(buf, len - 8, CKPT_FNV_INIT));
	*lenp = len;
	return buf;
}

int
ckpt_write(
    const char *path, const struct model *m, const struct ckpt_state *st, char *why, size_t whylen)
{
	size_t len;
	uint8_t *buf = ckpt_encode(m, st, &len);
	if (!buf) {
		snprintf(
		    why, whylen, "out of memory for a checkpoint of %zu parameters", m->nparams);
		return -1;
	}
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		free(buf);
		snprintf(why, whylen, "checkpoint path too long");
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(why, whylen, "%s: %s", tmp, strerror(errno));
		free(buf);
		return -1;
	}
	int rc = write_all(fd, buf, len);
	if (rc == 0)
		rc = fsync(fd);
	int saved = errno;
	free(buf);
	if (close(fd) != 0 && rc == 0) {
		rc = -1;
		saved = errno;
	}
	if (rc == 0 && rename(tmp, path) != 0) {
		rc = -1;
		saved = errno;
	}
	if (rc != 0) {
		snprintf(why, whylen, "writing %s: %s", tmp, strerror(saved));
		unlink(tmp);
		return -1;
	}
	/* the rename itself is durable once the directory is synced */
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) != 0) {
			snprintf(why, whylen, "fsync of %s's directory: %s", path, strerror(errno));
			close(dfd);
			return -1;
		}
		close(dfd);
	}
	return 0;
}

int
ckpt_parse(const uint8_t *buf, size_t len, const struct model_config *expect, struct model *m,
    struct ckpt_state *st, char *why, size_t whylen)
{
	if (len < CKPT_HEADER + 8) {
		snprintf(why, whylen, "truncated: %zu bytes, shorter than a header", len);
		return -1;
	}
	if (memcmp(buf, CKPT_MAGIC, 8) != 0) {
		snprintf(why, whylen, "not a checkpoint of allot-train (bad magic)");
		return -1;
	}
	uint32_t version = get32(buf + 8);
	if (version != CKPT_VERSION) {
		snprintf(why, whylen, "version %u, this build reads %u", version, CKPT_VERSION);
		return -1;
	}
	struct model_config c = {get32(buf + 12), get32(buf + 16), get32(buf + 20), get32(buf + 24),
	    get32(buf + 28), get32(buf + 32)};
	char cwhy[128];
	if (model_config_check(&c, cwhy, sizeof(cwhy)) != 0) {
		snprintf(why, whylen, "bad model config: %s", cwhy);
		return -1;
	}
	if (expect && memcmp(&c, expect, sizeof(c)) != 0) {
		snprintf(why, whylen,
		    "another model's checkpoint: layers %u heads %u channels %u ctx %u batch %u, "
		    "this run has layers %u heads %u channels %u ctx %u batch %u",
		    c.layers, c.heads, c.channels, c.ctx, c.batch, expect->layers, expect->heads,
		    expect->channels, expect->ctx, expect->batch);
		return -1;
	}
	size_t sizes[MODEL_NTENSORS];
	size_t n = model_param_count(&c, sizes);
	uint64_t stored_n = get64(buf + 92);
	if (stored_n != n) {
		snprintf(why, whylen, "parameter count %llu, the config has %zu",
		    (unsigned long long)stored_n, n);
		return -1;
	}
	size_t want = CKPT_HEADER + 12 * n + 8;
	if (len != want) {
		snprintf(why, whylen, "%s: %zu bytes, the config needs %zu",
		    len < want ? "truncated" : "trailing bytes", len, want);
		return -1;
	}
	uint64_t sum = ckpt_fnv1a(buf, len - 8, CKPT_FNV_INIT);
	if (sum != get64(buf + len - 8)) {
		snprintf(why, whylen, "checksum mismatch: the file is corrupt");
		return -1;
	}
	struct ckpt_state s = {
	    .seed = get64(buf + 36),
	    .step = get64(buf + 44),
	    .data_pos = get64(buf + 52),
	    .corpus_len = get64(buf + 60),
	    .corpus_hash = get64(buf + 68),
	    .rng = get64(buf + 76),
	    .lr = getf(buf + 84),
	    .loss = getf(buf + 88),
	};
	if (s.rng == 0) {
		snprintf(why, whylen, "RNG state 0 is not a state of the generator");
		return -1;
	}
	if (s.corpus_len <= (uint64_t)c.ctx || s.data_pos >= s.corpus_len) {
		snprintf(why, whylen, "data position %llu outside a corpus of %llu bytes",
		    (unsigned long long)s.data_pos, (unsigned long long)s.corpus_len);
		return -1;
	}
	if (!(s.lr > 0.0f && s.lr < 1.0f)) {
		snprintf(why, whylen, "learning rate out of range");
		return -1;
	}
	if (model_alloc(m, &c) != 0) {
		snprintf(why, whylen, "out of memory for the model");
		return -1;
	}
	floats_get(m->params, buf + CKPT_HEADER, n);
	floats_get(m->m, buf + CKPT_HEADER + 4 * n, n);
	floats_get(m->v, buf + CKPT_HEADER + 8 * n, n);
	m->adam_step = s.step;
	*st = s;
	return 0;
}

int
ckpt_read(const char *path, const struct model_config *expect, struct model *m,
    struct ckpt_state *st, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat sb;
	if (fstat(fd, &sb) != 0 || sb.st_size < 0 || sb.st_size > (1LL << 30)) {
		snprintf(why, whylen, "%s: not a regular file of at most 1 GiB", path);
		close(fd);
		return -1;
	}
	size_t len = (size_t)sb.st_size, got = 0;
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) {
		close(fd);
		snprintf(why, whylen, "out of memory reading %s", path);
		return -1;
	}
	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	char pwhy[512];
	int rc = ckpt_parse(buf, got, expect, m, st, pwhy, sizeof(pwhy));
	free(buf);
	if (rc != 0)
		snprintf(why, whylen, "%s: %s", path, pwhy);
	return rc;
}
