-- Ingestion: cumulative records charged once, replays, steps, rejections,
-- allocation choice, batch ids. The bills are what allotd's billing.c sends.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(17);

CREATE TEMP TABLE r AS SELECT NULL::jsonb AS res;

-- 1 GPU on LEONARDO (weight 1000): elapsed 100 s, then 250 s, then 400 s.
CREATE FUNCTION pg_temp.rec(job text, elapsed int, acct text DEFAULT 'acme-llm', step text DEFAULT '')
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('index', 0, 'jobId', job, 'step', step,
        'startTime', '2026-11-21T08:00:00Z', 'account', acct, 'partition', 'boost_usr_prod',
        'gpus', 1, 'cpus', 8, 'memMb', '1000', 'nodes', 1, 'elapsedS', elapsed::text,
        'state', 'RUNNING', 'bill', jsonb_build_object('resource', 'leonardo/boost_usr_prod',
        'occupiedGpus', '1', 'gpuMs', (elapsed * 1000)::text,
        'chargeUnits', (elapsed * 1000)::text, 'nativeMilli', (elapsed * 8000 / 3600)::text,
        'weightPerMille', 1000))
$$;
-- Numbers the records as allotd does (their index in the batch) and sends them.
CREATE FUNCTION pg_temp.batch(id text, recs jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT allot.rpc_ingest(jsonb_build_object('site', 'leonardo', 'batchId', id,
        'bodyHash', md5(recs::text), 'records',
        (SELECT jsonb_agg(e || jsonb_build_object('index', i - 1) ORDER BY i)
         FROM jsonb_array_elements(recs) WITH ORDINALITY t(e, i))), 'CN=collector-leonardo')
$$;
CREATE FUNCTION pg_temp.charged() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(amount), 0)::bigint FROM allot.transfers WHERE kind = 'charge'
$$;

SELECT is(pg_temp.batch('b1', jsonb_build_array(pg_temp.rec('j1', 100))) -> 'results' -> 0 ->> 'chargedUnits',
    '100000', 'the first record charges its whole usage');
SELECT is(pg_temp.batch('b2', jsonb_build_array(pg_temp.rec('j1', 250))) -> 'results' -> 0 ->> 'chargedUnits',
    '150000', 'a later record charges the difference');
SELECT is(pg_temp.batch('b3', jsonb_build_array(pg_temp.rec('j1', 400))) ->> 'charged', '1',
    'a third record is charged');
SELECT is(pg_temp.charged(), 400000::bigint, 'the job is charged once for its final elapsed time');
SELECT is(pg_temp.batch('b4', jsonb_build_array(pg_temp.rec('j1', 250))) -> 'results' -> 0 ->> 'status',
    'INGEST_STATUS_DUPLICATE', 'an older record arriving late is a duplicate');
SELECT is(pg_temp.batch('b3', jsonb_build_array(pg_temp.rec('j1', 400))) ->> 'duplicates', '1',
    'the same batch again changes nothing');
SELECT throws_ok($$SELECT pg_temp.batch('b3', jsonb_build_array(pg_temp.rec('j1', 500)))$$,
    '23505', 'batch "b3" of site "leonardo" was already sent with different records',
    'a batch id with other records is refused');
SELECT is(pg_temp.charged(), 400000::bigint, 'replays and refusals charged nothing');

SELECT is(pg_temp.batch('b5', jsonb_build_array(pg_temp.rec('j1', 400, step => 'batch'))) -> 'results' -> 0 ->> 'status',
    'INGEST_STATUS_RECORDED', 'a step is recorded, not billed');
SELECT is(pg_temp.charged(), 400000::bigint, 'steps charge nothing');

-- One bad record does not stop the others.
UPDATE r SET res = pg_temp.batch('b6', jsonb_build_array(
    pg_temp.rec('j2', 60), pg_temp.rec('j3', 60, 'nobody'),
    pg_temp.rec('j4', 60) || '{"rejectReason":"gpus must not be negative"}', pg_temp.rec('j5', 30)));
SELECT is((SELECT res ->> 'charged' FROM r LIMIT 1), '2', 'the good records are charged');
SELECT is((SELECT res -> 'results' -> 1 ->> 'reason' FROM r LIMIT 1), 'unknown account "nobody"',
    'an unknown account is rejected with a reason');
SELECT is((SELECT res -> 'results' -> 2 ->> 'reason' FROM r LIMIT 1), 'gpus must not be negative',
    'a record refused by the daemon is rejected with its reason');
SELECT is((SELECT count(*) FROM allot.job_usage WHERE job_id IN ('j3', 'j4')), 0::bigint,
    'rejected records store nothing');

-- No allocation of acme-vision covers LEONARDO: rejected with the figures.
SELECT is(pg_temp.batch('b7', jsonb_build_array(pg_temp.rec('j8', 60, 'acme-vision'))) -> 'results' -> 0 ->> 'reason',
    'no allocation of project "acme-vision" covers leonardo/boost_usr_prod at 2026-11-21T08:00:00Z',
    'no covering allocation');

-- A listed resource wins over a whole site, which wins over all sites.
SELECT allot.rpc_create_allocation('{"project":"acme-llm","gpuHours":"10","startsAt":"2026-10-01",
    "endsAt":"2027-01-01","transferId":"grant-all"}', 't');
SELECT allot.rpc_create_allocation('{"project":"acme-llm","gpuHours":"10","resources":["leonardo/boost_usr_prod"],
    "startsAt":"2026-10-01","endsAt":"2027-12-01","transferId":"grant-res"}', 't');
SELECT is(pg_temp.batch('b8', jsonb_build_array(pg_temp.rec('j9', 60))) -> 'results' -> 0 ->> 'allocationId',
    (SELECT id::text FROM allot.allocations WHERE transfer_id = 'grant-res'),
    'the allocation listing the resource is chosen');
SELECT ok(allot.check_ledger(), 'the ledger balances and agrees with job usage');

SELECT * FROM finish();
ROLLBACK;
