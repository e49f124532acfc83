/*
 * Unit tests for lib/arena.c: alignment, the caller's first block, growth past it,
 * large requests, calloc's overflow check, and protobuf-c's unpack and pbjson's
 * decoding into an arena, successful and failed, freed by arena_cleanup alone
 * (LeakSanitizer, in the sanitized build, says nothing was left).
 */
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "allot/v1/fairshare.pb-c.h"
#include "arena.h"
#include "pbjson.h"

static void
test_aligned_and_distinct(void **state)
{
	struct arena a;
	char *p[100];

	(void)state;
	arena_init(&a, NULL, 0);
	for (size_t i = 0; i < 100; i++) {
		assert_non_null(p[i] = arena_alloc(&a, i));
		assert_int_equal((uintptr_t)p[i] % alignof(max_align_t), 0);
		memset(p[i], (int)i, i);
	}
	for (size_t i = 0; i < 100; i++)
		for (size_t k = 0; k < i; k++)
			assert_int_equal((unsigned char)p[i][k], i);
	arena_cleanup(&a);
}

static void
test_first_block_then_growth(void **state)
{
	alignas(max_align_t) char first[256];
	struct arena a;
	char *p, *q, *big;

	(void)state;
	/* A misaligned start is aligned; what is left of the block is used first. */
	arena_init(&a, first + 1, sizeof(first) - 1);
	assert_non_null(p = arena_alloc(&a, 64));
	/* Past the caller's block: a block of the arena's own. */
	assert_non_null(q = arena_alloc(&a, 1000));
#ifndef __SANITIZE_ADDRESS__ /* there, every allocation is a malloc of its own */
	assert_true(p >= first && p < first + sizeof(first));
	assert_false(q >= first && q < first + sizeof(first));
#endif
	/* Larger than any block yet. */
	assert_non_null(big = arena_alloc(&a, 5u << 20));
	memset(big, 1, 5u << 20);
	memset(q, 2, 1000);
	assert_int_equal(big[0], 1);
	assert_int_equal(q[999], 2);
	arena_cleanup(&a);
	/* Usable again after arena_init, and cleanup of an empty arena does nothing. */
	arena_init(&a, NULL, 0);
	arena_cleanup(&a);
}

static void
test_calloc_strdup(void **state)
{
	struct arena a;
	unsigned char *z;
	char *s;

	(void)state;
	arena_init(&a, NULL, 0);
	assert_non_null(z = arena_calloc(&a, 100, 3));
	for (size_t i = 0; i < 300; i++)
		assert_int_equal(z[i], 0);
	assert_null(arena_calloc(&a, SIZE_MAX / 2, 4));
	assert_null(arena_alloc(&a, SIZE_MAX - 3));
	assert_non_null(s = arena_strdup(&a, "gpu hours"));
	assert_string_equal(s, "gpu hours");
	arena_cleanup(&a);
}

/* A GetPrioritiesRequest of n pairs, packed; the caller frees the bytes. */
static uint8_t *
packed_request(size_t n, size_t *len)
{
	Allot__V1__GetPrioritiesRequest req = ALLOT__V1__GET_PRIORITIES_REQUEST__INIT;
	Allot__V1__PriorityPair *pairs = calloc(n, sizeof(*pairs));
	Allot__V1__PriorityPair **ptrs = calloc(n, sizeof(*ptrs));
	char names[3][32] = {"proj7", "u3", "leonardo"};
	uint8_t *buf;

	assert_non_null(pairs);
	assert_non_null(ptrs);
	for (size_t i = 0; i < n; i++) {
		allot__v1__priority_pair__init(&pairs[i]);
		pairs[i].account = names[0];
		pairs[i].user = names[1];
		ptrs[i] = &pairs[i];
	}
	req.site = names[2];
	req.n_pairs = n;
	req.pairs = ptrs;
	*len = allot__v1__get_priorities_request__get_packed_size(&req);
	assert_non_null(buf = malloc(*len));
	allot__v1__get_priorities_request__pack(&req, buf);
	free(pairs);
	free(ptrs);
	return buf;
}

static void
test_protobuf_unpack(void **state)
{
	struct arena a;
	alignas(max_align_t) char first[1024];
	Allot__V1__GetPrioritiesRequest *req;
	size_t len;
	uint8_t *buf = packed_request(1000, &len);

	(void)state;
	arena_init(&a, first, sizeof(first));
	req = allot__v1__get_priorities_request__unpack(arena_protobuf(&a), len, buf);
	assert_non_null(req);
	assert_int_equal(req->n_pairs, 1000);
	assert_string_equal(req->site, "leonardo");
	assert_string_equal(req->pairs[999]->account, "proj7");
	assert_string_equal(req->pairs[999]->user, "u3");
	/* Truncated: unpack fails and gives its pieces back to the arena. */
	assert_null(allot__v1__get_priorities_request__unpack(arena_protobuf(&a), len - 1, buf));
	arena_cleanup(&a);
	free(buf);
}

static void
test_pbjson_decode_in(void **state)
{
	static const char good[] = "{\"site\":\"leonardo\",\"pairs\":[{\"account\":\"p\","
	                           "\"user\":\"u\"},{\"account\":\"q\",\"user\":\"v\"}]}";
	static const char bad[] = "{\"site\":\"leonardo\",\"pairs\":[{\"account\":\"p\","
	                          "\"user\":\"u\"},{\"account\":7}]}";
	struct arena a;
	ProtobufCMessage *m;
	const Allot__V1__GetPrioritiesRequest *req;
	char err[200];

	(void)state;
	arena_init(&a, NULL, 0);
	m = pbjson_decode_in(&allot__v1__get_priorities_request__descriptor, good, sizeof(good) - 1,
	    arena_protobuf(&a), err, sizeof(err));
	assert_non_null(m);
	req = (const void *)m;
	assert_int_equal(req->n_pairs, 2);
	assert_string_equal(req->pairs[1]->user, "v");
	/* The same reason as without an arena; the partial message goes with the arena. */
	m = pbjson_decode_in(&allot__v1__get_priorities_request__descriptor, bad, sizeof(bad) - 1,
	    arena_protobuf(&a), err, sizeof(err));
	assert_null(m);
	assert_string_equal(err, "pairs[1].account: expected a string");
	arena_cleanup(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_aligned_and_distinct),
	    cmocka_unit_test(test_first_block_then_growth),
	    cmocka_unit_test(test_calloc_strdup),
	    cmocka_unit_test(test_protobuf_unpack),
	    cmocka_unit_test(test_pbjson_decode_in),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
