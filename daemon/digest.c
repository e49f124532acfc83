/*
 * digest: SHA-256 over a batch's decoded fields, through OpenSSL's EVP.
 */
#include <stdio.h>
#include <string.h>

#include "digest.h"

void
digest_init(struct digest *d)
{
	d->md = EVP_MD_CTX_new();
	d->failed = d->md == NULL || EVP_DigestInit_ex(d->md, EVP_sha256(), NULL) != 1;
}

static void
digest_bytes(struct digest *d, const void *p, size_t len)
{
	if (!d->failed && EVP_DigestUpdate(d->md, p, len) != 1)
		d->failed = true;
}

void
digest_str(struct digest *d, const char *s)
{
	uint64_t n = strlen(s);

	digest_bytes(d, &n, sizeof(n));
	digest_bytes(d, s, n);
}

void
digest_int(struct digest *d, int64_t v)
{
	digest_bytes(d, &v, sizeof(v));
}

void
digest_opt(struct digest *d, bool set, const void *v, size_t len)
{
	unsigned char flag = set ? 1 : 0;

	digest_bytes(d, &flag, 1);
	if (set)
		digest_bytes(d, v, len);
}

int
digest_finish(struct digest *d, char *hex)
{
	unsigned char out[EVP_MAX_MD_SIZE];
	unsigned int outlen = 0;
	int rc = -1;

	if (!d->failed && EVP_DigestFinal_ex(d->md, out, &outlen) == 1) {
		for (unsigned int i = 0; i < outlen; i++)
			snprintf(hex + 2 * i, 3, "%02x", out[i]);
		rc = 0;
	}
	EVP_MD_CTX_free(d->md);
	d->md = NULL;
	return rc;
}
