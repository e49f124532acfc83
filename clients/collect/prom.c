/*
 * prom: Prometheus text exposition from the GPU exporters to GPU samples, one per
 * (host, GPU, job, time) with every metric of that GPU merged into it.
 *
 * NVIDIA DCGM exporter: DCGM_FI_DEV_GPU_UTIL (%), DCGM_FI_DEV_FB_USED (MiB),
 * DCGM_FI_DEV_POWER_USAGE (W), DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ, sent as uJ);
 * the GPU is the gpu label (with "/GPU_I_ID" for a MIG instance).
 * AMD device metrics exporter: gpu_gfx_activity (%), gpu_used_vram (MB, which amdsmi
 * counts in MiB), gpu_power_usage (W; else gpu_average_package_power on MI2xx, else
 * gpu_package_power), gpu_energy_consumed (uJ); the GPU is the gpu_id label.
 * Both: the host is the Hostname label (DCGM releases) or hostname (newer builds, the
 * AMD exporter); the job is the configured label, else hpc_job, jobid, job_id. A line
 * may end with a timestamp (ms since the epoch): the sample's time; else the scrape's.
 * NaN and infinite values are absent values. Other metrics and comments are skipped.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_int.h"

struct prom_metric {
	const char *name;
	enum sample_field field;
	int64_t scale; /* integer fields: value * scale */
	unsigned rank; /* of several metrics for one field, the lowest rank wins */
};

static const struct prom_metric dcgm_metrics[] = {
    {"DCGM_FI_DEV_GPU_UTIL", SAMPLE_UTIL, 1, 0},
    {"DCGM_FI_DEV_FB_USED", SAMPLE_MEM, 1, 0},
    {"DCGM_FI_DEV_POWER_USAGE", SAMPLE_POWER, 1, 0},
    {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", SAMPLE_ENERGY, 1000, 0},
    {NULL, 0, 0, 0},
};

static const struct prom_metric amd_metrics[] = {
    {"gpu_gfx_activity", SAMPLE_UTIL, 1, 0},
    {"gpu_used_vram", SAMPLE_MEM, 1, 0},
    {"gpu_power_usage", SAMPLE_POWER, 1, 0},
    {"gpu_average_package_power", SAMPLE_POWER, 1, 1},
    {"gpu_package_power", SAMPLE_POWER, 1, 2},
    {"gpu_energy_consumed", SAMPLE_ENERGY, 1, 0},
    {NULL, 0, 0, 0},
};

#define PROM_MAX_LABELS 64

struct label {
	struct span name;
	const char *value; /* decoded, NUL-terminated, in the line's buffer */
};

static bool
name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool
name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

static const char *
skip_blank(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/*
 * Reads {name="value",...} at *pp into labels, values decoded into buf (room for the
 * line). Returns the count, or -1 with err.
 */
static int
labels_read(
    const char **pp, const char *end, struct label *labels, char *buf, char *err, size_t errlen)
{
	const char *p = *pp + 1; /* past '{' */
	int n = 0;

	for (;;) {
		struct span name;

		p = skip_blank(p, end);
		if (p < end && *p == '}') {
			*pp = p + 1;
			return n;
		}
		if (p == end || !name_start(*p))
			goto bad;
		name.p = p;
		while (p < end && name_char(*p))
			p++;
		name.n = (size_t)(p - name.p);
		p = skip_blank(p, end);
		if (p == end || *p != '=')
			goto bad;
		p = skip_blank(p + 1, end);
		if (p == end || *p != '"')
			goto bad;
		if (n == PROM_MAX_LABELS) {
			snprintf(err, errlen, "more than %d labels", PROM_MAX_LABELS);
			return -1;
		}
		labels[n].name = name;
		labels[n].value = buf;
		for (p++;; p++) {
			/* A backslash ending the line escapes nothing: unterminated too. */
			if (p == end || (*p == '\\' && p + 1 == end)) {
				snprintf(err, errlen, "label %.*s: unterminated value",
				    (int)(name.n < SPAN_QUOTE_MAX ? name.n : SPAN_QUOTE_MAX),
				    name.p);
				return -1;
			}
			if (*p == '"')
				break;
			if (*p == '\\') {
				if (*++p == 'n')
					*buf++ = '\n';
				else if (*p == '\\' || *p == '"')
					*buf++ = *p;
				else {
					snprintf(err, errlen, "label %.*s: unknown escape \\%c",
					    (int)(name.n < SPAN_QUOTE_MAX ? name.n
					                                  : SPAN_QUOTE_MAX),
					    name.p, *p);
					return -1;
				}
			} else if (*p == '\0') {
				snprintf(err, errlen, "label %.*s: NUL in value",
				    (int)(name.n < SPAN_QUOTE_MAX ? name.n : SPAN_QUOTE_MAX),
				    name.p);
				return -1;
			} else {
				*buf++ = *p;
			}
		}
		*buf++ = '\0';
		n++;
		p = skip_blank(p + 1, end);
		if (p < end && *p == ',')
			p++;
		else if (p == end || *p != '}')
			goto bad;
	}
bad:
	snprintf(err, errlen, "malformed labels at column %zu", (size_t)(p - *pp) + 1);
	return -1;
}

static const char *
label_get(const struct label *labels, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (span_eq(labels[i].name, name))
			return labels[i].value;
	return NULL;
}

/* A value token: strtod's numbers, NaN and [+-]Inf; exact digits kept for int64. */
static int
value_read(struct span tok, double *d, bool *exact, int64_t *i)
{
	char buf[64], *endp;

	if (tok.n == 0 || tok.n >= sizeof(buf))
		return -1;
	memcpy(buf, tok.p, tok.n);
	buf[tok.n] = '\0';
	*exact = parse_uint(tok, INT64_MAX, i) == 0;
	if (span_eq_ci(tok, "NaN") || span_eq_ci(tok, "+Inf") || span_eq_ci(tok, "-Inf") ||
	    span_eq_ci(tok, "Inf")) {
		*d = NAN;
		return 0;
	}
	/* strtod would take hex and "infinity": the exposition format has neither. */
	for (size_t k = 0; k < tok.n; k++)
		if (strchr("0123456789+-.eE", tok.p[k]) == NULL)
			return -1;
	*d = strtod(buf, &endp);
	return *endp == '\0' ? 0 : -1;
}

/* The integer a field holds: value * scale, exact for digits, rounded otherwise. */
static int
to_int(double d, bool exact, int64_t i, int64_t scale, int64_t *out)
{
	if (exact)
		return __builtin_mul_overflow(i, scale, out) ? -1 : 0;
	d *= (double)scale;
	if (!(d >= 0) || d >= 9.2e18)
		return -1;
	*out = llround(d);
	return 0;
}

int
collect_parse_prom(const struct collect_opts *o, bool amd, const char *buf, size_t len,
    struct collect_out *out, char *err, size_t errlen)
{
	const struct prom_metric *table = amd ? amd_metrics : dcgm_metrics;
	struct label labels[PROM_MAX_LABELS];
	struct sample_set *set = NULL;
	char *vals = NULL, *scrape = NULL, why[256], reason[192], gpubuf[160], *ts = NULL;
	struct lines l;
	struct span line;
	int ret = -1;

	if ((scrape = collect_scrape_time(o, err, errlen)) == NULL)
		return -1;
	if ((set = sample_set_new()) == NULL)
		goto oom;
	lines_init(&l, buf, len);
	while (lines_next(&l, &line)) {
		const char *p = line.p, *end = line.p + line.n, *host, *gpu, *job, *time;
		const struct prom_metric *m = NULL;
		struct span name, tok;
		Allot__V1__GpuSample *s;
		unsigned *flags;
		int nl = 0;
		double d;
		bool exact;
		int64_t iv, v;

		free(ts);
		ts = NULL;
		p = skip_blank(p, end);
		if (p == end || *p == '#')
			continue;
		name.p = p;
		while (p < end && name_char(*p))
			p++;
		name.n = (size_t)(p - name.p);
		for (const struct prom_metric *t = table; t->name != NULL; t++)
			if (span_eq(name, t->name))
				m = t;
		if (m == NULL)
			continue; /* not a metric of ours: its syntax is not our business */
		free(vals);
		if ((vals = malloc(line.n + 1)) == NULL)
			goto oom;
		if (p < end && *p == '{' &&
		    (nl = labels_read(&p, end, labels, vals, why, sizeof(why))) < 0)
			goto bad_line;
		p = skip_blank(p, end);
		tok.p = p;
		while (p < end && *p != ' ' && *p != '\t')
			p++;
		tok.n = (size_t)(p - tok.p);
		if (value_read(tok, &d, &exact, &iv) != 0) {
			snprintf(why, sizeof(why), "%s: not a value: \"%.*s\"", m->name,
			    (int)(tok.n < SPAN_QUOTE_MAX ? tok.n : SPAN_QUOTE_MAX), tok.p);
			goto bad_line;
		}
		p = skip_blank(p, end);
		time = scrape;
		if (p < end) {
			struct span tsp = {p, 0};
			int64_t ms;
			bool neg = *p == '-';

			while (p < end && *p != ' ' && *p != '\t')
				p++;
			tsp.n = (size_t)(p - tsp.p);
			if (neg || parse_uint(tsp, INT64_C(253402300799999), &ms) != 0 ||
			    skip_blank(p, end) != end) {
				snprintf(why, sizeof(why), "%s: not a timestamp: \"%.*s\"", m->name,
				    (int)(tsp.n < SPAN_QUOTE_MAX ? tsp.n : SPAN_QUOTE_MAX), tsp.p);
				goto bad_line;
			}
			if ((ts = collect_time_format(ms / 1000, (int)(ms % 1000))) == NULL)
				goto oom;
			time = ts;
		}
		host = label_get(labels, nl, "Hostname");
		if (host == NULL)
			host = label_get(labels, nl, "hostname");
		if (host == NULL)
			host = o->host;
		if (host == NULL || host[0] == '\0') {
			snprintf(why, sizeof(why), "%s: no Hostname or hostname label", m->name);
			goto bad_line;
		}
		gpu = label_get(labels, nl, amd ? "gpu_id" : "gpu");
		if (gpu == NULL || gpu[0] == '\0') {
			snprintf(
			    why, sizeof(why), "%s: no %s label", m->name, amd ? "gpu_id" : "gpu");
			goto bad_line;
		}
		if (!amd) {
			const char *mig = label_get(labels, nl, "GPU_I_ID");

			if (mig != NULL && mig[0] != '\0') {
				snprintf(gpubuf, sizeof(gpubuf), "%.64s/%.64s", gpu, mig);
				gpu = gpubuf;
			}
		}
		if (o->job_label != NULL) {
			job = label_get(labels, nl, o->job_label);
		} else {
			/* The first of the usual names that names a job: an idle GPU's is empty. */
			static const char *const names[] = {"hpc_job", "jobid", "job_id"};

			job = NULL;
			for (size_t k = 0; k < 3 && (job == NULL || job[0] == '\0'); k++)
				job = label_get(labels, nl, names[k]);
		}
		if (job == NULL)
			job = "";
		if (!span_utf8((struct span){host, strlen(host)}) ||
		    !span_utf8((struct span){gpu, strlen(gpu)}) ||
		    !span_utf8((struct span){job, strlen(job)})) {
			snprintf(why, sizeof(why), "%s: a label value is not UTF-8 text", m->name);
			goto bad_line;
		}
		if (isnan(d) || isinf(d))
			continue;
		if ((s = sample_set_get(set, host, gpu, job, time, &flags)) == NULL)
			goto oom;
		v = 0;
		if ((m->field == SAMPLE_MEM || m->field == SAMPLE_ENERGY) &&
		    to_int(d, exact, iv, m->scale, &v) != 0) {
			snprintf(why, sizeof(why), "%s: %.*s is out of range", m->name,
			    (int)(tok.n < SPAN_QUOTE_MAX ? tok.n : SPAN_QUOTE_MAX), tok.p);
			goto bad_line;
		}
		if (sample_put(s, flags, m->field, m->rank, d, v, reason, sizeof(reason)) != 0) {
			snprintf(why, sizeof(why), "%s: %s", m->name, reason);
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
	free(ts);
	free(vals);
	free(scrape);
	sample_set_free(set);
	return ret;
}
