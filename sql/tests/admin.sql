-- The Admin functions: what they store, what they return, what they refuse.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(22);

SELECT is(allot.rpc_list_programs('{}', 't'),
    '{"programs":[{"name":"ai-factories","description":""}]}'::jsonb, 'programs list');
SELECT is(allot.rpc_list_projects('{"organization":"acme"}', 't') -> 'projects' -> 0,
    '{"name":"acme-llm","organization":"acme","description":"","users":["bo"]}'::jsonb,
    'a project with its users');
SELECT is(allot.rpc_add_project_user('{"project":"acme-llm","user":"ada"}', 't') -> 'users',
    '["ada","bo"]'::jsonb, 'adding a user');
SELECT throws_ok($$SELECT allot.rpc_create_site('{"name":"leonardo"}', 't')$$, '23505',
    'site "leonardo" already exists', 'a site twice');
SELECT throws_ok($$SELECT allot.rpc_create_site('{"name":"Bad Name"}', 't')$$, '22023', NULL,
    'a name that is not an identifier');
SELECT throws_ok($$SELECT allot.rpc_create_project('{"name":"x","organization":"nope"}', 't')$$,
    'P0002', 'organization "nope" does not exist', 'an unknown organization');
SELECT throws_ok($$SELECT allot.rpc_create_resource('{"site":"leonardo","partition":"p2",
    "gpusPerNode":4,"rule":"BILLING_RULE_UNSPECIFIED","nativeUnit":"h","weightPerMille":1000,
    "weightEffectiveFrom":"2026-01-01"}', 't')$$, '22023', NULL, 'a resource without a rule');
SELECT throws_ok($$SELECT allot.rpc_create_resource('{"site":"leonardo","partition":"p2",
    "gpusPerNode":4,"rule":"BILLING_RULE_WHOLE_NODE","nativeUnit":"h","weightPerMille":0,
    "weightEffectiveFrom":"2026-01-01"}', 't')$$, '22023', NULL, 'a weight of zero');
SELECT is((allot.rpc_list_resources('{"site":"leonardo"}', 't') -> 'resources' -> 0) ->> 'weightPerMille',
    '1000', 'the weight in force');

-- Weights are effective-dated: a new one is a new row, the old one stays.
SELECT is(allot.rpc_set_resource_weight('{"site":"leonardo","partition":"boost_usr_prod",
    "weightPerMille":1200,"effectiveFrom":"2026-06-01"}', 't') ->> 'weightPerMille', '1200',
    'a new weight from a date');
SELECT is((SELECT count(*) FROM allot.resource_weights), 3::bigint, 'weights are added, not rewritten');
SELECT throws_ok($$SELECT allot.rpc_set_resource_weight('{"site":"leonardo","partition":"boost_usr_prod",
    "weightPerMille":900,"effectiveFrom":"2026-06-01"}', 't')$$, '23505', NULL,
    'another weight for the same date is refused');

-- Allocations: bad input is refused and changes nothing.
SELECT throws_ok($$SELECT allot.rpc_create_allocation('{"project":"acme-llm","gpuHours":"-5",
    "startsAt":"2026-10-01","endsAt":"2027-04-01","transferId":"g-neg"}', 't')$$, '22023',
    'gpu_hours must be between 1 and 1000000000, not -5', 'a negative grant');
SELECT throws_ok($$SELECT allot.rpc_create_allocation('{"project":"acme-llm","gpuHours":"2000000000",
    "startsAt":"2026-10-01","endsAt":"2027-04-01","transferId":"g-big"}', 't')$$, '22023', NULL,
    'an absurd grant');
SELECT throws_ok($$SELECT allot.rpc_create_allocation('{"project":"nope","gpuHours":"5",
    "startsAt":"2026-10-01","endsAt":"2027-04-01","transferId":"g-x"}', 't')$$, 'P0002',
    'project "nope" does not exist', 'an unknown project');
SELECT throws_ok($$SELECT allot.rpc_create_allocation('{"project":"acme-llm","gpuHours":"5",
    "startsAt":"2027-10-01","endsAt":"2027-04-01","transferId":"g-y"}', 't')$$, '22023', NULL,
    'an end before the start');
SELECT throws_ok($$SELECT allot.rpc_create_allocation('{"project":"acme-llm","gpuHours":"5",
    "startsAt":"someday","endsAt":"2027-04-01","transferId":"g-z"}', 't')$$, '22007', NULL,
    'a start that is not a time');
SELECT throws_ok($$SELECT allot.rpc_create_allocation('{"project":"acme-llm","gpuHours":"5",
    "resources":["leonardo/nope"],"startsAt":"2026-10-01","endsAt":"2027-04-01",
    "transferId":"g-r"}', 't')$$, 'P0002', 'resource "leonardo/nope" does not exist',
    'an unknown resource');
SELECT is((SELECT count(*) FROM allot.allocations), 1::bigint, 'refused grants stored nothing');

-- Principals: scopes must exist and match the role.
SELECT throws_ok($$SELECT allot.rpc_create_principal('{"subject":"CN=c","role":"ROLE_COLLECTOR",
    "scope":"nowhere"}', 't')$$, 'P0002', 'site "nowhere" does not exist', 'a collector of an unknown site');
SELECT throws_ok($$SELECT allot.rpc_create_principal('{"subject":"CN=a","role":"ROLE_ADMIN",
    "scope":"leonardo"}', 't')$$, '22023', NULL, 'an admin with a scope');
SELECT is(allot.rpc_create_principal('{"subject":"CN=c","role":"ROLE_COLLECTOR","scope":"leonardo"}', 't'),
    '{"subject":"CN=c","role":"ROLE_COLLECTOR","scope":"leonardo"}'::jsonb, 'a collector of a site');

SELECT * FROM finish();
ROLLBACK;
