-- 0015: the rows that name an allocation (liens, allocation changes, incident
-- credits) no longer have foreign keys, which locked the allocation after the
-- accounts; their integrity is kept by triggers and checked here.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(11);

SELECT allot.rpc_create_allocation('{"project":"acme-vision","site":"leonardo","gpuHours":"10",
    "startsAt":"2026-01-01","endsAt":"2030-01-01","transferId":"grant-r"}', 'CN=admin');
CREATE FUNCTION pg_temp.alloc() RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM allot.allocations WHERE transfer_id = 'grant-r'
$$;

SELECT is((SELECT count(*) FROM pg_constraint
           WHERE contype = 'f' AND confrelid = 'allot.allocations'::regclass
             AND conrelid IN ('allot.liens'::regclass, 'allot.allocation_changes'::regclass,
                              'allot.incident_credits'::regclass))::int, 0,
          'no foreign key from liens, changes or credits locks an allocation');

SELECT throws_ok($$INSERT INTO allot.liens (id, kind, site, job_id, project_id, allocation_id,
                      cost_units, amount, held, expires_at, body_hash, principal)
                  VALUES ('ghost', 'job', 'leonardo', 'g1', allot.project_id('acme-vision'),
                          999999, 1, 1, 1, now() + interval '1 hour', 'h', 'CN=t')$$,
                 '23503', 'insert into liens: allocation 999999 does not exist',
                 'a lien on an allocation that does not exist is refused');
SELECT lives_ok($$INSERT INTO allot.liens (id, kind, site, job_id, project_id, allocation_id,
                     cost_units, amount, held, expires_at, body_hash, principal)
                 VALUES ('real', 'job', 'leonardo', 'g2', allot.project_id('acme-vision'),
                         pg_temp.alloc(), 0, 0, 0, now() + interval '1 hour', 'h', 'CN=t')$$,
                'a lien on an allocation that exists is stored');
SELECT throws_ok($$UPDATE allot.liens SET allocation_id = 999999 WHERE id = 'real'$$,
                 '42501', 'liens.allocation_id is never changed: UPDATE is refused',
                 'a lien never moves to another allocation');
SELECT lives_ok($$UPDATE allot.liens SET partition = 'x' WHERE id = 'real'$$,
                'the rest of a lien may change');

SELECT throws_ok($$INSERT INTO allot.allocation_changes VALUES ('ghost-dep', 'deposit', 999999, NULL,
                      1, 'x', 'CN=admin', 'h', '{}', now())$$,
                 '23503', 'insert into allocation_changes: allocation 999999 does not exist',
                 'a change of an allocation that does not exist is refused');
SELECT throws_ok(format($$INSERT INTO allot.allocation_changes VALUES ('ghost-mv', 'move', %s, 999998,
                      1, 'x', 'CN=admin', 'h', '{}', now())$$,
                        pg_temp.alloc()),
                 '23503', 'insert into allocation_changes: allocation 999998 does not exist',
                 'a move from an allocation that does not exist is refused');

SELECT throws_ok(format('DELETE FROM allot.allocations WHERE id = %s', pg_temp.alloc()),
                 '42501', 'allocations rows are never deleted: DELETE is refused',
                 'an allocation is never deleted');
SELECT throws_ok(format('UPDATE allot.allocations SET id = 999999 WHERE id = %s',
                        pg_temp.alloc()),
                 '42501', 'allocations.id is never changed: UPDATE is refused',
                 'an allocation is never renumbered');
SELECT lives_ok(format('UPDATE allot.allocations SET native_charged_milli = 5 WHERE id = %s',
                       pg_temp.alloc()), 'an allocation''s other columns may change');

SELECT ok(allot.check_allocation_refs(), 'every row names an allocation that exists');

SELECT * FROM finish();
ROLLBACK;
