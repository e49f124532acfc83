-- Statements (0020): the canonical text's fields, the movements and balances from
-- the journal by created time (entries backdated here into November), the
-- breakdowns from usage_days, the job pages, the provenance and the refusals.
-- acme-llm has 100 GPU-hours at LEONARDO from 2026-10-01 to 2027-04-01 (setup.psql;
-- its grant is journaled now); LEONARDO's weight is 1000: a GPU-second 1000 units.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(33);

CREATE FUNCTION pg_temp.rec(job text, elapsed int, usr text, start text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('jobId', job, 'step', '', 'startTime', start,
        'account', 'acme-llm', 'user', usr, 'partition', 'boost_usr_prod', 'gpus', 1,
        'cpus', 8, 'memMb', '1000', 'nodes', 1, 'elapsedS', elapsed::text, 'state', 'COMPLETED',
        'bill', jsonb_build_object('resource', 'leonardo/boost_usr_prod',
        'occupiedGpus', '1', 'gpuMs', (elapsed * 1000)::text,
        'chargeUnits', (elapsed * 1000)::text,
        'nativeMilli', (elapsed::bigint * 8000 / 3600)::text, 'weightPerMille', 1000))
$$;
CREATE FUNCTION pg_temp.ingest(id text, recs jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT allot.rpc_ingest(jsonb_build_object('site', 'leonardo', 'batchId', id,
        'bodyHash', md5(recs::text), 'records',
        (SELECT jsonb_agg(e || jsonb_build_object('index', i - 1) ORDER BY i)
         FROM jsonb_array_elements(recs) WITH ORDINALITY t(e, i))), 'CN=collector-leonardo')
$$;
-- The statement of acme-llm for [f, t) with the request's other fields.
CREATE FUNCTION pg_temp.st(f text, t text, more jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT allot.rpc_get_statement(jsonb_build_object('project', 'acme-llm', 'from', f,
                                                      'to', t) || more, 'CN=admin')
$$;
-- The rows of one section, each its fields after the section's name, joined by '|'.
CREATE FUNCTION pg_temp.rows(st jsonb, section text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(array_to_string(f[2:], '|'), ';' ORDER BY n), '')
    FROM (SELECT string_to_array(l, E'\t') AS f, n
          FROM unnest(string_to_array(rtrim(st ->> 'statement', E'\n'), E'\n'))
               WITH ORDINALITY AS x(l, n)) y
    WHERE f[1] = section
$$;
CREATE FUNCTION pg_temp.acct() RETURNS bigint LANGUAGE sql AS $$
    SELECT ac.id FROM allot.accounts ac JOIN allot.allocations al ON al.id = ac.allocation_id
    WHERE al.transfer_id = 'grant-1'
$$;
-- The midnight after now: a period to it holds what is journaled now, and is open.
CREATE FUNCTION pg_temp.tomorrow() RETURNS text LANGUAGE sql AS $$
    SELECT to_char(date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day', 'YYYY-MM-DD')
$$;
CREATE FUNCTION pg_temp.prog() RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM allot.accounts WHERE kind = 'program'
$$;

-- The fields.
SELECT is(allot.statement_field(E'a\\b\tc\nd\re'), E'a\\\\b\\tc\\nd\\re',
    'a field escapes backslash, TAB, LF and CR as the audit journal does');
SELECT is(allot.statement_line('x', 'y', ''), E'x\ty\t\n', 'a line: TAB-separated, LF-ended');
SELECT is(allot.statement_hours(5400000), '1.500000', 'GPU-hours to six decimals');
SELECT is(allot.statement_hours(1), '0.000000', 'one unit rounds to 0.000000');
SELECT is(allot.statement_hours(-1800), '-0.000500', 'negative hours keep their sign');
SELECT is(array_to_string(ARRAY[allot.statement_movement('post', 5, 5),
    allot.statement_movement('move', 5, 5), allot.statement_movement('move', 4, 5),
    allot.statement_movement('adjust', 4, 5), coalesce(allot.statement_movement('reserve', 5, 5),
    'null')], ','), 'charge,move_out,move_in,adjust_in,null',
    'movements: a post is a charge, moves and adjustments by side, holds are none');

-- November, backdated: a deposit of 10 GPU-h on the 10th, an adjustment of -1 on the
-- 20th; and one entry on 2026-12-01 that belongs to December.
INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id, amount,
                             body_hash, principal, reason, created_at)
VALUES ('dep-nov', 'deposit', pg_temp.prog(), pg_temp.acct(), 36000000, 'h', 'test', 'n',
        '2026-11-10T12:00:00Z'),
       ('adj-nov', 'adjust', pg_temp.acct(), pg_temp.prog(), 3600000, 'h', 'test', 'n',
        '2026-11-20T12:00:00Z'),
       ('dep-dec', 'deposit', pg_temp.prog(), pg_temp.acct(), 7200000, 'h', 'test', 'n',
        '2026-12-01T00:00:00Z');
-- Usage (journaled now): three jobs, two users, two days.
SELECT is(pg_temp.ingest('s1', jsonb_build_array(
    pg_temp.rec('j1', 3600, 'bo', '2026-11-21T08:00:00Z'),
    pg_temp.rec('j2', 1800, 'al', '2026-11-21T09:00:00Z'),
    pg_temp.rec('j3', 900, 'bo', '2026-11-22T10:00:00Z'))) ->> 'charged', '3',
    'three jobs charged');

SELECT ok(allot.check_account_days(), 'account_days equal the journal, backdated rows included');
SELECT is((SELECT string_agg(day || ':' || movement || ':' || units || ':' || delta || ':' || entries,
    ',' ORDER BY day, movement) FROM allot.account_days WHERE account_id = pg_temp.acct()
    AND day < '2026-12-01'), '2026-11-10:deposit:36000000:36000000:1,'
    '2026-11-20:adjust_out:3600000:-3600000:1', 'a row per account, UTC day and movement');
SELECT is(pg_temp.rows(pg_temp.st('2026-11-01', '2026-12-01'), 'balance'),
    '0|32400000|0.000000|9.000000',
    'November: opening 0 (the grant is journaled now), closing 10 - 1 GPU-h');
SELECT is(pg_temp.rows(pg_temp.st('2026-11-01', '2026-12-01'), 'movement'),
    'grant|0|0.000000|0;deposit|36000000|10.000000|1;move_in|0|0.000000|0;'
    'move_out|0|0.000000|0;adjust_in|0|0.000000|0;adjust_out|3600000|1.000000|1;'
    'charge|0|0.000000|0;refund|0|0.000000|0;credit|0|0.000000|0;expire|0|0.000000|0',
    'November''s movements: the deposit and the adjustment, by journal time');
SELECT is(pg_temp.rows(pg_temp.st('2026-11-01', '2026-12-01'), 'site'),
    'leonardo|6300000|1.750000', 'by site from usage_days: the jobs started in November');
SELECT is(pg_temp.rows(pg_temp.st('2026-11-01', '2026-12-01'), 'user'),
    'al|1800000|0.500000;bo|4500000|1.250000', 'by user');
SELECT is(pg_temp.rows(pg_temp.st('2026-11-01', '2026-12-01'), 'day'),
    '2026-11-21|5400000|1.500000;2026-11-22|900000|0.250000', 'by day');
SELECT is(pg_temp.rows(pg_temp.st('2026-11-01', '2026-12-01'), 'provenance'),
    'unsealed|2|2|-|-|-|-', 'November''s two entries are not sealed yet: it says so');
SELECT is(pg_temp.rows(pg_temp.st('2026-11-01', '2026-12-01'), 'plan'),
    '0|59340659|0.000000|16.483516|0|never',
    'the plan: 30 of the allocation''s 182 days of 100 GPU-h, floored; no burn');

-- From December to tomorrow (after now: open): the grant, the December deposit, the charges.
SELECT is(pg_temp.rows(pg_temp.st('2026-12-01', pg_temp.tomorrow()), 'balance'),
    '32400000|393300000|9.000000|109.250000',
    'December: opening is November''s closing; closing 9 + 100 + 2 - 1.75 GPU-h');
SELECT is((SELECT string_agg(x, ',') FROM unnest(string_to_array(
    pg_temp.rows(pg_temp.st('2026-12-01', pg_temp.tomorrow()), 'movement'), ';')) x
    WHERE x !~ '\|0\|0\.000000\|0$'),
    'grant|360000000|100.000000|1,deposit|7200000|2.000000|1,charge|6300000|1.750000|3',
    'December''s movements: the grant, the deposit at midnight, three charges');
SELECT is(split_part(pg_temp.rows(pg_temp.st('2026-12-01', pg_temp.tomorrow()), 'provenance'), '|', 1),
    'open', 'a period not ended is open');
SELECT is(pg_temp.rows(pg_temp.st('2026-12-01', pg_temp.tomorrow()), 'site'), '',
    'no job started in December');
SELECT is(pg_temp.rows(pg_temp.st('2025-01-01', '2025-02-01'), 'provenance'),
    'empty|0|0|-|-|-|-', 'a period without entries');
SELECT is(pg_temp.rows(pg_temp.st('2025-01-01', '2025-02-01'), 'allocation'), '',
    'no allocation overlaps January 2025');

-- Jobs, one page at a time.
SELECT is(pg_temp.rows(pg_temp.st('2026-11-01', '2026-12-01', '{"jobLimit": 2}'), 'job'),
    'leonardo|j1|bo|2026-11-21T08:00:00.000000Z|1|3600|3600000|1.000000|8.000|core-h|-|0.000000|-;'
    'leonardo|j2|al|2026-11-21T09:00:00.000000Z|1|1800|1800000|0.500000|4.000|core-h|-|0.000000|-',
    'the first page: two jobs, oldest first');
SELECT is(pg_temp.st('2026-11-01', '2026-12-01', jsonb_build_object('jobLimit', 2,
    'jobCursor', pg_temp.st('2026-11-01', '2026-12-01', '{"jobLimit": 2}') ->> 'nextJobCursor'))
    ->> 'statement' ~ E'\njob\tleonardo\tj3\t', true, 'the next page holds j3');
SELECT is(pg_temp.rows(pg_temp.st('2026-11-01', '2026-12-01', jsonb_build_object('jobLimit', 2,
    'jobCursor', pg_temp.st('2026-11-01', '2026-12-01', '{"jobLimit": 2}') ->> 'nextJobCursor')),
    'jobs'), '1|', 'and is the last');
SELECT is(pg_temp.rows(pg_temp.st('2026-11-01', '2026-12-01', '{"by": ["user"]}'), 'columns'),
    'statement|project|organization|program|from|to|generated_at|by;'
    'allocation|id|site|starts_at|ends_at|granted_units|opening_units|closing_units|plan_units;'
    'balance|opening_units|closing_units|opening_gpu_hours|closing_gpu_hours;'
    'movement|kind|units|gpu_hours|entries;'
    'plan|burn_units|plan_units|burn_gpu_hours|plan_gpu_hours|burn_permille_of_plan|forecast_exhaustion;'
    'provenance|status|entries|unsealed_entries|first_block|first_block_hash|last_block|last_block_hash;'
    'user|user|units|gpu_hours',
    'by user: the fixed sections and the user breakdown only, in order');

-- Refusals.
SELECT throws_ok($$SELECT pg_temp.st('2026-12-01', '2026-11-01')$$, '22023',
    'from (2026-12-01T00:00:00Z) must be before to (2026-11-01T00:00:00Z)', 'from after to');
SELECT throws_ok($$SELECT pg_temp.st('2026-11-01', '2026-11-01')$$, '22023', NULL,
    'an empty period');
SELECT throws_like($$SELECT pg_temp.st('2026-11-01T06:00:00Z', '2026-12-01')$$,
    'a statement covers whole UTC days%', 'a period not of whole days');
SELECT throws_ok($$SELECT allot.rpc_get_statement('{"project":"nope","from":"2026-11-01",
    "to":"2026-12-01"}', 'x')$$, 'P0002', 'project "nope" does not exist', 'an unknown project');
SELECT throws_like($$SELECT pg_temp.st('2026-11-01', '2026-12-01', '{"by": ["week"]}')$$,
    'by must be site, user, day or job%', 'an unknown breakdown');
SELECT throws_like($$SELECT pg_temp.st('2026-11-01', '2026-12-01', '{"jobLimit": 1001}')$$,
    'job_limit must be between 1 and 1000%', 'a page too large');
SELECT throws_like($$SELECT pg_temp.st('2026-11-01', '2026-12-01', '{"jobCursor": "x"}')$$,
    'job_cursor "x" is not one this call gave', 'a cursor not given');

SELECT * FROM finish();
ROLLBACK;
