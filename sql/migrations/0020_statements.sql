-- 0020_statements: a project's statement for a period, as its canonical text (README
-- "Statements", the format byte for byte), which allotd signs with the audit key
-- (daemon/statement.c). Every figure costs the period's size, not the journal's:
--
--   - movements and balances read the journal by (account, created time): two
--     indexes below. A balance at a past time T is the account's columns now less
--     what the entries created at or after T did, so it costs the entries since T;
--   - the breakdowns by site, user and day read allot.usage_days (0017), rows per
--     (user, site, day) of the period;
--   - jobs are one page (limit + 1 per site) through job_usage_project_jobs (0006);
--   - the blocks a statement covers are found through a GIN index on their entries.

CREATE INDEX transfers_debit_created ON allot.transfers (debit_account_id, created_at);
CREATE INDEX transfers_credit_created ON allot.transfers (credit_account_id, created_at);
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

-- The journal rows of accounts accs created in [t0, t1), each once with the
-- allocation account it touches (a move between two of them appears twice, once
-- per side) and its signed effect on that account's posted balance.
CREATE FUNCTION allot.statement_entries(accs bigint[], t0 timestamptz, t1 timestamptz)
RETURNS TABLE (id bigint, account bigint, movement text, delta bigint)
LANGUAGE sql STABLE AS $$
    SELECT t.id, t.debit_account_id, allot.statement_movement(t.kind, t.debit_account_id,
                                                              t.debit_account_id),
           -allot.transfer_posted(t.kind, t.amount)
    FROM allot.transfers t
    WHERE t.debit_account_id = ANY (accs) AND t.created_at >= t0 AND t.created_at < t1
    UNION ALL
    SELECT t.id, t.credit_account_id, allot.statement_movement(t.kind, t.debit_account_id,
                                                               t.credit_account_id),
           allot.transfer_posted(t.kind, t.amount)
    FROM allot.transfers t
    WHERE t.credit_account_id = ANY (accs) AND t.created_at >= t0 AND t.created_at < t1
$$;

-- Reports.GetStatement (a forecast past 100 years of 366 days is "never"): the canonical text of project's statement for [from, to)
-- (whole UTC days) and the next page's cursor. Sections in a fixed order, each a
-- "columns" line and its rows; breakdowns only those asked ("by"; none: all).
CREATE FUNCTION allot.rpc_get_statement(req jsonb, principal text) RETURNS jsonb
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
    accs bigint[];
    ids bigint[];
    out text := '';
    next_ text := '';
    p record;
    r record;
    opening bigint;
    closing bigint;
    burn bigint;
    plan bigint;
    forecast text;
    b_first record;
    b_last record;
    unsealed bigint;
    status text;
    njobs integer;
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

    -- Balances: now, less what came at or after from (opening) or to (closing).
    out := out || allot.statement_line('columns', 'allocation', 'id', 'site', 'starts_at',
                                       'ends_at', 'granted_units', 'opening_units',
                                       'closing_units', 'plan_units');
    opening := 0; closing := 0; plan := 0;
    FOR r IN
        SELECT al.id, coalesce(al.site, '*') AS site, al.starts_at, al.ends_at, al.amount_units,
               ac.credits_posted - ac.debits_posted
                 - coalesce((SELECT sum(s.delta)
                             FROM allot.statement_entries(ARRAY[ac.id], from_, 'infinity') s), 0)
                 AS opening,
               ac.credits_posted - ac.debits_posted
                 - coalesce((SELECT sum(s.delta)
                             FROM allot.statement_entries(ARRAY[ac.id], to_, 'infinity') s), 0)
                 AS closing,
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
    closing := closing - coalesce((SELECT sum(s.delta)
                                   FROM allot.statement_entries(accs, to_, 'infinity') s), 0);
    opening := closing - coalesce((SELECT sum(s.delta)
                                   FROM allot.statement_entries(accs, from_, to_) s), 0);

    out := out || allot.statement_line('columns', 'balance', 'opening_units', 'closing_units',
                                       'opening_gpu_hours', 'closing_gpu_hours')
        || allot.statement_line('balance', opening::text, closing::text,
                                allot.statement_hours(opening), allot.statement_hours(closing));

    out := out || allot.statement_line('columns', 'movement', 'kind', 'units', 'gpu_hours',
                                       'entries');
    burn := 0;
    FOR r IN
        SELECT k.kind, coalesce(sum(abs(s.delta)), 0)::bigint AS units, count(s.id) AS n
        FROM unnest(ARRAY['grant', 'deposit', 'move_in', 'move_out', 'adjust_in', 'adjust_out',
                          'charge', 'refund', 'credit', 'expire']) WITH ORDINALITY AS k(kind, o)
        LEFT JOIN allot.statement_entries(accs, from_, to_) s ON s.movement = k.kind
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

    -- Provenance: the blocks holding the period's entries.
    SELECT array_agg(DISTINCT s.id) INTO ids FROM allot.statement_entries(accs, from_, to_) s;
    ids := coalesce(ids, '{}');
    SELECT count(*) INTO unsealed FROM allot.seal_queue q WHERE q.entry = ANY (ids);
    SELECT b.number, b.hash INTO b_first FROM allot.blocks b WHERE b.entries && ids
    ORDER BY b.number LIMIT 1;
    SELECT b.number, b.hash INTO b_last FROM allot.blocks b WHERE b.entries && ids
    ORDER BY b.number DESC LIMIT 1;
    status := CASE WHEN to_ > now_ THEN 'open'
                   WHEN unsealed > 0 THEN 'unsealed'
                   WHEN cardinality(ids) = 0 THEN 'empty'
                   ELSE 'sealed' END;
    out := out || allot.statement_line('columns', 'provenance', 'status', 'entries',
                                       'unsealed_entries', 'first_block', 'first_block_hash',
                                       'last_block', 'last_block_hash')
        || allot.statement_line('provenance', status, cardinality(ids)::text, unsealed::text,
                                coalesce(b_first.number::text, '-'),
                                coalesce(encode(b_first.hash, 'hex'), '-'),
                                coalesce(b_last.number::text, '-'),
                                coalesce(encode(b_last.hash, 'hex'), '-'));

    -- Breakdowns from the per-day rollups: a job counts on its start day.
    IF 'site' = ANY (by_) THEN
        out := out || allot.statement_line('columns', 'site', 'site', 'units', 'gpu_hours');
        FOR r IN SELECT u.site, sum(u.units)::bigint AS units FROM allot.usage_days u
                 WHERE u.project_id = project_ AND u.day >= (from_ AT TIME ZONE 'UTC')::date
                   AND u.day < (to_ AT TIME ZONE 'UTC')::date
                 GROUP BY u.site HAVING sum(u.units) > 0 ORDER BY u.site LOOP
            out := out || allot.statement_line('site', r.site, r.units::text,
                                               allot.statement_hours(r.units));
        END LOOP;
    END IF;
    IF 'user' = ANY (by_) THEN
        out := out || allot.statement_line('columns', 'user', 'user', 'units', 'gpu_hours');
        FOR r IN SELECT u.user_name, sum(u.units)::bigint AS units FROM allot.usage_days u
                 WHERE u.project_id = project_ AND u.day >= (from_ AT TIME ZONE 'UTC')::date
                   AND u.day < (to_ AT TIME ZONE 'UTC')::date
                 GROUP BY u.user_name HAVING sum(u.units) > 0 ORDER BY u.user_name LOOP
            out := out || allot.statement_line('user', r.user_name, r.units::text,
                                               allot.statement_hours(r.units));
        END LOOP;
    END IF;
    IF 'day' = ANY (by_) THEN
        out := out || allot.statement_line('columns', 'day', 'day', 'units', 'gpu_hours');
        FOR r IN SELECT u.day, sum(u.units)::bigint AS units FROM allot.usage_days u
                 WHERE u.project_id = project_ AND u.day >= (from_ AT TIME ZONE 'UTC')::date
                   AND u.day < (to_ AT TIME ZONE 'UTC')::date
                 GROUP BY u.day HAVING sum(u.units) > 0 ORDER BY u.day LOOP
            out := out || allot.statement_line('day', to_char(r.day, 'YYYY-MM-DD'),
                                               r.units::text, allot.statement_hours(r.units));
        END LOOP;
    END IF;

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
