/*
 * server: evhttp set up for allotd. Each accepted connection gets an OpenSSL
 * bufferevent from the current SSL_CTX (swapped on reload; connections keep the
 * context they started with). Bodies are capped by evhttp before they are
 * buffered whole; idle keep-alive connections are closed after the idle timeout.
 * What a request means is twirp.c's business.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>

#include "db.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "strbuf.h"
#include "twirp.h"

struct server {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct twirp *tw;
	SSL_CTX *ctx;
	bool draining;
};

static struct bufferevent *
server_bev_cb(struct event_base *base, void *arg)
{
	struct server *s = arg;
	struct bufferevent *bev;
	SSL *ssl;

	if ((ssl = SSL_new(s->ctx)) == NULL) {
		log_errorx("could not create a TLS session for a new connection");
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* Clients that close without close_notify are common and harmless for HTTP/1.1. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static void
reply_text(struct evhttp_request *req, int status, const char *reason, const char *type,
    const char *text, size_t len)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	evbuffer_add(evhttp_request_get_output_buffer(req), text, len);
	evhttp_send_reply(req, status, reason, NULL);
}

static void
serve_healthz(struct server *s, struct evhttp_request *req)
{
	if (s->draining)
		reply_text(req, 503, "Service Unavailable", "text/plain", "stopping\n", 9);
	else if (!db_is_up(twirp_db(s->tw)))
		reply_text(
		    req, 503, "Service Unavailable", "text/plain", "database unavailable\n", 21);
	else
		reply_text(req, 200, "OK", "text/plain", "ok\n", 3);
}

static void
serve_metrics(struct server *s, struct evhttp_request *req)
{
	struct db_stats stats;
	struct strbuf sb;

	db_get_stats(twirp_db(s->tw), &stats);
	strbuf_init(&sb);
	metrics_render(twirp_metrics(s->tw), &stats, s->draining, &sb);
	if (strbuf_failed(&sb))
		evhttp_send_error(req, 500, "out of memory");
	else
		reply_text(req, 200, "OK", "text/plain; version=0.0.4", sb.data, sb.len);
	strbuf_cleanup(&sb);
}

static void
server_request_cb(struct evhttp_request *req, void *arg)
{
	struct server *s = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (path == NULL)
		path = "";
	if (strcmp(path, "/healthz") == 0 && cmd == EVHTTP_REQ_GET) {
		serve_healthz(s, req);
	} else if (strcmp(path, "/metrics") == 0 && cmd == EVHTTP_REQ_GET) {
		serve_metrics(s, req);
	} else if (s->draining) {
		static const char body[] =
		    "{\"code\":\"unavailable\",\"msg\":\"allotd is stopping\",\"meta\":{}}";

		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		reply_text(
		    req, 503, "Service Unavailable", "application/json", body, sizeof(body) - 1);
	} else {
		/* Every other path is Twirp's to answer, bad_route included. */
		twirp_handle(s->tw, req);
	}
}

struct server *
server_new(struct event_base *base, struct twirp *tw)
{
	struct server *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->base = base;
	s->tw = tw;
	if ((s->http = evhttp_new(base)) == NULL) {
		free(s);
		return NULL;
	}
	evhttp_set_bevcb(s->http, server_bev_cb, s);
	evhttp_set_gencb(s->http, server_request_cb, s);
	/* Every method reaches the callback, so that Twirp answers bad_route rather than 405. */
	evhttp_set_allowed_methods(s->http,
	    EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
	        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(s->http, "application/json");
	return s;
}

void
server_free(struct server *s)
{
	if (s == NULL)
		return;
	if (s->http != NULL)
		evhttp_free(s->http);
	SSL_CTX_free(s->ctx);
	free(s);
}

void
server_set_tls(struct server *s, SSL_CTX *ctx)
{
	SSL_CTX_free(s->ctx);
	s->ctx = ctx;
}

void
server_set_limits(struct server *s, size_t max_body_bytes, int idle_timeout_s)
{
	evhttp_set_max_body_size(s->http, (ev_ssize_t)max_body_bytes);
	evhttp_set_max_headers_size(s->http, 16384);
	evhttp_set_timeout(s->http, idle_timeout_s);
}

int
server_listen(struct server *s, const char *host, int port, char *err, size_t errlen)
{
	evutil_socket_t fd;
	int one = 1;

	s->bound = evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)port);
	if (s->bound == NULL) {
		snprintf(err, errlen, "could not listen on %s:%d", host, port);
		return -1;
	}
	fd = evhttp_bound_socket_get_fd(s->bound);
	/* Linux copies TCP_NODELAY from the listener to each accepted socket. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
		snprintf(err, errlen, "could not set TCP_NODELAY on %s:%d", host, port);
		return -1;
	}
	return 0;
}

void
server_stop_accepting(struct server *s)
{
	if (s->bound != NULL) {
		evhttp_del_accept_socket(s->http, s->bound);
		s->bound = NULL;
	}
	s->draining = true;
}

bool
server_draining(const struct server *s)
{
	return s->draining;
}
