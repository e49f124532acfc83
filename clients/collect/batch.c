/*
 * batch: gathering, packing and spooling of batches (see batch.h). A batch is
 * packed once, when it is cut, and the packed bytes are what the spool keeps and
 * what is sent: the batch id travels inside them.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "jobrecords.h"
#include "pbjson.h"

struct held {
	enum spool_kind kind;
	uint32_t n;
	uint8_t *buf;
	size_t len;
};

struct batcher {
	struct spool *spool;
	char *site;
	size_t max;       /* records or samples per batch */
	size_t max_bytes; /* bound on a packed batch */
	size_t gathered_bytes[SPOOL_NKINDS];
	Allot__V1__JobRecord **jobs;
	size_t njobs, jobs_cap;
	Allot__V1__GpuSample **samples;
	size_t nsamples, samples_cap;
	struct held *held; /* packed, not yet spooled, oldest first: held[hhead .. nheld) */
	size_t hhead, nheld, heldcap;
	uint64_t held_records;
	uint64_t spooled[SPOOL_NKINDS];
	char *partitions; /* the partitions whose jobs are sent, comma-separated; NULL: all */
	char *last_job;   /* job id of the last job record (not a step) taken or skipped */
	bool last_kept;
	uint64_t skipped;
	void (*on_spooled)(void *arg);
	void *on_spooled_arg;
};

/* What one message adds to a packed request: itself, its tag and its length. */
static size_t
message_bytes(const ProtobufCMessage *m)
{
	return protobuf_c_message_get_packed_size(m) + 6;
}

struct batcher *
batcher_new(struct spool *spool, const char *site, size_t batch_records, size_t batch_bytes)
{
	struct batcher *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	if ((b->site = strdup(site)) == NULL) {
		free(b);
		return NULL;
	}
	b->spool = spool;
	batcher_set_size(b, batch_records, batch_bytes);
	return b;
}

void
batcher_set_size(struct batcher *b, size_t batch_records, size_t batch_bytes)
{
	b->max = batch_records > 0 ? batch_records : 1;
	b->max_bytes = batch_bytes > 0 ? batch_bytes : SIZE_MAX;
}

void
batcher_free(struct batcher *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->njobs; i++)
		protobuf_c_message_free_unpacked(&b->jobs[i]->base, NULL);
	for (size_t i = 0; i < b->nsamples; i++)
		protobuf_c_message_free_unpacked(&b->samples[i]->base, NULL);
	for (size_t i = b->hhead; i < b->nheld; i++)
		free(b->held[i].buf);
	free(b->jobs);
	free(b->samples);
	free(b->held);
	free(b->site);
	free(b->partitions);
	free(b->last_job);
	free(b);
}

int
batcher_set_partitions(struct batcher *b, const char *list)
{
	char *copy = NULL;

	if (list != NULL && list[0] != '\0' && (copy = strdup(list)) == NULL)
		return -1;
	free(b->partitions);
	b->partitions = copy;
	return 0;
}

void
batcher_on_spooled(struct batcher *b, void (*fn)(void *arg), void *arg)
{
	b->on_spooled = fn;
	b->on_spooled_arg = arg;
}

uint64_t
batcher_skipped(const struct batcher *b)
{
	return b->skipped;
}

/* The next comma-separated name at *p: its length; *p moves past it, NULL after the last. */
static size_t
next_name(const char **p, const char **name)
{
	const char *comma = strchr(*p, ',');
	size_t len = comma != NULL ? (size_t)(comma - *p) : strlen(*p);

	*name = *p;
	*p = comma != NULL ? comma + 1 : NULL;
	return len;
}

/*
 * Whether one of partition's comma-separated names is one of list's. A pending
 * job's partition may name several ("boost_usr_prod,lrd_all_serial"): any of them
 * listed will do.
 */
static bool
partition_listed(const char *list, const char *partition)
{
	const char *name, *listed;
	size_t len, llen;

	for (const char *p = partition; p != NULL;) {
		if ((len = next_name(&p, &name)) == 0)
			continue;
		for (const char *l = list; l != NULL;)
			if ((llen = next_name(&l, &listed)) == len &&
			    memcmp(listed, name, len) == 0)
				return true;
	}
	return false;
}

/*
 * Whether rec is sent under b's partitions. A job record is sent when its
 * partition is listed; a step follows the job record before it when that is its
 * job (sacct prints a job's steps right after it, with an empty partition),
 * otherwise its own partition decides, and a step without one is sent (allotd
 * knows its job or not). Returns -1 when out of memory.
 */
static int
job_kept(struct batcher *b, const Allot__V1__JobRecord *rec)
{
	const char *part = rec->partition != NULL ? rec->partition : "";
	const char *job = rec->job_id != NULL ? rec->job_id : "";
	char *copy;

	if (b->partitions == NULL)
		return 1;
	if (rec->step == NULL || rec->step[0] == '\0') {
		if (b->last_job == NULL || strcmp(b->last_job, job) != 0) {
			if ((copy = strdup(job)) == NULL)
				return -1;
			free(b->last_job);
			b->last_job = copy;
		}
		b->last_kept = partition_listed(b->partitions, part);
		return b->last_kept;
	}
	if (b->last_job != NULL && strcmp(b->last_job, job) == 0)
		return b->last_kept;
	return part[0] == '\0' || partition_listed(b->partitions, part);
}

bool
batcher_full(const struct batcher *b)
{
	return b->nheld > b->hhead;
}

bool
batcher_has_partial(const struct batcher *b)
{
	return b->njobs > 0 || b->nsamples > 0;
}

uint64_t
batcher_pending(const struct batcher *b)
{
	return b->held_records + b->njobs + b->nsamples;
}

uint64_t
batcher_spooled(const struct batcher *b, enum spool_kind kind)
{
	return (unsigned)kind < SPOOL_NKINDS ? b->spooled[kind] : 0;
}

int
batch_metrics_id(
    const char *site, Allot__V1__GpuSample **samples, size_t n, char *out, size_t outlen)
{
	Allot__V1__IngestMetricsRequest req = ALLOT__V1__INGEST_METRICS_REQUEST__INIT;

	req.site = (char *)site;
	req.samples = samples;
	req.n_samples = n;
	return jobrecords_batch_id_of(site, &req.base, out, outlen);
}

static bool
push_held(struct batcher *b, const struct held *h)
{
	if (b->hhead > 0 && b->hhead == b->nheld)
		b->hhead = b->nheld = 0;
	if (b->nheld == b->heldcap) {
		size_t cap = b->heldcap > 0 ? b->heldcap * 2 : 4;
		struct held *n = realloc(b->held, cap * sizeof(*n));

		if (n == NULL)
			return false;
		b->held = n;
		b->heldcap = cap;
	}
	b->held[b->nheld++] = *h;
	b->held_records += h->n;
	return true;
}

/* Packs messages [first, first + n) of kind into one held batch. */
static int
cut_one(struct batcher *b, enum spool_kind kind, size_t first, size_t n, char *err, size_t errlen)
{
	char id[JOBRECORDS_BATCH_ID_LEN + 1];
	struct held h = {.kind = kind, .n = (uint32_t)n};
	ProtobufCMessage *msg;
	Allot__V1__IngestRequest jr = ALLOT__V1__INGEST_REQUEST__INIT;
	Allot__V1__IngestMetricsRequest mr = ALLOT__V1__INGEST_METRICS_REQUEST__INIT;
	int rc;

	if (kind == SPOOL_JOBS) {
		rc = jobrecords_batch_id(b->site, b->jobs + first, n, id, sizeof(id));
		jr.site = b->site;
		jr.batch_id = id;
		jr.records = b->jobs + first;
		jr.n_records = n;
		msg = &jr.base;
	} else {
		rc = batch_metrics_id(b->site, b->samples + first, n, id, sizeof(id));
		mr.site = b->site;
		mr.batch_id = id;
		mr.samples = b->samples + first;
		mr.n_samples = n;
		msg = &mr.base;
	}
	if (rc != 0) {
		snprintf(err, errlen, "could not derive a batch id");
		return -1;
	}
	h.len = protobuf_c_message_get_packed_size(msg);
	if ((h.buf = malloc(h.len > 0 ? h.len : 1)) == NULL)
		goto nomem;
	protobuf_c_message_pack(msg, h.buf);
	if (!push_held(b, &h)) {
		free(h.buf);
		goto nomem;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory packing a batch");
	return -1;
}

/*
 * Packs the gathered messages of kind into held batches of at most b->max each
 * and frees them. On failure the messages not packed stay gathered.
 */
static int
cut(struct batcher *b, enum spool_kind kind, char *err, size_t errlen)
{
	size_t total = kind == SPOOL_JOBS ? b->njobs : b->nsamples, done = 0, n, bytes;
	int rc = 0;

	while (done < total) {
		/* Up to max messages and max_bytes, and at least one whatever its size. */
		n = 0;
		bytes = 0;
		while (done + n < total && n < b->max) {
			size_t mb = message_bytes(kind == SPOOL_JOBS ? &b->jobs[done + n]->base
			                                             : &b->samples[done + n]->base);

			if (n > 0 && bytes + mb > b->max_bytes)
				break;
			bytes += mb;
			n++;
		}
		if ((rc = cut_one(b, kind, done, n, err, errlen)) != 0)
			break;
		done += n;
	}
	b->gathered_bytes[kind] = 0;
	for (size_t i = done; i < total; i++)
		b->gathered_bytes[kind] +=
		    message_bytes(kind == SPOOL_JOBS ? &b->jobs[i]->base : &b->samples[i]->base);
	for (size_t i = 0; i < done; i++) {
		if (kind == SPOOL_JOBS)
			protobuf_c_message_free_unpacked(&b->jobs[i]->base, NULL);
		else
			protobuf_c_message_free_unpacked(&b->samples[i]->base, NULL);
	}
	if (done == 0)
		return rc;
	if (kind == SPOOL_JOBS) {
		memmove(b->jobs, b->jobs + done, (total - done) * sizeof(*b->jobs));
		b->njobs = total - done;
	} else {
		memmove(b->samples, b->samples + done, (total - done) * sizeof(*b->samples));
		b->nsamples = total - done;
	}
	return rc;
}

/* Spools the held batches in order; stops at the first that does not fit. */
static int
spool_held(struct batcher *b, char *err, size_t errlen)
{
	while (b->hhead < b->nheld) {
		struct held *h = &b->held[b->hhead];
		int rc = spool_put(b->spool, h->kind, h->n, h->buf, h->len, NULL, err, errlen);

		if (rc != 0)
			return rc;
		b->spooled[h->kind] += h->n;
		b->held_records -= h->n;
		free(h->buf);
		b->hhead++;
		if (b->on_spooled != NULL)
			b->on_spooled(b->on_spooled_arg);
	}
	b->hhead = b->nheld = 0;
	return 0;
}

int
batcher_flush(struct batcher *b, char *err, size_t errlen)
{
	if (cut(b, SPOOL_JOBS, err, errlen) != 0 || cut(b, SPOOL_METRICS, err, errlen) != 0)
		return -1;
	return spool_held(b, err, errlen);
}

/* Spools a full gathering of kind; held batches go first. */
static int
maybe_cut(struct batcher *b, enum spool_kind kind, size_t n, char *err, size_t errlen)
{
	if (n < b->max && b->gathered_bytes[kind] < b->max_bytes)
		return batcher_full(b) ? SPOOL_FULL : 0;
	if (cut(b, kind, err, errlen) != 0)
		return -1;
	return spool_held(b, err, errlen);
}

int
batcher_add_job(struct batcher *b, Allot__V1__JobRecord *rec, char *err, size_t errlen)
{
	int kept = job_kept(b, rec);

	if (kept <= 0) {
		protobuf_c_message_free_unpacked(&rec->base, NULL);
		if (kept < 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		b->skipped++;
		return 0;
	}
	if (b->njobs == b->jobs_cap) {
		size_t cap = b->jobs_cap > 0 ? b->jobs_cap * 2 : 256;
		Allot__V1__JobRecord **n = realloc(b->jobs, cap * sizeof(*n));

		if (n == NULL) {
			protobuf_c_message_free_unpacked(&rec->base, NULL);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		b->jobs = n;
		b->jobs_cap = cap;
	}
	b->jobs[b->njobs++] = rec;
	b->gathered_bytes[SPOOL_JOBS] += message_bytes(&rec->base);
	return maybe_cut(b, SPOOL_JOBS, b->njobs, err, errlen);
}

int
batcher_add_sample(struct batcher *b, Allot__V1__GpuSample *s, char *err, size_t errlen)
{
	if (b->nsamples == b->samples_cap) {
		size_t cap = b->samples_cap > 0 ? b->samples_cap * 2 : 256;
		Allot__V1__GpuSample **n = realloc(b->samples, cap * sizeof(*n));

		if (n == NULL) {
			protobuf_c_message_free_unpacked(&s->base, NULL);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		b->samples = n;
		b->samples_cap = cap;
	}
	b->samples[b->nsamples++] = s;
	b->gathered_bytes[SPOOL_METRICS] += message_bytes(&s->base);
	return maybe_cut(b, SPOOL_METRICS, b->nsamples, err, errlen);
}

/* Nothing but a job id: what a GpuSample line decodes to as a JobRecord. */
static bool
job_looks_empty(const Allot__V1__JobRecord *r)
{
	return r->step[0] == '\0' && r->start_time[0] == '\0' && r->account[0] == '\0' &&
	    r->user[0] == '\0' && r->partition[0] == '\0' && r->state[0] == '\0' && r->gpus == 0 &&
	    r->cpus == 0 && r->mem_mb == 0 && r->nodes == 0 && r->elapsed_s == 0;
}

static bool
sample_has_content(const Allot__V1__GpuSample *s)
{
	return s->host[0] != '\0' || s->gpu[0] != '\0' || s->time[0] != '\0' ||
	    s->utilization_case != ALLOT__V1__GPU_SAMPLE__UTILIZATION__NOT_SET ||
	    s->memory_case != ALLOT__V1__GPU_SAMPLE__MEMORY__NOT_SET ||
	    s->power_case != ALLOT__V1__GPU_SAMPLE__POWER__NOT_SET ||
	    s->energy_case != ALLOT__V1__GPU_SAMPLE__ENERGY__NOT_SET;
}

int
batch_read_jsonl(
    struct batcher *b, const char *buf, size_t len, size_t first_line, char *err, size_t errlen)
{
	size_t pos = 0, lineno = first_line;
	char jerr[256], serr[256];
	int rc = 0, r;

	while (pos < len) {
		const char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - line) : len - pos, s = 0;
		ProtobufCMessage *msg;

		pos += n + (nl != NULL);
		for (; s < n && isspace((unsigned char)line[s]); s++)
			;
		if (s == n || line[s] == '#') {
			lineno++;
			continue;
		}
		/*
		 * The decoder skips unknown fields, so either type decodes either line:
		 * a job record has its own fields, a sample its host, GPU or time.
		 */
		msg = pbjson_decode(
		    &allot__v1__job_record__descriptor, line + s, n - s, jerr, sizeof(jerr));
		if (msg != NULL && job_looks_empty((const Allot__V1__JobRecord *)msg)) {
			ProtobufCMessage *sm = pbjson_decode(&allot__v1__gpu_sample__descriptor,
			    line + s, n - s, serr, sizeof(serr));

			if (sm != NULL && sample_has_content((const Allot__V1__GpuSample *)sm)) {
				protobuf_c_message_free_unpacked(msg, NULL);
				msg = NULL;
				r = batcher_add_sample(b, (Allot__V1__GpuSample *)sm, err, errlen);
				goto added;
			}
			if (sm != NULL)
				protobuf_c_message_free_unpacked(sm, NULL);
		}
		if (msg == NULL) {
			snprintf(err, errlen, "line %zu: %s", lineno, jerr);
			return -1;
		}
		r = batcher_add_job(b, (Allot__V1__JobRecord *)msg, err, errlen);
	added:
		if (r < 0)
			return -1;
		if (r == SPOOL_FULL)
			rc = SPOOL_FULL;
		lineno++;
	}
	return rc;
}
