/*
 * Fuzz driver for lib/hostlist.c: any bytes as a hostlist, expanded with a bound.
 * Either it is refused with a message and nothing written, or it names between 1
 * and the bound of nodes, each a valid name (1 to HOSTLIST_MAX_NAME characters of
 * the allowed set), and the names written are as many as it says; and the
 * expanded list, itself a hostlist, expands to the same names again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostlist.h"

#define FUZZ_MAX_HOSTS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_names(const char *s, long n)
{
	long seen = 0;
	const char *p = s;

	for (;;) {
		size_t len = strcspn(p, ",");

		if (len == 0 || len > HOSTLIST_MAX_NAME)
			abort();
		for (size_t i = 0; i < len; i++)
			if (strchr(
			        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
			        p[i]) == NULL)
				abort();
		seen++;
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	if (seen != n)
		abort();
}

static void
check_compress(const char *joined, long n)
{
	char *copy = strdup(joined), *save = NULL, err[256];
	const char **names = calloc((size_t)n, sizeof(*names));
	struct strbuf c, back;
	long k = 0;

	if (copy == NULL || names == NULL)
		abort();
	for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
		names[k++] = t;
	strbuf_init(&c);
	strbuf_init(&back);
	if (k != n || hostlist_compress(names, (size_t)n, &c) != 0 ||
	    hostlist_expand(c.data, c.len, FUZZ_MAX_HOSTS, ',', &back, err, sizeof(err)) != n ||
	    strcmp(back.data, joined) != 0)
		abort();
	strbuf_cleanup(&c);
	strbuf_cleanup(&back);
	free(names);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strbuf a, b;
	char err[256];
	long n, m;

	strbuf_init(&a);
	strbuf_init(&b);
	n = hostlist_expand((const char *)data, size, FUZZ_MAX_HOSTS, ',', &a, err, sizeof(err));
	if (n < 0) {
		if (a.data != NULL || err[0] == '\0')
			abort();
		goto out;
	}
	if (n == 0 || n > FUZZ_MAX_HOSTS || a.data == NULL)
		abort();
	check_names(a.data, n);
	m = hostlist_expand(a.data, a.len, FUZZ_MAX_HOSTS, ',', &b, err, sizeof(err));
	/* A name "01" expands to itself only outside brackets: always, here. */
	if (m != n || strcmp(a.data, b.data) != 0)
		abort();
	check_compress(a.data, n);
out:
	strbuf_cleanup(&a);
	strbuf_cleanup(&b);
	return 0;
}
