/*
 * server: evhttp set up for allotd. Each accepted connection gets an OpenSSL
 * bufferevent from the current SSL_CTX (swapped on reload; connections keep the
 * context they started with). Bodies are capped by evhttp before they are
 * buffered whole; idle keep-alive connections are closed after the idle timeout.
 * What a request means is twirp.c's business.
 *
 * Closing lingers, as nginx's lingering close does: when evhttp lets go of a
 * connection it shuts the socket down for writing, and server.c keeps reading and
 * discarding what the client still sends until the client closes, LINGER_S have
 * passed or twice max_body_bytes have come; only then is the socket closed. A
 * client still sending a body evhttp refused (413 for one over max_body_bytes, sent
 * after the headers) thus reads the refusal, where closing with its data unread
 * would send it a reset that throws the answer away. Every close lingers; one the
 * client started ends on the next loop turn.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "db.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "strbuf.h"
#include "twirp.h"

/* How long, and how much of what a client sends after evhttp closed, is read and thrown away. */
#define LINGER_S 5
#define LINGER_BODIES 2 /* times max_body_bytes */

enum conn_state {
	CONN_NEW,    /* accepted; evhttp's record of it not yet looked up */
	CONN_HTTP,   /* evhttp serves it */
	CONN_CLOSED, /* evhttp is letting go of it; lingering starts once it has returned */
	CONN_LINGER, /* reading and discarding until EOF, the byte cap or the deadline */
	CONN_DEAD,   /* on s->dead, for reap_cb */
};

/*
 * What server.c keeps of an accepted connection beside evhttp's record: a reference
 * to its bufferevent, so that the socket (and its TLS session) can outlive evhttp's
 * hold on it. The bufferevent, the socket and the SSL are freed when the last
 * reference goes, in reap_cb or server_free, never inside one of its callbacks.
 */
struct conn {
	struct server *s;
	enum conn_state state;
	struct bufferevent *bev; /* one reference is ours */
	struct event *ev;        /* NEW: look-up; CLOSED: lingering starts; LINGER: deadline */
	size_t discarded, max_discard;
	char peer[64];
	LIST_ENTRY(conn) entry; /* s->conns, or s->dead once CONN_DEAD */
};

LIST_HEAD(conn_list, conn);

struct server {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct twirp *tw;
	SSL_CTX *ctx;
	bool draining;
	bool freeing;
	size_t max_body_bytes;
	struct conn_list conns, dead;
	struct event *reap;
	struct event *resume; /* accepting again after running out of descriptors */
};

/* How long accepting pauses when accept() runs out of descriptors or memory. */
#define ACCEPT_PAUSE_S 1

/*
 * The server whose listener is bound. evhttp gives its listener's callbacks its own
 * pointer, not ours, so the accept error callback finds the server here; allotd
 * has one server.
 */
static struct server *listening;

static void conn_ev_cb(evutil_socket_t fd, short what, void *arg);

/*
 * Marks c dead and stops its lingering; reap_cb drops our reference once the
 * current callbacks have returned.
 */
static void
conn_kill(struct conn *c)
{
	if (c->state == CONN_DEAD)
		return;
	if (c->state == CONN_LINGER) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	}
	event_del(c->ev);
	c->state = CONN_DEAD;
	LIST_REMOVE(c, entry);
	LIST_INSERT_HEAD(&c->s->dead, c, entry);
	event_active(c->s->reap, EV_TIMEOUT, 0);
}

/* Frees c; the bufferevent, its socket and its SSL go with the last reference. */
static void
conn_free(struct conn *c)
{
	LIST_REMOVE(c, entry);
	event_free(c->ev);
	bufferevent_decref(c->bev);
	free(c);
}

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	(void)fd;
	(void)what;
	while (!LIST_EMPTY(&s->dead))
		conn_free(LIST_FIRST(&s->dead));
}

/* Returns a record holding a reference to bev, its look-up queued, or NULL. */
static struct conn *
conn_new(struct server *s, struct bufferevent *bev)
{
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->ev = evtimer_new(s->base, conn_ev_cb, c)) == NULL) {
		free(c);
		return NULL;
	}
	c->s = s;
	c->state = CONN_NEW;
	c->bev = bev;
	bufferevent_incref(bev);
	LIST_INSERT_HEAD(&s->conns, c, entry);
	/*
	 * evhttp makes its record of the connection after this bufferevent is returned
	 * to it, and reads nothing before the loop turns: the look-up runs in between.
	 */
	event_active(c->ev, EV_TIMEOUT, 0);
	return c;
}

/* evhttp is freeing its record of the connection; it still uses the bufferevent until it returns. */
static void
conn_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct conn *c = arg;
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (c->state != CONN_HTTP)
		return;
	if (c->s->freeing) {
		conn_kill(c);
		return;
	}
	evhttp_connection_get_peer(evcon, &addr, &port);
	snprintf(c->peer, sizeof(c->peer), "%s:%u", addr != NULL ? addr : "?", (unsigned)port);
	c->state = CONN_CLOSED;
	event_active(c->ev, EV_TIMEOUT, 0);
}

/*
 * Finds evhttp's record of c's connection to be told when evhttp closes it. libevent
 * 2.1 has no hook that hands a server connection over before its first request is
 * dispatched, and a request refused for its size never is; evhttp passes its record
 * as the argument of the bufferevent's callbacks (http.c,
 * evhttp_connection_base_bufferevent_new), checked here against the bufferevent.
 */
static void
conn_adopt(struct conn *c)
{
	bufferevent_event_cb eventcb = NULL;
	void *arg = NULL;
	struct evhttp_connection *evcon;

	bufferevent_getcb(c->bev, NULL, NULL, &eventcb, &arg);
	evcon = arg;
	if (eventcb == NULL || evcon == NULL ||
	    evhttp_connection_get_bufferevent(evcon) != c->bev ||
	    evhttp_connection_get_server(evcon) != c->s->http) {
		/* evhttp already let go (it could not make a request), or these are not its callbacks. */
		conn_kill(c);
		return;
	}
	evhttp_connection_set_closecb(evcon, conn_closed_cb, c);
	c->state = CONN_HTTP;
}

static void
linger_end(struct conn *c, const char *why)
{
	log_debug("closed connection from %s: %s, %zu bytes discarded", c->peer, why, c->discarded);
	conn_kill(c);
}

/* Throws away what has been read; the bufferevent reads at most a few records per turn. */
static void
linger_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);

	evbuffer_drain(in, n);
	c->discarded += n;
	if (c->discarded > c->max_discard)
		linger_end(c, "too much sent after the answer");
}

/*
 * End of file or an error: OpenSSL 3 reports a client that closes without
 * close_notify as an error, which libevent 2.1 does not take for a dirty shutdown.
 */
static void
linger_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		linger_end(c, "the client closed");
}

/*
 * evhttp has let go: it has shut the socket down for writing (the client sees the
 * answer, then end of file) and disabled the bufferevent. Reads from now on, with
 * our callbacks; evhttp may have left part of a refused body in the input buffer.
 */
static void
linger_start(struct conn *c)
{
	struct timeval deadline = {LINGER_S, 0};

	c->max_discard = LINGER_BODIES * c->s->max_body_bytes;
	c->state = CONN_LINGER;
	bufferevent_setcb(c->bev, linger_read_cb, NULL, linger_event_cb, c);
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	if (bufferevent_enable(c->bev, EV_READ) != 0 || evtimer_add(c->ev, &deadline) != 0) {
		linger_end(c, "could not wait for the client");
		return;
	}
	linger_read_cb(c->bev, c);
}

static void
conn_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->state) {
	case CONN_NEW:
		conn_adopt(c);
		break;
	case CONN_CLOSED:
		linger_start(c);
		break;
	case CONN_LINGER:
		linger_end(c, "lingered long enough");
		break;
	case CONN_HTTP:
	case CONN_DEAD:
		break;
	}
}

/* The most a TLS record holds, and what bufferevent_openssl writes at most at once. */
#define JOIN_MAX 16384

/*
 * bufferevent_openssl writes each piece (chain) of its output buffer with an
 * SSL_write of its own, one TLS record and one send each: evhttp adds a reply's
 * status line and headers as one piece and moves its body in as another, which made
 * two records and two system calls a call (perf: tcp writes 13 % of a GetBalance).
 * Joining the buffer's first JOIN_MAX bytes as the body comes in makes the reply one
 * record (a larger one: a first record of 16 kB, then what follows).
 */
static void
join_output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	size_t len;

	(void)arg;
	if (info->n_added == 0)
		return;
	len = evbuffer_get_length(buf);
	if (len > JOIN_MAX)
		len = JOIN_MAX;
	/* Failing to join (out of memory) leaves the buffer as it was: two records. */
	if (evbuffer_get_contiguous_space(buf) < len)
		(void)evbuffer_pullup(buf, (ev_ssize_t)len);
}

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
	/*
	 * join_output_cb may move the bytes of a write that has to be retried (same
	 * bytes, another address), which OpenSSL refuses without this mode.
	 */
	SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* Clients that close without close_notify are common and harmless for HTTP/1.1. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	/* Added after bufferevent_openssl's own, it runs before it (callbacks run newest first). */
	if (evbuffer_add_cb(bufferevent_get_output(bev), join_output_cb, NULL) == NULL)
		log_warnx("out of memory: a connection's replies go out in two TLS records");
	/* Without a record the connection still serves; it closes at once, without lingering. */
	if (conn_new(s, bev) == NULL)
		log_warnx("out of memory: a new connection will close without lingering");
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

static void
resume_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	(void)fd;
	(void)what;
	if (s->bound != NULL)
		evconnlistener_enable(evhttp_bound_socket_get_listener(s->bound));
}

/*
 * accept() failed. Out of descriptors (EMFILE, ENFILE) or memory, the waiting
 * connection stays in the backlog and the listener would be readable again at
 * once: libevent would call accept() in a busy loop. So accepting pauses for
 * ACCEPT_PAUSE_S while the connections already open carry on; any other error
 * is logged and accepting goes on.
 */
static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	static const struct timeval pause = {ACCEPT_PAUSE_S, 0};
	struct server *s = listening;
	int e = EVUTIL_SOCKET_ERROR();

	(void)arg; /* evhttp's */

	if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM) {
		log_warnx("accept: %s", evutil_socket_error_to_string(e));
		return;
	}
	evconnlistener_disable(lev);
	log_warnx("accept: %s: not accepting new connections for %d s",
	    evutil_socket_error_to_string(e), ACCEPT_PAUSE_S);
	if (s == NULL || evtimer_add(s->resume, &pause) != 0) {
		log_errorx("could not schedule accepting again");
		evconnlistener_enable(lev);
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
	LIST_INIT(&s->conns);
	LIST_INIT(&s->dead);
	if ((s->reap = event_new(base, -1, 0, reap_cb, s)) == NULL ||
	    (s->resume = evtimer_new(base, resume_accept_cb, s)) == NULL ||
	    (s->http = evhttp_new(base)) == NULL) {
		server_free(s);
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
	/* evhttp closes what it still holds; conn_closed_cb then kills rather than lingers. */
	s->freeing = true;
	if (s->http != NULL)
		evhttp_free(s->http);
	while (!LIST_EMPTY(&s->conns))
		conn_kill(LIST_FIRST(&s->conns));
	while (!LIST_EMPTY(&s->dead))
		conn_free(LIST_FIRST(&s->dead));
	if (s->reap != NULL)
		event_free(s->reap);
	if (s->resume != NULL)
		event_free(s->resume);
	if (listening == s)
		listening = NULL;
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
	s->max_body_bytes = max_body_bytes;
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
	listening = s;
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(s->bound), accept_error_cb);
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
