-- Balances: granted, charged, available, in units, hours and the site's unit.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(8);

-- 4 GPUs for an hour on LEONARDO: 14,400,000 units; 32 core-h in LEONARDO's books.
SELECT allot.rpc_ingest('{"site":"leonardo","batchId":"b","bodyHash":"h","records":[{"index":0,
    "jobId":"1","step":"","startTime":"2026-11-21T08:00:00Z","account":"acme-llm",
    "partition":"boost_usr_prod","gpus":4,"cpus":32,"memMb":"0","nodes":1,"elapsedS":"3600",
    "state":"COMPLETED","bill":{"resource":"leonardo/boost_usr_prod","occupiedGpus":"4",
    "gpuMs":"14400000","chargeUnits":"14400000","nativeMilli":"32000","weightPerMille":1000}}]}',
    'CN=collector-leonardo');

CREATE TEMP TABLE b AS SELECT allot.rpc_get_balance('{"project":"acme-llm"}', 't') AS j;
SELECT is((SELECT j -> 'total' ->> 'grantedUnits' FROM b), '360000000', 'granted units');
SELECT is((SELECT j -> 'total' ->> 'chargedUnits' FROM b), '14400000', 'charged units');
SELECT is((SELECT j -> 'total' ->> 'availableUnits' FROM b), '345600000', 'available = granted - charged - pending');
SELECT is((SELECT (j -> 'total' ->> 'availableGpuHours')::numeric FROM b), 96::numeric, 'available GPU-hours');
SELECT is((SELECT j -> 'allocations' -> 0 -> 'balance' ->> 'nativeUnit' FROM b), 'core-h', 'the site''s unit');
SELECT is((SELECT (j -> 'allocations' -> 0 -> 'balance' ->> 'nativeCharged')::numeric FROM b), 32::numeric,
    'charged in core-h, from the job');
SELECT is((SELECT (j -> 'allocations' -> 0 -> 'balance' ->> 'nativeGranted')::numeric FROM b), 800::numeric,
    '100 GPU-hours are 800 core-h at LEONARDO');
SELECT throws_ok($$SELECT allot.rpc_get_balance('{"project":"nope"}', 't')$$, 'P0002',
    'project "nope" does not exist', 'an unknown project');

SELECT * FROM finish();
ROLLBACK;
