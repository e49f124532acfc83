/*
 * slurm_job: reading `scontrol show job -o`, Slurm's durations and TRES strings.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slurm_job.h"

/* Reads up to max_digits decimal digits at *p; -1 when there are none. */
static long long
read_number(const char **p, int max_digits)
{
	long long v = 0;
	int n = 0;

	while (isdigit((unsigned char)**p)) {
		if (++n > max_digits)
			return -1;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	return n == 0 ? -1 : v;
}

int
slurm_duration(const char *text, long long *out)
{
	const char *p = text;
	long long parts[3], days = 0;
	int n = 0;
	bool have_days = false;

	if (strcmp(text, "UNLIMITED") == 0 || strcmp(text, "INFINITE") == 0) {
		*out = -1;
		return 0;
	}
	const char *dash = strchr(text, '-');
	if (dash != NULL) {
		days = read_number(&p, 6);
		if (days < 0 || p != dash)
			return -1;
		p++;
		have_days = true;
	}
	for (;;) {
		long long v = read_number(&p, 9);

		if (v < 0 || n == 3)
			return -1;
		parts[n++] = v;
		if (*p == '\0')
			break;
		if (*p != ':')
			return -1;
		p++;
	}
	long long s;
	if (have_days) {
		/* D-HH, D-HH:MM, D-HH:MM:SS */
		s = parts[0] * 3600 + (n > 1 ? parts[1] * 60 : 0) + (n > 2 ? parts[2] : 0);
		s += days * 86400;
	} else if (n == 1) {
		s = parts[0] * 60; /* minutes */
	} else if (n == 2) {
		s = parts[0] * 60 + parts[1]; /* MM:SS */
	} else {
		s = parts[0] * 3600 + parts[1] * 60 + parts[2];
	}
	*out = s;
	return 0;
}

int
slurm_tres_gpus(const char *tres)
{
	const char *p = tres;
	int total = 0;

	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char item[256];

		if (len < sizeof(item)) {
			memcpy(item, p, len);
			item[len] = '\0';
			/* "gres:gpu...", "gres/gpu...": the rest is [:type][:count] or =count. */
			if ((strncmp(item, "gres:gpu", 8) == 0 ||
			        strncmp(item, "gres/gpu", 8) == 0) &&
			    (item[8] == '\0' || item[8] == ':' || item[8] == '=')) {
				const char *last = strrchr(item + 8, item[8] == '=' ? '=' : ':');
				long long v = 1;

				if (last != NULL) {
					const char *q = last + 1;
					/* "gres:gpu:a100" names a type and no count: one. */
					if (isdigit((unsigned char)*q)) {
						v = read_number(&q, 6);
						if (v < 0 || *q != '\0')
							return -1;
					} else if (item[8] == '=') {
						return -1;
					}
				}
				total += (int)v;
				if (total > 1000000)
					return -1;
			}
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return total;
}

/*
 * Copies the value of " Key=" in line into out (up to the next space). Returns
 * false when the key is absent. The first field has no space before it.
 */
static bool
field(const char *line, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	const char *p = line;

	while ((p = strstr(p, key)) != NULL) {
		if ((p == line || p[-1] == ' ') && p[klen] == '=') {
			const char *v = p + klen + 1;
			size_t n = strcspn(v, " \n");

			if (n >= outlen)
				n = outlen - 1;
			memcpy(out, v, n);
			out[n] = '\0';
			return true;
		}
		p += klen;
	}
	out[0] = '\0';
	return false;
}

static int
small_int(const char *text, int *out)
{
	const char *p = text;
	long long v = read_number(&p, 7);

	if (v < 0 || *p != '\0')
		return -1;
	*out = (int)v;
	return 0;
}

int
slurm_job_parse(const char *line, struct slurm_job *job, char *err, size_t errlen)
{
	char buf[256];
	int per_node = 0, per_job = 0;

	memset(job, 0, sizeof(*job));
	if (!field(line, "JobId", job->job_id, sizeof(job->job_id)) || job->job_id[0] == '\0') {
		snprintf(err, errlen, "no JobId in scontrol's answer");
		return -1;
	}
	field(line, "Account", job->account, sizeof(job->account));
	field(line, "Partition", job->partition, sizeof(job->partition));
	field(line, "JobState", job->state, sizeof(job->state));
	if (field(line, "UserId", buf, sizeof(buf))) {
		size_t n = strcspn(buf, "(");
		if (n >= sizeof(job->user))
			n = sizeof(job->user) - 1;
		memcpy(job->user, buf, n);
		job->user[n] = '\0';
	}
	if (field(line, "TimeLimit", buf, sizeof(buf)) &&
	    slurm_duration(buf, &job->time_limit_s) < 0) {
		snprintf(
		    err, errlen, "job %s: TimeLimit \"%s\" is not a duration", job->job_id, buf);
		return -1;
	}
	if (field(line, "RunTime", buf, sizeof(buf)) &&
	    (slurm_duration(buf, &job->run_time_s) < 0 || job->run_time_s < 0)) {
		snprintf(err, errlen, "job %s: RunTime \"%s\" is not a duration", job->job_id, buf);
		return -1;
	}
	if (field(line, "NumNodes", buf, sizeof(buf))) {
		/* "1" or a range "1-2" before the job starts: its first figure. */
		buf[strcspn(buf, "-")] = '\0';
		if (small_int(buf, &job->nodes) < 0) {
			snprintf(err, errlen, "job %s: NumNodes \"%s\" is not a number",
			    job->job_id, buf);
			return -1;
		}
	}
	if (field(line, "NumCPUs", buf, sizeof(buf))) {
		buf[strcspn(buf, "-")] = '\0';
		if (small_int(buf, &job->cpus) < 0) {
			snprintf(err, errlen, "job %s: NumCPUs \"%s\" is not a number", job->job_id,
			    buf);
			return -1;
		}
	}
	if (field(line, "TresPerNode", buf, sizeof(buf)) && (per_node = slurm_tres_gpus(buf)) < 0) {
		snprintf(err, errlen, "job %s: TresPerNode \"%s\" has a bad GPU count", job->job_id,
		    buf);
		return -1;
	}
	if (field(line, "TresPerJob", buf, sizeof(buf)) && (per_job = slurm_tres_gpus(buf)) < 0) {
		snprintf(
		    err, errlen, "job %s: TresPerJob \"%s\" has a bad GPU count", job->job_id, buf);
		return -1;
	}
	long long gpus =
	    per_job > 0 ? per_job : (long long)per_node * (job->nodes > 0 ? job->nodes : 1);
	if (gpus > 1000000) {
		snprintf(err, errlen, "job %s: %lld GPUs", job->job_id, gpus);
		return -1;
	}
	job->gpus = (int)gpus;
	return 0;
}

int
slurm_pending_parse(const char *line, struct slurm_pending *p, char *err, size_t errlen)
{
	char *dst[3] = {p->job_id, p->account, p->user};
	const size_t cap[3] = {sizeof(p->job_id), sizeof(p->account), sizeof(p->user)};
	const char *s = line;

	for (int i = 0; i < 3; i++) {
		size_t n;

		s += strspn(s, " ");
		n = strcspn(s, " ");
		if (n == 0 || n >= cap[i]) {
			snprintf(
			    err, errlen, "squeue line \"%.100s\" is not JOBID ACCOUNT USER", line);
			return -1;
		}
		memcpy(dst[i], s, n);
		dst[i][n] = '\0';
		s += n;
	}
	if (s[strspn(s, " ")] != '\0') {
		snprintf(err, errlen, "squeue line \"%.100s\" is not JOBID ACCOUNT USER", line);
		return -1;
	}
	return 0;
}
