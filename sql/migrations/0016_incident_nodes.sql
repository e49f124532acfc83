-- 0016_incident_nodes: incidents on nodes, and the nodes each job ran on.
--
-- Ingestion stores the nodes of a job's allocation record (Usage.Ingest's
-- node_list, a Slurm hostlist expanded by allotd with lib/hostlist.c and sent as
-- one comma-separated text per record) in allot.job_nodes, beside allot.job_usage:
-- one row per job, the latest charged record's list, written by one statement per
-- batch. An incident may name nodes instead of a partition: the jobs of its site
-- that ran on any of them in its window are credited for the overlap as before
-- (0012, capped as 0014 says). A job that two incidents cover for the same time
-- (a partition and some of its nodes, or two sets of nodes it ran on) is credited
-- for that time once: an incident credits the part of the overlap that no
-- earlier incident credited the job for.
--
-- Lock order as 0014 (the incidents' site lock, then job_usage by job, then
-- accounts); job_nodes is written by ingestion after its job's row was locked or
-- inserted, and only read by a declaration.

-- A node name, as lib/hostlist.c writes them (HOSTLIST_MAX_NAME).
CREATE FUNCTION allot.node_name_ok(name text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT name ~ '^[A-Za-z0-9._-]{1,64}$'
$$;

-- ---------------------------------------------------------------- the nodes of a job

-- The nodes a job (its allocation record, step '') ran on, as its latest charged
-- record named them; no row when no record named any. Found by node through the
-- GIN index (nodes && an incident's nodes).
--
-- No foreign key to job_usage: its check, a trigger per row, cost the ingest
-- benchmark more than the rest of the rows' writing (README, "Performance"); the
-- rows are written only by ingest_batch, for jobs it has just stored or locked, and
-- a declaration joins job_usage, so a row without its job (none is ever deleted)
-- would match nothing. sql/tests/incident_nodes.sql checks that none exists.
CREATE TABLE allot.job_nodes (
    site text COLLATE "C" NOT NULL,
    job_id text COLLATE "C" NOT NULL,
    nodes text[] NOT NULL CHECK (cardinality(nodes) BETWEEN 1 AND 16384),
    PRIMARY KEY (site, job_id)
);
CREATE INDEX job_nodes_nodes ON allot.job_nodes USING gin (nodes);

-- ---------------------------------------------------------------- ingestion

-- ingest_batch as in 0003, with one more array: node_list_, each record's nodes
-- comma-separated (NULL: none named; steps' are NULL). The 24-array form below
-- stays for its callers (rpc_ingest, the SQL tests) and names no nodes.
CREATE FUNCTION allot.ingest_batch(site_ text, batch text, hash text, principal_ text,
    idx_ integer[], job_ text[], step_ text[], start_s bigint[], account_ text[], user_ text[],
    partition_ text[], gpus_ integer[], cpus_ integer[], mem_ bigint[], nodes_ integer[],
    elapsed_ bigint[], state_ text[], resource_ bigint[], occupied_ bigint[], gpu_ms_ bigint[],
    units_ bigint[], native_ bigint[], weight_ integer[], reject_ text[], node_list_ text[])
RETURNS TABLE (idx integer, status text, units bigint, allocation_id bigint, reason text)
LANGUAGE plpgsql
-- As ingest_records (0007): planned for this batch's arrays, hash joins only.
SET plan_cache_mode = force_custom_plan
SET enable_nestloop = off
AS $$
#variable_conflict use_column
DECLARE seen allot.ingest_batches;
BEGIN
    PERFORM allot.check_site(site_);
    IF batch = '' OR length(batch) > 200 THEN
        RAISE EXCEPTION 'batch_id is required (1 to 200 characters)' USING ERRCODE = '22023';
    END IF;
    INSERT INTO allot.ingest_batches (site, batch_id, body_hash, principal)
    VALUES (site_, batch, hash, principal_)
    ON CONFLICT (site, batch_id) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO seen FROM allot.ingest_batches b WHERE b.site = site_ AND b.batch_id = batch;
        IF seen.body_hash <> hash THEN
            RAISE EXCEPTION 'batch "%" of site "%" was already sent with different records',
                batch, site_ USING ERRCODE = '23505';
        END IF;
        RETURN QUERY
        SELECT i, coalesce(r.e ->> 'status', 'DUPLICATE'), 0::bigint, 0::bigint,
               coalesce(r.e ->> 'reason', '')
        FROM unnest(idx_) i
        LEFT JOIN (SELECT e FROM jsonb_array_elements(coalesce(seen.rejected, '[]')) e) r
            ON (r.e ->> 'index')::int = i
        ORDER BY i;
        RETURN;
    END IF;
    PERFORM allot.ingest_records(site_, principal_, idx_, job_, step_, start_s, account_, user_,
        partition_, gpus_, cpus_, mem_, nodes_, elapsed_, state_, resource_, occupied_, gpu_ms_,
        units_, native_, weight_, reject_);
    -- The nodes of the jobs this batch charged (ingest_charge: one row per job, its
    -- latest record), each job's row once, in job order.
    IF node_list_ IS NOT NULL THEN
        -- A running job's later records name the same nodes: those rows are left
        -- alone (read, not locked or rewritten).
        INSERT INTO allot.job_nodes AS n (site, job_id, nodes)
        SELECT site_, c.job_id, x.nodes
        FROM pg_temp.ingest_charge c
        JOIN unnest(idx_, node_list_) AS r(i, nl) ON r.i = c.idx
        CROSS JOIN LATERAL (SELECT string_to_array(r.nl, ',') AS nodes) x
        LEFT JOIN allot.job_nodes k ON k.site = site_ AND k.job_id = c.job_id
            AND k.job_id = ANY ((SELECT job_)::text[])
        WHERE r.nl IS NOT NULL AND k.nodes IS DISTINCT FROM x.nodes
        ORDER BY c.job_id COLLATE "C"
        ON CONFLICT (site, job_id) DO UPDATE SET nodes = excluded.nodes;
    END IF;
    UPDATE allot.ingest_batches b SET rejected = (
        SELECT jsonb_agg(jsonb_build_object('index', r.idx, 'status', 'REJECTED', 'reason', r.reason))
        FROM pg_temp.ingest_result r WHERE r.status = 'REJECTED')
    WHERE b.site = site_ AND b.batch_id = batch;
    RETURN QUERY SELECT r.idx, r.status, r.units, r.allocation_id, r.reason
    FROM pg_temp.ingest_result r ORDER BY r.idx;
END $$;

-- The 24-array form of 0003: the same merge, naming no nodes.
CREATE OR REPLACE FUNCTION allot.ingest_batch(site_ text, batch text, hash text, principal_ text,
    idx_ integer[], job_ text[], step_ text[], start_s bigint[], account_ text[], user_ text[],
    partition_ text[], gpus_ integer[], cpus_ integer[], mem_ bigint[], nodes_ integer[],
    elapsed_ bigint[], state_ text[], resource_ bigint[], occupied_ bigint[], gpu_ms_ bigint[],
    units_ bigint[], native_ bigint[], weight_ integer[], reject_ text[])
RETURNS TABLE (idx integer, status text, units bigint, allocation_id bigint, reason text)
LANGUAGE sql AS $$
    SELECT * FROM allot.ingest_batch(site_, batch, hash, principal_, idx_, job_, step_, start_s,
        account_, user_, partition_, gpus_, cpus_, mem_, nodes_, elapsed_, state_, resource_,
        occupied_, gpu_ms_, units_, native_, weight_, reject_, NULL::text[])
$$;
-- ---------------------------------------------------------------- incidents on nodes

ALTER TABLE allot.incidents ADD COLUMN nodes text[] COLLATE "C" NOT NULL DEFAULT '{}'
    CHECK (cardinality(nodes) <= 65536 AND (nodes = '{}' OR partition = ''));

-- incident_json as in 0012, with the incident's nodes when it names some (proto3
-- JSON leaves an empty list out).
CREATE OR REPLACE FUNCTION allot.incident_json(i allot.incidents) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'incidentId', i.incident_id, 'site', i.site, 'partition', i.partition,
        'startsAt', allot.rfc3339(i.starts_at), 'endsAt', allot.rfc3339(i.ends_at),
        'reason', i.reason, 'principal', i.principal,
        'declaredAt', allot.rfc3339(i.declared_at), 'jobsCredited', i.jobs_credited,
        'creditedUnits', i.credited_units::text,
        'creditedGpuHours', round(i.credited_units / 3600000.0, 6))
        || CASE WHEN i.nodes <> '{}' THEN jsonb_build_object('nodes', to_jsonb(i.nodes))
                ELSE '{}' END
$$;

-- rpc_declare_incident as in 0014, with nodes (req's "nodes", node names; not
-- with a partition): the jobs that ran on any of them. Each job is credited for
-- the part of the overlap no earlier incident credited it for, then capped as in
-- 0014. Bad nodes (not an array, a name that is not one, more than 65536) are
-- 22023 and change nothing.
CREATE OR REPLACE FUNCTION allot.rpc_declare_incident(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    iid text := allot.j_text(req, 'incidentId');
    site_ text := allot.j_text(req, 'site');
    part text := allot.j_text(req, 'partition');
    reason_ text := btrim(allot.j_text(req, 'reason'));
    nodes_ text[] := '{}';
    bad_node text;
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
    IF req -> 'nodes' IS NOT NULL AND jsonb_typeof(req -> 'nodes') <> 'null' THEN
        IF jsonb_typeof(req -> 'nodes') <> 'array' THEN
            RAISE EXCEPTION 'nodes must be an array of node names' USING ERRCODE = '22023';
        END IF;
        IF jsonb_array_length(req -> 'nodes') > 65536 THEN
            RAISE EXCEPTION 'an incident names at most 65536 nodes, not %',
                jsonb_array_length(req -> 'nodes') USING ERRCODE = '22023';
        END IF;
        SELECT e #>> '{}' INTO bad_node FROM jsonb_array_elements(req -> 'nodes') e
        WHERE jsonb_typeof(e) <> 'string' OR NOT allot.node_name_ok(e #>> '{}') LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'node name "%" is not valid: use 1 to 64 letters, digits, ".", "_" or "-"',
                left(bad_node, 80) USING ERRCODE = '22023';
        END IF;
        nodes_ := ARRAY(SELECT DISTINCT e COLLATE "C" FROM jsonb_array_elements_text(req -> 'nodes') e
                        ORDER BY 1);
    END IF;
    IF part <> '' AND nodes_ <> '{}' THEN
        RAISE EXCEPTION 'an incident names a partition or nodes, not both' USING ERRCODE = '22023';
    END IF;
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
        IF (other.site, other.partition, other.nodes, other.starts_at, other.ends_at, other.reason)
           IS DISTINCT FROM (site_, part, nodes_, starts, ends, reason_) THEN
            RAISE EXCEPTION 'incident "%" was declared with another body (site %, partition "%", % nodes, % to %)',
                iid, other.site, other.partition, cardinality(other.nodes),
                allot.rfc3339(other.starts_at), allot.rfc3339(other.ends_at)
                USING ERRCODE = '23505';
        END IF;
        RETURN jsonb_build_object('incident', allot.incident_json(other), 'replay', true);
    END IF;
    -- Refused as before when either covers the whole site or both name the same
    -- partition, and when both name a node. A partition and nodes may overlap:
    -- what a job was credited for already is not credited again (below).
    SELECT * INTO other FROM allot.incidents i
    WHERE i.site = site_ AND i.starts_at < ends AND i.ends_at > starts
      AND ((i.partition = '' AND i.nodes = '{}') OR (part = '' AND nodes_ = '{}')
           OR (part <> '' AND i.partition = part) OR i.nodes && nodes_)
    ORDER BY i.starts_at LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'incident "%" overlaps incident "%" (%, % to %), whose jobs were credited for that time',
            iid, other.incident_id,
            CASE WHEN other.nodes <> '{}' THEN (
                     SELECT format('nodes %s%s', string_agg(x, ',' ORDER BY x) FILTER (WHERE n <= 10),
                                   CASE WHEN count(*) > 10 THEN format(' and %s more', count(*) - 10)
                                        ELSE '' END)
                     FROM (SELECT x, row_number() OVER (ORDER BY x) AS n
                           FROM (SELECT unnest(other.nodes) INTERSECT SELECT unnest(nodes_)) s(x)) t)
                 WHEN other.partition <> '' THEN format('partition "%s"', other.partition)
                 ELSE 'the whole site' END,
            allot.rfc3339(other.starts_at), allot.rfc3339(other.ends_at) USING ERRCODE = '55000';
    END IF;
    INSERT INTO allot.incidents (incident_id, site, partition, nodes, starts_at, ends_at, reason,
        principal)
    VALUES (iid, site_, part, nodes_, starts, ends, reason_, principal);

    -- The jobs' rows locked in job order (the lock order's first), then their
    -- allocations' accounts in id order, so that the refundable units read below
    -- are the ones the credits are weighed against.
    PERFORM 1 FROM allot.job_usage j
    WHERE j.site = site_ AND j.step = '' AND (res IS NULL OR j.resource_id = res)
      AND j.start_time < ends AND j.start_time + j.elapsed_s * interval '1 second' > starts
      AND j.charged_units > 0 AND j.elapsed_s > 0
      AND (nodes_ = '{}' OR EXISTS (SELECT 1 FROM allot.job_nodes n
           WHERE n.site = site_ AND n.job_id = j.job_id AND n.nodes && nodes_))
    ORDER BY j.job_id
    FOR UPDATE;
    PERFORM 1 FROM allot.accounts
    WHERE id = allot.consumed_account() OR allocation_id IN (
        SELECT j.allocation_id FROM allot.job_usage j
        WHERE j.site = site_ AND j.step = '' AND (res IS NULL OR j.resource_id = res)
          AND j.start_time < ends AND j.start_time + j.elapsed_s * interval '1 second' > starts
          AND j.charged_units > 0 AND j.elapsed_s > 0
          AND (nodes_ = '{}' OR EXISTS (SELECT 1 FROM allot.job_nodes n
               WHERE n.site = site_ AND n.job_id = j.job_id AND n.nodes && nodes_)))
    ORDER BY id FOR UPDATE;

    -- The credits: one statement for every job. A job's credit is its share of the
    -- window, capped twice: at what it was charged less what other incidents
    -- credited it, and, taking its allocation's jobs in job order, at what the
    -- allocation can still get back (allot.check_refundable's rule).
    WITH jobs AS (
        SELECT j.job_id, j.project_id, j.allocation_id, j.start_time, j.elapsed_s,
               j.charged_units,
               (extract(epoch FROM least(j.start_time + j.elapsed_s * interval '1 second', ends)
                                   - greatest(j.start_time, starts)) * 1000000)::bigint AS overlap_us
        FROM allot.job_usage j
        WHERE j.site = site_ AND j.step = '' AND (res IS NULL OR j.resource_id = res)
          AND j.start_time < ends AND j.start_time + j.elapsed_s * interval '1 second' > starts
          AND j.charged_units > 0 AND j.elapsed_s > 0
          AND (nodes_ = '{}' OR EXISTS (SELECT 1 FROM allot.job_nodes n
               WHERE n.site = site_ AND n.job_id = j.job_id AND n.nodes && nodes_))),
    -- What earlier incidents credited each job for inside this window: their
    -- credited spans (window and run then) clipped to this window, as a union
    -- (sorted by start, each span counts past the furthest end before it).
    spans AS (
        SELECT p.job_id, greatest(i.starts_at, p.start_time, starts) AS s,
               least(i.ends_at, p.start_time + p.elapsed_s * interval '1 second', ends) AS e
        FROM allot.incident_credits p JOIN allot.incidents i ON i.incident_id = p.incident_id
        WHERE p.site = site_ AND p.job_id IN (SELECT job_id FROM jobs)
          AND i.starts_at < ends AND i.ends_at > starts),
    reach AS (
        SELECT spans.*, max(spans.e) OVER (PARTITION BY spans.job_id ORDER BY spans.s, spans.e
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
        FROM spans WHERE spans.s < spans.e),
    covered AS (
        SELECT reach.job_id, sum(greatest(extract(epoch FROM reach.e
                   - greatest(reach.s, coalesce(reach.before, reach.s))), 0) * 1000000)::bigint AS us
        FROM reach GROUP BY reach.job_id),
    fresh AS (
        SELECT jobs.*, greatest(jobs.overlap_us - coalesce(covered.us, 0), 0) AS new_us
        FROM jobs LEFT JOIN covered ON covered.job_id = jobs.job_id),
    share AS (
        SELECT jobs.*, ac.id AS account_id, ac.refundable,
               floor(jobs.charged_units::numeric * jobs.new_us
                     / (jobs.elapsed_s * 1000000::numeric))::bigint AS owed,
               greatest(jobs.charged_units - coalesce((
                   SELECT sum(p.credit_units) FROM allot.incident_credits p
                   WHERE p.site = site_ AND p.job_id = jobs.job_id), 0), 0)::bigint AS job_left
        FROM fresh jobs JOIN allot.accounts ac ON ac.allocation_id = jobs.allocation_id),
    want AS (
        SELECT share.*, least(share.owed, share.job_left) AS w FROM share),
    c AS (
        SELECT want.*, 'incident:' || iid || ':' || site_ || ':' || want.job_id AS tid,
               greatest(least(want.w, want.refundable
                   - (sum(want.w) OVER (PARTITION BY want.account_id ORDER BY want.job_id)
                      - want.w)), 0)::bigint AS credit
        FROM want),
    t AS (
        INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id,
            amount, body_hash, principal, reason)
        SELECT c.tid, 'credit', allot.consumed_account(), c.account_id, c.credit,
            md5(c.tid || '|' || c.credit), principal,
            format('incident %s: %s (job %s at %s: %s of its %s s in the window%s)%s', iid, reason_,
                   c.job_id, site_, round(c.overlap_us / 1000000.0, 3), c.elapsed_s,
                   CASE WHEN c.new_us < c.overlap_us
                        THEN format(', %s of them credited by an earlier incident',
                                    round((c.overlap_us - c.new_us) / 1000000.0, 3))
                        ELSE '' END,
                   CASE WHEN c.credit < c.owed
                        THEN format(', capped from %s units: what it can still get back', c.owed)
                        ELSE '' END)
        FROM c
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
