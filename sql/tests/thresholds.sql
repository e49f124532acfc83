-- Event thresholds through the API (0018): Events.ListThresholds and
-- Events.SetThresholds, their refusals, and what a change does to the events.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(14);

SELECT is(allot.rpc_list_thresholds('{}', 'CN=auditor'), '{"percents": [50, 80, 100]}'::jsonb,
    'the defaults of 0012, ascending');
SELECT is(allot.rpc_set_thresholds('{"percents": [100, 25, 90]}', 'CN=admin'),
    '{"percents": [25, 90, 100]}'::jsonb, 'SetThresholds replaces them and answers them sorted');
SELECT is((SELECT array_agg(percent ORDER BY percent) FROM allot.event_thresholds),
    '{25,90,100}'::integer[], 'the table holds the new set');
SELECT is(allot.rpc_set_thresholds('{"percents": [100, 25, 90]}', 'CN=admin'),
    '{"percents": [25, 90, 100]}'::jsonb, 'setting the same again changes nothing');

-- Refusals change nothing.
SELECT throws_ok($$SELECT allot.rpc_set_thresholds('{"percents": [50, 0]}', 'CN=admin')$$,
    '22023', 'threshold "0" is not a percent between 1 and 1000', '0 is refused');
SELECT throws_ok($$SELECT allot.rpc_set_thresholds('{"percents": [1001]}', 'CN=admin')$$,
    '22023', 'threshold "1001" is not a percent between 1 and 1000', 'above 1000 is refused');
SELECT throws_ok($$SELECT allot.rpc_set_thresholds('{"percents": [-5]}', 'CN=admin')$$,
    '22023', 'threshold "-5" is not a percent between 1 and 1000', 'a negative one is refused');
SELECT throws_ok($$SELECT allot.rpc_set_thresholds('{"percents": [80, 50, 80]}', 'CN=admin')$$,
    '22023', 'threshold 80 is given twice', 'a repeat is refused');
SELECT throws_ok($$SELECT allot.rpc_set_thresholds(jsonb_build_object('percents',
    (SELECT jsonb_agg(x) FROM generate_series(1, 21) x)), 'CN=admin')$$,
    '22023', 'at most 20 thresholds, not 21', 'more than 20 are refused');
SELECT throws_ok($$SELECT allot.rpc_set_thresholds('{"percents": 50}', 'CN=admin')$$,
    '22023', 'percents must be a list of numbers', 'a scalar is refused');
SELECT is((SELECT array_agg(percent ORDER BY percent) FROM allot.event_thresholds),
    '{25,90,100}'::integer[], 'the refusals changed nothing');

-- acme-llm holds grant-1, 100 GPU-h (360,000,000 units). A charge of 30 GPU-h
-- (108,000,000, 30 %) crosses 25 % only.
SELECT allot.rpc_ingest(jsonb_build_object('site', 'leonardo', 'batchId', 'b1', 'bodyHash', 'b1',
    'records', jsonb_build_array(jsonb_build_object('index', 0, 'jobId', 'j1', 'step', '',
        'startTime', '2026-11-22T08:00:00Z', 'account', 'acme-llm', 'partition', 'boost_usr_prod',
        'gpus', 1, 'cpus', 8, 'memMb', '0', 'nodes', 1, 'elapsedS', '108000', 'state', 'COMPLETED',
        'bill', jsonb_build_object('resource', 'leonardo/boost_usr_prod', 'occupiedGpus', '1',
            'gpuMs', '108000000', 'chargeUnits', '108000000', 'nativeMilli', '0',
            'weightPerMille', 1000)))), 'CN=collector-leonardo');
SELECT is((SELECT string_agg(threshold_pct::text, ' ' ORDER BY id) FROM allot.events), '25',
    'the set thresholds are the ones that fire');
-- Emptied: no threshold fires any more, even one the project is past.
SELECT is(allot.rpc_set_thresholds('{}', 'CN=admin'), '{"percents": []}'::jsonb,
    'an empty set clears them');
SELECT allot.rpc_ingest(jsonb_build_object('site', 'leonardo', 'batchId', 'b2', 'bodyHash', 'b2',
    'records', jsonb_build_array(jsonb_build_object('index', 0, 'jobId', 'j1', 'step', '',
        'startTime', '2026-11-22T08:00:00Z', 'account', 'acme-llm', 'partition', 'boost_usr_prod',
        'gpus', 1, 'cpus', 8, 'memMb', '0', 'nodes', 1, 'elapsedS', '360000', 'state', 'COMPLETED',
        'bill', jsonb_build_object('resource', 'leonardo/boost_usr_prod', 'occupiedGpus', '1',
            'gpuMs', '360000000', 'chargeUnits', '360000000', 'nativeMilli', '0',
            'weightPerMille', 1000)))), 'CN=collector-leonardo');
SELECT is((SELECT count(*) FROM allot.events), 1::bigint, 'without thresholds, 100 % makes no event');

SELECT * FROM finish();
ROLLBACK;
