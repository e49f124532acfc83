-- One cap on what an allocation gets back (0014): refunds and incident credits
-- together never exceed what its usage was charged. Figures worked out here.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(15);

SELECT allot.rpc_create_allocation('{"project":"acme-vision","site":"leonardo","gpuHours":"100",
    "startsAt":"2026-10-01","endsAt":"2027-04-01","transferId":"grant-v"}', 'CN=admin');
CREATE FUNCTION pg_temp.alloc(tid text) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM allot.allocations WHERE transfer_id = tid
$$;
CREATE FUNCTION pg_temp.refund(tid text, grant_ text, units bigint) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT allot.rpc_refund(jsonb_build_object('transferId', tid,
        'allocationId', pg_temp.alloc(grant_)::text, 'amountUnits', units::text,
        'reason', 'node failure'), 'CN=admin')
$$;
CREATE FUNCTION pg_temp.refundable(grant_ text) RETURNS bigint LANGUAGE sql AS $$
    SELECT refundable FROM allot.accounts WHERE allocation_id = pg_temp.alloc(grant_)
$$;
-- A LEONARDO job of 1 GPU, its bill given as units.
CREATE FUNCTION pg_temp.rec(job text, start text, elapsed int, units bigint, acct text)
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('jobId', job, 'step', '', 'startTime', start, 'account', acct,
        'partition', 'boost_usr_prod', 'gpus', 1, 'cpus', 8, 'memMb', '1000', 'nodes', 1,
        'elapsedS', elapsed::text, 'state', 'COMPLETED',
        'bill', jsonb_build_object('resource', 'leonardo/boost_usr_prod',
            'occupiedGpus', '1', 'gpuMs', (elapsed * 1000)::text, 'chargeUnits', units::text,
            'nativeMilli', '0', 'weightPerMille', 1000))
$$;

-- Jobs of 100 s charged 100 units each, started at 11:59:20: 40 s of each fall in
-- the incident's window (10:00 to 12:00), a credit of floor(100 x 40 / 100) = 40.
--   jA  acme-llm (grant-1)
--   jB  acme-vision (grant-v), jB2 acme-vision
SELECT allot.rpc_ingest(jsonb_build_object('site', 'leonardo', 'batchId', 'b1', 'bodyHash', 'b1',
    'records', jsonb_build_array(
        pg_temp.rec('jA', '2026-11-21T11:59:20Z', 100, 100, 'acme-llm') || '{"index":0}',
        pg_temp.rec('jB', '2026-11-21T11:59:20Z', 100, 100, 'acme-vision') || '{"index":1}',
        pg_temp.rec('jB2', '2026-11-21T11:59:20Z', 100, 100, 'acme-vision') || '{"index":2}')),
    'CN=collector');
SELECT is(pg_temp.refundable('grant-1') || ' ' || pg_temp.refundable('grant-v'), '100 200',
          'usage charged 100 units to grant-1, 200 to grant-v');

-- The other order first: grant-v is refunded 150 of its 200, so 50 may come back;
-- the incident then credits jB 40 and jB2 only the 10 left (jobs in job order).
SELECT lives_ok($$SELECT pg_temp.refund('v-150', 'grant-v', 150)$$, 'grant-v: a refund of 150 of 200');
SELECT is(pg_temp.refundable('grant-v'), 50::bigint, '50 may still come back');

SELECT allot.rpc_declare_incident('{"incidentId":"lrd-1","site":"leonardo",
    "partition":"boost_usr_prod","startsAt":"2026-11-21T10:00:00Z",
    "endsAt":"2026-11-21T12:00:00Z","reason":"cooling failure"}', 'CN=admin');
SELECT is((SELECT string_agg(job_id || '=' || credit_units, ' ' ORDER BY job_id)
           FROM allot.incident_credits), 'jA=40 jB=40 jB2=10',
          'credits: jA its 40, jB its 40, jB2 capped at the 10 grant-v had left');
SELECT is((SELECT reason FROM allot.transfers WHERE transfer_id = 'incident:lrd-1:leonardo:jB2'),
          'incident lrd-1: cooling failure (job jB2 at leonardo: 40.000 of its 100 s in the window), capped from 40 units: what it can still get back',
          'the capped credit says so');
SELECT is((SELECT credited_units FROM allot.incidents), 90::bigint, 'the incident credited 90 units');
SELECT is(pg_temp.refundable('grant-v'), 0::bigint, 'grant-v can get nothing more back');
SELECT throws_ok($$SELECT pg_temp.refund('v-1', 'grant-v', 1)$$, '55000',
    format('could not refund 1 units to allocation %s: usage charged it 200 units, 150 were refunded and 50 credited by incidents already, so 0 can be refunded',
           pg_temp.alloc('grant-v')),
    'grant-v: a refund of 1 more is refused with the figures');

-- Then the first order, on grant-1: charged 100, credited 40, so 60 can be refunded.
SELECT is(pg_temp.refundable('grant-1'), 60::bigint, 'grant-1: 100 charged - 40 credited = 60');
SELECT throws_ok($$SELECT pg_temp.refund('l-70', 'grant-1', 70)$$, '55000',
    format('could not refund 70 units to allocation %s: usage charged it 100 units, 0 were refunded and 40 credited by incidents already, so 60 can be refunded',
           pg_temp.alloc('grant-1')),
    'a refund of 70 after a credit of 40 on a charge of 100 is refused with the figures');
SELECT is((SELECT count(*) FROM allot.transfers WHERE transfer_id = 'l-70'), 0::bigint,
          'and changes nothing');
SELECT is(pg_temp.refund('l-60', 'grant-1', 60) ->> 'kind', 'refund', 'a refund of 60 is accepted');
SELECT is(pg_temp.refundable('grant-1'), 0::bigint, 'grant-1 can get nothing more back');

-- The journal's CHECK guards any writer that skips the functions.
SELECT throws_ok($$INSERT INTO allot.transfers (transfer_id, kind, debit_account_id,
    credit_account_id, amount, body_hash, principal, reason)
    SELECT 'raw-credit', 'credit', allot.consumed_account(), id, 1, 'x', 'test', 'raw'
    FROM allot.accounts WHERE allocation_id = pg_temp.alloc('grant-1')$$, '23514', NULL,
    'a credit beyond the cap is refused by the database itself');

SELECT ok(allot.check_ledger() AND allot.check_allocation_life() AND allot.check_account_flows()
          AND allot.check_project_usage(), 'the books agree with the journal');

SELECT * FROM finish();
ROLLBACK;
