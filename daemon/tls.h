/*
 * tls: the server's OpenSSL context, built from the configured certificate, key
 * and client CA, and rebuilt on reload.
 */
#ifndef ALLOT_TLS_H
#define ALLOT_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/*
 * Returns a new SSL_CTX for the server (TLS 1.2 and later, client certificates
 * requested and checked against ca_file), or NULL with the reason in err. The
 * caller frees it with SSL_CTX_free; connections keep their own reference.
 *
 * The handshake succeeds without a client certificate or with one that does not
 * verify, so that the client gets a Twirp "unauthenticated" error it can read
 * instead of a bare TLS alert; tls_peer_subject() is the check, and it runs before
 * any handler.
 */
SSL_CTX *tls_server_ctx_new(
    const char *cert_file, const char *key_file, const char *ca_file, char *err, size_t errlen);

/*
 * Writes the verified client certificate's subject in RFC 2253 form into subject.
 * Returns 0, or -1 with the reason in why: no certificate, or one that did not
 * verify against the configured CA.
 */
int tls_peer_subject(SSL *ssl, char *subject, size_t len, char *why, size_t whylen)
    __attribute__((warn_unused_result));

#endif
