/*
 * spool: batches as files in one directory, written so that a crash leaves
 * either the whole batch under its name or nothing (temporary file, fsync,
 * rename, fsync of the directory), listed in the order they were put.
 *
 * A file is a 64-byte header then the payload:
 *   0  "ALLOTSPL"          magic
 *   8  1                   version
 *   9  kind                0 jobs, 1 metrics
 *   12 nrecords            u32, little-endian
 *   16 created_ms          i64, little-endian
 *   24 payload length      u64, little-endian
 *   32 SHA-256 of the payload
 * named %016llx.jobs or %016llx.metrics after its number. Sending, retrying and
 * what to do with an answer are send.c's; this module only keeps the files.
 *
 * Acknowledging a batch unlinks its file without an fsync of the directory: if
 * the unlink is lost in a crash the batch is sent again with its batch id, which
 * allotd answers as a replay.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "spool.h"

#define SPOOL_MAGIC "ALLOTSPL"
#define SPOOL_VERSION 1
#define SPOOL_HEADER 64
#define SPOOL_REJECTED "rejected"
#define SPOOL_TMP_PREFIX ".tmp-"
#define SPOOL_LOCK ".lock"
/* "%016" PRIx64 "." and the longest kind name, and the NUL. */
#define SPOOL_NAME_MAX 40

/* The batches of one kind, oldest first: e[head .. n). */
struct queue {
	struct spool_entry *e;
	size_t head, n, cap;
	uint64_t records, bytes;
};

struct spool {
	char *dir;
	int dirfd, rejfd, lockfd;
	uint64_t max_bytes;
	uint64_t next_seq;
	uint64_t rejected;
	struct queue q[SPOOL_NKINDS];
	pthread_mutex_t mu;
};

static const char *const kind_names[SPOOL_NKINDS] = {"jobs", "metrics"};

const char *
spool_kind_name(enum spool_kind kind)
{
	return (unsigned)kind < SPOOL_NKINDS ? kind_names[kind] : "unknown";
}

const char *
spool_dir(const struct spool *spool)
{
	return spool->dir;
}

static int64_t
now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void
put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static bool
digest(const uint8_t *data, size_t len, uint8_t out[32])
{
	unsigned int mdlen = 0;

	return EVP_Digest(data, len, out, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32;
}

static void
entry_name(char *buf, size_t len, uint64_t seq, enum spool_kind kind)
{
	snprintf(buf, len, "%016" PRIx64 ".%s", seq, spool_kind_name(kind));
}

/* Reads "%016x.kind" into seq and kind; false for any other name. */
static bool
parse_name(const char *name, uint64_t *seq, enum spool_kind *kind)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 16; i++) {
		char c = name[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (d < 0)
			return false;
		v = (v << 4) | (uint64_t)d;
	}
	if (name[16] != '.')
		return false;
	for (int k = 0; k < SPOOL_NKINDS; k++) {
		if (strcmp(name + 17, kind_names[k]) == 0) {
			*seq = v;
			*kind = (enum spool_kind)k;
			return true;
		}
	}
	return false;
}

static bool
queue_push(struct queue *q, const struct spool_entry *e)
{
	if (q->n == q->cap) {
		size_t cap = q->cap > 0 ? q->cap * 2 : 64;
		struct spool_entry *ne = realloc(q->e, cap * sizeof(*ne));

		if (ne == NULL)
			return false;
		q->e = ne;
		q->cap = cap;
	}
	q->e[q->n++] = *e;
	q->records += e->nrecords;
	q->bytes += e->bytes;
	return true;
}

/* Drops the head; moves the rest down once half the array is dead, so each entry moves O(1) times. */
static void
queue_pop(struct queue *q)
{
	q->records -= q->e[q->head].nrecords;
	q->bytes -= q->e[q->head].bytes;
	q->head++;
	if (q->head == q->n) {
		q->head = q->n = 0;
	} else if (q->head > q->n / 2) {
		memmove(q->e, q->e + q->head, (q->n - q->head) * sizeof(*q->e));
		q->n -= q->head;
		q->head = 0;
	}
}

static uint64_t
total_bytes(const struct spool *spool)
{
	return spool->q[SPOOL_JOBS].bytes + spool->q[SPOOL_METRICS].bytes;
}

static size_t
total_batches(const struct spool *spool)
{
	size_t n = 0;

	for (int k = 0; k < SPOOL_NKINDS; k++)
		n += spool->q[k].n - spool->q[k].head;
	return n;
}

static bool
write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += w;
		len -= (size_t)w;
	}
	return true;
}

/* Reads exactly len bytes; false with errno set, or errno 0 at a short file. */
static bool
read_all(int fd, uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t r = read(fd, p, len);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (r == 0) {
			errno = 0;
			return false;
		}
		p += r;
		len -= (size_t)r;
	}
	return true;
}

static bool
is_full_errno(int e)
{
	return e == ENOSPC
#ifdef EDQUOT
	    || e == EDQUOT
#endif
	    ;
}

/* Moves name (in the spool directory) to rejected/ and writes the reason beside it. */
static int
move_rejected(struct spool *spool, const char *name, const char *reason, char *err, size_t errlen)
{
	char rname[SPOOL_NAME_MAX + 16];
	int fd;

	if (renameat(spool->dirfd, name, spool->rejfd, name) != 0) {
		snprintf(err, errlen, "could not move %s/%s to %s/: %s", spool->dir, name,
		    SPOOL_REJECTED, strerror(errno));
		return -1;
	}
	snprintf(rname, sizeof(rname), "%s.reason", name);
	fd = openat(spool->rejfd, rname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		/* The batch is safe in rejected/ already: a reason lost to a full disk is no loss of data. */
		if (!write_all(fd, (const uint8_t *)reason, strlen(reason)) ||
		    !write_all(fd, (const uint8_t *)"\n", 1) || fsync(fd) != 0)
			(void)0;
		close(fd);
	}
	(void)fsync(spool->rejfd);
	(void)fsync(spool->dirfd);
	spool->rejected++;
	return 0;
}

/* Reads and checks the header of name; 0 with *e filled, 1 when it is not a good batch file. */
static int
read_header(int dirfd, const char *name, struct spool_entry *e, char *why, size_t whylen)
{
	uint8_t h[SPOOL_HEADER];
	struct stat st;
	int fd, rc = 1;

	if ((fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(why, whylen, "could not open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(why, whylen, "could not stat: %s", strerror(errno));
		rc = -1;
	} else if (!read_all(fd, h, sizeof(h))) {
		if (errno != 0) {
			snprintf(why, whylen, "could not read: %s", strerror(errno));
			rc = -1;
		} else
			snprintf(why, whylen, "shorter than a header");
	} else if (memcmp(h, SPOOL_MAGIC, 8) != 0 || h[8] != SPOOL_VERSION) {
		snprintf(why, whylen, "not a version %d spool file", SPOOL_VERSION);
	} else if (h[9] != (uint8_t)e->kind) {
		snprintf(why, whylen, "kind in the header differs from the name");
	} else if (get_le(h + 24, 8) != (uint64_t)st.st_size - SPOOL_HEADER) {
		snprintf(why, whylen, "size %lld differs from the header's %" PRIu64,
		    (long long)st.st_size, get_le(h + 24, 8) + SPOOL_HEADER);
	} else {
		e->nrecords = (uint32_t)get_le(h + 12, 4);
		e->created_ms = (int64_t)get_le(h + 16, 8);
		e->bytes = (uint64_t)st.st_size;
		rc = 0;
	}
	close(fd);
	return rc;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct spool_entry *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Highest number among the names in rejected/, so that new batches never reuse one. */
static uint64_t
max_rejected_seq(int rejfd)
{
	uint64_t max = 0, seq;
	enum spool_kind kind;
	struct dirent *de;
	char name[SPOOL_NAME_MAX];
	int fd = dup(rejfd);
	DIR *d;

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		/* "NAME" and "NAME.reason" both count. */
		if (len > 7 && strcmp(de->d_name + len - 7, ".reason") == 0)
			len -= 7;
		if (len >= sizeof(name))
			continue;
		memcpy(name, de->d_name, len);
		name[len] = '\0';
		if (parse_name(name, &seq, &kind) && seq > max)
			max = seq;
	}
	closedir(d);
	return max;
}

/* Lists the directory: deletes temporary files, rejects bad ones, queues the rest in order. */
static int
spool_scan(struct spool *spool, char *err, size_t errlen)
{
	struct spool_entry *all = NULL, e;
	size_t n = 0, cap = 0;
	struct dirent *de;
	char why[256];
	int fd, rc = -1, r;
	DIR *d;

	if ((fd = dup(spool->dirfd)) < 0 || (d = fdopendir(fd)) == NULL) {
		snprintf(err, errlen, "could not list %s: %s", spool->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewinddir(d);
	spool->next_seq = max_rejected_seq(spool->rejfd) + 1;
	while ((de = readdir(d)) != NULL) {
		memset(&e, 0, sizeof(e));
		if (strncmp(de->d_name, SPOOL_TMP_PREFIX, strlen(SPOOL_TMP_PREFIX)) == 0) {
			/* What a crash left between write and rename: never acknowledged, never named. */
			if (unlinkat(spool->dirfd, de->d_name, 0) != 0) {
				snprintf(err, errlen, "could not delete %s/%s: %s", spool->dir,
				    de->d_name, strerror(errno));
				goto done;
			}
			continue;
		}
		if (!parse_name(de->d_name, &e.seq, &e.kind))
			continue;
		if (e.seq >= spool->next_seq)
			spool->next_seq = e.seq + 1;
		r = read_header(spool->dirfd, de->d_name, &e, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "%s/%s: %s", spool->dir, de->d_name, why);
			goto done;
		}
		if (r > 0) {
			if (move_rejected(spool, de->d_name, why, err, errlen) != 0)
				goto done;
			continue;
		}
		if (n == cap) {
			size_t ncap = cap > 0 ? cap * 2 : 64;
			struct spool_entry *na = realloc(all, ncap * sizeof(*na));

			if (na == NULL)
				goto nomem;
			all = na;
			cap = ncap;
		}
		all[n++] = e;
	}
	if (n > 0)
		qsort(all, n, sizeof(*all), entry_cmp);
	for (size_t i = 0; i < n; i++)
		if (!queue_push(&spool->q[all[i].kind], &all[i]))
			goto nomem;
	rc = 0;
	goto done;
nomem:
	snprintf(err, errlen, "out of memory listing %s", spool->dir);
done:
	free(all);
	closedir(d);
	return rc;
}

struct spool *
spool_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen)
{
	struct spool *spool;

	if ((spool = calloc(1, sizeof(*spool))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	spool->dirfd = spool->rejfd = spool->lockfd = -1;
	spool->max_bytes = max_bytes;
	pthread_mutex_init(&spool->mu, NULL);
	if ((spool->dir = strdup(dir)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "could not create the spool %s: %s", dir, strerror(errno));
		goto fail;
	}
	if ((spool->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "could not open the spool %s: %s", dir, strerror(errno));
		goto fail;
	}
	if ((spool->lockfd = openat(spool->dirfd, SPOOL_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) <
	    0) {
		snprintf(err, errlen, "could not open %s/%s: %s", dir, SPOOL_LOCK, strerror(errno));
		goto fail;
	}
	if (flock(spool->lockfd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, errlen, "spool %s is in use by another process (%s)", dir,
		    strerror(errno));
		goto fail;
	}
	if (mkdirat(spool->dirfd, SPOOL_REJECTED, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "could not create %s/%s: %s", dir, SPOOL_REJECTED,
		    strerror(errno));
		goto fail;
	}
	if ((spool->rejfd =
	            openat(spool->dirfd, SPOOL_REJECTED, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(
		    err, errlen, "could not open %s/%s: %s", dir, SPOOL_REJECTED, strerror(errno));
		goto fail;
	}
	if (spool_scan(spool, err, errlen) != 0)
		goto fail;
	return spool;
fail:
	spool_free(spool);
	return NULL;
}

void
spool_free(struct spool *spool)
{
	if (spool == NULL)
		return;
	for (int k = 0; k < SPOOL_NKINDS; k++)
		free(spool->q[k].e);
	if (spool->rejfd >= 0)
		close(spool->rejfd);
	if (spool->lockfd >= 0)
		close(spool->lockfd); /* releases the lock */
	if (spool->dirfd >= 0)
		close(spool->dirfd);
	pthread_mutex_destroy(&spool->mu);
	free(spool->dir);
	free(spool);
}

void
spool_set_max_bytes(struct spool *spool, uint64_t max_bytes)
{
	pthread_mutex_lock(&spool->mu);
	spool->max_bytes = max_bytes;
	pthread_mutex_unlock(&spool->mu);
}

/* Writes the batch file under its final name; the lock is held. */
static int
put_locked(struct spool *spool, struct spool_entry *e, const uint8_t *payload, size_t len,
    char *err, size_t errlen)
{
	char tmp[SPOOL_NAME_MAX + 8], name[SPOOL_NAME_MAX];
	uint8_t h[SPOOL_HEADER] = {0};
	const char *step = "write";
	int fd = -1, saved;

	memcpy(h, SPOOL_MAGIC, 8);
	h[8] = SPOOL_VERSION;
	h[9] = (uint8_t)e->kind;
	put_le(h + 12, e->nrecords, 4);
	put_le(h + 16, (uint64_t)e->created_ms, 8);
	put_le(h + 24, len, 8);
	if (!digest(payload, len, h + 32)) {
		snprintf(err, errlen, "could not hash the batch");
		return -1;
	}
	snprintf(tmp, sizeof(tmp), SPOOL_TMP_PREFIX "%016" PRIx64, e->seq);
	entry_name(name, sizeof(name), e->seq, e->kind);

	if ((fd = openat(spool->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		step = "create";
		goto fail;
	}
	if (!write_all(fd, h, sizeof(h)) || !write_all(fd, payload, len))
		goto fail;
	step = "fsync";
	if (fsync(fd) != 0)
		goto fail;
	step = "close";
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	step = "rename";
	if (renameat(spool->dirfd, tmp, spool->dirfd, name) != 0)
		goto fail;
	if (fsync(spool->dirfd) != 0) {
		saved = errno;
		/* Not known to be durable: take it back rather than count on it. */
		(void)unlinkat(spool->dirfd, name, 0);
		errno = saved;
		step = "fsync the directory of";
		goto fail_named;
	}
	return 0;

fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	(void)unlinkat(spool->dirfd, tmp, 0);
	errno = saved;
fail_named:
	snprintf(err, errlen, "could not %s %s/%s: %s", step, spool->dir, tmp, strerror(errno));
	return is_full_errno(errno) ? SPOOL_FULL : -1;
}

int
spool_put(struct spool *spool, enum spool_kind kind, uint32_t nrecords, const uint8_t *payload,
    size_t len, uint64_t *seq, char *err, size_t errlen)
{
	struct spool_entry e = {0};
	int rc;

	if ((unsigned)kind >= SPOOL_NKINDS) {
		snprintf(err, errlen, "unknown batch kind %d", (int)kind);
		return -1;
	}
	pthread_mutex_lock(&spool->mu);
	e.seq = spool->next_seq;
	e.kind = kind;
	e.nrecords = nrecords;
	e.created_ms = now_ms();
	e.bytes = SPOOL_HEADER + len;
	if (spool->max_bytes > 0 && total_batches(spool) > 0 &&
	    total_bytes(spool) + e.bytes > spool->max_bytes) {
		snprintf(err, errlen,
		    "spool %s is full: %" PRIu64 " bytes spooled, a batch of %" PRIu64
		    " would pass spool_max_bytes %" PRIu64,
		    spool->dir, total_bytes(spool), e.bytes, spool->max_bytes);
		rc = SPOOL_FULL;
		goto done;
	}
	if ((rc = put_locked(spool, &e, payload, len, err, errlen)) != 0)
		goto done;
	spool->next_seq++;
	if (!queue_push(&spool->q[kind], &e)) {
		char name[SPOOL_NAME_MAX];

		/* It is on disk and would be sent after a restart; unlisted now, it must go. */
		entry_name(name, sizeof(name), e.seq, kind);
		(void)unlinkat(spool->dirfd, name, 0);
		snprintf(err, errlen, "out of memory");
		rc = -1;
		goto done;
	}
	if (seq != NULL)
		*seq = e.seq;
done:
	pthread_mutex_unlock(&spool->mu);
	return rc;
}

bool
spool_nth(struct spool *spool, enum spool_kind kind, size_t n, struct spool_entry *entry)
{
	bool found = false;
	struct queue *q;

	if ((unsigned)kind >= SPOOL_NKINDS)
		return false;
	pthread_mutex_lock(&spool->mu);
	q = &spool->q[kind];
	if (q->head + n < q->n) {
		*entry = q->e[q->head + n];
		found = true;
	}
	pthread_mutex_unlock(&spool->mu);
	return found;
}

bool
spool_head(struct spool *spool, enum spool_kind kind, struct spool_entry *entry)
{
	return spool_nth(spool, kind, 0, entry);
}

int
spool_read(struct spool *spool, const struct spool_entry *entry, uint8_t **payload, size_t *len,
    char *err, size_t errlen)
{
	char name[SPOOL_NAME_MAX];
	uint8_t h[SPOOL_HEADER], md[32];
	uint8_t *buf = NULL;
	uint64_t plen;
	int fd, rc = -1;

	*payload = NULL;
	*len = 0;
	entry_name(name, sizeof(name), entry->seq, entry->kind);
	if ((fd = openat(spool->dirfd, name, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(
		    err, errlen, "could not open %s/%s: %s", spool->dir, name, strerror(errno));
		return -1;
	}
	if (!read_all(fd, h, sizeof(h)))
		goto short_or_error;
	plen = get_le(h + 24, 8);
	if (memcmp(h, SPOOL_MAGIC, 8) != 0 || plen != entry->bytes - SPOOL_HEADER) {
		snprintf(
		    err, errlen, "%s/%s: header changed since it was listed", spool->dir, name);
		rc = 1;
		goto done;
	}
	if ((buf = malloc(plen > 0 ? plen : 1)) == NULL) {
		snprintf(err, errlen, "out of memory reading %s/%s", spool->dir, name);
		goto done;
	}
	if (!read_all(fd, buf, plen))
		goto short_or_error;
	if (!digest(buf, plen, md) || memcmp(md, h + 32, 32) != 0) {
		snprintf(
		    err, errlen, "%s/%s: the payload does not match its digest", spool->dir, name);
		rc = 1;
		goto done;
	}
	*payload = buf;
	*len = plen;
	buf = NULL;
	rc = 0;
	goto done;
short_or_error:
	if (errno == 0) {
		snprintf(err, errlen, "%s/%s: shorter than its header says", spool->dir, name);
		rc = 1;
	} else
		snprintf(
		    err, errlen, "could not read %s/%s: %s", spool->dir, name, strerror(errno));
done:
	free(buf);
	close(fd);
	return rc;
}

/* Checks that seq is the head of kind; the lock is held. */
static bool
is_head(struct spool *spool, enum spool_kind kind, uint64_t seq, char *err, size_t errlen)
{
	struct queue *q;

	if ((unsigned)kind >= SPOOL_NKINDS) {
		snprintf(err, errlen, "unknown batch kind %d", (int)kind);
		return false;
	}
	q = &spool->q[kind];
	if (q->head == q->n || q->e[q->head].seq != seq) {
		snprintf(err, errlen, "batch %016" PRIx64 ".%s is not the oldest %s batch", seq,
		    spool_kind_name(kind), spool_kind_name(kind));
		return false;
	}
	return true;
}

int
spool_ack(struct spool *spool, enum spool_kind kind, uint64_t seq, char *err, size_t errlen)
{
	char name[SPOOL_NAME_MAX];
	int rc = -1;

	pthread_mutex_lock(&spool->mu);
	if (!is_head(spool, kind, seq, err, errlen))
		goto done;
	entry_name(name, sizeof(name), seq, kind);
	if (unlinkat(spool->dirfd, name, 0) != 0 && errno != ENOENT) {
		snprintf(
		    err, errlen, "could not delete %s/%s: %s", spool->dir, name, strerror(errno));
		goto done;
	}
	queue_pop(&spool->q[kind]);
	rc = 0;
done:
	pthread_mutex_unlock(&spool->mu);
	return rc;
}

int
spool_reject(struct spool *spool, enum spool_kind kind, uint64_t seq, const char *reason, char *err,
    size_t errlen)
{
	char name[SPOOL_NAME_MAX];
	int rc = -1;

	pthread_mutex_lock(&spool->mu);
	if (!is_head(spool, kind, seq, err, errlen))
		goto done;
	entry_name(name, sizeof(name), seq, kind);
	if (move_rejected(spool, name, reason, err, errlen) != 0)
		goto done;
	queue_pop(&spool->q[kind]);
	rc = 0;
done:
	pthread_mutex_unlock(&spool->mu);
	return rc;
}

void
spool_get_stats(struct spool *spool, int kind, struct spool_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	pthread_mutex_lock(&spool->mu);
	for (int k = 0; k < SPOOL_NKINDS; k++) {
		const struct queue *q = &spool->q[k];

		if (kind >= 0 && kind != k)
			continue;
		stats->batches += q->n - q->head;
		stats->records += q->records;
		stats->bytes += q->bytes;
		if (q->head < q->n &&
		    (stats->oldest_ms == 0 || q->e[q->head].created_ms < stats->oldest_ms))
			stats->oldest_ms = q->e[q->head].created_ms;
	}
	pthread_mutex_unlock(&spool->mu);
}

uint64_t
spool_rejected(struct spool *spool)
{
	uint64_t n;

	pthread_mutex_lock(&spool->mu);
	n = spool->rejected;
	pthread_mutex_unlock(&spool->mu);
	return n;
}
