/*
 * samples: the GPU samples of one scrape, keyed by (host, GPU, job, time), so that
 * the lines of each metric merge into one sample per GPU. An open-addressing hash of
 * the keys, grown at half load: a scrape costs time linear in its lines.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_int.h"

struct sample_set {
	Allot__V1__GpuSample **s; /* in the order first seen */
	char **keys;              /* parallel to s */
	unsigned *flags;          /* parallel to s: the caller's */
	size_t n, cap;
	size_t *slots; /* index + 1 into s; 0 free */
	size_t nslots; /* a power of two */
};

static uint64_t
hash(const char *k)
{
	uint64_t h = UINT64_C(1469598103934665603);

	for (; *k != '\0'; k++)
		h = (h ^ (unsigned char)*k) * UINT64_C(1099511628211);
	return h;
}

struct sample_set *
sample_set_new(void)
{
	return calloc(1, sizeof(struct sample_set));
}

void
sample_set_free(struct sample_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->n; i++) {
		if (set->s[i] != NULL)
			protobuf_c_message_free_unpacked(&set->s[i]->base, NULL);
		free(set->keys[i]);
	}
	free(set->s);
	free(set->keys);
	free(set->flags);
	free(set->slots);
	free(set);
}

static bool
rehash(struct sample_set *set, size_t nslots)
{
	size_t *slots = calloc(nslots, sizeof(*slots));

	if (slots == NULL)
		return false;
	for (size_t i = 0; i < set->n; i++) {
		size_t j = (size_t)hash(set->keys[i]) & (nslots - 1);

		while (slots[j] != 0)
			j = (j + 1) & (nslots - 1);
		slots[j] = i + 1;
	}
	free(set->slots);
	set->slots = slots;
	set->nslots = nslots;
	return true;
}

/* A new sample of the key's parts; NULL when out of memory. */
static Allot__V1__GpuSample *
sample_new(const char *host, const char *gpu, const char *job, const char *time)
{
	Allot__V1__GpuSample *s = malloc(sizeof(*s));
	const char *src[4] = {host, gpu, job, time};
	char **dst[4];

	if (s == NULL)
		return NULL;
	allot__v1__gpu_sample__init(s);
	dst[0] = &s->host;
	dst[1] = &s->gpu;
	dst[2] = &s->job_id;
	dst[3] = &s->time;
	for (int i = 0; i < 4; i++) {
		if (!collect_set_str(dst[i], (struct span){src[i], strlen(src[i])})) {
			protobuf_c_message_free_unpacked(&s->base, NULL);
			return NULL;
		}
	}
	return s;
}

Allot__V1__GpuSample *
sample_set_get(struct sample_set *set, const char *host, const char *gpu, const char *job,
    const char *time, unsigned **flags)
{
	const char *parts[4] = {host, gpu, job, time};
	size_t klen = 0, off = 0;
	char *key;
	size_t j;

	/* Each part after its length: no label value can make two keys one. */
	for (int i = 0; i < 4; i++)
		klen += strlen(parts[i]) + 21;
	if ((key = malloc(klen + 1)) == NULL)
		return NULL;
	for (int i = 0; i < 4; i++)
		off += (size_t)snprintf(
		    key + off, klen + 1 - off, "%zu:%s", strlen(parts[i]), parts[i]);

	if (set->nslots > 0) {
		for (j = (size_t)hash(key) & (set->nslots - 1); set->slots[j] != 0;
		     j = (j + 1) & (set->nslots - 1))
			if (strcmp(set->keys[set->slots[j] - 1], key) == 0) {
				free(key);
				*flags = &set->flags[set->slots[j] - 1];
				return set->s[set->slots[j] - 1];
			}
	}
	if (set->n == set->cap) {
		size_t cap = set->cap > 0 ? set->cap * 2 : 16;
		Allot__V1__GpuSample **s = realloc(set->s, cap * sizeof(*s));
		char **k;
		unsigned *f;

		if (s == NULL)
			goto oom;
		set->s = s;
		if ((k = realloc(set->keys, cap * sizeof(*k))) == NULL)
			goto oom;
		set->keys = k;
		if ((f = realloc(set->flags, cap * sizeof(*f))) == NULL)
			goto oom;
		set->flags = f;
		set->cap = cap;
	}
	if ((set->n + 1) * 2 > set->nslots && !rehash(set, set->nslots > 0 ? set->nslots * 2 : 32))
		goto oom;
	if ((set->s[set->n] = sample_new(host, gpu, job, time)) == NULL)
		goto oom;
	set->keys[set->n] = key;
	set->flags[set->n] = 0;
	for (j = (size_t)hash(key) & (set->nslots - 1); set->slots[j] != 0;
	     j = (j + 1) & (set->nslots - 1))
		;
	set->slots[j] = ++set->n;
	*flags = &set->flags[set->n - 1];
	return set->s[set->n - 1];
oom:
	free(key);
	return NULL;
}

int
sample_put(Allot__V1__GpuSample *s, unsigned *flags, enum sample_field f, unsigned rank, double d,
    int64_t v, char *why, size_t whylen)
{
	/* Per field, four bits: the rank of the metric that set it, plus one (0: unset). */
	unsigned shift = 4 * (unsigned)f, cur = (*flags >> shift) & 0xf;

	if (cur == rank + 1) {
		snprintf(why, whylen, "a second value for host %.64s GPU %.64s", s->host, s->gpu);
		return -1;
	}
	if (cur != 0 && cur < rank + 1)
		return 0;
	if ((f == SAMPLE_UTIL && !(d >= 0 && d <= 100)) || (f == SAMPLE_POWER && !(d >= 0))) {
		snprintf(
		    why, whylen, "%g is not a %s", d, f == SAMPLE_UTIL ? "percentage" : "power");
		return -1;
	}
	*flags = (*flags & ~(0xfu << shift)) | ((rank + 1) << shift);
	switch (f) {
	case SAMPLE_UTIL:
		s->utilization_case = ALLOT__V1__GPU_SAMPLE__UTILIZATION_UTILIZATION_PCT;
		s->utilization_pct = d;
		break;
	case SAMPLE_POWER:
		s->power_case = ALLOT__V1__GPU_SAMPLE__POWER_POWER_W;
		s->power_w = d;
		break;
	case SAMPLE_MEM:
		s->memory_case = ALLOT__V1__GPU_SAMPLE__MEMORY_MEMORY_USED_MIB;
		s->memory_used_mib = v;
		break;
	case SAMPLE_ENERGY:
		s->energy_case = ALLOT__V1__GPU_SAMPLE__ENERGY_ENERGY_UJ;
		s->energy_uj = v;
		break;
	}
	return 0;
}

bool
sample_set_flush(struct sample_set *set, struct collect_out *out)
{
	for (size_t i = 0; i < set->n; i++) {
		if (set->s[i] == NULL)
			continue;
		if (!collect_out_push_sample(out, set->s[i]))
			return false;
		set->s[i] = NULL;
	}
	return true;
}
