-- Liens and the account columns: the database's own guards, whoever writes.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(17);

-- grant-1 gave acme-llm 100 GPU-hours on LEONARDO (360,000,000 units).
CREATE TEMP TABLE acct AS
SELECT ac.id FROM allot.accounts ac JOIN allot.allocations a ON a.id = ac.allocation_id
WHERE a.transfer_id = 'grant-1';
CREATE FUNCTION pg_temp.acct() RETURNS bigint LANGUAGE sql AS $$ SELECT id FROM acct $$;
CREATE FUNCTION pg_temp.cols() RETURNS text LANGUAGE sql AS $$
    SELECT format('%s/%s/%s/%s', debits_posted, credits_posted, debits_pending, credits_pending)
    FROM allot.accounts WHERE id = pg_temp.acct()
$$;
-- A reservation as allotd sends one: the bill is billing.c's for 1 GPU x time limit.
CREATE FUNCTION pg_temp.res(lien text, job text, limit_s int, principal text DEFAULT 'CN=admin')
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('lienId', lien, 'site', 'leonardo', 'jobId', job,
        'partition', 'boost_usr_prod', 'account', 'acme-llm', 'user', 'bo', 'gpus', 1,
        'cpus', 8, 'memMb', '0', 'nodes', 1, 'timeLimitS', limit_s::text, 'expiresInS', '0',
        'campaign', '', 'bodyHash', md5(lien || job || limit_s), 'principal', principal,
        'bill', jsonb_build_object('resourceId', (SELECT id FROM allot.resources
                                                  WHERE partition = 'boost_usr_prod'),
            'occupiedGpus', 1, 'gpuMs', limit_s::bigint * 1000, 'chargeUnits', limit_s::bigint * 1000,
            'nativeMilli', limit_s::bigint * 8000 / 3600, 'weightPerMille', 1000, 'nativeUnit', 'core-h'))
$$;

SELECT is(pg_temp.cols(), '0/360000000/0/0', 'a grant is posted on the allocation''s account');

-- The reservation rule holds for any writer of the journal, not only reserve_group.
SELECT throws_ok(format($$INSERT INTO allot.transfers (transfer_id, kind, debit_account_id,
    credit_account_id, amount, body_hash, principal, lien)
    VALUES ('reserve:raw', 'reserve', %s, allot.consumed_account(), 360000001, 'x', 't', 'raw')$$,
    pg_temp.acct()), '53400', NULL, 'a hold beyond available is refused by the journal''s trigger');
SELECT is(pg_temp.cols(), '0/360000000/0/0', 'and changes nothing');

-- One group: 200 GPU-hours do not fit in 100; two holds of 50 do; then nothing is left.
CREATE TEMP TABLE g1 AS SELECT allot.reserve_group(jsonb_build_array(
    pg_temp.res('l1', 'j1', 720000), pg_temp.res('l2', 'j2', 180000),
    pg_temp.res('l3', 'j3', 180000), pg_temp.res('l4', 'j4', 3600))) AS a;
SELECT is((SELECT jsonb_path_query_array(a, '$[*].ok.heldUnits') FROM g1),
    '[180000000, 180000000]'::jsonb, 'the holds that fit are made, in order');
SELECT is((SELECT a -> 0 ->> 'sqlstate' || ' ' || (a -> 3 ->> 'sqlstate') FROM g1), '53400 53400',
    'the holds that do not fit are refused, each alone');
SELECT is((SELECT a -> 3 -> 'meta' ->> 'available_units' FROM g1), '0',
    'a refusal says what was available');
SELECT is(pg_temp.cols(), '0/360000000/360000000/0', 'two holds of 50 GPU-hours are pending');
SELECT is((SELECT count(*) FROM allot.liens), 2::bigint, 'refused holds store no lien');
SELECT is(allot.reserve_group(jsonb_build_array(pg_temp.res('l2', 'j2', 180000))) -> 0 -> 'ok' ->> 'lienId',
    'l2', 'a replay answers the stored answer, even with nothing available');
SELECT is(allot.reserve_group(jsonb_build_array(pg_temp.res('l2', 'j2', 1))) -> 0 ->> 'sqlstate',
    '23505', 'another body under a used lien id is already_exists');

-- Settle l2 after 10 hours of usage: 36,000,000 posted from the hold, the rest voided.
SELECT allot.rpc_ingest('{"site":"leonardo","batchId":"u1","bodyHash":"h","records":[{"index":0,
    "jobId":"j2","step":"","startTime":"2026-11-21T08:00:00Z","account":"acme-llm",
    "partition":"boost_usr_prod","gpus":1,"cpus":8,"memMb":"0","nodes":1,"elapsedS":"36000",
    "state":"RUNNING","bill":{"resource":"leonardo/boost_usr_prod","occupiedGpus":"1",
    "gpuMs":"36000000","chargeUnits":"36000000","nativeMilli":"80000","weightPerMille":1000}}]}',
    'CN=collector-leonardo');
SELECT is(pg_temp.cols(), '36000000/360000000/324000000/0', 'usage moved 10 GPU-hours from pending to posted');
SELECT is(allot.rpc_settle('{"site":"leonardo","jobId":"j2"}', 'CN=admin') ->> 'releasedUnits',
    '144000000', 'settling releases the 40 GPU-hours left');
SELECT is(pg_temp.cols(), '36000000/360000000/180000000/0', 'only l3 is pending');

-- Expiry: once, whoever sweeps.
UPDATE allot.liens SET expires_at = now() - interval '1 second' WHERE id = 'l3';
SELECT is(allot.expire_liens(), 1, 'the expired lien is released');
SELECT is(allot.expire_liens(), 0, 'and only once');

-- The columns are proved against the journal.
SELECT ok(allot.check_ledger(), 'columns, liens and job usage agree with the journal');
UPDATE allot.accounts SET debits_posted = debits_posted + 1 WHERE id = pg_temp.acct();
SELECT throws_ok('SELECT allot.check_ledger()', 'P0001', NULL,
    'check_ledger finds an account column that the journal does not explain');

SELECT * FROM finish();
ROLLBACK;
