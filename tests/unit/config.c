/*
 * Unit tests for daemon/config.c: defaults, a full file, each error with its
 * line, quoting, sizes, reload merging, and that the sample configuration and
 * the README name every key of the table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static const char *const required =
    "tls_cert = /c/server.crt\ntls_key = /c/server.key\ntls_ca = /c/ca.crt\n"
    "database = host=/tmp dbname=allot\n";

/* Writes text to a new temporary file; returns its path (static storage). */
static const char *
write_file(const char *text)
{
	static char path[64];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/allot-config-test-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* Loads text; returns the result and leaves the error in err. */
static int
load_text(struct config *cfg, const char *text, char *err, size_t errlen)
{
	const char *path = write_file(text);
	int rc = config_load(cfg, path, err, errlen);

	unlink(path);
	return rc;
}

static void
test_defaults(void **state)
{
	struct config *cfg = config_new();
	char err[512];

	(void)state;
	assert_non_null(cfg);
	assert_string_equal(cfg->listen_host, "127.0.0.1");
	assert_int_equal(cfg->listen_port, 8443);
	assert_int_equal(cfg->db_pool_size, 4);
	assert_int_equal(cfg->db_reconnect_max_s, 10);
	assert_int_equal(cfg->max_body_bytes, 4 * 1024 * 1024);
	assert_int_equal(cfg->idle_timeout_s, 60);
	assert_int_equal(cfg->log_level, LOG_INFO);
	assert_null(cfg->tls_cert);
	/* Required keys: an empty file is refused, naming the first one missing. */
	assert_int_equal(load_text(cfg, "# nothing\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, ": required key \"tls_cert\" is not set"));
	config_free(cfg);
	config_free(NULL);
}

static void
test_full_file(void **state)
{
	struct config *cfg = config_new();
	char err[512], text[2048];

	(void)state;
	snprintf(text, sizeof(text),
	    "# a comment\n\n%s"
	    "listen = [::1]:9443   # trailing comment\n"
	    "db_pool_size = 16\n"
	    "db_reconnect_max_s=30\n"
	    "max_body_bytes = 512k\n"
	    "idle_timeout_s = 5\n"
	    "log_level = debug\n",
	    required);
	assert_int_equal(load_text(cfg, text, err, sizeof(err)), 0);
	assert_string_equal(cfg->tls_cert, "/c/server.crt");
	assert_string_equal(cfg->database, "host=/tmp dbname=allot");
	assert_string_equal(cfg->listen_host, "[::1]");
	assert_int_equal(cfg->listen_port, 9443);
	assert_int_equal(cfg->db_pool_size, 16);
	assert_int_equal(cfg->db_reconnect_max_s, 30);
	assert_int_equal(cfg->max_body_bytes, 512 * 1024);
	assert_int_equal(cfg->idle_timeout_s, 5);
	assert_int_equal(cfg->log_level, LOG_DEBUG);
	config_free(cfg);
}

static void
test_quoting(void **state)
{
	struct config *cfg = config_new();
	char err[512];

	(void)state;
	assert_int_equal(load_text(cfg,
	                     "tls_cert = \"/a b/#not a comment.crt\"  # a comment\n"
	                     "tls_key = \"say \\\"hi\\\" \\\\ there\"\n"
	                     "tls_ca = /c/ca.crt\n"
	                     "database = \"host=/tmp dbname=allot\"\n",
	                     err, sizeof(err)),
	    0);
	assert_string_equal(cfg->tls_cert, "/a b/#not a comment.crt");
	assert_string_equal(cfg->tls_key, "say \"hi\" \\ there");
	config_free(cfg);
}

static const struct {
	const char *text;  /* appended after the required keys */
	const char *error; /* expected after "path:" */
} errors[] = {
    {"foo = 1\n", ":5: unknown key \"foo\""},
    {"db_pool_size = 0\n", ":5: value 0 of \"db_pool_size\" is out of range 1..64"},
    {"db_pool_size = 65\n", ":5: value 65 of \"db_pool_size\" is out of range 1..64"},
    {"db_pool_size = four\n", ":5: value \"four\" of \"db_pool_size\" is not an integer"},
    {"db_pool_size = 4x\n", ":5: value \"4x\" of \"db_pool_size\" is not an integer"},
    {"\n\ndb_pool_size\n", ":7: missing \"=\" after key \"db_pool_size\""},
    {"database = again\n", ":5: \"database\" is set twice"},
    {"max_body_bytes = 1T\n", ":5: value \"1T\" of \"max_body_bytes\" is not a size"},
    {"max_body_bytes = 512\n", ":5: value 512 of \"max_body_bytes\" is out of range"},
    {"max_body_bytes = 1G\n", ":5: value 1073741824 of \"max_body_bytes\" is out of range"},
    {"listen = localhost\n", ":5: \"localhost\" is not host:port"},
    {"listen = :80\n", ":5: \":80\" is not host:port"},
    {"listen = h:70000\n", ":5: \"h:70000\" is not host:port"},
    {"log_level = loud\n", ":5: log level \"loud\" is not one of"},
    {"tls_cert = \"open\n", ":5: unterminated quoted value of \"tls_cert\""},
    {"tls_cert = \"a\" b\n", ":5: unexpected text after the quoted value of \"tls_cert\""},
    {"= 3\n", ":5: expected a key"},
    {"tls-cert = x\n", ":5: unexpected character '-' in key"},
    {"idle_timeout_s = -1\n", ":5: value -1 of \"idle_timeout_s\" is out of range 1..3600"},
};

static void
test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		struct config *cfg = config_new();
		char text[1024], err[512] = "";
		const char *path;

		snprintf(text, sizeof(text), "%s%s", required, errors[i].text);
		path = write_file(text);
		if (config_load(cfg, path, err, sizeof(err)) != -1)
			fail_msg("accepted: %s", errors[i].text);
		/* The message starts with the file's path, then the line. */
		if (strncmp(err, path, strlen(path)) != 0 ||
		    strstr(err + strlen(path), errors[i].error) != err + strlen(path))
			fail_msg("for %s got \"%s\", want \"%s%s...\"", errors[i].text, err, path,
			    errors[i].error);
		unlink(path);
		config_free(cfg);
	}
}

static void
test_missing_file(void **state)
{
	struct config *cfg = config_new();
	char err[512];

	(void)state;
	assert_int_equal(config_load(cfg, "/nonexistent/allotd.conf", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/allotd.conf: could not open"));
	config_free(cfg);
}

static void
test_reload_merge(void **state)
{
	struct config *running = config_new(), *fresh = config_new();
	char err[512], text[1024];

	(void)state;
	assert_int_equal(load_text(running, required, err, sizeof(err)), 0);
	snprintf(text, sizeof(text),
	    "tls_cert = /new/server.crt\ntls_key = /c/server.key\ntls_ca = /c/ca.crt\n"
	    "database = host=/elsewhere\nlisten = 127.0.0.1:9000\nlog_level = warn\n"
	    "idle_timeout_s = 7\n");
	assert_int_equal(load_text(fresh, text, err, sizeof(err)), 0);
	err[0] = '\0';
	assert_int_equal(config_reload_merge(running, fresh, err, sizeof(err)), 1);
	/* Reloadable keys follow the new file... */
	assert_string_equal(running->tls_cert, "/new/server.crt");
	assert_int_equal(running->log_level, LOG_WARN);
	assert_int_equal(running->idle_timeout_s, 7);
	/* ...the others keep their running value, and the message names them. */
	assert_string_equal(running->database, "host=/tmp dbname=allot");
	assert_int_equal(running->listen_port, 8443);
	assert_non_null(strstr(err, "listen"));
	assert_non_null(strstr(err, "database"));
	assert_null(strstr(err, "db_pool_size"));
	/* Merging the same file again changes nothing that needs a restart. */
	assert_int_equal(config_reload_merge(fresh, fresh, err, sizeof(err)), 0);
	config_free(running);
	config_free(fresh);
}

static char *
read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

/* Every key is documented in the sample configuration and in the README. */
static void
test_keys_documented(void **state)
{
	char *sample = read_all(SOURCE_ROOT "/etc/allotd.conf.sample");
	char *readme = read_all(SOURCE_ROOT "/README.md");
	const struct config_key *keys;
	size_t n;

	(void)state;
	assert_non_null(sample);
	assert_non_null(readme);
	keys = config_keys(&n);
	assert_true(n >= 10);
	for (size_t i = 0; i < n; i++) {
		char want[96];

		snprintf(want, sizeof(want), "\n%s = ", keys[i].name);
		if (strstr(sample, want) == NULL)
			fail_msg("etc/allotd.conf.sample does not set \"%s\"", keys[i].name);
		snprintf(want, sizeof(want), "`%s`", keys[i].name);
		if (strstr(readme, want) == NULL)
			fail_msg("README.md does not document \"%s\"", keys[i].name);
	}
	free(sample);
	free(readme);
}

static void
test_sample_loads(void **state)
{
	struct config *cfg = config_new();
	char err[512];

	(void)state;
	if (config_load(cfg, SOURCE_ROOT "/etc/allotd.conf.sample", err, sizeof(err)) != 0)
		fail_msg("%s", err);
	config_free(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_full_file),
	    cmocka_unit_test(test_quoting),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_reload_merge),
	    cmocka_unit_test(test_keys_documented),
	    cmocka_unit_test(test_sample_loads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
