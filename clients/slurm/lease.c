/*
 * lease: the lease files and the journal of jobs admitted while Allot was away.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lease.h"

#define LINE_MAX_LEN 1024

bool
lease_word(const char *text)
{
	size_t n = strlen(text);

	return n >= 1 && n <= 127 &&
	    strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@+-") ==
	    n;
}

static int
copy_word(char *dst, size_t dstlen, const char *src)
{
	if (!lease_word(src) || strlen(src) >= dstlen)
		return -1;
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

static int
number(const char *text, long long max, long long *out)
{
	char *end;

	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

int
lease_parse_line(const char *line, struct lease_entry *e, char *err, size_t errlen)
{
	char buf[LINE_MAX_LEN], *f[11], *save = NULL;
	int n = 0;
	long long v[6];

	memset(e, 0, sizeof(*e));
	if (strlen(line) >= sizeof(buf)) {
		snprintf(err, errlen, "journal line longer than %d bytes", LINE_MAX_LEN - 1);
		return -1;
	}
	memcpy(buf, line, strlen(line) + 1);
	for (char *t = strtok_r(buf, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
		if (n == 11) {
			n++;
			break;
		}
		f[n++] = t;
	}
	if (n == 3 && strcmp(f[0], "end") == 0) {
		if (copy_word(e->job_id, sizeof(e->job_id), f[1]) < 0 ||
		    number(f[2], 366LL * 86400, &e->elapsed_s) < 0)
			goto bad;
		return 0;
	}
	if (n != 10 || strcmp(f[0], "start") != 0)
		goto bad;
	e->start = true;
	if (copy_word(e->project, sizeof(e->project), f[1]) < 0 ||
	    copy_word(e->job_id, sizeof(e->job_id), f[2]) < 0 ||
	    copy_word(e->partition, sizeof(e->partition), f[8]) < 0 ||
	    copy_word(e->user, sizeof(e->user), f[9]) < 0)
		goto bad;
	const long long max[6] = {1LL << 50, 1000000, 100000000, 100000, 366LL * 86400, 0};
	for (int i = 0; i < 5; i++)
		if (number(f[3 + i], max[i], &v[i]) < 0)
			goto bad;
	e->cost_units = v[0];
	e->gpus = (int)v[1];
	e->cpus = (int)v[2];
	e->nodes = (int)v[3];
	e->limit_s = v[4];
	return 0;
bad:
	snprintf(err, errlen, "journal line \"%.200s\" is not start or end", line);
	return -1;
}

int
lease_format_line(const struct lease_entry *e, char *out, size_t outlen)
{
	int n;

	if (!e->start)
		n = snprintf(out, outlen, "end %s %lld\n", e->job_id, e->elapsed_s);
	else
		n = snprintf(out, outlen, "start %s %s %lld %d %d %d %lld %s %s\n", e->project,
		    e->job_id, e->cost_units, e->gpus, e->cpus, e->nodes, e->limit_s, e->partition,
		    e->user);
	return n < 0 || (size_t)n >= outlen ? -1 : n;
}

static void
path_of(char *out, size_t outlen, const char *dir, const char *name)
{
	snprintf(out, outlen, "%s/%s", dir, name);
}

int
lease_lock(const char *dir, char *err, size_t errlen)
{
	char path[4096];
	int fd;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	path_of(path, sizeof(path), dir, "lock");
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX) != 0) {
		snprintf(err, errlen, "%s: lock: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void
lease_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

int
lease_read(const char *dir, const char *project, struct lease *l, char *err, size_t errlen)
{
	char path[4096], name[160], line[512], id[256];
	FILE *f;

	snprintf(name, sizeof(name), "lease.%s", project);
	path_of(path, sizeof(path), dir, name);
	if ((f = fopen(path, "r")) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	bool ok = fgets(line, sizeof(line), f) != NULL &&
	    sscanf(line, "%255s %lld %lld %lld", id, &l->held_units, &l->expires,
	        &l->units_per_gpu_hour) == 4 &&
	    l->held_units >= 0 && l->units_per_gpu_hour > 0;
	fclose(f);
	if (!ok) {
		snprintf(
		    err, errlen, "%s: not \"LIEN_ID HELD_UNITS EXPIRES UNITS_PER_GPU_HOUR\"", path);
		return -1;
	}
	memcpy(l->lien_id, id, sizeof(id));
	return 1;
}

/* Writes text to path through path.tmp, fsync and rename. */
static int
write_atomic(const char *path, const char *text, char *err, size_t errlen)
{
	char tmp[4200];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	size_t len = strlen(text);
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "rename %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

int
lease_write(const char *dir, const char *project, const struct lease *l, char *err, size_t errlen)
{
	char path[4096], name[160], text[512];

	snprintf(name, sizeof(name), "lease.%s", project);
	path_of(path, sizeof(path), dir, name);
	snprintf(text, sizeof(text), "%s %lld %lld %lld\n", l->lien_id, l->held_units, l->expires,
	    l->units_per_gpu_hour);
	return write_atomic(path, text, err, errlen);
}

int
lease_journal_read(
    const char *dir, struct lease_entry **entries, size_t *n, char *err, size_t errlen)
{
	char path[4096], line[LINE_MAX_LEN + 2];
	struct lease_entry *v = NULL;
	size_t cap = 0, len = 0;
	FILE *f;

	*entries = NULL;
	*n = 0;
	path_of(path, sizeof(path), dir, "journal");
	if ((f = fopen(path, "r")) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (len == cap) {
			size_t ncap = cap == 0 ? 16 : cap * 2;
			struct lease_entry *nv = realloc(v, ncap * sizeof(*v));

			if (nv == NULL) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		if (lease_parse_line(line, &v[len], err, errlen) < 0)
			goto fail;
		len++;
	}
	fclose(f);
	*entries = v;
	*n = len;
	return 0;
fail:
	fclose(f);
	free(v);
	return -1;
}

int
lease_journal_append(const char *dir, const struct lease_entry *e, char *err, size_t errlen)
{
	char path[4096], line[LINE_MAX_LEN];
	int fd, n;

	if ((n = lease_format_line(e, line, sizeof(line))) < 0) {
		snprintf(err, errlen, "journal line too long");
		return -1;
	}
	path_of(path, sizeof(path), dir, "journal");
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (write(fd, line, (size_t)n) != n || fsync(fd) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
lease_journal_clear(const char *dir, char *err, size_t errlen)
{
	char path[4096];

	path_of(path, sizeof(path), dir, "journal");
	return write_atomic(path, "", err, errlen);
}

long long
lease_spent(const struct lease_entry *entries, size_t n, const char *project)
{
	long long sum = 0;

	for (size_t i = 0; i < n; i++)
		if (entries[i].start && strcmp(entries[i].project, project) == 0)
			sum += entries[i].cost_units;
	return sum;
}
