/*
 * bench: the pieces the C load clients of tests/bench/ share (see bench.h).
 * Leaves the connections' life, the calls and the reports to each client.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bench.h"

void
bench_die(const char *prog, const char *what)
{
	fprintf(stderr, "%s: %s\n", prog, what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

double
bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

SSL_CTX *
bench_tls_ctx_new(
    const char *prog, const char *ca_file, const char *cert_file, const char *key_file)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)
		bench_die(prog, "cannot set up TLS");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

int
bench_tcp_connect(int port, int nonblocking)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd, saved;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0)) < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 &&
	    !(nonblocking && errno == EINPROGRESS)) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

void
bench_body_load(const char *prog, struct bench_body *b, const char *path, const char *marker)
{
	FILE *f;
	long len;

	memset(b, 0, sizeof *b);
	b->width = strlen(marker);
	if (b->width < 1 || b->width > 18)
		bench_die(prog, "the marker must be 1 to 18 characters");
	if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		bench_die(prog, "cannot open a body file");
	b->len = (size_t)len;
	if ((b->data = malloc(b->len ? b->len : 1)) == NULL ||
	    (b->marks = calloc(b->len / b->width + 1, sizeof *b->marks)) == NULL)
		bench_die(prog, "out of memory");
	if (b->len && fread(b->data, 1, b->len, f) != b->len)
		bench_die(prog, "cannot read a body file");
	fclose(f);
	for (size_t i = 0; i + b->width <= b->len;) {
		if (memcmp(b->data + i, marker, b->width) == 0) {
			b->marks[b->nmarks++] = i;
			i += b->width;
		} else {
			i++;
		}
	}
}

void
bench_body_cleanup(struct bench_body *b)
{
	free(b->data);
	free(b->marks);
	memset(b, 0, sizeof *b);
}

void
bench_body_put_seq(const struct bench_body *b, unsigned char *dst, long seq)
{
	char num[32];
	int n = snprintf(num, sizeof num, "%0*ld", (int)b->width, seq);

	for (size_t i = 0; i < b->nmarks; i++)
		memcpy(dst + b->marks[i], num + n - (int)b->width, b->width);
}

int
bench_http_head(const char *buf, size_t have, int *status, size_t *head, size_t *clen)
{
	const char *e, *cl;

	(void)have;
	if ((e = strstr(buf, "\r\n\r\n")) == NULL)
		return 0;
	cl = strcasestr(buf, "\r\ncontent-length:");
	if (cl == NULL || cl > e || sscanf(buf, "HTTP/1.%*d %d", status) != 1)
		return -1;
	*head = (size_t)(e - buf) + 4;
	*clen = strtoul(cl + 17, NULL, 10);
	return 1;
}

int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
bench_pct(const double *sorted, size_t n, double p)
{
	if (n == 0)
		return 0;
	return sorted[(size_t)(p * (double)(n - 1) + 0.5)];
}

long
bench_raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max > want
		    ? (rlim_t)want
		    : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return -1;
	}
	return rl.rlim_cur == RLIM_INFINITY ? want : (long)rl.rlim_cur;
}

int
bench_proc_read(int pid, struct bench_proc *p)
{
	char path[64], line[512];
	FILE *f;
	DIR *d;
	struct dirent *de;
	unsigned long ut = 0, st = 0;

	memset(p, 0, sizeof *p);
	snprintf(path, sizeof path, "/proc/%d/fd", pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			p->fds++;
	closedir(d);
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			p->rss_kb = strtol(line + 6, NULL, 10);
	fclose(f);
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fgets(line, sizeof line, f) != NULL) {
		/* The name may hold spaces and parentheses: the fields follow the last ')'. */
		char *q = strrchr(line, ')');

		if (q == NULL ||
		    sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
		        &st) != 2) {
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	p->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}
