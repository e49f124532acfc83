-- 0008_completeness: what each site reported, per day, kept current as job_usage is
-- written, so that a day the collector missed shows as a gap (Usage.GetCompleteness),
-- and what each site account was charged in the site's own unit, to compare with the
-- site's budget tool (Usage.GetSiteTotals, `allot reconcile`).
--
-- A job counts on the day (UTC) it started, with all its usage: a job's start never
-- changes from one cumulative record to the next, so a running job re-reported adds
-- to the same day, and the figures of a day stop moving once its jobs have ended.
-- Steps are not counted (they are not billed); a refused record is not in job_usage.
-- The rows are kept by statement-level triggers on job_usage with transition tables:
-- one aggregate of the statement's rows (new minus old) and one upsert per statement,
-- whoever writes job_usage (ingest_records, heartbeats, plain SQL).

CREATE TABLE allot.site_days (
    site text NOT NULL,
    day date NOT NULL,
    account text NOT NULL,      -- the site's account as the job carried it
    resource_id bigint NOT NULL, -- its native unit is the resource's
    jobs bigint NOT NULL DEFAULT 0 CHECK (jobs >= 0),
    gpu_ms bigint NOT NULL DEFAULT 0 CHECK (gpu_ms >= 0),
    charged_units bigint NOT NULL DEFAULT 0 CHECK (charged_units >= 0),
    native_milli bigint NOT NULL DEFAULT 0 CHECK (native_milli >= 0),
    PRIMARY KEY (site, day, account, resource_id)
);

-- The day a job counts on: its start, in UTC (a job stored without a start, which
-- the merge never stores since its allocation is chosen by its start, counts on the
-- day of its record).
CREATE FUNCTION allot.usage_day(start_time timestamptz, updated_at timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE AS $$
    SELECT (coalesce(start_time, updated_at) AT TIME ZONE 'UTC')::date
$$;

-- Adds each row of d (a key and its differences) to site_days. The sites are locked
-- first, in order, by a transaction-level advisory lock per site: two batches of one
-- site would otherwise lock their days' rows in the order of their statements (new
-- jobs, then stored ones) and could deadlock; holding it, no other writer touches
-- the site's rows, so an UPDATE of the keys there, then an INSERT of the others,
-- needs no ON CONFLICT (whose proposed row, a negative difference, would fail the
-- CHECKs). The lock order is therefore: job_usage rows, the site's site_days lock,
-- then liens, allocations, accounts (sql/README.md).
CREATE FUNCTION allot.site_days_add(d allot.site_days[]) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtext('allot.site_days'), hashtext(site))
    FROM (SELECT DISTINCT site FROM unnest(d) ORDER BY site) s;
    UPDATE allot.site_days s
    SET jobs = s.jobs + x.jobs, gpu_ms = s.gpu_ms + x.gpu_ms,
        charged_units = s.charged_units + x.charged_units,
        native_milli = s.native_milli + x.native_milli
    FROM unnest(d) x
    WHERE s.site = x.site AND s.day = x.day AND s.account = x.account
      AND s.resource_id = x.resource_id;
    INSERT INTO allot.site_days
    SELECT x.* FROM unnest(d) x
    WHERE NOT EXISTS (SELECT 1 FROM allot.site_days s
                      WHERE s.site = x.site AND s.day = x.day AND s.account = x.account
                        AND s.resource_id = x.resource_id);
$$;

-- One function for the four triggers: each names its transition tables new_rows
-- and/or old_rows. Each aggregates the statement's job rows once, new minus old,
-- and hands the few keys that moved to site_days_add.
CREATE FUNCTION allot.site_days_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE allot.site_days;
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM allot.site_days_add(array_agg(ROW(site, day, account, resource_id, j, g, u, n)
                                              ::allot.site_days))
        FROM (SELECT site, allot.usage_day(start_time, updated_at) AS day, account,
                  resource_id, count(*) AS j, sum(gpu_ms) AS g, sum(charged_units) AS u,
                  sum(native_milli) AS n
              FROM new_rows WHERE step = '' GROUP BY 1, 2, 3, 4) x;
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM allot.site_days_add(array_agg(ROW(site, day, account, resource_id, j, g, u, n)
                                              ::allot.site_days))
        FROM (SELECT site, day, account, resource_id, sum(j) AS j, sum(g) AS g, sum(u) AS u,
                  sum(n) AS n
              FROM (SELECT site, allot.usage_day(start_time, updated_at) AS day, account,
                        resource_id, 1 AS j, gpu_ms AS g, charged_units AS u, native_milli AS n
                    FROM new_rows WHERE step = ''
                    UNION ALL
                    SELECT site, allot.usage_day(start_time, updated_at), account, resource_id,
                        -1, -gpu_ms, -charged_units, -native_milli
                    FROM old_rows WHERE step = '') y
              GROUP BY 1, 2, 3, 4
              HAVING sum(j) <> 0 OR sum(g) <> 0 OR sum(u) <> 0 OR sum(n) <> 0) x;
    ELSE
        -- DELETE: nothing deletes jobs; should an operator, the days follow.
        PERFORM allot.site_days_add(array_agg(ROW(site, day, account, resource_id, -j, -g, -u,
                                                  -n)::allot.site_days))
        FROM (SELECT site, allot.usage_day(start_time, updated_at) AS day, account,
                  resource_id, count(*) AS j, sum(gpu_ms) AS g, sum(charged_units) AS u,
                  sum(native_milli) AS n
              FROM old_rows WHERE step = '' GROUP BY 1, 2, 3, 4) x;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER site_days_insert AFTER INSERT ON allot.job_usage
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION allot.site_days_apply();
CREATE TRIGGER site_days_update AFTER UPDATE ON allot.job_usage
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION allot.site_days_apply();
CREATE TRIGGER site_days_delete AFTER DELETE ON allot.job_usage
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION allot.site_days_apply();
CREATE TRIGGER site_days_truncate AFTER TRUNCATE ON allot.job_usage
    FOR EACH STATEMENT EXECUTE FUNCTION allot.site_days_apply();

-- The jobs stored before this migration, once.
INSERT INTO allot.site_days (site, day, account, resource_id, jobs, gpu_ms, charged_units,
    native_milli)
SELECT site, allot.usage_day(start_time, updated_at), account, resource_id, count(*),
    sum(gpu_ms), sum(charged_units), sum(native_milli)
FROM allot.job_usage WHERE step = ''
GROUP BY 1, 2, 3, 4;

-- Proves site_days equal to job_usage: raises naming the first row that differs.
-- Reads both whole (like check_ledger): for tests and operators, not for requests.
CREATE FUNCTION allot.check_site_days() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE bad record;
BEGIN
    SELECT * INTO bad FROM (
        SELECT site, day, account, resource_id, jobs, gpu_ms, charged_units, native_milli
        FROM allot.site_days WHERE jobs <> 0 OR gpu_ms <> 0 OR charged_units <> 0
                                   OR native_milli <> 0) d
    FULL JOIN (
        SELECT site, allot.usage_day(start_time, updated_at) AS day, account, resource_id,
            count(*) AS jobs, sum(gpu_ms) AS gpu_ms, sum(charged_units) AS charged_units,
            sum(native_milli) AS native_milli
        FROM allot.job_usage WHERE step = '' GROUP BY 1, 2, 3, 4) j
        USING (site, day, account, resource_id)
    WHERE (d.jobs, d.gpu_ms, d.charged_units, d.native_milli)
          IS DISTINCT FROM (j.jobs, j.gpu_ms, j.charged_units, j.native_milli)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'site_days of site "%", day %, account "%", resource % disagree with job_usage',
            bad.site, bad.day, bad.account, bad.resource_id USING ERRCODE = 'XX000';
    END IF;
    RETURN true;
END $$;

-- ---------------------------------------------------------------- RPC

-- The days a request asks for: until defaults to today (UTC), since to
-- default_days before it (both included); at most 36,600 days, so that a request
-- costs what it asks and nothing more.
CREATE FUNCTION allot.day_range(req jsonb, default_days integer, OUT since date, OUT until date)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    until := CASE WHEN allot.j_text(req, 'until') = '' THEN (now() AT TIME ZONE 'UTC')::date
                  ELSE allot.to_day('until', allot.j_text(req, 'until')) END;
    since := CASE WHEN allot.j_text(req, 'since') = '' THEN until - (default_days - 1)
                  ELSE allot.to_day('since', allot.j_text(req, 'since')) END;
    IF since > until THEN
        RAISE EXCEPTION 'since % is after until %', since, until USING ERRCODE = '22023';
    END IF;
    IF until - since >= 36600 THEN
        RAISE EXCEPTION 'from % to % is % days: ask for at most 36600', since, until,
            until - since + 1 USING ERRCODE = '22023';
    END IF;
END $$;

-- Usage.GetCompleteness: every day of the range, those with nothing reported
-- included (zeros), each with its jobs, GPU-milliseconds, charge units and native
-- amounts per unit. Reads the site's rows of the range by the primary key.
CREATE FUNCTION allot.rpc_get_completeness(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    site_ text := allot.check_site(allot.j_text(req, 'site'));
    r record;
BEGIN
    SELECT * INTO r FROM allot.day_range(req, 30);
    RETURN (
        WITH per_unit AS (
            SELECT d.day, r2.native_unit, sum(d.jobs) AS jobs, sum(d.gpu_ms) AS gpu_ms,
                sum(d.charged_units) AS units, sum(d.native_milli) AS native
            FROM allot.site_days d JOIN allot.resources r2 ON r2.id = d.resource_id
            WHERE d.site = site_ AND d.day BETWEEN r.since AND r.until
            GROUP BY d.day, r2.native_unit),
        per_day AS (
            SELECT day, sum(jobs) AS jobs, sum(gpu_ms) AS gpu_ms, sum(units) AS units,
                jsonb_agg(jsonb_build_object('unit', native_unit, 'milli', native::text)
                          ORDER BY native_unit) FILTER (WHERE jobs <> 0) AS native
            FROM per_unit GROUP BY day)
        SELECT jsonb_build_object('site', site_, 'since', r.since::text, 'until', r.until::text,
            'days', jsonb_agg(jsonb_build_object('day', g.day::date::text,
                'jobs', coalesce(p.jobs, 0)::text, 'gpuMs', coalesce(p.gpu_ms, 0)::text,
                'chargeUnits', coalesce(p.units, 0)::text,
                'native', coalesce(p.native, '[]')) ORDER BY g.day))
        FROM generate_series(r.since, r.until, interval '1 day') g(day)
        LEFT JOIN per_day p ON p.day = g.day::date);
END $$;

-- Usage.GetSiteTotals: per site account and native unit, what the jobs that
-- started in the range were charged, in the site's own unit (thousandths), GPU-
-- milliseconds and charge units, and how many jobs.
CREATE FUNCTION allot.rpc_get_site_totals(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    site_ text := allot.check_site(allot.j_text(req, 'site'));
    r record;
BEGIN
    SELECT * INTO r FROM allot.day_range(req, 3660);
    RETURN (
        SELECT jsonb_build_object('site', site_, 'since', r.since::text, 'until', r.until::text,
            'accounts', coalesce(jsonb_agg(jsonb_build_object('account', t.account,
                'nativeUnit', t.native_unit, 'nativeMilli', t.native::text,
                'gpuMs', t.gpu_ms::text, 'chargeUnits', t.units::text, 'jobs', t.jobs::text)
                ORDER BY t.account, t.native_unit), '[]'))
        FROM (SELECT d.account, r2.native_unit, sum(d.jobs) AS jobs, sum(d.gpu_ms) AS gpu_ms,
                  sum(d.charged_units) AS units, sum(d.native_milli) AS native
              FROM allot.site_days d JOIN allot.resources r2 ON r2.id = d.resource_id
              WHERE d.site = site_ AND d.day BETWEEN r.since AND r.until
              GROUP BY d.account, r2.native_unit
              HAVING sum(d.jobs) <> 0) t);
END $$;
