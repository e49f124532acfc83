/*
 * Unit tests for daemon/config.c and daemon/log.c (which the configuration's
 * log_level and every error path use): the key table against the specification,
 * defaults, a full file, each error with its line, quoting and comments, sizes,
 * reload merging, the help, and that etc/allotd.conf.sample and README.md name
 * every key of the table. Log lines are checked through a pipe on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"

#define SAMPLE_PATH SOURCE_ROOT "/etc/allotd.conf.sample"
#define README_PATH SOURCE_ROOT "/README.md"

/* The four required keys, as most test files start. */
#define REQUIRED \
	"tls_cert = /c/server.crt\n" \
	"tls_key = /c/server.key\n" \
	"tls_ca = /c/ca.crt\n" \
	"database = host=/tmp dbname=allot\n"

static char tmpdir[64];
static char file_path[128];

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s", "/tmp/allot-unit-config-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(file_path, sizeof(file_path), "%s/allotd.conf", tmpdir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(file_path);
	rmdir(tmpdir);
	return 0;
}

/* Writes len bytes of text to file_path. */
static void
write_bytes(const char *text, size_t len)
{
	FILE *f = fopen(file_path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Writes text to file_path and loads it into cfg; err gets the message. */
static int
load_text(struct config *cfg, const char *text, char *err, size_t errlen)
{
	write_bytes(text, strlen(text));
	return config_load(cfg, file_path, err, errlen);
}

static const struct config_key *
key_named(const char *name)
{
	size_t n;
	const struct config_key *keys = config_keys(&n);

	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* The key table of the specification, verbatim. */
static void
test_key_table(void **state)
{
	static const struct {
		const char *name, *type, *default_value;
		long long min, max;
		bool reloadable;
		const char *help;
	} spec[] = {
	    {"listen", "host:port", "127.0.0.1:8443", 0, 0, false,
	        "address and port of the HTTPS listener"},
	    {"tls_cert", "path", NULL, 0, 0, true, "server certificate (PEM, ECDSA)"},
	    {"tls_key", "path", NULL, 0, 0, true, "its private key"},
	    {"tls_ca", "path", NULL, 0, 0, true, "CA that signs client certificates"},
	    {"database", "string", NULL, 0, 0, false, "libpq connection string"},
	    {"db_pool_size", "int", "4", 1, 64, false, "PostgreSQL connections"},
	    {"db_reconnect_max_s", "int", "10", 1, 600, true,
	        "longest wait between reconnection attempts"},
	    {"max_body_bytes", "size", "4194304", 1024, 268435456, true,
	        "largest request body accepted"},
	    {"idle_timeout_s", "int", "60", 1, 3600, true, "close a connection idle this long"},
	    {"lien_sweep_s", "int", "5", 1, 3600, true,
	        "release the liens past their expiry this often"},
	    {"allocation_expiry_s", "int", "30", 1, 3600, true,
	        "expire the allocations whose window ended this often"},
	    {"reserve_group_max", "int", "256", 1, 4096, true,
	        "most reservations committed in one transaction"},
	    {"audit_key", "path", "", 0, 0, false,
	        "Ed25519 private key (PEM) that signs the journal's blocks; unset: no sealing"},
	    {"audit_seal_s", "int", "5", 1, 3600, true,
	        "seal the journal's new entries this often"},
	    {"fairshare_period_s", "int", "60", 1, 86400, true,
	        "recompute the fair-share tree from the database this often"},
	    {"fairshare_half_life_s", "int", "604800", 0, 315360000, true,
	        "half-life of usage in fair share; 0: no decay"},
	    {"fairshare_algorithm", "enum", "fair_tree", 0, 0, true,
	        "fair-share algorithm: fair_tree or classic"},
	    {"fairshare_pacing_permille", "int", "200", 0, 1000, true,
	        "weight of pacing in the combined factor, in thousandths"},
	    {"log_level", "enum", "info", 0, 0, true, "least severe level logged"},
	};
	size_t n;
	const struct config_key *keys = config_keys(&n);

	(void)state;
	assert_int_equal(n, sizeof(spec) / sizeof(spec[0]));
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(keys[i].name, spec[i].name);
		assert_string_equal(config_type_name(keys[i].type), spec[i].type);
		if (spec[i].default_value == NULL)
			assert_null(keys[i].default_value);
		else
			assert_string_equal(keys[i].default_value, spec[i].default_value);
		assert_int_equal(keys[i].min, spec[i].min);
		assert_int_equal(keys[i].max, spec[i].max);
		assert_int_equal(keys[i].reloadable, spec[i].reloadable);
		assert_string_equal(keys[i].help, spec[i].help);
		assert_true(keys[i].offset < sizeof(struct config));
	}
}

static void
test_defaults(void **state)
{
	struct config *cfg = config_new();

	(void)state;
	assert_non_null(cfg);
	assert_string_equal(cfg->listen, "127.0.0.1:8443");
	assert_string_equal(cfg->listen_host, "127.0.0.1");
	assert_int_equal(cfg->listen_port, 8443);
	assert_null(cfg->tls_cert);
	assert_null(cfg->tls_key);
	assert_null(cfg->tls_ca);
	assert_null(cfg->database);
	assert_int_equal(cfg->db_pool_size, 4);
	assert_int_equal(cfg->db_reconnect_max_s, 10);
	assert_int_equal(cfg->max_body_bytes, 4194304);
	assert_int_equal(cfg->idle_timeout_s, 60);
	assert_int_equal(cfg->log_level, LOG_INFO);
	config_free(cfg);
	config_free(NULL);
}

static void
test_required_only(void **state)
{
	struct config *cfg = config_new();
	char err[512] = "";

	(void)state;
	assert_int_equal(load_text(cfg, REQUIRED, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(cfg->tls_cert, "/c/server.crt");
	assert_string_equal(cfg->tls_key, "/c/server.key");
	assert_string_equal(cfg->tls_ca, "/c/ca.crt");
	assert_string_equal(cfg->database, "host=/tmp dbname=allot");
	assert_string_equal(cfg->listen_host, "127.0.0.1");
	assert_int_equal(cfg->db_pool_size, 4);
	config_free(cfg);
}

/* An optional key (audit_key) is unset until a file sets it; an empty value is refused. */
static void
test_optional_key(void **state)
{
	struct config *cfg = config_new(), *fresh = config_new();
	char err[512] = "";

	(void)state;
	assert_null(cfg->audit_key);
	assert_int_equal(load_text(cfg, REQUIRED, err, sizeof(err)), 0);
	assert_null(cfg->audit_key);
	assert_int_equal(cfg->audit_seal_s, 5);
	assert_int_equal(load_text(fresh, REQUIRED "audit_key = /k/audit.key\naudit_seal_s = 2\n",
	                     err, sizeof(err)),
	    0);
	assert_string_equal(fresh->audit_key, "/k/audit.key");
	/* a reload keeps the running key (restart) and applies the period */
	assert_int_equal(config_reload_merge(cfg, fresh, err, sizeof(err)), 1);
	assert_null(cfg->audit_key);
	assert_int_equal(cfg->audit_seal_s, 2);
	assert_non_null(strstr(err, "\"audit_key\" changed but only a restart applies it"));
	assert_int_equal(load_text(fresh, REQUIRED "audit_key = \"\"\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "\"audit_key\" has an empty value"));
	config_free(cfg);
	config_free(fresh);
}

static void
test_full_file(void **state)
{
	static const char text[] = "# a full configuration\n"
	                           "\n"
	                           "listen = [::1]:9443\n"
	                           "tls_cert = /etc/allot/server.crt\n"
	                           "tls_key = /etc/allot/server.key\r\n"
	                           "tls_ca = /etc/allot/ca.crt   # the clients' CA\n"
	                           "database = \"host=/run/pg dbname=allot user='a b'\"\n"
	                           "   \t# indented comment\n"
	                           "db_pool_size = 64\n"
	                           "db_reconnect_max_s = 600\n"
	                           "max_body_bytes = 256M\n"
	                           "idle_timeout_s = 1\n"
	                           "log_level = debug";
	struct config *cfg = config_new();
	char err[512] = "";

	(void)state;
	assert_int_equal(load_text(cfg, text, err, sizeof(err)), 0);
	assert_string_equal(cfg->listen, "[::1]:9443");
	assert_string_equal(cfg->listen_host, "::1");
	assert_int_equal(cfg->listen_port, 9443);
	assert_string_equal(cfg->tls_cert, "/etc/allot/server.crt");
	assert_string_equal(cfg->tls_key, "/etc/allot/server.key");
	assert_string_equal(cfg->tls_ca, "/etc/allot/ca.crt");
	assert_string_equal(cfg->database, "host=/run/pg dbname=allot user='a b'");
	assert_int_equal(cfg->db_pool_size, 64);
	assert_int_equal(cfg->db_reconnect_max_s, 600);
	assert_int_equal(cfg->max_body_bytes, 268435456);
	assert_int_equal(cfg->idle_timeout_s, 1);
	assert_int_equal(cfg->log_level, LOG_DEBUG);
	config_free(cfg);
}

struct error_case {
	const char *text;
	const char *err; /* after the path */
};

static const struct error_case error_cases[] = {
    {"foo = 1\n", ":1: unknown key \"foo\""},
    {REQUIRED "Listen = 127.0.0.1:1\n", ":5: unknown key \"Listen\""},
    {REQUIRED "db_pool_size = 0\n", ":5: value 0 of \"db_pool_size\" is out of range 1..64"},
    {"# comment\n\n  # another\ndatabase = a\n\ndatabase = b\n",
        ":6: \"database\" is set twice (first on line 4)"},
    {"listen 127.0.0.1:1\n", ":1: missing \"=\" after key \"listen\""},
    {"listen\n", ":1: missing \"=\" after key \"listen\""},
    {"listen# = 1\n", ":1: missing \"=\" after key \"listen\""},
    {"= 5\n", ":1: missing key before \"=\""},
    {"", ": required key \"tls_cert\" is not set"},
    {"# nothing but comments\n", ": required key \"tls_cert\" is not set"},
    {"tls_cert = a\ntls_ca = b\ndatabase = c\n", ": required key \"tls_key\" is not set"},
    {"tls_cert = a\ntls_key = b\ntls_ca = c\n", ": required key \"database\" is not set"},
    {"db_pool_size = 65\n", ":1: value 65 of \"db_pool_size\" is out of range 1..64"},
    {"db_pool_size = -1\n", ":1: value -1 of \"db_pool_size\" is out of range 1..64"},
    {"db_pool_size = 99999999999999999999\n",
        ":1: value 99999999999999999999 of \"db_pool_size\" is out of range 1..64"},
    {"db_pool_size = 4x\n", ":1: value \"4x\" of \"db_pool_size\" is not an integer"},
    {"db_pool_size = 0x10\n", ":1: value \"0x10\" of \"db_pool_size\" is not an integer"},
    {"db_pool_size = +4\n", ":1: value \"+4\" of \"db_pool_size\" is not an integer"},
    {"db_pool_size = 4k\n", ":1: value \"4k\" of \"db_pool_size\" is not an integer"},
    {"db_pool_size = \"4 4\"\n", ":1: value \"4 4\" of \"db_pool_size\" is not an integer"},
    {"db_pool_size =\n", ":1: \"db_pool_size\" has an empty value"},
    {"db_pool_size = # none\n", ":1: \"db_pool_size\" has an empty value"},
    {"db_reconnect_max_s = 601\n",
        ":1: value 601 of \"db_reconnect_max_s\" is out of range 1..600"},
    {"idle_timeout_s = 0\n", ":1: value 0 of \"idle_timeout_s\" is out of range 1..3600"},
    {"max_body_bytes = 1023\n",
        ":1: value 1023 of \"max_body_bytes\" is out of range 1024..268435456"},
    {"max_body_bytes = 257M\n",
        ":1: value 257M of \"max_body_bytes\" is out of range 1024..268435456"},
    {"max_body_bytes = 1G\n", ":1: value 1G of \"max_body_bytes\" is out of range 1024..268435456"},
    {"max_body_bytes = 9999999999G\n",
        ":1: value 9999999999G of \"max_body_bytes\" is out of range 1024..268435456"},
    {"max_body_bytes = 4MB\n",
        ":1: value \"4MB\" of \"max_body_bytes\" is not a size: write a number of bytes, with "
        "an optional suffix k, M or G"},
    {"max_body_bytes = 4m\n",
        ":1: value \"4m\" of \"max_body_bytes\" is not a size: write a number of bytes, with "
        "an optional suffix k, M or G"},
    {"max_body_bytes = 4 M\n",
        ":1: value \"4 M\" of \"max_body_bytes\" is not a size: write a number of bytes, with "
        "an optional suffix k, M or G"},
    {"log_level = verbose\n",
        ":1: value \"verbose\" of \"log_level\" is not one of fatal, error, warn, info, debug"},
    {"log_level = INFO\n",
        ":1: value \"INFO\" of \"log_level\" is not one of fatal, error, warn, info, debug"},
    {"listen = 127.0.0.1\n", ":1: value \"127.0.0.1\" of \"listen\" is not host:port"},
    {"listen = 127.0.0.1:0\n", ":1: port \"0\" of \"listen\" is not a number in 1..65535"},
    {"listen = 127.0.0.1:65536\n", ":1: port \"65536\" of \"listen\" is not a number in 1..65535"},
    {"listen = 127.0.0.1:-1\n", ":1: port \"-1\" of \"listen\" is not a number in 1..65535"},
    {"listen = 127.0.0.1:\n", ":1: port \"\" of \"listen\" is not a number in 1..65535"},
    {"listen = 127.0.0.1:https\n", ":1: port \"https\" of \"listen\" is not a number in 1..65535"},
    {"listen = ::1:8443\n",
        ":1: value \"::1:8443\" of \"listen\" is ambiguous: write an IPv6 address in brackets, "
        "as in [::1]:8443"},
    {"listen = [::1]8443\n", ":1: value \"[::1]8443\" of \"listen\" is not [address]:port"},
    {"listen = [::1:8443\n", ":1: value \"[::1:8443\" of \"listen\" is not [address]:port"},
    {"listen = :8443\n",
        ":1: value \":8443\" of \"listen\" has no host (0.0.0.0 listens on every address)"},
    {"listen = []:8443\n",
        ":1: value \"[]:8443\" of \"listen\" has no host (0.0.0.0 listens on every address)"},
    {"listen = \"local host:80\"\n", ":1: value \"local host:80\" of \"listen\" is not host:port"},
    {"database = \"abc\n", ":1: unterminated quoted value of \"database\""},
    {"database = \"abc\\\"\n", ":1: unterminated quoted value of \"database\""},
    {"database = \"abc\\\n", ":1: unterminated quoted value of \"database\""},
    {"database = \"a\\nb\"\n",
        ":1: invalid escape \"\\n\" in the quoted value of \"database\": only \\\" and \\\\ "
        "are allowed"},
    {"database = \"abc\" x\n", ":1: unexpected text after the quoted value of \"database\""},
    {"database = \"abc\"\"def\"\n", ":1: unexpected text after the quoted value of \"database\""},
    {"tls_cert = \"\"\n", ":1: \"tls_cert\" has an empty value"},
    {"tls_cert =    \n", ":1: \"tls_cert\" has an empty value"},
};

static void
test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const struct error_case *c = &error_cases[i];
		struct config *cfg = config_new();
		char err[1024] = "", want[1024];

		print_message("%s\n", c->err);
		assert_non_null(cfg);
		assert_int_equal(load_text(cfg, c->text, err, sizeof(err)), -1);
		snprintf(want, sizeof(want), "%s%s", file_path, c->err);
		assert_string_equal(err, want);
		config_free(cfg);
	}
}

static void
test_error_long_line_and_nul(void **state)
{
	static char text[1 + 4097 + 2];
	struct config *cfg = config_new();
	char err[1024], want[1024];

	(void)state;
	/* Line 2 holds 4097 bytes before its newline: one too many. */
	memcpy(text, "\ndatabase = ", 12);
	memset(text + 12, 'x', 4097 - 11);
	memcpy(text + 1 + 4097, "\n", 2);
	assert_int_equal(load_text(cfg, text, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: line is longer than 4096 bytes", file_path);
	assert_string_equal(err, want);

	write_bytes("tls_cert = a\0b\n", 15);
	assert_int_equal(config_load(cfg, file_path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:1: line contains a NUL byte", file_path);
	assert_string_equal(err, want);
	config_free(cfg);
}

static void
test_line_of_4096_bytes(void **state)
{
	static char text[sizeof(REQUIRED) + 4096 + 2];
	struct config *cfg = config_new();
	char err[1024] = "";
	size_t head = strlen("tls_cert = /c/server.crt\ntls_key = /c/server.key\n"
	                     "tls_ca = /c/ca.crt\n");

	(void)state;
	memcpy(text, REQUIRED, head);
	memcpy(text + head, "database = ", 11);
	memset(text + head + 11, 'x', 4096 - 11);
	memcpy(text + head + 4096, "\n", 2);
	assert_int_equal(load_text(cfg, text, err, sizeof(err)), 0);
	assert_int_equal(strlen(cfg->database), 4096 - 11);
	config_free(cfg);
}

static void
test_error_files(void **state)
{
	struct config *cfg = config_new();
	char err[1024], want[1024], missing[256];

	(void)state;
	snprintf(missing, sizeof(missing), "%s/none.conf", tmpdir);
	assert_int_equal(config_load(cfg, missing, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: could not open: %s", missing, strerror(ENOENT));
	assert_string_equal(err, want);

	assert_int_equal(config_load(cfg, tmpdir, err, sizeof(err)), -1);
	assert_int_equal(strncmp(err, tmpdir, strlen(tmpdir)), 0);
	assert_non_null(strstr(err, ": could not "));
	config_free(cfg);
}

/* A failed load leaves the configuration as it was; a short err buffer is not overrun. */
static void
test_error_keeps_config(void **state)
{
	struct config *cfg = config_new();
	char err[1024] = "", small[12];

	(void)state;
	assert_int_equal(load_text(cfg, REQUIRED "db_pool_size = 8\n", err, sizeof(err)), 0);
	assert_int_equal(load_text(cfg,
	                     "db_pool_size = 9\nlisten = 10.0.0.1:1\ndatabase = other\n"
	                     "log_level = loud\n",
	                     err, sizeof(err)),
	    -1);
	assert_int_equal(cfg->db_pool_size, 8);
	assert_string_equal(cfg->listen_host, "127.0.0.1");
	assert_string_equal(cfg->database, "host=/tmp dbname=allot");
	assert_int_equal(cfg->log_level, LOG_INFO);

	memset(small, 'x', sizeof(small));
	assert_int_equal(load_text(cfg, "foo = 1\n", small, 8), -1);
	assert_int_equal(strlen(small), 7);
	assert_int_equal(small[8], 'x');
	config_free(cfg);
}

struct quote_case {
	const char *line;
	const char *value; /* of database */
};

static const struct quote_case quote_cases[] = {
    {"database = plain", "plain"},
    {"database =plain", "plain"},
    {"database=plain", "plain"},
    {"\t database \t=\t plain \t", "plain"},
    {"database = host=/x dbname=y   # a comment", "host=/x dbname=y"},
    {"database = a#b", "a"},
    {"database = a\"b\"", "a\"b\""},
    {"database = a\\b", "a\\b"},
    {"database = \"  padded  \"", "  padded  "},
    {"database = \"has # hash\" # comment", "has # hash"},
    {"database = \"q\\\"uote\"", "q\"uote"},
    {"database = \"back\\\\slash\"", "back\\slash"},
    {"database = \"\\\\\"", "\\"},
    {"database = \"password='x\\\\y'\"\t", "password='x\\y'"},
    {"database = \"a\"#c", "a"},
    {"database = x\r", "x"},
};

static void
test_quoting_and_comments(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(quote_cases) / sizeof(quote_cases[0]); i++) {
		struct config *cfg = config_new();
		char text[512], err[1024] = "";

		print_message("%s\n", quote_cases[i].line);
		snprintf(text, sizeof(text), "tls_cert = a\ntls_key = b\ntls_ca = c\n# x = y\n%s\n",
		    quote_cases[i].line);
		assert_int_equal(load_text(cfg, text, err, sizeof(err)), 0);
		assert_string_equal(cfg->database, quote_cases[i].value);
		config_free(cfg);
	}
}

/* A byte order mark, CRLF ends and a missing final newline are read as plain lines. */
static void
test_file_shapes(void **state)
{
	struct config *cfg = config_new();
	char err[1024] = "";

	(void)state;
	assert_int_equal(load_text(cfg,
	                     "\xef\xbb\xbftls_cert = a\r\ntls_key = b\r\n\r\ntls_ca = c\r\n"
	                     "database = \"d\" \r\nlog_level = warn",
	                     err, sizeof(err)),
	    0);
	assert_string_equal(cfg->tls_cert, "a");
	assert_string_equal(cfg->database, "d");
	assert_int_equal(cfg->log_level, LOG_WARN);
	config_free(cfg);
}

static void
test_sizes(void **state)
{
	static const struct {
		const char *text;
		long long bytes;
	} cases[] = {
	    {"1024", 1024},
	    {"1k", 1024},
	    {"64k", 65536},
	    {"1000000", 1000000},
	    {"4M", 4194304},
	    {"256M", 268435456},
	    {"262144k", 268435456},
	    {"268435456", 268435456},
	    {"0000001024", 1024},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg = config_new();
		char text[256], err[1024] = "";

		snprintf(text, sizeof(text), REQUIRED "max_body_bytes = %s\n", cases[i].text);
		assert_int_equal(load_text(cfg, text, err, sizeof(err)), 0);
		assert_int_equal(cfg->max_body_bytes, cases[i].bytes);
		config_free(cfg);
	}
}

static void
test_listen_forms(void **state)
{
	static const struct {
		const char *text, *host;
		int port;
	} cases[] = {
	    {"127.0.0.1:8443", "127.0.0.1", 8443},
	    {"0.0.0.0:1", "0.0.0.0", 1},
	    {"localhost:65535", "localhost", 65535},
	    {"[::1]:8443", "::1", 8443},
	    {"[::]:443", "::", 443},
	    {"[fe80::1%eth0]:80", "fe80::1%eth0", 80},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg = config_new();
		char text[256], err[1024] = "";

		snprintf(text, sizeof(text), REQUIRED "listen = %s\n", cases[i].text);
		assert_int_equal(load_text(cfg, text, err, sizeof(err)), 0);
		assert_string_equal(cfg->listen, cases[i].text);
		assert_string_equal(cfg->listen_host, cases[i].host);
		assert_int_equal(cfg->listen_port, cases[i].port);
		config_free(cfg);
	}
}

static void
test_log_levels_in_file(void **state)
{
	static const char *const names[] = {"fatal", "error", "warn", "info", "debug"};

	(void)state;
	for (int l = LOG_FATAL; l <= LOG_DEBUG; l++) {
		struct config *cfg = config_new();
		char text[256], err[1024] = "";

		snprintf(text, sizeof(text), REQUIRED "log_level = %s\n", names[l]);
		assert_int_equal(load_text(cfg, text, err, sizeof(err)), 0);
		assert_int_equal(cfg->log_level, l);
		config_free(cfg);
	}
}

static struct config *
load_new(const char *text)
{
	struct config *cfg = config_new();
	char err[1024] = "";

	assert_non_null(cfg);
	if (load_text(cfg, text, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	return cfg;
}

static void
test_reload_merge(void **state)
{
	struct config *running = load_new(REQUIRED);
	struct config *fresh = load_new("listen = 127.0.0.1:9000\n"
	                                "tls_cert = /n/server.crt\n"
	                                "tls_key = /n/server.key\n"
	                                "tls_ca = /n/ca.crt\n"
	                                "database = dbname=other\n"
	                                "db_pool_size = 8\n"
	                                "db_reconnect_max_s = 30\n"
	                                "max_body_bytes = 1M\n"
	                                "idle_timeout_s = 5\n"
	                                "log_level = debug\n");
	const char *database = running->database;
	char err[1024] = "";

	(void)state;
	assert_int_equal(config_reload_merge(running, fresh, err, sizeof(err)), 1);
	assert_string_equal(err,
	    "\"listen\", \"database\" and \"db_pool_size\" changed but only a "
	    "restart applies them: keeping the running values");
	/* Kept: */
	assert_string_equal(running->listen, "127.0.0.1:8443");
	assert_string_equal(running->listen_host, "127.0.0.1");
	assert_int_equal(running->listen_port, 8443);
	assert_ptr_equal(running->database, database);
	assert_string_equal(running->database, "host=/tmp dbname=allot");
	assert_int_equal(running->db_pool_size, 4);
	/* Applied, as copies: */
	assert_string_equal(running->tls_cert, "/n/server.crt");
	assert_ptr_not_equal(running->tls_cert, fresh->tls_cert);
	assert_string_equal(running->tls_key, "/n/server.key");
	assert_string_equal(running->tls_ca, "/n/ca.crt");
	assert_int_equal(running->db_reconnect_max_s, 30);
	assert_int_equal(running->max_body_bytes, 1048576);
	assert_int_equal(running->idle_timeout_s, 5);
	assert_int_equal(running->log_level, LOG_DEBUG);
	config_free(fresh);

	/* The same file again: nothing to say. */
	fresh = load_new("listen = 127.0.0.1:08443\n" /* the same address, spelled otherwise */
	                 "tls_cert = /n/server.crt\ntls_key = /n/server.key\ntls_ca = /n/ca.crt\n"
	                 "database = host=/tmp dbname=allot\n"
	                 "db_reconnect_max_s = 30\nmax_body_bytes = 1024k\nidle_timeout_s = 5\n"
	                 "log_level = debug\n");
	err[0] = '\0';
	assert_int_equal(config_reload_merge(running, fresh, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(running->listen, "127.0.0.1:8443");
	config_free(fresh);

	/* One key that needs a restart. */
	fresh = load_new(REQUIRED "db_pool_size = 5\n");
	assert_int_equal(config_reload_merge(running, fresh, err, sizeof(err)), 1);
	assert_string_equal(err,
	    "\"db_pool_size\" changed but only a restart applies it: keeping "
	    "the running value");
	assert_int_equal(running->db_pool_size, 4);
	/* The reloadable keys went back to the file's values (defaults here). */
	assert_string_equal(running->tls_cert, "/c/server.crt");
	assert_int_equal(running->max_body_bytes, 4194304);
	assert_int_equal(running->log_level, LOG_INFO);
	config_free(fresh);

	/* Two keys. */
	fresh = load_new(REQUIRED "listen = [::1]:8443\nidle_timeout_s = 7\ndb_pool_size = 5\n");
	assert_int_equal(config_reload_merge(running, fresh, err, sizeof(err)), 1);
	assert_string_equal(err,
	    "\"listen\" and \"db_pool_size\" changed but only a restart "
	    "applies them: keeping the running values");
	assert_string_equal(running->listen_host, "127.0.0.1");
	assert_int_equal(running->idle_timeout_s, 7);
	config_free(fresh);
	config_free(running);
}

/* Reads a whole file into a new string; NULL when it does not exist. */
static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	long size;

	if (f == NULL)
		return NULL;
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	assert_true(size >= 0);
	rewind(f);
	text = malloc((size_t)size + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
	text[size] = '\0';
	fclose(f);
	return text;
}

static void
test_print_help(void **state)
{
	size_t n;
	const struct config_key *keys = config_keys(&n);
	char path[256], *text;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/help.txt", tmpdir);
	assert_non_null(f = fopen(path, "w"));
	config_print_help(f);
	assert_int_equal(fclose(f), 0);
	assert_non_null(text = read_file(path));
	unlink(path);
	for (size_t i = 0; i < n; i++) {
		char head[128], *p;

		snprintf(
		    head, sizeof(head), "\n%s (%s, ", keys[i].name, config_type_name(keys[i].type));
		assert_non_null(p = strstr(text, head));
		assert_non_null(strstr(p, keys[i].help));
	}
	assert_non_null(strstr(text,
	    "\ntls_cert (path, required, reloads on SIGHUP)\n"
	    "    server certificate (PEM, ECDSA)\n"));
	assert_non_null(strstr(text, "\ndb_pool_size (int, default 4, 1..64, needs a restart)\n"));
	assert_non_null(strstr(text,
	    "\nlog_level (enum, default info, one of fatal, error, warn, "
	    "info, debug, reloads on SIGHUP)\n"));
	assert_non_null(strstr(text,
	    "\nmax_body_bytes (size, default 4194304, 1024..268435456 "
	    "bytes, suffixes k, M, G, reloads on SIGHUP)\n"));
	free(text);
}

/* Whether text has a line "key =" (spaces allowed, possibly commented out with '#'). */
static bool
has_setting_line(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *line = text; line != NULL && *line != '\0';) {
		const char *p = line, *nl = strchr(line, '\n');

		while (*p == ' ' || *p == '\t' || *p == '#')
			p++;
		if (strncmp(p, key, klen) == 0) {
			p += klen;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '=')
				return true;
		}
		line = nl != NULL ? nl + 1 : NULL;
	}
	return false;
}

static void
test_sample_names_every_key(void **state)
{
	size_t n;
	const struct config_key *keys = config_keys(&n);
	char *text = read_file(SAMPLE_PATH);
	const char *missing = NULL;

	(void)state;
	if (text == NULL)
		fail_msg("%s is missing", SAMPLE_PATH);
	for (size_t i = 0; i < n && missing == NULL; i++)
		if (!has_setting_line(text, keys[i].name))
			missing = keys[i].name;
	free(text);
	if (missing != NULL)
		fail_msg("etc/allotd.conf.sample has no \"%s =\" line", missing);
}

static void
test_readme_names_every_key(void **state)
{
	size_t n;
	const struct config_key *keys = config_keys(&n);
	char *text = read_file(README_PATH);
	const char *missing = NULL;

	(void)state;
	if (text == NULL) {
		print_message("README.md does not exist yet\n");
		skip();
	}
	for (size_t i = 0; i < n && missing == NULL; i++) {
		char quoted[128];

		snprintf(quoted, sizeof(quoted), "`%s`", keys[i].name);
		if (strstr(text, quoted) == NULL)
			missing = keys[i].name;
	}
	free(text);
	if (missing != NULL)
		fail_msg("README.md does not name the configuration key `%s`", missing);
}

/* The sample loads, and shows each default as it is. */
static void
test_sample_loads(void **state)
{
	struct config *sample = config_new(), *defaults = config_new();
	size_t n;
	const struct config_key *keys = config_keys(&n);
	char err[1024] = "";

	(void)state;
	if (config_load(sample, SAMPLE_PATH, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	for (size_t i = 0; i < n; i++) {
		const struct config_key *k = &keys[i];
		const char *a = (const char *)sample + k->offset;
		const char *b = (const char *)defaults + k->offset;

		print_message("%s\n", k->name);
		switch (k->type) {
		case CONFIG_STRING:
		case CONFIG_PATH:
		case CONFIG_LISTEN:
			assert_non_null(*(char *const *)(const void *)a);
			/* an optional key (empty default) is shown set in the sample */
			if (k->default_value != NULL && k->default_value[0] != '\0')
				assert_string_equal(*(char *const *)(const void *)a,
				    *(char *const *)(const void *)b);
			break;
		case CONFIG_INT:
		case CONFIG_FS_ALGORITHM:
			assert_int_equal(
			    *(const int *)(const void *)a, *(const int *)(const void *)b);
			break;
		case CONFIG_SIZE:
			assert_int_equal(*(const long long *)(const void *)a,
			    *(const long long *)(const void *)b);
			break;
		case CONFIG_LOG_LEVEL:
			assert_int_equal(*(const enum log_level *)(const void *)a,
			    *(const enum log_level *)(const void *)b);
			break;
		}
	}
	assert_string_equal(sample->database, "host=/var/run/postgresql dbname=allot");
	config_free(sample);
	config_free(defaults);
}

static void
test_log_level_names(void **state)
{
	static const char *const names[] = {"fatal", "error", "warn", "info", "debug"};
	enum log_level l = LOG_WARN;

	(void)state;
	for (int i = LOG_FATAL; i <= LOG_DEBUG; i++) {
		assert_string_equal(log_level_name((enum log_level)i), names[i]);
		assert_true(log_level_parse(names[i], &l));
		assert_int_equal(l, i);
	}
	l = LOG_WARN;
	assert_false(log_level_parse("Debug", &l));
	assert_false(log_level_parse("warning", &l));
	assert_false(log_level_parse("", &l));
	assert_int_equal(l, LOG_WARN);
	assert_string_equal(log_level_name((enum log_level)5), "unknown");
	assert_string_equal(log_level_name((enum log_level) - 1), "unknown");
	assert_non_null(key_named("log_level"));
}

static int evaluated;

static int
count_evaluation(void)
{
	return ++evaluated;
}

/* Runs the logging calls with stderr on a pipe; returns what they wrote (caller frees). */
static char *
capture_log(void (*calls)(void))
{
	int fds[2], saved;
	char *out = malloc(65536);
	ssize_t n, len = 0;

	assert_non_null(out);
	assert_int_equal(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
	close(fds[1]);
	calls();
	dup2(saved, STDERR_FILENO);
	close(saved);
	while ((n = read(fds[0], out + len, 65535 - (size_t)len)) > 0)
		len += n;
	close(fds[0]);
	out[len] = '\0';
	return out;
}

static void
log_calls(void)
{
	log_set_level(LOG_INFO);
	log_info("hello %d", 42);
	errno = ENOENT;
	log_warn("could not open \"%s\"", "x.conf");
	errno = ENOENT;
	log_warnx("no errno here");
	errno = EACCES;
	log_error("could not bind");
	log_errorx("bad thing %s", "happened");
	log_debug("never %d", count_evaluation());
	log_info("line\nbreak\tand \x01 bell");
	log_set_level(LOG_DEBUG);
	log_debug("now %d", count_evaluation());
	log_set_level(LOG_WARN);
	log_info("dropped");
	log_warnx("kept");
	log_set_level(LOG_INFO);
}

static void
test_log_lines(void **state)
{
	static const char *const messages[] = {
	    "info: hello 42",
	    "warn: could not open \"x.conf\": " /* strerror(ENOENT) */,
	    "warn: no errno here",
	    "error: could not bind: " /* strerror(EACCES) */,
	    "error: bad thing happened",
	    "info: line\\nbreak\\tand \\x01 bell",
	    "debug: now 1",
	    "warn: kept",
	};
	char *out, *line, *save = NULL, prefix[64], want[256];
	regex_t re;
	size_t i = 0;

	(void)state;
	evaluated = 0;
	out = capture_log(log_calls);
	assert_int_equal(evaluated, 1);
	assert_int_equal(regcomp(&re,
	                     "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	                     "allotd\\[[0-9]+\\] ",
	                     REG_EXTENDED | REG_NOSUB),
	    0);
	snprintf(prefix, sizeof(prefix), "Z allotd[%ld] ", (long)getpid());
	for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		const char *msg;

		assert_true(i < sizeof(messages) / sizeof(messages[0]));
		assert_int_equal(regexec(&re, line, 0, NULL, 0), 0);
		assert_non_null(msg = strstr(line, prefix));
		msg += strlen(prefix);
		snprintf(want, sizeof(want), "%s%s", messages[i],
		    i == 1       ? strerror(ENOENT)
		        : i == 3 ? strerror(EACCES)
		                 : "");
		assert_string_equal(msg, want);
		i++;
	}
	assert_int_equal(i, sizeof(messages) / sizeof(messages[0]));
	regfree(&re);
	free(out);
}

static void
log_long_calls(void)
{
	char *big = malloc(20000);

	memset(big, 'y', 19999);
	big[19999] = '\0';
	log_info("%s", big);
	free(big);
}

static void
test_log_long_line(void **state)
{
	char *out;
	size_t len;

	(void)state;
	out = capture_log(log_long_calls);
	len = strlen(out);
	assert_int_equal(len, 8192); /* the longest line */
	assert_int_equal(out[len - 1], '\n');
	assert_memory_equal(out + len - 5, "y...\n", 5);
	assert_ptr_equal(strchr(out, '\n'), out + len - 1);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_table),
	    cmocka_unit_test(test_optional_key),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_required_only),
	    cmocka_unit_test(test_full_file),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_error_long_line_and_nul),
	    cmocka_unit_test(test_line_of_4096_bytes),
	    cmocka_unit_test(test_error_files),
	    cmocka_unit_test(test_error_keeps_config),
	    cmocka_unit_test(test_quoting_and_comments),
	    cmocka_unit_test(test_file_shapes),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_listen_forms),
	    cmocka_unit_test(test_log_levels_in_file),
	    cmocka_unit_test(test_reload_merge),
	    cmocka_unit_test(test_print_help),
	    cmocka_unit_test(test_sample_names_every_key),
	    cmocka_unit_test(test_readme_names_every_key),
	    cmocka_unit_test(test_sample_loads),
	    cmocka_unit_test(test_log_level_names),
	    cmocka_unit_test(test_log_lines),
	    cmocka_unit_test(test_log_long_line),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
