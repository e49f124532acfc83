/*
 * Unit tests for clients/lib/allot_client.c and allot_error.c: Twirp error bodies and the codes
 * derived from an intermediary's HTTP status; a refused connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "allot/v1/admin.pb-c.h"
#include "allot_internal.h"

static void
test_twirp_body(void **state)
{
	static const char body[] =
	    "{\"code\":\"not_found\",\"msg\":\"project \\\"x\\\" does not exist\",\"meta\":{}}";
	struct allot_error e;

	(void)state;
	allot_error_from_http(&e, 404, body, strlen(body));
	assert_int_equal(e.code, ALLOT_NOT_FOUND);
	assert_string_equal(e.code_name, "not_found");
	assert_string_equal(e.msg, "project \"x\" does not exist");
	assert_int_equal(e.http_status, 404);
}

static void
test_unknown_code_kept(void **state)
{
	static const char body[] = "{\"code\":\"teapot\",\"msg\":\"short and stout\"}";
	struct allot_error e;

	(void)state;
	allot_error_from_http(&e, 418, body, strlen(body));
	assert_int_equal(e.code, ALLOT_UNKNOWN);
	assert_string_equal(e.code_name, "teapot");
}

static const struct {
	int status;
	const char *body;
	enum allot_code code;
	const char *msg;
} intermediary[] = {
    {400, "bad request", ALLOT_INTERNAL, "http status 400 from an intermediary: bad request"},
    {401, "", ALLOT_UNAUTHENTICATED, "http status 401 from an intermediary"},
    {403, "no", ALLOT_PERMISSION_DENIED, "http status 403 from an intermediary: no"},
    {404, "<html>\r\nnot here\n</html>\n", ALLOT_BAD_ROUTE,
        "http status 404 from an intermediary: <html>  not here </html>"},
    {429, "slow down", ALLOT_UNAVAILABLE, "http status 429 from an intermediary: slow down"},
    {502, "{}", ALLOT_UNAVAILABLE, "http status 502 from an intermediary: {}"},
    {503, "{\"code\": 5}", ALLOT_UNAVAILABLE,
        "http status 503 from an intermediary: {\"code\": 5}"},
    {504, NULL, ALLOT_UNAVAILABLE, "http status 504 from an intermediary"},
    {302, "", ALLOT_INTERNAL, "http status 302 from an intermediary"},
    {500, "oops", ALLOT_UNKNOWN, "http status 500 from an intermediary: oops"},
    {413, "too big", ALLOT_UNKNOWN, "http status 413 from an intermediary: too big"},
};

static void
test_intermediary(void **state)
{
	struct allot_error e;

	(void)state;
	for (size_t i = 0; i < sizeof(intermediary) / sizeof(intermediary[0]); i++) {
		const char *body = intermediary[i].body;

		allot_error_from_http(
		    &e, intermediary[i].status, body, body != NULL ? strlen(body) : 0);
		assert_int_equal(e.code, intermediary[i].code);
		assert_string_equal(e.code_name, allot_code_name(intermediary[i].code));
		assert_string_equal(e.msg, intermediary[i].msg);
		assert_int_equal(e.http_status, intermediary[i].status);
	}
}

static void
test_long_body_truncated(void **state)
{
	static char body[4096];
	struct allot_error e;

	(void)state;
	memset(body, 'a', sizeof(body));
	allot_error_from_http(&e, 502, body, sizeof(body));
	assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
}

static void
test_new_errors(void **state)
{
	struct allot_options opts;
	struct allot_error err;

	(void)state;
	allot_options_init(&opts);
	assert_null(allot_connect(&opts, &err));
	assert_int_equal(err.code, ALLOT_INVALID_ARGUMENT);
	assert_string_equal(err.msg, "no server URL given");
	opts.server_url = "ftp://127.0.0.1:1";
	assert_null(allot_connect(&opts, &err));
	assert_string_equal(err.msg, "server URL \"ftp://127.0.0.1:1\" is not http:// or https://");
	opts.server_url = "https://127.0.0.1:1";
	opts.timeout_ms = -1;
	assert_null(allot_connect(&opts, &err));
	assert_int_equal(err.code, ALLOT_INVALID_ARGUMENT);
	allot_close(NULL);
}

static void
test_refused(void **state)
{
	struct allot_options opts;
	struct allot_client *client;
	Allot__V1__ListRequest req = ALLOT__V1__LIST_REQUEST__INIT;
	ProtobufCMessage *resp = (ProtobufCMessage *)&req;
	struct allot_error e;

	(void)state;
	allot_options_init(&opts);
	opts.server_url = "https://127.0.0.1:1/";
	opts.timeout_ms = 5000;
	client = allot_connect(&opts, &e);
	if (client == NULL)
		fail_msg("%s", e.msg);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(allot_call(client, "allot.v1.Admin/ListSites", &req.base,
		                     &allot__v1__list_sites_response__descriptor, &resp, &e),
		    -1);
		assert_null(resp);
		assert_int_equal(e.code, ALLOT_UNAVAILABLE);
		assert_string_equal(e.code_name, "unavailable");
		assert_int_equal(e.http_status, 0);
		assert_true(strlen(e.msg) > 0);
		assert_int_equal(e.attempts, 1);
	}
	allot_close(client);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_twirp_body),
	    cmocka_unit_test(test_unknown_code_kept),
	    cmocka_unit_test(test_intermediary),
	    cmocka_unit_test(test_long_body_truncated),
	    cmocka_unit_test(test_new_errors),
	    cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
