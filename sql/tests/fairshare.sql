-- Fair share (0017): usage_days kept by job_usage's triggers, set-based, new minus
-- old, per (project, user, site, start day); explicit shares (FairShare.SetShares);
-- the state allotd reads (allot.fairshare_state), and the usage per site (0019,
-- allot.fairshare_site_usage). LEONARDO boost_usr_prod at weight
-- 1000: a GPU-second is 1000 units, a GPU-hour 3,600,000.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(29);

CREATE FUNCTION pg_temp.rec(job text, elapsed int, usr text DEFAULT 'bo',
    start text DEFAULT '2026-11-21T08:00:00Z', step text DEFAULT '')
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('jobId', job, 'step', step, 'startTime', start,
        'account', 'acme-llm', 'user', usr, 'partition', 'boost_usr_prod', 'gpus', 1,
        'cpus', 8, 'memMb', '1000', 'nodes', 1, 'elapsedS', elapsed::text, 'state', 'RUNNING',
        'bill', jsonb_build_object('resource', 'leonardo/boost_usr_prod',
        'occupiedGpus', '1', 'gpuMs', (elapsed * 1000)::text,
        'chargeUnits', (elapsed * 1000)::text,
        'nativeMilli', (elapsed::bigint * 8000 / 3600)::text, 'weightPerMille', 1000))
$$;
CREATE FUNCTION pg_temp.batch(id text, recs jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT allot.rpc_ingest(jsonb_build_object('site', 'leonardo', 'batchId', id,
        'bodyHash', md5(recs::text), 'records',
        (SELECT jsonb_agg(e || jsonb_build_object('index', i - 1) ORDER BY i)
         FROM jsonb_array_elements(recs) WITH ORDINALITY t(e, i))), 'CN=collector-leonardo')
$$;
-- units of (user, day) at LEONARDO for acme-llm; 0 when no row.
CREATE FUNCTION pg_temp.units(usr text, d date) RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(units), 0)::bigint FROM allot.usage_days
    WHERE project_id = allot.project_id('acme-llm') AND user_name = usr AND site = 'leonardo'
      AND day = d
$$;

SELECT is(pg_temp.batch('f1', jsonb_build_array(pg_temp.rec('j1', 3600))) ->> 'charged', '1',
    'a new job is charged');
SELECT is(pg_temp.units('bo', '2026-11-21'), 3600000::bigint,
    'its user has its units on its start day');
SELECT is(pg_temp.batch('f2', jsonb_build_array(pg_temp.rec('j1', 7200))) ->> 'charged', '1',
    'the same job with more elapsed is charged again');
SELECT is(pg_temp.units('bo', '2026-11-21'), 7200000::bigint,
    'the day moves by the difference only');
SELECT is(pg_temp.batch('f3', jsonb_build_array(pg_temp.rec('j1', 3600))) ->> 'duplicates', '1',
    'an older record is a duplicate');
SELECT is(pg_temp.units('bo', '2026-11-21'), 7200000::bigint, 'and moves nothing');
SELECT is(pg_temp.batch('f4', jsonb_build_array(pg_temp.rec('j1', 9000, step => 'batch')))
    ->> 'recorded', '1', 'a step is recorded');
SELECT is(pg_temp.units('bo', '2026-11-21'), 7200000::bigint, 'a step is not counted');

-- One batch: two users, two days, one of them twice.
SELECT is(pg_temp.batch('f5', jsonb_build_array(pg_temp.rec('j2', 1800, 'al'),
    pg_temp.rec('j3', 600, 'al', '2026-11-22T23:30:00Z'),
    pg_temp.rec('j3', 900, 'al', '2026-11-22T23:30:00Z'), pg_temp.rec('j1', 10800)))
    ->> 'charged', '3', 'a batch of new and stored jobs of two users');
SELECT is(pg_temp.units('al', '2026-11-21'), 1800000::bigint, 'al on the 21st');
SELECT is(pg_temp.units('al', '2026-11-22'), 900000::bigint,
    'al on the 22nd: the larger record of j3 once');
SELECT is(pg_temp.units('bo', '2026-11-21'), 10800000::bigint, 'bo: j1 at 10,800 s');
SELECT ok(allot.check_usage_days(), 'usage_days equal what job_usage says');

-- Plain SQL writes keep it too: an update and a delete.
UPDATE allot.job_usage SET charged_units = charged_units + 1000 WHERE job_id = 'j2' AND step = '';
DELETE FROM allot.job_usage WHERE job_id = 'j3';
SELECT is(pg_temp.units('al', '2026-11-21') || '/' || pg_temp.units('al', '2026-11-22'),
    '1801000/0', 'an update adds its difference, a delete takes the job off');
SELECT ok(allot.check_usage_days(), 'and usage_days still equal job_usage');

-- Explicit shares.
SELECT is(allot.rpc_set_shares('{"project":"acme-llm","shares":250}', 'CN=admin')
    ->> 'explicit', 'true', 'a project''s shares are set');
SELECT is(allot.rpc_set_shares('{"project":"acme-llm","user":"bo","shares":3}', 'CN=admin')
    ->> 'shares', '3', 'a user''s shares in a project are set');
SELECT throws_ok($$SELECT allot.rpc_set_shares('{"project":"nobody","shares":1}', 'CN=admin')$$,
    'P0002', 'project "nobody" does not exist', 'an unknown project is not_found');
SELECT throws_ok($$SELECT allot.rpc_set_shares('{"project":"acme-llm","shares":-1}', 'CN=admin')$$,
    '22023', 'shares must be a finite number, 0 or more, not -1', 'negative shares are refused');
SELECT throws_ok($$SELECT allot.rpc_set_shares('{"program":"ai-factories","project":"acme-llm",
    "shares":1}', 'CN=admin')$$, '22023', NULL, 'two nodes named at once are refused');

SELECT is(allot.rpc_set_shares('{"organization":"acme","shares":7}', 'CN=admin')
    ->> 'explicit', 'true', 'an organization''s shares are set');
SELECT is(allot.rpc_set_shares('{"organization":"acme","clear":true}', 'CN=admin'),
    '{"program":"","organization":"acme","project":"","user":"","shares":0,"explicit":false}'::jsonb,
    'clear takes them back to the default');
SELECT is((SELECT count(*) FROM allot.fairshare_shares WHERE kind = 'organization'), 0::bigint,
    'and removes the row');

-- The state: acme-llm's 100 GPU-hours at LEONARDO, its explicit 250, bo's 3; the usage
-- per user and day in GPU-hours.
SELECT is((SELECT format('%s %s %s %s', s3, n1, n6, n4 IS NULL) FROM
    allot.fairshare_state('2026-12-01T00:00:00Z') WHERE kind = 0 AND s3 = 'acme-llm'),
    'acme-llm 100 250 t', 'a project: its granted GPU-hours and its explicit shares');
SELECT is((SELECT string_agg(format('%s:%s', s1, round(n2::numeric, 6)), ',' ORDER BY s1, n1)
    FROM allot.fairshare_state('2026-12-01T00:00:00Z') WHERE kind = 2),
    'al:0.500278,bo:3.000000', 'the usage of each user and day, in GPU-hours');

-- The usage of each site (0019): LEONARDO's is all of it; JUPITER has none but is a
-- site; a day's units at JUPITER (straight into usage_days) are its own.
SELECT is((SELECT string_agg(format('%s:%s:%s', user_name, n1, round(n2::numeric, 6)), ','
        ORDER BY user_name, n1) FROM allot.fairshare_site_usage() WHERE site = 'leonardo'),
    (SELECT string_agg(format('%s:%s:%s', s1, n1, round(n2::numeric, 6)), ',' ORDER BY s1, n1)
        FROM allot.fairshare_state('2026-12-01T00:00:00Z') WHERE kind = 2),
    'a site''s usage per user and day, when it is the only site used, is all usage');
SELECT is((SELECT format('%s %s %s', site, project_id IS NULL, user_name IS NULL)
        FROM allot.fairshare_site_usage() WHERE site <> 'leonardo'),
    'jupiter t t', 'a site with no usage has one row naming it');
INSERT INTO allot.usage_days (project_id, user_name, site, day, units)
VALUES (allot.project_id('acme-llm'), '', 'jupiter', '2026-11-25', 7200000);
SELECT is((SELECT string_agg(format('%s:%s:%s', user_name, to_timestamp(n1)::date, n2), ',')
        FROM allot.fairshare_site_usage() WHERE site = 'jupiter'),
    '-:2026-11-25:2', 'its own usage then, a job without a user counting for "-"');
SELECT is((SELECT sum(n2) FROM allot.fairshare_state('2026-12-01T00:00:00Z') WHERE kind = 2),
    (SELECT sum(n2) FROM allot.fairshare_site_usage()),
    'the sites'' usage sums to the usage of all sites');

SELECT * FROM finish();
ROLLBACK;
