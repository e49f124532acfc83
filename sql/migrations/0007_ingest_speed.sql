-- 0007_ingest_speed: the same merge of a batch (allot.ingest_records), cheaper per
-- record; its semantics are 0003's (sql/README.md).
--
-- Measured on the ingest benchmark's records (auto_explain, one batch of 10,000):
-- the check for new jobs another allotd stored meanwhile was an anti-join that the
-- planner, asked for its first row, made a nested loop over ingest_out (quadratic:
-- 260 of 630 ms); each ANALYZE of the working table sorted its text columns with the
-- database's collation (54 ms); the batch's windows sorted job ids the same way.
-- Groupings by job id now use the "C" collation (equality is the same under every
-- deterministic collation, so the same rows group; no order the result depends on
-- changes); the lock order (job_usage by job id, in the column's collation) is 0003's.
-- And from the sixth batch of a session on, PL/pgSQL's cached generic plans took the
-- batch's arrays for ten elements each (quadratic joins): the merge is planned for its
-- arrays every time.

-- The keys of the stored jobs and of the journal compare bytes: a record's merge
-- probes and inserts job_usage's key (site, job_id, step) and a charge inserts
-- transfers' unique transfer_id, and under a linguistic collation every comparison of
-- those B-tree descents goes through strcoll. Measured with COPY of the benchmark's
-- 200,005 records into tables of these shapes: the job_usage key cost 6.3 us a row
-- under the database's C.UTF-8 and 1.8 us under "C"; transfer_id 7 us and 4.5 us.
-- Equality is the same under both (deterministic collations), so the same keys are
-- unique and found; where a key meets a text of the default collation, the column's
-- "C" is the comparison's (an implicit non-default collation wins), so its index
-- serves. Only the order of these columns changes, and no answer depends on it: the
-- lock order "job_usage by job id" is the column's order, for every locker alike (the
-- merge inserts new rows in that order too). The order in which a campaign's jobs
-- draw its hold is by job id in the database's collation, as before.
-- The indexes are rebuilt; the tables are not rewritten.
ALTER TABLE allot.job_usage ALTER COLUMN site TYPE text COLLATE "C",
    ALTER COLUMN job_id TYPE text COLLATE "C", ALTER COLUMN step TYPE text COLLATE "C";
ALTER TABLE allot.transfers ALTER COLUMN transfer_id TYPE text COLLATE "C";

CREATE OR REPLACE FUNCTION allot.ingest_records(site_ text, principal_ text, idx_ integer[], job_ text[],
    step_ text[], start_s bigint[], account_ text[], user_ text[], partition_ text[],
    gpus_ integer[], cpus_ integer[], mem_ bigint[], nodes_ integer[], elapsed_ bigint[],
    state_ text[], resource_ bigint[], occupied_ bigint[], gpu_ms_ bigint[], units_ bigint[],
    native_ bigint[], weight_ integer[], reject_ text[]) RETURNS void
LANGUAGE plpgsql
-- Every statement planned for this batch's arrays. A cached generic plan (PL/pgSQL's
-- after five calls of a session) knows an array parameter only as ten elements: it
-- joined the batch's records to their stored jobs by a nested loop, a scan of the
-- stored jobs per record (from 60 to 300 ms a batch of 10,000 after the fifth).
SET plan_cache_mode = force_custom_plan
-- And no join of the merge is a nested loop but where one must be (a LATERAL): each
-- table it reads is bounded by the batch on its own (the batch's arrays bound
-- job_usage and liens), and a hash join of two such sets is linear whatever their
-- estimates; a nested loop that a low estimate chose scanned one set per row of
-- the other (updating 10,000 stored jobs would compare 50 million pairs).
SET enable_nestloop = off
AS $$
DECLARE
    consumed bigint := allot.consumed_account();
    known_jobs text[];
    decided bigint;
BEGIN
    PERFORM allot.refresh_statistics('allot.job_usage');
    PERFORM allot.ingest_stage_reset();
    -- The stored jobs of the batch are locked first, in job order, so that
    -- concurrent batches cannot deadlock; the statement after reads them as locked.
    PERFORM 1 FROM allot.job_usage u
    WHERE u.site = site_ AND u.step = '' AND u.job_id = ANY ((SELECT job_)::text[])
    ORDER BY u.job_id FOR UPDATE;
    INSERT INTO pg_temp.ingest_stage (idx, job_id, step, start_time, account, user_name,
        partition, gpus, cpus, mem_mb, nodes, elapsed_s, state, resource_id, occupied, gpu_ms,
        units, native_milli, weight, project_id, win, status, reason, known, allocation_id,
        delta, native_delta)
    SELECT x.i, x.j, x.st, x.s, x.a, x.u, x.p, x.g, x.c, x.m, x.n, x.e, x.state, x.res, x.o,
        x.gm, x.un, x.nm, x.w, x.pid, x.win,
        coalesce(x.status, CASE WHEN x.win AND x.known AND x.e > x.k_elapsed THEN 'CHARGED' END),
        x.reason, x.known, CASE WHEN x.known THEN x.k_alloc END,
        greatest(x.un - x.k_charged, 0), greatest(x.nm - x.k_native, 0)
    FROM (
        SELECT r.i, r.j, r.st, to_timestamp(r.s), r.a, r.u, r.p, r.g, r.c, r.m, r.n, r.e,
            r.state, r.res, r.o, r.gm, r.un, r.nm, r.w, pr.id,
            r.rej IS NULL AND pr.id IS NOT NULL AND row_number() OVER (
                PARTITION BY r.rej IS NULL AND pr.id IS NOT NULL, r.j COLLATE "C",
                    r.st COLLATE "C"
                ORDER BY r.e DESC, r.i) = 1 AS win,
            CASE WHEN r.rej IS NOT NULL OR pr.id IS NULL THEN 'REJECTED' END AS status,
            coalesce(r.rej, CASE WHEN pr.id IS NULL THEN format('unknown account "%s"', r.a) END)
                AS reason,
            r.st = '' AND r.rej IS NULL AND k.job_id IS NOT NULL AS known,
            k.elapsed_s, k.charged_units, k.native_milli, k.allocation_id
        FROM unnest(idx_, job_, step_, start_s, account_, user_, partition_, gpus_, cpus_,
                    mem_, nodes_, elapsed_, state_, resource_, occupied_, gpu_ms_, units_,
                    native_, weight_, reject_)
             AS r(i, j, st, s, a, u, p, g, c, m, n, e, state, res, o, gm, un, nm, w, rej)
        -- The site's account: mapped to a project at that site (0005), else a project
        -- of the same name.
        LEFT JOIN allot.site_accounts sa ON sa.site = site_ AND sa.account = r.a
        LEFT JOIN allot.projects pn ON pn.name = r.a
        CROSS JOIN LATERAL (SELECT coalesce(sa.project_id, pn.id) AS id) pr
        -- The stored job, read after its lock above. "= ANY (job_)" bounds the scan of
        -- job_usage to the batch's jobs (an index scan for the array), whatever plan
        -- joins it. Written "(SELECT job_)::text[]" here and below: the planner then does not
        -- estimate the array element by element (a statistics lookup for each: most of
        -- the planning of a batch of 10,000).
        LEFT JOIN allot.job_usage k ON k.site = site_ AND k.step = '' AND k.job_id = r.j
            AND k.job_id = ANY ((SELECT job_)::text[])) x (i, j, st, s, a, u, p, g, c, m, n, e,
            state, res, o, gm, un, nm, w, pid, win, status, reason, known, k_elapsed,
            k_charged, k_native, k_alloc);
    -- Fresh statistics, so that every join below is planned for the batch's real size
    -- (index lookups per record, never a scan of job_usage per record or the reverse).
    -- The columns the filters and groupings read: the text columns' statistics would
    -- cost four times the rest (collation-aware sorts of every sampled row).
    ANALYZE pg_temp.ingest_stage (idx, win, known, status, project_id, resource_id);

    -- Steps: kept for reports, never billed.
    WITH up AS (
        INSERT INTO allot.job_usage AS u (site, job_id, step, project_id, start_time, account,
            user_name, partition, gpus, cpus, mem_mb, nodes, elapsed_s, state)
        SELECT site_, s.job_id, s.step, s.project_id, s.start_time, s.account, s.user_name,
            s.partition, s.gpus, s.cpus, s.mem_mb, s.nodes, s.elapsed_s, s.state
        FROM pg_temp.ingest_stage s WHERE s.win AND s.step <> ''
        ORDER BY s.job_id COLLATE "C", s.step COLLATE "C"
        ON CONFLICT (site, job_id, step) DO UPDATE
            SET elapsed_s = excluded.elapsed_s, state = excluded.state, updated_at = now()
            WHERE u.elapsed_s < excluded.elapsed_s
        RETURNING u.job_id, u.step)
    INSERT INTO pg_temp.ingest_out (idx, status)
    SELECT s.idx, 'RECORDED' FROM up JOIN pg_temp.ingest_stage s
        ON s.win AND s.job_id = up.job_id AND s.step = up.step;

    -- New jobs: each chooses its allocation among its project's candidates for the
    -- resource (worked out once per project and resource), and is stored with its
    -- whole usage charged. Another allotd may store the same job at the same time:
    -- then ON CONFLICT leaves it to the rare path below.
    WITH need AS MATERIALIZED (
        SELECT DISTINCT project_id, resource_id FROM pg_temp.ingest_stage
        WHERE win AND step = '' AND NOT known),
    cand AS MATERIALIZED (
        SELECT n.project_id, n.resource_id, c.* FROM need n
        CROSS JOIN LATERAL allot.allocation_candidates(n.project_id, n.resource_id) c),
    chosen AS MATERIALIZED (
        SELECT DISTINCT ON (s.idx) s.idx, c.id AS alloc
        FROM pg_temp.ingest_stage s
        LEFT JOIN cand c ON c.project_id = s.project_id AND c.resource_id = s.resource_id
            AND c.starts_at <= s.start_time AND s.start_time < c.ends_at
        WHERE s.win AND s.step = '' AND NOT s.known
        ORDER BY s.idx, c.rank),
    ins AS (
        INSERT INTO allot.job_usage (site, job_id, step, project_id, resource_id, allocation_id,
            start_time, account, user_name, partition, gpus, cpus, mem_mb, nodes, elapsed_s,
            state, occupied_gpus, gpu_ms, weight_per_mille, charged_units, native_milli)
        SELECT site_, s.job_id, '', s.project_id, s.resource_id, c.alloc, s.start_time,
            s.account, s.user_name, s.partition, s.gpus, s.cpus, s.mem_mb, s.nodes, s.elapsed_s,
            s.state, s.occupied, s.gpu_ms, s.weight, s.units, s.native_milli
        FROM chosen c JOIN pg_temp.ingest_stage s ON s.idx = c.idx
        WHERE c.alloc IS NOT NULL
        ORDER BY s.job_id COLLATE "C"
        ON CONFLICT (site, job_id, step) DO NOTHING
        RETURNING job_id, allocation_id, charged_units, native_milli)
    INSERT INTO pg_temp.ingest_out (idx, status, allocation_id, delta, native_delta, reason)
    SELECT s.idx, 'CHARGED', ins.allocation_id, ins.charged_units, ins.native_milli, NULL
    FROM ins JOIN pg_temp.ingest_stage s ON s.win AND s.step = '' AND s.job_id = ins.job_id
    UNION ALL
    SELECT s.idx, 'REJECTED', NULL, NULL, NULL,
        format('no allocation of project "%s" covers %s/%s at %s', s.account, site_, s.partition,
               allot.rfc3339(s.start_time))
    FROM chosen c JOIN pg_temp.ingest_stage s ON s.idx = c.idx
    WHERE c.alloc IS NULL;
    GET DIAGNOSTICS decided = ROW_COUNT;
    ANALYZE pg_temp.ingest_out (idx, status);

    -- Rare: a new job stored by another allotd meanwhile. Lock it, read it, and
    -- charge the difference as for a stored job. Every other new job has one row in
    -- ingest_out (CHARGED or REJECTED; steps are RECORDED), so counting tells: no
    -- anti-join, which a plan for its first row made a scan of ingest_out per job.
    IF (SELECT count(*) FROM pg_temp.ingest_stage s
        WHERE s.win AND s.step = '' AND NOT s.known) > decided THEN
        PERFORM 1 FROM allot.job_usage u JOIN pg_temp.ingest_stage s
            ON u.site = site_ AND u.job_id = s.job_id AND u.step = '' AND u.job_id = ANY ((SELECT job_)::text[])
        WHERE s.win AND s.step = '' AND NOT s.known
          AND NOT EXISTS (SELECT 1 FROM pg_temp.ingest_out o WHERE o.idx = s.idx)
        ORDER BY u.job_id FOR UPDATE OF u;
        UPDATE pg_temp.ingest_stage s SET known = true, allocation_id = u.allocation_id,
            status = CASE WHEN s.elapsed_s > u.elapsed_s THEN 'CHARGED' END,
            delta = greatest(s.units - u.charged_units, 0),
            native_delta = greatest(s.native_milli - u.native_milli, 0)
        FROM allot.job_usage u
        WHERE s.win AND s.step = '' AND NOT s.known
          AND NOT EXISTS (SELECT 1 FROM pg_temp.ingest_out o WHERE o.idx = s.idx)
          AND u.site = site_ AND u.job_id = s.job_id AND u.step = '' AND u.job_id = ANY ((SELECT job_)::text[]);
    END IF;

    -- Stored jobs: the latest record's usage, and what it adds to the charge. (Only
    -- their ids bound the scan: a batch of new jobs updates nothing and reads nothing.)
    SELECT array_agg(job_id) INTO known_jobs FROM pg_temp.ingest_stage
    WHERE known AND status = 'CHARGED';
    IF known_jobs IS NOT NULL THEN
        UPDATE allot.job_usage u SET
            elapsed_s = s.elapsed_s, state = s.state, user_name = s.user_name,
            partition = s.partition, gpus = s.gpus, cpus = s.cpus, mem_mb = s.mem_mb,
            nodes = s.nodes, occupied_gpus = s.occupied, gpu_ms = s.gpu_ms,
            weight_per_mille = s.weight, charged_units = u.charged_units + s.delta,
            native_milli = u.native_milli + s.native_delta, updated_at = now()
        FROM pg_temp.ingest_stage s
        WHERE s.known AND s.status = 'CHARGED'
          AND u.site = site_ AND u.job_id = s.job_id AND u.step = ''
          AND u.job_id = ANY ((SELECT known_jobs)::text[]);
    END IF;

    INSERT INTO pg_temp.ingest_charge (idx, job_id, elapsed_s, allocation_id, delta, native_delta)
    SELECT idx, job_id, elapsed_s, allocation_id, delta, native_delta FROM pg_temp.ingest_stage
    WHERE known AND status = 'CHARGED'
    UNION ALL
    SELECT o.idx, s.job_id, s.elapsed_s, o.allocation_id, o.delta, o.native_delta
    FROM pg_temp.ingest_out o JOIN pg_temp.ingest_stage s ON s.idx = o.idx
    WHERE o.status = 'CHARGED';
    ANALYZE pg_temp.ingest_charge (idx, allocation_id, delta, native_delta);

    -- Liens: a job's charge draws its campaign's hold first, then its own.
    IF EXISTS (SELECT 1 FROM allot.liens l WHERE l.status = 'active' AND l.kind = 'job'
               AND l.site = site_ AND l.job_id = ANY ((SELECT job_)::text[])
               AND l.job_id IN (SELECT job_id FROM pg_temp.ingest_charge WHERE delta > 0)) THEN
        PERFORM 1 FROM allot.liens l
        WHERE l.status = 'active' AND l.id IN (
            SELECT j.id FROM allot.liens j
            WHERE j.status = 'active' AND j.kind = 'job' AND j.site = site_
              AND j.job_id = ANY ((SELECT job_)::text[])
              AND j.job_id IN (SELECT job_id FROM pg_temp.ingest_charge WHERE delta > 0)
            UNION
            SELECT j.campaign FROM allot.liens j
            WHERE j.status = 'active' AND j.kind = 'job' AND j.site = site_
              AND j.job_id = ANY ((SELECT job_)::text[]) AND j.campaign IS NOT NULL
              AND j.job_id IN (SELECT job_id FROM pg_temp.ingest_charge WHERE delta > 0))
        ORDER BY l.id FOR UPDATE;
        UPDATE pg_temp.ingest_charge s SET own_lien = l.id, camp_lien = c.id
        FROM allot.liens l LEFT JOIN allot.liens c ON c.id = l.campaign AND c.status = 'active'
        WHERE s.delta > 0 AND l.status = 'active' AND l.kind = 'job' AND l.job_id = ANY ((SELECT job_)::text[])
          AND l.site = site_ AND l.job_id = s.job_id AND l.allocation_id = s.allocation_id;
        UPDATE pg_temp.ingest_charge s SET draw_camp = x.draw
        FROM (SELECT s2.idx, greatest(0, least(s2.delta, c.held - coalesce(sum(s2.delta) OVER (
                  PARTITION BY s2.camp_lien ORDER BY s2.job_id
                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))) AS draw
              FROM pg_temp.ingest_charge s2 JOIN allot.liens c ON c.id = s2.camp_lien
              WHERE s2.camp_lien IS NOT NULL) x
        WHERE s.idx = x.idx;
        UPDATE pg_temp.ingest_charge s SET draw_own = least(s.delta - coalesce(s.draw_camp, 0), l.held)
        FROM allot.liens l WHERE l.id = s.own_lien;
        UPDATE allot.liens l SET held = l.held - d.draw, drawn = l.drawn + d.draw
        FROM (SELECT lien, sum(draw) AS draw
              FROM (SELECT own_lien AS lien, draw_own AS draw FROM pg_temp.ingest_charge
                    WHERE draw_own > 0
                    UNION ALL
                    SELECT camp_lien, draw_camp FROM pg_temp.ingest_charge WHERE draw_camp > 0) x
              GROUP BY lien) d
        WHERE l.id = d.lien;
    END IF;

    -- What the site's own books say the allocations were charged.
    PERFORM 1 FROM allot.allocations WHERE id IN (
        SELECT allocation_id FROM pg_temp.ingest_charge WHERE native_delta > 0)
    ORDER BY id FOR UPDATE;
    UPDATE allot.allocations a SET native_charged_milli = a.native_charged_milli + d.n
    FROM (SELECT allocation_id, sum(native_delta) AS n FROM pg_temp.ingest_charge
          WHERE native_delta > 0 GROUP BY allocation_id) d
    WHERE a.id = d.allocation_id;

    -- The journal: the part of each charge its liens held is posted from them, the
    -- rest charged. One statement, so each account is updated once.
    INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id,
        amount, body_hash, principal, reason, lien)
    SELECT t.tid || site_ || ':' || s.job_id || ':' || s.elapsed_s, t.kind, ac.id, consumed,
        t.amount, md5(site_ || '|' || s.job_id || '|' || s.elapsed_s || '|' || t.amount),
        principal_, 'job ' || s.job_id || ' at ' || site_ || ', ' || s.elapsed_s || ' s', t.lien
    FROM pg_temp.ingest_charge s
    JOIN allot.accounts ac ON ac.allocation_id = s.allocation_id
    CROSS JOIN LATERAL (VALUES
        ('post:', 'post', coalesce(s.draw_own, 0), s.own_lien),
        ('post-campaign:', 'post', coalesce(s.draw_camp, 0), s.camp_lien),
        ('charge:', 'charge', s.delta - coalesce(s.draw_own, 0) - coalesce(s.draw_camp, 0), NULL))
        AS t(tid, kind, amount, lien)
    WHERE t.amount > 0;

    -- The answer. A job's other records answer with its latest's allocation, or
    -- share its refusal when it found none.
    INSERT INTO pg_temp.ingest_result (idx, status, units, allocation_id, reason)
    SELECT r.idx,
        CASE WHEN r.status IS NOT NULL THEN r.status
             WHEN r.refused THEN 'REJECTED' ELSE 'DUPLICATE' END,
        CASE WHEN r.status = 'CHARGED' THEN r.delta ELSE 0 END,
        CASE WHEN r.step = '' AND r.status IS DISTINCT FROM 'REJECTED' AND NOT r.refused
             THEN coalesce(r.job_alloc, 0) ELSE 0 END,
        coalesce(r.reason, CASE WHEN r.refused THEN r.job_reason END, '')
    FROM (SELECT s.idx, s.step, coalesce(o.status, s.status) AS status,
                 coalesce(o.delta, s.delta) AS delta, coalesce(o.reason, s.reason) AS reason,
                 coalesce(bool_or(s.win AND o.status = 'REJECTED') OVER w, false) AS refused,
                 max(o.reason) FILTER (WHERE s.win) OVER w AS job_reason,
                 max(coalesce(o.allocation_id, s.allocation_id)) OVER w AS job_alloc
          FROM pg_temp.ingest_stage s LEFT JOIN pg_temp.ingest_out o ON o.idx = s.idx
          WINDOW w AS (PARTITION BY s.job_id COLLATE "C", s.step COLLATE "C")) r;
END $$;
