/*
 * jobrecords: reads allot.v1.JobRecord messages from JSON lines and derives
 * content-based batch ids. Pure: no network, no printing; sending and
 * reporting are ingest.c's.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "jobrecords.h"
#include "pbjson.h"

void
jobrecords_init(struct jobrecords *recs)
{
	memset(recs, 0, sizeof(*recs));
}

void
jobrecords_cleanup(struct jobrecords *recs)
{
	for (size_t i = 0; i < recs->n; i++)
		protobuf_c_message_free_unpacked(&recs->records[i]->base, NULL);
	free(recs->records);
	free(recs->lines);
	jobrecords_init(recs);
}

static bool
jobrecords_push(struct jobrecords *recs, Allot__V1__JobRecord *rec, size_t line)
{
	if (recs->n == recs->cap) {
		size_t cap = recs->cap > 0 ? recs->cap * 2 : 256;
		Allot__V1__JobRecord **r = realloc(recs->records, cap * sizeof(*r));
		size_t *l;

		if (r == NULL)
			return false;
		recs->records = r;
		l = realloc(recs->lines, cap * sizeof(*l));
		if (l == NULL)
			return false;
		recs->lines = l;
		recs->cap = cap;
	}
	recs->records[recs->n] = rec;
	recs->lines[recs->n] = line;
	recs->n++;
	return true;
}

int
jobrecords_read(FILE *in, struct jobrecords *recs, char *err, size_t errlen)
{
	char *line = NULL, derr[256];
	size_t cap = 0, lineno = 0, start;
	ssize_t len;
	ProtobufCMessage *msg;
	int ret = -1;

	errno = 0;
	while ((len = getline(&line, &cap, in)) >= 0) {
		lineno++;
		for (start = 0; start < (size_t)len && isspace((unsigned char)line[start]); start++)
			;
		if (start == (size_t)len || line[start] == '#')
			continue;
		msg = pbjson_decode(&allot__v1__job_record__descriptor, line + start,
		    (size_t)len - start, derr, sizeof(derr));
		if (msg == NULL) {
			snprintf(err, errlen, "line %zu: %s", lineno, derr);
			goto done;
		}
		if (!jobrecords_push(recs, (Allot__V1__JobRecord *)msg, lineno)) {
			protobuf_c_message_free_unpacked(msg, NULL);
			snprintf(err, errlen, "out of memory at line %zu", lineno);
			ret = -2;
			goto done;
		}
	}
	if (ferror(in)) {
		snprintf(err, errlen, "could not read line %zu: %s", lineno + 1,
		    strerror(errno != 0 ? errno : EIO));
		ret = -2;
		goto done;
	}
	ret = 0;
done:
	free(line);
	return ret;
}

int
jobrecords_batch_id_of(const char *site, const ProtobufCMessage *req, char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	uint8_t *buf;
	size_t size;
	int ok;

	size = protobuf_c_message_get_packed_size(req);
	buf = malloc(size > 0 ? size : 1);
	if (buf == NULL)
		return -1;
	protobuf_c_message_pack(req, buf);
	ok = EVP_Digest(buf, size, md, &mdlen, EVP_sha256(), NULL);
	free(buf);
	if (!ok)
		return -1;
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(out, outlen, "%.*s", JOBRECORDS_BATCH_ID_LEN, site);
	if (strlen(out) < JOBRECORDS_BATCH_ID_LEN)
		snprintf(out + strlen(out), outlen - strlen(out), "-%.*s",
		    (int)(JOBRECORDS_BATCH_ID_LEN - strlen(out) - 1), hex);
	return 0;
}

int
jobrecords_batch_id(
    const char *site, Allot__V1__JobRecord **records, size_t n, char *out, size_t outlen)
{
	Allot__V1__IngestRequest req = ALLOT__V1__INGEST_REQUEST__INIT;

	req.site = (char *)site;
	req.records = records;
	req.n_records = n;
	return jobrecords_batch_id_of(site, &req.base, out, outlen);
}
