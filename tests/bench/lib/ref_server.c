/*
 * ref_server: the reference of tests/bench/priorities, a minimal libevent + OpenSSL
 * HTTPS server that does no work. Like allotd it speaks HTTP/1.1 with keep-alive over
 * TLS 1.3 with the same certificates and TCP_NODELAY, asks for and verifies a client certificate, and
 * reads each request's body whole; then it answers 200 with a fixed body of the size
 * allotd's answer has (zero bytes, application/protobuf). What allotd does beyond
 * that (routing, the principal, decoding, the fair-share lookups, encoding) is what
 * the benchmark's ratio measures.
 *
 * Usage: ref_server -p PORT -c CERT -k KEY -a CA -s ANSWER_BYTES
 * Prints "listening" on stdout once it accepts; runs until killed.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

static char *answer;
static size_t answer_len;

static struct bufferevent *
bev_cb(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);

	if (ssl == NULL)
		return NULL;
	return bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);

	(void)arg;
	/* Read the body, as a server that decodes it would. */
	evbuffer_drain(in, evbuffer_get_length(in));
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Content-Type", "application/protobuf");
	evbuffer_add_reference(
	    evhttp_request_get_output_buffer(req), answer, answer_len, NULL, NULL);
	evhttp_send_reply(req, 200, "OK", NULL);
}

int
main(int argc, char **argv)
{
	const char *cert = NULL, *key = NULL, *ca = NULL;
	int port = 0, c;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	SSL_CTX *ctx;
	int one = 1;

	while ((c = getopt(argc, argv, "p:c:k:a:s:")) != -1) {
		switch (c) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'a':
			ca = optarg;
			break;
		case 's':
			answer_len = (size_t)strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(
			    stderr, "usage: ref_server -p PORT -c CERT -k KEY -a CA -s BYTES\n");
			return 2;
		}
	}
	if (port <= 0 || cert == NULL || key == NULL || ca == NULL) {
		fprintf(stderr, "usage: ref_server -p PORT -c CERT -k KEY -a CA -s BYTES\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((answer = calloc(1, answer_len + 1)) == NULL)
		return 1;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	if ((base = event_base_new()) == NULL || (http = evhttp_new(base)) == NULL)
		return 1;
	evhttp_set_bevcb(http, bev_cb, ctx);
	evhttp_set_gencb(http, request_cb, NULL);
	if ((bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port)) ==
	    NULL) {
		fprintf(stderr, "ref_server: cannot listen on 127.0.0.1:%d\n", port);
		return 1;
	}
	/* Linux copies TCP_NODELAY from the listener to each accepted socket, as for allotd. */
	if (setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY, &one,
	        sizeof(one)) != 0) {
		perror("ref_server: TCP_NODELAY");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	event_base_dispatch(base);
	evhttp_free(http);
	event_base_free(base);
	SSL_CTX_free(ctx);
	free(answer);
	return 0;
}
