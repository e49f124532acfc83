/*
 * collector: the parts every command opens (see collector.h), the one step from
 * bytes to batches, and the daemon's pause while the spool is full. The site's
 * zone is entered once, for the whole process, before the sending thread starts:
 * collect_parse would otherwise set TZ around each parse, racing that thread's
 * getenv calls (libcurl reads its proxy variables on every call).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "collector.h"
#include "log.h"
#include "parse.h"
#include "sources.h"

int
collector_parse(struct batcher *b, const struct collect_config *cfg, const char *format,
    const char *buf, size_t len, size_t first_line, char *err, size_t errlen)
{
	if (strcmp(format, "jsonl") == 0)
		return batch_read_jsonl(b, buf, len, first_line, err, errlen);
	{
		struct collect_opts o = {0};
		struct collect_out out;
		enum collect_format f;
		int rc = 0, r;

		if (collect_format_parse(format, &f) != 0) {
			snprintf(err, errlen, "unknown format \"%s\"", format);
			return -1;
		}
		o.site = cfg->site;
		/* The process's zone is the site's (collector_open): see there. */
		o.timezone = NULL;
		o.fields = f == COLLECT_SACCT && strcmp(format, "sacct") == 0 &&
		        cfg->sacct_fields[0] != '\0' && first_line == 0
		    ? cfg->sacct_fields
		    : NULL;
		o.job_label = cfg->job_label[0] != '\0' ? cfg->job_label : NULL;
		collect_out_init(&out);
		if (collect_parse(f, &o, buf, len, &out, err, errlen) != 0)
			return -1;
		/* The batcher takes each message; out keeps none. */
		for (size_t i = 0; i < out.njobs; i++) {
			r = batcher_add_job(b, out.jobs[i], err, errlen);
			out.jobs[i] = NULL;
			if (r < 0) {
				rc = -1;
				break;
			}
			if (r == SPOOL_FULL)
				rc = SPOOL_FULL;
		}
		for (size_t i = 0; i < out.nsamples && rc >= 0; i++) {
			r = batcher_add_sample(b, out.samples[i], err, errlen);
			out.samples[i] = NULL;
			if (r < 0)
				rc = -1;
			else if (r == SPOOL_FULL)
				rc = SPOOL_FULL;
		}
		for (size_t i = 0; i < out.njobs; i++)
			if (out.jobs[i] != NULL)
				protobuf_c_message_free_unpacked(&out.jobs[i]->base, NULL);
		for (size_t i = 0; i < out.nsamples; i++)
			if (out.samples[i] != NULL)
				protobuf_c_message_free_unpacked(&out.samples[i]->base, NULL);
		out.njobs = out.nsamples = 0;
		collect_out_cleanup(&out);
		return rc;
	}
}

int64_t
collector_wall_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void
client_options(const struct collect_config *cfg, struct allot_options *o)
{
	allot_options_init(o);
	o->server_url = cfg->server;
	o->cert_file = cfg->tls_cert;
	o->key_file = cfg->tls_key;
	o->ca_file = cfg->tls_ca;
	o->wire = ALLOT_WIRE_PROTOBUF;
	o->timeout_ms = (long)cfg->send_timeout_s * 1000;
	o->connect_timeout_ms = o->timeout_ms;
	/*
	 * One attempt per send: the sender's own backoff (backoff.c) retries the
	 * spooled batch, so liballot's retries would only stack under it.
	 */
	o->max_attempts = 1;
	o->deadline_ms = 0;
}

void
collector_sender_settings(const struct collect_config *cfg, struct sender_settings *s)
{
	s->backoff_base_ms = (uint32_t)cfg->backoff_base_ms;
	s->backoff_max_ms = (uint32_t)cfg->backoff_max_ms;
}

/* Loads the configuration named by -c; exits on -n. Returns NULL after printing why. */
struct collect_config *
collector_load_config(const char *path)
{
	struct collect_config *cfg = collect_config_new();
	char err[1024];

	if (cfg == NULL) {
		fprintf(stderr, "allot-collect: out of memory\n");
		return NULL;
	}
	if (collect_config_load(cfg, path, err, sizeof(err)) != 0) {
		fprintf(stderr, "allot-collect: %s\n", err);
		collect_config_free(cfg);
		return NULL;
	}
	return cfg;
}

int
collector_open(struct collector *c, const char *spool_override)
{
	struct allot_options o;
	struct sender_settings ss;
	char err[1024];

	/*
	 * The site's zone becomes the process's, once, before the sending thread
	 * starts: setting TZ for each parse would race that thread's getenv calls
	 * (libcurl reads its proxy variables on every call).
	 */
	if (c->cfg->timezone[0] != '\0' &&
	    collect_zone_enter(&c->zone, c->cfg->timezone, err, sizeof(err)) != 0) {
		fprintf(stderr, "allot-collect: %s: %s\n", c->config_path, err);
		return -1;
	}
	c->spool = spool_open(spool_override != NULL ? spool_override : c->cfg->spool_dir,
	    (uint64_t)c->cfg->spool_max_bytes, err, sizeof(err));
	if (c->spool == NULL) {
		fprintf(stderr, "allot-collect: %s\n", err);
		return -1;
	}
	client_options(c->cfg, &o);
	collector_sender_settings(c->cfg, &ss);
	if ((c->sender = sender_new(c->spool, &o, &ss, err, sizeof(err))) == NULL) {
		fprintf(stderr, "allot-collect: %s\n", err);
		return -1;
	}
	if ((c->batcher = batcher_new(c->spool, c->cfg->site, (size_t)c->cfg->batch_records,
	         (size_t)c->cfg->batch_max_bytes)) == NULL ||
	    batcher_set_partitions(c->batcher, c->cfg->partitions) != 0) {
		fprintf(stderr, "allot-collect: out of memory\n");
		return -1;
	}
	return 0;
}

void
collector_close(struct collector *c)
{
	sender_free(c->sender);
	batcher_free(c->batcher);
	spool_free(c->spool);
	collect_zone_leave(&c->zone);
	collect_config_free(c->cfg);
}

void
collector_pause(struct collector *c, const char *reason)
{
	struct timeval tv = {c->cfg->spool_retry_s, 0};

	if (!c->paused) {
		log_warnx("spool full, reading stopped until there is room (%" PRIu64
		          " records held in memory): %s",
		    batcher_pending(c->batcher), reason);
		c->paused = true;
		if (c->in_ev != NULL)
			event_del(c->in_ev);
	}
	snprintf(c->full_reason, sizeof(c->full_reason), "%s", reason);
	evtimer_add(c->retry_ev, &tv);
}

/* Handles a batcher result; false when reading must stop. */
bool
collector_after_batch(struct collector *c, int rc, const char *err)
{
	sender_wake(c->sender);
	if (rc == SPOOL_FULL) {
		collector_pause(c, err);
		return false;
	}
	if (rc < 0) {
		log_errorx("could not spool: %s", err);
		collector_pause(c, err);
		return false;
	}
	if (batcher_has_partial(c->batcher) && !evtimer_pending(c->flush_ev, NULL)) {
		struct timeval tv = {
		    c->cfg->batch_delay_ms / 1000, (c->cfg->batch_delay_ms % 1000) * 1000};

		evtimer_add(c->flush_ev, &tv);
	}
	return true;
}

void
collector_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collector *c = arg;
	char err[512];

	(void)fd;
	(void)what;
	if (c->paused)
		return;
	/*
	 * A regular file still being read cuts only full batches, so that reading it
	 * again makes the same batches, hence the same ids: replays.
	 */
	if (c->in_ev != NULL && !c->in_fifo && evtimer_pending(c->in_ev, NULL)) {
		struct timeval tv = {
		    c->cfg->batch_delay_ms / 1000, (c->cfg->batch_delay_ms % 1000) * 1000};

		evtimer_add(c->flush_ev, &tv);
		return;
	}
	(void)collector_after_batch(c, batcher_flush(c->batcher, err, sizeof(err)), err);
}

void
collector_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collector *c = arg;
	char err[512];
	int rc;

	(void)fd;
	(void)what;
	rc = batcher_flush(c->batcher, err, sizeof(err));
	if (rc != 0) {
		collector_pause(c, err);
		sender_wake(c->sender);
		return;
	}
	log_info("spool has room again: reading resumes");
	c->paused = false;
	c->full_reason[0] = '\0';
	sender_wake(c->sender);
	source_input_resume(c);
}
