-- The sealed journal's rules (0010_audit): every new transfer is queued for sealing
-- in its own transaction, a block is written only as the next one of the chain,
-- its entries leave the queue, its balances follow the journal's rule, and blocks
-- and their balances are append-only. The hashes are allotd's (lib/auditfmt.c):
-- here they are stand-ins of the right length.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(24);

SELECT is((SELECT array_agg(entry ORDER BY entry) FROM allot.seal_queue),
    (SELECT array_agg(id ORDER BY id) FROM allot.transfers),
    'every transfer waits in the seal queue');
SELECT is((SELECT count(*) FROM allot.blocks), 0::bigint, 'no block yet');

-- A reserve and a post on the grant's allocation: pending, then posted.
INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id, amount,
    body_hash, principal, lien)
SELECT 'r-1', 'reserve', a.id, 1, 500, 'h', 'CN=t', 'l-1'
FROM allot.accounts a JOIN allot.allocations al ON al.id = a.allocation_id
WHERE al.transfer_id = 'grant-1';
INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id, amount,
    body_hash, principal, lien)
SELECT 'p-1', 'post', debit_account_id, 1, 200, 'h', 'CN=t', 'l-1'
FROM allot.transfers WHERE transfer_id = 'r-1';
SELECT is((SELECT count(*) FROM allot.seal_queue), 3::bigint, 'one statement queues its rows');

SELECT is((SELECT string_agg(part, '' ORDER BY ord) FROM allot.seal_next(10) WITH ORDINALITY x(part, n1, n2, n3, n4, n5, t1, t2, t3, t4, t5, t6, t7, ord)),
    'HEEEAAA', 'seal_next proposes a head, the entries, the three accounts touched');
SELECT is((SELECT n1 || ' ' || n2 || ' ' || t2 FROM allot.seal_next(2) WHERE part = 'H'),
    '1 2 ' || repeat('0', 64), 'block 1, two entries, after 32 zero bytes');
SELECT is((SELECT t4 FROM allot.seal_next(10) WHERE part = 'E' AND t2 = 'grant-1'), '',
    'no lien is an empty field');
-- Grant 360,000,000 to the allocation; reserve 500 and post 200 of it to consumed:
-- the allocation has 200 debits posted and 300 pending, consumed 200 credits and 300.
SELECT is((SELECT array_agg(n1 || ':' || n2 || ',' || n3 || ',' || n4 || ',' || n5 ORDER BY n1)
           FROM allot.seal_next(10) WHERE part = 'A'),
    (SELECT ARRAY['1:0,200,0,300', p.id || ':360000000,0,0,0', a.id || ':200,360000000,300,0']
     FROM allot.accounts a JOIN allot.allocations al ON al.id = a.allocation_id
     JOIN allot.accounts p ON p.program_id IS NOT NULL
     WHERE al.transfer_id = 'grant-1'),
    'the balances after the block, by the rule of transfers_apply');
SELECT throws_ok($$SELECT * FROM allot.seal_next(0)$$, '22023', NULL,
    'a block holds at least one entry');

CREATE TEMP TABLE proposal AS SELECT * FROM allot.seal_next(10);
CREATE TEMP TABLE h AS SELECT repeat('ab', 32) AS x, repeat('cd', 64) AS sig;

SELECT is(allot.seal_block(2, (SELECT t1 FROM proposal WHERE part = 'H'), repeat('0', 64),
    (SELECT array_agg(n1 ORDER BY n1) FROM proposal WHERE part = 'E'), (SELECT x FROM h), 3,
    (SELECT x FROM h), (SELECT x FROM h), (SELECT sig FROM h)), false,
    'a block that is not the next one is not written');
SELECT is(allot.seal_block(1, (SELECT t1 FROM proposal WHERE part = 'H'), repeat('1', 64),
    (SELECT array_agg(n1 ORDER BY n1) FROM proposal WHERE part = 'E'), (SELECT x FROM h), 3,
    (SELECT x FROM h), (SELECT x FROM h), (SELECT sig FROM h)), false,
    'a block on another previous hash is not written');
SELECT throws_ok($$SELECT allot.seal_block(1, (SELECT t1 FROM proposal WHERE part = 'H'),
    repeat('0', 64), (SELECT array_agg(n1) FROM proposal WHERE part = 'E'), repeat('ab', 32), 2,
    repeat('ab', 32), repeat('ab', 32), repeat('cd', 64))$$, '22023',
    'block 1 states 2 accounts, its entries touch 3', 'the accounts a block states are counted');
SELECT throws_ok($$SELECT allot.seal_block(1, (SELECT t1 FROM proposal WHERE part = 'H'),
    repeat('0', 64), ARRAY[999999]::bigint[], repeat('ab', 32), 1,
    repeat('ab', 32), repeat('ab', 32), repeat('cd', 64))$$, '22023',
    'block 1 names 1 entries of which 0 are waiting to be sealed',
    'an entry not in the queue cannot be sealed');
SELECT is(allot.seal_block(1, (SELECT t1 FROM proposal WHERE part = 'H'), repeat('0', 64),
    (SELECT array_agg(n1 ORDER BY n1) FROM proposal WHERE part = 'E'), (SELECT x FROM h), 3,
    (SELECT x FROM h), (SELECT x FROM h), (SELECT sig FROM h)), true, 'the next block is written');
SELECT is((SELECT count(*) FROM allot.seal_queue), 0::bigint, 'its entries left the queue');
SELECT is(allot.check_seal(), 1::bigint, 'the sealed balances equal the accounts');
SELECT is((SELECT count(*) FROM allot.seal_next(10)), 0::bigint, 'nothing left to seal');

-- A transfer after block 1: the next proposal starts from block 1's balances.
INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id, amount,
    body_hash, principal, lien)
SELECT 'v-1', 'void', debit_account_id, 1, 300, 'h', 'CN=t', 'l-1'
FROM allot.transfers WHERE transfer_id = 'r-1';
SELECT is((SELECT n1 || ' ' || t2 FROM allot.seal_next(10) WHERE part = 'H'),
    '2 ' || repeat('ab', 32), 'block 2 follows block 1''s hash');
SELECT is((SELECT n2 || ',' || n3 || ',' || n4 || ',' || n5 FROM allot.seal_next(10)
           WHERE part = 'A' AND n1 = 1), '0,200,0,0', 'the void gives back what was pending');
SELECT is(allot.check_seal(), NULL::bigint, 'with entries queued check_seal proves nothing');

SELECT throws_ok($$UPDATE allot.blocks SET accounts = 1$$, '42501', NULL,
    'UPDATE of a block is refused');
SELECT throws_ok($$DELETE FROM allot.blocks$$, '42501', NULL, 'DELETE of a block is refused');
SELECT throws_ok($$TRUNCATE allot.blocks CASCADE$$, '42501', NULL,
    'TRUNCATE of the blocks is refused');
SELECT throws_ok($$DELETE FROM allot.block_balances$$, '42501', NULL,
    'DELETE of a block''s balances is refused');
SELECT throws_ok($$INSERT INTO allot.transfers (transfer_id, kind, debit_account_id,
    credit_account_id, amount, body_hash, principal, lien)
    VALUES ('r-2', 'reserve', 2, 1, 1, 'h', 'CN=t', '')$$, '23514', NULL,
    'an empty lien is refused');

SELECT * FROM finish();
ROLLBACK;
