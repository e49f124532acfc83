/*
 * bench: what the C load clients of tests/bench/ share (twirp_load.c, one
 * blocking connection per thread, and twirp_mix.c, many non-blocking connections
 * on one epoll loop): the TLS client context with a client certificate, a
 * loopback TCP socket, request bodies with sequence markers, reading an HTTP/1.1
 * answer's head, latency percentiles, the file descriptor limit, and a
 * process's figures from /proc. Errors end the program (bench_die): these are
 * benchmarks, not services.
 */
#ifndef ALLOT_BENCH_H
#define ALLOT_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

/* A request body read from a file, with the offsets of each occurrence of a marker. */
struct bench_body {
	unsigned char *data;
	size_t len;
	size_t *marks;
	size_t nmarks;
	size_t width; /* the marker's length */
};

/* A process's figures from /proc: open descriptors, resident memory, CPU used. */
struct bench_proc {
	int fds;
	long rss_kb;
	double cpu_s;
};

/* Prints "PROG: what" and OpenSSL's error queue on stderr, then exits 1. */
void bench_die(const char *prog, const char *what) __attribute__((noreturn));

/* Seconds on the monotonic clock. */
double bench_now_s(void);

/*
 * Returns a new client context that verifies the server against ca_file and
 * presents cert_file/key_file, or dies. The caller frees it with SSL_CTX_free.
 */
SSL_CTX *bench_tls_ctx_new(
    const char *prog, const char *ca_file, const char *cert_file, const char *key_file);

/*
 * Returns a TCP socket to 127.0.0.1:port with TCP_NODELAY, connected (blocking) or
 * with its connect started (nonblocking: EINPROGRESS is success), or -1 with errno.
 */
int bench_tcp_connect(int port, int nonblocking);

/*
 * Reads path into b and finds every occurrence of marker in it, or dies. The
 * marker is 1 to 18 characters. bench_body_cleanup frees what b holds.
 */
void bench_body_load(const char *prog, struct bench_body *b, const char *path, const char *marker);
void bench_body_cleanup(struct bench_body *b);

/*
 * Writes seq, zero-padded to the marker's width (its last digits if longer), at
 * every marker offset of b into dst, a copy of b's bytes (the body inside a
 * request buffer, so each call carries new ids without re-encoding).
 */
void bench_body_put_seq(const struct bench_body *b, unsigned char *dst, long seq);

/*
 * Looks at the first have bytes of an HTTP/1.1 answer (NUL-terminated at have):
 * returns 1 with *status, *head (the head's length) and *clen (Content-Length) set
 * once the head is complete, 0 while it is not, -1 for an answer it cannot read
 * (no status line, no Content-Length).
 */
int bench_http_head(const char *buf, size_t have, int *status, size_t *head, size_t *clen);

/* qsort comparator for doubles, and the p-th quantile (0..1) of n sorted values. */
int bench_cmp_double(const void *a, const void *b);
double bench_pct(const double *sorted, size_t n, double p);

/* Raises this process's soft RLIMIT_NOFILE to at least want (to the hard limit at most); returns the new soft limit. */
long bench_raise_nofile(long want);

/* Reads pid's figures; returns 0, or -1 when the process is gone. */
int bench_proc_read(int pid, struct bench_proc *p);

#endif
