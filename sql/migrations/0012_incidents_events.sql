-- 0012_incidents_events: bulk incident credits and a project's threshold events.
--
-- An incident (a site, or one partition of it, down or degraded for a window of
-- time) credits back every job that ran there in the window for the part of its
-- run inside it: one transfer of kind 'credit' per job, from `consumed` to the
-- job's allocation, all made by one statement. A project crossing a configured
-- share of its grant (50, 80, 100 % by default, allot.event_thresholds) gets one
-- event per threshold, detected per journal statement, not per record.
-- sql/README.md ("Incidents and events (0012)") is the contract.
--
-- Lock order (sql/README.md): an incident's site lock comes first (before any job
-- row); allot.project_usage rows come last, after accounts: only the journal's
-- trigger below takes them, at the end of a statement that posted units.

-- ---------------------------------------------------------------- transfer kinds

-- Every kind of the allocation's life (issue 7). 0011 sets the same list; the
-- constraint is found by its content, whatever an earlier migration named it.
DO $$
DECLARE c text;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'allot.transfers'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%''grant''%'
    LOOP
        EXECUTE format('ALTER TABLE allot.transfers DROP CONSTRAINT %I', c);
    END LOOP;
END $$;
ALTER TABLE allot.transfers ADD CONSTRAINT transfers_kind_check
    CHECK (kind IN ('grant', 'charge', 'reserve', 'post', 'void', 'move', 'expire', 'adjust',
                    'deposit', 'refund', 'credit'));

-- ---------------------------------------------------------------- incidents

-- A declared incident: the jobs of site (of partition, '' for the whole site) that
-- ran between starts_at and ends_at were credited for that part of their run.
CREATE TABLE allot.incidents (
    incident_id text COLLATE "C" PRIMARY KEY
        CHECK (incident_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'),
    site text NOT NULL REFERENCES allot.sites,
    partition text NOT NULL DEFAULT '',
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    principal text NOT NULL,
    jobs_credited integer NOT NULL DEFAULT 0,
    credited_units bigint NOT NULL DEFAULT 0,
    declared_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX incidents_site ON allot.incidents (site, starts_at);

-- One row per job an incident credited, with the figures the credit came from.
CREATE TABLE allot.incident_credits (
    incident_id text COLLATE "C" NOT NULL REFERENCES allot.incidents,
    site text NOT NULL,
    job_id text COLLATE "C" NOT NULL,
    project_id bigint NOT NULL REFERENCES allot.projects,
    allocation_id bigint NOT NULL REFERENCES allot.allocations,
    start_time timestamptz NOT NULL,
    elapsed_s bigint NOT NULL,
    charged_units bigint NOT NULL,
    overlap_us bigint NOT NULL CHECK (overlap_us > 0),
    credit_units bigint NOT NULL CHECK (credit_units > 0),
    transfer_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (incident_id, site, job_id)
);

CREATE FUNCTION allot.incident_json(i allot.incidents) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'incidentId', i.incident_id, 'site', i.site, 'partition', i.partition,
        'startsAt', allot.rfc3339(i.starts_at), 'endsAt', allot.rfc3339(i.ends_at),
        'reason', i.reason, 'principal', i.principal,
        'declaredAt', allot.rfc3339(i.declared_at), 'jobsCredited', i.jobs_credited,
        'creditedUnits', i.credited_units::text,
        'creditedGpuHours', round(i.credited_units / 3600000.0, 6))
$$;

-- Declares an incident and credits its jobs, or answers the incident declared
-- before under the same id and body (nothing credited again); another body under
-- a used id is 23505. The window must have ended, and may not overlap another
-- incident of the same site and partition (or of the whole site): 55000.
--
-- A job is the allocation record (step '') of the site (and partition, by its
-- resource) whose run so far, [start, start + elapsed), overlaps the window. Its
-- credit is floor(charged_units * overlap / elapsed), overlap and elapsed in
-- microseconds: the share of what it was charged that the window holds, rounded
-- down, never more than charged (overlap <= elapsed). A job still running is
-- credited for what its latest record says it ran inside the window; what it
-- reports later is charged as usual and never credited by this incident.
CREATE FUNCTION allot.rpc_declare_incident(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    iid text := allot.j_text(req, 'incidentId');
    site_ text := allot.j_text(req, 'site');
    part text := allot.j_text(req, 'partition');
    reason_ text := btrim(allot.j_text(req, 'reason'));
    starts timestamptz;
    ends timestamptz;
    res bigint;
    inc allot.incidents;
    other allot.incidents;
BEGIN
    IF iid = '' THEN
        RAISE EXCEPTION 'incidentId is required' USING ERRCODE = '22023';
    END IF;
    IF iid !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' THEN
        RAISE EXCEPTION 'incidentId "%" is not valid: use 1 to 64 letters, digits, "_", ".", ":" or "-", starting with a letter or digit',
            iid USING ERRCODE = '22023';
    END IF;
    IF site_ = '' THEN
        RAISE EXCEPTION 'site is required' USING ERRCODE = '22023';
    END IF;
    PERFORM allot.check_site(site_);
    IF part <> '' THEN
        res := allot.resource_id(site_ || '/' || part);
    END IF;
    starts := allot.to_time('startsAt', allot.j_text(req, 'startsAt'));
    ends := allot.to_time('endsAt', allot.j_text(req, 'endsAt'));
    IF ends <= starts THEN
        RAISE EXCEPTION 'endsAt % is not after startsAt %', allot.rfc3339(ends),
            allot.rfc3339(starts) USING ERRCODE = '22023';
    END IF;
    IF ends > now() THEN
        RAISE EXCEPTION 'endsAt % is in the future: declare an incident once its window has ended',
            allot.rfc3339(ends) USING ERRCODE = '22023';
    END IF;
    IF reason_ = '' THEN
        RAISE EXCEPTION 'reason is required' USING ERRCODE = '22023';
    END IF;
    IF length(reason_) > 500 THEN
        RAISE EXCEPTION 'reason is longer than 500 characters' USING ERRCODE = '22023';
    END IF;

    -- One declaration per site at a time, so that two overlapping ones cannot both
    -- pass the check below.
    PERFORM pg_advisory_xact_lock(hashtext('allot.incidents'), hashtext(site_));
    SELECT * INTO other FROM allot.incidents WHERE incident_id = iid;
    IF FOUND THEN
        IF (other.site, other.partition, other.starts_at, other.ends_at, other.reason)
           IS DISTINCT FROM (site_, part, starts, ends, reason_) THEN
            RAISE EXCEPTION 'incident "%" was declared with another body (site %, partition "%", % to %)',
                iid, other.site, other.partition, allot.rfc3339(other.starts_at),
                allot.rfc3339(other.ends_at) USING ERRCODE = '23505';
        END IF;
        RETURN jsonb_build_object('incident', allot.incident_json(other), 'replay', true);
    END IF;
    SELECT * INTO other FROM allot.incidents i
    WHERE i.site = site_ AND (i.partition = part OR i.partition = '' OR part = '')
      AND i.starts_at < ends AND i.ends_at > starts
    ORDER BY i.starts_at LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'incident "%" overlaps incident "%" (partition "%", % to %), whose jobs were credited for that time',
            iid, other.incident_id, other.partition, allot.rfc3339(other.starts_at),
            allot.rfc3339(other.ends_at) USING ERRCODE = '55000';
    END IF;
    INSERT INTO allot.incidents (incident_id, site, partition, starts_at, ends_at, reason, principal)
    VALUES (iid, site_, part, starts, ends, reason_, principal);

    -- The credits: one statement for every job. Rows locked in job order (the lock
    -- order's first), the journal's trigger then locks the accounts.
    WITH jobs AS (
        SELECT j.job_id, j.project_id, j.allocation_id, j.start_time, j.elapsed_s,
               j.charged_units,
               (extract(epoch FROM least(j.start_time + j.elapsed_s * interval '1 second', ends)
                                   - greatest(j.start_time, starts)) * 1000000)::bigint AS overlap_us
        FROM allot.job_usage j
        WHERE j.site = site_ AND j.step = '' AND (res IS NULL OR j.resource_id = res)
          AND j.start_time < ends AND j.start_time + j.elapsed_s * interval '1 second' > starts
          AND j.charged_units > 0 AND j.elapsed_s > 0
        ORDER BY j.job_id
        FOR UPDATE),
    c AS (
        SELECT jobs.*, 'incident:' || iid || ':' || site_ || ':' || jobs.job_id AS tid,
               floor(jobs.charged_units::numeric * jobs.overlap_us
                     / (jobs.elapsed_s * 1000000::numeric))::bigint AS credit
        FROM jobs),
    t AS (
        INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id,
            amount, body_hash, principal, reason)
        SELECT c.tid, 'credit', allot.consumed_account(), ac.id, c.credit,
            md5(c.tid || '|' || c.credit), principal,
            format('incident %s: %s (job %s at %s: %s of its %s s in the window)', iid, reason_,
                   c.job_id, site_, round(c.overlap_us / 1000000.0, 3), c.elapsed_s)
        FROM c JOIN allot.accounts ac ON ac.allocation_id = c.allocation_id
        WHERE c.credit > 0)
    INSERT INTO allot.incident_credits (incident_id, site, job_id, project_id, allocation_id,
        start_time, elapsed_s, charged_units, overlap_us, credit_units, transfer_id)
    SELECT iid, site_, c.job_id, c.project_id, c.allocation_id, c.start_time, c.elapsed_s,
        c.charged_units, c.overlap_us, c.credit, c.tid
    FROM c WHERE c.credit > 0;

    UPDATE allot.incidents i SET jobs_credited = s.n, credited_units = s.units
    FROM (SELECT count(*)::integer AS n, coalesce(sum(credit_units), 0)::bigint AS units
          FROM allot.incident_credits WHERE incident_id = iid) s
    WHERE i.incident_id = iid
    RETURNING i.* INTO inc;
    RETURN jsonb_build_object('incident', allot.incident_json(inc), 'replay', false);
END $$;

CREATE FUNCTION allot.rpc_list_incidents(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    site_ text := allot.j_text(req, 'site');
BEGIN
    IF site_ <> '' THEN
        PERFORM allot.check_site(site_);
    END IF;
    RETURN jsonb_build_object('incidents', coalesce((
        SELECT jsonb_agg(allot.incident_json(i) ORDER BY i.declared_at DESC, i.incident_id)
        FROM allot.incidents i WHERE site_ = '' OR i.site = site_), '[]'));
END $$;

CREATE FUNCTION allot.rpc_show_incident(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    iid text := allot.j_text(req, 'incidentId');
    inc allot.incidents;
BEGIN
    SELECT * INTO inc FROM allot.incidents WHERE incident_id = iid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'incident "%" does not exist', iid USING ERRCODE = 'P0002';
    END IF;
    RETURN jsonb_build_object('incident', allot.incident_json(inc), 'credits', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                   'site', c.site, 'jobId', c.job_id, 'project', p.name,
                   'allocationId', c.allocation_id, 'startTime', allot.rfc3339(c.start_time),
                   'elapsedS', c.elapsed_s::text, 'overlapS', round(c.overlap_us / 1000000.0, 6),
                   'chargedUnits', c.charged_units::text, 'creditUnits', c.credit_units::text,
                   'creditGpuHours', round(c.credit_units / 3600000.0, 6),
                   'transferId', c.transfer_id)
                   ORDER BY c.job_id)
        FROM allot.incident_credits c JOIN allot.projects p ON p.id = c.project_id
        WHERE c.incident_id = iid), '[]'));
END $$;

-- ---------------------------------------------------------------- events

-- The shares of a project's grant whose crossing is an event, in percent. The
-- operator's to change (INSERT or DELETE a row); a threshold added later fires at
-- the project's next charge when the project is already past it.
CREATE TABLE allot.event_thresholds (
    percent integer PRIMARY KEY CHECK (percent BETWEEN 1 AND 1000)
);
INSERT INTO allot.event_thresholds (percent) VALUES (50), (80), (100);

-- Each project's grant and use, from the journal, kept by the trigger below:
-- used is what its allocations sent to `consumed` less what came back from it
-- (charges and posts less credits and refunds); granted is what they received
-- from every other account less what they sent to other accounts, expiry
-- excepted (grants, deposits, moves, adjustments). Pending holds count in neither.
CREATE TABLE allot.project_usage (
    project_id bigint PRIMARY KEY REFERENCES allot.projects,
    granted_units bigint NOT NULL DEFAULT 0,
    used_units bigint NOT NULL DEFAULT 0
);

-- What posted units do to the grant and the use of the project of one of their
-- allocation accounts: sign is +1 for the credited side, -1 for the debited side;
-- other_consumed tells units whose other account is `consumed`, expire units of
-- kind 'expire'.
CREATE FUNCTION allot.usage_granted(posted numeric, sign integer, other_consumed boolean,
    expire boolean) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN other_consumed OR expire THEN 0 ELSE sign * posted END
$$;
CREATE FUNCTION allot.usage_used(posted numeric, sign integer, other_consumed boolean)
RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN other_consumed THEN -sign * posted ELSE 0 END
$$;

-- The same figures recomputed from the whole journal: for the migration and
-- allot.check_project_usage(), never for a request.
CREATE VIEW allot.project_usage_journal AS
SELECT al.project_id,
       sum(allot.usage_granted(t.posted, t.sign, t.other_consumed, t.expire))::bigint
           AS granted_units,
       sum(allot.usage_used(t.posted, t.sign, t.other_consumed))::bigint AS used_units
FROM (SELECT debit_account_id AS account, -1 AS sign,
             credit_account_id = allot.consumed_account() AS other_consumed,
             kind = 'expire' AS expire, allot.transfer_posted(kind, amount) AS posted
      FROM allot.transfers
      UNION ALL
      SELECT credit_account_id, 1, debit_account_id = allot.consumed_account(),
             kind = 'expire', allot.transfer_posted(kind, amount)
      FROM allot.transfers) t
JOIN allot.accounts a ON a.id = t.account AND a.kind = 'allocation'
JOIN allot.allocations al ON al.id = a.allocation_id
WHERE t.posted <> 0
GROUP BY al.project_id;

INSERT INTO allot.project_usage (project_id, granted_units, used_units)
SELECT project_id, granted_units, used_units FROM allot.project_usage_journal;

-- An event of a project. kind 'threshold': its use crossed threshold_pct of its
-- grant (used_units and granted_units as they stood then). Later kinds (a refused
-- reservation, a STOP) carry their figures in detail and leave threshold_pct NULL.
-- announced_at: when an allotd logged and counted it (each event by one allotd).
CREATE TABLE allot.events (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('threshold')),
    project_id bigint NOT NULL REFERENCES allot.projects,
    threshold_pct integer,
    used_units bigint,
    granted_units bigint,
    detail jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    announced_at timestamptz,
    CHECK ((kind = 'threshold') = (threshold_pct IS NOT NULL))
);
-- Once per project and threshold, ever: a refund or deposit that brings the use
-- back under a threshold does not arm it again.
CREATE UNIQUE INDEX events_threshold_once ON allot.events (project_id, threshold_pct)
    WHERE kind = 'threshold';
CREATE INDEX events_project ON allot.events (project_id, id);
CREATE INDEX events_unannounced ON allot.events (id) WHERE announced_at IS NULL;

-- Applies a journal statement's posted rows to their projects' figures (each
-- project's row updated once, in project order) and records the thresholds they
-- crossed, in threshold order. A statement that only holds or voids (reserve,
-- void) touches nothing here.
CREATE FUNCTION allot.project_usage_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    consumed bigint := allot.consumed_account();
BEGIN
    -- Summed per account side first (a statement names few accounts), then per
    -- project: the statement's rows are read twice and hashed, never sorted.
    WITH s AS (
        SELECT debit_account_id AS account, -1 AS sign, credit_account_id = consumed AS oc,
               kind = 'expire' AS ex, sum(allot.transfer_posted(kind, amount)) AS posted
        FROM added GROUP BY 1, 3, 4
        UNION ALL
        SELECT credit_account_id, 1, debit_account_id = consumed, kind = 'expire',
               sum(allot.transfer_posted(kind, amount))
        FROM added GROUP BY 1, 3, 4),
    d AS (
        SELECT al.project_id, sum(allot.usage_granted(s.posted, s.sign, s.oc, s.ex))::bigint
                   AS granted,
               sum(allot.usage_used(s.posted, s.sign, s.oc))::bigint AS used
        FROM s
        JOIN allot.accounts a ON a.id = s.account AND a.kind = 'allocation'
        JOIN allot.allocations al ON al.id = a.allocation_id
        WHERE s.posted <> 0
        GROUP BY al.project_id
        ORDER BY al.project_id),
    u AS (
        INSERT INTO allot.project_usage AS p (project_id, granted_units, used_units)
        SELECT project_id, granted, used FROM d
        ON CONFLICT (project_id) DO UPDATE
            SET granted_units = p.granted_units + excluded.granted_units,
                used_units = p.used_units + excluded.used_units
        RETURNING p.project_id, p.granted_units, p.used_units)
    INSERT INTO allot.events (kind, project_id, threshold_pct, used_units, granted_units)
    SELECT 'threshold', u.project_id, th.percent, u.used_units, u.granted_units
    FROM u JOIN allot.event_thresholds th
        ON u.granted_units > 0 AND u.used_units * 100 >= th.percent::bigint * u.granted_units
    WHERE NOT EXISTS (SELECT 1 FROM allot.events e
                      WHERE e.project_id = u.project_id AND e.kind = 'threshold'
                        AND e.threshold_pct = th.percent)
    ORDER BY u.project_id, th.percent
    ON CONFLICT (project_id, threshold_pct) WHERE kind = 'threshold' DO NOTHING;
    RETURN NULL;
END $$;

-- Named to run after transfers_apply (triggers of one event run in name order).
CREATE TRIGGER transfers_usage AFTER INSERT ON allot.transfers
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION allot.project_usage_apply();

-- Every allotd listens on allot_events and announces what nobody announced yet.
CREATE FUNCTION allot.events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('allot_events', '');
    RETURN NULL;
END $$;

CREATE TRIGGER events_notify AFTER INSERT ON allot.events
    FOR EACH ROW EXECUTE FUNCTION allot.events_notify();

-- Claims up to max_events events that no allotd announced yet (SKIP LOCKED: each
-- is claimed by one), oldest first, for allotd's log line and counter.
CREATE FUNCTION allot.announce_events(max_events integer DEFAULT 1000)
RETURNS TABLE (id bigint, kind text, project text, threshold_pct integer, used_units bigint,
               granted_units bigint)
LANGUAGE sql AS $$
    WITH claimed AS (
        UPDATE allot.events e SET announced_at = clock_timestamp()
        FROM allot.projects p
        WHERE p.id = e.project_id AND e.id IN (
            SELECT x.id FROM allot.events x WHERE x.announced_at IS NULL
            ORDER BY x.id LIMIT max_events FOR UPDATE SKIP LOCKED)
        RETURNING e.id, e.kind, p.name, e.threshold_pct, e.used_units, e.granted_units)
    SELECT * FROM claimed ORDER BY id
$$;

CREATE FUNCTION allot.event_json(e allot.events, project text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'id', e.id::text, 'project', project, 'kind', e.kind,
        'thresholdPct', coalesce(e.threshold_pct, 0),
        'usedUnits', coalesce(e.used_units, 0)::text,
        'grantedUnits', coalesce(e.granted_units, 0)::text,
        'usedPct', CASE WHEN e.granted_units > 0
                        THEN round(e.used_units * 100.0 / e.granted_units, 2) ELSE 0 END,
        'usedGpuHours', round(coalesce(e.used_units, 0) / 3600000.0, 6),
        'grantedGpuHours', round(coalesce(e.granted_units, 0) / 3600000.0, 6),
        'at', allot.rfc3339(e.created_at))
$$;

-- A project's events (every project's when project is empty: admin and
-- auditors), oldest first, at most limit (default 100, at most 1000) after
-- afterId.
CREATE FUNCTION allot.rpc_list_events(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    name_ text := allot.j_text(req, 'project');
    project bigint;
    kind_ text := allot.j_text(req, 'kind');
    lim bigint := allot.j_int(req, 'limit');
    after bigint := allot.j_int(req, 'afterId');
BEGIN
    IF name_ <> '' THEN
        project := allot.project_id(name_);
    END IF;
    IF kind_ NOT IN ('', 'threshold') THEN
        RAISE EXCEPTION 'kind "%" is not an event kind (threshold)', kind_ USING ERRCODE = '22023';
    END IF;
    IF lim = 0 THEN
        lim := 100;
    END IF;
    IF lim NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 1000, not %', lim USING ERRCODE = '22023';
    END IF;
    RETURN jsonb_build_object('events', coalesce((
        SELECT jsonb_agg(allot.event_json(e, p.name) ORDER BY e.id)
        FROM (SELECT * FROM allot.events e
              WHERE (project IS NULL OR e.project_id = project)
                AND (kind_ = '' OR e.kind = kind_) AND e.id > after
              ORDER BY e.id LIMIT lim) e
        JOIN allot.projects p ON p.id = e.project_id), '[]'));
END $$;

-- Raises when allot.project_usage disagrees with the journal; true otherwise.
CREATE FUNCTION allot.check_project_usage() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE bad text;
BEGIN
    SELECT format('project %s: usage says granted %s used %s, the journal %s and %s',
                  coalesce(u.project_id, j.project_id), coalesce(u.granted_units, 0),
                  coalesce(u.used_units, 0), coalesce(j.granted_units, 0),
                  coalesce(j.used_units, 0))
    INTO bad
    FROM allot.project_usage u FULL JOIN allot.project_usage_journal j USING (project_id)
    WHERE (coalesce(u.granted_units, 0), coalesce(u.used_units, 0))
          <> (coalesce(j.granted_units, 0), coalesce(j.used_units, 0))
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'project usage and journal disagree: %', bad;
    END IF;
    RETURN true;
END $$;
