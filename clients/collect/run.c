/*
 * run: the collector daemon and the one-shot commands built from the same parts.
 *
 * The daemon is one libevent loop (sources, timers, signals, its /metrics) plus
 * the sending thread of send.c, so that the loop never waits on allotd. Sources:
 * sacct run every sacct_interval_s over a window that reaches sacct_window_s
 * back past the end of the last good run (records are read again; allotd
 * deduplicates them), a file or FIFO (input_file), exporters scraped over HTTP
 * (dcgm_url, amd_url). What they read goes to the batcher, batches to the spool,
 * the spool to allotd. When the spool is full the sources stop (the FIFO is not
 * read, sacct and scrapes are skipped), the batch that did not fit is held in
 * memory and tried again every spool_retry_s; reading resumes once it fits.
 *
 * SIGHUP reloads the configuration (keeping the running one if the new is bad),
 * SIGTERM and SIGINT stop: sources first, then what was read is spooled, then the
 * sender finishes the batch in flight.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "batch.h"
#include "collect_config.h"
#include "log.h"
#include "run.h"
#include "send.h"
#include "spool.h"
#include "strbuf.h"
#include "parse.h"
#include "parse_int.h"

#define DEFAULT_CONFIG "/etc/allot/allot-collect.conf"
/* The most a single read of a source may bring (sacct output, a scrape, a file). */
#define SOURCE_MAX_BYTES (1024LL * 1024 * 1024)
#define READ_CHUNK 65536
#define REPORT_S 30

struct collector;

/* A child sacct and what it printed so far. */
struct sacct_run {
	pid_t pid;
	int fd;
	struct event *ev, *reap;
	struct strbuf out;
	time_t started;
	bool truncated;
};

struct scrape {
	const char *name; /* "dcgm" or "amd" */
	char *url;        /* the cfg's string: re-pointed at each reload */
	struct evhttp_connection *conn;
	bool busy, stale; /* stale: the URL may have changed, make a new connection */
	uint64_t scrapes, failures, samples;
	struct collector *c;
};

struct collector {
	const char *config_path;
	struct collect_config *cfg;
	struct event_base *base;
	struct spool *spool;
	struct sender *sender;
	struct batcher *batcher;
	struct event *sigterm, *sigint, *sighup;
	struct event *flush_ev, *retry_ev, *report_ev, *sacct_ev, *scrape_ev, *poll_ev;
	struct evhttp *http;
	bool paused, stopping;
	char full_reason[512];

	/* input_file */
	int in_fd;
	struct event *in_ev;
	struct strbuf in_buf;
	size_t in_line; /* number of the first line in in_buf */
	off_t in_offset;
	bool in_fifo, in_done;

	struct sacct_run sacct;
	time_t sacct_last_end; /* end of the last run whose records were all spooled */
	uint64_t sacct_runs, sacct_failures;

	struct scrape scrapes[2];
	struct collect_zone zone;
	uint64_t records_read, parse_errors;
	size_t last_backlog;
};

static int
parse_into(struct batcher *b, const struct collect_config *cfg, const char *format, const char *buf,
    size_t len, size_t first_line, char *err, size_t errlen)
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
		/* The process's zone is the site's (open_parts): see there. */
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

static int64_t
wall_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void
client_options(const struct collect_config *cfg, struct allot_client_options *o)
{
	memset(o, 0, sizeof(*o));
	o->server_url = cfg->server;
	o->cert_file = cfg->tls_cert;
	o->key_file = cfg->tls_key;
	o->ca_file = cfg->tls_ca;
	o->wire = ALLOT_WIRE_PROTOBUF;
	o->timeout_ms = (long)cfg->send_timeout_s * 1000;
}

static void
sender_settings(const struct collect_config *cfg, struct sender_settings *s)
{
	s->backoff_base_ms = (uint32_t)cfg->backoff_base_ms;
	s->backoff_max_ms = (uint32_t)cfg->backoff_max_ms;
}

/* ---- pausing when the spool is full ---------------------------------------- */

static void input_resume(struct collector *c);

static void
pause_reading(struct collector *c, const char *reason)
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
static bool
after_batch(struct collector *c, int rc, const char *err)
{
	sender_wake(c->sender);
	if (rc == SPOOL_FULL) {
		pause_reading(c, err);
		return false;
	}
	if (rc < 0) {
		log_errorx("could not spool: %s", err);
		pause_reading(c, err);
		return false;
	}
	if (batcher_has_partial(c->batcher) && !evtimer_pending(c->flush_ev, NULL)) {
		struct timeval tv = {
		    c->cfg->batch_delay_ms / 1000, (c->cfg->batch_delay_ms % 1000) * 1000};

		evtimer_add(c->flush_ev, &tv);
	}
	return true;
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collector *c = arg;
	char err[512];

	(void)fd;
	(void)what;
	if (c->paused)
		return;
	(void)after_batch(c, batcher_flush(c->batcher, err, sizeof(err)), err);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collector *c = arg;
	char err[512];
	int rc;

	(void)fd;
	(void)what;
	rc = batcher_flush(c->batcher, err, sizeof(err));
	if (rc != 0) {
		pause_reading(c, err);
		sender_wake(c->sender);
		return;
	}
	log_info("spool has room again: reading resumes");
	c->paused = false;
	c->full_reason[0] = '\0';
	sender_wake(c->sender);
	input_resume(c);
}

/* ---- input_file: a file read to its end and followed, or a FIFO -------------- */

/* Parses the complete lines of in_buf (all of it at EOF) until the spool is full. */
static void
input_process(struct collector *c, bool eof)
{
	const char *fmt = c->cfg->input_format;
	char err[1024];
	size_t done = 0;
	int rc;

	if (strcmp(fmt, "jsonl") != 0) {
		/* Whole-buffer formats: one parse of everything, once the writer is done. */
		if (!eof || c->in_buf.len == 0)
			return;
		rc = parse_into(
		    c->batcher, c->cfg, fmt, c->in_buf.data, c->in_buf.len, 0, err, sizeof(err));
		if (rc < 0 && !batcher_full(c->batcher)) {
			log_errorx("%s: %s", c->cfg->input_file, err);
			c->parse_errors++;
		} else
			c->records_read += batcher_pending(c->batcher);
		strbuf_reset(&c->in_buf);
		(void)after_batch(c, rc < 0 ? 0 : rc, err);
		return;
	}
	while (done < c->in_buf.len && !c->paused) {
		const char *line = c->in_buf.data + done;
		const char *nl = memchr(line, '\n', c->in_buf.len - done);
		size_t n;

		if (nl == NULL && !eof)
			break;
		n = nl != NULL ? (size_t)(nl - line) + 1 : c->in_buf.len - done;
		rc = batch_read_jsonl(c->batcher, line, n, c->in_line, err, sizeof(err));
		done += n;
		c->in_line++;
		if (rc < 0 && strncmp(err, "line ", 5) == 0) {
			log_errorx("%s: %s", c->cfg->input_file, err);
			c->parse_errors++;
			continue;
		}
		c->records_read++;
		if (!after_batch(c, rc, err))
			break;
	}
	if (done > 0) {
		memmove(c->in_buf.data, c->in_buf.data + done, c->in_buf.len - done);
		c->in_buf.len -= done;
	}
}

/* Appends a chunk read from the input; false when it was dropped. */
static void
input_take(struct collector *c, const char *chunk, size_t n)
{
	c->in_offset += (off_t)n;
	if ((long long)c->in_buf.len + (long long)n > SOURCE_MAX_BYTES) {
		log_errorx("%s: a line longer than %lld bytes: dropped the input buffer",
		    c->cfg->input_file, SOURCE_MAX_BYTES);
		strbuf_reset(&c->in_buf);
		return;
	}
	strbuf_append(&c->in_buf, chunk, n);
	input_process(c, false);
}

/* A FIFO is readable. */
static void
input_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collector *c = arg;
	char chunk[READ_CHUNK];
	ssize_t n;

	(void)what;
	if (c->paused)
		return;
	n = read(fd, chunk, sizeof(chunk));
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		log_error("could not read %s", c->cfg->input_file);
		event_del(c->in_ev);
		return;
	}
	/* The write end we hold keeps the FIFO from ever reading as ended. */
	if (n > 0)
		input_take(c, chunk, (size_t)n);
}

/*
 * A regular file, which epoll cannot watch: read a chunk per turn of the loop
 * until its end, then wait for poll_cb to see it grow. A jsonl file is followed
 * (its last line counts once it ends in a newline); other formats are parsed
 * whole, once.
 */
static void
input_file_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval now = {0, 0};
	struct collector *c = arg;
	char chunk[READ_CHUNK];
	ssize_t n;

	(void)fd;
	(void)what;
	if (c->paused || c->stopping || c->in_done)
		return;
	n = read(c->in_fd, chunk, sizeof(chunk));
	if (n < 0 && errno == EINTR) {
		evtimer_add(c->in_ev, &now);
		return;
	}
	if (n < 0) {
		log_error("could not read %s", c->cfg->input_file);
		return;
	}
	if (n == 0) {
		if (strcmp(c->cfg->input_format, "jsonl") != 0) {
			input_process(c, true);
			c->in_done = true;
		}
		return;
	}
	input_take(c, chunk, (size_t)n);
	if (!c->paused)
		evtimer_add(c->in_ev, &now);
}

static void
input_resume(struct collector *c)
{
	static const struct timeval now = {0, 0};

	if (c->in_fd < 0)
		return;
	input_process(c, false);
	if (c->paused || c->stopping)
		return;
	if (c->in_fifo)
		event_add(c->in_ev, NULL);
	else
		evtimer_add(c->in_ev, &now);
}

/* A regular file: reading again from where it stopped catches what was appended. */
static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval now = {0, 0};
	struct collector *c = arg;
	struct stat st;

	(void)fd;
	(void)what;
	if (c->in_fd < 0 || c->in_fifo || c->paused || c->stopping || c->in_done ||
	    evtimer_pending(c->in_ev, NULL))
		return;
	if (fstat(c->in_fd, &st) == 0 && st.st_size > c->in_offset)
		evtimer_add(c->in_ev, &now);
}

static int
input_open(struct collector *c)
{
	struct stat st;
	const char *path = c->cfg->input_file;
	int flags = O_NONBLOCK | O_CLOEXEC;

	c->in_fd = -1;
	if (path[0] == '\0')
		return 0;
	if (stat(path, &st) != 0) {
		log_error("could not stat input_file %s", path);
		return -1;
	}
	c->in_fifo = S_ISFIFO(st.st_mode);
	/* Holding the write end too: the FIFO never reads as ended between two writers. */
	flags |= c->in_fifo ? O_RDWR : O_RDONLY;
	if ((c->in_fd = open(path, flags)) < 0) {
		log_error("could not open input_file %s", path);
		return -1;
	}
	c->in_line = 1;
	if (c->in_fifo)
		c->in_ev = event_new(c->base, c->in_fd, EV_READ | EV_PERSIST, input_read_cb, c);
	else
		c->in_ev = evtimer_new(c->base, input_file_cb, c);
	if (c->in_ev == NULL)
		return -1;
	input_resume(c);
	log_info("reading %s %s (%s)", c->in_fifo ? "FIFO" : "file", path, c->cfg->input_format);
	return 0;
}

/* ---- sacct --------------------------------------------------------------------- */

static void
sacct_state_path(const struct collector *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s/sacct.state", c->cfg->spool_dir);
}

static void
sacct_load_state(struct collector *c)
{
	char path[4096];
	long long v;
	FILE *f;

	sacct_state_path(c, path, sizeof(path));
	if ((f = fopen(path, "r")) == NULL)
		return;
	if (fscanf(f, "last_end %lld", &v) == 1 && v > 0)
		c->sacct_last_end = (time_t)v;
	fclose(f);
}

/* Records the end of a run whose records are all spooled, durably (temp, fsync, rename). */
static void
sacct_save_state(struct collector *c)
{
	char path[4096], tmp[4200];
	FILE *f;

	sacct_state_path(c, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL) {
		log_warn("could not write %s", tmp);
		return;
	}
	fprintf(f, "last_end %lld\n", (long long)c->sacct_last_end);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		log_warn("could not write %s", tmp);
		fclose(f);
		unlink(tmp);
		return;
	}
	fclose(f);
	if (rename(tmp, path) != 0)
		log_warn("could not rename %s", tmp);
}

/*
 * Starts cmd with --parsable2 --noheader and the window; its stdout comes back
 * through *fd. The child inherits TZ, the site's zone (open_parts), so that the
 * times it prints and the parser agree. Returns the pid, or -1.
 */
static pid_t
sacct_spawn(const struct collect_config *cfg, const char *start, const char *end, int *fd)
{
	char fields[4200];
	int p[2];
	pid_t pid;

	snprintf(fields, sizeof(fields), "--format=%s", cfg->sacct_fields);
	if (pipe(p) != 0)
		return -1;
	if ((pid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		const char *argv[] = {cfg->sacct_command, "--parsable2", "--noheader", "--allusers",
		    fields, "-S", start, "-E", end, NULL};

		static const char msg[] = "allot-collect: could not run sacct_command\n";

		/* Only async-signal-safe calls here: the sending thread may hold locks. */
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		close(p[1]);
		/* execvp's prototype predates const; it does not write argv. */
		execvp(argv[0], (char *const *)(uintptr_t)argv);
		(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
		_exit(127);
	}
	close(p[1]);
	*fd = p[0];
	return pid;
}

static void
sacct_finish(struct collector *c, int status)
{
	struct sacct_run *r = &c->sacct;
	char err[1024];
	uint64_t before = batcher_pending(c->batcher) + batcher_spooled(c->batcher, SPOOL_JOBS);
	int rc;

	event_free(r->ev);
	r->ev = NULL;
	close(r->fd);
	r->fd = -1;
	r->pid = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || r->truncated) {
		c->sacct_failures++;
		log_errorx("%s failed (%s %d)%s: the next run reads this window again",
		    c->cfg->sacct_command, WIFEXITED(status) ? "exit status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
		    r->truncated ? ", output too large" : "");
		strbuf_reset(&r->out);
		return;
	}
	rc = parse_into(c->batcher, c->cfg, "sacct", r->out.data != NULL ? r->out.data : "",
	    r->out.len, 0, err, sizeof(err));
	strbuf_reset(&r->out);
	if (rc < 0 && !batcher_full(c->batcher)) {
		c->sacct_failures++;
		c->parse_errors++;
		log_errorx("sacct output: %s", err);
		return;
	}
	if (rc >= 0)
		rc = batcher_flush(c->batcher, err, sizeof(err));
	c->records_read +=
	    batcher_pending(c->batcher) + batcher_spooled(c->batcher, SPOOL_JOBS) - before;
	c->sacct_runs++;
	if (rc == 0) {
		c->sacct_last_end = r->started;
		sacct_save_state(c);
	}
	(void)after_batch(c, rc, err);
}

static void
sacct_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collector *c = arg;
	struct timeval tv = {0, 50000};
	int status;
	pid_t p;

	(void)fd;
	(void)what;
	p = waitpid(c->sacct.pid, &status, WNOHANG);
	if (p == 0) {
		evtimer_add(c->sacct.reap, &tv);
		return;
	}
	if (p < 0) {
		log_error("could not wait for %s", c->cfg->sacct_command);
		status = 1 << 8;
	}
	sacct_finish(c, status);
}

static void
sacct_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collector *c = arg;
	char chunk[READ_CHUNK];
	ssize_t n;

	(void)what;
	n = read(fd, chunk, sizeof(chunk));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		if ((long long)c->sacct.out.len + n > SOURCE_MAX_BYTES)
			c->sacct.truncated = true;
		else
			strbuf_append(&c->sacct.out, chunk, (size_t)n);
		return;
	}
	/* End of output: the child is exiting. */
	event_del(c->sacct.ev);
	sacct_reap_cb(-1, 0, c);
}

static void
sacct_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collector *c = arg;
	struct timeval tv = {c->cfg->sacct_interval_s, 0};
	char start[64];
	time_t now = time(NULL);
	long long back;

	(void)fd;
	(void)what;
	evtimer_add(c->sacct_ev, &tv);
	if (c->stopping || c->cfg->sacct_command[0] == '\0')
		return;
	if (c->paused) {
		log_warnx("sacct run skipped: the spool is full");
		return;
	}
	if (c->sacct.pid > 0) {
		log_warnx("sacct run skipped: the last one is still running");
		return;
	}
	/* Relative times: sacct reads them in its own zone, whatever it is. */
	back = (c->sacct_last_end > 0 && c->sacct_last_end <= now
	               ? (long long)(now - c->sacct_last_end)
	               : 0) +
	    c->cfg->sacct_window_s;
	snprintf(start, sizeof(start), "now-%lldseconds", back);
	c->sacct.started = now;
	c->sacct.truncated = false;
	if ((c->sacct.pid = sacct_spawn(c->cfg, start, "now", &c->sacct.fd)) < 0) {
		log_error("could not start %s", c->cfg->sacct_command);
		c->sacct.pid = 0;
		c->sacct_failures++;
		return;
	}
	evutil_make_socket_nonblocking(c->sacct.fd);
	c->sacct.ev = event_new(c->base, c->sacct.fd, EV_READ | EV_PERSIST, sacct_read_cb, c);
	if (c->sacct.ev == NULL || event_add(c->sacct.ev, NULL) != 0)
		log_fatal("could not watch the output of %s", c->cfg->sacct_command);
	log_debug("running %s -S %s -E now", c->cfg->sacct_command, start);
}

/* ---- exporter scrapes ---------------------------------------------------------- */

static void
scrape_done_cb(struct evhttp_request *req, void *arg)
{
	struct scrape *s = arg;
	struct collector *c = s->c;
	struct evbuffer *body;
	char err[1024];
	uint64_t before = batcher_pending(c->batcher) + batcher_spooled(c->batcher, SPOOL_METRICS);
	size_t len;
	int rc;

	s->busy = false;
	s->scrapes++;
	if (req == NULL || evhttp_request_get_response_code(req) != 200) {
		s->failures++;
		log_warnx("scrape of %s failed: %s", s->url,
		    req == NULL ? "no answer" : evhttp_request_get_response_code_line(req));
		return;
	}
	body = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(body);
	rc = parse_into(c->batcher, c->cfg, s->name, (const char *)evbuffer_pullup(body, -1), len,
	    0, err, sizeof(err));
	if (rc < 0 && !batcher_full(c->batcher)) {
		s->failures++;
		c->parse_errors++;
		log_errorx("scrape of %s: %s", s->url, err);
		return;
	}
	s->samples +=
	    batcher_pending(c->batcher) + batcher_spooled(c->batcher, SPOOL_METRICS) - before;
	(void)after_batch(c, rc < 0 ? SPOOL_FULL : rc, err);
}

static void
scrape_start(struct scrape *s)
{
	struct collector *c = s->c;
	struct evhttp_uri *uri;
	struct evhttp_request *req;
	const char *host, *path;
	char target[4096];
	int port;

	if (s->url[0] == '\0' || s->busy)
		return;
	if (s->stale && s->conn != NULL) {
		evhttp_connection_free(s->conn);
		s->conn = NULL;
	}
	s->stale = false;
	if ((uri = evhttp_uri_parse(s->url)) == NULL || (host = evhttp_uri_get_host(uri)) == NULL) {
		log_errorx("%s_url \"%s\" is not a URL", s->name, s->url);
		evhttp_uri_free(uri);
		return;
	}
	port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : 80;
	path = evhttp_uri_get_path(uri);
	snprintf(target, sizeof(target), "%s%s%s", path != NULL && path[0] != '\0' ? path : "/",
	    evhttp_uri_get_query(uri) != NULL ? "?" : "",
	    evhttp_uri_get_query(uri) != NULL ? evhttp_uri_get_query(uri) : "");
	if (s->conn == NULL) {
		/* An address, not a name: a DNS lookup would block the loop. */
		s->conn = evhttp_connection_base_new(c->base, NULL, host, (unsigned short)port);
		if (s->conn != NULL)
			evhttp_connection_set_timeout(s->conn, 10);
	}
	if (s->conn == NULL || (req = evhttp_request_new(scrape_done_cb, s)) == NULL) {
		log_errorx("could not start a scrape of %s", s->url);
		evhttp_uri_free(uri);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
	if (evhttp_make_request(s->conn, req, EVHTTP_REQ_GET, target) != 0) {
		log_errorx("could not send a scrape request to %s", s->url);
	} else
		s->busy = true;
	evhttp_uri_free(uri);
}

static void
scrape_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collector *c = arg;
	struct timeval tv = {c->cfg->scrape_interval_s, 0};

	(void)fd;
	(void)what;
	evtimer_add(c->scrape_ev, &tv);
	if (c->stopping || c->paused)
		return;
	c->scrapes[0].url = c->cfg->dcgm_url;
	c->scrapes[1].url = c->cfg->amd_url;
	for (int i = 0; i < 2; i++)
		scrape_start(&c->scrapes[i]);
}

/* ---- /metrics and the backlog report ---------------------------------------------- */

static void
render_metrics(struct collector *c, struct strbuf *out)
{
	struct sender_stats st;
	struct spool_stats ss;
	int64_t now = wall_ms();

	sender_get_stats(c->sender, &st);
#define FAMILY(name, type, help) \
	strbuf_puts(out, "# HELP " name " " help "\n# TYPE " name " " type "\n")
	FAMILY(
	    "allot_collect_spool_batches", "gauge", "Batches in the spool, not yet acknowledged.");
	for (int k = 0; k < SPOOL_NKINDS; k++) {
		spool_get_stats(c->spool, k, &ss);
		strbuf_printf(out, "allot_collect_spool_batches{kind=\"%s\"} %zu\n",
		    spool_kind_name((enum spool_kind)k), ss.batches);
	}
	FAMILY("allot_collect_spool_records", "gauge", "Records or samples in the spool.");
	for (int k = 0; k < SPOOL_NKINDS; k++) {
		spool_get_stats(c->spool, k, &ss);
		strbuf_printf(out, "allot_collect_spool_records{kind=\"%s\"} %" PRIu64 "\n",
		    spool_kind_name((enum spool_kind)k), ss.records);
	}
	FAMILY("allot_collect_spool_bytes", "gauge", "Size of the spooled batches.");
	for (int k = 0; k < SPOOL_NKINDS; k++) {
		spool_get_stats(c->spool, k, &ss);
		strbuf_printf(out, "allot_collect_spool_bytes{kind=\"%s\"} %" PRIu64 "\n",
		    spool_kind_name((enum spool_kind)k), ss.bytes);
	}
	FAMILY("allot_collect_spool_oldest_age_seconds", "gauge",
	    "Age of the oldest spooled batch (0 when empty).");
	for (int k = 0; k < SPOOL_NKINDS; k++) {
		spool_get_stats(c->spool, k, &ss);
		strbuf_printf(out, "allot_collect_spool_oldest_age_seconds{kind=\"%s\"} %.3f\n",
		    spool_kind_name((enum spool_kind)k),
		    ss.oldest_ms > 0 ? (double)(now - ss.oldest_ms) / 1000.0 : 0.0);
	}
	FAMILY("allot_collect_spool_full", "gauge",
	    "1 while the spool is full and the sources are not read.");
	strbuf_printf(out, "allot_collect_spool_full %d\n", c->paused ? 1 : 0);
	FAMILY("allot_collect_held_records", "gauge",
	    "Records read but waiting in memory for room in the spool.");
	strbuf_printf(out, "allot_collect_held_records %" PRIu64 "\n", batcher_pending(c->batcher));
	FAMILY("allot_collect_batches_acked_total", "counter", "Batches allotd acknowledged.");
	for (int k = 0; k < SPOOL_NKINDS; k++)
		strbuf_printf(out, "allot_collect_batches_acked_total{kind=\"%s\"} %" PRIu64 "\n",
		    spool_kind_name((enum spool_kind)k), st.batches_acked[k]);
	FAMILY("allot_collect_records_acked_total", "counter",
	    "Records or samples in acknowledged batches.");
	for (int k = 0; k < SPOOL_NKINDS; k++)
		strbuf_printf(out, "allot_collect_records_acked_total{kind=\"%s\"} %" PRIu64 "\n",
		    spool_kind_name((enum spool_kind)k), st.records_acked[k]);
	FAMILY("allot_collect_records_refused_total", "counter",
	    "Records allotd acknowledged but refused one by one (unknown account, ...).");
	for (int k = 0; k < SPOOL_NKINDS; k++)
		strbuf_printf(out, "allot_collect_records_refused_total{kind=\"%s\"} %" PRIu64 "\n",
		    spool_kind_name((enum spool_kind)k), st.records_refused[k]);
	FAMILY("allot_collect_batches_rejected_total", "counter",
	    "Batches refused for good and moved to the spool's rejected/ folder.");
	for (int k = 0; k < SPOOL_NKINDS; k++)
		strbuf_printf(out,
		    "allot_collect_batches_rejected_total{kind=\"%s\"} %" PRIu64 "\n",
		    spool_kind_name((enum spool_kind)k), st.batches_rejected[k]);
	FAMILY("allot_collect_send_failures_total", "counter",
	    "Attempts to send that failed and will be retried.");
	for (int k = 0; k < SPOOL_NKINDS; k++)
		strbuf_printf(out, "allot_collect_send_failures_total{kind=\"%s\"} %" PRIu64 "\n",
		    spool_kind_name((enum spool_kind)k), st.attempts_failed[k]);
	FAMILY("allot_collect_send_failures_in_a_row", "gauge",
	    "Failed attempts since the last success (0: allotd takes batches).");
	for (int k = 0; k < SPOOL_NKINDS; k++)
		strbuf_printf(out,
		    "allot_collect_send_failures_in_a_row{kind=\"%s\"} %" PRIu32 "\n",
		    spool_kind_name((enum spool_kind)k), st.failures_in_a_row[k]);
	FAMILY("allot_collect_last_ack_timestamp_seconds", "gauge",
	    "Unix time of the last acknowledgement (0: none yet).");
	strbuf_printf(out, "allot_collect_last_ack_timestamp_seconds %.3f\n",
	    (double)st.last_ack_ms / 1000.0);
	FAMILY("allot_collect_records_read_total", "counter",
	    "Records and samples read from the sources.");
	strbuf_printf(out, "allot_collect_records_read_total %" PRIu64 "\n", c->records_read);
	FAMILY(
	    "allot_collect_parse_errors_total", "counter", "Inputs or lines that did not parse.");
	strbuf_printf(out, "allot_collect_parse_errors_total %" PRIu64 "\n", c->parse_errors);
	FAMILY("allot_collect_sacct_runs_total", "counter", "sacct runs, by outcome.");
	strbuf_printf(out,
	    "allot_collect_sacct_runs_total{outcome=\"ok\"} %" PRIu64 "\n"
	    "allot_collect_sacct_runs_total{outcome=\"failed\"} %" PRIu64 "\n",
	    c->sacct_runs, c->sacct_failures);
	FAMILY(
	    "allot_collect_scrapes_total", "counter", "Exporter scrapes, by exporter and outcome.");
	for (int i = 0; i < 2; i++)
		strbuf_printf(out,
		    "allot_collect_scrapes_total{exporter=\"%s\",outcome=\"ok\"} %" PRIu64 "\n"
		    "allot_collect_scrapes_total{exporter=\"%s\",outcome=\"failed\"} %" PRIu64 "\n",
		    c->scrapes[i].name, c->scrapes[i].scrapes - c->scrapes[i].failures,
		    c->scrapes[i].name, c->scrapes[i].failures);
#undef FAMILY
}

static void
metrics_cb(struct evhttp_request *req, void *arg)
{
	struct collector *c = arg;
	struct evbuffer *buf;
	struct strbuf out;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_send_error(req, 405, "GET only");
		return;
	}
	strbuf_init(&out);
	render_metrics(c, &out);
	if (strbuf_failed(&out) || (buf = evbuffer_new()) == NULL) {
		strbuf_cleanup(&out);
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	evbuffer_add(buf, out.data, out.len);
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);
	strbuf_cleanup(&out);
}

static void
report_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collector *c = arg;
	struct sender_stats st;
	struct spool_stats ss;

	(void)fd;
	(void)what;
	spool_get_stats(c->spool, -1, &ss);
	sender_get_stats(c->sender, &st);
	if (ss.batches > 0 || c->last_backlog > 0)
		log_info("backlog: %zu batches, %" PRIu64 " records, oldest %.0f s%s%s%s",
		    ss.batches, ss.records,
		    ss.oldest_ms > 0 ? (double)(wall_ms() - ss.oldest_ms) / 1000.0 : 0.0,
		    c->paused ? "; spool full, reading stopped" : "",
		    st.last_error[0] != '\0' ? "; last error: " : "", st.last_error);
	c->last_backlog = ss.batches;
}

/* ---- signals, start and stop ------------------------------------------------------------ */

static void
apply_settings(struct collector *c)
{
	struct sender_settings ss;

	log_set_level(c->cfg->log_level);
	spool_set_max_bytes(c->spool, (uint64_t)c->cfg->spool_max_bytes);
	batcher_set_size(c->batcher, (size_t)c->cfg->batch_records);
	sender_settings(c->cfg, &ss);
	sender_set_settings(c->sender, &ss);
}

static void
reload(struct collector *c)
{
	struct collect_config *fresh;
	char err[1024];
	int r;

	log_info("reloading %s", c->config_path);
	if ((fresh = collect_config_new()) == NULL ||
	    collect_config_load(fresh, c->config_path, err, sizeof(err)) != 0) {
		log_warnx(
		    "keeping the running configuration: %s", fresh != NULL ? err : "out of memory");
		collect_config_free(fresh);
		return;
	}
	/* The certificates and the server are the sender's, made at start. */
	if (strcmp(fresh->server, c->cfg->server) != 0 ||
	    strcmp(fresh->tls_cert, c->cfg->tls_cert) != 0 ||
	    strcmp(fresh->tls_key, c->cfg->tls_key) != 0 ||
	    strcmp(fresh->tls_ca, c->cfg->tls_ca) != 0)
		log_warnx("server and certificates apply at the next restart");
	r = collect_config_reload_merge(c->cfg, fresh, err, sizeof(err));
	collect_config_free(fresh);
	for (int i = 0; i < 2; i++)
		c->scrapes[i].stale = true;
	if (r != 0)
		log_warnx("%s", err);
	apply_settings(c);
	log_info("configuration reloaded");
}

static void
stop(struct collector *c)
{
	char err[512];
	int rc;

	c->stopping = true;
	if (c->in_ev != NULL)
		event_del(c->in_ev);
	if (c->in_fd >= 0)
		input_process(c, false);
	rc = batcher_flush(c->batcher, err, sizeof(err));
	if (rc != 0)
		log_warnx("stopping with %" PRIu64 " records read but not spooled (%s): a sacct "
		          "source reads them again at the next start",
		    batcher_pending(c->batcher), err);
	event_base_loopexit(c->base, NULL);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct collector *c = arg;

	(void)what;
	if (sig == SIGHUP) {
		reload(c);
		return;
	}
	if (c->stopping) {
		event_base_loopbreak(c->base);
		return;
	}
	log_info("stopping: sources closed, finishing the batch in flight");
	stop(c);
}

static struct event *
timer_now(struct collector *c, event_callback_fn cb)
{
	struct timeval now = {0, 0};
	struct event *ev = evtimer_new(c->base, cb, c);

	if (ev == NULL || evtimer_add(ev, &now) != 0)
		log_fatal("could not start a timer");
	return ev;
}

static void
usage_run(FILE *f)
{
	fprintf(f,
	    "usage: allot-collect run [-c FILE]\n"
	    "       allot-collect run -n [-c FILE | FILE]\n"
	    "\n"
	    "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
	    "  -n, --check         check the configuration, then exit\n"
	    "      --help-config   list the configuration keys\n");
}

/* Loads the configuration named by -c; exits on -n. Returns NULL after printing why. */
static struct collect_config *
load_config(const char *path)
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

static int
open_parts(struct collector *c, const char *spool_override)
{
	struct allot_client_options o;
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
	sender_settings(c->cfg, &ss);
	if ((c->sender = sender_new(c->spool, &o, &ss, err, sizeof(err))) == NULL) {
		fprintf(stderr, "allot-collect: %s\n", err);
		return -1;
	}
	if ((c->batcher = batcher_new(c->spool, c->cfg->site, (size_t)c->cfg->batch_records)) ==
	    NULL) {
		fprintf(stderr, "allot-collect: out of memory\n");
		return -1;
	}
	return 0;
}

static void
close_parts(struct collector *c)
{
	sender_free(c->sender);
	batcher_free(c->batcher);
	spool_free(c->spool);
	collect_zone_leave(&c->zone);
	collect_config_free(c->cfg);
}

int
collect_run_main(int argc, char **argv)
{
	enum { OPT_HELP_CONFIG = 256 };
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check", no_argument, NULL, 'n'},
	    {"help-config", no_argument, NULL, OPT_HELP_CONFIG},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct collector c = {.config_path = DEFAULT_CONFIG, .in_fd = -1};
	struct spool_stats ss;
	bool check = false;
	char err[1024];
	int ch;

	c.sacct.fd = -1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:nh", options, NULL)) != -1) {
		switch (ch) {
		case 'c':
			c.config_path = optarg;
			break;
		case 'n':
			check = true;
			break;
		case OPT_HELP_CONFIG:
			collect_config_print_help(stdout);
			return COLLECT_EXIT_OK;
		case 'h':
			usage_run(stdout);
			return COLLECT_EXIT_OK;
		default:
			usage_run(stderr);
			return COLLECT_EXIT_USAGE;
		}
	}
	if (check && optind == argc - 1)
		c.config_path = argv[optind++];
	if (optind != argc) {
		usage_run(stderr);
		return COLLECT_EXIT_USAGE;
	}
	if ((c.cfg = load_config(c.config_path)) == NULL)
		return COLLECT_EXIT_FAIL;
	if (check) {
		if (c.cfg->timezone[0] != '\0' &&
		    collect_zone_enter(&c.zone, c.cfg->timezone, err, sizeof(err)) != 0) {
			fprintf(stderr, "allot-collect: %s: %s\n", c.config_path, err);
			collect_config_free(c.cfg);
			return COLLECT_EXIT_FAIL;
		}
		collect_zone_leave(&c.zone);
		printf("configuration OK\n");
		collect_config_free(c.cfg);
		return COLLECT_EXIT_OK;
	}
	log_set_level(c.cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	if (open_parts(&c, NULL) != 0) {
		close_parts(&c);
		return COLLECT_EXIT_FAIL;
	}
	spool_get_stats(c.spool, -1, &ss);
	if (ss.batches > 0)
		log_info("spool %s holds %zu batches (%" PRIu64 " records) from before: sending "
		         "them first",
		    c.cfg->spool_dir, ss.batches, ss.records);
	if ((c.base = event_base_new()) == NULL)
		log_fatal("could not create the event loop");
	c.sigterm = evsignal_new(c.base, SIGTERM, signal_cb, &c);
	c.sigint = evsignal_new(c.base, SIGINT, signal_cb, &c);
	c.sighup = evsignal_new(c.base, SIGHUP, signal_cb, &c);
	if (c.sigterm == NULL || c.sigint == NULL || c.sighup == NULL ||
	    evsignal_add(c.sigterm, NULL) != 0 || evsignal_add(c.sigint, NULL) != 0 ||
	    evsignal_add(c.sighup, NULL) != 0)
		log_fatal("could not install signal handlers");
	c.flush_ev = evtimer_new(c.base, flush_cb, &c);
	c.retry_ev = evtimer_new(c.base, retry_cb, &c);
	c.report_ev = event_new(c.base, -1, EV_PERSIST, report_cb, &c);
	c.poll_ev = event_new(c.base, -1, EV_PERSIST, poll_cb, &c);
	if (c.flush_ev == NULL || c.retry_ev == NULL || c.report_ev == NULL || c.poll_ev == NULL)
		log_fatal("out of memory");
	{
		struct timeval report = {REPORT_S, 0}, poll = {1, 0};

		event_add(c.report_ev, &report);
		event_add(c.poll_ev, &poll);
	}
	if (c.cfg->metrics_host[0] != '\0') {
		if ((c.http = evhttp_new(c.base)) == NULL ||
		    evhttp_bind_socket(
		        c.http, c.cfg->metrics_host, (unsigned short)c.cfg->metrics_port) != 0)
			log_fatal("could not listen on %s for /metrics", c.cfg->metrics_listen);
		evhttp_set_allowed_methods(c.http, EVHTTP_REQ_GET);
		evhttp_set_cb(c.http, "/metrics", metrics_cb, &c);
		log_info("metrics on http://%s/metrics", c.cfg->metrics_listen);
	}
	if (sender_start(c.sender, err, sizeof(err)) != 0)
		log_fatal("%s", err);
	if (input_open(&c) != 0)
		log_fatal("could not read input_file %s", c.cfg->input_file);
	sacct_load_state(&c);
	c.sacct_ev = timer_now(&c, sacct_cb);
	c.scrapes[0] = (struct scrape){.name = "dcgm", .url = c.cfg->dcgm_url, .c = &c};
	c.scrapes[1] = (struct scrape){.name = "amd", .url = c.cfg->amd_url, .c = &c};
	c.scrape_ev = timer_now(&c, scrape_cb);
	if ((c.sacct.reap = evtimer_new(c.base, sacct_reap_cb, &c)) == NULL)
		log_fatal("out of memory");
	log_info("collecting for site %s into %s", c.cfg->site, c.cfg->spool_dir);

	if (event_base_dispatch(c.base) < 0)
		log_fatal("the event loop failed");
	sender_stop(c.sender);
	spool_get_stats(c.spool, -1, &ss);
	log_info(
	    "stopped; %zu batches (%" PRIu64 " records) left in the spool", ss.batches, ss.records);

	if (c.sacct.pid > 0) {
		kill(c.sacct.pid, SIGTERM);
		waitpid(c.sacct.pid, NULL, 0);
	}
	for (int i = 0; i < 2; i++)
		if (c.scrapes[i].conn != NULL)
			evhttp_connection_free(c.scrapes[i].conn);
	if (c.http != NULL)
		evhttp_free(c.http);
	if (c.sacct.ev != NULL)
		event_free(c.sacct.ev);
	if (c.sacct.fd >= 0)
		close(c.sacct.fd);
	strbuf_cleanup(&c.sacct.out);
	event_free(c.sacct.reap);
	if (c.in_ev != NULL)
		event_free(c.in_ev);
	if (c.in_fd >= 0)
		close(c.in_fd);
	strbuf_cleanup(&c.in_buf);
	event_free(c.sacct_ev);
	event_free(c.scrape_ev);
	event_free(c.flush_ev);
	event_free(c.retry_ev);
	event_free(c.report_ev);
	event_free(c.poll_ev);
	event_free(c.sigterm);
	event_free(c.sigint);
	event_free(c.sighup);
	close_parts(&c);
	event_base_free(c.base);
	return COLLECT_EXIT_OK;
}

/* ---- the one-shot commands ------------------------------------------------------------------ */

/* Reads all of f into sb; false on a read error. */
static bool
read_whole(FILE *f, struct strbuf *sb)
{
	char chunk[READ_CHUNK];
	size_t n;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		strbuf_append(sb, chunk, n);
	return !ferror(f) && !strbuf_failed(sb);
}

/*
 * Spools what the batcher holds, sending while the spool is full, then drains.
 * Returns an exit status.
 */
static int
spool_and_drain(struct collector *c, int rc, const char *err_in, int64_t deadline_ms)
{
	struct sender_stats st;
	struct spool_stats ss;
	char err[1024];

	snprintf(err, sizeof(err), "%s", err_in);
	for (;;) {
		if (rc < 0) {
			fprintf(stderr, "allot-collect: %s\n", err);
			return COLLECT_EXIT_FAIL;
		}
		if (rc == 0 && (rc = batcher_flush(c->batcher, err, sizeof(err))) == 0)
			break;
		if (rc == SPOOL_FULL) {
			/* Room comes from acknowledgements. */
			if (sender_drain(c->sender, deadline_ms) != 0) {
				fprintf(stderr,
				    "allot-collect: the spool is full and allotd did not take "
				    "batches in time: %s\n",
				    err);
				return COLLECT_EXIT_TEMPFAIL;
			}
			rc = 0;
		}
	}
	if (sender_drain(c->sender, deadline_ms) != 0) {
		spool_get_stats(c->spool, -1, &ss);
		sender_get_stats(c->sender, &st);
		fprintf(stderr,
		    "allot-collect: %zu batches (%" PRIu64 " records) left in %s for later: %s\n",
		    ss.batches, ss.records, spool_dir(c->spool), st.last_error);
		return COLLECT_EXIT_TEMPFAIL;
	}
	sender_get_stats(c->sender, &st);
	return st.batches_rejected[0] + st.batches_rejected[1] + st.records_refused[0] +
	            st.records_refused[1] >
	        0
	    ? COLLECT_EXIT_FAIL
	    : COLLECT_EXIT_OK;
}

/* What the one-shot commands share on their command lines. */
struct oneshot_args {
	const char *spool; /* --spool, or NULL for the configuration's */
	long wait_s;       /* --wait */
};

/*
 * Takes -c, --spool and --wait (getopt's ch and optarg). Returns 1 when taken, 0
 * for another option, -1 after printing what is wrong.
 */
static int
oneshot_option(int ch, const char *arg, struct collector *c, struct oneshot_args *a)
{
	char *end;

	switch (ch) {
	case 'c':
		c->config_path = arg;
		return 1;
	case 's':
		a->spool = arg;
		return 1;
	case 'w':
		a->wait_s = strtol(arg, &end, 10);
		if (*end == '\0' && a->wait_s >= 0 && arg[0] != '\0')
			return 1;
		fprintf(stderr, "allot-collect: --wait: \"%s\" is not a number of seconds\n", arg);
		return -1;
	default:
		return 0;
	}
}

static void
usage_send(FILE *f)
{
	fprintf(f,
	    "usage: allot-collect send [-c FILE] [--format F] [--spool DIR] [--wait S] FILE\n"
	    "\n"
	    "Parses FILE (- for standard input), spools it in batches and sends them,\n"
	    "waiting for allotd to acknowledge each. F is jsonl (default: the JSON lines\n"
	    "`allot-collect parse` prints), sacct, jobcomp, dcgm or amd. Batches not\n"
	    "acknowledged within --wait seconds (default 600; 0: no limit) stay in the\n"
	    "spool, for the daemon or the next send: exit status 75.\n");
}

int
collect_send_main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"format", required_argument, NULL, 'f'},
	    {"spool", required_argument, NULL, 's'},
	    {"wait", required_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct collector c = {.config_path = DEFAULT_CONFIG, .in_fd = -1};
	struct oneshot_args a = {.wait_s = 600};
	const char *format = "jsonl", *file;
	struct strbuf in;
	char err[1024];
	FILE *f;
	int ch, rc, r, status;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		if ((r = oneshot_option(ch, optarg, &c, &a)) != 0) {
			if (r < 0)
				return COLLECT_EXIT_USAGE;
			continue;
		}
		switch (ch) {
		case 'f':
			format = optarg;
			break;
		case 'h':
			usage_send(stdout);
			return COLLECT_EXIT_OK;
		default:
			usage_send(stderr);
			return COLLECT_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage_send(stderr);
		return COLLECT_EXIT_USAGE;
	}
	file = argv[optind];
	if ((c.cfg = load_config(c.config_path)) == NULL)
		return COLLECT_EXIT_FAIL;
	log_set_level(c.cfg->log_level);
	if (strcmp(file, "-") == 0)
		f = stdin;
	else if ((f = fopen(file, "r")) == NULL) {
		fprintf(stderr, "allot-collect: could not open %s: %s\n", file, strerror(errno));
		collect_config_free(c.cfg);
		return COLLECT_EXIT_FAIL;
	}
	strbuf_init(&in);
	if (!read_whole(f, &in)) {
		fprintf(stderr, "allot-collect: could not read %s\n", file);
		status = COLLECT_EXIT_FAIL;
		goto done_file;
	}
	if (open_parts(&c, a.spool) != 0) {
		status = COLLECT_EXIT_FAIL;
		goto done;
	}
	/* A bad input stops everything before anything is spooled, as `allot ingest` does. */
	batcher_set_size(c.batcher, SIZE_MAX);
	rc = parse_into(
	    c.batcher, c.cfg, format, in.data != NULL ? in.data : "", in.len, 1, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "allot-collect: %s: %s\n", strcmp(file, "-") == 0 ? "stdin" : file,
		    err);
		status = COLLECT_EXIT_USAGE;
		goto done;
	}
	batcher_set_size(c.batcher, (size_t)c.cfg->batch_records);
	status = spool_and_drain(&c, batcher_flush(c.batcher, err, sizeof(err)), err,
	    a.wait_s > 0 ? wall_ms() + a.wait_s * 1000 : 0);
done:
	close_parts(&c);
	c.cfg = NULL;
done_file:
	strbuf_cleanup(&in);
	if (f != stdin)
		fclose(f);
	collect_config_free(c.cfg);
	return status;
}

/* ---- backfill ------------------------------------------------------------------------------- */

/* Reads "YYYY-MM-DD" as the Unix time of that day's midnight UTC (a calendar day, no zone). */
static bool
parse_day(const char *s, time_t *out)
{
	struct tm tm = {0};
	char tail;
	int y, m, d;

	if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || strlen(s) != 10 || m < 1 ||
	    m > 12 || d < 1 || d > 31 || y < 1970 || y > 9999)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	*out = timegm(&tm);
	gmtime_r(out, &tm);
	/* 2026-02-30 would roll over to March: refuse it. */
	return tm.tm_mday == d && tm.tm_mon == m - 1;
}

static void
format_day(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d", &tm);
}

/* Runs sacct over one window to completion, its output in *out. Returns its wait status or -1. */
static int
sacct_run_sync(
    const struct collect_config *cfg, const char *start, const char *end, struct strbuf *out)
{
	char chunk[READ_CHUNK];
	ssize_t n;
	int fd, status;
	pid_t pid;

	if ((pid = sacct_spawn(cfg, start, end, &fd)) < 0)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		strbuf_append(out, chunk, (size_t)n);
	}
	close(fd);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return strbuf_failed(out) ? -1 : status;
}

static void
progress(bool tty, const char *day, size_t done, size_t total, uint64_t records, double elapsed_s)
{
	double rate = elapsed_s > 0 ? (double)records / elapsed_s : 0;
	double eta = done > 0 ? elapsed_s / (double)done * (double)(total - done) : 0;
	int width = 30, fill = total > 0 ? (int)((double)width * (double)done / (double)total) : 0;
	char bar[64];

	if (!tty) {
		fprintf(stderr,
		    "backfill: %s done (%zu/%zu days), %" PRIu64 " records, %.0f records/s, "
		    "ETA %.0f s\n",
		    day, done, total, records, rate, eta);
		return;
	}
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = '\0';
	fprintf(stderr,
	    "\r[%s] %zu/%zu days  %" PRIu64 " records  %.0f rec/s  ETA %d:%02d:%02d  %s", bar, done,
	    total, records, rate, (int)eta / 3600, (int)eta / 60 % 60, (int)eta % 60,
	    done == total ? "\n" : "");
}

static void
usage_backfill(FILE *f)
{
	fprintf(f,
	    "usage: allot-collect backfill [-c FILE] --since DATE [--until DATE] [--spool DIR]\n"
	    "                              [--wait S]\n"
	    "\n"
	    "Imports the site's history: runs sacct_command for each day from --since\n"
	    "(YYYY-MM-DD, the site's local days) up to --until (default: through today),\n"
	    "spools the records and sends them, with a progress bar on a terminal (records,\n"
	    "rate, ETA) and a progress line per day otherwise. Days already sent are\n"
	    "replays: running it again is harmless. Batches not acknowledged within --wait\n"
	    "seconds after the last day (default 600; 0: no limit) stay in the spool: exit\n"
	    "status 75.\n");
}

int
collect_backfill_main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"since", required_argument, NULL, 'S'},
	    {"until", required_argument, NULL, 'E'},
	    {"spool", required_argument, NULL, 's'},
	    {"wait", required_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct collector c = {.config_path = DEFAULT_CONFIG, .in_fd = -1};
	struct oneshot_args a = {.wait_s = 600};
	const char *since = NULL, *until = NULL;
	char err[1024], day[16], next[16], start[32], end[32];
	time_t first, last, t;
	int64_t t0;
	size_t ndays, done = 0;
	bool tty = isatty(STDERR_FILENO) == 1;
	struct strbuf out;
	int ch, rc, status = COLLECT_EXIT_OK, ws;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		if ((rc = oneshot_option(ch, optarg, &c, &a)) != 0) {
			if (rc < 0)
				return COLLECT_EXIT_USAGE;
			continue;
		}
		switch (ch) {
		case 'S':
			since = optarg;
			break;
		case 'E':
			until = optarg;
			break;
		case 'h':
			usage_backfill(stdout);
			return COLLECT_EXIT_OK;
		default:
			usage_backfill(stderr);
			return COLLECT_EXIT_USAGE;
		}
	}
	if (optind != argc || since == NULL) {
		usage_backfill(stderr);
		return COLLECT_EXIT_USAGE;
	}
	if (!parse_day(since, &first)) {
		fprintf(stderr, "allot-collect: --since: \"%s\" is not a date YYYY-MM-DD\n", since);
		return COLLECT_EXIT_USAGE;
	}
	if (until != NULL && !parse_day(until, &last)) {
		fprintf(stderr, "allot-collect: --until: \"%s\" is not a date YYYY-MM-DD\n", until);
		return COLLECT_EXIT_USAGE;
	}
	if (until == NULL)
		last = time(NULL) / 86400 * 86400 + 86400;
	if (last <= first) {
		fprintf(stderr, "allot-collect: --until must come after --since\n");
		return COLLECT_EXIT_USAGE;
	}
	ndays = (size_t)((last - first) / 86400);
	if ((c.cfg = load_config(c.config_path)) == NULL)
		return COLLECT_EXIT_FAIL;
	if (c.cfg->sacct_command[0] == '\0') {
		fprintf(stderr, "allot-collect: %s: backfill needs sacct_command\n", c.config_path);
		collect_config_free(c.cfg);
		return COLLECT_EXIT_USAGE;
	}
	log_set_level(c.cfg->log_level);
	if (open_parts(&c, a.spool) != 0) {
		close_parts(&c);
		return COLLECT_EXIT_FAIL;
	}
	/* Sending overlaps reading: the sender's thread empties the spool as days are read. */
	if (sender_start(c.sender, err, sizeof(err)) != 0) {
		fprintf(stderr, "allot-collect: %s\n", err);
		close_parts(&c);
		return COLLECT_EXIT_FAIL;
	}
	strbuf_init(&out);
	t0 = wall_ms();
	for (t = first; t < last; t += 86400) {
		format_day(t, day, sizeof(day));
		format_day(t + 86400, next, sizeof(next));
		snprintf(start, sizeof(start), "%sT00:00:00", day);
		snprintf(end, sizeof(end), "%sT00:00:00", next);
		strbuf_reset(&out);
		ws = sacct_run_sync(c.cfg, start, end, &out);
		if (ws < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
			fprintf(stderr,
			    "%sallot-collect: %s failed for %s: stopping here; run again "
			    "with --since %s\n",
			    tty ? "\n" : "", c.cfg->sacct_command, day, day);
			status = COLLECT_EXIT_FAIL;
			break;
		}
		rc = parse_into(c.batcher, c.cfg, "sacct", out.data != NULL ? out.data : "",
		    out.len, 0, err, sizeof(err));
		if (rc < 0 && !batcher_full(c.batcher)) {
			fprintf(stderr, "%sallot-collect: sacct output for %s: %s\n",
			    tty ? "\n" : "", day, err);
			status = COLLECT_EXIT_FAIL;
			break;
		}
		while ((rc = batcher_flush(c.batcher, err, sizeof(err))) == SPOOL_FULL) {
			/* The sender makes room; waiting here is all a one-shot command can do. */
			sender_wake(c.sender);
			usleep(200000);
		}
		if (rc < 0) {
			fprintf(stderr, "allot-collect: %s\n", err);
			status = COLLECT_EXIT_FAIL;
			break;
		}
		sender_wake(c.sender);
		done++;
		progress(tty, day, done, ndays, batcher_spooled(c.batcher, SPOOL_JOBS),
		    (double)(wall_ms() - t0) / 1000.0);
	}
	strbuf_cleanup(&out);
	sender_stop(c.sender);
	rc = spool_and_drain(&c, 0, "", a.wait_s > 0 ? wall_ms() + a.wait_s * 1000 : 0);
	if (status == COLLECT_EXIT_OK)
		status = rc;
	close_parts(&c);
	return status;
}
