-- 0020_statements: a project's statement for a period, as its canonical text (README
-- "Statements", the format byte for byte), which allotd signs with the audit key
-- (daemon/statement.c). Every figure costs the period's size in days, not the
-- journal's length nor the number of jobs:
--
--   - movements and balances read allot.account_days: what the journal posted to
--     each allocation account per UTC day of its created time and movement, kept by
--     a statement trigger on the journal (transfers_days, set-based, like
--     transfers_flows). A balance at a midnight T is the account's columns now less
--     the days from T on, so it costs the days since T;
--   - the breakdowns by site, user and day read allot.usage_days (0017), rows per
--     (user, site, day) of the period;
--   - jobs are one page (limit + 1 per site) through job_usage_project_jobs (0006);
--   - the blocks a statement names are those holding the period's first and last
--     entries (account_days keeps each day's lowest and highest entry id), found
--     through a GIN index on the blocks' entries.
--
-- Lock order (sql/README.md): accounts (transfers_apply), then allot.account_days
-- (transfers_days), then allot.account_flows (transfers_flows), then
-- allot.project_usage: the journal's triggers run in name order.

CREATE INDEX blocks_entries ON allot.blocks USING gin (entries);

-- A field of the canonical text: the audit format's four escapes.
CREATE FUNCTION allot.statement_field(s text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT replace(replace(replace(replace(s, E'\\', E'\\\\'), E'\t', E'\\t'), E'\n', E'\\n'),
                   E'\r', E'\\r')
$$;

-- One line: the fields escaped, TAB-separated, LF-ended.
CREATE FUNCTION allot.statement_line(VARIADIC f text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(allot.statement_field(x), E'\t' ORDER BY n) || E'\n'
    FROM unnest(f) WITH ORDINALITY AS u(x, n)
$$;

-- Units as GPU-hours, six decimals, exact rounding of units / 3,600,000.
CREATE FUNCTION allot.statement_hours(units bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT round(units::numeric / 3600000, 6)::text $$;

-- What one journal row posts to allocation account acc, by the statement's movement:
-- grant, deposit, move_in, move_out, adjust_in, adjust_out, charge, refund, credit,
-- expire; NULL for holds (reserve, void), which are not posted.
CREATE FUNCTION allot.statement_movement(kind text, debit bigint, acc bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN kind IN ('reserve', 'void') THEN NULL
        WHEN kind IN ('charge', 'post') THEN 'charge'
        WHEN kind = 'move' THEN CASE WHEN debit = acc THEN 'move_out' ELSE 'move_in' END
        WHEN kind = 'adjust' THEN CASE WHEN debit = acc THEN 'adjust_out' ELSE 'adjust_in' END
        ELSE kind END
$$;

-- What the journal posted to each allocation account per UTC day (of created_at)
-- and movement: units (what moved, positive), delta (its effect on the account's
-- posted balance), the entries and the lowest and highest entry id. Holds (reserve,
-- void) post nothing and have no row.
CREATE TABLE allot.account_days (
    account_id bigint NOT NULL,
    day date NOT NULL,
    movement text NOT NULL,
    units bigint NOT NULL,
    delta bigint NOT NULL,
    entries bigint NOT NULL,
    first_entry bigint NOT NULL,
    last_entry bigint NOT NULL,
    PRIMARY KEY (account_id, day, movement)
);

-- The same figures from the whole journal: for the migration and
-- allot.check_account_days(), never for a request.
CREATE VIEW allot.account_days_journal AS
    SELECT x.account AS account_id, x.day, x.movement, sum(abs(x.delta))::bigint AS units,
           sum(x.delta)::bigint AS delta, count(*) AS entries, min(x.id) AS first_entry,
           max(x.id) AS last_entry
    FROM (SELECT t.id, t.debit_account_id AS account,
                 (t.created_at AT TIME ZONE 'UTC')::date AS day,
                 allot.statement_movement(t.kind, t.debit_account_id, t.debit_account_id)
                     AS movement,
                 -allot.transfer_posted(t.kind, t.amount) AS delta
          FROM allot.transfers t
          UNION ALL
          SELECT t.id, t.credit_account_id, (t.created_at AT TIME ZONE 'UTC')::date,
                 allot.statement_movement(t.kind, t.debit_account_id, t.credit_account_id),
                 allot.transfer_posted(t.kind, t.amount)
          FROM allot.transfers t) x
    JOIN allot.accounts a ON a.id = x.account AND a.kind = 'allocation'
    WHERE x.movement IS NOT NULL
    GROUP BY x.account, x.day, x.movement;

-- Adds a journal statement's rows to account_days, each key once, in key order. The
-- rows are summed per (debit, credit, kind, day) first, so the two sides and their
-- movements are worked out on a few groups, not on every row.
CREATE FUNCTION allot.account_days_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH g AS (
        SELECT t.debit_account_id AS dr, t.credit_account_id AS cr, t.kind,
               (t.created_at AT TIME ZONE 'UTC')::date AS day,
               sum(allot.transfer_posted(t.kind, t.amount)) AS amount, count(*) AS n,
               min(t.id) AS lo, max(t.id) AS hi
        FROM added t
        WHERE t.kind NOT IN ('reserve', 'void')
        GROUP BY 1, 2, 3, 4)
    INSERT INTO allot.account_days AS d
    SELECT x.account, x.day, x.movement, sum(abs(x.delta)), sum(x.delta), sum(x.n), min(x.lo),
           max(x.hi)
    FROM (SELECT dr AS account, day, allot.statement_movement(kind, dr, dr) AS movement,
                 -amount AS delta, n, lo, hi FROM g
          UNION ALL
          SELECT cr, day, allot.statement_movement(kind, dr, cr), amount, n, lo, hi FROM g) x
    JOIN allot.accounts a ON a.id = x.account AND a.kind = 'allocation'
    GROUP BY x.account, x.day, x.movement
    ORDER BY x.account, x.day, x.movement
    ON CONFLICT (account_id, day, movement) DO UPDATE
        SET units = d.units + excluded.units, delta = d.delta + excluded.delta,
            entries = d.entries + excluded.entries,
            first_entry = least(d.first_entry, excluded.first_entry),
            last_entry = greatest(d.last_entry, excluded.last_entry);
    RETURN NULL;
END $$;

CREATE TRIGGER transfers_days AFTER INSERT ON allot.transfers
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION allot.account_days_apply();

INSERT INTO allot.account_days SELECT * FROM allot.account_days_journal;

-- Raises naming the first (account, day, movement) where account_days and the
-- journal differ; true otherwise. For tests, never for a request.
CREATE FUNCTION allot.check_account_days() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE bad record;
BEGIN
    SELECT coalesce(s.account_id, j.account_id) AS account_id, coalesce(s.day, j.day) AS day,
           coalesce(s.movement, j.movement) AS movement INTO bad
    FROM allot.account_days s
    FULL JOIN allot.account_days_journal j USING (account_id, day, movement)
    WHERE (s.units, s.delta, s.entries, s.first_entry, s.last_entry)
          IS DISTINCT FROM (j.units, j.delta, j.entries, j.first_entry, j.last_entry)
    ORDER BY 1, 2, 3 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'account_days of account % on % (%) differ from the journal',
            bad.account_id, bad.day, bad.movement;
    END IF;
    RETURN true;
END $$;

-- Refuses a period that is not [from, to) of whole UTC days, at most 3660.
CREATE FUNCTION allot.statement_check_period(from_ timestamptz, to_ timestamptz) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF from_ >= to_ THEN
        RAISE EXCEPTION 'from (%) must be before to (%)', allot.rfc3339(from_), allot.rfc3339(to_)
            USING ERRCODE = '22023';
    END IF;
    IF from_ <> date_trunc('day', from_ AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
       OR to_ <> date_trunc('day', to_ AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' THEN
        RAISE EXCEPTION 'a statement covers whole UTC days: from and to must be midnights (UTC), not % and %',
            allot.audit_time(from_), allot.audit_time(to_) USING ERRCODE = '22023';
    END IF;
    IF to_ - from_ > interval '3660 days' THEN
        RAISE EXCEPTION 'a statement covers at most 3660 days' USING ERRCODE = '22023';
    END IF;
END $$;

-- The provenance section of a statement of accounts accs for [t0, t1) made at now_:
-- the blocks holding the period's lowest and highest entry, and how many of its
-- entries are not sealed yet (the queue is short: what committed since the last
-- block).
CREATE FUNCTION allot.statement_provenance(accs bigint[], t0 timestamptz, t1 timestamptz,
                                           now_ timestamptz) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    nentries bigint;
    first_id bigint;
    last_id bigint;
    unsealed bigint;
    b_first record;
    b_last record;
    status text;
BEGIN
    SELECT coalesce(sum(d.entries), 0), min(d.first_entry), max(d.last_entry)
    INTO nentries, first_id, last_id
    FROM allot.account_days d
    WHERE d.account_id = ANY (accs) AND d.day >= (t0 AT TIME ZONE 'UTC')::date
      AND d.day < (t1 AT TIME ZONE 'UTC')::date;
    SELECT count(*) INTO unsealed FROM allot.seal_queue q JOIN allot.transfers t ON t.id = q.entry
    WHERE t.created_at >= t0 AND t.created_at < t1
      AND (t.debit_account_id = ANY (accs) OR t.credit_account_id = ANY (accs))
      AND t.kind NOT IN ('reserve', 'void');
    SELECT b.number, b.hash INTO b_first FROM allot.blocks b
    WHERE b.entries @> ARRAY[first_id] ORDER BY b.number LIMIT 1;
    SELECT b.number, b.hash INTO b_last FROM allot.blocks b
    WHERE b.entries @> ARRAY[last_id] ORDER BY b.number LIMIT 1;
    status := CASE WHEN t1 > now_ THEN 'open'
                   WHEN unsealed > 0 THEN 'unsealed'
                   WHEN nentries = 0 THEN 'empty'
                   ELSE 'sealed' END;
    RETURN allot.statement_line('columns', 'provenance', 'status', 'entries',
                                'unsealed_entries', 'first_block', 'first_block_hash',
                                'last_block', 'last_block_hash')
        || allot.statement_line('provenance', status, nentries::text, unsealed::text,
                                coalesce(b_first.number::text, '-'),
                                coalesce(encode(b_first.hash, 'hex'), '-'),
                                coalesce(b_last.number::text, '-'),
                                coalesce(encode(b_last.hash, 'hex'), '-'));
END $$;

-- Reports.GetStatement (a forecast past 100 years of 366 days is "never"): the canonical text of project's statement for [from, to)
-- (whole UTC days) and the next page's cursor. Sections in a fixed order, each a
-- "columns" line and its rows; breakdowns only those asked ("by"; none: all).
CREATE FUNCTION allot.rpc_get_statement(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF allot.j_text(req, 'program') <> '' THEN
        IF allot.j_text(req, 'project') <> '' THEN
            RAISE EXCEPTION 'a statement is of a project or of a program, not both'
                USING ERRCODE = '22023';
        END IF;
        RETURN allot.statement_of_program(req);
    END IF;
    RETURN allot.statement_of_project(req);
END $$;

-- A project's statement (the request's project).
CREATE FUNCTION allot.statement_of_project(req jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    project_ bigint := allot.project_id(allot.j_text(req, 'project'));
    from_ timestamptz := allot.to_time('from', allot.j_text(req, 'from'));
    to_ timestamptz := allot.to_time('to', allot.j_text(req, 'to'));
    by_ text[] := coalesce((SELECT array_agg(x) FROM jsonb_array_elements_text(
                                coalesce(req -> 'by', '[]')) x), '{}');
    lim integer := coalesce(nullif(allot.j_int(req, 'jobLimit'), 0), 100);
    tok text := allot.j_text(req, 'jobCursor');
    now_ timestamptz := now();
    t_at timestamptz := '-infinity';
    t_site text := '';
    t_job text := '';
    from_d date;
    to_d date;
    accs bigint[];
    out text := '';
    next_ text := '';
    p record;
    r record;
    opening bigint;
    closing bigint;
    burn bigint;
    plan bigint;
    forecast text;
    njobs integer;
    breakdown jsonb;
    section text;
BEGIN
    PERFORM allot.statement_check_period(from_, to_);
    from_d := (from_ AT TIME ZONE 'UTC')::date;
    to_d := (to_ AT TIME ZONE 'UTC')::date;
    IF EXISTS (SELECT 1 FROM unnest(by_) b WHERE b NOT IN ('site', 'user', 'day', 'job')) THEN
        RAISE EXCEPTION 'by must be site, user, day or job, not %', array_to_string(by_, ',')
            USING ERRCODE = '22023';
    END IF;
    IF cardinality(by_) = 0 THEN
        by_ := ARRAY['site', 'user', 'day', 'job'];
    END IF;
    IF lim < 1 OR lim > 1000 THEN
        RAISE EXCEPTION 'job_limit must be between 1 and 1000, not %', lim USING ERRCODE = '22023';
    END IF;
    IF tok <> '' THEN
        IF tok !~ '^-?[0-9]{1,19}:[a-z0-9][a-z0-9_.-]*:.+$' THEN
            RAISE EXCEPTION 'job_cursor "%" is not one this call gave', tok USING ERRCODE = '22023';
        END IF;
        t_at := timestamptz 'epoch' + split_part(tok, ':', 1)::bigint * interval '1 microsecond';
        t_site := split_part(tok, ':', 2);
        t_job := substr(tok, length(split_part(tok, ':', 1)) + length(t_site) + 3);
    END IF;

    SELECT pr.name AS project, o.name AS organization, g.name AS program INTO p
    FROM allot.projects pr JOIN allot.organizations o ON o.id = pr.organization_id
    JOIN allot.programs g ON g.id = o.program_id WHERE pr.id = project_;
    SELECT array_agg(ac.id ORDER BY ac.id) INTO accs
    FROM allot.allocations al JOIN allot.accounts ac ON ac.allocation_id = al.id
    WHERE al.project_id = project_;
    accs := coalesce(accs, '{}');

    out := allot.statement_line('allot statement', '1')
        || allot.statement_line('columns', 'statement', 'project', 'organization', 'program',
                                'from', 'to', 'generated_at', 'by')
        || allot.statement_line('statement', p.project, p.organization, p.program,
                                allot.rfc3339(from_), allot.rfc3339(to_), allot.audit_time(now_),
                                array_to_string(ARRAY(SELECT b FROM unnest(ARRAY['site', 'user',
                                    'day', 'job']) b WHERE b = ANY (by_)), ','));

    -- Balances: now, less the days from from (opening) or from to (closing) on.
    out := out || allot.statement_line('columns', 'allocation', 'id', 'site', 'starts_at',
                                       'ends_at', 'granted_units', 'opening_units',
                                       'closing_units', 'plan_units');
    opening := 0; closing := 0; plan := 0;
    FOR r IN
        SELECT al.id, coalesce(al.site, '*') AS site, al.starts_at, al.ends_at, al.amount_units,
               ac.credits_posted - ac.debits_posted
                 - coalesce((SELECT sum(d.delta) FROM allot.account_days d
                             WHERE d.account_id = ac.id AND d.day >= from_d), 0) AS opening,
               ac.credits_posted - ac.debits_posted
                 - coalesce((SELECT sum(d.delta) FROM allot.account_days d
                             WHERE d.account_id = ac.id AND d.day >= to_d), 0) AS closing,
               CASE WHEN least(al.ends_at, to_) > greatest(al.starts_at, from_) THEN
                   floor(al.amount_units::numeric
                    * extract(epoch FROM least(al.ends_at, to_) - greatest(al.starts_at, from_))
                    / extract(epoch FROM al.ends_at - al.starts_at))::bigint
               ELSE 0 END AS plan
        FROM allot.allocations al JOIN allot.accounts ac ON ac.allocation_id = al.id
        WHERE al.project_id = project_ AND al.starts_at < to_ AND al.ends_at > from_
        ORDER BY al.id
    LOOP
        out := out || allot.statement_line('allocation', r.id::text, r.site,
                                           allot.rfc3339(r.starts_at), allot.rfc3339(r.ends_at),
                                           r.amount_units::text, r.opening::text,
                                           r.closing::text, r.plan::text);
        plan := plan + r.plan;
    END LOOP;
    -- The project's balance covers every allocation, also those outside the period.
    SELECT coalesce(sum(ac.credits_posted - ac.debits_posted), 0) INTO closing
    FROM allot.accounts ac WHERE ac.id = ANY (accs);
    closing := closing - coalesce((SELECT sum(d.delta) FROM allot.account_days d
                                   WHERE d.account_id = ANY (accs) AND d.day >= to_d), 0);
    opening := closing - coalesce((SELECT sum(d.delta) FROM allot.account_days d
                                   WHERE d.account_id = ANY (accs) AND d.day >= from_d
                                     AND d.day < to_d), 0);

    out := out || allot.statement_line('columns', 'balance', 'opening_units', 'closing_units',
                                       'opening_gpu_hours', 'closing_gpu_hours')
        || allot.statement_line('balance', opening::text, closing::text,
                                allot.statement_hours(opening), allot.statement_hours(closing));

    out := out || allot.statement_line('columns', 'movement', 'kind', 'units', 'gpu_hours',
                                       'entries');
    burn := 0;
    FOR r IN
        SELECT k.kind, coalesce(sum(d.units), 0)::bigint AS units,
               coalesce(sum(d.entries), 0)::bigint AS n
        FROM unnest(ARRAY['grant', 'deposit', 'move_in', 'move_out', 'adjust_in', 'adjust_out',
                          'charge', 'refund', 'credit', 'expire']) WITH ORDINALITY AS k(kind, o)
        LEFT JOIN allot.account_days d ON d.movement = k.kind AND d.account_id = ANY (accs)
                                      AND d.day >= from_d AND d.day < to_d
        GROUP BY k.kind, k.o ORDER BY k.o
    LOOP
        out := out || allot.statement_line('movement', r.kind, r.units::text,
                                           allot.statement_hours(r.units), r.n::text);
        IF r.kind = 'charge' THEN
            burn := r.units;
        END IF;
    END LOOP;

    -- The burn against the straight-line plan, and when the balance runs out at the
    -- period's rate.
    forecast := CASE WHEN closing <= 0 THEN 'exhausted'
                     WHEN burn = 0 THEN 'never'
                     WHEN closing::numeric * extract(epoch FROM to_ - from_) / burn
                          > 3162240000 THEN 'never'
                     ELSE allot.rfc3339(to_ + floor(closing::numeric
                                                    * extract(epoch FROM to_ - from_) / burn)::bigint
                                              * interval '1 second') END;
    out := out || allot.statement_line('columns', 'plan', 'burn_units', 'plan_units',
                                       'burn_gpu_hours', 'plan_gpu_hours', 'burn_permille_of_plan',
                                       'forecast_exhaustion')
        || allot.statement_line('plan', burn::text, plan::text, allot.statement_hours(burn),
                                allot.statement_hours(plan),
                                CASE WHEN plan > 0 THEN (burn * 1000 / plan)::text ELSE '-' END,
                                forecast);

    out := out || allot.statement_provenance(accs, from_, to_, now_);

    -- Breakdowns from the per-day rollups (a job counts on its start day): one scan
    -- of the period's usage_days, grouped three ways.
    SELECT coalesce(jsonb_agg(jsonb_build_array(g.section, g.key, g.units)
                              ORDER BY g.section, g.key), '[]') INTO breakdown
    FROM (SELECT CASE WHEN grouping(u.site) = 0 THEN 'site'
                      WHEN grouping(u.user_name) = 0 THEN 'user' ELSE 'day' END AS section,
                 coalesce(u.site, u.user_name, to_char(u.day, 'YYYY-MM-DD')) AS key,
                 sum(u.units)::bigint AS units
          FROM allot.usage_days u
          WHERE u.project_id = project_ AND u.day >= from_d AND u.day < to_d
          GROUP BY GROUPING SETS ((u.site), (u.user_name), (u.day))
          HAVING sum(u.units) > 0) g;
    FOREACH section IN ARRAY ARRAY['site', 'user', 'day'] LOOP
        CONTINUE WHEN NOT section = ANY (by_);
        out := out || allot.statement_line('columns', section, section, 'units', 'gpu_hours');
        FOR r IN SELECT e ->> 1 AS key, (e ->> 2)::bigint AS units
                 FROM jsonb_array_elements(breakdown) WITH ORDINALITY AS x(e, n)
                 WHERE e ->> 0 = section ORDER BY n LOOP
            out := out || allot.statement_line(section, r.key, r.units::text,
                                               allot.statement_hours(r.units));
        END LOOP;
    END LOOP;

    -- One page of jobs started in the period, oldest first by (start, site, job id).
    IF 'job' = ANY (by_) THEN
        out := out || allot.statement_line('columns', 'job', 'site', 'job_id', 'user',
                                           'start_time', 'gpus', 'elapsed_s', 'charged_units',
                                           'gpu_hours', 'native', 'native_unit',
                                           'mean_utilization_pct', 'zero_utilization_gpu_hours',
                                           'energy_kwh');
        njobs := 0;
        FOR r IN
            WITH page AS (
                SELECT x.j FROM allot.sites s
                CROSS JOIN LATERAL (
                    SELECT j FROM allot.job_usage j
                    WHERE j.project_id = project_ AND j.site = s.name AND j.step = ''
                      AND j.start_time >= greatest(from_, t_at) AND j.start_time < to_
                      AND (j.start_time > t_at OR s.name > t_site
                           OR (s.name = t_site AND j.job_id > t_job))
                    ORDER BY j.start_time, j.job_id LIMIT lim + 1) x
                ORDER BY (x.j).start_time, (x.j).site, (x.j).job_id LIMIT lim + 1)
            SELECT (pg.j).*, m.utilization_samples, m.utilization_sum, m.zero_utilization_ms,
                   m.energy_uj, m.energy_ms, res.native_unit
            FROM page pg
            LEFT JOIN allot.gpu_job_metrics m ON m.site = (pg.j).site AND m.job_id = (pg.j).job_id
            LEFT JOIN allot.resources res ON res.id = (pg.j).resource_id
            ORDER BY (pg.j).start_time, (pg.j).site, (pg.j).job_id
        LOOP
            njobs := njobs + 1;
            EXIT WHEN njobs > lim;
            out := out || allot.statement_line('job', r.site, r.job_id, r.user_name,
                allot.audit_time(r.start_time), r.gpus::text, r.elapsed_s::text,
                r.charged_units::text, allot.statement_hours(r.charged_units),
                round(r.native_milli / 1000.0, 3)::text, coalesce(r.native_unit, ''),
                CASE WHEN r.utilization_samples > 0 THEN
                    round((r.utilization_sum / r.utilization_samples)::numeric, 2)::text
                ELSE '-' END,
                round(coalesce(r.zero_utilization_ms, 0) / 3600000.0, 6)::text,
                CASE WHEN r.energy_ms > 0 THEN round(r.energy_uj / 3.6e12, 6)::text ELSE '-' END);
            next_ := ((extract(epoch FROM r.start_time) * 1000000)::bigint)::text || ':'
                     || r.site || ':' || r.job_id;
        END LOOP;
        IF njobs <= lim THEN
            next_ := '';
        END IF;
        out := out || allot.statement_line('columns', 'jobs', 'page_jobs', 'next_job_cursor')
            || allot.statement_line('jobs', least(njobs, lim)::text, next_);
    END IF;
    RETURN jsonb_build_object('statement', out, 'nextJobCursor', next_);
END $$;

-- A funder's statement: every project of the program, its movements in the period
-- (from account_days), its use by the jobs that started in it (usage_days) and
-- their efficiency (gpu_job_metrics of those jobs: GPU-hours at 0 %, their share
-- per mille of the sampled GPU time, the mean utilization; this part costs the
-- program's jobs in the period), then the provenance.
CREATE FUNCTION allot.statement_of_program(req jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    program_ bigint := allot.found('program', allot.j_text(req, 'program'),
                                   (SELECT id FROM allot.programs
                                    WHERE name = allot.j_text(req, 'program')));
    from_ timestamptz := allot.to_time('from', allot.j_text(req, 'from'));
    to_ timestamptz := allot.to_time('to', allot.j_text(req, 'to'));
    from_d date;
    to_d date;
    accs bigint[];
    out text;
    r record;
BEGIN
    PERFORM allot.statement_check_period(from_, to_);
    IF allot.j_text(req, 'jobCursor') <> '' OR coalesce(jsonb_array_length(req -> 'by'), 0) > 0 THEN
        RAISE EXCEPTION 'a program''s statement has no breakdowns nor job pages'
            USING ERRCODE = '22023';
    END IF;
    from_d := (from_ AT TIME ZONE 'UTC')::date;
    to_d := (to_ AT TIME ZONE 'UTC')::date;
    SELECT coalesce(array_agg(ac.id ORDER BY ac.id), '{}') INTO accs
    FROM allot.organizations o JOIN allot.projects pr ON pr.organization_id = o.id
    JOIN allot.allocations al ON al.project_id = pr.id
    JOIN allot.accounts ac ON ac.allocation_id = al.id
    WHERE o.program_id = program_;

    out := allot.statement_line('allot statement', '1')
        || allot.statement_line('columns', 'statement', 'program', 'from', 'to', 'generated_at',
                                'by')
        || allot.statement_line('statement', allot.j_text(req, 'program'), allot.rfc3339(from_),
                                allot.rfc3339(to_), allot.audit_time(now()), 'project')
        || allot.statement_line('columns', 'project', 'project', 'organization',
                                'opening_units', 'granted_units', 'charged_units',
                                'returned_units', 'closing_units', 'used_units',
                                'used_gpu_hours', 'zero_utilization_gpu_hours',
                                'zero_utilization_permille', 'mean_utilization_pct');
    FOR r IN
        WITH prj AS (
            SELECT pr.id, pr.name, o.name AS organization FROM allot.projects pr
            JOIN allot.organizations o ON o.id = pr.organization_id
            WHERE o.program_id = program_),
        bal AS (
            SELECT al.project_id,
                   sum(ac.credits_posted - ac.debits_posted)::bigint AS now_units,
                   coalesce(sum((SELECT sum(d.delta) FROM allot.account_days d
                                 WHERE d.account_id = ac.id AND d.day >= from_d)), 0)::bigint
                       AS since_from,
                   coalesce(sum((SELECT sum(d.delta) FROM allot.account_days d
                                 WHERE d.account_id = ac.id AND d.day >= to_d)), 0)::bigint
                       AS since_to,
                   coalesce(sum((SELECT sum(d.units) FROM allot.account_days d
                                 WHERE d.account_id = ac.id AND d.day >= from_d AND d.day < to_d
                                   AND d.movement IN ('grant', 'deposit', 'move_in',
                                                      'adjust_in'))), 0)::bigint AS granted,
                   coalesce(sum((SELECT sum(d.units) FROM allot.account_days d
                                 WHERE d.account_id = ac.id AND d.day >= from_d AND d.day < to_d
                                   AND d.movement = 'charge')), 0)::bigint AS charged,
                   coalesce(sum((SELECT sum(d.units) FROM allot.account_days d
                                 WHERE d.account_id = ac.id AND d.day >= from_d AND d.day < to_d
                                   AND d.movement IN ('refund', 'credit'))), 0)::bigint
                       AS returned
            FROM allot.allocations al JOIN allot.accounts ac ON ac.allocation_id = al.id
            WHERE al.project_id IN (SELECT id FROM prj)
            GROUP BY al.project_id),
        used AS (
            SELECT u.project_id, sum(u.units)::bigint AS units FROM allot.usage_days u
            WHERE u.project_id IN (SELECT id FROM prj) AND u.day >= from_d AND u.day < to_d
            GROUP BY u.project_id),
        eff AS (
            SELECT j.project_id, sum(m.zero_utilization_ms)::bigint AS zero_ms,
                   sum(m.interval_ms)::bigint AS sampled_ms,
                   sum(m.utilization_sum) AS util_sum,
                   sum(m.utilization_samples)::bigint AS util_n
            FROM allot.job_usage j JOIN allot.gpu_job_metrics m
              ON m.site = j.site AND m.job_id = j.job_id
            WHERE j.project_id IN (SELECT id FROM prj) AND j.step = ''
              AND j.start_time >= from_ AND j.start_time < to_
            GROUP BY j.project_id)
        SELECT prj.name, prj.organization,
               coalesce(b.now_units - b.since_from, 0) AS opening,
               coalesce(b.granted, 0) AS granted, coalesce(b.charged, 0) AS charged,
               coalesce(b.returned, 0) AS returned,
               coalesce(b.now_units - b.since_to, 0) AS closing,
               coalesce(u.units, 0) AS used, coalesce(e.zero_ms, 0) AS zero_ms,
               coalesce(e.sampled_ms, 0) AS sampled_ms,
               e.util_sum, coalesce(e.util_n, 0) AS util_n
        FROM prj LEFT JOIN bal b ON b.project_id = prj.id
        LEFT JOIN used u ON u.project_id = prj.id LEFT JOIN eff e ON e.project_id = prj.id
        ORDER BY prj.name
    LOOP
        out := out || allot.statement_line('project', r.name, r.organization, r.opening::text,
            r.granted::text, r.charged::text, r.returned::text, r.closing::text, r.used::text,
            allot.statement_hours(r.used), round(r.zero_ms / 3600000.0, 6)::text,
            CASE WHEN r.sampled_ms > 0 THEN (r.zero_ms * 1000 / r.sampled_ms)::text ELSE '-' END,
            CASE WHEN r.util_n > 0 THEN round((r.util_sum / r.util_n)::numeric, 2)::text
                 ELSE '-' END);
    END LOOP;
    out := out || allot.statement_provenance(accs, from_, to_, now());
    RETURN jsonb_build_object('statement', out, 'nextJobCursor', '');
END $$;
