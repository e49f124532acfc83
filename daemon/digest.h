/*
 * digest: the SHA-256 that tells a replayed batch from a conflicting one, taken
 * over a request's decoded fields (so that the same batch in protobuf or JSON
 * has one digest), each field length-prefixed or fixed-size so that no two
 * batches share an input.
 */
#ifndef ALLOT_DIGEST_H
#define ALLOT_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* The hex digest's size, with its NUL. */
#define DIGEST_HEX_SIZE (2 * EVP_MAX_MD_SIZE + 1)

struct digest {
	EVP_MD_CTX *md;
	bool failed;
};

/* Starts a digest in caller's storage; a failure shows at digest_finish. */
void digest_init(struct digest *d);
void digest_str(struct digest *d, const char *s);
void digest_int(struct digest *d, int64_t v);
/* An optional value: whether it is set, then its len bytes when it is. */
void digest_opt(struct digest *d, bool set, const void *v, size_t len);
/* Writes the hex digest into hex (DIGEST_HEX_SIZE bytes) and frees d. Returns 0 or -1. */
int digest_finish(struct digest *d, char *hex) __attribute__((warn_unused_result));

#endif
