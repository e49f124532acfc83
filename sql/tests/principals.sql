-- Principals: removing one, and the trigger that tells every allotd to read them again.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(9);

SELECT allot.rpc_create_principal('{"subject":"CN=c","role":"ROLE_COLLECTOR","scope":"leonardo"}', 't');
SELECT allot.rpc_create_principal('{"subject":"CN=a","role":"ROLE_AUDITOR"}', 't');

SELECT is(allot.rpc_remove_principal('{"subject":"CN=c","role":"ROLE_UNSPECIFIED","scope":""}', 't'),
    '{"subject":"CN=c","role":"ROLE_COLLECTOR","scope":"leonardo"}'::jsonb,
    'removing answers the principal as it was, whatever role and scope the request says');
SELECT is((SELECT count(*) FROM allot.principals WHERE subject = 'CN=c'), 0::bigint,
    'the removed principal is gone');
SELECT is((SELECT count(*) FROM allot.principals WHERE subject = 'CN=a'), 1::bigint,
    'the others stay');
SELECT throws_ok($$SELECT allot.rpc_remove_principal('{"subject":"CN=c"}', 't')$$, 'P0002',
    'principal "CN=c" does not exist', 'removing it again: not found');
SELECT throws_ok($$SELECT allot.rpc_remove_principal('{"subject":"CN=nobody"}', 't')$$, 'P0002',
    'principal "CN=nobody" does not exist', 'an unknown subject: not found');
SELECT throws_ok($$SELECT allot.rpc_remove_principal('{"subject":""}', 't')$$, '22023',
    'subject is required', 'no subject');
SELECT is(allot.rpc_list_principals('{}', 't') -> 'principals',
    '[{"subject":"CN=a","role":"ROLE_AUDITOR","scope":""}]'::jsonb, 'the list after removal');

SELECT trigger_is('allot', 'principals', 'principals_notify', 'allot', 'principals_notify',
    'a change to allot.principals notifies');
-- tgtype bits: 1 row, 2 before, 4 insert, 8 delete, 16 update, 32 truncate.
SELECT is((SELECT tgtype & 63 FROM pg_trigger
           WHERE tgrelid = 'allot.principals'::regclass AND tgname = 'principals_notify')::int,
    60, 'after each statement that inserts, updates, deletes or truncates');

SELECT * FROM finish();
ROLLBACK;
