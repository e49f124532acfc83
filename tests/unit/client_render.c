/*
 * Unit tests for clients/cli/render.c: List responses as aligned tables,
 * single messages as "field: value" lines, the balance table, the jobs table and
 * its CSV.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "allot/v1/admin.pb-c.h"
#include "allot/v1/ledger.pb-c.h"
#include "allot/v1/usage.pb-c.h"
#include "render.h"

/* Output of the function under test goes to an in-memory stream. */
struct capture {
	char *text;
	size_t len;
	FILE *out;
};

static FILE *
capture_start(struct capture *c)
{
	c->text = NULL;
	c->len = 0;
	c->out = open_memstream(&c->text, &c->len);
	assert_non_null(c->out);
	return c->out;
}

/* Returns what was printed; the caller frees it. */
static char *
capture_end(struct capture *c)
{
	fclose(c->out);
	return c->text;
}

/* The generated structs hold char *; the tests' strings are literals. */
#define S(lit) ((char *)(lit))

static void
test_list_table(void **state)
{
	Allot__V1__Project p1 = ALLOT__V1__PROJECT__INIT, p2 = ALLOT__V1__PROJECT__INIT;
	Allot__V1__Project *projects[] = {&p1, &p2};
	Allot__V1__ListProjectsResponse resp = ALLOT__V1__LIST_PROJECTS_RESPONSE__INIT;
	char *users[] = {S("alice"), S("bob")};
	struct capture cap;
	char *text;

	(void)state;
	p1.name = S("acme-vision");
	p1.organization = S("acme");
	p1.users = users;
	p1.n_users = 2;
	p2.name = S("ñandú");
	p2.organization = S("acme");
	p2.description = S("tab\there");
	resp.projects = projects;
	resp.n_projects = 2;
	assert_true(render_message(capture_start(&cap), &resp.base));
	text = capture_end(&cap);
	assert_string_equal(text,
	    "name         organization  description  users\n"
	    "acme-vision  acme                       alice,bob\n"
	    "ñandú        acme          tab here\n");
	free(text);

	resp.n_projects = 0;
	assert_true(render_message(capture_start(&cap), &resp.base));
	text = capture_end(&cap);
	assert_string_equal(text, "name  organization  description  users\n");
	free(text);
}

static void
test_numbers_right(void **state)
{
	Allot__V1__Resource r = ALLOT__V1__RESOURCE__INIT;
	Allot__V1__Resource *rs[] = {&r};
	Allot__V1__ListResourcesResponse resp = ALLOT__V1__LIST_RESOURCES_RESPONSE__INIT;
	struct capture cap;
	char *text;

	(void)state;
	r.site = S("lumi");
	r.partition = S("standard-g");
	r.gpus_per_node = 8;
	r.rule = ALLOT__V1__BILLING_RULE__BILLING_RULE_WHOLE_NODE;
	r.mem_per_gpu_mb = INT64_MAX;
	resp.resources = rs;
	resp.n_resources = 1;
	assert_true(render_message(capture_start(&cap), &resp.base));
	text = capture_end(&cap);
	assert_non_null(strstr(text, "gpus_per_node  rule        "));
	assert_non_null(strstr(text, "            8  whole_node  "));
	assert_non_null(strstr(text, "9223372036854775807"));
	free(text);
}

static void
test_lines(void **state)
{
	Allot__V1__Principal p = ALLOT__V1__PRINCIPAL__INIT;
	struct capture cap;
	char *text;

	(void)state;
	p.subject = S("CN=collector-lumi,O=Allot Dev");
	p.role = ALLOT__V1__ROLE__ROLE_COLLECTOR;
	p.scope = S("lumi");
	assert_true(render_message(capture_start(&cap), &p.base));
	text = capture_end(&cap);
	assert_string_equal(text,
	    "subject: CN=collector-lumi,O=Allot Dev\n"
	    "role: collector\n"
	    "scope: lumi\n");
	free(text);
}

static void
test_balance(void **state)
{
	Allot__V1__Balance b = ALLOT__V1__BALANCE__INIT, total = ALLOT__V1__BALANCE__INIT;
	Allot__V1__AllocationBalance a = ALLOT__V1__ALLOCATION_BALANCE__INIT;
	Allot__V1__AllocationBalance *as[] = {&a};
	Allot__V1__GetBalanceResponse resp = ALLOT__V1__GET_BALANCE_RESPONSE__INIT;
	Allot__V1__Movements m = ALLOT__V1__MOVEMENTS__INIT;
	struct capture cap;
	char *text;

	(void)state;
	m.granted_gpu_hours = 100;
	m.added_gpu_hours = -2.5;
	m.used_gpu_hours = 1.0 / 3;
	m.refunded_gpu_hours = 1.5;
	m.credited_gpu_hours = 0.25;
	m.expired_gpu_hours = 0;
	b.granted_gpu_hours = 100;
	b.charged_gpu_hours = 1.0 / 3;
	b.available_gpu_hours = 100 - 1.0 / 3;
	b.native_unit = S("core-h");
	b.native_granted = 800;
	b.native_charged = 8.0 / 3;
	b.native_available = 800 - 8.0 / 3;
	total = b;
	total.native_unit = S("");
	a.allocation_id = 7;
	a.scope = S("site leonardo");
	a.starts_at = S("2026-01-01");
	a.ends_at = S("2027-01-01");
	a.balance = &b;
	a.movements = &m;
	resp.project = S("acme");
	resp.movements = &m;
	resp.allocations = as;
	resp.n_allocations = 1;
	resp.total = &total;
	assert_true(render_balance(capture_start(&cap), &resp));
	text = capture_end(&cap);
	assert_string_equal(text,
	    "project: acme\n"
	    "allocation  scope          window                    unit    granted  charged  "
	    "pending  available\n"
	    "         7  site leonardo  2026-01-01 .. 2027-01-01  GPU-h    100.00     0.33     "
	    "0.00      99.67\n"
	    "                                                     core-h   800.00     2.67     "
	    "0.00     797.33\n"
	    "     total                                           GPU-h    100.00     0.33     "
	    "0.00      99.67\n"
	    "\n"
	    "movements (GPU-h):\n"
	    "allocation  granted  added  used  refunded  credited  expired\n"
	    "         7   100.00  -2.50  0.33      1.50      0.25     0.00\n"
	    "     total   100.00  -2.50  0.33      1.50      0.25     0.00\n");
	free(text);
}

/* Two jobs: one sampled (41.666 % mean, 0.01 kWh), one with no metrics and a comma. */
static void
jobs_fixture(Allot__V1__JobSummary *a, Allot__V1__JobSummary *b)
{
	*a = (Allot__V1__JobSummary)ALLOT__V1__JOB_SUMMARY__INIT;
	a->site = S("leonardo");
	a->job_id = S("9001");
	a->user = S("ada");
	a->account = S("AIFAC_P02_548");
	a->partition = S("boost_usr_prod");
	a->start_time = S("2026-11-21T08:00:00Z");
	a->state = S("COMPLETED");
	a->gpus = 2;
	a->elapsed_s = 3661;
	a->charged_gpu_hours = 2.033889;
	a->native_milli = 16271;
	a->native_unit = S("core-h");
	a->samples = 6;
	a->utilization_case = ALLOT__V1__JOB_SUMMARY__UTILIZATION_MEAN_UTILIZATION_PCT;
	a->mean_utilization_pct = 41.666667;
	a->energy_case = ALLOT__V1__JOB_SUMMARY__ENERGY_ENERGY_KWH;
	a->energy_kwh = 0.01;
	a->zero_utilization_gpu_hours = 0.016667;
	*b = *a;
	b->job_id = S("9002");
	b->user = S("o\"brien, jr");
	b->elapsed_s = 59;
	b->samples = 0;
	b->utilization_case = ALLOT__V1__JOB_SUMMARY__UTILIZATION__NOT_SET;
	b->energy_case = ALLOT__V1__JOB_SUMMARY__ENERGY__NOT_SET;
	b->zero_utilization_gpu_hours = 0;
}

static void
test_jobs(void **state)
{
	Allot__V1__JobSummary a, b;
	Allot__V1__JobSummary *jobs[] = {&a, &b};
	Allot__V1__ListJobsResponse resp = ALLOT__V1__LIST_JOBS_RESPONSE__INIT;
	struct capture cap;
	char *text;

	(void)state;
	jobs_fixture(&a, &b);
	resp.jobs = jobs;
	resp.n_jobs = 2;
	assert_true(render_jobs(capture_start(&cap), &resp, false));
	text = capture_end(&cap);
	assert_string_equal(text,
	    "site      job   user         gpus  elapsed  GPU-h  native  unit    util %  "
	    "idle GPU-h  energy kWh\n"
	    "leonardo  9001  ada             2  1:01:01   2.03   16.27  core-h    41.7        "
	    "0.02       0.010\n"
	    "leonardo  9002  o\"brien, jr     2  0:00:59   2.03   16.27  core-h       -        "
	    "0.00           -\n");
	free(text);
	assert_true(render_jobs(capture_start(&cap), &resp, true));
	text = capture_end(&cap);
	assert_string_equal(text,
	    "site,job_id,user,account,partition,start_time,state,gpus,elapsed_s,"
	    "charged_gpu_hours,native,native_unit,samples,mean_utilization_pct,"
	    "zero_utilization_gpu_hours,energy_kwh\n"
	    "leonardo,9001,ada,AIFAC_P02_548,boost_usr_prod,2026-11-21T08:00:00Z,COMPLETED,2,3661,"
	    "2.033889,16.271,core-h,6,41.67,0.016667,0.010000\n"
	    "leonardo,9002,\"o\"\"brien, jr\",AIFAC_P02_548,boost_usr_prod,2026-11-21T08:00:00Z,"
	    "COMPLETED,2,59,2.033889,16.271,core-h,0,,0.000000,\n");
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_list_table),
	    cmocka_unit_test(test_numbers_right),
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_balance),
	    cmocka_unit_test(test_jobs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
