/*
 * parse: the entry point of the collector's parsers and what they share: spans and
 * lines, numbers, the site's time zone and local times, the output arrays. The
 * formats themselves are sacct.c, jobcomp.c, prom.c and rocmsmi.c.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "parse_int.h"
#include "rfc3339.h"

bool
span_eq(struct span s, const char *lit)
{
	size_t n = strlen(lit);

	return s.n == n && memcmp(s.p, lit, n) == 0;
}

bool
span_eq_ci(struct span s, const char *lit)
{
	size_t n = strlen(lit);

	return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

struct span
span_trim(struct span s)
{
	while (s.n > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
		s.p++;
		s.n--;
	}
	while (s.n > 0 && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
		s.n--;
	return s;
}

char *
span_dup(struct span s)
{
	char *d = malloc(s.n + 1);

	if (d == NULL)
		return NULL;
	memcpy(d, s.p, s.n);
	d[s.n] = '\0';
	return d;
}

bool
span_utf8(struct span s)
{
	const unsigned char *p = (const unsigned char *)s.p, *end = p + s.n;

	while (p < end) {
		unsigned c = *p++, n, cp;

		if (c == 0)
			return false;
		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if ((size_t)(end - p) < n)
			return false;
		for (unsigned i = 0; i < n; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*p & 0x3f);
		}
		/* Overlong forms, surrogates, past U+10FFFF. */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

void
lines_init(struct lines *l, const char *buf, size_t len)
{
	l->p = buf;
	l->end = buf + len;
	l->lineno = 0;
}

bool
lines_next(struct lines *l, struct span *line)
{
	const char *nl;

	if (l->p >= l->end)
		return false;
	nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
	line->p = l->p;
	line->n = (size_t)((nl != NULL ? nl : l->end) - l->p);
	l->p = nl != NULL ? nl + 1 : l->end;
	if (line->n > 0 && line->p[line->n - 1] == '\r')
		line->n--;
	l->lineno++;
	return true;
}

int
parse_uint(struct span s, int64_t max, int64_t *out)
{
	int64_t v = 0;

	if (s.n == 0)
		return -1;
	for (size_t i = 0; i < s.n; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return -1;
		if (v > (max - (s.p[i] - '0')) / 10)
			return -1;
		v = v * 10 + (s.p[i] - '0');
	}
	*out = v;
	return 0;
}

/* The zoneinfo folder: $TZDIR, as glibc reads it, or the usual place. */
static const char *
zone_dir(void)
{
	const char *d = getenv("TZDIR");

	return d != NULL && d[0] != '\0' ? d : "/usr/share/zoneinfo";
}

int
collect_zone_enter(struct collect_zone *z, const char *name, char *err, size_t errlen)
{
	char path[4096];
	const char *old;
	struct stat st;

	z->changed = false;
	z->saved = NULL;
	if (name == NULL)
		return 0;
	/* A zone name is a relative path below the zoneinfo folder, nothing else. */
	if (name[0] == '\0' || name[0] == '/' || strstr(name, "..") != NULL || strlen(name) > 255) {
		snprintf(err, errlen, "time zone \"%.64s\" is not an IANA zone name", name);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", zone_dir(), name);
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "unknown time zone \"%.64s\"", name);
		return -1;
	}
	old = getenv("TZ");
	if (old != NULL && (z->saved = strdup(old)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (setenv("TZ", name, 1) != 0) {
		free(z->saved);
		z->saved = NULL;
		snprintf(err, errlen, "could not set the time zone: %s", strerror(errno));
		return -1;
	}
	z->changed = true;
	tzset();
	return 0;
}

void
collect_zone_leave(struct collect_zone *z)
{
	if (!z->changed)
		return;
	if (z->saved != NULL)
		(void)setenv("TZ", z->saved, 1);
	else
		(void)unsetenv("TZ");
	tzset();
	free(z->saved);
	z->saved = NULL;
	z->changed = false;
}

bool
collect_time_absent(struct span s)
{
	s = span_trim(s);
	return s.n == 0 || span_eq_ci(s, "Unknown") || span_eq_ci(s, "None") ||
	    span_eq_ci(s, "N/A");
}

/* n digits at s into *v; false if one is not a digit. */
static bool
digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

static bool
leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Whether the local time of t is exactly these fields. */
static bool
local_is(time_t t, int y, int mo, int d, int h, int mi, int sec)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL)
		return false;
	return tm.tm_year + 1900 == y && tm.tm_mon + 1 == mo && tm.tm_mday == d &&
	    tm.tm_hour == h && tm.tm_min == mi && tm.tm_sec == sec;
}

static long
offset_at(time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL)
		return 0;
	return tm.tm_gmtoff;
}

int
collect_time_parse(struct span s, int64_t *epoch_s, char *err, size_t errlen)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, oh, om;
	size_t i = 19;
	int64_t naive;

	s = span_trim(s);
	if (s.n < 19 || !digits(s.p, 4, &y) || s.p[4] != '-' || !digits(s.p + 5, 2, &mo) ||
	    s.p[7] != '-' || !digits(s.p + 8, 2, &d) || (s.p[10] != 'T' && s.p[10] != ' ') ||
	    !digits(s.p + 11, 2, &h) || s.p[13] != ':' || !digits(s.p + 14, 2, &mi) ||
	    s.p[16] != ':' || !digits(s.p + 17, 2, &sec))
		goto bad;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap(y)) ||
	    h > 23 || mi > 59 || sec > 59)
		goto bad;
	if (i < s.n && s.p[i] == '.') {
		for (i++; i < s.n && s.p[i] >= '0' && s.p[i] <= '9'; i++)
			;
		if (s.p[i - 1] == '.')
			goto bad;
	}
	naive = rfc3339_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 +
	    sec;
	if (i < s.n) {
		int sign;

		if (s.n - i == 1 && (s.p[i] == 'Z' || s.p[i] == 'z')) {
			*epoch_s = naive;
			return 0;
		}
		if (s.p[i] != '+' && s.p[i] != '-')
			goto bad;
		sign = s.p[i] == '+' ? 1 : -1;
		if (s.n - i == 6 && digits(s.p + i + 1, 2, &oh) && s.p[i + 3] == ':' &&
		    digits(s.p + i + 4, 2, &om))
			;
		else if (s.n - i == 5 && digits(s.p + i + 1, 2, &oh) && digits(s.p + i + 3, 2, &om))
			;
		else
			goto bad;
		if (oh > 23 || om > 59)
			goto bad;
		*epoch_s = naive - sign * (oh * 3600 + om * 60);
		return 0;
	}

	/*
	 * Local time. The offsets in force a day before and a day after bracket any
	 * change near it; each gives a candidate that is right when its local time reads
	 * back as the input. Two right ones: the hour a change repeats, taken first.
	 */
	{
		time_t c1 = (time_t)(naive - offset_at((time_t)(naive - 86400)));
		time_t c2 = (time_t)(naive - offset_at((time_t)(naive + 86400)));
		bool ok1 = local_is(c1, y, mo, d, h, mi, sec);
		bool ok2 = local_is(c2, y, mo, d, h, mi, sec);

		if (ok1 && ok2)
			*epoch_s = c1 < c2 ? c1 : c2;
		else if (ok1)
			*epoch_s = c1;
		else if (ok2)
			*epoch_s = c2;
		else {
			snprintf(err, errlen,
			    "time \"%.*s\" does not exist in the site's time zone (a clock change "
			    "skips it)",
			    (int)(s.n < SPAN_QUOTE_MAX ? s.n : SPAN_QUOTE_MAX), s.p);
			return -1;
		}
		return 0;
	}
bad:
	snprintf(err, errlen, "not a time: \"%.*s\"",
	    (int)(s.n < SPAN_QUOTE_MAX ? s.n : SPAN_QUOTE_MAX), s.p);
	return -1;
}

char *
collect_time_format(int64_t epoch_s, int ms)
{
	time_t t = (time_t)epoch_s;
	struct tm tm;
	char buf[40];

	if (gmtime_r(&t, &tm) == NULL)
		return NULL;
	if (ms > 0)
		snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
	else
		snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
		    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return strdup(buf);
}

char *
collect_scrape_time(const struct collect_opts *o, char *err, size_t errlen)
{
	int64_t t;
	char *s;

	if (o->scrape_time == NULL) {
		t = (int64_t)time(NULL);
	} else if (rfc3339_parse(o->scrape_time, &t) != 0) {
		snprintf(
		    err, errlen, "scrape time \"%.64s\" is not an RFC 3339 time", o->scrape_time);
		return NULL;
	}
	if ((s = collect_time_format(t, 0)) == NULL)
		snprintf(err, errlen, "out of memory");
	return s;
}

struct span
collect_state(struct span s)
{
	size_t i;

	s = span_trim(s);
	for (i = 0; i < s.n && s.p[i] != ' '; i++)
		;
	s.n = i;
	return s;
}

void
collect_out_init(struct collect_out *out)
{
	memset(out, 0, sizeof(*out));
}

void
collect_out_truncate(struct collect_out *out, size_t njobs, size_t nsamples)
{
	while (out->njobs > njobs)
		protobuf_c_message_free_unpacked(&out->jobs[--out->njobs]->base, NULL);
	while (out->nsamples > nsamples)
		protobuf_c_message_free_unpacked(&out->samples[--out->nsamples]->base, NULL);
}

void
collect_out_cleanup(struct collect_out *out)
{
	collect_out_truncate(out, 0, 0);
	free(out->jobs);
	free(out->samples);
	collect_out_init(out);
}

/* Makes room for one more pointer in *arr. */
static bool
grow(void ***arr, size_t n, size_t *cap)
{
	void **a;
	size_t c;

	if (n < *cap)
		return true;
	c = *cap > 0 ? *cap * 2 : 64;
	if ((a = realloc(*arr, c * sizeof(*a))) == NULL)
		return false;
	*arr = a;
	*cap = c;
	return true;
}

bool
collect_out_push_job(struct collect_out *out, Allot__V1__JobRecord *rec)
{
	if (!grow((void ***)&out->jobs, out->njobs, &out->jobs_cap))
		return false;
	out->jobs[out->njobs++] = rec;
	return true;
}

bool
collect_out_push_sample(struct collect_out *out, Allot__V1__GpuSample *s)
{
	if (!grow((void ***)&out->samples, out->nsamples, &out->samples_cap))
		return false;
	out->samples[out->nsamples++] = s;
	return true;
}

Allot__V1__JobRecord *
collect_job_new(void)
{
	Allot__V1__JobRecord *r = malloc(sizeof(*r));

	if (r != NULL)
		allot__v1__job_record__init(r);
	return r;
}

bool
collect_set_str(char **field, struct span s)
{
	char *d;

	if (s.n == 0)
		return true;
	if ((d = span_dup(s)) == NULL)
		return false;
	if (*field != NULL && *field != protobuf_c_empty_string)
		free(*field);
	*field = d;
	return true;
}

int
collect_format_parse(const char *name, enum collect_format *f)
{
	static const struct {
		const char *name;
		enum collect_format f;
	} names[] = {
	    {"sacct", COLLECT_SACCT},
	    {"jobcomp", COLLECT_JOBCOMP},
	    {"dcgm", COLLECT_DCGM},
	    {"amd", COLLECT_AMD},
	    {"rocm-smi", COLLECT_ROCM_SMI},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i].name) == 0) {
			*f = names[i].f;
			return 0;
		}
	return -1;
}

/*
 * rocm-smi's output, as opposed to Prometheus text: a "GPU[n]" line or a "====" banner
 * anywhere (rocm-smi may print warnings first). Neither can begin an exposition line.
 */
static bool
looks_like_rocm_smi(const char *buf, size_t len)
{
	struct lines l;
	struct span line;

	lines_init(&l, buf, len);
	while (lines_next(&l, &line)) {
		line = span_trim(line);
		if ((line.n > 0 && line.p[0] == '=') ||
		    (line.n > 4 && memcmp(line.p, "GPU[", 4) == 0))
			return true;
	}
	return false;
}

int
collect_parse(enum collect_format f, const struct collect_opts *o, const char *buf, size_t len,
    struct collect_out *out, char *err, size_t errlen)
{
	static const struct collect_opts none = {0};
	size_t njobs = out->njobs, nsamples = out->nsamples;
	struct collect_zone zone;
	int r;

	if (o == NULL)
		o = &none;
	if (f == COLLECT_AMD)
		f = looks_like_rocm_smi(buf, len) ? COLLECT_ROCM_SMI : COLLECT_AMD;
	if (collect_zone_enter(&zone, o->timezone, err, errlen) != 0)
		return -1;
	switch (f) {
	case COLLECT_SACCT:
		r = collect_parse_sacct(o, buf, len, out, err, errlen);
		break;
	case COLLECT_JOBCOMP:
		r = collect_parse_jobcomp(o, buf, len, out, err, errlen);
		break;
	case COLLECT_DCGM:
	case COLLECT_AMD:
		r = collect_parse_prom(o, f == COLLECT_AMD, buf, len, out, err, errlen);
		break;
	case COLLECT_ROCM_SMI:
		r = collect_parse_rocm_smi(o, buf, len, out, err, errlen);
		break;
	default:
		snprintf(err, errlen, "unknown format %d", (int)f);
		r = -1;
	}
	collect_zone_leave(&zone);
	if (r != 0)
		collect_out_truncate(out, njobs, nsamples);
	return r;
}
