/*
 * server: the HTTPS listener. evhttp over OpenSSL bufferevents, limits and
 * timeouts, /healthz and /metrics, and everything under /twirp/ handed to twirp.
 */
#ifndef ALLOT_SERVER_H
#define ALLOT_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct event_base;
struct twirp;
struct server;

/* Returns a new server on base serving tw (not owned), or NULL when out of memory. */
struct server *server_new(struct event_base *base, struct twirp *tw);
/* Closes every connection, lingering ones at once; call it after the loop has stopped. */
void server_free(struct server *s);

/* Uses ctx for new connections from now on; takes ownership of ctx. */
void server_set_tls(struct server *s, SSL_CTX *ctx);
void server_set_limits(struct server *s, size_t max_body_bytes, int idle_timeout_s);

/* Binds host:port (TCP_NODELAY on the listener). Returns 0 or -1 with err set. */
int server_listen(struct server *s, const char *host, int port, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Stops accepting connections; requests on open ones get "unavailable" from now on. */
void server_stop_accepting(struct server *s);
bool server_draining(const struct server *s);

#endif
