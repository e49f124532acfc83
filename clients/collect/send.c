/*
 * send: the sending loop over the spool (see send.h). One loop serves both uses:
 * on a thread of its own until told to stop, or in the caller's thread until the
 * spool is empty. Time to wait is measured on the monotonic clock; ages and the
 * last acknowledgement are wall-clock.
 *
 * Locks: s->mu guards the stop flag, the backoff state and the counters; the
 * spool has its own lock, always taken after s->mu or alone, never the other way.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "allot/v1/usage.pb-c.h"

#include "backoff.h"
#include "log.h"
#include "send.h"

enum outcome { OUTCOME_ACKED, OUTCOME_REJECTED, OUTCOME_RETRY };

struct sender {
	struct spool *spool;
	struct allot_client *client;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool started, stop;
	struct backoff bo[SPOOL_NKINDS];
	int64_t next_at_ms[SPOOL_NKINDS]; /* monotonic; 0: now */
	uint32_t rnd;
	struct sender_stats stats;
};

static const struct {
	const char *method;
	const ProtobufCMessageDescriptor *response; /* the request is the spooled payload */
} calls[SPOOL_NKINDS] = {
    [SPOOL_JOBS] = {"allot.v1.Usage/Ingest", &allot__v1__ingest_response__descriptor},
    [SPOOL_METRICS] = {"allot.v1.Usage/IngestMetrics",
        &allot__v1__ingest_metrics_response__descriptor},
};

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
wall_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* xorshift32: jitter needs spread, not secrecy. */
static uint32_t
next_random(struct sender *s)
{
	uint32_t x = s->rnd;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	s->rnd = x;
	return x;
}

bool
send_code_is_permanent(enum allot_code code)
{
	switch (code) {
	case ALLOT_INVALID_ARGUMENT:
	case ALLOT_MALFORMED:
	case ALLOT_ALREADY_EXISTS:
	case ALLOT_OUT_OF_RANGE:
		return true;
	default:
		return false;
	}
}

struct sender *
sender_new(struct spool *spool, const struct allot_options *opts,
    const struct sender_settings *settings, char *err, size_t errlen)
{
	struct allot_error aerr;
	struct sender *s;
	pthread_condattr_t ca;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->spool = spool;
	if ((s->client = allot_connect(opts, &aerr)) == NULL) {
		snprintf(err, errlen, "%s", aerr.msg);
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	for (int k = 0; k < SPOOL_NKINDS; k++)
		backoff_init(&s->bo[k], settings->backoff_base_ms, settings->backoff_max_ms);
	s->rnd = (uint32_t)getpid() ^ (uint32_t)wall_ms() ^ 0x9e3779b9u;
	if (s->rnd == 0)
		s->rnd = 1;
	return s;
}

void
sender_set_settings(struct sender *s, const struct sender_settings *settings)
{
	pthread_mutex_lock(&s->mu);
	for (int k = 0; k < SPOOL_NKINDS; k++) {
		uint32_t failures = s->bo[k].failures;

		backoff_init(&s->bo[k], settings->backoff_base_ms, settings->backoff_max_ms);
		s->bo[k].failures = failures;
	}
	pthread_mutex_unlock(&s->mu);
}

void
sender_free(struct sender *s)
{
	if (s == NULL)
		return;
	sender_stop(s);
	allot_close(s->client);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void
sender_get_stats(struct sender *s, struct sender_stats *stats)
{
	pthread_mutex_lock(&s->mu);
	*stats = s->stats;
	pthread_mutex_unlock(&s->mu);
}

/* Moves the head batch to rejected/; the caller logs nothing more. */
static enum outcome
reject(struct sender *s, const struct spool_entry *e, const char *reason)
{
	char err[512];

	if (spool_reject(s->spool, e->kind, e->seq, reason, err, sizeof(err)) != 0) {
		/* Left in place, it is tried again after a backoff: nothing is lost. */
		log_errorx("could not set aside refused %s batch %" PRIu64 ": %s",
		    spool_kind_name(e->kind), e->seq, err);
		return OUTCOME_RETRY;
	}
	log_errorx("%s batch %" PRIu64 " (%" PRIu32 " records) moved to %s/rejected: %s",
	    spool_kind_name(e->kind), e->seq, e->nrecords, spool_dir(s->spool), reason);
	pthread_mutex_lock(&s->mu);
	s->stats.batches_rejected[e->kind]++;
	pthread_mutex_unlock(&s->mu);
	return OUTCOME_REJECTED;
}

/* Counts an acknowledged batch and logs what allotd made of it. */
static void
note_ack(
    struct sender *s, const struct spool_entry *e, const ProtobufCMessage *resp, int64_t took_ms)
{
	uint64_t refused = 0;

	if (e->kind == SPOOL_JOBS) {
		const Allot__V1__IngestResponse *r = (const Allot__V1__IngestResponse *)resp;

		refused = r->rejected > 0 ? (uint64_t)r->rejected : 0;
		log_info("batch %s sent in %" PRId64 " ms: %d charged, %d duplicate, %d recorded, "
		         "%d refused",
		    r->batch_id, took_ms, r->charged, r->duplicates, r->recorded, r->rejected);
		for (size_t i = 0; i < r->n_results && refused > 0; i++)
			if (r->results[i]->status ==
			    ALLOT__V1__INGEST_STATUS__INGEST_STATUS_REJECTED)
				log_warnx("batch %s: record %d (job %s%s%s) refused: %s",
				    r->batch_id, r->results[i]->index, r->results[i]->job_id,
				    r->results[i]->step[0] != '\0' ? " step " : "",
				    r->results[i]->step, r->results[i]->reason);
	} else {
		const Allot__V1__IngestMetricsResponse *r =
		    (const Allot__V1__IngestMetricsResponse *)resp;

		refused = r->rejected > 0 ? (uint64_t)r->rejected : 0;
		log_info("batch %s sent in %" PRId64 " ms: %d samples stored, %d duplicate, "
		         "%d refused",
		    r->batch_id, took_ms, r->stored, r->duplicates, r->rejected);
		for (size_t i = 0; i < r->n_reasons; i++)
			log_warnx("batch %s: %s", r->batch_id, r->reasons[i]);
	}
	pthread_mutex_lock(&s->mu);
	s->stats.batches_acked[e->kind]++;
	s->stats.records_acked[e->kind] += e->nrecords;
	s->stats.records_refused[e->kind] += refused;
	s->stats.last_ack_ms = wall_ms();
	s->stats.last_error[0] = '\0';
	pthread_mutex_unlock(&s->mu);
}

/* Sends the batch e (the head of its kind) once. */
static enum outcome
send_one(struct sender *s, const struct spool_entry *e)
{
	ProtobufCMessage *resp = NULL;
	struct allot_error aerr;
	uint8_t *payload = NULL;
	size_t len = 0;
	char err[512], reason[1100];
	int64_t t0;
	int r;

	r = spool_read(s->spool, e, &payload, &len, err, sizeof(err));
	if (r > 0)
		return reject(s, e, err);
	if (r < 0) {
		pthread_mutex_lock(&s->mu);
		s->stats.attempts_failed[e->kind]++;
		snprintf(s->stats.last_error, sizeof(s->stats.last_error), "%s", err);
		pthread_mutex_unlock(&s->mu);
		return OUTCOME_RETRY;
	}
	/*
	 * The spooled payload is the packed request: sent as it is. Its header's
	 * SHA-256 vouches for it; one that does not decode is refused by allotd
	 * (malformed) and set aside below.
	 */
	t0 = mono_ms();
	r = allot_call_packed(
	    s->client, calls[e->kind].method, payload, len, calls[e->kind].response, &resp, &aerr);
	free(payload);
	if (r == 0) {
		char aerrbuf[512];

		note_ack(s, e, resp, mono_ms() - t0);
		protobuf_c_message_free_unpacked(resp, NULL);
		if (spool_ack(s->spool, e->kind, e->seq, aerrbuf, sizeof(aerrbuf)) != 0)
			log_errorx("batch %" PRIu64 " acknowledged but still spooled (it will be "
			           "sent again, a replay): %s",
			    e->seq, aerrbuf);
		return OUTCOME_ACKED;
	}
	snprintf(reason, sizeof(reason), "%s: %s", aerr.code_name, aerr.msg);
	if (aerr.http_status == 413)
		snprintf(reason, sizeof(reason),
		    "the batch is larger than allotd takes (its max_body_bytes): lower "
		    "batch_max_bytes");
	if (send_code_is_permanent(aerr.code) || aerr.http_status == 413)
		return reject(s, e, reason);
	pthread_mutex_lock(&s->mu);
	s->stats.attempts_failed[e->kind]++;
	snprintf(s->stats.last_error, sizeof(s->stats.last_error), "%s", reason);
	pthread_mutex_unlock(&s->mu);
	return OUTCOME_RETRY;
}

/*
 * The loop; s->mu is held on entry and on return. drain: return once the spool
 * is empty or deadline_ms (wall) passes; otherwise run until s->stop.
 */
static int
sender_loop(struct sender *s, bool drain, int64_t deadline_ms)
{
	struct spool_entry e, pick;
	int64_t now, wait_until;
	bool have, any;
	enum outcome out;
	uint32_t delay;

	while (!s->stop) {
		now = mono_ms();
		have = any = false;
		wait_until = 0;
		for (int k = 0; k < SPOOL_NKINDS; k++) {
			if (!spool_head(s->spool, (enum spool_kind)k, &e))
				continue;
			any = true;
			if (s->next_at_ms[k] > now) {
				if (wait_until == 0 || s->next_at_ms[k] < wait_until)
					wait_until = s->next_at_ms[k];
				continue;
			}
			/* The older batch first, whatever its kind. */
			if (!have || e.seq < pick.seq) {
				pick = e;
				have = true;
			}
		}
		if (drain && !any)
			return 0;
		if (drain && deadline_ms > 0 && wall_ms() >= deadline_ms)
			return 1;
		if (!have) {
			struct timespec ts;
			int64_t until = wait_until;

			if (drain && deadline_ms > 0 &&
			    (until == 0 || until - now > deadline_ms - wall_ms()))
				until = now + (deadline_ms - wall_ms());
			if (until == 0) {
				pthread_cond_wait(&s->cv, &s->mu);
				continue;
			}
			ts.tv_sec = (time_t)(until / 1000);
			ts.tv_nsec = (long)(until % 1000) * 1000000;
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
			continue;
		}
		s->stats.in_flight = true;
		pthread_mutex_unlock(&s->mu);
		out = send_one(s, &pick);
		pthread_mutex_lock(&s->mu);
		s->stats.in_flight = false;
		if (out == OUTCOME_RETRY) {
			delay = backoff_fail(&s->bo[pick.kind], next_random(s));
			s->next_at_ms[pick.kind] = mono_ms() + delay;
			s->stats.failures_in_a_row[pick.kind] = s->bo[pick.kind].failures;
			log_warnx("could not send %s batch %" PRIu64 " (attempt %" PRIu32
			          "): %s; next try in %" PRIu32 " ms",
			    spool_kind_name(pick.kind), pick.seq, s->bo[pick.kind].failures,
			    s->stats.last_error, delay);
		} else {
			if (s->bo[pick.kind].failures > 0)
				log_info("%s batches go through again after %" PRIu32
				         " failed attempts",
				    spool_kind_name(pick.kind), s->bo[pick.kind].failures);
			backoff_reset(&s->bo[pick.kind]);
			s->next_at_ms[pick.kind] = 0;
			s->stats.failures_in_a_row[pick.kind] = 0;
		}
	}
	return 0;
}

static void *
sender_thread(void *arg)
{
	struct sender *s = arg;

	pthread_mutex_lock(&s->mu);
	(void)sender_loop(s, false, 0);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int
sender_start(struct sender *s, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&s->mu);
	s->stop = false;
	rc = s->started ? 0 : pthread_create(&s->thread, NULL, sender_thread, s);
	if (rc == 0)
		s->started = true;
	pthread_mutex_unlock(&s->mu);
	if (rc != 0) {
		snprintf(err, errlen, "could not start the sending thread: %s", strerror(rc));
		return -1;
	}
	return 0;
}

void
sender_wake(struct sender *s)
{
	pthread_mutex_lock(&s->mu);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

void
sender_stop(struct sender *s)
{
	bool started;

	pthread_mutex_lock(&s->mu);
	s->stop = true;
	started = s->started;
	s->started = false;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (started)
		pthread_join(s->thread, NULL);
}

int
sender_drain(struct sender *s, int64_t deadline_ms)
{
	int rc;

	pthread_mutex_lock(&s->mu);
	s->stop = false;
	rc = sender_loop(s, true, deadline_ms);
	pthread_mutex_unlock(&s->mu);
	return rc;
}
