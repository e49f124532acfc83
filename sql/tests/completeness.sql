-- Completeness and per-account totals (0008): site_days kept by job_usage's
-- triggers, set-based, new minus old; Usage.GetCompleteness and GetSiteTotals.
-- Figures: LEONARDO boost_usr_prod bills 1 GPU-hour as 8 core-h (8000 thousandths),
-- weight 1000, so a GPU-second is 1000 units and 1000 GPU-milliseconds.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(31);

CREATE FUNCTION pg_temp.rec(job text, elapsed int, start text DEFAULT '2026-11-21T08:00:00Z',
    gpus int DEFAULT 1, acct text DEFAULT 'acme-llm', step text DEFAULT '')
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('jobId', job, 'step', step, 'startTime', start, 'account', acct,
        'partition', 'boost_usr_prod', 'gpus', gpus, 'cpus', 8 * gpus, 'memMb', '1000',
        'nodes', 1, 'elapsedS', elapsed::text, 'state', 'RUNNING',
        'bill', jsonb_build_object('resource', 'leonardo/boost_usr_prod',
        'occupiedGpus', gpus::text, 'gpuMs', (gpus * elapsed * 1000)::text,
        'chargeUnits', (gpus * elapsed * 1000)::text,
        'nativeMilli', (gpus::bigint * elapsed * 8000 / 3600)::text, 'weightPerMille', 1000))
$$;
CREATE FUNCTION pg_temp.batch(id text, recs jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT allot.rpc_ingest(jsonb_build_object('site', 'leonardo', 'batchId', id,
        'bodyHash', md5(recs::text), 'records',
        (SELECT jsonb_agg(e || jsonb_build_object('index', i - 1) ORDER BY i)
         FROM jsonb_array_elements(recs) WITH ORDINALITY t(e, i))), 'CN=collector-leonardo')
$$;
-- (jobs, gpu_ms, charged_units, native_milli) of a day at LEONARDO, all accounts.
CREATE FUNCTION pg_temp.day(d date) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s/%s/%s/%s', coalesce(sum(jobs), 0), coalesce(sum(gpu_ms), 0),
        coalesce(sum(charged_units), 0), coalesce(sum(native_milli), 0))
    FROM allot.site_days WHERE site = 'leonardo' AND day = d
$$;

-- A new job: 1 GPU for an hour, started on the 21st.
SELECT is(pg_temp.batch('c1', jsonb_build_array(pg_temp.rec('j1', 3600))) ->> 'charged', '1',
    'a new job is charged');
SELECT is(pg_temp.day('2026-11-21'), '1/3600000/3600000/8000',
    'a new job counts on its start day: 1 job, 3,600,000 GPU-ms and units, 8 core-h');

-- The same job reported again with more elapsed: the day moves by the difference only.
SELECT is(pg_temp.batch('c2', jsonb_build_array(pg_temp.rec('j1', 7200))) ->> 'charged', '1',
    'the same job with more elapsed is charged');
SELECT is(pg_temp.day('2026-11-21'), '1/7200000/7200000/16000',
    'reported again with 7,200 s: still 1 job, 7,200,000 GPU-ms, 16 core-h');

-- A late, older record of it: a duplicate, nothing moves.
SELECT is(pg_temp.batch('c3', jsonb_build_array(pg_temp.rec('j1', 3600))) ->> 'duplicates', '1',
    'an older record is a duplicate');
SELECT is(pg_temp.day('2026-11-21'), '1/7200000/7200000/16000', 'a duplicate changes no day');

-- A step of it: recorded, not counted.
SELECT is(pg_temp.batch('c4', jsonb_build_array(pg_temp.rec('j1', 7000, step => 'batch')))
    ->> 'recorded', '1', 'a step is recorded');
SELECT is(pg_temp.day('2026-11-21'), '1/7200000/7200000/16000', 'a step is not counted');

-- Rejected records: an unknown account, a start no allocation covers.
SELECT is(pg_temp.batch('c5', jsonb_build_array(pg_temp.rec('j9', 3600, acct => 'nobody'),
    pg_temp.rec('j8', 3600, start => '2026-09-21T08:00:00Z'))) ->> 'rejected', '2',
    'two records are rejected');
SELECT is(pg_temp.day('2026-11-21'), '1/7200000/7200000/16000',
    'a rejected record is not counted on any day');
SELECT is(pg_temp.day('2026-09-21'), '0/0/0/0', 'nor on the day it claims to have started');

-- One batch: a new job twice (the larger elapsed wins), a stored job again, a job
-- on the next day, 2 GPUs for half an hour, started 23:30 UTC.
SELECT is(pg_temp.batch('c6', jsonb_build_array(pg_temp.rec('j2', 600, '2026-11-21T12:00:00Z'),
    pg_temp.rec('j2', 900, '2026-11-21T12:00:00Z'), pg_temp.rec('j1', 10800),
    pg_temp.rec('j3', 1800, '2026-11-22T23:30:00Z', 2))) ->> 'charged', '3',
    'a batch of new and stored jobs charges three');
SELECT is(pg_temp.day('2026-11-21'), '2/11700000/11700000/26000',
    'j1 at 10,800 s and j2 once at 900 s: 2 jobs, 11,700,000 GPU-ms, 26 core-h');
SELECT is(pg_temp.day('2026-11-22'), '1/3600000/3600000/8000',
    'a job started at 23:30 counts on its start day with all its usage');
SELECT is(pg_temp.day('2026-11-23'), '0/0/0/0', 'not on the day it ran into');
SELECT ok(allot.check_site_days(), 'site_days equal what job_usage says');

-- A heartbeat-like direct write of job_usage (plain SQL) keeps the days too.
UPDATE allot.job_usage SET gpu_ms = gpu_ms + 1000, native_milli = native_milli + 2
WHERE site = 'leonardo' AND job_id = 'j3' AND step = '';
SELECT is(pg_temp.day('2026-11-22'), '1/3601000/3600000/8002', 'an UPDATE moves the day by its difference');
UPDATE allot.job_usage SET gpu_ms = gpu_ms - 601000, native_milli = native_milli - 1002
WHERE site = 'leonardo' AND job_id = 'j3' AND step = '';
SELECT is(pg_temp.day('2026-11-22'), '1/3000000/3600000/7000',
    'an UPDATE that lowers a job lowers its day (a correction through plain SQL)');
DELETE FROM allot.job_usage WHERE site = 'leonardo' AND job_id = 'j3' AND step = '';
SELECT is(pg_temp.day('2026-11-22'), '0/0/0/0', 'a DELETE takes the job off its day');
SELECT ok(allot.check_site_days(), 'site_days still equal job_usage');

-- The RPC: every day of the range, gaps as zeros.
SELECT is(jsonb_array_length(allot.rpc_get_completeness(
    '{"site":"leonardo","since":"2026-11-20","until":"2026-11-23"}', 'CN=admin') -> 'days'),
    4, 'four days asked, four answered');
SELECT is(allot.rpc_get_completeness(
    '{"site":"leonardo","since":"2026-11-20","until":"2026-11-23"}', 'CN=admin') -> 'days' -> 0,
    '{"day":"2026-11-20","jobs":"0","gpuMs":"0","chargeUnits":"0","native":[]}'::jsonb,
    'a day with nothing reported is a gap of zeros');
SELECT is(allot.rpc_get_completeness(
    '{"site":"leonardo","since":"2026-11-20","until":"2026-11-23"}', 'CN=admin') -> 'days' -> 1,
    '{"day":"2026-11-21","jobs":"2","gpuMs":"11700000","chargeUnits":"11700000",
      "native":[{"unit":"core-h","milli":"26000"}]}'::jsonb,
    'the 21st: 2 jobs, 3.25 GPU-hours, 26 core-h');
SELECT is(allot.rpc_get_completeness('{"site":"leonardo","until":"2026-11-23"}', 'CN=admin') ->> 'since',
    '2026-10-25', 'since defaults to 30 days up to until');

SELECT is(allot.rpc_get_site_totals('{"site":"leonardo"}', 'CN=admin') -> 'accounts',
    '[{"account":"acme-llm","nativeUnit":"core-h","nativeMilli":"26000","gpuMs":"11700000",
       "chargeUnits":"11700000","jobs":"2"}]'::jsonb,
    'per account: 2 jobs, 26 core-h, 3.25 GPU-hours');
SELECT is(allot.rpc_get_site_totals(
    '{"site":"leonardo","since":"2026-11-22","until":"2026-11-30"}', 'CN=admin') -> 'accounts',
    '[]'::jsonb, 'jobs that started before since are not in the totals');

-- Bad input: a clear error.
SELECT throws_ok($$SELECT allot.rpc_get_completeness('{"site":"nowhere"}', 'CN=admin')$$,
    'P0002', NULL, 'an unknown site is not_found');
SELECT throws_ok($$SELECT allot.rpc_get_completeness(
    '{"site":"leonardo","since":"2026-11-24","until":"2026-11-23"}', 'CN=admin')$$,
    '22023', 'since 2026-11-24 is after until 2026-11-23', 'since after until is refused');
SELECT throws_ok($$SELECT allot.rpc_get_completeness(
    '{"site":"leonardo","since":"2026-13-01"}', 'CN=admin')$$,
    '22007', NULL, 'a date that is not one is refused');
SELECT throws_ok($$SELECT allot.rpc_get_site_totals(
    '{"site":"leonardo","since":"1900-01-01","until":"2026-11-23"}', 'CN=admin')$$,
    '22023', NULL, 'more than 36,600 days is refused');
SELECT throws_ok($$SELECT allot.rpc_get_completeness('{"site":""}', 'CN=admin')$$,
    NULL, NULL, 'a site is required');

SELECT * FROM finish();
ROLLBACK;
