-- Shared by tests/bench/site_days and tests/bench/events: one site, twelve projects
-- with large grants, a timings table and public.batch(round, kind, n), which sends
-- allot.ingest_batch of n records (kind 'new': jobs r<round>j<i> with 600 s;
-- 'update': the same jobs again with 1200 s) and records its time.
SELECT allot.rpc_create_program('{"name":"ai-factories"}', 'bench');
SELECT allot.rpc_create_organization('{"name":"startups","program":"ai-factories"}', 'bench');
SELECT allot.rpc_create_project(format('{"name":"proj%s","organization":"startups"}',
                                       lpad(i::text, 2, '0'))::jsonb, 'bench')
FROM generate_series(0, 11) i;
SELECT allot.rpc_create_site('{"name":"leonardo"}', 'bench');
SELECT allot.rpc_create_resource('{"site":"leonardo","partition":"boost_usr_prod",
    "accelerator":"A100","gpusPerNode":4,"rule":"BILLING_RULE_GPU_SHARE","coresPerGpu":8,
    "threadsPerCore":1,"memPerGpuMb":"128000","nativeUnit":"core-h",
    "nativeMilliPerGpuHour":"8000","weightPerMille":1000,"weightEffectiveFrom":"2026-01-01"}',
    'bench');
SELECT allot.rpc_create_allocation(jsonb_build_object('project', 'proj' || lpad(i::text, 2, '0'),
    'site', 'leonardo', 'gpuHours', '100000000', 'startsAt', '2026-01-01',
    'endsAt', '2028-01-01', 'transferId', format('grant-%s', i)), 'bench')
FROM generate_series(0, 11) i;
CREATE TABLE public.timings (round int, kind text, ms double precision);
-- One batch of n records from twelve accounts over a day: kind 'new' stores jobs
-- r<round>j<i> with 600 s, 'update' reports them again with 1200 s.
CREATE PROCEDURE public.batch(round int, kind text, n int) LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    res bigint := (SELECT id FROM allot.resources LIMIT 1);
    el bigint := CASE kind WHEN 'new' THEN 600 ELSE 1200 END;
BEGIN
    t0 := clock_timestamp();
    PERFORM count(*) FROM allot.ingest_batch('leonardo', format('%s-%s', round, kind), 'h',
        'bench', (SELECT array_agg(i) FROM generate_series(0, n - 1) i),
        (SELECT array_agg(format('r%sj%s', round, i)) FROM generate_series(0, n - 1) i),
        array_fill(''::text, ARRAY[n]),
        (SELECT array_agg(1795132800 + i * 8) FROM generate_series(0, n - 1) i),
        (SELECT array_agg('proj' || lpad((i % 12)::text, 2, '0')) FROM generate_series(0, n - 1) i),
        array_fill('u'::text, ARRAY[n]), array_fill('boost_usr_prod'::text, ARRAY[n]),
        (SELECT array_agg(1 + i % 4) FROM generate_series(0, n - 1) i),
        (SELECT array_agg(8 * (1 + i % 4)) FROM generate_series(0, n - 1) i),
        array_fill(1000::bigint, ARRAY[n]), array_fill(1, ARRAY[n]), array_fill(el, ARRAY[n]),
        array_fill('RUNNING'::text, ARRAY[n]), array_fill(res, ARRAY[n]),
        (SELECT array_agg((1 + i % 4)::bigint) FROM generate_series(0, n - 1) i),
        (SELECT array_agg((1 + i % 4)::bigint * el * 1000) FROM generate_series(0, n - 1) i),
        (SELECT array_agg((1 + i % 4)::bigint * el * 1000) FROM generate_series(0, n - 1) i),
        (SELECT array_agg((1 + i % 4)::bigint * el * 8000 / 3600) FROM generate_series(0, n - 1) i),
        array_fill(1000, ARRAY[n]), array_fill(NULL::text, ARRAY[n]));
    INSERT INTO public.timings VALUES (round, kind,
        extract(epoch FROM clock_timestamp() - t0) * 1000);
END $$;
