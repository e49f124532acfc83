-- An allocation's life (0011): deposits, moves, refunds, adjustments, the credit
-- limit, the window and expiry, with the figures worked out in the comments.
-- One GPU-hour is 3,600,000 units.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(67);

-- A third organization of the program, for a move that must be refused.
SELECT allot.rpc_create_organization('{"name":"other","program":"ai-factories"}', 'test');
SELECT allot.rpc_create_project('{"name":"other-x","organization":"other"}', 'test');
SELECT allot.rpc_create_project('{"name":"acme-late","organization":"acme"}', 'test');
SELECT allot.rpc_create_project('{"name":"acme-old","organization":"acme"}', 'test');

-- Windows relative to now, so that the file means the same on any day: A, B and C
-- are open now and end at E = now + 10 days; L opens after E; G ended yesterday.
CREATE TEMP TABLE w AS SELECT now() - interval '1 day' AS s, now() + interval '10 days' AS e;
CREATE FUNCTION pg_temp.alloc(tid text, project text, hours int, s timestamptz, e timestamptz,
    listed boolean DEFAULT false) RETURNS bigint LANGUAGE sql AS $$
    SELECT (allot.rpc_create_allocation(jsonb_build_object('project', project,
        'site', CASE WHEN listed THEN '' ELSE 'leonardo' END,
        'resources', CASE WHEN listed THEN '["leonardo/boost_usr_prod"]'::jsonb ELSE '[]' END,
        'gpuHours', hours, 'startsAt', allot.rfc3339(s), 'endsAt', allot.rfc3339(e),
        'transferId', tid), 'CN=admin') ->> 'id')::bigint
$$;
-- A is listed on the resource, so it is chosen before grant-1 (a whole site).
CREATE TEMP TABLE ids AS SELECT
    pg_temp.alloc('life-a', 'acme-llm', 10, (SELECT s FROM w), (SELECT e FROM w), true) AS a,
    pg_temp.alloc('life-b', 'acme-vision', 5, (SELECT s FROM w), (SELECT e FROM w)) AS b,
    pg_temp.alloc('life-c', 'other-x', 5, (SELECT s FROM w), (SELECT e FROM w)) AS c,
    pg_temp.alloc('life-l', 'acme-late', 5, now() + interval '20 days', now() + interval '40 days') AS l,
    pg_temp.alloc('life-g', 'acme-old', 1, now() - interval '10 days', now() - interval '1 day') AS g;
CREATE FUNCTION pg_temp.id(which text) RETURNS bigint LANGUAGE sql AS $$
    SELECT CASE which WHEN 'a' THEN a WHEN 'b' THEN b WHEN 'c' THEN c WHEN 'l' THEN l
                      WHEN 'g' THEN g END FROM ids
$$;
CREATE FUNCTION pg_temp.avail(which text) RETURNS bigint LANGUAGE sql AS $$
    SELECT allot.available_of(ac) FROM allot.accounts ac WHERE ac.allocation_id = pg_temp.id(which)
$$;
CREATE FUNCTION pg_temp.req(tid text, which text, units bigint, reason text DEFAULT 'test',
    from_ text DEFAULT NULL) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('transferId', tid, 'allocationId', pg_temp.id(which)::text,
        'fromAllocationId', coalesce(pg_temp.id(from_), 0)::text, 'amountUnits', units::text,
        'reason', reason)
$$;
-- A reservation as allotd sends one: 1 GPU for limit_s seconds at weight 1000.
CREATE FUNCTION pg_temp.res(lien text, account text, limit_s int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('lienId', lien, 'site', 'leonardo', 'jobId', lien,
        'partition', 'boost_usr_prod', 'account', account, 'user', 'bo', 'gpus', 1,
        'cpus', 8, 'memMb', '0', 'nodes', 1, 'timeLimitS', limit_s::text, 'expiresInS', '0',
        'campaign', '', 'bodyHash', md5(lien || limit_s), 'principal', 'CN=admin',
        'bill', jsonb_build_object('resourceId', (SELECT id FROM allot.resources
                                                  WHERE partition = 'boost_usr_prod'),
            'occupiedGpus', 1, 'gpuMs', limit_s::bigint * 1000, 'chargeUnits', limit_s::bigint * 1000,
            'nativeMilli', limit_s::bigint * 8000 / 3600, 'weightPerMille', 1000, 'nativeUnit', 'core-h'))
$$;
-- A job's cumulative record: 1 GPU for elapsed_s seconds, started at start_.
CREATE FUNCTION pg_temp.usage(batch text, job text, account text, start_ timestamptz, elapsed_s int)
RETURNS jsonb LANGUAGE sql AS $$
    SELECT allot.rpc_ingest(jsonb_build_object('site', 'leonardo', 'batchId', batch, 'bodyHash', batch,
        'records', jsonb_build_array(jsonb_build_object('index', 0, 'jobId', job, 'step', '',
            'startTime', allot.rfc3339(start_), 'account', account, 'partition', 'boost_usr_prod',
            'gpus', 1, 'cpus', 8, 'memMb', '0', 'nodes', 1, 'elapsedS', elapsed_s::text,
            'state', 'RUNNING', 'bill', jsonb_build_object('resource', 'leonardo/boost_usr_prod',
                'occupiedGpus', '1', 'gpuMs', (elapsed_s::bigint * 1000)::text,
                'chargeUnits', (elapsed_s::bigint * 1000)::text,
                'nativeMilli', (elapsed_s::bigint * 8000 / 3600)::text, 'weightPerMille', 1000)))),
        'CN=collector-leonardo')
$$;

-- ---------------------------------------------------------------- deposits

-- A: 10 GPU-h = 36,000,000; a deposit of 2 GPU-h (7,200,000) makes 43,200,000.
CREATE TEMP TABLE d1 AS SELECT allot.rpc_deposit(pg_temp.req('dep-1', 'a', 7200000, 'more hours'),
    'CN=admin') AS r;
SELECT is((SELECT r ->> 'availableUnits' FROM d1), '43200000', 'a deposit adds to available');
SELECT is((SELECT format('%s %s %s %s', kind, amount, principal, reason) FROM allot.transfers
           WHERE transfer_id = 'dep-1'), 'deposit 7200000 CN=admin more hours',
    'the deposit is a transfer of kind deposit with its principal and reason');
SELECT is((SELECT debit_account_id FROM allot.transfers WHERE transfer_id = 'dep-1'),
    allot.program_account_of(pg_temp.id('a')), 'from the allocation''s program');
SELECT is(allot.rpc_deposit(pg_temp.req('dep-1', 'a', 7200000, 'more hours'), 'CN=admin'),
    (SELECT r FROM d1), 'a replay answers the first answer');
SELECT is(pg_temp.avail('a'), 43200000::bigint, 'and deposits nothing twice');
SELECT throws_ok($$SELECT allot.rpc_deposit(pg_temp.req('dep-1', 'a', 10800000, 'more hours'), 'CN=admin')$$,
    '23505', NULL, 'another body under the id is already_exists');
SELECT throws_ok($$SELECT allot.rpc_deposit(pg_temp.req('grant-1', 'a', 1, 'x'), 'CN=admin')$$,
    '23505', NULL, 'an id used by a grant is already_exists');
SELECT throws_ok($$SELECT allot.rpc_deposit(pg_temp.req('dep-0', 'a', 0), 'CN=admin')$$,
    '22023', 'amount_units of a deposit must be positive, not 0', 'a zero deposit is refused');
SELECT throws_ok($$SELECT allot.rpc_deposit(pg_temp.req('dep-n', 'a', -5), 'CN=admin')$$,
    '22023', 'amount_units of a deposit must be positive, not -5', 'a negative deposit is refused');
SELECT throws_ok($$SELECT allot.rpc_deposit(jsonb_build_object('transferId', 'dep-u',
    'allocationId', '999999', 'amountUnits', '5', 'reason', 'x'), 'CN=admin')$$,
    'P0002', 'allocation 999999 does not exist', 'an unknown allocation is not_found');
SELECT throws_ok($$SELECT allot.rpc_deposit(pg_temp.req('dep-r', 'a', 5, '  '), 'CN=admin')$$,
    '22023', 'reason is required (1 to 500 characters)', 'a reason is required');
SELECT throws_ok($$SELECT allot.rpc_deposit(pg_temp.req('', 'a', 5), 'CN=admin')$$,
    '22023', NULL, 'a transfer id is required');
SELECT throws_ok($$SELECT allot.rpc_deposit(pg_temp.req('expire:1', 'a', 5), 'CN=admin')$$,
    '22023', NULL, 'expire: ids are the service''s');
SELECT throws_ok($$SELECT allot.rpc_deposit(pg_temp.req('dep-g', 'g', 5), 'CN=admin')$$,
    '55000', NULL, 'a deposit on an allocation that ended is refused');
SELECT is((SELECT count(*) FROM allot.transfers WHERE transfer_id LIKE 'dep-%'), 1::bigint,
    'the refusals stored no transfer');

-- ---------------------------------------------------------------- moves

-- 1 GPU-h from A (acme-llm) to B (acme-vision, the same organization):
-- A 43,200,000 - 3,600,000 = 39,600,000; B 18,000,000 + 3,600,000 = 21,600,000.
CREATE TEMP TABLE m1 AS SELECT allot.rpc_move(pg_temp.req('mv-1', 'b', 3600000, 'rebalance', 'a'),
    'CN=admin') AS r;
SELECT is((SELECT format('%s %s', r ->> 'fromAvailableUnits', r ->> 'availableUnits') FROM m1),
    '39600000 21600000', 'a move takes from one and gives to the other');
SELECT is((SELECT format('%s %s', kind, amount) FROM allot.transfers WHERE transfer_id = 'mv-1'),
    'move 3600000', 'as one transfer of kind move');
SELECT is(allot.rpc_move(pg_temp.req('mv-1', 'b', 3600000, 'rebalance', 'a'), 'CN=admin'),
    (SELECT r FROM m1), 'a replay answers the first answer');
SELECT throws_ok($$SELECT allot.rpc_move(pg_temp.req('mv-1', 'b', 3600001, 'rebalance', 'a'), 'CN=admin')$$,
    '23505', NULL, 'another body under the id is already_exists');
SELECT throws_ok($$SELECT allot.rpc_move(pg_temp.req('mv-x', 'c', 3600000, 'x', 'a'), 'CN=admin')$$,
    '55000', NULL, 'a move to another organization''s allocation is refused');
-- B has 21,600,000: 22 GPU-h (79,200,000) do not fit.
SELECT throws_ok($$SELECT allot.rpc_move(pg_temp.req('mv-big', 'a', 79200000, 'x', 'b'), 'CN=admin')$$,
    '53400', 'could not move 79200000 units from allocation ' || pg_temp.id('b') || ': 21600000 available',
    'a move beyond what the source has is refused with the figures');
SELECT throws_ok($$SELECT allot.rpc_move(pg_temp.req('mv-0', 'a', 0, 'x', 'b'), 'CN=admin')$$,
    '22023', NULL, 'a zero move is refused');
SELECT throws_ok($$SELECT allot.rpc_move(pg_temp.req('mv-s', 'a', 5, 'x', 'a'), 'CN=admin')$$,
    '22023', NULL, 'a move to itself is refused');
SELECT throws_ok($$SELECT allot.rpc_move(pg_temp.req('mv-u', 'a', 5, 'x'), 'CN=admin')$$,
    '22023', 'from_allocation_id is required', 'a move needs its source');
SELECT is(format('%s %s %s', pg_temp.avail('a'), pg_temp.avail('b'), pg_temp.avail('c')),
    '39600000 21600000 18000000', 'the refused moves changed nothing');

-- ---------------------------------------------------------------- refunds

-- A job on A: 3 GPU-h (10,800,000) of usage: A 39,600,000 - 10,800,000 = 28,800,000.
SELECT is(pg_temp.usage('u1', 'j1', 'acme-llm', now() - interval '3 hours', 10800) -> 'results' -> 0
          ->> 'allocationId', pg_temp.id('a')::text, 'the job is charged to A');
SELECT is(pg_temp.avail('a'), 28800000::bigint, 'usage charged 10,800,000');
-- A refund of 1 GPU-h: 28,800,000 + 3,600,000 = 32,400,000; 10,800,000 - 3,600,000 =
-- 7,200,000 is left to refund.
CREATE TEMP TABLE r1 AS SELECT allot.rpc_refund(pg_temp.req('ref-1', 'a', 3600000, 'node failure'),
    'CN=admin') AS r;
SELECT is((SELECT r ->> 'availableUnits' FROM r1), '32400000', 'a refund gives back to available');
SELECT is((SELECT format('%s %s', kind, debit_account_id = allot.consumed_account()) FROM allot.transfers
           WHERE transfer_id = 'ref-1'), 'refund t', 'from consumed, as a transfer of kind refund');
SELECT is(allot.rpc_refund(pg_temp.req('ref-1', 'a', 3600000, 'node failure'), 'CN=admin'),
    (SELECT r FROM r1), 'a replay answers the first answer');
SELECT throws_ok($$SELECT allot.rpc_refund(pg_temp.req('ref-2', 'a', 7200001, 'x'), 'CN=admin')$$,
    '55000', NULL, 'a refund beyond what usage charged and was not refunded is refused');
SELECT throws_ok($$SELECT allot.rpc_refund(pg_temp.req('ref-3', 'b', 1, 'x'), 'CN=admin')$$,
    '55000', NULL, 'a refund to an allocation never charged is refused');
SELECT throws_ok($$SELECT allot.rpc_refund(pg_temp.req('ref-4', 'a', -1, 'x'), 'CN=admin')$$,
    '22023', NULL, 'a negative refund is refused');

-- ---------------------------------------------------------------- adjustments

-- -2 GPU-h: 32,400,000 - 7,200,000 = 25,200,000; then +0.5 GPU-h: + 1,800,000 = 27,000,000.
SELECT is(allot.rpc_adjust(pg_temp.req('adj-1', 'a', -7200000, 'granted twice'), 'CN=admin')
          ->> 'availableUnits', '25200000', 'a negative adjustment takes from available');
SELECT is((SELECT credit_account_id FROM allot.transfers WHERE transfer_id = 'adj-1'),
    allot.program_account_of(pg_temp.id('a')), 'back to the program');
SELECT is(allot.rpc_adjust(pg_temp.req('adj-2', 'a', 1800000, 'goodwill'), 'CN=admin')
          ->> 'availableUnits', '27000000', 'a positive one adds to it');
SELECT is(allot.rpc_adjust(pg_temp.req('adj-2', 'a', 1800000, 'goodwill'), 'CN=admin')
          ->> 'availableUnits', '27000000', 'a replay adjusts nothing twice');
SELECT throws_ok($$SELECT allot.rpc_adjust(pg_temp.req('adj-0', 'a', 0, 'x'), 'CN=admin')$$,
    '22023', 'amount_units of an adjustment must not be 0', 'a zero adjustment is refused');
SELECT throws_ok($$SELECT allot.rpc_adjust(pg_temp.req('adj-3', 'a', -27000001, 'x'), 'CN=admin')$$,
    '53400', NULL, 'a negative adjustment beyond available is refused');

-- ---------------------------------------------------------------- the credit limit

-- 8 GPU-h (28,800,000) do not fit in 27,000,000.
SELECT is(allot.reserve_group(jsonb_build_array(pg_temp.res('l1', 'acme-llm', 28800))) -> 0 ->> 'sqlstate',
    '53400', 'without a credit limit a hold beyond available is refused');
-- A credit limit of 1 GPU-h: 27,000,000 + 3,600,000 = 30,600,000 >= 28,800,000.
SELECT is(allot.rpc_set_credit_limit(pg_temp.req('cl-1', 'a', 3600000, 'funder allows 1 h'), 'CN=admin')
          ->> 'creditLimitUnits', '3600000', 'the credit limit is set');
SELECT is((SELECT count(*) FROM allot.transfers WHERE transfer_id = 'cl-1'), 0::bigint,
    'a credit limit moves no units');
SELECT is(allot.reserve_group(jsonb_build_array(pg_temp.res('l1', 'acme-llm', 28800))) -> 0 -> 'ok'
          ->> 'availableUnits', '-1800000',
    'with it the hold fits: available 27,000,000 - 28,800,000 = -1,800,000');
-- -1,800,000 + 3,600,000 = 1,800,000 left to reserve: 1 GPU-h (3,600,000) does not fit.
SELECT is(allot.reserve_group(jsonb_build_array(pg_temp.res('l2', 'acme-llm', 3600))) -> 0 -> 'meta'
          ->> 'credit_limit_units', '3600000', 'beyond the credit limit a hold is refused, saying the limit');
SELECT throws_ok(format($$INSERT INTO allot.transfers (transfer_id, kind, debit_account_id,
    credit_account_id, amount, body_hash, principal, lien)
    VALUES ('reserve:raw', 'reserve', %s, allot.consumed_account(), 1800001, 'x', 't', 'raw')$$,
    (SELECT id FROM allot.accounts WHERE allocation_id = pg_temp.id('a'))), '53400', NULL,
    'the journal''s trigger holds the same rule: 1,800,001 does not fit');
SELECT throws_ok($$SELECT allot.rpc_set_credit_limit(pg_temp.req('cl-2', 'a', -1, 'x'), 'CN=admin')$$,
    '22023', NULL, 'a negative credit limit is refused');

-- ---------------------------------------------------------------- the window

SELECT matches(allot.reserve_group(jsonb_build_array(pg_temp.res('l3', 'acme-late', 3600))) -> 0 ->> 'message',
    'no allocation of project "acme-late" covers leonardo/boost_usr_prod at .*: allocation \d+ is open from',
    'a reservation before the window opens is refused, naming the window');
SELECT is(allot.reserve_group(jsonb_build_array(pg_temp.res('l4', 'acme-old', 3600))) -> 0 ->> 'sqlstate',
    '55000', 'a reservation after the window closed is refused');
-- On B (21,600,000 available), released at once so that B's figures stay as they are.
SELECT is(allot.rpc_reserve_campaign(jsonb_build_object('lienId', 'c1', 'site', 'leonardo',
    'partition', 'boost_usr_prod', 'project', 'acme-vision', 'gpuHours', '1',
    'startsAt', '', 'endsAt', allot.rfc3339((SELECT e FROM w) + interval '1 day')), 'CN=admin')
    ->> 'expiresAt', allot.rfc3339((SELECT e FROM w)),
    'a campaign asked past its allocation''s end is held until that end only');
SELECT is(allot.rpc_release('{"lienId":"c1"}', 'CN=admin') ->> 'releasedUnits', '3600000',
    'and released');
SELECT throws_ok($$SELECT allot.rpc_reserve_campaign(jsonb_build_object('lienId', 'c2',
    'site', 'leonardo', 'partition', 'boost_usr_prod', 'project', 'acme-late', 'gpuHours', '1',
    'startsAt', '', 'endsAt', allot.rfc3339(now() + interval '30 days')), 'CN=admin')$$,
    '55000', NULL, 'a campaign outside its project''s windows is refused');
-- acme-old's job started inside G's window (1 GPU-h granted) and used 2 GPU-h
-- (7,200,000): it is charged to G, which goes to 3,600,000 - 7,200,000 = -3,600,000.
SELECT is(pg_temp.usage('u2', 'j2', 'acme-old', now() - interval '3 days', 7200) -> 'results' -> 0
          ->> 'allocationId', pg_temp.id('g')::text, 'usage inside an ended window still charges');
SELECT is(pg_temp.avail('g'), -3600000::bigint, 'and may overdraw');

-- ---------------------------------------------------------------- expiry

-- At E: A, B and C end. A's hold l1 (28,800,000) is voided first: A has 27,000,000;
-- B 21,600,000; C 18,000,000; G is overdrawn and L not ended: 3 expire.
SELECT is(allot.expire_allocations((SELECT e FROM w)), 3, 'three allocations expire at their end');
SELECT is((SELECT status FROM allot.liens WHERE id = 'l1'), 'expired', 'the holds still pending are released');
SELECT is((SELECT format('%s %s', kind, amount) FROM allot.transfers WHERE transfer_id = 'expire:' || pg_temp.id('a')),
    'expire 27000000', 'A''s remainder moved to expired by a transfer of kind expire');
-- 27,000,000 + 21,600,000 + 18,000,000 = 66,600,000.
SELECT is((SELECT credits_posted FROM allot.accounts WHERE kind = 'expired'), 66600000::bigint,
    'the expired account holds the three remainders');
SELECT is(format('%s %s %s', pg_temp.avail('a'), pg_temp.avail('b'), pg_temp.avail('c')), '0 0 0',
    'nothing is left on them');
SELECT is(allot.expire_allocations((SELECT e FROM w)), 0, 'expiring again does nothing');
-- A refund after the end (A may still refund 7,200,000): its 3,600,000 expire too.
SELECT lives_ok($$SELECT allot.rpc_refund(pg_temp.req('ref-late', 'a', 3600000, 'late fix'), 'CN=admin')$$,
    'a refund to an ended allocation is allowed');
SELECT is(allot.expire_allocations((SELECT e FROM w)), 1, 'and what it gave back expires');
SELECT is((SELECT amount FROM allot.transfers WHERE transfer_id = 'expire:' || pg_temp.id('a') || ':2'),
    3600000::bigint, 'under the next expire id');
SELECT is((SELECT jsonb_agg(e ->> 'kind' ORDER BY n) FROM jsonb_array_elements(
              allot.rpc_list_changes(jsonb_build_object('allocationId', pg_temp.id('a')::text), 'CN=admin')
              -> 'changes') WITH ORDINALITY x(e, n)),
    '["deposit", "move", "refund", "adjust", "adjust", "credit_limit", "expire", "refund", "expire"]'::jsonb,
    'ListChanges lists A''s life in order');

-- A's movements (0018): granted 36,000,000; added 7,200,000 - 3,600,000 - 7,200,000 +
-- 1,800,000 = -1,800,000; used 10,800,000; refunded 3,600,000 twice; expired
-- 27,000,000 + 3,600,000. 36,000,000 - 1,800,000 + 7,200,000 - 10,800,000 -
-- 30,600,000 = 0, what A has.
SELECT is((SELECT format('%s %s %s %s %s %s', m ->> 'grantedUnits', m ->> 'addedUnits',
                         m ->> 'usedUnits', m ->> 'refundedUnits', m ->> 'creditedUnits',
                         m ->> 'expiredUnits')
           FROM jsonb_array_elements(allot.rpc_get_balance('{"project":"acme-llm"}', 'CN=admin')
                -> 'allocations') e, LATERAL (SELECT e -> 'movements') x(m)
           WHERE (e ->> 'allocationId')::bigint = pg_temp.id('a')),
    '36000000 -1800000 10800000 7200000 0 30600000',
    'GetBalance tells A''s movements apart');
-- For every project's allocations and totals: the movements sum to granted - charged.
SELECT is((SELECT count(*) FROM allot.projects p,
              LATERAL allot.rpc_get_balance(jsonb_build_object('project', p.name), 'CN=admin') b,
              LATERAL (SELECT e -> 'movements' AS m, e -> 'balance' AS bal
                       FROM jsonb_array_elements(b -> 'allocations') e
                       UNION ALL SELECT b -> 'movements', b -> 'total') x
           WHERE (m ->> 'grantedUnits')::bigint + (m ->> 'addedUnits')::bigint
                 + (m ->> 'refundedUnits')::bigint + (m ->> 'creditedUnits')::bigint
                 - (m ->> 'usedUnits')::bigint - (m ->> 'expiredUnits')::bigint
                 <> (bal ->> 'grantedUnits')::bigint - (bal ->> 'chargedUnits')::bigint),
    0::bigint, 'every allocation''s and total''s movements sum to granted - charged');

SELECT ok(allot.check_ledger(), 'columns, liens and job usage agree with the journal');
SELECT ok(allot.check_allocation_life(), 'refundable units agree with the journal');

SELECT * FROM finish();
ROLLBACK;
