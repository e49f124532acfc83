-- GPU metrics: samples stored once, per-job summaries kept as they arrive, with
-- every figure worked out here. Times are seconds after 2026-11-21T08:00:00Z.
BEGIN;
\set QUIET on
\ir setup.psql
SELECT plan(21);

CREATE FUNCTION pg_temp.s(host text, gpu text, t integer, job text, util float8,
    power float8 DEFAULT NULL, energy_uj bigint DEFAULT NULL, rej text DEFAULT NULL)
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('h', host, 'g', gpu,
        't', (extract(epoch FROM timestamptz '2026-11-21 08:00:00Z') + t)::bigint * 1000,
        'j', job, 'u', util, 'p', power, 'e', energy_uj, 'r', rej)
$$;
-- Sends samples as allotd does: one array per column, in the batch's order.
CREATE FUNCTION pg_temp.send(batch text, samples jsonb, hash text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT allot.ingest_metrics('leonardo', batch, coalesce(hash, md5(samples::text)),
        'CN=collector-leonardo',
        ARRAY(SELECT e ->> 'h' FROM jsonb_array_elements(samples) WITH ORDINALITY x(e, i) ORDER BY i),
        ARRAY(SELECT e ->> 'g' FROM jsonb_array_elements(samples) WITH ORDINALITY x(e, i) ORDER BY i),
        ARRAY(SELECT (e ->> 't')::bigint FROM jsonb_array_elements(samples) WITH ORDINALITY x(e, i) ORDER BY i),
        ARRAY(SELECT e ->> 'j' FROM jsonb_array_elements(samples) WITH ORDINALITY x(e, i) ORDER BY i),
        ARRAY(SELECT (e ->> 'u')::float8 FROM jsonb_array_elements(samples) WITH ORDINALITY x(e, i) ORDER BY i),
        ARRAY(SELECT NULL::bigint FROM jsonb_array_elements(samples) WITH ORDINALITY x(e, i) ORDER BY i),
        ARRAY(SELECT (e ->> 'p')::float8 FROM jsonb_array_elements(samples) WITH ORDINALITY x(e, i) ORDER BY i),
        ARRAY(SELECT (e ->> 'e')::bigint FROM jsonb_array_elements(samples) WITH ORDINALITY x(e, i) ORDER BY i),
        ARRAY(SELECT e ->> 'r' FROM jsonb_array_elements(samples) WITH ORDINALITY x(e, i) ORDER BY i))
$$;
CREATE FUNCTION pg_temp.m(job text) RETURNS allot.gpu_job_metrics LANGUAGE sql AS $$
    SELECT * FROM allot.gpu_job_metrics WHERE site = 'leonardo' AND job_id = job
$$;

-- j1 on an A100 (DCGM: its millijoule counter times 1,000): 5,000,000 mJ at 0 s; at
-- 30 s 11,000,000 (200 W for 30 s: 6,000 J); at 60 s 2,000,000 (a reset: 2,000 J since);
-- at 90 s 8,000,000 (6,000 J). Utilization 0, 0, 50, 100. Sent in two batches: the
-- interval from 30 to 60 s spans them.
SELECT is(pg_temp.send('m1', jsonb_build_array(
        pg_temp.s('n1', '0', 0, 'j1', 0, 190, 5000000 * 1000::bigint),
        pg_temp.s('n1', '0', 30, 'j1', 0, 200, 11000000 * 1000::bigint))),
    '{"batchId":"m1","stored":2,"duplicates":0,"rejected":0,"reasons":[]}'::jsonb,
    'a batch of samples is stored');
SELECT is(pg_temp.send('m2', jsonb_build_array(
        pg_temp.s('n1', '0', 90, 'j1', 100, 200, 8000000 * 1000::bigint),
        pg_temp.s('n1', '0', 60, 'j1', 50, 200, 2000000 * 1000::bigint))) ->> 'stored', '2',
    'a second batch, out of order within it, is stored');
SELECT is((SELECT (samples, interval_ms, zero_utilization_ms, energy_uj, energy_ms)::text FROM pg_temp.m('j1')),
    '(4,90000,30000,14000000000,90000)',
    'j1: 4 samples, 90 s of intervals, 30 s at 0 %, 6,000 + 2,000 (after the reset) + 6,000 J');
SELECT is((SELECT round((utilization_sum / utilization_samples)::numeric, 2) FROM pg_temp.m('j1')),
    37.50, 'j1''s mean utilization: (0 + 0 + 50 + 100) / 4');

-- The same batch again: the first answer; with other samples: refused.
SELECT is(pg_temp.send('m1', jsonb_build_array(
        pg_temp.s('n1', '0', 0, 'j1', 0, 190, 5000000 * 1000::bigint),
        pg_temp.s('n1', '0', 30, 'j1', 0, 200, 11000000 * 1000::bigint))) ->> 'stored', '2',
    'a replayed batch answers as the first time');
SELECT throws_ok($$SELECT pg_temp.send('m1', jsonb_build_array(pg_temp.s('n1', '0', 31, 'j1', 0)))$$,
    '23505', 'metrics batch "m1" of site "leonardo" was already sent with different samples',
    'a batch id with other samples is already_exists');
-- A stored sample in a new batch, and one sent twice in a batch: duplicates.
SELECT is(pg_temp.send('m3', jsonb_build_array(
        pg_temp.s('n1', '0', 0, 'j1', 0, 190, 5000000 * 1000::bigint),
        pg_temp.s('n9', '0', 0, 'j9', 10), pg_temp.s('n9', '0', 0, 'j9', 10),
        pg_temp.s('n9', '1', 0, 'j9', 10, rej => 'utilization_pct 120 is not between 0 and 100'))),
    '{"batchId":"m3","stored":1,"duplicates":2,"rejected":1,
      "reasons":["sample 3: utilization_pct 120 is not between 0 and 100"]}'::jsonb,
    'duplicates, within a batch or of stored samples, and a refusal with its reason');
SELECT is((SELECT (samples, energy_uj)::text FROM pg_temp.m('j1')), '(4,14000000000)',
    'duplicates change no summary');
SELECT is((SELECT count(*) FROM allot.gpu_samples WHERE host = 'n9'), 1::bigint,
    'a refused sample stores nothing');

-- A late sample of j1 (at 45 s, 100 %): stored and counted in the mean, no interval.
SELECT is(pg_temp.send('m4', jsonb_build_array(pg_temp.s('n1', '0', 45, 'j1', 100, 200, 7000000 * 1000::bigint))) ->> 'stored',
    '1', 'a late sample is stored');
SELECT is((SELECT (samples, interval_ms, energy_uj, round((utilization_sum / utilization_samples)::numeric, 2))::text
           FROM pg_temp.m('j1')),
    '(5,90000,14000000000,50.00)', 'and counts in the mean ((0 + 0 + 50 + 100 + 100) / 5), not in intervals');
-- No job label at 120 s, then j1 again at 150 s: neither interval is j1's.
SELECT pg_temp.send('m5', jsonb_build_array(pg_temp.s('n1', '0', 120, '', 0, 100, 9000000 * 1000::bigint),
    pg_temp.s('n1', '0', 150, 'j1', 0, 100, 12000000 * 1000::bigint)));
SELECT is((SELECT (samples, interval_ms, zero_utilization_ms, energy_uj)::text FROM pg_temp.m('j1')),
    '(6,90000,30000,14000000000)', 'an interval from an unlabelled sample belongs to no job');
SELECT is((SELECT count(*) FROM allot.gpu_job_metrics WHERE job_id = ''), 0::bigint,
    'samples with no job label make no summary');
SELECT is((SELECT count(*) FROM allot.gpu_samples WHERE job_id = ''), 1::bigint, 'but are stored');

-- j2 on LUMI-like MI250X dies (the AMD exporter's microjoule counter): die 0
-- 1,000,000,000 uJ at 0 s, 1,500,000,000 at 10 s, 2,000,000,000 at 20 s (500 J twice),
-- utilization 80, 90, 100; die 1, the secondary, has no power and no energy: 70, 70.
SELECT pg_temp.send('m6', jsonb_build_array(
    pg_temp.s('n2', '0', 0, 'j2', 80, 250, 1000000000), pg_temp.s('n2', '1', 0, 'j2', 70),
    pg_temp.s('n2', '0', 10, 'j2', 90, 250, 1500000000), pg_temp.s('n2', '1', 10, 'j2', 70),
    pg_temp.s('n2', '0', 20, 'j2', 100, 250, 2000000000)));
SELECT is((SELECT (samples, interval_ms, energy_uj, energy_ms)::text FROM pg_temp.m('j2')),
    '(5,30000,1000000000,20000)',
    'j2: 1,000 J from die 0''s counter over its 20 s; die 1''s 10 s has no energy');
SELECT is((SELECT round((utilization_sum / utilization_samples)::numeric, 2) FROM pg_temp.m('j2')),
    82.00, 'j2''s mean utilization: (80 + 90 + 100 + 70 + 70) / 5');

-- j3: power only (no counter): 100 W at 0 s, 300 W at 10 s: a mean of 200 W for 10 s.
SELECT pg_temp.send('m7', jsonb_build_array(pg_temp.s('n3', '0', 0, 'j3', 40, 100),
    pg_temp.s('n3', '0', 10, 'j3', 60, 300)));
SELECT is((SELECT (energy_uj, energy_ms)::text FROM pg_temp.m('j3')), '(2000000000,10000)',
    'j3: power integrated over the interval, 2,000 J');
-- A counter on one side only: power is used when both have it.
SELECT pg_temp.send('m8', jsonb_build_array(pg_temp.s('n3', '0', 20, 'j3', 60, 300, 5)));
SELECT is((SELECT energy_uj FROM pg_temp.m('j3')), 5000000000::bigint,
    'without a counter on both sides, the two power readings: 300 W for 10 s more');

-- The jobs list reads the summaries: j1 is a LEONARDO job of acme-llm.
SELECT allot.rpc_ingest('{"site":"leonardo","batchId":"u1","bodyHash":"h","records":[{"index":0,
    "jobId":"j1","step":"","startTime":"2026-11-21T08:00:00Z","account":"acme-llm","user":"bo",
    "partition":"boost_usr_prod","gpus":1,"cpus":8,"memMb":"0","nodes":1,"elapsedS":"150",
    "state":"COMPLETED","bill":{"resource":"leonardo/boost_usr_prod","occupiedGpus":"1",
    "gpuMs":"150000","chargeUnits":"150000","nativeMilli":"333","weightPerMille":1000}}]}',
    'CN=collector-leonardo');
SELECT is(allot.rpc_list_jobs('{"project":"acme-llm"}', 'CN=admin') -> 'jobs' -> 0,
    '{"site":"leonardo","jobId":"j1","user":"bo","account":"acme-llm","partition":"boost_usr_prod",
      "startTime":"2026-11-21T08:00:00Z","state":"COMPLETED","gpus":1,"occupiedGpus":1,
      "elapsedS":150,"chargedUnits":150000,"chargedGpuHours":0.041667,"nativeMilli":333,
      "nativeUnit":"core-h","samples":6,"zeroUtilizationGpuHours":0.008333,
      "meanUtilizationPct":41.67,"energyKwh":0.003889}'::jsonb,
    'a job with its charge, mean utilization ((0+0+50+100+100+0)/6) and energy (14,000 J)');
SELECT throws_ok($$SELECT allot.rpc_list_jobs('{"project":"acme-llm","pageToken":"x"}', 'CN=admin')$$,
    '22023', 'page_token "x" is not one this call gave', 'a bad page token is invalid_argument');
SELECT throws_ok($$SELECT allot.rpc_list_jobs('{"project":"acme-llm","limit":1001}', 'CN=admin')$$,
    '22023', 'limit must be between 1 and 1000, not 1001', 'so is a limit over 1000');

SELECT * FROM finish();
ROLLBACK;
