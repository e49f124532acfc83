-- The journal's rules: append-only, positive amounts, idempotent transfer ids,
-- debits equal to credits.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(14);

SELECT is((SELECT count(*) FROM allot.transfers WHERE kind = 'grant'), 1::bigint,
    'a grant is one transfer');
SELECT is((SELECT amount FROM allot.transfers WHERE transfer_id = 'grant-1'), 360000000::bigint,
    '100 GPU-hours are 360,000,000 units');
SELECT is((SELECT balance FROM allot.account_balances b JOIN allot.allocations a
           ON a.id = b.allocation_id WHERE a.transfer_id = 'grant-1'), 360000000::numeric,
    'the allocation account holds the grant');
SELECT is((SELECT sum(balance) FROM allot.account_balances), 0::numeric,
    'balances sum to zero');

SELECT throws_ok($$UPDATE allot.transfers SET amount = 1$$, '42501', NULL,
    'UPDATE of the journal is refused');
SELECT throws_ok($$DELETE FROM allot.transfers$$, '42501', NULL,
    'DELETE from the journal is refused');
SELECT throws_ok($$TRUNCATE allot.transfers CASCADE$$, '42501', NULL,
    'TRUNCATE of the journal is refused');
SELECT throws_ok($$INSERT INTO allot.transfers (transfer_id, kind, debit_account_id,
    credit_account_id, amount, body_hash, principal) VALUES ('neg', 'adjust', 1, 2, -5, 'x', 't')$$,
    '23514', NULL, 'a negative amount is refused by a CHECK');
SELECT throws_ok($$INSERT INTO allot.transfers (transfer_id, kind, debit_account_id,
    credit_account_id, amount, body_hash, principal) VALUES ('self', 'adjust', 1, 1, 5, 'x', 't')$$,
    '23514', NULL, 'a transfer from an account to itself is refused');
SELECT throws_ok($$INSERT INTO allot.transfers (transfer_id, kind, debit_account_id,
    credit_account_id, amount, body_hash, principal) VALUES ('grant-1', 'adjust', 1, 2, 5, 'x', 't')$$,
    '23505', NULL, 'a transfer id is unique');

-- The same grant again is the same allocation; another body under its id is refused.
SELECT is(allot.rpc_create_allocation('{"project":"acme-llm","site":"leonardo","gpuHours":"100",
    "startsAt":"2026-10-01","endsAt":"2027-04-01","transferId":"grant-1"}', 'CN=admin') ->> 'id',
    (SELECT id::text FROM allot.allocations WHERE transfer_id = 'grant-1'),
    'a replayed grant returns the same allocation');
SELECT throws_ok($$SELECT allot.rpc_create_allocation('{"project":"acme-llm","site":"leonardo",
    "gpuHours":"200","startsAt":"2026-10-01","endsAt":"2027-04-01","transferId":"grant-1"}', 'x')$$,
    '23505', 'transfer id "grant-1" was already used with a different body',
    'a different body under a used transfer id is refused');
SELECT is((SELECT count(*) FROM allot.transfers), 1::bigint, 'replays added no transfer');
SELECT ok(allot.check_ledger(), 'check_ledger holds');

SELECT * FROM finish();
ROLLBACK;
