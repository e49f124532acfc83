-- Incidents on nodes and the nodes of jobs (0016), every figure worked out here.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(38);

-- A batch of LEONARDO records through ingest_batch's node_list form, as allotd sends
-- it: each record {job, start, elapsed, gpus, nodes (comma-separated, or absent),
-- step}; 1 GPU is elapsed * 1000 units. Answers the statuses in record order.
CREATE FUNCTION pg_temp.ingest(batch text, recs jsonb) RETURNS text LANGUAGE sql AS $$
    WITH r AS (
        SELECT (n - 1)::int AS i, e ->> 'job' AS j, coalesce(e ->> 'step', '') AS st,
               extract(epoch FROM (e ->> 'start')::timestamptz)::bigint AS s,
               (e ->> 'elapsed')::bigint AS el, coalesce((e ->> 'gpus')::int, 1) AS g,
               e ->> 'nodes' AS nl
        FROM jsonb_array_elements(recs) WITH ORDINALITY t(e, n)),
    b AS (
        SELECT * FROM allot.ingest_batch('leonardo', batch, md5(recs::text), 'CN=collector',
            (SELECT array_agg(i ORDER BY i) FROM r), (SELECT array_agg(j ORDER BY i) FROM r),
            (SELECT array_agg(st ORDER BY i) FROM r), (SELECT array_agg(s ORDER BY i) FROM r),
            (SELECT array_agg('acme-llm'::text ORDER BY i) FROM r),
            (SELECT array_agg('bo'::text ORDER BY i) FROM r),
            (SELECT array_agg('boost_usr_prod'::text ORDER BY i) FROM r),
            (SELECT array_agg(g ORDER BY i) FROM r), (SELECT array_agg(8 * g ORDER BY i) FROM r),
            (SELECT array_agg(1000::bigint ORDER BY i) FROM r),
            (SELECT array_agg(1 ORDER BY i) FROM r), (SELECT array_agg(el ORDER BY i) FROM r),
            (SELECT array_agg('COMPLETED'::text ORDER BY i) FROM r),
            (SELECT array_agg(CASE WHEN st = '' THEN (SELECT id FROM allot.resources
                                                      WHERE site = 'leonardo') END ORDER BY i) FROM r),
            (SELECT array_agg(CASE WHEN st = '' THEN g::bigint END ORDER BY i) FROM r),
            (SELECT array_agg(CASE WHEN st = '' THEN el * g * 1000 END ORDER BY i) FROM r),
            (SELECT array_agg(CASE WHEN st = '' THEN el * g * 1000 END ORDER BY i) FROM r),
            (SELECT array_agg(CASE WHEN st = '' THEN 0::bigint END ORDER BY i) FROM r),
            (SELECT array_agg(CASE WHEN st = '' THEN 1000 END ORDER BY i) FROM r),
            (SELECT array_agg(NULL::text ORDER BY i) FROM r),
            (SELECT array_agg(CASE WHEN st = '' THEN nl END ORDER BY i) FROM r)))
    SELECT string_agg(status, ' ' ORDER BY idx) FROM b
$$;
CREATE FUNCTION pg_temp.rec(job text, start text, elapsed int, nodes text DEFAULT NULL,
    gpus int DEFAULT 1, step text DEFAULT '') RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('job', job, 'start', start, 'elapsed', elapsed,
        'nodes', nodes, 'gpus', gpus, 'step', step))
$$;
CREATE FUNCTION pg_temp.nodes_of(job text) RETURNS text LANGUAGE sql AS $$
    SELECT array_to_string(nodes, ',') FROM allot.job_nodes WHERE site = 'leonardo' AND job_id = job
$$;
CREATE FUNCTION pg_temp.declare(id text, body jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT allot.rpc_declare_incident(jsonb_build_object('incidentId', id, 'site', 'leonardo',
        'reason', 'rack power') || body, 'CN=admin')
$$;
CREATE FUNCTION pg_temp.credits(incident text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(job_id || '=' || credit_units, ' ' ORDER BY job_id), '')
    FROM allot.incident_credits WHERE incident_id = incident
$$;
CREATE FUNCTION pg_temp.credited(job text) RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(credit_units), 0)::bigint FROM allot.incident_credits WHERE job_id = job
$$;

-- ---------------------------------------------------------------- the nodes of jobs
--
-- LEONARDO, 2026-11-21 (1 GPU, elapsed * 1000 units, unless said):
--   jN1 10:30 +3600 (to 11:30) on lrdn0001,lrdn0002            3,600,000
--   jN2 09:00 +7200 (to 11:00), 2 GPUs, on lrdn0003           14,400,000
--   jN3 11:00 +7200 (to 13:00) on lrdn0004                     7,200,000
--   jN4 10:00 +3600 (to 11:00), no node list                   3,600,000
--   jN5 10:00 +1800 on lrdn0008, then +3600 on lrdn0009        3,600,000
--   jN1.batch, a step, on lrdn0001: not a job's nodes
SELECT is(pg_temp.ingest('b1', jsonb_build_array(
    pg_temp.rec('jN1', '2026-11-21T10:30:00Z', 3600, 'lrdn0001,lrdn0002'),
    pg_temp.rec('jN1', '2026-11-21T10:30:00Z', 3600, 'lrdn0001', step => 'batch'),
    pg_temp.rec('jN2', '2026-11-21T09:00:00Z', 7200, 'lrdn0003', gpus => 2),
    pg_temp.rec('jN3', '2026-11-21T11:00:00Z', 7200, 'lrdn0004'),
    pg_temp.rec('jN4', '2026-11-21T10:00:00Z', 3600),
    pg_temp.rec('jN5', '2026-11-21T10:00:00Z', 1800, 'lrdn0008'))),
    'CHARGED RECORDED CHARGED CHARGED CHARGED CHARGED', 'the first batch charges five jobs');
SELECT is(pg_temp.nodes_of('jN1'), 'lrdn0001,lrdn0002', 'a job''s nodes are stored with it');
SELECT is((SELECT count(*) FROM allot.job_nodes), 4::bigint,
    'four jobs named nodes: neither the step nor the job without a list has a row');
SELECT is(pg_temp.ingest('b2', jsonb_build_array(
    pg_temp.rec('jN5', '2026-11-21T10:00:00Z', 3600, 'lrdn0009'))), 'CHARGED',
    'a later record of jN5');
SELECT is(pg_temp.nodes_of('jN5'), 'lrdn0009', 'the latest charged record''s nodes are the job''s');
SELECT is(pg_temp.ingest('b3', jsonb_build_array(
    pg_temp.rec('jN5', '2026-11-21T10:00:00Z', 3600, 'lrdn0010'),
    pg_temp.rec('jN4', '2026-11-21T10:00:00Z', 3600, 'lrdn0011'))), 'DUPLICATE DUPLICATE',
    'records with nothing new');
SELECT is(pg_temp.nodes_of('jN5') || ' ' || coalesce(pg_temp.nodes_of('jN4'), 'none'),
    'lrdn0009 none', 'a duplicate changes no job''s nodes');
SELECT is((SELECT charged_units FROM allot.job_usage WHERE job_id = 'jN2' AND step = ''),
    14400000::bigint, 'jN2 was charged 7200 s x 2 GPUs x 1000 = 14,400,000');

-- ---------------------------------------------------------------- refusals

SELECT throws_ok($$SELECT pg_temp.declare('n-1', '{"partition":"boost_usr_prod","nodes":["lrdn0002"],
    "startsAt":"2026-11-21T10:00:00Z","endsAt":"2026-11-21T12:00:00Z"}')$$, '22023',
    'an incident names a partition or nodes, not both', 'a partition and nodes both are refused');
SELECT throws_ok($$SELECT pg_temp.declare('n-1', '{"nodes":["lrdn0002","lrdn 3"],
    "startsAt":"2026-11-21T10:00:00Z","endsAt":"2026-11-21T12:00:00Z"}')$$, '22023',
    'node name "lrdn 3" is not valid: use 1 to 64 letters, digits, ".", "_" or "-"',
    'a node name with a space is refused');
SELECT throws_ok($$SELECT pg_temp.declare('n-1', '{"nodes":["lrdn0002",""],
    "startsAt":"2026-11-21T10:00:00Z","endsAt":"2026-11-21T12:00:00Z"}')$$, '22023',
    'node name "" is not valid: use 1 to 64 letters, digits, ".", "_" or "-"',
    'an empty node name is refused');
SELECT throws_ok($$SELECT pg_temp.declare('n-1', '{"nodes":["lrdn0002",7],
    "startsAt":"2026-11-21T10:00:00Z","endsAt":"2026-11-21T12:00:00Z"}')$$, '22023',
    'node name "7" is not valid: use 1 to 64 letters, digits, ".", "_" or "-"',
    'a node that is not a string is refused');
SELECT throws_ok($$SELECT pg_temp.declare('n-1', '{"nodes":"lrdn[0001-0002]",
    "startsAt":"2026-11-21T10:00:00Z","endsAt":"2026-11-21T12:00:00Z"}')$$, '22023',
    'nodes must be an array of node names', 'a hostlist string is not an array of nodes');
SELECT throws_ok(format($$SELECT pg_temp.declare('n-1', jsonb_build_object('nodes', %L::jsonb,
    'startsAt', '2026-11-21T10:00:00Z', 'endsAt', '2026-11-21T12:00:00Z'))$$,
    (SELECT jsonb_agg('n' || i) FROM generate_series(1, 65537) i)), '22023',
    'an incident names at most 65536 nodes, not 65537', 'more than 65536 nodes are refused');
SELECT is((SELECT count(*) FROM allot.incidents) || ' ' || (SELECT count(*) FROM allot.transfers
           WHERE kind = 'credit'), '0 0', 'the refusals recorded no incident and credited nothing');

-- ---------------------------------------------------------------- incidents on nodes
--
-- n-1: lrdn0002 and lrdn0003 (given out of order and twice), 10:00 to 12:00:
--   jN1 on lrdn0002, all its 3600 s inside:       3,600,000
--   jN2 on lrdn0003, 3600 of its 7200 s:          3600/7200 * 14,400,000 = 7,200,000
--   jN3 (lrdn0004), jN4 (no list), jN5 (lrdn0009): nothing
-- Total 10,800,000 units (3 GPU-hours), 2 jobs.
SELECT is((pg_temp.declare('n-1', '{"nodes":["lrdn0003","lrdn0002","lrdn0002"],
    "startsAt":"2026-11-21T10:00:00Z","endsAt":"2026-11-21T12:00:00Z"}') -> 'incident')
    - 'declaredAt'::text - 'principal'::text,
    '{"incidentId": "n-1", "site": "leonardo", "partition": "", "nodes": ["lrdn0002", "lrdn0003"],
      "startsAt": "2026-11-21T10:00:00Z", "endsAt": "2026-11-21T12:00:00Z", "reason": "rack power",
      "jobsCredited": 2, "creditedUnits": "10800000", "creditedGpuHours": 3.000000}'::jsonb,
    'n-1 credits 2 jobs 10,800,000 units; its nodes are kept sorted, each once');
SELECT is(pg_temp.credits('n-1'), 'jN1=3600000 jN2=7200000',
    'jN1 gets all it was charged, jN2 the half of its run inside the window');
SELECT is(pg_temp.declare('n-1', '{"nodes":["lrdn0002","lrdn0003"],
    "startsAt":"2026-11-21T10:00:00Z","endsAt":"2026-11-21T12:00:00Z"}') -> 'replay', 'true',
    'the same incident again (its nodes in another order) is a replay');
SELECT is((SELECT count(*) FROM allot.transfers WHERE kind = 'credit'), 2::bigint,
    'and credits nothing twice');
SELECT throws_ok($$SELECT pg_temp.declare('n-1', '{"nodes":["lrdn0002"],
    "startsAt":"2026-11-21T10:00:00Z","endsAt":"2026-11-21T12:00:00Z"}')$$, '23505',
    'incident "n-1" was declared with another body (site leonardo, partition "", 2 nodes, 2026-11-21T10:00:00Z to 2026-11-21T12:00:00Z)',
    'the same id with other nodes is refused');
SELECT throws_ok($$SELECT pg_temp.declare('n-x', '{"nodes":["lrdn0003","lrdn0007"],
    "startsAt":"2026-11-21T11:00:00Z","endsAt":"2026-11-21T13:00:00Z"}')$$, '55000',
    'incident "n-x" overlaps incident "n-1" (nodes lrdn0003, 2026-11-21T10:00:00Z to 2026-11-21T12:00:00Z), whose jobs were credited for that time',
    'an incident sharing a node and an hour with n-1 is refused, naming the node');
SELECT throws_ok($$SELECT pg_temp.declare('n-x', '{"startsAt":"2026-11-21T11:00:00Z",
    "endsAt":"2026-11-21T13:00:00Z"}')$$, '55000', NULL,
    'so is one on the whole site at the same time');
SELECT is(pg_temp.declare('n-12', jsonb_build_object('nodes',
    (SELECT jsonb_agg('lrdn' || i) FROM generate_series(1000, 1011) i),
    'startsAt', '2026-11-25T10:00:00Z', 'endsAt', '2026-11-25T12:00:00Z')) #>> '{incident,jobsCredited}',
    '0', 'an incident on twelve nodes no job ran on credits nothing');
SELECT throws_ok($$SELECT pg_temp.declare('n-13', jsonb_build_object('nodes',
    (SELECT jsonb_agg('lrdn' || i) FROM generate_series(999, 1011) i),
    'startsAt', '2026-11-25T11:00:00Z', 'endsAt', '2026-11-25T13:00:00Z'))$$, '55000',
    'incident "n-13" overlaps incident "n-12" (nodes lrdn1000,lrdn1001,lrdn1002,lrdn1003,lrdn1004,lrdn1005,lrdn1006,lrdn1007,lrdn1008,lrdn1009 and 2 more, 2026-11-25T10:00:00Z to 2026-11-25T12:00:00Z), whose jobs were credited for that time',
    'an overlap names the first ten shared nodes and counts the rest');
SELECT is(allot.rpc_show_incident('{"incidentId":"n-1"}', 'CN=admin') -> 'incident' -> 'nodes',
    '["lrdn0002", "lrdn0003"]', 'the incident shows its nodes');

-- n-2: lrdn0004, 10:00 to 12:00, other nodes at the same time: accepted.
--   jN3 11:00 to 13:00: 3600 of 7200 s: 3,600,000
SELECT is(pg_temp.declare('n-2', '{"nodes":["lrdn0004"],"startsAt":"2026-11-21T10:00:00Z",
    "endsAt":"2026-11-21T12:00:00Z"}') #>> '{incident,creditedUnits}', '3600000',
    'n-2 on other nodes at the same time credits jN3 3,600,000');

-- p-1: the partition, 11:30 to 12:30, overlaps n-2 (nodes and a partition may):
--   jN3: 3600 s inside, of which 11:30-12:00 (1800 s) n-2 credited already:
--        1800/7200 * 7,200,000 = 1,800,000
--   jN1 ended 11:30, jN2 11:00, jN4 and jN5 11:00: nothing
SELECT is(pg_temp.declare('p-1', '{"partition":"boost_usr_prod",
    "startsAt":"2026-11-21T11:30:00Z","endsAt":"2026-11-21T12:30:00Z"}') #>> '{incident,creditedUnits}',
    '1800000', 'p-1 credits jN3 only the 1800 s n-2 did not');
SELECT is((SELECT reason FROM allot.transfers WHERE transfer_id = 'incident:p-1:leonardo:jN3'),
    'incident p-1: rack power (job jN3 at leonardo: 3600.000 of its 7200 s in the window, 1800.000 of them credited by an earlier incident)',
    'its credit says what was credited before');
-- n-3: lrdn0004 again, 12:00 to 13:00 (after n-2's window):
--   jN3: 3600 s inside, 12:00-12:30 credited by p-1: 1800/7200 * 7,200,000 = 1,800,000
SELECT is(pg_temp.declare('n-3', '{"nodes":["lrdn0004"],"startsAt":"2026-11-21T12:00:00Z",
    "endsAt":"2026-11-21T13:00:00Z"}') #>> '{incident,creditedUnits}', '1800000',
    'n-3 credits jN3 the 1800 s p-1 did not');
SELECT is(pg_temp.credited('jN3'), 7200000::bigint,
    'three incidents covered all of jN3''s run, some of it twice: credited 7,200,000, what it was charged');
-- p-2: the partition 12:30 to 13:30: jN3's 12:30-13:00 were credited by n-3: nothing.
SELECT is(pg_temp.declare('p-2', '{"partition":"boost_usr_prod",
    "startsAt":"2026-11-21T12:30:00Z","endsAt":"2026-11-21T13:30:00Z"}') #>> '{incident,jobsCredited}',
    '0', 'a fourth incident over time already credited credits nothing');
SELECT is(pg_temp.credited('jN3'), 7200000::bigint, 'jN3 is never credited more than it was charged');

-- The whole site's jobs, by partition: jN4 (no node list) is credited by a partition incident.
SELECT is(pg_temp.declare('p-3', '{"partition":"boost_usr_prod",
    "startsAt":"2026-11-21T10:00:00Z","endsAt":"2026-11-21T10:30:00Z"}') #>> '{incident,creditedUnits}',
    '3600000', 'p-3 10:00-10:30: jN4 and jN5 1800/3600 * 3,600,000 each; jN2''s half hour n-1 credited');
SELECT is(pg_temp.credits('p-3'), 'jN4=1800000 jN5=1800000', 'the jobs without credited time');

SELECT is((SELECT sum(credit_units) FROM allot.incident_credits)::bigint,
    (SELECT sum(amount) FROM allot.transfers WHERE kind = 'credit')::bigint,
    'every credit is one journal transfer');
SELECT is((SELECT refundable FROM allot.accounts a JOIN allot.allocations al ON al.id = a.allocation_id
           WHERE al.transfer_id = 'grant-1'),
    (3600000 + 14400000 + 7200000 + 3600000 + 3600000)
    - (10800000 + 3600000 + 1800000 + 1800000 + 3600000)::bigint,
    'grant-1 can get back what it was charged less what the incidents credited');
SELECT ok(allot.check_ledger() AND allot.check_allocation_life() AND allot.check_account_flows()
          AND allot.check_project_usage(), 'the books agree with the journal');
SELECT is((SELECT count(*) FROM allot.job_nodes n
           LEFT JOIN allot.job_usage j ON j.site = n.site AND j.job_id = n.job_id AND j.step = ''
           WHERE j.job_id IS NULL), 0::bigint,
    'every job_nodes row has its job');

SELECT * FROM finish();
ROLLBACK;
