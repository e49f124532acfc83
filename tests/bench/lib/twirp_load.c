/*
 * twirp_load: a small load client for the benchmarks in tests/bench/.
 *
 * Sends one protobuf request body, again and again, to one Twirp method of
 * allotd over C keep-alive HTTPS connections (one thread each, TLS with a
 * client certificate, TCP_NODELAY), for a number of seconds or of calls, and
 * prints what came back: the HTTP statuses, the rate, latency percentiles and
 * the CPU this client used (so a run can tell whether the client was the
 * bottleneck). Every occurrence of a marker in the body ("@@@@@@@@@@" unless
 * -m says otherwise) is replaced in each call by that call's sequence number,
 * zero-padded to the marker's width, so that each call can carry new ids
 * (a lien_id, a job_id) without re-encoding: the width is fixed, so are the
 * protobuf lengths.
 *
 * TLS handshakes happen before the clock starts. Leaves to others: building
 * the body (the .proto files and tests/integration/protowire.py do that),
 * decoding answers, HTTP/1.1 beyond Content-Length replies.
 *
 * Usage: twirp_load -p PORT -a CA -c CERT -k KEY -u PATH -b BODYFILE
 *            [-n CONNS] [-t SECONDS] [-N CALLS] [-w WARMUP] [-m MARKER] [-s FIRSTSEQ]
 * Output: key=value lines on stdout; the first answer of each unexpected
 * status on stderr.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench.h"

#define MAX_STATUS 600

static int port;
static const char *ca_file, *cert_file, *key_file, *path;
static const char *marker = "@@@@@@@@@@";
static struct bench_body body;
static double seconds;
static long max_calls = -1;
static long warmup;
static long first_seq;

static SSL_CTX *ctx;
static atomic_long next_seq;
static atomic_int stop_flag;
static atomic_long status_count[MAX_STATUS];
static atomic_int status_shown[MAX_STATUS];
static atomic_long failures;
static atomic_long claimed;
static pthread_barrier_t start_barrier;
static double t_start;

struct worker {
	pthread_t thread;
	int fd;
	SSL *ssl;
	double *lat_ms;
	size_t nlat, caplat;
	double last_answer;
	char *buf;
	size_t cap;
};

static void
die(const char *what)
{
	bench_die("twirp_load", what);
}

static int
conn_open(struct worker *w)
{
	if ((w->fd = bench_tcp_connect(port, 0)) < 0) {
		perror("twirp_load: connect");
		return -1;
	}
	w->ssl = SSL_new(ctx);
	SSL_set_fd(w->ssl, w->fd);
	SSL_set_tlsext_host_name(w->ssl, "localhost");
	if (SSL_connect(w->ssl) != 1) {
		fprintf(stderr, "twirp_load: TLS handshake failed\n");
		ERR_print_errors_fp(stderr);
		return -1;
	}
	return 0;
}

static int
write_all(SSL *ssl, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		int r = SSL_write(ssl, c, n > 1 << 30 ? 1 << 30 : (int)n);

		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Reads one HTTP/1.1 answer; returns its status, or -1. *bodyp points into w->buf. */
static int
read_answer(struct worker *w, const char **bodyp, size_t *blen)
{
	size_t have = 0, head = 0, clen = 0;
	int status;

	for (;;) {
		if (have + 4096 > w->cap) {
			w->cap = w->cap ? w->cap * 2 : 65536;
			w->buf = realloc(w->buf, w->cap + 1);
			if (w->buf == NULL)
				die("out of memory");
		}
		int r = SSL_read(w->ssl, w->buf + have, (int)(w->cap - have));

		if (r <= 0)
			return -1;
		have += (size_t)r;
		w->buf[have] = '\0';
		if (head == 0) {
			int got = bench_http_head(w->buf, have, &status, &head, &clen);

			if (got == 0)
				continue;
			if (got < 0) {
				fprintf(stderr,
				    "twirp_load: answer without a status or Content-Length\n");
				return -1;
			}
		}
		if (have >= head + clen)
			break;
	}
	*bodyp = w->buf + head;
	*blen = clen;
	return status;
}

/*
 * One call; returns its HTTP status or -1. The request (head and body) goes out in
 * one write, one TLS record, as a client that cares about latency sends it: two
 * records would make allotd's loop wake twice for one call.
 */
static int
call(struct worker *w, const char *req, size_t len)
{
	const char *ans;
	size_t alen;
	int st;

	if (write_all(w->ssl, req, len) != 0)
		return -1;
	st = read_answer(w, &ans, &alen);
	if (st >= 0 && st < MAX_STATUS && st != 200 && st != 429 &&
	    atomic_exchange(&status_shown[st], 1) == 0)
		fprintf(
		    stderr, "twirp_load: HTTP %d: %.*s\n", st, (int)(alen > 500 ? 500 : alen), ans);
	return st;
}

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	char hdr[512];
	size_t hlen;
	char *req;
	unsigned char *b;

	hlen = (size_t)snprintf(hdr, sizeof hdr,
	    "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/protobuf\r\n"
	    "Content-Length: %zu\r\n\r\n",
	    path, body.len);
	/* The head and the body in one buffer; the sequence marks are rewritten in place. */
	if ((req = malloc(hlen + body.len)) == NULL)
		die("out of memory");
	memcpy(req, hdr, hlen);
	b = (unsigned char *)req + hlen;
	memcpy(b, body.data, body.len);
	for (long i = 0; i < warmup; i++) {
		if (body.nmarks)
			bench_body_put_seq(&body, b, atomic_fetch_add(&next_seq, 1));
		if (call(w, req, hlen + body.len) < 0) {
			atomic_fetch_add(&failures, 1);
			break;
		}
	}
	pthread_barrier_wait(&start_barrier);
	while (!atomic_load(&stop_flag)) {
		if (max_calls >= 0 && atomic_fetch_add(&claimed, 1) >= max_calls)
			break;
		long seq = atomic_fetch_add(&next_seq, 1);

		if (body.nmarks)
			bench_body_put_seq(&body, b, seq);
		double t0 = bench_now_s();
		int st = call(w, req, hlen + body.len);
		double t1 = bench_now_s();

		if (st < 0) {
			atomic_fetch_add(&failures, 1);
			fprintf(stderr, "twirp_load: connection failed after %zu calls\n", w->nlat);
			break;
		}
		atomic_fetch_add(&status_count[st < MAX_STATUS ? st : MAX_STATUS - 1], 1);
		if (w->nlat == w->caplat) {
			w->caplat = w->caplat ? w->caplat * 2 : 4096;
			w->lat_ms = realloc(w->lat_ms, w->caplat * sizeof *w->lat_ms);
			if (w->lat_ms == NULL)
				die("out of memory");
		}
		w->lat_ms[w->nlat++] = (t1 - t0) * 1e3;
		w->last_answer = t1;
		if (seconds > 0 && t1 - t_start >= seconds)
			break;
	}
	free(req);
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *body_file = NULL;
	int nconn = 1, opt;

	while ((opt = getopt(argc, argv, "p:a:c:k:u:b:n:t:N:w:m:s:")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'a':
			ca_file = optarg;
			break;
		case 'c':
			cert_file = optarg;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 'u':
			path = optarg;
			break;
		case 'b':
			body_file = optarg;
			break;
		case 'n':
			nconn = atoi(optarg);
			break;
		case 't':
			seconds = atof(optarg);
			break;
		case 'N':
			max_calls = atol(optarg);
			break;
		case 'w':
			warmup = atol(optarg);
			break;
		case 'm':
			marker = optarg;
			break;
		case 's':
			first_seq = atol(optarg);
			break;
		default:
			fprintf(stderr,
			    "usage: twirp_load -p PORT -a CA -c CERT -k KEY -u PATH "
			    "-b BODYFILE [-n CONNS] [-t SECONDS] [-N CALLS] [-w WARMUP] "
			    "[-m MARKER] [-s FIRSTSEQ]\n");
			return 2;
		}
	}
	if (!port || !ca_file || !cert_file || !key_file || !path || !body_file || nconn < 1 ||
	    (seconds <= 0 && max_calls < 0) || strlen(marker) < 1 || strlen(marker) > 18)
		die("missing or bad arguments (see the usage at the top of twirp_load.c)");

	bench_body_load("twirp_load", &body, body_file, marker);
	atomic_store(&next_seq, first_seq);
	ctx = bench_tls_ctx_new("twirp_load", ca_file, cert_file, key_file);

	struct worker *ws = calloc((size_t)nconn, sizeof *ws);

	for (int i = 0; i < nconn; i++)
		if (conn_open(&ws[i]) != 0)
			return 1;
	pthread_barrier_init(&start_barrier, NULL, (unsigned)nconn + 1);
	for (int i = 0; i < nconn; i++)
		pthread_create(&ws[i].thread, NULL, worker_run, &ws[i]);
	struct rusage ru0, ru1;

	pthread_barrier_wait(&start_barrier);
	getrusage(RUSAGE_SELF, &ru0);
	t_start = bench_now_s();
	for (int i = 0; i < nconn; i++)
		pthread_join(ws[i].thread, NULL);
	getrusage(RUSAGE_SELF, &ru1);

	double t_end = t_start;
	size_t n = 0;

	for (int i = 0; i < nconn; i++) {
		n += ws[i].nlat;
		if (ws[i].last_answer > t_end)
			t_end = ws[i].last_answer;
	}
	double *all = malloc((n ? n : 1) * sizeof *all), sum = 0;
	size_t k = 0;

	for (int i = 0; i < nconn; i++)
		for (size_t j = 0; j < ws[i].nlat; j++) {
			all[k++] = ws[i].lat_ms[j];
			sum += ws[i].lat_ms[j];
		}
	qsort(all, n, sizeof *all, bench_cmp_double);
	double elapsed = t_end - t_start;
	double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
	    (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
	    (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
	    (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;

	printf("calls=%zu\n", n);
	printf("conns=%d\n", nconn);
	printf("elapsed_s=%.3f\n", elapsed);
	printf("calls_per_s=%.1f\n", elapsed > 0 ? (double)n / elapsed : 0);
	for (int s = 1; s < MAX_STATUS; s++)
		if (atomic_load(&status_count[s]))
			printf("status_%d=%ld\n", s, atomic_load(&status_count[s]));
	printf("failures=%ld\n", atomic_load(&failures));
	printf("mean_ms=%.3f\n", n ? sum / (double)n : 0);
	printf("p50_ms=%.3f\n", bench_pct(all, n, 0.50));
	printf("p99_ms=%.3f\n", bench_pct(all, n, 0.99));
	printf("max_ms=%.3f\n", n ? all[n - 1] : 0);
	printf("client_cpu_s=%.3f\n", cpu);
	printf("client_cpu_share=%.3f\n", elapsed > 0 ? cpu / elapsed : 0);
	printf("next_seq=%ld\n", atomic_load(&next_seq));
	return atomic_load(&failures) ? 1 : 0;
}
