/*
 * tres: Slurm's trackable-resources strings, as sacct's AllocTRES and the
 * job-completion records print them, reduced to what allotd bills: CPUs, memory in
 * MB, nodes and GPUs. GPUs appear untyped ("gres/gpu=4"), typed ("gres/gpu:gh200=4"),
 * or both for the same GPUs: the untyped count, when given, is the total; else the
 * typed ones are summed.
 */
#include <stdio.h>
#include <string.h>

#include "parse_int.h"

/* Counts above this are refused as absurd (allotd's bound is lower). */
#define TRES_MAX_COUNT INT64_C(1000000000)

/*
 * Memory "64G", "500000M", "1.50T", "1631132K" (no suffix: MB) in MB, rounded up.
 * Slurm's units are binary: 1G is 1024M.
 */
static int
tres_mem_mb(struct span v, int64_t *mb)
{
	int64_t mant = 0, scale = 1, num = 1, den = 1, q;
	size_t i = 0;
	bool any = false;

	for (; i < v.n && v.p[i] >= '0' && v.p[i] <= '9'; i++, any = true)
		if (__builtin_mul_overflow(mant, 10, &mant) ||
		    __builtin_add_overflow(mant, v.p[i] - '0', &mant))
			return -1;
	if (i < v.n && v.p[i] == '.') {
		for (i++; i < v.n && v.p[i] >= '0' && v.p[i] <= '9'; i++, any = true) {
			if (scale >= 1000000)
				return -1;
			scale *= 10;
			if (__builtin_mul_overflow(mant, 10, &mant) ||
			    __builtin_add_overflow(mant, v.p[i] - '0', &mant))
				return -1;
		}
	}
	if (!any)
		return -1;
	if (i < v.n) {
		switch (v.p[i]) {
		case 'K':
		case 'k':
			den = 1024;
			break;
		case 'M':
		case 'm':
			break;
		case 'G':
		case 'g':
			num = 1024;
			break;
		case 'T':
		case 't':
			num = INT64_C(1024) * 1024;
			break;
		case 'P':
		case 'p':
			num = INT64_C(1024) * 1024 * 1024;
			break;
		default:
			return -1;
		}
		if (++i != v.n)
			return -1;
	}
	if (__builtin_mul_overflow(mant, num, &mant) || __builtin_mul_overflow(den, scale, &den))
		return -1;
	q = mant / den + (mant % den != 0);
	if (q > TRES_MAX_COUNT)
		return -1;
	*mb = q;
	return 0;
}

int
tres_parse(struct span s, bool numeric_ids, int gpu_id, struct tres *t, char *err, size_t errlen)
{
	const char *p = s.p, *end = s.p + s.n;

	memset(t, 0, sizeof(*t));
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		struct span item = {p, (size_t)((comma != NULL ? comma : end) - p)};
		struct span key, val;
		const char *eq;
		int64_t v, id;

		p = comma != NULL ? comma + 1 : end;
		item = span_trim(item);
		if (item.n == 0)
			continue;
		if ((eq = memchr(item.p, '=', item.n)) == NULL) {
			snprintf(err, errlen, "TRES item \"%.*s\" is not name=value",
			    (int)(item.n < SPAN_QUOTE_MAX ? item.n : SPAN_QUOTE_MAX), item.p);
			return -1;
		}
		key = (struct span){item.p, (size_t)(eq - item.p)};
		val = (struct span){eq + 1, item.n - (size_t)(eq - item.p) - 1};
		if (numeric_ids) {
			if (parse_uint(key, INT32_MAX, &id) != 0) {
				snprintf(err, errlen, "TRES id \"%.*s\" is not a number",
				    (int)(key.n < SPAN_QUOTE_MAX ? key.n : SPAN_QUOTE_MAX), key.p);
				return -1;
			}
			if (id != 1 && id != 2 && id != 4 && id != gpu_id)
				continue;
			if (parse_uint(val, TRES_MAX_COUNT, &v) != 0)
				goto bad_value;
			if (id == 1) {
				t->has_cpus = true;
				t->cpus = v;
			} else if (id == 2) {
				t->has_mem = true;
				t->mem_mb = v;
			} else if (id == 4) {
				t->has_nodes = true;
				t->nodes = v;
			} else {
				t->has_gpus_untyped = true;
				t->gpus_untyped = v;
			}
			continue;
		}
		if (span_eq(key, "mem")) {
			if (tres_mem_mb(val, &t->mem_mb) != 0)
				goto bad_value;
			t->has_mem = true;
		} else if (span_eq(key, "cpu") || span_eq(key, "node") ||
		    span_eq(key, "gres/gpu") || (key.n > 9 && memcmp(key.p, "gres/gpu:", 9) == 0)) {
			if (parse_uint(val, TRES_MAX_COUNT, &v) != 0)
				goto bad_value;
			if (span_eq(key, "cpu")) {
				t->has_cpus = true;
				t->cpus = v;
			} else if (span_eq(key, "node")) {
				t->has_nodes = true;
				t->nodes = v;
			} else if (span_eq(key, "gres/gpu")) {
				t->has_gpus_untyped = true;
				t->gpus_untyped = v;
			} else {
				t->has_gpus_typed = true;
				t->gpus_typed += v;
				if (t->gpus_typed > TRES_MAX_COUNT)
					goto bad_value;
			}
		}
		continue;
	bad_value:
		snprintf(err, errlen, "TRES %.*s: not a count: \"%.*s\"",
		    (int)(key.n < SPAN_QUOTE_MAX ? key.n : SPAN_QUOTE_MAX), key.p,
		    (int)(val.n < SPAN_QUOTE_MAX ? val.n : SPAN_QUOTE_MAX), val.p);
		return -1;
	}
	return 0;
}

int64_t
tres_gpus(const struct tres *t)
{
	if (t->has_gpus_untyped)
		return t->gpus_untyped;
	return t->gpus_typed;
}
