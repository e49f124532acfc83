/*
 * Unit tests for clients/lib/allot_retry.c: the options' documented defaults,
 * their checks, and the backoff schedule (doubling, the cap, equal jitter),
 * plus the public names of the codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "allot_internal.h"

static void
test_defaults(void **state)
{
	struct allot_options o;

	(void)state;
	memset(&o, 0x5a, sizeof(o));
	allot_options_init(&o);
	assert_null(o.server_url);
	assert_null(o.cert_file);
	assert_null(o.key_file);
	assert_null(o.ca_file);
	assert_int_equal(o.wire, ALLOT_WIRE_PROTOBUF);
	assert_int_equal(o.connect_timeout_ms, 10000);
	assert_int_equal(o.timeout_ms, 30000);
	assert_int_equal(o.max_attempts, 1);
	assert_int_equal(o.backoff_initial_ms, 100);
	assert_int_equal(o.backoff_max_ms, 5000);
	assert_int_equal(o.deadline_ms, 60000);
}

static void
test_check(void **state)
{
	struct allot_options o;
	struct allot_error e;

	(void)state;
	allot_options_init(&o);
	o.server_url = "https://127.0.0.1:8443";
	assert_int_equal(allot_options_check(&o, &e), 0);
	o.server_url = "HTTP://localhost";
	assert_int_equal(allot_options_check(&o, &e), 0);
	o.max_attempts = 0; /* one attempt */
	assert_int_equal(allot_options_check(&o, &e), 0);

	long *fields[] = {&o.connect_timeout_ms, &o.timeout_ms, &o.backoff_initial_ms,
	    &o.backoff_max_ms, &o.deadline_ms};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		long keep = *fields[i];

		*fields[i] = -1;
		assert_int_equal(allot_options_check(&o, &e), -1);
		assert_int_equal(e.code, ALLOT_INVALID_ARGUMENT);
		assert_string_equal(e.code_name, "invalid_argument");
		*fields[i] = keep;
	}
	o.max_attempts = -2;
	assert_int_equal(allot_options_check(&o, &e), -1);
	o.max_attempts = 3;
	o.wire = (enum allot_wire)7;
	assert_int_equal(allot_options_check(&o, &e), -1);
	assert_string_equal(e.msg, "invalid wire format 7");
	o.wire = ALLOT_WIRE_JSON;
	o.server_url = "";
	assert_int_equal(allot_options_check(&o, &e), -1);
	assert_string_equal(e.msg, "no server URL given");
}

/* The schedule with the smallest and the largest random number. */
static void
test_backoff_schedule(void **state)
{
	struct allot_options o;
	/* Ceilings 100, 200, 400, ..., capped at 5000 from the 7th retry on. */
	static const long ceiling[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};

	(void)state;
	allot_options_init(&o);
	for (int n = 1; n <= 9; n++) {
		long c = ceiling[n - 1];

		assert_int_equal(allot_backoff_ms(&o, n, 0), c / 2);
		assert_int_equal(allot_backoff_ms(&o, n, (uint32_t)(c - c / 2)), c);
		assert_int_equal(allot_backoff_ms(&o, n, (uint32_t)(c - c / 2 + 1)), c / 2);
	}
	/* Far out: no overflow, still the cap. */
	assert_int_equal(allot_backoff_ms(&o, 1000000, 0), 2500);
	assert_int_equal(allot_backoff_ms(&o, 1000000, 2500), 5000);
}

static void
test_backoff_spread(void **state)
{
	struct allot_options o;
	uint32_t x = 12345;
	long lo = 1 << 30, hi = 0;

	(void)state;
	allot_options_init(&o);
	for (int i = 0; i < 10000; i++) {
		long w;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		w = allot_backoff_ms(&o, 3, x);
		assert_in_range(w, 200, 400);
		lo = w < lo ? w : lo;
		hi = w > hi ? w : hi;
	}
	/* Equal jitter spreads over the whole of [c/2, c]. */
	assert_true(lo <= 205);
	assert_true(hi >= 395);
}

static void
test_backoff_edges(void **state)
{
	struct allot_options o;

	(void)state;
	allot_options_init(&o);
	/* A cap below the start counts as the start. */
	o.backoff_initial_ms = 300;
	o.backoff_max_ms = 10;
	assert_int_equal(allot_backoff_ms(&o, 1, 0), 150);
	assert_int_equal(allot_backoff_ms(&o, 5, 150), 300);
	/* No wait at all. */
	o.backoff_initial_ms = 0;
	o.backoff_max_ms = 0;
	assert_int_equal(allot_backoff_ms(&o, 4, 77), 0);
	/* A huge cap does not overflow. */
	o.backoff_initial_ms = 1;
	o.backoff_max_ms = 0x7fffffffffffffffL;
	assert_true(allot_backoff_ms(&o, 70, 0xffffffffu) > 0);
}

static void
test_code_names(void **state)
{
	(void)state;
	assert_string_equal(allot_code_name(ALLOT_OK), "ok");
	assert_string_equal(allot_code_name(ALLOT_DEADLINE_EXCEEDED), "deadline_exceeded");
	assert_string_equal(allot_code_name(ALLOT_UNAVAILABLE), "unavailable");
	assert_string_equal(allot_code_name(ALLOT_DATALOSS), "dataloss");
	assert_string_equal(allot_code_name((enum allot_code)99), "unknown");
	for (int t = 0; t < TWIRP_NCODES; t++)
		assert_string_equal(allot_code_name(allot_code_from_twirp((enum twirp_code)t)),
		    twirp_code_name((enum twirp_code)t));
	assert_int_equal(allot_code_from_twirp(TWIRP_NOT_FOUND), ALLOT_NOT_FOUND);
	assert_string_equal(allot_version(), "1.1.0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_backoff_schedule),
	    cmocka_unit_test(test_backoff_spread),
	    cmocka_unit_test(test_backoff_edges),
	    cmocka_unit_test(test_code_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
