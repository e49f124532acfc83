/*
 * run: `allot-collect run`, the collector daemon: arguments, -n, signals, the loop.
 *
 * The daemon is one libevent loop (sources, timers, signals, its /metrics) plus
 * the sending thread of send.c, so that the loop never waits on allotd. Sources:
 * sacct run every sacct_interval_s over a window that reaches sacct_window_s
 * back past the end of the last good run (records are read again; allotd
 * deduplicates them), a file or FIFO (input_file), exporters scraped over HTTP
 * (dcgm_url, amd_url). What they read goes to the batcher, batches to the spool,
 * the spool to allotd. When the spool is full the sources stop (the FIFO is not
 * read, sacct and scrapes are skipped), the batch that did not fit is held in
 * memory and tried again every spool_retry_s; reading resumes once it fits.
 *
 * SIGHUP reloads the configuration (keeping the running one if the new is bad),
 * SIGTERM and SIGINT stop: sources first, then what was read is spooled, then the
 * sender finishes the batch in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <getopt.h>

#include <event2/event.h>
#include <event2/http.h>

#include "collector.h"
#include "log.h"
#include "parse.h"
#include "report.h"
#include "run.h"
#include "sources.h"

#define REPORT_S 30

static void
apply_settings(struct collector *c)
{
	struct sender_settings ss;

	log_set_level(c->cfg->log_level);
	spool_set_max_bytes(c->spool, (uint64_t)c->cfg->spool_max_bytes);
	batcher_set_size(
	    c->batcher, (size_t)c->cfg->batch_records, (size_t)c->cfg->batch_max_bytes);
	if (batcher_set_partitions(c->batcher, c->cfg->partitions) != 0)
		log_errorx("out of memory: the partitions list is unchanged");
	collector_sender_settings(c->cfg, &ss);
	sender_set_settings(c->sender, &ss);
}

static void
reload(struct collector *c)
{
	struct collect_config *fresh;
	char err[1024];
	int r;

	log_info("reloading %s", c->config_path);
	if ((fresh = collect_config_new()) == NULL ||
	    collect_config_load(fresh, c->config_path, err, sizeof(err)) != 0) {
		log_warnx(
		    "keeping the running configuration: %s", fresh != NULL ? err : "out of memory");
		collect_config_free(fresh);
		return;
	}
	/* The certificates and the server are the sender's, made at start. */
	if (strcmp(fresh->server, c->cfg->server) != 0 ||
	    strcmp(fresh->tls_cert, c->cfg->tls_cert) != 0 ||
	    strcmp(fresh->tls_key, c->cfg->tls_key) != 0 ||
	    strcmp(fresh->tls_ca, c->cfg->tls_ca) != 0)
		log_warnx("server and certificates apply at the next restart");
	r = collect_config_reload_merge(c->cfg, fresh, err, sizeof(err));
	collect_config_free(fresh);
	for (int i = 0; i < 2; i++)
		c->scrapes[i].stale = true;
	if (r != 0)
		log_warnx("%s", err);
	apply_settings(c);
	log_info("configuration reloaded");
}

static void
stop(struct collector *c)
{
	char err[512];
	int rc;

	c->stopping = true;
	if (c->in_ev != NULL)
		event_del(c->in_ev);
	if (c->in_fd >= 0)
		source_input_process(c, false);
	rc = batcher_flush(c->batcher, err, sizeof(err));
	if (rc != 0)
		log_warnx("stopping with %" PRIu64 " records read but not spooled (%s): a sacct "
		          "source reads them again at the next start",
		    batcher_pending(c->batcher), err);
	event_base_loopexit(c->base, NULL);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct collector *c = arg;

	(void)what;
	if (sig == SIGHUP) {
		reload(c);
		return;
	}
	if (c->stopping) {
		event_base_loopbreak(c->base);
		return;
	}
	log_info("stopping: sources closed, finishing the batch in flight");
	stop(c);
}

static struct event *
timer_now(struct collector *c, event_callback_fn cb)
{
	struct timeval now = {0, 0};
	struct event *ev = evtimer_new(c->base, cb, c);

	if (ev == NULL || evtimer_add(ev, &now) != 0)
		log_fatal("could not start a timer");
	return ev;
}

static void
usage_run(FILE *f)
{
	fprintf(f,
	    "usage: allot-collect run [-c FILE]\n"
	    "       allot-collect run -n [-c FILE | FILE]\n"
	    "\n"
	    "  -c, --config FILE   configuration file (default " COLLECT_DEFAULT_CONFIG ")\n"
	    "  -n, --check         check the configuration, then exit\n"
	    "      --help-config   list the configuration keys\n");
}

int
collect_run_main(int argc, char **argv)
{
	enum { OPT_HELP_CONFIG = 256 };
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check", no_argument, NULL, 'n'},
	    {"help-config", no_argument, NULL, OPT_HELP_CONFIG},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct collector c = {.config_path = COLLECT_DEFAULT_CONFIG, .in_fd = -1};
	struct spool_stats ss;
	bool check = false;
	char err[1024];
	int ch;

	c.sacct.fd = -1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:nh", options, NULL)) != -1) {
		switch (ch) {
		case 'c':
			c.config_path = optarg;
			break;
		case 'n':
			check = true;
			break;
		case OPT_HELP_CONFIG:
			collect_config_print_help(stdout);
			return COLLECT_EXIT_OK;
		case 'h':
			usage_run(stdout);
			return COLLECT_EXIT_OK;
		default:
			usage_run(stderr);
			return COLLECT_EXIT_USAGE;
		}
	}
	if (check && optind == argc - 1)
		c.config_path = argv[optind++];
	if (optind != argc) {
		usage_run(stderr);
		return COLLECT_EXIT_USAGE;
	}
	if ((c.cfg = collector_load_config(c.config_path)) == NULL)
		return COLLECT_EXIT_FAIL;
	if (check) {
		if (c.cfg->timezone[0] != '\0' &&
		    collect_zone_enter(&c.zone, c.cfg->timezone, err, sizeof(err)) != 0) {
			fprintf(stderr, "allot-collect: %s: %s\n", c.config_path, err);
			collect_config_free(c.cfg);
			return COLLECT_EXIT_FAIL;
		}
		collect_zone_leave(&c.zone);
		printf("configuration OK\n");
		collect_config_free(c.cfg);
		return COLLECT_EXIT_OK;
	}
	log_set_level(c.cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	if (collector_open(&c, NULL) != 0) {
		collector_close(&c);
		return COLLECT_EXIT_FAIL;
	}
	spool_get_stats(c.spool, -1, &ss);
	if (ss.batches > 0)
		log_info("spool %s holds %zu batches (%" PRIu64 " records) from before: sending "
		         "them first",
		    c.cfg->spool_dir, ss.batches, ss.records);
	if ((c.base = event_base_new()) == NULL)
		log_fatal("could not create the event loop");
	c.sigterm = evsignal_new(c.base, SIGTERM, signal_cb, &c);
	c.sigint = evsignal_new(c.base, SIGINT, signal_cb, &c);
	c.sighup = evsignal_new(c.base, SIGHUP, signal_cb, &c);
	if (c.sigterm == NULL || c.sigint == NULL || c.sighup == NULL ||
	    evsignal_add(c.sigterm, NULL) != 0 || evsignal_add(c.sigint, NULL) != 0 ||
	    evsignal_add(c.sighup, NULL) != 0)
		log_fatal("could not install signal handlers");
	c.flush_ev = evtimer_new(c.base, collector_flush_cb, &c);
	c.retry_ev = evtimer_new(c.base, collector_retry_cb, &c);
	c.report_ev = event_new(c.base, -1, EV_PERSIST, report_backlog_cb, &c);
	c.poll_ev = event_new(c.base, -1, EV_PERSIST, source_input_poll_cb, &c);
	if (c.flush_ev == NULL || c.retry_ev == NULL || c.report_ev == NULL || c.poll_ev == NULL)
		log_fatal("out of memory");
	{
		struct timeval report = {REPORT_S, 0}, poll = {1, 0};

		event_add(c.report_ev, &report);
		event_add(c.poll_ev, &poll);
	}
	if (c.cfg->metrics_host[0] != '\0') {
		if ((c.http = evhttp_new(c.base)) == NULL ||
		    evhttp_bind_socket(
		        c.http, c.cfg->metrics_host, (unsigned short)c.cfg->metrics_port) != 0)
			log_fatal("could not listen on %s for /metrics", c.cfg->metrics_listen);
		evhttp_set_allowed_methods(c.http, EVHTTP_REQ_GET);
		evhttp_set_cb(c.http, "/metrics", report_metrics_cb, &c);
		log_info("metrics on http://%s/metrics", c.cfg->metrics_listen);
	}
	if (sender_start(c.sender, err, sizeof(err)) != 0)
		log_fatal("%s", err);
	if (source_input_open(&c) != 0)
		log_fatal("could not read input_file %s", c.cfg->input_file);
	source_sacct_load_state(&c);
	c.sacct_ev = timer_now(&c, source_sacct_cb);
	c.scrapes[0] = (struct scrape){.name = "dcgm", .url = c.cfg->dcgm_url, .c = &c};
	c.scrapes[1] = (struct scrape){.name = "amd", .url = c.cfg->amd_url, .c = &c};
	c.scrape_ev = timer_now(&c, source_scrape_cb);
	if ((c.sacct.reap = evtimer_new(c.base, source_sacct_reap_cb, &c)) == NULL)
		log_fatal("out of memory");
	log_info("collecting for site %s into %s", c.cfg->site, c.cfg->spool_dir);

	if (event_base_dispatch(c.base) < 0)
		log_fatal("the event loop failed");
	sender_stop(c.sender);
	spool_get_stats(c.spool, -1, &ss);
	log_info(
	    "stopped; %zu batches (%" PRIu64 " records) left in the spool", ss.batches, ss.records);

	if (c.sacct.pid > 0) {
		kill(c.sacct.pid, SIGTERM);
		waitpid(c.sacct.pid, NULL, 0);
	}
	for (int i = 0; i < 2; i++)
		if (c.scrapes[i].conn != NULL)
			evhttp_connection_free(c.scrapes[i].conn);
	if (c.http != NULL)
		evhttp_free(c.http);
	if (c.sacct.ev != NULL)
		event_free(c.sacct.ev);
	if (c.sacct.fd >= 0)
		close(c.sacct.fd);
	strbuf_cleanup(&c.sacct.out);
	event_free(c.sacct.reap);
	if (c.in_ev != NULL)
		event_free(c.in_ev);
	if (c.in_fd >= 0)
		close(c.in_fd);
	strbuf_cleanup(&c.in_buf);
	event_free(c.sacct_ev);
	event_free(c.scrape_ev);
	event_free(c.flush_ev);
	event_free(c.retry_ev);
	event_free(c.report_ev);
	event_free(c.poll_ev);
	event_free(c.sigterm);
	event_free(c.sigint);
	event_free(c.sighup);
	collector_close(&c);
	event_base_free(c.base);
	return COLLECT_EXIT_OK;
}
