/*
 * twirp_mix: the load client of tests/bench/load. Holds many keep-alive TLS
 * connections to allotd (each with a client certificate) open on one epoll loop,
 * one request in flight per connection, and runs a mixed workload on them for a
 * bounded time; prints what came back (statuses, rate, latency percentiles per
 * method and overall) and, given allotd's pid, allotd's open descriptors,
 * resident memory and CPU at the start and the end of the measured period.
 *
 * The plan (-P) is a text file of lines:
 *   class NAME SHARE CERT KEY             connections of this certificate: SHARE
 *                                         of every SHAREs' sum of the -n connections
 *   op NAME WEIGHT PATH BODY [PATH BODY]...
 *                                         an operation of the last class, chosen
 *                                         with probability WEIGHT / the class's sum:
 *                                         its calls made one after the other on one
 *                                         connection (Reserve, then Settle)
 * BODY files are protobuf request bodies (tests/bench/load makes them with
 * tests/integration/protowire.py); each occurrence of the marker ("@@@@@@@@@@"
 * unless -m says otherwise) is replaced, in every call of an operation, by that
 * operation's sequence number, so each Reserve holds a new lien and its Settle
 * names the same one.
 *
 * Connections open (at most 64 handshakes at a time) before anything is timed;
 * then WARMUP seconds (-w) of the workload unrecorded, then SECONDS (-t)
 * recorded. A connection waits between operations: with -r RATE, a random
 * (exponential) time such that all together make about RATE calls a second;
 * without, none (each sends as soon as its answer came). A connection the server
 * closes or breaks is counted and opened again. At the end no new call starts,
 * those in flight are awaited (10 s at most), the last figures are read, and the
 * connections are closed.
 *
 * Usage: twirp_mix -p PORT -a CA -P PLAN -n CONNS -t SECONDS [-w WARMUP_S]
 *            [-r RATE] [-S ALLOTD_PID] [-G PID,...] [-i SAMPLE_S] [-m MARKER]
 *            [-s FIRSTSEQ] [-x SEED]
 * Output: key=value lines on stdout (a "sample" line every SAMPLE_S seconds, a
 * "method" line per method); the first answer of each unexpected status of each
 * method on stderr. Exits 1 if any call failed or was not answered 200.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench.h"

#define PROG "twirp_mix"
#define MAX_STEPS 4
#define MAX_STATUS 600
#define MAX_HANDSHAKES 64
#define MAX_PIDS 64

struct method {
	char name[64];
	long status[MAX_STATUS];
	int shown[MAX_STATUS];
	double *lat_ms;
	size_t nlat, caplat;
};

struct step {
	struct method *m;
	char *req; /* the head and the body */
	size_t len;
	struct bench_body body; /* its marks are offsets into the body part of req */
	size_t head_len;
};

struct op {
	char name[64];
	double weight;
	struct step steps[MAX_STEPS];
	int nsteps;
};

struct class
{
	char name[64];
	double share;
	SSL_CTX *ctx;
	struct op *ops;
	int nops;
	double weights;
	int nconns;
};

enum conn_state {
	C_NEW,       /* not yet connecting */
	C_CONNECT,   /* TCP connect in progress */
	C_HANDSHAKE, /* TLS handshake */
	C_IDLE,      /* waiting for its next operation */
	C_WRITE,     /* a request partly sent */
	C_READ,      /* awaiting the answer */
};

struct conn {
	int fd;
	SSL *ssl;
	struct class *cls;
	enum conn_state state;
	uint32_t events; /* registered with epoll */
	uint64_t rng;
	double next_at; /* C_IDLE: when to start the next operation */
	struct op *op;
	int step;
	long seq;
	char *req; /* the current request, seq written */
	size_t req_cap, req_len;
	char *buf; /* the answer read so far */
	size_t cap, have;
	double sent_at;
	int recorded; /* the call started inside the measured period */
};

static int port;
static const char *ca_file;
static const char *marker = "@@@@@@@@@@";
static struct class *classes;
static int nclasses;
static struct method *methods[256];
static int nmethods;
static int epfd;
static double rate;
static long next_seq;
static long failures, reconnects, unanswered;
static int recording, stopping;
static double rec_start, rec_end;
static long calls_total;

static void
die(const char *what)
{
	bench_die(PROG, what);
}

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL)
		die("out of memory");
	return p;
}

static uint64_t
rng_next(uint64_t *s)
{
	/* xorshift64*: enough for choosing operations and waits. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static double
rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static struct method *
method_get(const char *path)
{
	const char *name = strrchr(path, '.');

	name = name != NULL ? name + 1 : path;
	for (int i = 0; i < nmethods; i++)
		if (strcmp(methods[i]->name, name) == 0)
			return methods[i];
	if (nmethods == (int)(sizeof methods / sizeof methods[0]))
		die("too many methods in the plan");
	methods[nmethods] = xcalloc(1, sizeof(struct method));
	snprintf(methods[nmethods]->name, sizeof methods[nmethods]->name, "%s", name);
	return methods[nmethods++];
}

static void
step_init(struct step *st, const char *path, const char *body_file)
{
	char head[512];
	int n;

	st->m = method_get(path);
	bench_body_load(PROG, &st->body, body_file, marker);
	n = snprintf(head, sizeof head,
	    "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/protobuf\r\n"
	    "Content-Length: %zu\r\n\r\n",
	    path, st->body.len);
	if (n < 0 || (size_t)n >= sizeof head)
		die("a path in the plan is too long");
	st->head_len = (size_t)n;
	st->len = st->head_len + st->body.len;
	st->req = xcalloc(st->len, 1);
	memcpy(st->req, head, st->head_len);
	memcpy(st->req + st->head_len, st->body.data, st->body.len);
}

static void
plan_load(const char *path)
{
	char line[4096];
	FILE *f;
	int lineno = 0;

	if ((f = fopen(path, "r")) == NULL)
		die("cannot open the plan");
	classes = xcalloc(64, sizeof *classes);
	while (fgets(line, sizeof line, f) != NULL) {
		char *tok[2 + 2 * MAX_STEPS + 2], *save = NULL;
		int nt = 0;

		lineno++;
		for (char *t = strtok_r(line, " \t\r\n", &save);
		     t != NULL && nt < (int)(sizeof tok / sizeof tok[0]);
		     t = strtok_r(NULL, " \t\r\n", &save))
			tok[nt++] = t;
		if (nt == 0 || tok[0][0] == '#')
			continue;
		if (strcmp(tok[0], "class") == 0 && nt == 5) {
			struct class *c;

			if (nclasses == 64)
				die("too many classes in the plan");
			c = &classes[nclasses++];
			snprintf(c->name, sizeof c->name, "%s", tok[1]);
			c->share = atof(tok[2]);
			c->ctx = bench_tls_ctx_new(PROG, ca_file, tok[3], tok[4]);
			c->ops = xcalloc(64, sizeof *c->ops);
		} else if (strcmp(tok[0], "op") == 0 && nt >= 5 && nt % 2 == 1 && nclasses > 0 &&
		    (nt - 3) / 2 <= MAX_STEPS) {
			struct class *c = &classes[nclasses - 1];
			struct op *o;

			if (c->nops == 64)
				die("too many operations in a class");
			o = &c->ops[c->nops++];
			snprintf(o->name, sizeof o->name, "%s", tok[1]);
			o->weight = atof(tok[2]);
			c->weights += o->weight;
			for (int i = 3; i + 1 < nt; i += 2)
				step_init(&o->steps[o->nsteps++], tok[i], tok[i + 1]);
		} else {
			fprintf(stderr, "%s: %s:%d: not a class or op line\n", PROG, path, lineno);
			exit(2);
		}
	}
	fclose(f);
	if (nclasses == 0)
		die("the plan has no class");
	for (int i = 0; i < nclasses; i++)
		if (classes[i].nops == 0 || classes[i].weights <= 0 || classes[i].share <= 0)
			die("a class of the plan has no operation, or a weight or share <= 0");
}

static void
conn_watch(struct conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};

	if (events == c->events)
		return;
	if (epoll_ctl(epfd, c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev) != 0)
		die("epoll_ctl");
	c->events = events;
}

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd); /* leaves epoll's set with it */
		c->fd = -1;
	}
	c->events = 0;
	c->state = C_NEW;
}

/* Registers for what OpenSSL wants after a call returned r <= 0; returns -1 on a real failure. */
static int
conn_want(struct conn *c, int r)
{
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		conn_watch(c, EPOLLIN);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		conn_watch(c, EPOLLOUT);
		return 0;
	default:
		return -1;
	}
}

static void
conn_fail(struct conn *c, const char *why)
{
	if (c->state == C_READ || c->state == C_WRITE) {
		unanswered++;
		if (c->recorded)
			failures++;
	}
	if (failures < 5 && (c->state == C_READ || c->state == C_WRITE || c->state == C_HANDSHAKE))
		fprintf(stderr, "%s: connection %s: %s\n", PROG, c->cls->name, why);
	conn_close(c);
	reconnects++;
}

static void
conn_schedule(struct conn *c, double now)
{
	double gap = 0;

	c->state = C_IDLE;
	/* Idle, it still watches for reading: a close by the server shows at once. */
	conn_watch(c, EPOLLIN);
	if (rate > 0 && c->op != NULL) {
		int total = 0;

		for (int i = 0; i < nclasses; i++)
			total += classes[i].nconns;
		gap = -log(1 - rng_unit(&c->rng)) * (double)total * c->op->nsteps / rate;
	}
	c->next_at = now + gap;
}

static void
conn_send(struct conn *c, double now)
{
	struct step *st = &c->op->steps[c->step];
	int r;

	if (c->req_cap < st->len) {
		free(c->req);
		c->req_cap = st->len;
		c->req = xcalloc(c->req_cap, 1);
	}
	memcpy(c->req, st->req, st->len);
	bench_body_put_seq(&st->body, (unsigned char *)c->req + st->head_len, c->seq);
	c->req_len = st->len;
	c->have = 0;
	c->sent_at = now;
	c->recorded = recording;
	c->state = C_WRITE;
	r = SSL_write(c->ssl, c->req, (int)c->req_len);
	if (r > 0) {
		c->state = C_READ;
		conn_watch(c, EPOLLIN);
	} else if (conn_want(c, r) != 0) {
		conn_fail(c, "could not send a request");
	}
}

static void
conn_start_op(struct conn *c, double now)
{
	double x = rng_unit(&c->rng) * c->cls->weights;
	int i = 0;

	while (i < c->cls->nops - 1 && x >= c->cls->ops[i].weight) {
		x -= c->cls->ops[i].weight;
		i++;
	}
	c->op = &c->cls->ops[i];
	c->step = 0;
	c->seq = next_seq++;
	conn_send(c, now);
}

static void
method_record(struct method *m, int status, double ms, const char *body, size_t blen)
{
	m->status[status > 0 && status < MAX_STATUS ? status : 0]++;
	if (status != 200 && status > 0 && status < MAX_STATUS && !m->shown[status]) {
		m->shown[status] = 1;
		fprintf(stderr, "%s: %s: HTTP %d: %.*s\n", PROG, m->name, status,
		    (int)(blen > 500 ? 500 : blen), body);
	}
	if (m->nlat == m->caplat) {
		m->caplat = m->caplat ? m->caplat * 2 : 4096;
		if ((m->lat_ms = realloc(m->lat_ms, m->caplat * sizeof *m->lat_ms)) == NULL)
			die("out of memory");
	}
	m->lat_ms[m->nlat++] = ms;
}

static void
conn_read(struct conn *c, double now)
{
	for (;;) {
		int r, status = 0, got;
		size_t head = 0, clen = 0;

		if (c->have + 4096 > c->cap) {
			c->cap = c->cap ? c->cap * 2 : 16384;
			if ((c->buf = realloc(c->buf, c->cap + 1)) == NULL)
				die("out of memory");
		}
		r = SSL_read(c->ssl, c->buf + c->have, (int)(c->cap - c->have));
		if (r <= 0) {
			if (conn_want(c, r) != 0)
				conn_fail(c,
				    c->state == C_IDLE ? "closed by the server while idle"
				                       : "closed before the answer");
			return;
		}
		if (c->state != C_READ) {
			conn_fail(c, "bytes from the server with no request in flight");
			return;
		}
		c->have += (size_t)r;
		c->buf[c->have] = '\0';
		got = bench_http_head(c->buf, c->have, &status, &head, &clen);
		if (got < 0) {
			conn_fail(c, "an answer without a status or Content-Length");
			return;
		}
		if (got == 0 || c->have < head + clen)
			continue;
		if (c->have > head + clen) {
			conn_fail(c, "more bytes than the answer");
			return;
		}
		if (c->recorded) {
			method_record(c->op->steps[c->step].m, status, (now - c->sent_at) * 1e3,
			    c->buf + head, clen);
			calls_total++;
		}
		if (status == 200 && ++c->step < c->op->nsteps && !stopping)
			conn_send(c, now);
		else
			conn_schedule(c, now);
		return;
	}
}

static void
conn_handshake(struct conn *c, double now)
{
	int r = SSL_connect(c->ssl);

	if (r == 1) {
		c->op = NULL;
		conn_schedule(c, now);
	} else if (conn_want(c, r) != 0) {
		conn_fail(c, "TLS handshake failed");
	}
}

static void
conn_open(struct conn *c)
{
	if ((c->fd = bench_tcp_connect(port, 1)) < 0) {
		perror(PROG ": connect");
		die("cannot connect (is the descriptor limit high enough?)");
	}
	if ((c->ssl = SSL_new(c->cls->ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		die("cannot make a TLS session");
	SSL_set_tlsext_host_name(c->ssl, "localhost");
	SSL_set_connect_state(c->ssl);
	c->state = C_CONNECT;
	conn_watch(c, EPOLLOUT);
}

static void
conn_event(struct conn *c, uint32_t ev, double now)
{
	switch (c->state) {
	case C_CONNECT: {
		int err = 0;
		socklen_t len = sizeof err;

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			conn_fail(c, "TCP connect failed");
			return;
		}
		c->state = C_HANDSHAKE;
		conn_handshake(c, now);
		break;
	}
	case C_HANDSHAKE:
		conn_handshake(c, now);
		break;
	case C_WRITE: {
		int r = SSL_write(c->ssl, c->req, (int)c->req_len);

		if (r > 0) {
			c->state = C_READ;
			conn_watch(c, EPOLLIN);
		} else if (conn_want(c, r) != 0) {
			conn_fail(c, "could not send a request");
		}
		break;
	}
	case C_READ:
	case C_IDLE:
		conn_read(c, now);
		break;
	case C_NEW:
		break;
	}
	(void)ev;
}

static int
count_state(const struct conn *cs, int n, enum conn_state s)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		k += cs[i].state == s;
	return k;
}

/* Runs the loop until `until` (or, stopping, until nothing is in flight); opens closed connections. */
static void
loop_until(struct conn *cs, int n, double until, int start_ops, double sample_s, int pid)
{
	struct epoll_event evs[256];
	double next_sample = bench_now_s() + sample_s;

	for (;;) {
		double now = bench_now_s(), wake = until;
		int busy = 0, opening = 0;

		if (now >= until)
			return;
		for (int i = 0; i < n; i++) {
			struct conn *c = &cs[i];

			if (c->state == C_CONNECT || c->state == C_HANDSHAKE)
				opening++;
			else if (c->state == C_NEW && !stopping && opening < MAX_HANDSHAKES) {
				conn_open(c);
				opening++;
			} else if (c->state == C_IDLE && start_ops && !stopping) {
				if (c->next_at <= now)
					conn_start_op(c, now);
				else if (c->next_at < wake)
					wake = c->next_at;
			}
			busy += c->state == C_READ || c->state == C_WRITE;
		}
		if (stopping && busy == 0)
			return;
		if (!start_ops && !stopping && opening == 0 && count_state(cs, n, C_NEW) == 0)
			return;
		if (pid > 0 && sample_s > 0 && now >= next_sample) {
			struct bench_proc p;

			if (bench_proc_read(pid, &p) == 0)
				printf("sample t=%.1f fds=%d rss_kb=%ld cpu_s=%.2f calls=%ld "
				       "busy=%d\n",
				    now - rec_start, p.fds, p.rss_kb, p.cpu_s, calls_total, busy);
			fflush(stdout);
			next_sample = now + sample_s;
		}
		int ms = (int)ceil((wake - now) * 1e3);

		if (ms > 100)
			ms = 100;
		if (ms < 0)
			ms = 0;
		int k = epoll_wait(epfd, evs, (int)(sizeof evs / sizeof evs[0]), ms);

		if (k < 0 && errno != EINTR)
			die("epoll_wait");
		now = bench_now_s();
		for (int i = 0; i < k; i++)
			conn_event(evs[i].data.ptr, evs[i].events, now);
	}
}

static double
cpu_of(const int *pids, int npids)
{
	double s = 0;

	for (int i = 0; i < npids; i++) {
		struct bench_proc p;

		if (bench_proc_read(pids[i], &p) == 0)
			s += p.cpu_s;
	}
	return s;
}

static double
self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
	const char *plan = NULL;
	int nconn = 0, opt, pid = 0, pids[MAX_PIDS], npids = 0;
	double seconds = 0, warmup = 0, sample_s = 10;
	uint64_t seed = 1;
	struct bench_proc p0 = {0}, p1 = {0};

	while ((opt = getopt(argc, argv, "p:a:P:n:t:w:r:S:G:i:m:s:x:")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'a':
			ca_file = optarg;
			break;
		case 'P':
			plan = optarg;
			break;
		case 'n':
			nconn = atoi(optarg);
			break;
		case 't':
			seconds = atof(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 'r':
			rate = atof(optarg);
			break;
		case 'S':
			pid = atoi(optarg);
			break;
		case 'G':
			for (char *save = NULL, *t = strtok_r(optarg, ",", &save);
			     t != NULL && npids < MAX_PIDS; t = strtok_r(NULL, ",", &save))
				pids[npids++] = atoi(t);
			break;
		case 'i':
			sample_s = atof(optarg);
			break;
		case 'm':
			marker = optarg;
			break;
		case 's':
			next_seq = atol(optarg);
			break;
		case 'x':
			seed = strtoull(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: see the top of tests/bench/lib/twirp_mix.c\n");
			return 2;
		}
	}
	if (!port || !ca_file || !plan || nconn < 1 || seconds <= 0 || warmup < 0 || rate < 0)
		die("missing or bad arguments (see the usage at the top of twirp_mix.c)");
	signal(SIGPIPE, SIG_IGN);
	if (bench_raise_nofile(nconn + 64) < nconn + 64)
		die("the descriptor limit (RLIMIT_NOFILE) is below CONNS + 64");
	plan_load(plan);
	if ((epfd = epoll_create1(0)) < 0)
		die("epoll_create1");

	/* Connections to classes in proportion to their shares, the remainder to the first. */
	struct conn *cs = xcalloc((size_t)nconn, sizeof *cs);
	double shares = 0;
	int given = 0;

	for (int i = 0; i < nclasses; i++)
		shares += classes[i].share;
	for (int i = 0; i < nclasses; i++) {
		classes[i].nconns = (int)((double)nconn * classes[i].share / shares);
		given += classes[i].nconns;
	}
	classes[0].nconns += nconn - given;
	for (int i = 0, k = 0; i < nclasses; i++)
		for (int j = 0; j < classes[i].nconns; j++, k++) {
			cs[k].fd = -1;
			cs[k].cls = &classes[i];
			cs[k].rng = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)k * 7919 + 1;
		}

	double t0 = bench_now_s();

	loop_until(cs, nconn, t0 + 120, 0, 0, 0);
	if (count_state(cs, nconn, C_IDLE) != nconn)
		die("not every connection could be opened within 120 s");
	double connect_s = bench_now_s() - t0;
	long reconnects_setup = reconnects;

	reconnects = 0;
	if (rate > 0) {
		/* Spread the first operations over one mean wait. */
		for (int i = 0; i < nconn; i++)
			cs[i].next_at = bench_now_s() + rng_unit(&cs[i].rng) * (double)nconn / rate;
	}
	loop_until(cs, nconn, bench_now_s() + warmup, 1, 0, 0);

	if (pid > 0 && bench_proc_read(pid, &p0) != 0)
		die("cannot read allotd's figures in /proc");
	double pg0 = cpu_of(pids, npids), c0 = self_cpu();

	recording = 1;
	rec_start = bench_now_s();
	loop_until(cs, nconn, rec_start + seconds, 1, sample_s, pid);
	recording = 0;
	rec_end = bench_now_s();
	stopping = 1;
	loop_until(cs, nconn, rec_end + 10, 1, 0, 0);
	long in_flight = 0;

	for (int i = 0; i < nconn; i++)
		in_flight += cs[i].state == C_READ || cs[i].state == C_WRITE;
	int open_end = count_state(cs, nconn, C_IDLE);

	if (pid > 0 && bench_proc_read(pid, &p1) != 0)
		die("cannot read allotd's figures in /proc");
	double pg1 = cpu_of(pids, npids), c1 = self_cpu();

	for (int i = 0; i < nconn; i++)
		conn_close(&cs[i]);

	double elapsed = rec_end - rec_start;
	size_t n = 0;
	long non200 = 0;

	for (int i = 0; i < nmethods; i++)
		n += methods[i]->nlat;
	double *all = xcalloc(n, sizeof *all);
	size_t k = 0;

	printf("conns=%d\n", nconn);
	printf("connect_s=%.3f\n", connect_s);
	printf("reconnects_setup=%ld\n", reconnects_setup);
	printf("open_at_end=%d\n", open_end);
	printf("elapsed_s=%.3f\n", elapsed);
	for (int i = 0; i < nmethods; i++) {
		struct method *m = methods[i];
		long bad = 0;

		qsort(m->lat_ms, m->nlat, sizeof *m->lat_ms, bench_cmp_double);
		memcpy(all + k, m->lat_ms, m->nlat * sizeof *all);
		k += m->nlat;
		for (int s = 0; s < MAX_STATUS; s++)
			if (s != 200)
				bad += m->status[s];
		non200 += bad;
		printf("method=%s calls=%zu non200=%ld p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
		    m->name, m->nlat, bad, bench_pct(m->lat_ms, m->nlat, 0.5),
		    bench_pct(m->lat_ms, m->nlat, 0.99), m->nlat ? m->lat_ms[m->nlat - 1] : 0);
		for (int s = 0; s < MAX_STATUS; s++)
			if (m->status[s] && s != 200)
				printf("status_%s_%d=%ld\n", m->name, s, m->status[s]);
	}
	qsort(all, n, sizeof *all, bench_cmp_double);
	printf("calls=%zu\n", n);
	printf("calls_per_s=%.1f\n", elapsed > 0 ? (double)n / elapsed : 0);
	printf("non200=%ld\n", non200);
	printf("failures=%ld\n", failures);
	printf("reconnects=%ld\n", reconnects);
	printf("unanswered_at_end=%ld\n", in_flight);
	printf("p50_ms=%.3f\n", bench_pct(all, n, 0.5));
	printf("p99_ms=%.3f\n", bench_pct(all, n, 0.99));
	printf("max_ms=%.3f\n", n ? all[n - 1] : 0);
	if (pid > 0) {
		printf("allotd_fds_start=%d\nallotd_fds_end=%d\n", p0.fds, p1.fds);
		printf("allotd_rss_kb_start=%ld\nallotd_rss_kb_end=%ld\n", p0.rss_kb, p1.rss_kb);
		printf("allotd_cpu_s=%.2f\n", p1.cpu_s - p0.cpu_s);
	}
	if (npids > 0)
		printf("pg_cpu_s=%.2f\n", pg1 - pg0);
	printf("client_cpu_s=%.2f\n", c1 - c0);
	return failures || non200 || in_flight ? 1 : 0;
}
