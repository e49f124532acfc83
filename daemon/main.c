/*
 * allotd: arguments, the configuration check, the start-up tasks, signals and
 * the loop. Everything else is a module's: server (listener), twirp (RPC), db
 * (PostgreSQL), auth (principals), tls, config, log.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "audit.h"
#include "statement.h"
#include "auth.h"
#include "config.h"
#include "db.h"
#include "expiry.h"
#include "events.h"
#include "ledger.h"
#include "log.h"
#include "migrate.h"
#include "rpc.h"
#include "server.h"
#include "share.h"
#include "tls.h"
#include "twirp.h"

#define DEFAULT_CONFIG "/etc/allot/allotd.conf"

struct allotd {
	const char *config_path;
	struct config *cfg;
	struct event_base *base;
	struct db *db;
	struct ledger *ledger;
	struct audit *audit; /* NULL without an audit key */
	struct expiry *expiry;
	struct auth *auth;
	struct events *events;
	struct share *share;
	struct twirp *tw;
	struct server *server;
	struct event *sigterm, *sigint, *sighup;
	bool stopping;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: allotd [-c FILE] [--migrate | --add-principal SUBJECT ROLE [SCOPE] |\n"
	    "                         --audit-pubkey]\n"
	    "       allotd -n [-c FILE | FILE]\n"
	    "\n"
	    "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
	    "  -n, --check         check the configuration and the TLS files, then exit\n"
	    "      --migrate       apply the pending database migrations, then exit\n"
	    "      --add-principal SUBJECT ROLE [SCOPE]\n"
	    "                      map a certificate subject to a role, then exit\n"
	    "      --audit-pubkey  print the public key of audit_key (PEM), then exit\n"
	    "      --help-config   list the configuration keys\n"
	    "  -h, --help          this text\n");
}

static void
share_settings_of(const struct config *cfg, struct share_settings *s)
{
	s->period_s = cfg->fairshare_period_s;
	s->half_life_s = cfg->fairshare_half_life_s;
	s->alg = cfg->fairshare_algorithm == 1 ? FS_CLASSIC : FS_FAIR_TREE;
	s->pacing_weight = cfg->fairshare_pacing_permille / 1000.0;
}

/* Applies the reloadable settings of cfg to the running modules. */
static void
apply_settings(struct allotd *d)
{
	log_set_level(d->cfg->log_level);
	server_set_limits(d->server, d->cfg->max_body_bytes, d->cfg->idle_timeout_s);
	db_set_reconnect_max(d->db, d->cfg->db_reconnect_max_s);
	ledger_set_limits(d->ledger, d->cfg->lien_sweep_s, d->cfg->reserve_group_max);
	if (d->audit != NULL)
		audit_set_period(d->audit, d->cfg->audit_seal_s);
	expiry_set_period(d->expiry, d->cfg->allocation_expiry_s);
	if (d->share != NULL) {
		struct share_settings s;

		share_settings_of(d->cfg, &s);
		share_set_settings(d->share, &s);
	}
}

static void
reload(struct allotd *d)
{
	struct config *fresh;
	SSL_CTX *ctx;
	char err[1024];

	log_info("reloading %s", d->config_path);
	if ((fresh = config_new()) == NULL ||
	    config_load(fresh, d->config_path, err, sizeof(err)) != 0) {
		log_warnx(
		    "keeping the running configuration: %s", fresh != NULL ? err : "out of memory");
		config_free(fresh);
		return;
	}
	ctx = tls_server_ctx_new(fresh->tls_cert, fresh->tls_key, fresh->tls_ca, err, sizeof(err));
	if (ctx == NULL) {
		log_warnx("keeping the running configuration and certificates: %s", err);
		config_free(fresh);
		return;
	}
	if (config_reload_merge(d->cfg, fresh, err, sizeof(err)) != 0)
		log_warnx("%s", err);
	config_free(fresh);
	server_set_tls(d->server, ctx);
	apply_settings(d);
	log_info("configuration and certificates reloaded");
}

/*
 * Leaves the loop once the last replies had time to reach the socket: evhttp has
 * queued them when the count of calls in flight drops, not yet written them.
 */
static void
exit_soon(struct allotd *d)
{
	static const struct timeval flush = {0, 200000};

	event_base_loopexit(d->base, &flush);
}

static void
idle_cb(void *arg)
{
	struct allotd *d = arg;

	if (d->stopping)
		exit_soon(d);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct allotd *d = arg;

	(void)what;
	if (sig == SIGHUP) {
		reload(d);
		return;
	}
	if (d->stopping) {
		log_info("stopping now, %d requests in flight", twirp_inflight(d->tw));
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = true;
	server_stop_accepting(d->server);
	log_info("stopping: no new connections, %d requests in flight", twirp_inflight(d->tw));
	if (twirp_inflight(d->tw) == 0)
		exit_soon(d);
}

/*
 * The event loop. With epoll's changelist, an event added and deleted again within
 * one turn of the loop (a bufferevent enabling writes, flushing and disabling them
 * again, as every reply and every query does) costs no epoll_ctl at all. Its caveat,
 * fds dup()ed behind libevent's back, does not arise here: every socket is owned by
 * one event.
 */
static struct event_base *
event_loop_new(void)
{
	struct event_config *cfg;
	struct event_base *base;

	if ((cfg = event_config_new()) == NULL)
		return NULL;
	if (event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) != 0) {
		event_config_free(cfg);
		return NULL;
	}
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

/*
 * Raises the soft limit on open descriptors to the hard one: every client keeps a
 * connection open, and a site's collectors, schedulers and trainers are many. A
 * service manager's LimitNOFILE sets the hard limit.
 */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("getrlimit(RLIMIT_NOFILE)");
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("setrlimit(RLIMIT_NOFILE)");
	}
}

static int
serve(struct allotd *d)
{
	const struct twirp_route *routes;
	size_t nroutes;
	SSL_CTX *ctx;
	char err[1024];

	raise_nofile();
	if ((ctx = tls_server_ctx_new(
	         d->cfg->tls_cert, d->cfg->tls_key, d->cfg->tls_ca, err, sizeof(err))) == NULL)
		log_fatal("%s", err);
	if ((d->base = event_loop_new()) == NULL)
		log_fatal("could not create the event loop");
	if ((d->db = db_new(d->base, d->cfg->database, d->cfg->db_pool_size)) == NULL)
		log_fatal("could not create the database pool");
	if ((d->auth = auth_new(d->base, d->db)) == NULL)
		log_fatal("could not create the principal cache");
	routes = rpc_routes(&nroutes);
	if ((d->tw = twirp_new(d->db, d->auth, routes, nroutes, err, sizeof(err))) == NULL)
		log_fatal("%s", err);
	if ((d->ledger = ledger_new(d->base, d->db, twirp_metrics(d->tw), d->cfg->lien_sweep_s,
	         d->cfg->reserve_group_max)) == NULL)
		log_fatal("could not create the ledger");
	if (d->cfg->audit_key != NULL) {
		EVP_PKEY *key = audit_key_load(d->cfg->audit_key, err, sizeof(err));

		if (key == NULL)
			log_fatal("%s", err);
		if (statement_set_key(key) != 0)
			log_fatal("could not keep the audit key for statements");
		if ((d->audit = audit_new(
		         d->base, d->db, twirp_metrics(d->tw), key, d->cfg->audit_seal_s)) == NULL)
			log_fatal("could not create the journal's sealer");
	}
	if ((d->expiry = expiry_new(
	         d->base, d->db, twirp_metrics(d->tw), d->cfg->allocation_expiry_s)) == NULL)
		log_fatal("could not create the expiry of allocations");
	if ((d->events = events_new(d->base, d->db, twirp_metrics(d->tw))) == NULL)
		log_fatal("could not create the events' announcer");
	{
		struct share_settings s;

		share_settings_of(d->cfg, &s);
		if ((d->share = share_new(d->base, d->cfg->database, &s)) == NULL)
			log_fatal("could not create the fair-share engine");
	}
	twirp_set_idle_cb(d->tw, idle_cb, d);
	twirp_set_context(d->tw, d->ledger);
	if ((d->server = server_new(d->base, d->tw)) == NULL)
		log_fatal("could not create the HTTP server");
	server_set_tls(d->server, ctx);
	apply_settings(d);
	if (server_listen(d->server, d->cfg->listen_host, d->cfg->listen_port, err, sizeof(err)) !=
	    0)
		log_fatal("%s", err);
	d->sigterm = evsignal_new(d->base, SIGTERM, signal_cb, d);
	d->sigint = evsignal_new(d->base, SIGINT, signal_cb, d);
	d->sighup = evsignal_new(d->base, SIGHUP, signal_cb, d);
	if (d->sigterm == NULL || d->sigint == NULL || d->sighup == NULL ||
	    evsignal_add(d->sigterm, NULL) != 0 || evsignal_add(d->sigint, NULL) != 0 ||
	    evsignal_add(d->sighup, NULL) != 0)
		log_fatal("could not install signal handlers");
	if (db_start(d->db) != 0)
		log_fatal("could not start the database pool");
	if (ledger_start(d->ledger) != 0)
		log_fatal("could not start the sweep of expired liens");
	if (d->audit != NULL && audit_start(d->audit) != 0)
		log_fatal("could not start sealing the journal");
	if (d->audit == NULL)
		log_info("audit_key is not set: this allotd seals no journal blocks");
	if (expiry_start(d->expiry) != 0)
		log_fatal("could not start the expiry of allocations");
	if (auth_start(d->auth) != 0)
		log_fatal("could not start reading the principals");
	if (events_start(d->events) != 0)
		log_fatal("could not start listening for events");
	if (share_start(d->share) != 0)
		log_fatal("could not start computing fair share");
	log_info("listening on %s:%d", d->cfg->listen_host, d->cfg->listen_port);
	if (event_base_dispatch(d->base) < 0)
		log_fatal("the event loop failed");
	log_info("stopped");

	event_free(d->sigterm);
	event_free(d->sigint);
	event_free(d->sighup);
	server_free(d->server);
	twirp_free(d->tw);
	ledger_free(d->ledger);
	audit_free(d->audit);
	statement_clear_key();
	expiry_free(d->expiry);
	share_free(d->share);
	/* Before the pool, whose loop and settings its listening connection shares. */
	auth_free(d->auth);
	events_free(d->events);
	db_free(d->db);
	event_base_free(d->base);
	return 0;
}

int
main(int argc, char **argv)
{
	enum { OPT_MIGRATE = 256, OPT_ADD_PRINCIPAL, OPT_HELP_CONFIG, OPT_AUDIT_PUBKEY };
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check", no_argument, NULL, 'n'},
	    {"migrate", no_argument, NULL, OPT_MIGRATE},
	    {"add-principal", no_argument, NULL, OPT_ADD_PRINCIPAL},
	    {"help-config", no_argument, NULL, OPT_HELP_CONFIG},
	    {"audit-pubkey", no_argument, NULL, OPT_AUDIT_PUBKEY},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct allotd d = {.config_path = DEFAULT_CONFIG};
	bool check = false, migrate = false, add_principal = false, pubkey = false;
	char err[1024];
	int c, rc;

	log_set_ident("allotd");
	while ((c = getopt_long(argc, argv, "c:nh", options, NULL)) != -1) {
		switch (c) {
		case 'c':
			d.config_path = optarg;
			break;
		case 'n':
			check = true;
			break;
		case OPT_MIGRATE:
			migrate = true;
			break;
		case OPT_ADD_PRINCIPAL:
			add_principal = true;
			break;
		case OPT_AUDIT_PUBKEY:
			pubkey = true;
			break;
		case OPT_HELP_CONFIG:
			config_print_help(stdout);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (check && argc == 1) {
		/* "allotd -n FILE", as nginx -t and sshd -t users expect. */
		d.config_path = argv[0];
		argc = 0;
	}
	if ((add_principal && (argc < 2 || argc > 3)) || (!add_principal && argc != 0)) {
		usage(stderr);
		return 2;
	}
	if ((d.cfg = config_new()) == NULL)
		log_fatal("out of memory");
	if (config_load(d.cfg, d.config_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "allotd: %s\n", err);
		config_free(d.cfg);
		return 1;
	}
	log_set_level(d.cfg->log_level);
	if (check) {
		SSL_CTX *ctx = tls_server_ctx_new(
		    d.cfg->tls_cert, d.cfg->tls_key, d.cfg->tls_ca, err, sizeof(err));

		if (ctx == NULL) {
			fprintf(stderr, "allotd: %s: %s\n", d.config_path, err);
			config_free(d.cfg);
			return 1;
		}
		SSL_CTX_free(ctx);
		printf("configuration OK\n");
		config_free(d.cfg);
		return 0;
	}
	if (pubkey) {
		EVP_PKEY *key = NULL;

		if (d.cfg->audit_key == NULL)
			snprintf(err, sizeof(err), "%s: audit_key is not set", d.config_path);
		else
			key = audit_key_load(d.cfg->audit_key, err, sizeof(err));
		rc = key != NULL && audit_key_print_public(key, stdout) == 0 ? 0 : 1;
		if (key == NULL)
			fprintf(stderr, "allotd: %s\n", err);
		EVP_PKEY_free(key);
		config_free(d.cfg);
		return rc;
	}
	if (migrate || add_principal) {
		rc = migrate ? migrate_run(d.cfg->database, err, sizeof(err))
		             : migrate_add_principal(d.cfg->database, argv[0], argv[1],
		                   argc > 2 ? argv[2] : NULL, err, sizeof(err));
		if (rc != 0)
			fprintf(stderr, "allotd: %s\n", err);
		else if (add_principal)
			printf("principal \"%s\" is %s%s%s\n", argv[0], argv[1],
			    argc > 2 ? " of " : "", argc > 2 ? argv[2] : "");
		config_free(d.cfg);
		return rc != 0;
	}
	/* A client that goes away mid-reply must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	rc = serve(&d);
	config_free(d.cfg);
	return rc;
}
