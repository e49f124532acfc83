/*
 * sources: input_file, sacct and the exporters (see sources.h). Each source reads
 * without blocking the loop (a FIFO is watched, a regular file read a chunk per
 * turn, sacct's output watched and its exit reaped from a timer, scrapes through
 * evhttp's client) and stops while the collector is paused.
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

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "collector.h"
#include "log.h"
#include "sources.h"

/* The largest exporter page taken. */
#define SCRAPE_MAX_BYTES (64 * 1024 * 1024)

/* Parses the complete lines of in_buf (all of it at EOF) until the spool is full. */
void
source_input_process(struct collector *c, bool eof)
{
	const char *fmt = c->cfg->input_format;
	char err[1024];
	size_t done = 0;
	int rc;

	if (strcmp(fmt, "jsonl") != 0) {
		/* Whole-buffer formats: one parse of everything, once the writer is done. */
		if (!eof || c->in_buf.len == 0)
			return;
		rc = collector_parse(
		    c->batcher, c->cfg, fmt, c->in_buf.data, c->in_buf.len, 0, err, sizeof(err));
		if (rc < 0 && !batcher_full(c->batcher)) {
			log_errorx("%s: %s", c->cfg->input_file, err);
			c->parse_errors++;
		} else
			c->records_read += batcher_pending(c->batcher);
		strbuf_reset(&c->in_buf);
		(void)collector_after_batch(c, rc < 0 ? 0 : rc, err);
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
		if (!collector_after_batch(c, rc, err))
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
	if ((long long)c->in_buf.len + (long long)n > COLLECT_SOURCE_MAX) {
		log_errorx("%s: a line longer than %lld bytes: dropped the input buffer",
		    c->cfg->input_file, COLLECT_SOURCE_MAX);
		strbuf_reset(&c->in_buf);
		return;
	}
	strbuf_append(&c->in_buf, chunk, n);
	source_input_process(c, false);
}

/* A FIFO is readable. */
static void
input_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collector *c = arg;
	char chunk[COLLECT_READ_CHUNK];
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
	char chunk[COLLECT_READ_CHUNK];
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
			source_input_process(c, true);
			c->in_done = true;
		}
		return;
	}
	input_take(c, chunk, (size_t)n);
	if (!c->paused)
		evtimer_add(c->in_ev, &now);
}

void
source_input_resume(struct collector *c)
{
	static const struct timeval now = {0, 0};

	if (c->in_fd < 0)
		return;
	source_input_process(c, false);
	if (c->paused || c->stopping)
		return;
	if (c->in_fifo)
		event_add(c->in_ev, NULL);
	else
		evtimer_add(c->in_ev, &now);
}

/* A regular file: reading again from where it stopped catches what was appended. */
void
source_input_poll_cb(evutil_socket_t fd, short what, void *arg)
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

int
source_input_open(struct collector *c)
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
	source_input_resume(c);
	log_info("reading %s %s (%s)", c->in_fifo ? "FIFO" : "file", path, c->cfg->input_format);
	return 0;
}

static void
sacct_state_path(const struct collector *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s/sacct.state", c->cfg->spool_dir);
}

void
source_sacct_load_state(struct collector *c)
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
 * through *fd. The child inherits TZ, the site's zone (collector_open), so that the
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
	rc = collector_parse(c->batcher, c->cfg, "sacct", r->out.data != NULL ? r->out.data : "",
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
	(void)collector_after_batch(c, rc, err);
}

void
source_sacct_reap_cb(evutil_socket_t fd, short what, void *arg)
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
	char chunk[COLLECT_READ_CHUNK];
	ssize_t n;

	(void)what;
	n = read(fd, chunk, sizeof(chunk));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		if ((long long)c->sacct.out.len + n > COLLECT_SOURCE_MAX)
			c->sacct.truncated = true;
		else
			strbuf_append(&c->sacct.out, chunk, (size_t)n);
		return;
	}
	/* End of output: the child is exiting. */
	event_del(c->sacct.ev);
	source_sacct_reap_cb(-1, 0, c);
}

void
source_sacct_cb(evutil_socket_t fd, short what, void *arg)
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

/* Runs sacct over one window to completion, its output in *out. Returns its wait status or -1. */
int
source_sacct_run_sync(
    const struct collect_config *cfg, const char *start, const char *end, struct strbuf *out)
{
	char chunk[COLLECT_READ_CHUNK];
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
	if (len == 0) {
		s->failures++;
		log_warnx("scrape of %s failed: an empty page", s->url);
		return;
	}
	rc = collector_parse(c->batcher, c->cfg, s->name, (const char *)evbuffer_pullup(body, -1),
	    len, 0, err, sizeof(err));
	if (rc < 0 && !batcher_full(c->batcher)) {
		s->failures++;
		c->parse_errors++;
		log_errorx("scrape of %s: %s", s->url, err);
		return;
	}
	s->samples +=
	    batcher_pending(c->batcher) + batcher_spooled(c->batcher, SPOOL_METRICS) - before;
	(void)collector_after_batch(c, rc < 0 ? SPOOL_FULL : rc, err);
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
		if (s->conn != NULL) {
			evhttp_connection_set_timeout(s->conn, 10);
			/* An exporter's page is a few hundred kB; a bound keeps a wrong URL harmless. */
			evhttp_connection_set_max_body_size(s->conn, SCRAPE_MAX_BYTES);
		}
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

void
source_scrape_cb(evutil_socket_t fd, short what, void *arg)
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
