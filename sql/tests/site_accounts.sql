-- Site accounts: a site's own account names mapped to projects, and their
-- resolution in quotes and reservations, with the project principal's scope.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(28);

INSERT INTO allot.principals (subject, role, scope) VALUES
    ('CN=p-llm', 'project', 'acme-llm'), ('CN=p-vision', 'project', 'acme-vision'),
    ('CN=s-leo', 'scheduler', 'leonardo');
CREATE FUNCTION pg_temp.add(project text, site text, account text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT allot.rpc_add_site_account(jsonb_build_object('project', project, 'site', site,
        'account', account), 'CN=admin')
$$;

SELECT is(pg_temp.add('acme-llm', 'leonardo', 'AIFAC_P02_548'),
    '{"project":"acme-llm","site":"leonardo","account":"AIFAC_P02_548"}'::jsonb,
    'a site account is mapped to a project');
SELECT is(pg_temp.add('acme-llm', 'leonardo', 'AIFAC_P02_548') ->> 'project', 'acme-llm',
    'the same mapping again answers it as stored');
SELECT is((SELECT count(*) FROM allot.site_accounts), 1::bigint, 'and stores it once');
SELECT throws_ok($$SELECT pg_temp.add('acme-vision', 'leonardo', 'AIFAC_P02_548')$$, '23505',
    'account "AIFAC_P02_548" of site "leonardo" is already mapped to project "acme-llm"',
    'an account mapped to another project is already_exists');
SELECT throws_ok($$SELECT pg_temp.add('nobody', 'leonardo', 'X1')$$, 'P0002',
    'project "nobody" does not exist', 'an unknown project is not_found');
SELECT throws_ok($$SELECT pg_temp.add('acme-llm', 'lumi', 'X1')$$, 'P0002',
    'site "lumi" does not exist', 'an unknown site is not_found');
SELECT throws_ok($$SELECT pg_temp.add('acme-llm', 'leonardo', 'a b')$$, '22023', NULL,
    'an account with a space is invalid');
SELECT throws_ok($$SELECT pg_temp.add('acme-llm', 'leonardo', '')$$, '22023', NULL,
    'an empty account is invalid');
SELECT throws_ok($$SELECT pg_temp.add('acme-llm', 'leonardo', 'acme-vision')$$, '23505', NULL,
    'another project''s name cannot be mapped');
-- Case matters: aifac_p02_548 is another account. The same account at another site is
-- another mapping.
SELECT pg_temp.add('acme-vision', 'leonardo', 'aifac_p02_548');
SELECT pg_temp.add('acme-vision', 'jupiter', 'AIFAC_P02_548');
SELECT is(allot.rpc_list_site_accounts('{"site":"leonardo"}', 'CN=admin') -> 'siteAccounts',
    '[{"project":"acme-llm","site":"leonardo","account":"AIFAC_P02_548"},
      {"project":"acme-vision","site":"leonardo","account":"aifac_p02_548"}]'::jsonb,
    'ListSiteAccounts filters by site, in site and account order');
SELECT is(jsonb_array_length(allot.rpc_list_site_accounts('{"project":"acme-vision"}', 'CN=admin')
    -> 'siteAccounts'), 2, 'and by project');
SELECT is((SELECT array_agg(allot.account_project(s, a) = (SELECT id FROM allot.projects WHERE name = p)
                            ORDER BY a, s)
           FROM (VALUES ('leonardo', 'AIFAC_P02_548', 'acme-llm'), ('jupiter', 'AIFAC_P02_548', 'acme-vision'),
                        ('leonardo', 'aifac_p02_548', 'acme-vision'), ('leonardo', 'acme-llm', 'acme-llm'))
                v(s, a, p)),
    '{t,t,t,t}'::boolean[], 'resolution: the mapping at the site, else the project of the name');
SELECT ok(allot.account_project('jupiter', 'aifac_p02_548') IS NULL, 'an unmapped unknown account is none');

-- Quote and reserve with LEONARDO's name for acme-llm's account.
CREATE FUNCTION pg_temp.req(lien text, job text, account text, principal text DEFAULT 'CN=s-leo')
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('lienId', lien, 'site', 'leonardo', 'jobId', job,
        'partition', 'boost_usr_prod', 'account', account, 'user', 'bo', 'gpus', 1,
        'cpus', 8, 'memMb', '0', 'nodes', 1, 'timeLimitS', '3600', 'expiresInS', '0',
        'campaign', '', 'bodyHash', md5(lien || job), 'principal', principal,
        'bill', jsonb_build_object('resourceId', (SELECT id FROM allot.resources
                                                  WHERE partition = 'boost_usr_prod'),
            'occupiedGpus', 1, 'gpuMs', 3600000, 'chargeUnits', 3600000,
            'nativeMilli', 8000, 'weightPerMille', 1000, 'nativeUnit', 'core-h'))
$$;
SELECT is(allot.rpc_quote(pg_temp.req('q', 'q1', 'AIFAC_P02_548'), 'CN=s-leo') ->> 'allocationId',
    (SELECT id::text FROM allot.allocations WHERE transfer_id = 'grant-1'),
    'a quote with the site''s account finds the project''s allocation');
SELECT is(allot.rpc_quote(pg_temp.req('q', 'q1', 'AIFAC_P02_548'), 'CN=p-llm') ->> 'allowed', 'true',
    'the project''s own principal may quote with the site''s account');
SELECT throws_ok($$SELECT allot.rpc_quote(pg_temp.req('q', 'q1', 'AIFAC_P02_548'), 'CN=p-vision')$$,
    '42501', 'principal "CN=p-vision" (project of acme-vision) may not act for account "AIFAC_P02_548"',
    'another project''s principal may not');
SELECT is(allot.rpc_quote(pg_temp.req('q', 'q1', 'aifac_p02_548'), 'CN=s-leo') ->> 'reason',
    'no allocation of project "acme-vision" covers leonardo/boost_usr_prod at ' || allot.rfc3339(now()),
    'a quote names the resolved project');

CREATE TEMP TABLE g AS SELECT allot.reserve_group(jsonb_build_array(
    pg_temp.req('r1', 'j1', 'AIFAC_P02_548'),
    pg_temp.req('r2', 'j2', 'AIFAC_P02_548', 'CN=p-llm'),
    pg_temp.req('r3', 'j3', 'AIFAC_P02_548', 'CN=p-vision'),
    pg_temp.req('r4', 'j4', 'acme-llm', 'CN=p-vision'),
    pg_temp.req('r5', 'j5', 'nobody', 'CN=p-llm'),
    pg_temp.req('r6', 'j6', 'nobody'))) AS a;
SELECT is((SELECT jsonb_path_query_array(a, '$[*].ok.project') FROM g), '["acme-llm", "acme-llm"]'::jsonb,
    'reservations with the site''s account are the project''s, by a scheduler or the project''s principal');
SELECT is((SELECT array_agg(l.project_id = p.id AND l.account = 'AIFAC_P02_548' ORDER BY l.id)
           FROM allot.liens l, allot.projects p WHERE p.name = 'acme-llm'),
    '{t,t}'::boolean[], 'the liens keep the site''s account and the resolved project');
SELECT is((SELECT a -> 2 ->> 'message' FROM g),
    'principal "CN=p-vision" (project of acme-vision) may not act for account "AIFAC_P02_548"',
    'another project''s principal may not reserve on the site''s account');
SELECT is((SELECT (a -> 3 ->> 'sqlstate') || ' ' || (a -> 4 ->> 'sqlstate') || ' ' || (a -> 5 ->> 'sqlstate') FROM g),
    '42501 42501 P0002',
    'nor on another project''s name, nor on an unknown account; a scheduler''s unknown account is not_found');

-- Ingestion: j1's record under LEONARDO's account charges acme-llm and draws r1's
-- hold; 1 GPU for 1,800 s is 1,800,000 units. An account nobody mapped is still unknown.
CREATE FUNCTION pg_temp.rec(idx int, job text, account text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('index', idx, 'jobId', job, 'step', '',
        'startTime', '2026-11-21T08:00:00Z', 'account', account, 'partition', 'boost_usr_prod',
        'gpus', 1, 'cpus', 8, 'memMb', '0', 'nodes', 1, 'elapsedS', '1800', 'state', 'RUNNING',
        'bill', jsonb_build_object('resource', 'leonardo/boost_usr_prod', 'occupiedGpus', '1',
            'gpuMs', '1800000', 'chargeUnits', '1800000', 'nativeMilli', '4000', 'weightPerMille', 1000))
$$;
CREATE TEMP TABLE ing AS SELECT allot.rpc_ingest(jsonb_build_object('site', 'leonardo',
    'batchId', 'sa-1', 'bodyHash', 'h1', 'records', jsonb_build_array(
        pg_temp.rec(0, 'j1', 'AIFAC_P02_548'), pg_temp.rec(1, 'j7', 'AIFAC_P02_999'))),
    'CN=collector-leonardo') AS a;
SELECT is((SELECT (a -> 'results' -> 0 ->> 'chargedUnits') || ' ' || (a -> 'results' -> 0 ->> 'allocationId') FROM ing),
    '1800000 ' || (SELECT id FROM allot.allocations WHERE transfer_id = 'grant-1'),
    'a record with the site''s account is charged to the mapped project''s allocation');
SELECT is((SELECT (u.account, p.name)::text FROM allot.job_usage u JOIN allot.projects p ON p.id = u.project_id
           WHERE u.job_id = 'j1'), '(AIFAC_P02_548,acme-llm)',
    'the job keeps the site''s account and is the mapped project''s');
SELECT is((SELECT (held, drawn)::text FROM allot.liens WHERE id = 'r1'), '(1800000,1800000)',
    'its charge draws the hold reserved under the same account');
SELECT is((SELECT a -> 'results' -> 1 ->> 'reason' FROM ing), 'unknown account "AIFAC_P02_999"',
    'an account with no mapping and no project of its name is still rejected');

SELECT is(allot.rpc_remove_site_account('{"site":"leonardo","account":"aifac_p02_548"}', 'CN=admin')
    ->> 'project', 'acme-vision', 'RemoveSiteAccount answers the mapping removed');
SELECT throws_ok($$SELECT allot.rpc_remove_site_account('{"site":"leonardo","account":"aifac_p02_548"}', 'CN=admin')$$,
    'P0002', 'account "aifac_p02_548" of site "leonardo" is not mapped', 'and not_found the second time');
SELECT ok(allot.check_ledger(), 'the ledger balances');

SELECT * FROM finish();
ROLLBACK;
