-- Incident credits and threshold events (0012), every figure worked out here.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(47);

-- A job's allocation record at a site, with the bill allotd would send: units are
-- given as they are (1 GPU at weight 1000 is elapsed * 1000 units).
CREATE FUNCTION pg_temp.rec(job text, start text, elapsed int, units bigint,
    acct text DEFAULT 'acme-llm', step text DEFAULT '', part text DEFAULT 'boost_usr_prod')
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('jobId', job, 'step', step, 'startTime', start, 'account', acct,
        'partition', part, 'gpus', 1, 'cpus', 8, 'memMb', '1000', 'nodes', 1,
        'elapsedS', elapsed::text, 'state', 'RUNNING',
        'bill', jsonb_build_object('resource', CASE part WHEN 'booster' THEN 'jupiter/booster'
                                                       ELSE 'leonardo/boost_usr_prod' END,
            'occupiedGpus', '1', 'gpuMs', (elapsed * 1000)::text, 'chargeUnits', units::text,
            'nativeMilli', '0', 'weightPerMille', 1000))
$$;
CREATE FUNCTION pg_temp.batch(site text, id text, recs jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT allot.rpc_ingest(jsonb_build_object('site', site, 'batchId', id,
        'bodyHash', md5(recs::text), 'records',
        (SELECT jsonb_agg(e || jsonb_build_object('index', i - 1) ORDER BY i)
         FROM jsonb_array_elements(recs) WITH ORDINALITY t(e, i))), 'CN=collector')
$$;
CREATE FUNCTION pg_temp.declare(id text, site text, part text, starts text, ends text,
    reason text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT allot.rpc_declare_incident(jsonb_build_object('incidentId', id, 'site', site,
        'partition', part, 'startsAt', starts, 'endsAt', ends, 'reason', reason), 'CN=admin')
$$;
CREATE FUNCTION pg_temp.credits() RETURNS text LANGUAGE sql AS $$
    SELECT count(*) || ' transfers, ' || coalesce(sum(amount), 0) || ' units'
    FROM allot.transfers WHERE kind = 'credit'
$$;
CREATE FUNCTION pg_temp.credit_of(job text) RETURNS bigint LANGUAGE sql AS $$
    SELECT amount FROM allot.transfers WHERE transfer_id = 'incident:lrd-1:leonardo:' || job
$$;
SELECT allot.rpc_create_allocation('{"project":"acme-llm","site":"jupiter","gpuHours":"100",
    "startsAt":"2026-10-01","endsAt":"2027-04-01","transferId":"grant-jupiter"}', 'CN=admin');

-- ---------------------------------------------------------------- incidents
--
-- LEONARDO's boost_usr_prod is down from 10:00 to 12:00 on 2026-11-21. Jobs, 1 GPU
-- each unless said (units = elapsed * 1000 per GPU):
--   jA 10:30 +3600 s (to 11:30), inside:           credit 3600/3600 * 3,600,000  = 3,600,000
--   jB 09:00 +7200 s (to 11:00), 2 GPUs:            credit 3600/7200 * 14,400,000 = 7,200,000
--   jC 11:00 +10800 s (to 14:00), still running:    credit 3600/10800 * 10,800,000 = 3,600,000
--   jD 11:59:57 +7 s, a bill of 1,000 units:        credit floor(3/7 * 1,000) = floor(428.57) = 428
--   jI 11:30 +600 s so far (to 11:40), running:     credit 600/600 * 600,000 = 600,000
--   jE 08:00 +3600 s (to 09:00), before:            nothing
--   jG 09:00 +3600 s (to 10:00), ends at the start: nothing
--   jF 12:00 +600 s, starts at the end:             nothing
--   jA.batch, a step:                               nothing
--   jupiter's jH 10:30 +3600 s, another site:       nothing
-- Total: 3,600,000 + 7,200,000 + 3,600,000 + 428 + 600,000 = 15,000,428 units, 5 jobs.
SELECT pg_temp.batch('leonardo', 'l1', jsonb_build_array(
    pg_temp.rec('jA', '2026-11-21T10:30:00Z', 3600, 3600000),
    pg_temp.rec('jA', '2026-11-21T10:30:00Z', 3600, 3600000, step => 'batch'),
    pg_temp.rec('jB', '2026-11-21T09:00:00Z', 7200, 14400000),
    pg_temp.rec('jC', '2026-11-21T11:00:00Z', 10800, 10800000),
    pg_temp.rec('jD', '2026-11-21T11:59:57Z', 7, 1000),
    pg_temp.rec('jI', '2026-11-21T11:30:00Z', 600, 600000),
    pg_temp.rec('jE', '2026-11-21T08:00:00Z', 3600, 3600000),
    pg_temp.rec('jG', '2026-11-21T09:00:00Z', 3600, 3600000),
    pg_temp.rec('jF', '2026-11-21T12:00:00Z', 600, 600000)));
SELECT pg_temp.batch('jupiter', 'j1', jsonb_build_array(
    pg_temp.rec('jH', '2026-11-21T10:30:00Z', 3600, 14400000, part => 'booster')));

CREATE TEMP TABLE before_ AS
SELECT (SELECT credits_posted FROM allot.accounts a JOIN allot.allocations al
        ON al.id = a.allocation_id WHERE al.transfer_id = 'grant-1') AS granted,
       (SELECT debits_posted FROM allot.accounts WHERE kind = 'consumed') AS consumed_debits;

-- Bad input is refused and changes nothing.
SELECT throws_ok($$SELECT pg_temp.declare('lrd-1', 'nowhere', '', '2026-11-21T10:00:00Z',
    '2026-11-21T12:00:00Z', 'cooling failure')$$, 'P0002', 'site "nowhere" does not exist',
    'an unknown site is refused');
SELECT throws_ok($$SELECT pg_temp.declare('lrd-1', 'leonardo', 'nope', '2026-11-21T10:00:00Z',
    '2026-11-21T12:00:00Z', 'cooling failure')$$, 'P0002', 'resource "leonardo/nope" does not exist',
    'an unknown partition is refused');
SELECT throws_ok($$SELECT pg_temp.declare('lrd-1', 'leonardo', 'boost_usr_prod',
    '2026-11-21T12:00:00Z', '2026-11-21T10:00:00Z', 'cooling failure')$$, '22023',
    'endsAt 2026-11-21T10:00:00Z is not after startsAt 2026-11-21T12:00:00Z',
    'a window that ends before it starts is refused');
SELECT throws_ok($$SELECT pg_temp.declare('lrd-1', 'leonardo', 'boost_usr_prod',
    '2026-11-21T10:00:00Z', '2026-11-21T12:00:00Z', '   ')$$, '22023', 'reason is required',
    'an empty reason is refused');
SELECT throws_ok($$SELECT pg_temp.declare('lrd-1', 'leonardo', 'boost_usr_prod',
    '2026-11-21T10:00:00Z', '2999-01-01T00:00:00Z', 'cooling failure')$$, '22023', NULL,
    'a window that has not ended is refused');
SELECT throws_ok($$SELECT pg_temp.declare('lrd 1', 'leonardo', 'boost_usr_prod',
    '2026-11-21T10:00:00Z', '2026-11-21T12:00:00Z', 'cooling failure')$$, '22023', NULL,
    'an incident id with a space is refused');
SELECT throws_ok($$SELECT pg_temp.declare('lrd-1', 'leonardo', 'boost_usr_prod',
    'yesterday-ish', '2026-11-21T12:00:00Z', 'cooling failure')$$, '22007', NULL,
    'a start that is not a time is refused');
SELECT is(pg_temp.credits(), '0 transfers, 0 units', 'the refusals credited nothing');
SELECT is((SELECT count(*) FROM allot.incidents), 0::bigint, 'and recorded no incident');

SELECT is((pg_temp.declare('lrd-1', 'leonardo', 'boost_usr_prod', '2026-11-21T10:00:00Z',
    '2026-11-21T12:00:00Z', 'cooling failure') -> 'incident') - 'declaredAt'::text - 'principal'::text,
    '{"incidentId": "lrd-1", "site": "leonardo", "partition": "boost_usr_prod",
      "startsAt": "2026-11-21T10:00:00Z", "endsAt": "2026-11-21T12:00:00Z",
      "reason": "cooling failure", "jobsCredited": 5, "creditedUnits": "15000428",
      "creditedGpuHours": 4.166786}'::jsonb,
    'the incident credits 5 jobs 15,000,428 units (4.166786 GPU-h = 15,000,428 / 3,600,000)');
SELECT is(pg_temp.credit_of('jA'), 3600000::bigint, 'a job inside the window gets all it was charged');
SELECT is(pg_temp.credit_of('jB'), 7200000::bigint, 'a job that began before gets the half inside');
SELECT is(pg_temp.credit_of('jC'), 3600000::bigint, 'a running job past the end gets a third');
SELECT is(pg_temp.credit_of('jD'), 428::bigint, 'the credit is rounded down: 3/7 of 1,000 is 428');
SELECT is(pg_temp.credit_of('jI'), 600000::bigint, 'a running job gets what it reported in the window');
SELECT is((SELECT count(*) FROM allot.transfers WHERE kind = 'credit'
           AND transfer_id SIMILAR TO 'incident:lrd-1:%:(jE|jF|jG|jH)'), 0::bigint,
    'jobs outside the window or at another site get nothing');
SELECT is((SELECT string_agg(DISTINCT a.kind || '->' || b.kind, ',')
           FROM allot.transfers t JOIN allot.accounts a ON a.id = t.debit_account_id
           JOIN allot.accounts b ON b.id = t.credit_account_id WHERE t.kind = 'credit'),
    'consumed->allocation', 'every credit goes from consumed back to the job''s allocation');
SELECT is((SELECT reason FROM allot.transfers WHERE transfer_id = 'incident:lrd-1:leonardo:jB'),
    'incident lrd-1: cooling failure (job jB at leonardo: 3600.000 of its 7200 s in the window)',
    'the credit names the incident in its reason');
SELECT is((SELECT credits_posted - b.granted FROM allot.accounts a JOIN allot.allocations al
           ON al.id = a.allocation_id, before_ b WHERE al.transfer_id = 'grant-1'),
    15000428::bigint, 'the allocation''s account is credited 15,000,428 units');
SELECT ok(allot.check_ledger(), 'the ledger holds after the credits');

-- Declared again: nothing more; another body under the id is refused.
SELECT is(pg_temp.declare('lrd-1', 'leonardo', 'boost_usr_prod', '2026-11-21T10:00:00Z',
    '2026-11-21T12:00:00Z', 'cooling failure') ->> 'replay', 'true',
    'the same incident again is a replay');
SELECT is(pg_temp.credits(), '5 transfers, 15000428 units', 'and credits nothing twice');
SELECT throws_ok($$SELECT pg_temp.declare('lrd-1', 'leonardo', 'boost_usr_prod',
    '2026-11-21T10:00:00Z', '2026-11-21T12:00:00Z', 'power cut')$$, '23505', NULL,
    'the same id with another reason is refused');
SELECT throws_ok($$SELECT pg_temp.declare('lrd-2', 'leonardo', '', '2026-11-21T11:00:00Z',
    '2026-11-21T13:00:00Z', 'power cut')$$, '55000', NULL,
    'an incident overlapping one declared on the same partition is refused');
SELECT is(pg_temp.credits(), '5 transfers, 15000428 units', 'neither credited anything');

-- The running job reports more: charged as usual, never credited again by lrd-1.
-- jI 11:30 + 3600 s: 3,000,000 more units charged.
SELECT is(pg_temp.batch('leonardo', 'l2', jsonb_build_array(
    pg_temp.rec('jI', '2026-11-21T11:30:00Z', 3600, 3600000))) -> 'results' -> 0 ->> 'chargedUnits',
    '3000000', 'a credited job reporting more is charged the difference');
SELECT is(pg_temp.declare('lrd-1', 'leonardo', 'boost_usr_prod', '2026-11-21T10:00:00Z',
    '2026-11-21T12:00:00Z', 'cooling failure') -> 'incident' ->> 'creditedUnits', '15000428',
    'and the incident declared again still credits what it did');

SELECT is((allot.rpc_show_incident('{"incidentId":"lrd-1"}', 'CN=admin') -> 'credits' -> 1)
    - 'allocationId'::text,
    '{"site": "leonardo", "jobId": "jB", "project": "acme-llm", "startTime": "2026-11-21T09:00:00Z",
      "elapsedS": "7200", "overlapS": 3600.000000, "chargedUnits": "14400000",
      "creditUnits": "7200000", "creditGpuHours": 2.000000,
      "transferId": "incident:lrd-1:leonardo:jB"}'::jsonb,
    'show lists each credit with its figures');
SELECT is(jsonb_array_length(allot.rpc_show_incident('{"incidentId":"lrd-1"}', 'CN=admin') -> 'credits'),
    5, 'show lists the 5 credits');
SELECT throws_ok($$SELECT allot.rpc_show_incident('{"incidentId":"nope"}', 'CN=admin')$$, 'P0002',
    'incident "nope" does not exist', 'show of an unknown incident is not_found');

-- A partition-less incident covers the whole site: JUPITER 10:00 to 11:00.
-- jH 10:30 + 3600 s (to 11:30), 14,400,000 units: 1800/3600 of it = 7,200,000.
SELECT is(pg_temp.declare('jup-1', 'jupiter', '', '2026-11-21T10:00:00Z',
    '2026-11-21T11:00:00Z', 'file system hang') -> 'incident' ->> 'creditedUnits', '7200000',
    'a site-wide incident credits the overlap of the site''s jobs');
SELECT is(jsonb_array_length(allot.rpc_list_incidents('{}', 'CN=admin') -> 'incidents'), 2,
    'both incidents are listed');
SELECT is(allot.rpc_list_incidents('{"site":"jupiter"}', 'CN=admin') -> 'incidents' -> 0 ->> 'incidentId',
    'jup-1', 'listed by site');
SELECT ok(allot.check_ledger(), 'the ledger holds');

-- ---------------------------------------------------------------- events
--
-- acme-vision is granted 1 GPU-hour (3,600,000 units) on LEONARDO; thresholds
-- 50, 80, 100 % are 1,800,000, 2,880,000 and 3,600,000 units.
SELECT allot.rpc_create_allocation('{"project":"acme-vision","site":"leonardo","gpuHours":"1",
    "startsAt":"2026-10-01","endsAt":"2027-04-01","transferId":"grant-vision"}', 'CN=admin');
CREATE FUNCTION pg_temp.vision_events() RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(threshold_pct || '%:' || used_units || '/' || granted_units, ' '
                               ORDER BY e.id), '')
    FROM allot.events e JOIN allot.projects p ON p.id = e.project_id WHERE p.name = 'acme-vision'
$$;
-- v1 1,000 s: 1,000,000 units, 27.8 %: nothing.
SELECT pg_temp.batch('leonardo', 'v1', jsonb_build_array(
    pg_temp.rec('v1', '2026-11-22T08:00:00Z', 1000, 1000000, 'acme-vision')));
SELECT is(pg_temp.vision_events(), '', 'under 50 % there is no event');
-- v1 at 1,800 s: 1,800,000 units, exactly 50 %.
SELECT pg_temp.batch('leonardo', 'v2', jsonb_build_array(
    pg_temp.rec('v1', '2026-11-22T08:00:00Z', 1800, 1800000, 'acme-vision')));
SELECT is(pg_temp.vision_events(), '50%:1800000/3600000', 'reaching 50 % is an event');
-- v2 1,000 s: 2,800,000 units, 77.8 %: nothing new; the same batch again: nothing.
SELECT pg_temp.batch('leonardo', 'v3', jsonb_build_array(
    pg_temp.rec('v2', '2026-11-22T09:00:00Z', 1000, 1000000, 'acme-vision')));
SELECT pg_temp.batch('leonardo', 'v3', jsonb_build_array(
    pg_temp.rec('v2', '2026-11-22T09:00:00Z', 1000, 1000000, 'acme-vision')));
SELECT is(pg_temp.vision_events(), '50%:1800000/3600000', '50 % fires once');
-- v3 1,000 s: 3,800,000 units, 105.6 %: 80 and 100 in one batch, in that order.
SELECT pg_temp.batch('leonardo', 'v4', jsonb_build_array(
    pg_temp.rec('v3', '2026-11-22T10:00:00Z', 1000, 1000000, 'acme-vision')));
SELECT is(pg_temp.vision_events(), '50%:1800000/3600000 80%:3800000/3600000 100%:3800000/3600000',
    'one batch crossing 80 and 100 % makes both events, in order');
-- An incident credits v3 back (10:00 to 10:30 of its 1,000 s: all of it, 1,000,000):
-- use 2,800,000, 77.8 %; v3 reported again at 1,500 s: 3,300,000, 91.7 %: no event
-- fires again (each threshold once).
SELECT pg_temp.declare('lrd-3', 'leonardo', '', '2026-11-22T10:00:00Z', '2026-11-22T10:30:00Z',
    'node failure');
SELECT is((SELECT used_units FROM allot.project_usage u JOIN allot.projects p ON p.id = u.project_id
           WHERE p.name = 'acme-vision'), 2800000::bigint, 'a credit lowers the project''s use');
SELECT pg_temp.batch('leonardo', 'v5', jsonb_build_array(
    pg_temp.rec('v3', '2026-11-22T10:00:00Z', 1500, 1500000, 'acme-vision')));
SELECT is((SELECT count(*) FROM allot.events e JOIN allot.projects p ON p.id = e.project_id
           WHERE p.name = 'acme-vision'), 3::bigint, 'crossing 80 % again after a credit fires nothing');
-- A threshold added later (90 %) fires at the next charge, the project being past it:
-- v3 at 1,600 s: 3,400,000 units, 94.4 %.
INSERT INTO allot.event_thresholds VALUES (90);
SELECT pg_temp.batch('leonardo', 'v6', jsonb_build_array(
    pg_temp.rec('v3', '2026-11-22T10:00:00Z', 1600, 1600000, 'acme-vision')));
SELECT is(pg_temp.vision_events(),
    '50%:1800000/3600000 80%:3800000/3600000 100%:3800000/3600000 90%:3400000/3600000',
    'a threshold configured later fires once the project is past it');

SELECT is((SELECT string_agg(e ->> 'thresholdPct' || ':' || (e ->> 'usedPct'), ' ')
           FROM jsonb_array_elements(allot.rpc_list_events('{"project":"acme-vision"}',
                'CN=project-acme-vision') -> 'events') e),
    '50:50.00 80:105.56 100:105.56 90:94.44', 'ListEvents answers the project''s events, oldest first');
SELECT is(jsonb_array_length(allot.rpc_list_events('{"project":"acme-vision","limit":2}',
    'CN=admin') -> 'events'), 2, 'at most limit events');
SELECT throws_ok($$SELECT allot.rpc_list_events('{"kind":"stop"}', 'CN=admin')$$, '22023', NULL,
    'an unknown kind is refused');
SELECT is((SELECT string_agg(project || ':' || threshold_pct, ' ') FROM allot.announce_events()),
    'acme-vision:50 acme-vision:80 acme-vision:100 acme-vision:90',
    'allotd claims each event to announce it');
SELECT is((SELECT count(*) FROM allot.announce_events()), 0::bigint, 'once');
SELECT ok(allot.check_project_usage(), 'the projects'' figures equal the journal''s');

SELECT * FROM finish();
ROLLBACK;
