-- 0006_gpu_metrics: GPU samples from the sites' exporters (DCGM, the AMD device
-- metrics exporter, rocm-smi), a summary per job kept current by the call that
-- stores them, and a project's jobs listed a page at a time.
--
-- Metrics are not charges. The samples are UNLOGGED: a crash of PostgreSQL empties
-- the table (measured: 37 bytes of WAL a sample instead of 307). What the jobs list
-- reads, the per-job summaries and each GPU's last reading, is logged and committed
-- durably: a crash loses the raw samples, never a summary that was acknowledged.
-- (synchronous_commit off was measured too: at 10,000 samples a batch it bought
-- nothing, so acknowledged batches stay durable.)

-- One GPU's reading at one time. job_id is '' for a sample with no job label.
CREATE UNLOGGED TABLE allot.gpu_samples (
    site text NOT NULL,
    host text NOT NULL,
    gpu text NOT NULL,
    at timestamptz NOT NULL,
    job_id text NOT NULL,
    utilization_pct double precision CHECK (utilization_pct BETWEEN 0 AND 100),
    memory_used_mib bigint CHECK (memory_used_mib >= 0),
    power_w double precision CHECK (power_w >= 0),
    energy_uj bigint CHECK (energy_uj >= 0),
    PRIMARY KEY (site, host, gpu, at)
);

-- Each GPU's latest sample (by time) among those stored: the start of the next
-- interval. Locked by the call that extends it, so that two allotd storing
-- samples of one GPU count each interval once.
CREATE TABLE allot.gpu_state (
    site text NOT NULL,
    host text NOT NULL,
    gpu text NOT NULL,
    at timestamptz,
    job_id text,
    utilization_pct double precision,
    power_w double precision,
    energy_uj bigint,
    PRIMARY KEY (site, host, gpu)
);

-- What a job's samples say, summed as they arrive. An interval is the time between
-- two consecutive samples of one GPU that carry the same job label; its energy is
-- the counter's delta (a decrease is a reset: the new value is the energy since),
-- else the mean of the two power readings times its length, else unknown.
CREATE TABLE allot.gpu_job_metrics (
    site text NOT NULL,
    job_id text NOT NULL,
    samples bigint NOT NULL DEFAULT 0,
    utilization_samples bigint NOT NULL DEFAULT 0,
    utilization_sum double precision NOT NULL DEFAULT 0,
    interval_ms bigint NOT NULL DEFAULT 0,
    zero_utilization_ms bigint NOT NULL DEFAULT 0,
    energy_uj bigint NOT NULL DEFAULT 0,
    energy_ms bigint NOT NULL DEFAULT 0,
    first_at timestamptz,
    last_at timestamptz,
    PRIMARY KEY (site, job_id)
);

-- Metrics batches seen per site, with their answer, for replays.
CREATE TABLE allot.metrics_batches (
    site text NOT NULL REFERENCES allot.sites,
    batch_id text NOT NULL CHECK (length(batch_id) BETWEEN 1 AND 200),
    body_hash text NOT NULL,
    principal text NOT NULL,
    answer jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, batch_id)
);

-- Usage.IngestMetrics: one batch of samples as one array per column (times in
-- milliseconds since the epoch; NULL for a value the exporter did not report;
-- reject_ set for a sample allotd refused). A fixed number of set-based
-- statements, one transaction. Returns the IngestMetricsResponse's JSON; the same
-- batch id again returns the first answer, or already_exists with other samples.
--
-- A sample whose (host, gpu, time) is stored is a DUPLICATE. A stored sample older
-- than its GPU's latest (a late one) counts in its job's samples and mean
-- utilization but makes no interval: the interval it falls in was counted from its
-- neighbours (the energy counter's delta covers it whole). A sample with no job
-- label is stored and moves its GPU on, but belongs to no job; neither does an
-- interval whose two samples name different jobs.
CREATE FUNCTION allot.ingest_metrics(site_ text, batch text, hash text, principal_ text,
    host_ text[], gpu_ text[], at_ms bigint[], job_ text[], util_ double precision[],
    mem_ bigint[], power_ double precision[], energy_ bigint[], reject_ text[])
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    seen allot.metrics_batches;
    ans jsonb;
BEGIN
    PERFORM allot.check_site(site_);
    IF batch = '' OR length(batch) > 200 THEN
        RAISE EXCEPTION 'batch_id is required (1 to 200 characters)' USING ERRCODE = '22023';
    END IF;
    INSERT INTO allot.metrics_batches (site, batch_id, body_hash, principal)
    VALUES (site_, batch, hash, principal_)
    ON CONFLICT (site, batch_id) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO seen FROM allot.metrics_batches b WHERE b.site = site_ AND b.batch_id = batch;
        IF seen.body_hash <> hash THEN
            RAISE EXCEPTION 'metrics batch "%" of site "%" was already sent with different samples',
                batch, site_ USING ERRCODE = '23505';
        END IF;
        RETURN seen.answer;
    END IF;

    IF to_regclass('pg_temp.metrics_stage') IS NULL THEN
        CREATE TEMP TABLE metrics_stage (
            idx integer, host text, gpu text, at timestamptz, job_id text,
            util double precision, mem bigint, power double precision, energy bigint,
            reason text, first boolean, late boolean, stored boolean
        ) ON COMMIT DELETE ROWS;
    ELSE
        DELETE FROM pg_temp.metrics_stage;
    END IF;

    -- The batch's GPUs, locked in (host, gpu) order, before anything reads their state.
    INSERT INTO allot.gpu_state (site, host, gpu)
    SELECT DISTINCT site_, h, g FROM unnest(host_, gpu_, reject_) x(h, g, rej)
    WHERE rej IS NULL ORDER BY 2, 3
    ON CONFLICT (site, host, gpu) DO NOTHING;
    PERFORM 1 FROM allot.gpu_state s
    WHERE s.site = site_ AND (s.host, s.gpu) IN (
        SELECT h, g FROM unnest(host_, gpu_, reject_) x(h, g, rej) WHERE rej IS NULL)
    ORDER BY s.host, s.gpu FOR UPDATE;

    INSERT INTO pg_temp.metrics_stage
    SELECT x.i - 1, x.h, x.g, to_timestamp(x.t / 1000.0), x.j, x.u, x.m, x.p, x.e, x.rej,
        x.rej IS NULL AND row_number() OVER (PARTITION BY x.rej IS NULL, x.h, x.g, x.t
                                            ORDER BY x.i) = 1,
        st.at IS NOT NULL AND to_timestamp(x.t / 1000.0) <= st.at, false
    FROM unnest(host_, gpu_, at_ms, job_, util_, mem_, power_, energy_, reject_)
         WITH ORDINALITY x(h, g, t, j, u, m, p, e, rej, i)
    LEFT JOIN allot.gpu_state st ON x.rej IS NULL AND st.site = site_ AND st.host = x.h
        AND st.gpu = x.g;
    ANALYZE pg_temp.metrics_stage;

    WITH ins AS (
        INSERT INTO allot.gpu_samples (site, host, gpu, at, job_id, utilization_pct,
            memory_used_mib, power_w, energy_uj)
        SELECT site_, s.host, s.gpu, s.at, s.job_id, s.util, s.mem, s.power, s.energy
        FROM pg_temp.metrics_stage s WHERE s.first
        ON CONFLICT (site, host, gpu, at) DO NOTHING
        RETURNING host, gpu, at)
    UPDATE pg_temp.metrics_stage s SET stored = true
    FROM ins WHERE s.first AND s.host = ins.host AND s.gpu = ins.gpu AND s.at = ins.at;

    -- Intervals: the new samples that extend their GPU, in time order, each after the
    -- one before it (the GPU's stored latest for the first).
    WITH seq AS (
        SELECT x.*, lag(x.at) OVER w AS p_at, lag(x.job_id) OVER w AS p_job,
               lag(x.util) OVER w AS p_util, lag(x.power) OVER w AS p_power,
               lag(x.energy) OVER w AS p_energy
        FROM (SELECT s.host, s.gpu, s.at, s.job_id, s.util, s.power, s.energy, false AS seed
              FROM pg_temp.metrics_stage s WHERE s.stored AND NOT s.late
              UNION ALL
              SELECT st.host, st.gpu, st.at, st.job_id, st.utilization_pct, st.power_w,
                     st.energy_uj, true
              FROM allot.gpu_state st
              WHERE st.site = site_ AND st.at IS NOT NULL AND (st.host, st.gpu) IN (
                  SELECT host, gpu FROM pg_temp.metrics_stage WHERE stored AND NOT late)) x
        WINDOW w AS (PARTITION BY x.host, x.gpu ORDER BY x.at)),
    iv AS (
        SELECT q.job_id, q.ms,
               CASE WHEN q.util = 0 AND q.p_util = 0 THEN q.ms ELSE 0 END AS zero_ms,
               CASE WHEN q.energy IS NOT NULL AND q.p_energy IS NOT NULL THEN
                        CASE WHEN q.energy >= q.p_energy THEN q.energy - q.p_energy
                             ELSE q.energy END
                    WHEN q.power IS NOT NULL AND q.p_power IS NOT NULL THEN
                        round((q.power + q.p_power) / 2 * q.ms * 1000)::bigint
               END AS uj
        FROM (SELECT seq.*, (extract(epoch FROM seq.at - seq.p_at) * 1000)::bigint AS ms
              FROM seq WHERE NOT seq.seed AND seq.p_at IS NOT NULL AND seq.job_id <> ''
                AND seq.job_id = seq.p_job) q),
    per_job AS (
        SELECT job_id, sum(n) AS n, sum(un) AS un, sum(us) AS us, sum(ms) AS ms,
               sum(zero_ms) AS zero_ms, sum(uj) AS uj, sum(uj_ms) AS uj_ms,
               min(first_at) AS first_at, max(last_at) AS last_at
        FROM (SELECT s.job_id, 1 AS n, (s.util IS NOT NULL)::int AS un, coalesce(s.util, 0) AS us,
                     0 AS ms, 0 AS zero_ms, 0 AS uj, 0 AS uj_ms, s.at AS first_at, s.at AS last_at
              FROM pg_temp.metrics_stage s WHERE s.stored AND s.job_id <> ''
              UNION ALL
              SELECT iv.job_id, 0, 0, 0, iv.ms, iv.zero_ms, coalesce(iv.uj, 0),
                     CASE WHEN iv.uj IS NOT NULL THEN iv.ms ELSE 0 END, NULL, NULL
              FROM iv) x
        GROUP BY job_id)
    INSERT INTO allot.gpu_job_metrics AS m (site, job_id, samples, utilization_samples,
        utilization_sum, interval_ms, zero_utilization_ms, energy_uj, energy_ms, first_at, last_at)
    SELECT site_, job_id, n, un, us, ms, zero_ms, uj, uj_ms, first_at, last_at
    FROM per_job ORDER BY job_id
    ON CONFLICT (site, job_id) DO UPDATE SET
        samples = m.samples + excluded.samples,
        utilization_samples = m.utilization_samples + excluded.utilization_samples,
        utilization_sum = m.utilization_sum + excluded.utilization_sum,
        interval_ms = m.interval_ms + excluded.interval_ms,
        zero_utilization_ms = m.zero_utilization_ms + excluded.zero_utilization_ms,
        energy_uj = m.energy_uj + excluded.energy_uj,
        energy_ms = m.energy_ms + excluded.energy_ms,
        first_at = least(m.first_at, excluded.first_at),
        last_at = greatest(m.last_at, excluded.last_at);

    -- Each GPU's latest sample, for the next batch's first interval.
    UPDATE allot.gpu_state st SET at = l.at, job_id = l.job_id, utilization_pct = l.util,
        power_w = l.power, energy_uj = l.energy
    FROM (SELECT DISTINCT ON (host, gpu) host, gpu, at, job_id, util, power, energy
          FROM pg_temp.metrics_stage WHERE stored AND NOT late
          ORDER BY host, gpu, at DESC) l
    WHERE st.site = site_ AND st.host = l.host AND st.gpu = l.gpu;

    SELECT jsonb_build_object('batchId', batch,
        'stored', count(*) FILTER (WHERE s.stored),
        'duplicates', count(*) FILTER (WHERE s.reason IS NULL AND NOT s.stored),
        'rejected', count(*) FILTER (WHERE s.reason IS NOT NULL),
        'reasons', coalesce((SELECT jsonb_agg(format('sample %s: %s', r.idx, r.reason) ORDER BY r.idx)
                             FROM (SELECT idx, reason FROM pg_temp.metrics_stage
                                   WHERE reason IS NOT NULL ORDER BY idx LIMIT 10) r), '[]'))
    INTO ans FROM pg_temp.metrics_stage s;
    UPDATE allot.metrics_batches SET answer = ans WHERE site = site_ AND batch_id = batch;
    RETURN ans;
END $$;

-- ---------------------------------------------------------------- jobs

-- A project's jobs a page at a time: per site, a backward scan of this index from
-- the page token, at most limit + 1 rows each. Updates of a running job change no
-- column of it, so they stay HOT.
CREATE INDEX job_usage_project_jobs ON allot.job_usage (project_id, site, start_time, job_id)
    WHERE step = '';

CREATE FUNCTION allot.job_summary_json(j allot.job_usage, m allot.gpu_job_metrics,
    native_unit text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('site', j.site, 'jobId', j.job_id, 'user', j.user_name,
        'account', j.account, 'partition', j.partition, 'startTime', allot.rfc3339(j.start_time),
        'state', j.state, 'gpus', j.gpus, 'occupiedGpus', j.occupied_gpus,
        'elapsedS', j.elapsed_s, 'chargedUnits', j.charged_units,
        'chargedGpuHours', round(j.charged_units / 3600000.0, 6), 'nativeMilli', j.native_milli,
        'nativeUnit', coalesce(native_unit, ''), 'samples', coalesce(m.samples, 0),
        'zeroUtilizationGpuHours', round(coalesce(m.zero_utilization_ms, 0) / 3600000.0, 6))
    || CASE WHEN m.utilization_samples > 0 THEN jsonb_build_object('meanUtilizationPct',
            round((m.utilization_sum / m.utilization_samples)::numeric, 2)) ELSE '{}' END
    || CASE WHEN m.energy_ms > 0 THEN jsonb_build_object('energyKwh',
            round(m.energy_uj / 3.6e12, 6)) ELSE '{}' END
$$;

-- Usage.ListJobs: newest first by (start time, site, job id). The page token is the
-- last job's key ("start in microseconds:site:job id"); the next page starts after it.
CREATE FUNCTION allot.rpc_list_jobs(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    project_ bigint := allot.project_id(allot.j_text(req, 'project'));
    site_ text := allot.j_text(req, 'site');
    since_ timestamptz := CASE WHEN allot.j_text(req, 'since') = '' THEN '-infinity'
                               ELSE allot.to_time('since', allot.j_text(req, 'since')) END;
    lim integer := coalesce(nullif(allot.j_int(req, 'limit'), 0), 100);
    tok text := allot.j_text(req, 'pageToken');
    t_at timestamptz := 'infinity';
    t_site text := '';
    t_job text := '';
    ans jsonb;
BEGIN
    IF lim < 1 OR lim > 1000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 1000, not %', lim USING ERRCODE = '22023';
    END IF;
    IF site_ <> '' THEN
        PERFORM allot.check_site(site_);
    END IF;
    IF tok <> '' THEN
        IF tok !~ '^-?[0-9]{1,19}:[a-z0-9][a-z0-9_.-]*:.+$' THEN
            RAISE EXCEPTION 'page_token "%" is not one this call gave', tok USING ERRCODE = '22023';
        END IF;
        t_at := timestamptz 'epoch' + split_part(tok, ':', 1)::bigint * interval '1 microsecond';
        t_site := split_part(tok, ':', 2);
        t_job := substr(tok, length(split_part(tok, ':', 1)) + length(t_site) + 3);
    END IF;
    WITH page AS (
        SELECT x.j, row_number() OVER (ORDER BY (x.j).start_time DESC, (x.j).site DESC,
                                                (x.j).job_id DESC) AS n
        FROM allot.sites s
        CROSS JOIN LATERAL (
            SELECT j FROM allot.job_usage j
            WHERE j.project_id = project_ AND j.site = s.name AND j.step = ''
              AND j.start_time >= since_ AND j.start_time <= t_at
              AND (j.start_time < t_at OR s.name < t_site OR (s.name = t_site AND j.job_id < t_job))
            ORDER BY j.start_time DESC, j.job_id DESC LIMIT lim + 1) x
        WHERE site_ IN ('', s.name)
        ORDER BY (x.j).start_time DESC, (x.j).site DESC, (x.j).job_id DESC LIMIT lim + 1)
    SELECT jsonb_build_object(
        'jobs', coalesce(jsonb_agg(allot.job_summary_json(p.j, m, r.native_unit) ORDER BY p.n)
                         FILTER (WHERE p.n <= lim), '[]'),
        'nextPageToken', CASE WHEN count(*) > lim THEN max(
            ((extract(epoch FROM (p.j).start_time) * 1000000)::bigint)::text || ':' ||
            (p.j).site || ':' || (p.j).job_id) FILTER (WHERE p.n = lim) ELSE '' END)
    INTO ans
    FROM page p
    LEFT JOIN allot.gpu_job_metrics m ON m.site = (p.j).site AND m.job_id = (p.j).job_id
    LEFT JOIN allot.resources r ON r.id = (p.j).resource_id;
    RETURN ans;
END $$;
