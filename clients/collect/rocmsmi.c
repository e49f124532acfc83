/*
 * rocmsmi: `rocm-smi` text output (power, use, memory, energy) to GPU samples, one
 * per "GPU[n]" index, of the host given in the options at the scrape's time.
 *
 * Keys read: "Average Graphics Package Power (W)" (else "Current Socket Graphics
 * Package Power (W)"), "GPU use (%)", "VRAM Total Used Memory (B)" (sent in MiB,
 * rounded down), "Accumulated Energy (uJ)". A value rocm-smi cannot give ("N/A
 * (Secondary die)": an MI250X module reports its power on its primary die only) is
 * absent, never 0; the die still has its sample. Banners and other keys are skipped.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_int.h"

static const struct {
	const char *key;
	enum sample_field field;
	unsigned rank;
} smi_keys[] = {
    {"Average Graphics Package Power (W)", SAMPLE_POWER, 0},
    {"Current Socket Graphics Package Power (W)", SAMPLE_POWER, 1},
    {"GPU use (%)", SAMPLE_UTIL, 0},
    {"VRAM Total Used Memory (B)", SAMPLE_MEM, 0},
    {"Accumulated Energy (uJ)", SAMPLE_ENERGY, 0},
};

/* A decimal number, nothing else; false otherwise. */
static bool
number(struct span v, double *d)
{
	char buf[64], *endp;

	if (v.n == 0 || v.n >= sizeof(buf))
		return false;
	for (size_t i = 0; i < v.n; i++)
		if (strchr("0123456789.eE+-", v.p[i]) == NULL)
			return false;
	memcpy(buf, v.p, v.n);
	buf[v.n] = '\0';
	*d = strtod(buf, &endp);
	return *endp == '\0' && isfinite(*d) && *d >= 0;
}

int
collect_parse_rocm_smi(const struct collect_opts *o, const char *buf, size_t len,
    struct collect_out *out, char *err, size_t errlen)
{
	struct sample_set *set = NULL;
	char *scrape = NULL, why[256], reason[192], gpu[24];
	struct lines l;
	struct span line;
	int ret = -1;

	if (o->host == NULL || o->host[0] == '\0') {
		snprintf(err, errlen, "rocm-smi output names no host: the host must be given");
		return -1;
	}
	if (!span_utf8((struct span){o->host, strlen(o->host)})) {
		snprintf(err, errlen, "the host name is not UTF-8 text");
		return -1;
	}
	if ((scrape = collect_scrape_time(o, err, errlen)) == NULL)
		return -1;
	if ((set = sample_set_new()) == NULL)
		goto oom;
	lines_init(&l, buf, len);
	while (lines_next(&l, &line)) {
		const char *p, *end = line.p + line.n, *colon, *rb;
		struct span key, val;
		Allot__V1__GpuSample *s;
		unsigned *flags;
		int64_t idx, v;
		size_t k;
		double d;

		line = span_trim(line);
		if (line.n < 4 || memcmp(line.p, "GPU[", 4) != 0)
			continue;
		if ((rb = memchr(line.p, ']', line.n)) == NULL ||
		    parse_uint(
		        (struct span){line.p + 4, (size_t)(rb - line.p - 4)}, 1000000, &idx) != 0) {
			snprintf(why, sizeof(why), "not a GPU index: \"%.*s\"",
			    (int)(line.n < SPAN_QUOTE_MAX ? line.n : SPAN_QUOTE_MAX), line.p);
			goto bad_line;
		}
		p = rb + 1;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end || *p != ':')
			continue;
		p++;
		if ((colon = memchr(p, ':', (size_t)(end - p))) == NULL)
			continue;
		key = span_trim((struct span){p, (size_t)(colon - p)});
		val = span_trim((struct span){colon + 1, (size_t)(end - colon - 1)});
		for (k = 0; k < sizeof(smi_keys) / sizeof(smi_keys[0]); k++)
			if (span_eq(key, smi_keys[k].key))
				break;
		if (k == sizeof(smi_keys) / sizeof(smi_keys[0]))
			continue;
		snprintf(gpu, sizeof(gpu), "%lld", (long long)idx);
		if ((s = sample_set_get(set, o->host, gpu, "", scrape, &flags)) == NULL)
			goto oom;
		if (val.n >= 3 && strncasecmp(val.p, "N/A", 3) == 0)
			continue;
		if (!number(val, &d)) {
			snprintf(why, sizeof(why), "%s: not a number: \"%.*s\"", smi_keys[k].key,
			    (int)(val.n < SPAN_QUOTE_MAX ? val.n : SPAN_QUOTE_MAX), val.p);
			goto bad_line;
		}
		if ((smi_keys[k].field == SAMPLE_MEM || smi_keys[k].field == SAMPLE_ENERGY) &&
		    d >= 9.2e18) {
			snprintf(why, sizeof(why), "%s: %.*s is out of range", smi_keys[k].key,
			    (int)(val.n < SPAN_QUOTE_MAX ? val.n : SPAN_QUOTE_MAX), val.p);
			goto bad_line;
		}
		/* VRAM comes in bytes, sent in MiB; the energy counter in uJ. */
		v = smi_keys[k].field == SAMPLE_MEM ? (int64_t)(d / 1048576.0) : llround(d);
		if (sample_put(s, flags, smi_keys[k].field, smi_keys[k].rank, d, v, reason,
		        sizeof(reason)) != 0) {
			snprintf(why, sizeof(why), "%s: %s", smi_keys[k].key, reason);
			goto bad_line;
		}
	}
	if (!sample_set_flush(set, out))
		goto oom;
	ret = 0;
	goto done;
bad_line:
	snprintf(err, errlen, "line %zu: %s", l.lineno, why);
	goto done;
oom:
	snprintf(err, errlen, "out of memory");
done:
	free(scrape);
	sample_set_free(set);
	return ret;
}
