-- The resources CreateResource accepts and refuses: every case of
-- tests/fixtures/resource_rules.tsv, which tests/unit/billing.c runs against
-- billing_compute too, so that a resource the database stores is one allotd bills.
-- psql reads the file itself (\copy), from sql/tests, where sql/tests/run starts it.
BEGIN;
\set QUIET on
\ir setup.psql

-- One row a line, numbered as in the file; COPY's text format with a delimiter that
-- never occurs keeps each line whole.
CREATE TEMP TABLE rule_lines (n serial, line text NOT NULL);
\copy rule_lines (line) FROM '../../tests/fixtures/resource_rules.tsv' WITH (FORMAT text, DELIMITER E'\x01')

CREATE TEMP VIEW rule_cases AS
SELECT n, cardinality(f) AS nfields, f[1] AS rule, f[2] AS gpus_per_node,
    f[3] AS cores_per_gpu, f[4] AS threads_per_core, f[5] AS mem_per_gpu_mb,
    f[6] AS native_milli_per_gpu_hour, f[7] AS weight_per_mille, f[8] AS verdict,
    format('resource_rules.tsv:%s: %s: %s', n, f[9], f[8]) AS what
FROM (SELECT n, string_to_array(line, E'\t') AS f FROM rule_lines
      WHERE line <> '' AND line NOT LIKE '#%') l;

SELECT plan((SELECT count(*)::int + 3 FROM rule_cases));

SELECT is((SELECT count(*) FROM rule_cases
           WHERE nfields <> 9 OR verdict NOT IN ('accept', 'refuse')
              OR concat_ws(' ', gpus_per_node, cores_per_gpu, threads_per_core, mem_per_gpu_mb,
                           native_milli_per_gpu_hour, weight_per_mille)
                 !~ '^(-?[0-9]+ ){5}-?[0-9]+$'),
    0::bigint, 'every case has 9 fields, decimal numbers and accept or refuse');
SELECT ok((SELECT count(DISTINCT verdict) = 2 FROM rule_cases),
    'the table has cases to accept and cases to refuse');

-- Each case as the daemon would send it: proto3 JSON, int64 fields as strings. A
-- refusal must be invalid_argument (22023), not some other error.
SELECT CASE verdict WHEN 'accept' THEN lives_ok(q, what)
                    ELSE throws_ok(q, '22023', NULL, what) END
FROM (SELECT n, verdict, what,
          format('SELECT allot.rpc_create_resource(%L, %L)', jsonb_build_object(
              'site', 'leonardo', 'partition', 'rules-' || n, 'rule', rule,
              'gpusPerNode', gpus_per_node::bigint, 'coresPerGpu', cores_per_gpu::bigint,
              'threadsPerCore', threads_per_core::bigint, 'memPerGpuMb', mem_per_gpu_mb,
              'nativeUnit', 'h', 'nativeMilliPerGpuHour', native_milli_per_gpu_hour,
              'weightPerMille', weight_per_mille::bigint,
              'weightEffectiveFrom', '2026-01-01'), 'CN=admin') AS q
      FROM rule_cases) c
ORDER BY n;

-- What allotd reads back (allot.site_billing) is the accepted cases, as given, and
-- nothing of the refused: threads_per_core 0 is stored as the 1 it means.
SELECT set_eq(
    $$SELECT r ->> 'partition' AS part, r ->> 'rule' AS rule,
             (r ->> 'gpusPerNode')::bigint AS gpn, (r ->> 'coresPerGpu')::bigint AS cores,
             (r ->> 'threadsPerCore')::bigint AS threads, (r ->> 'memPerGpuMb')::bigint AS mem,
             (r ->> 'nativeMilliPerGpuHour')::bigint AS native,
             (r -> 'weights' -> 0 ->> 'perMille')::bigint AS weight
      FROM jsonb_array_elements(allot.site_billing('leonardo')) r
      WHERE r ->> 'partition' LIKE 'rules-%'$$,
    $$SELECT 'rules-' || n, rule, gpus_per_node::bigint, cores_per_gpu::bigint,
             greatest(threads_per_core::bigint, 1), mem_per_gpu_mb::bigint,
             native_milli_per_gpu_hour::bigint, weight_per_mille::bigint
      FROM rule_cases WHERE verdict = 'accept'$$,
    'allotd reads back each accepted case as given, and no refused one');

SELECT * FROM finish();
ROLLBACK;
