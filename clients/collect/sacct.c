/*
 * sacct: `sacct --parsable2` (or `-p`, with its trailing '|') output to job records.
 *
 * Fields in any order, named by the header line or, for `-n` output, by the
 * --format list given in the options; names are matched without regard to case and
 * a width suffix ("JobID%20") is dropped. Needed: JobID, Account, Partition, State,
 * Elapsed or ElapsedRaw, Start or End, AllocTRES; used when present: User, NNodes,
 * NCPUS or AllocCPUS, NodeList (the job's nodes, for incidents on nodes). Other fields are skipped. "48411710.batch" is job 48411710,
 * step "batch". Times are the site's local time (sacct prints no offset).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_int.h"

enum sacct_col {
	COL_JOBID,
	COL_JOBIDRAW,
	COL_ACCOUNT,
	COL_USER,
	COL_PARTITION,
	COL_STATE,
	COL_START,
	COL_END,
	COL_ELAPSED,
	COL_ELAPSEDRAW,
	COL_NNODES,
	COL_NCPUS,
	COL_ALLOCCPUS,
	COL_ALLOCTRES,
	COL_NODELIST,
	NCOLS,
};

static const char *const col_names[NCOLS] = {
    [COL_JOBID] = "JobID",
    [COL_JOBIDRAW] = "JobIDRaw",
    [COL_ACCOUNT] = "Account",
    [COL_USER] = "User",
    [COL_PARTITION] = "Partition",
    [COL_STATE] = "State",
    [COL_START] = "Start",
    [COL_END] = "End",
    [COL_ELAPSED] = "Elapsed",
    [COL_ELAPSEDRAW] = "ElapsedRaw",
    [COL_NNODES] = "NNodes",
    [COL_NCPUS] = "NCPUS",
    [COL_ALLOCCPUS] = "AllocCPUS",
    [COL_ALLOCTRES] = "AllocTRES",
    [COL_NODELIST] = "NodeList",
};

/* More fields than any sacct prints: a bound on a line's split. */
#define SACCT_MAX_FIELDS 256

struct sacct_header {
	int pos[NCOLS]; /* field index of each known column, -1 when absent */
	size_t nfields;
};

/* Maps the names in s, separated by sep, to columns. 0 or -1 with err. */
static int
header_read(struct span s, char sep, struct sacct_header *h, char *err, size_t errlen)
{
	const char *p = s.p, *end = s.p + s.n;

	for (int c = 0; c < NCOLS; c++)
		h->pos[c] = -1;
	h->nfields = 0;
	for (;;) {
		const char *q = memchr(p, sep, (size_t)(end - p));
		struct span name = {p, (size_t)((q != NULL ? q : end) - p)};
		const char *pct;

		if (h->nfields == SACCT_MAX_FIELDS) {
			snprintf(err, errlen, "more than %d fields", SACCT_MAX_FIELDS);
			return -1;
		}
		name = span_trim(name);
		if ((pct = memchr(name.p, '%', name.n)) != NULL)
			name.n = (size_t)(pct - name.p);
		for (int c = 0; c < NCOLS; c++)
			if (h->pos[c] < 0 && span_eq_ci(name, col_names[c]))
				h->pos[c] = (int)h->nfields;
		h->nfields++;
		if (q == NULL)
			break;
		p = q + 1;
	}
	/* -p ends the header with '|' too: an empty last name is that, not a field. */
	if (sep == '|' && s.n > 0 && s.p[s.n - 1] == '|')
		h->nfields--;
	if (h->pos[COL_JOBID] < 0)
		h->pos[COL_JOBID] = h->pos[COL_JOBIDRAW];
	{
		static const struct {
			int a, b;
			const char *what;
		} need[] = {
		    {COL_JOBID, COL_JOBID, "JobID"},
		    {COL_ACCOUNT, COL_ACCOUNT, "Account"},
		    {COL_PARTITION, COL_PARTITION, "Partition"},
		    {COL_STATE, COL_STATE, "State"},
		    {COL_ELAPSEDRAW, COL_ELAPSED, "ElapsedRaw (or Elapsed)"},
		    {COL_START, COL_END, "Start (or End)"},
		    {COL_ALLOCTRES, COL_ALLOCTRES, "AllocTRES"},
		};

		for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
			if (h->pos[need[i].a] < 0 && h->pos[need[i].b] < 0) {
				snprintf(err, errlen, "no %s field: add it to sacct's --format",
				    need[i].what);
				return -1;
			}
	}
	return 0;
}

/* sacct's Elapsed: [D-]HH:MM:SS or MM:SS, seconds maybe with a fraction (dropped). */
static int
elapsed_parse(struct span s, int64_t *out)
{
	int64_t days = 0, part[3], v;
	size_t nparts = 0;
	const char *p = s.p, *end = s.p + s.n, *dash, *dot;

	if ((dash = memchr(p, '-', s.n)) != NULL) {
		if (parse_uint((struct span){p, (size_t)(dash - p)}, 100000, &days) != 0)
			return -1;
		p = dash + 1;
	}
	if ((dot = memchr(p, '.', (size_t)(end - p))) != NULL) {
		int64_t frac;

		if (parse_uint((struct span){dot + 1, (size_t)(end - dot - 1)}, INT32_MAX, &frac))
			return -1;
		end = dot;
	}
	for (;;) {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		struct span f = {p, (size_t)((colon != NULL ? colon : end) - p)};

		if (nparts == 3 || parse_uint(f, 1000000, &v) != 0)
			return -1;
		part[nparts++] = v;
		if (colon == NULL)
			break;
		p = colon + 1;
	}
	if (nparts == 2)
		v = part[0] * 60 + part[1];
	else if (nparts == 3)
		v = part[0] * 3600 + part[1] * 60 + part[2];
	else
		return -1;
	if ((dash != NULL && nparts != 3) || part[nparts - 1] > 59 || (nparts == 3 && part[1] > 59))
		return -1;
	*out = days * 86400 + v;
	return 0;
}

static struct span
field(struct span *f, const struct sacct_header *h, enum sacct_col c)
{
	static const struct span none = {"", 0};

	return h->pos[c] >= 0 ? f[h->pos[c]] : none;
}

#define QUOTE(s) (int)((s).n < SPAN_QUOTE_MAX ? (s).n : SPAN_QUOTE_MAX), (s).p

/* One data line into j. 0 or -1 with err (without the line number). */
static int
row_read(
    struct span *f, const struct sacct_header *h, struct job_fields *j, char *err, size_t errlen)
{
	struct span id = span_trim(field(f, h, COL_JOBID)), v;
	const char *dot;
	char terr[160];
	int64_t n;

	memset(j, 0, sizeof(*j));
	if ((dot = memchr(id.p, '.', id.n)) != NULL) {
		j->job_id = (struct span){id.p, (size_t)(dot - id.p)};
		j->step = (struct span){dot + 1, id.n - (size_t)(dot - id.p) - 1};
	} else {
		j->job_id = id;
		j->step = (struct span){"", 0};
	}
	if (j->job_id.n == 0) {
		snprintf(err, errlen, "JobID: no job id in \"%.*s\"", QUOTE(id));
		return -1;
	}
	j->account = span_trim(field(f, h, COL_ACCOUNT));
	j->user = span_trim(field(f, h, COL_USER));
	j->partition = span_trim(field(f, h, COL_PARTITION));
	j->state = collect_state(field(f, h, COL_STATE));
	j->node_list = span_trim(field(f, h, COL_NODELIST));

	if (h->pos[COL_ELAPSEDRAW] >= 0) {
		v = span_trim(field(f, h, COL_ELAPSEDRAW));
		if (parse_uint(v, INT64_C(100000) * 86400, &j->elapsed_s) != 0) {
			snprintf(err, errlen, "ElapsedRaw: not a number: \"%.*s\"", QUOTE(v));
			return -1;
		}
	} else {
		v = span_trim(field(f, h, COL_ELAPSED));
		if (elapsed_parse(v, &j->elapsed_s) != 0) {
			snprintf(err, errlen, "Elapsed: not a duration: \"%.*s\"", QUOTE(v));
			return -1;
		}
	}
	v = field(f, h, COL_START);
	if (!collect_time_absent(v)) {
		if (collect_time_parse(v, &j->start_s, terr, sizeof(terr)) != 0) {
			snprintf(err, errlen, "Start: %s", terr);
			return -1;
		}
		j->has_start = true;
	}
	v = field(f, h, COL_END);
	if (!collect_time_absent(v)) {
		if (collect_time_parse(v, &j->end_s, terr, sizeof(terr)) != 0) {
			snprintf(err, errlen, "End: %s", terr);
			return -1;
		}
		j->has_end = true;
	}
	{
		static const enum sacct_col counts[] = {COL_NNODES, COL_NCPUS, COL_ALLOCCPUS};

		for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
			enum sacct_col c = counts[i];

			v = span_trim(field(f, h, c));
			if (v.n == 0)
				continue;
			if (parse_uint(v, INT32_MAX, &n) != 0) {
				snprintf(err, errlen, "%s: not a number: \"%.*s\"", col_names[c],
				    QUOTE(v));
				return -1;
			}
			if (c == COL_NNODES) {
				j->has_nodes = true;
				j->nodes = n;
			} else if (!j->has_cpus) {
				j->has_cpus = true;
				j->cpus = n;
			}
		}
	}
	if (tres_parse(field(f, h, COL_ALLOCTRES), false, 0, &j->tres, terr, sizeof(terr)) != 0) {
		snprintf(err, errlen, "AllocTRES: %s", terr);
		return -1;
	}
	return 0;
}

/* Splits line on '|' into f (room for SACCT_MAX_FIELDS + 1); returns the count. */
static size_t
split(struct span line, struct span *f)
{
	const char *p = line.p, *end = line.p + line.n;
	size_t n = 0;

	for (;;) {
		const char *q = memchr(p, '|', (size_t)(end - p));

		f[n++] = (struct span){p, (size_t)((q != NULL ? q : end) - p)};
		if (q == NULL || n == SACCT_MAX_FIELDS + 1)
			return n;
		p = q + 1;
	}
}

int
collect_parse_sacct(const struct collect_opts *o, const char *buf, size_t len,
    struct collect_out *out, char *err, size_t errlen)
{
	struct sacct_header h;
	struct lines l;
	struct span line, *f = NULL;
	struct job_fields j;
	bool have_header = false;
	char why[256];
	int ret = -1;

	if (o->fields != NULL) {
		if (header_read((struct span){o->fields, strlen(o->fields)}, ',', &h, why,
		        sizeof(why)) != 0) {
			snprintf(err, errlen, "--fields: %s", why);
			return -1;
		}
		have_header = true;
	}
	if ((f = calloc(SACCT_MAX_FIELDS + 1, sizeof(*f))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	lines_init(&l, buf, len);
	while (lines_next(&l, &line)) {
		size_t n;

		if (span_trim(line).n == 0)
			continue;
		if (!have_header) {
			if (header_read(line, '|', &h, why, sizeof(why)) != 0)
				goto bad_line;
			have_header = true;
			continue;
		}
		n = split(line, f);
		/* -p: a trailing '|' makes one empty field more. */
		if (n == h.nfields + 1 && f[n - 1].n == 0)
			n--;
		if (n != h.nfields) {
			snprintf(why, sizeof(why), "%s%zu fields where the %s names %zu",
			    n > SACCT_MAX_FIELDS ? "more than " : "",
			    n > SACCT_MAX_FIELDS ? n - 1 : n,
			    o->fields != NULL ? "--fields list" : "header", h.nfields);
			goto bad_line;
		}
		/* A header line in -n output read with --fields: skipped. */
		if (o->fields != NULL && span_eq_ci(span_trim(field(f, &h, COL_JOBID)), "JobID"))
			continue;
		if (row_read(f, &h, &j, why, sizeof(why)) != 0 ||
		    collect_job_emit(&j, out, why, sizeof(why)) != 0)
			goto bad_line;
	}
	ret = 0;
	goto done;
bad_line:
	snprintf(err, errlen, "line %zu: %s", l.lineno, why);
done:
	free(f);
	return ret;
}
