/*
 * slurm_job: Slurm's durations, TRES strings and `scontrol show job -o` lines, as
 * Slurm 22.05 prints them (the line below is one from a test cluster).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "slurm_job.h"

static long long
dur(const char *text)
{
	long long v = -2;

	assert_int_equal(slurm_duration(text, &v), 0);
	return v;
}

static void
test_durations(void **state)
{
	long long v;

	(void)state;
	assert_int_equal(dur("5"), 300);                  /* minutes */
	assert_int_equal(dur("05:30"), 330);              /* MM:SS */
	assert_int_equal(dur("01:02:03"), 3723);          /* HH:MM:SS */
	assert_int_equal(dur("2-03"), 2 * 86400 + 10800); /* D-HH */
	assert_int_equal(dur("2-03:04"), 2 * 86400 + 10800 + 240);
	assert_int_equal(dur("1-00:00:01"), 86401);
	assert_int_equal(dur("00:00:00"), 0);
	assert_int_equal(dur("UNLIMITED"), -1);
	assert_int_equal(dur("INFINITE"), -1);
	const char *bad[] = {
	    "", "-", "1-", "-5", "1:2:3:4", "a", "1:", ":1", "1-2-3", "12x", "1234567890123"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(slurm_duration(bad[i], &v), -1);
}

static void
test_tres_gpus(void **state)
{
	(void)state;
	assert_int_equal(slurm_tres_gpus("gres:gpu:2"), 2);
	assert_int_equal(slurm_tres_gpus("gres/gpu:a100:4"), 4);
	assert_int_equal(slurm_tres_gpus("gres/gpu=3"), 3);
	assert_int_equal(slurm_tres_gpus("gres:gpu"), 1);
	assert_int_equal(slurm_tres_gpus("gres:gpu:a100"), 1);
	assert_int_equal(slurm_tres_gpus("cpu=4,gres:gpu:2,gres:gpu:h100:1"), 3);
	assert_int_equal(slurm_tres_gpus("gres:gpumem:2"), 0); /* not a GPU count */
	assert_int_equal(slurm_tres_gpus("cpu=4,mem=100M"), 0);
	assert_int_equal(slurm_tres_gpus(""), 0);
	assert_int_equal(slurm_tres_gpus("gres/gpu=x"), -1);
	assert_int_equal(slurm_tres_gpus("gres:gpu:2x"), -1); /* a count with a tail */
	assert_int_equal(slurm_tres_gpus("gres:gpu:1234567"), -1);
}

static const char line[] =
    "JobId=42 JobName=wrap UserId=ada(1001) GroupId=ada(1001) MCS_label=N/A Priority=1 "
    "Nice=0 Account=acme QOS=normal JobState=RUNNING Reason=None Dependency=(null) "
    "Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:01:05 "
    "TimeLimit=00:05:00 TimeMin=N/A SubmitTime=2026-12-03T06:47:42 "
    "Partition=gpu AllocNode:Sid=vm:123 NodeList=node1 NumNodes=2 NumCPUs=2 NumTasks=1 "
    "CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=2,mem=100M,node=1,billing=2 "
    "Command=(null) WorkDir=/srv/my jobs TresPerNode=gres:gpu:2\n";

static void
test_job_line(void **state)
{
	struct slurm_job j;
	char err[256];

	(void)state;
	assert_int_equal(slurm_job_parse(line, &j, err, sizeof(err)), 0);
	assert_string_equal(j.job_id, "42");
	assert_string_equal(j.account, "acme");
	assert_string_equal(j.user, "ada");
	assert_string_equal(j.partition, "gpu");
	assert_string_equal(j.state, "RUNNING");
	assert_int_equal(j.time_limit_s, 300);
	assert_int_equal(j.run_time_s, 65);
	assert_int_equal(j.nodes, 2);
	assert_int_equal(j.cpus, 2);
	assert_int_equal(j.gpus, 4); /* 2 a node on 2 nodes */

	/* TresPerJob wins over TresPerNode. */
	assert_int_equal(slurm_job_parse("JobId=7 NumNodes=2 TresPerJob=gres:gpu:3 "
	                                 "TresPerNode=gres:gpu:2",
	                     &j, err, sizeof(err)),
	    0);
	assert_int_equal(j.gpus, 3);
	/* A pending job's node range reads as its first figure. */
	assert_int_equal(
	    slurm_job_parse("JobId=8 NumNodes=1-3 TimeLimit=UNLIMITED", &j, err, sizeof(err)), 0);
	assert_int_equal(j.nodes, 1);
	assert_int_equal(j.time_limit_s, -1);
	/* "ArrayJobId=" must not be read as JobId. */
	assert_int_equal(slurm_job_parse("ArrayJobId=9 JobId=10", &j, err, sizeof(err)), 0);
	assert_string_equal(j.job_id, "10");
}

static void
test_job_refusals(void **state)
{
	struct slurm_job j;
	char err[256];

	(void)state;
	assert_int_equal(slurm_job_parse("JobName=x Account=a", &j, err, sizeof(err)), -1);
	assert_string_equal(err, "no JobId in scontrol's answer");
	assert_int_equal(slurm_job_parse("JobId=1 TimeLimit=soon", &j, err, sizeof(err)), -1);
	assert_string_equal(err, "job 1: TimeLimit \"soon\" is not a duration");
	assert_int_equal(slurm_job_parse("JobId=1 RunTime=UNLIMITED", &j, err, sizeof(err)), -1);
	assert_int_equal(slurm_job_parse("JobId=1 NumNodes=many", &j, err, sizeof(err)), -1);
	assert_string_equal(err, "job 1: NumNodes \"many\" is not a number");
	assert_int_equal(
	    slurm_job_parse("JobId=1 TresPerNode=gres/gpu=x", &j, err, sizeof(err)), -1);
	assert_int_equal(slurm_job_parse("JobId=1 NumNodes=2000 TresPerNode=gres:gpu:999999", &j,
	                     err, sizeof(err)),
	    -1);
}

static void
test_pending(void **state)
{
	struct slurm_pending p;
	char err[256];

	(void)state;
	assert_int_equal(slurm_pending_parse("1234 acme-llm ada", &p, err, sizeof(err)), 0);
	assert_string_equal(p.job_id, "1234");
	assert_string_equal(p.account, "acme-llm");
	assert_string_equal(p.user, "ada");
	assert_int_equal(slurm_pending_parse("  77_3   acme  bo  ", &p, err, sizeof(err)), 0);
	assert_string_equal(p.job_id, "77_3");
	assert_string_equal(p.user, "bo");
	const char *bad[] = {"", "1234", "1234 acme", "1 a b c"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(slurm_pending_parse(bad[i], &p, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "is not JOBID ACCOUNT USER"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_tres_gpus),
	    cmocka_unit_test(test_job_line),
	    cmocka_unit_test(test_job_refusals),
	    cmocka_unit_test(test_pending),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
