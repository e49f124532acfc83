-- The set-up of tests/bench/ingest and tests/bench/collect (bench_ingest_setup in
-- common.sh): four sites with the resources and billing rules of scripts/demo,
-- twelve projects with an allocation at every site, far too large to run out, and
-- each site's collector principal.
SELECT allot.rpc_create_program('{"name":"ai-factories"}', 'bench');
SELECT allot.rpc_create_organization('{"name":"startups","program":"ai-factories"}', 'bench');
SELECT allot.rpc_create_project(format('{"name":"proj%s","organization":"startups"}',
                                       lpad(i::text, 2, '0'))::jsonb, 'bench')
FROM generate_series(0, 11) i;
SELECT allot.rpc_create_site(format('{"name":"%s"}', s)::jsonb, 'bench')
FROM unnest(ARRAY['leonardo', 'lumi', 'marenostrum5', 'jupiter']) s;
-- The resources of scripts/demo.
SELECT allot.rpc_create_resource(jsonb_build_object('site', site, 'partition', part,
    'accelerator', accel, 'gpusPerNode', gpn, 'rule', rule, 'coresPerGpu', cpg,
    'threadsPerCore', tpc, 'memPerGpuMb', mpg, 'nativeUnit', unit,
    'nativeMilliPerGpuHour', native, 'weightPerMille', weight,
    'weightEffectiveFrom', '2026-01-01'), 'bench')
FROM (VALUES
    ('leonardo', 'boost_usr_prod', 'A100-64GB', 4, 'BILLING_RULE_GPU_SHARE', 8, 1, 128000, 'core-h', 8000, 1000),
    ('lumi', 'standard-g', 'MI250X-GCD', 8, 'BILLING_RULE_WHOLE_NODE', 7, 1, 0, 'GPU-h', 500, 500),
    ('lumi', 'small-g', 'MI250X-GCD', 8, 'BILLING_RULE_GPU_SHARE', 8, 1, 64000, 'GPU-h', 500, 500),
    ('marenostrum5', 'acc', 'H100-64GB', 4, 'BILLING_RULE_GPU_SHARE', 20, 2, 125000, 'core-h', 20000, 1000),
    ('jupiter', 'booster', 'GH200', 4, 'BILLING_RULE_WHOLE_NODE', 72, 1, 0, 'core-h', 72000, 1000)
) r(site, part, accel, gpn, rule, cpg, tpc, mpg, unit, native, weight);
SELECT allot.rpc_create_allocation(jsonb_build_object('project', 'proj' || lpad(i::text, 2, '0'),
    'site', s, 'gpuHours', '100000000', 'startsAt', '2026-01-01', 'endsAt', '2028-01-01',
    'transferId', format('grant-%s-%s', i, s)), 'bench')
FROM generate_series(0, 11) i, unnest(ARRAY['leonardo', 'lumi', 'marenostrum5', 'jupiter']) s;
SELECT allot.rpc_create_principal(jsonb_build_object('subject', format('CN=collector-%s,O=Allot Dev', s),
    'role', 'ROLE_COLLECTOR', 'scope', s), 'bench')
FROM unnest(ARRAY['leonardo', 'lumi', 'marenostrum5', 'jupiter']) s;
