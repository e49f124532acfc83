/*
 * Unit tests for clients/collect/collect_config.c: defaults, each error with its
 * line, what keys must say together, and a reload that applies what it may.
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

#include "collect_config.h"

static const char required[] = "site = leonardo\n"
                               "server = https://allot.example.org:8443\n"
                               "tls_cert = /etc/allot/c.crt\n"
                               "tls_key = /etc/allot/c.key\n"
                               "tls_ca = /etc/allot/ca.crt\n";

/* Loads text from a temporary file into cfg; returns config_load's result. */
static int
load(struct collect_config *cfg, const char *text, char *path, size_t pathlen, char *err,
    size_t errlen)
{
	FILE *f;
	int fd, rc;

	snprintf(path, pathlen, "/tmp/unit-collect-config-XXXXXX");
	assert_true((fd = mkstemp(path)) >= 0);
	assert_non_null(f = fdopen(fd, "w"));
	fputs(text, f);
	fclose(f);
	rc = collect_config_load(cfg, path, err, errlen);
	unlink(path);
	return rc;
}

static void
test_defaults_and_required(void **state)
{
	struct collect_config *cfg = collect_config_new();
	char path[64], err[512];

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(load(cfg, required, path, sizeof(path), err, sizeof(err)), 0);
	assert_string_equal(cfg->site, "leonardo");
	assert_string_equal(cfg->spool_dir, "/var/spool/allot-collect");
	assert_int_equal(cfg->spool_max_bytes, 1LL << 30);
	assert_int_equal(cfg->batch_records, 10000);
	assert_int_equal(cfg->batch_max_bytes, 2 << 20);
	assert_int_equal(cfg->backoff_base_ms, 500);
	assert_int_equal(cfg->backoff_max_ms, 60000);
	assert_string_equal(cfg->timezone, "");
	assert_string_equal(cfg->sacct_command, "");
	assert_string_equal(cfg->partitions, "");
	assert_string_equal(cfg->input_format, "jsonl");
	assert_string_equal(cfg->metrics_host, "127.0.0.1");
	assert_int_equal(cfg->metrics_port, 9465);
	assert_int_equal(cfg->log_level, LOG_INFO);
	collect_config_free(cfg);

	/* Each required key, left out, is named. */
	assert_non_null(cfg = collect_config_new());
	assert_int_equal(load(cfg, "site = x\nserver = https://h:1\ntls_cert = a\ntls_key = b\n",
	                     path, sizeof(path), err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, ": required key \"tls_ca\" is not set"));
	collect_config_free(cfg);
}

static void
test_errors_name_the_line(void **state)
{
	static const struct {
		const char *extra, *msg;
	} cases[] = {
	    {"bogus = 1\n", ":6: unknown key \"bogus\""},
	    {"site = again\n", ":6: \"site\" is set twice (first on line 1)"},
	    {"batch_records = 0\n", ":6: value 0 of \"batch_records\" is out of range 1..100000"},
	    {"batch_records = ten\n", ":6: value \"ten\" of \"batch_records\" is not an integer"},
	    {"spool_max_bytes = 3T\n", ":6: value \"3T\" of \"spool_max_bytes\" is not a size"},
	    {"log_level = loud\n", ":6: value \"loud\" of \"log_level\" is not one of"},
	    {"metrics_listen = 10.0.0.1:9465\n", "is not a loopback address"},
	    {"metrics_listen = localhost\n", "is not host:port"},
	    {"spool_dir = \"unterminated\n", ":6: unterminated quoted value of \"spool_dir\""},
	    {"input_format = csv\n", "input_format \"csv\" is not one of"},
	    {"backoff_base_ms = 5000\nbackoff_max_ms = 1000\n",
	        "backoff_max_ms 1000 is less than backoff_base_ms 5000"},
	    {"dcgm_url = https://node:9400/metrics\n", "dcgm_url \"https://node:9400/metrics\""},
	    {"partitions = acc,,boost_usr_prod\n",
	        "partitions \"acc,,boost_usr_prod\" is not a comma-separated list"},
	    {"partitions = acc,\n", "partitions \"acc,\" is not a comma-separated list"},
	    {"partitions = \",acc\"\n", "partitions \",acc\" is not a comma-separated list"},
	    {"partitions = \"acc, gpp\"\n", "partitions \"acc, gpp\" is not a comma-separated"},
	};
	char text[1024], path[64], err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct collect_config *cfg = collect_config_new();

		assert_non_null(cfg);
		snprintf(text, sizeof(text), "%s%s", required, cases[i].extra);
		assert_int_equal(load(cfg, text, path, sizeof(path), err, sizeof(err)), -1);
		if (strstr(err, cases[i].msg) == NULL)
			fail_msg("case %zu: \"%s\" not in \"%s\"", i, cases[i].msg, err);
		/* A bad file leaves the configuration as it was. */
		assert_null(cfg->site);
		collect_config_free(cfg);
	}
}

static void
test_values_quoted_sized_and_empty(void **state)
{
	struct collect_config *cfg = collect_config_new();
	char text[1024], path[64], err[512];

	(void)state;
	snprintf(text, sizeof(text),
	    "%s"
	    "spool_max_bytes = 64M   # a comment\n"
	    "sacct_fields = \"JobID,Account # not a comment\"\n"
	    "timezone = Europe/Rome\n"
	    "metrics_listen = \"\"\n"
	    "input_file = /run/allot/jobs.fifo\n"
	    "partitions = acc,boost_usr_prod\n",
	    required);
	assert_int_equal(load(cfg, text, path, sizeof(path), err, sizeof(err)), 0);
	assert_int_equal(cfg->spool_max_bytes, 64LL << 20);
	assert_string_equal(cfg->sacct_fields, "JobID,Account # not a comment");
	assert_string_equal(cfg->timezone, "Europe/Rome");
	assert_string_equal(cfg->metrics_host, "");
	assert_string_equal(cfg->input_file, "/run/allot/jobs.fifo");
	assert_string_equal(cfg->partitions, "acc,boost_usr_prod");
	collect_config_free(cfg);
}

static void
test_reload_applies_what_it_may(void **state)
{
	struct collect_config *running = collect_config_new(), *fresh = collect_config_new();
	char text[1024], path[64], err[512];

	(void)state;
	assert_int_equal(load(running, required, path, sizeof(path), err, sizeof(err)), 0);
	snprintf(text, sizeof(text),
	    "%s"
	    "batch_records = 10\n"
	    "log_level = debug\n"
	    "spool_dir = /elsewhere\n",
	    required);
	assert_int_equal(load(fresh, text, path, sizeof(path), err, sizeof(err)), 0);
	assert_int_equal(collect_config_reload_merge(running, fresh, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "\"spool_dir\" changed but only a restart applies"));
	assert_int_equal(running->batch_records, 10);
	assert_int_equal(running->log_level, LOG_DEBUG);
	assert_string_equal(running->spool_dir, "/var/spool/allot-collect");
	collect_config_free(running);
	collect_config_free(fresh);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_and_required),
	    cmocka_unit_test(test_errors_name_the_line),
	    cmocka_unit_test(test_values_quoted_sized_and_empty),
	    cmocka_unit_test(test_reload_applies_what_it_may),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
