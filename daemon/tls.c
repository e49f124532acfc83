/*
 * tls: SSL_CTX construction for allotd and the client-certificate check.
 *
 * Server certificates are ECDSA (P-256 in development); TLS 1.2 is the floor and
 * its cipher list keeps to ECDHE with AEAD ciphers. The verify callback lets the
 * handshake finish whatever the client presents, and the verification result is
 * read back per request: see tls.h. Reloading builds a new context and swaps it
 * in (server.c); this module keeps no state.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "tls.h"

static void
tls_error(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(
	    err, errlen, "could not %s \"%s\": %s", what, file, e != 0 ? buf : "unknown error");
	ERR_clear_error();
}

static int
tls_verify_cb(int preverify_ok, X509_STORE_CTX *ctx)
{
	(void)preverify_ok;
	(void)ctx;
	/* Keep going: SSL_get_verify_result() still holds the first error, checked per request. */
	return 1;
}

SSL_CTX *
tls_server_ctx_new(
    const char *cert_file, const char *key_file, const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	STACK_OF(X509_NAME) * names;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_error(err, errlen, "create TLS context for", cert_file);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
		tls_error(err, errlen, "set ciphers for", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		tls_error(err, errlen, "load certificate", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		tls_error(err, errlen, "load private key", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errlen, "match private key", key_file);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		tls_error(err, errlen, "load client CA", ca_file);
		goto fail;
	}
	if ((names = SSL_load_client_CA_file(ca_file)) == NULL) {
		tls_error(err, errlen, "read client CA names from", ca_file);
		goto fail;
	}
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify_cb);
	SSL_CTX_set_verify_depth(ctx, 4);
	/* Resumed sessions skip verification but keep its result; a reloaded CA starts afresh. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int
tls_peer_subject(SSL *ssl, char *subject, size_t len, char *why, size_t whylen)
{
	X509 *cert;
	BIO *bio = NULL;
	long verify;
	int n, rc = -1;

	if (ssl == NULL || (cert = SSL_get1_peer_certificate(ssl)) == NULL) {
		snprintf(why, whylen, "no client certificate");
		return -1;
	}
	if ((verify = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(why, whylen, "client certificate not accepted: %s",
		    X509_verify_cert_error_string(verify));
		goto out;
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
		snprintf(why, whylen, "could not read the client certificate's subject");
		goto out;
	}
	n = BIO_read(bio, subject, (int)len - 1);
	if (n <= 0 || (size_t)n >= len - 1) {
		snprintf(why, whylen, "client certificate subject is empty or too long");
		goto out;
	}
	subject[n] = '\0';
	rc = 0;
out:
	BIO_free(bio);
	X509_free(cert);
	return rc;
}
