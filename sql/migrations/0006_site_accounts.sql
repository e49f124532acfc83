-- 0006_site_accounts: a site's own account names. LEONARDO bills AIFAC_P02_548,
-- LUMI project_465000123, MareNostrum5 ehpc103, JUPITER e-dev-2026d09-128 (case
-- matters); an operator maps each (site, account) to the project it pays for, and
-- collectors and schedulers go on sending the site's names. Resolution, wherever a
-- site's account names a project (records, quotes, reservations, heartbeats): the
-- mapped project, else the project of the same name, else the account is unknown.
-- Jobs and liens keep the raw account the site sent.

CREATE TABLE allot.site_accounts (
    site text NOT NULL REFERENCES allot.sites,
    account text NOT NULL CHECK (account ~ '^[^[:space:][:cntrl:]|,]{1,128}$'),
    project_id bigint NOT NULL REFERENCES allot.projects,
    principal text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, account)
);
CREATE INDEX site_accounts_project ON allot.site_accounts (project_id);

CREATE FUNCTION allot.site_account_json(a allot.site_accounts) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('project', (SELECT name FROM allot.projects WHERE id = a.project_id),
        'site', a.site, 'account', a.account)
$$;

-- The project that account_ names at site_: mapped, else by name; NULL when none.
-- For one request; batches join site_accounts and projects instead.
CREATE FUNCTION allot.account_project(site_ text, account_ text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT project_id FROM allot.site_accounts
                     WHERE site = site_ AND account = account_),
                    (SELECT id FROM allot.projects WHERE name = account_))
$$;

-- A project principal acts for its own project only: raises permission_denied when
-- principal_ is one and project (what the account resolved to, NULL when unknown)
-- is not its project. Other roles' scopes are sites, checked by allotd's routes.
CREATE FUNCTION allot.check_account_caller(principal_ text, account_ text, project bigint)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE p allot.principals;
BEGIN
    SELECT * INTO p FROM allot.principals WHERE subject = principal_;
    IF p.role = 'project' AND p.scope IS DISTINCT FROM
            (SELECT name FROM allot.projects WHERE id = project) THEN
        RAISE EXCEPTION 'principal "%" (project of %) may not act for account "%"', principal_,
            p.scope, account_ USING ERRCODE = '42501';
    END IF;
END $$;

-- ---------------------------------------------------------------- Admin

-- AddSiteAccount: idempotent; the account of the site mapped to another project is
-- already_exists, and so is an account that is another project's name (the mapping
-- would silently move that project's jobs at the site).
CREATE FUNCTION allot.rpc_add_site_account(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    site_ text := allot.check_site(allot.j_text(req, 'site'));
    project_ bigint := allot.project_id(allot.j_text(req, 'project'));
    account_ text := allot.j_text(req, 'account');
    a allot.site_accounts;
BEGIN
    IF account_ !~ '^[^[:space:][:cntrl:]|,]{1,128}$' THEN
        RAISE EXCEPTION 'account "%" is not valid (1 to 128 characters, no spaces, control characters, "|" or ",")',
            account_ USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM allot.projects WHERE name = account_ AND id <> project_) THEN
        RAISE EXCEPTION 'account "%" is the name of another project: it cannot be mapped to project "%"',
            account_, allot.j_text(req, 'project') USING ERRCODE = '23505';
    END IF;
    INSERT INTO allot.site_accounts (site, account, project_id, principal)
    VALUES (site_, account_, project_, principal)
    ON CONFLICT (site, account) DO NOTHING
    RETURNING * INTO a;
    IF NOT FOUND THEN
        SELECT * INTO a FROM allot.site_accounts WHERE site = site_ AND account = account_;
        IF a.project_id <> project_ THEN
            RAISE EXCEPTION 'account "%" of site "%" is already mapped to project "%"', account_,
                site_, (SELECT name FROM allot.projects WHERE id = a.project_id)
                USING ERRCODE = '23505';
        END IF;
    END IF;
    RETURN allot.site_account_json(a);
END $$;

CREATE FUNCTION allot.rpc_list_site_accounts(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('siteAccounts',
        coalesce(jsonb_agg(allot.site_account_json(a) ORDER BY a.site, a.account), '[]'))
    FROM allot.site_accounts a
    JOIN allot.projects pr ON pr.id = a.project_id
    JOIN allot.organizations o ON o.id = pr.organization_id
    JOIN allot.programs p ON p.id = o.program_id
    WHERE allot.j_text(req, 'program') IN ('', p.name)
      AND allot.j_text(req, 'organization') IN ('', o.name)
      AND allot.j_text(req, 'project') IN ('', pr.name)
      AND allot.j_text(req, 'site') IN ('', a.site)
$$;

-- RemoveSiteAccount: by site and account. Jobs already stored keep their project and
-- allocation; later records of the account resolve without the mapping.
CREATE FUNCTION allot.rpc_remove_site_account(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE a allot.site_accounts;
BEGIN
    DELETE FROM allot.site_accounts
    WHERE site = allot.j_text(req, 'site') AND account = allot.j_text(req, 'account')
    RETURNING * INTO a;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account "%" of site "%" is not mapped', allot.j_text(req, 'account'),
            allot.j_text(req, 'site') USING ERRCODE = 'P0002';
    END IF;
    RETURN allot.site_account_json(a);
END $$;

-- ---------------------------------------------------------------- quotes

-- Quote, as in 0003, with the account resolved at the job's site and the project
-- principal's scope checked against the resolved project (allotd's route no longer
-- compares the account with it).
CREATE OR REPLACE FUNCTION allot.rpc_quote(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    bill jsonb := req -> 'bill';
    cost bigint := (bill ->> 'chargeUnits')::bigint;
    at_ timestamptz := coalesce(allot.try_time(allot.j_text(req, 'startTime')), now());
    account_ text := allot.j_text(req, 'account');
    project_ bigint := allot.account_project(allot.j_text(req, 'site'), account_);
    ja record;
    avail bigint;
    reason text := '';
BEGIN
    PERFORM allot.check_account_caller(principal, account_, project_);
    BEGIN
        -- By the resolved project's name (job_allocation finds projects by name).
        ja := allot.job_allocation(coalesce((SELECT name FROM allot.projects WHERE id = project_),
                                            account_),
                                   allot.j_text(req, 'site'), (bill ->> 'resourceId')::bigint, at_);
    EXCEPTION WHEN no_data_found OR object_not_in_prerequisite_state THEN
        RETURN jsonb_build_object('allowed', false, 'reason', SQLERRM, 'allocationId', 0,
            'occupiedGpus', bill -> 'occupiedGpus', 'costUnits', cost,
            'costGpuHours', round(cost / 3600000.0, 6), 'availableUnits', 0,
            'availableGpuHours', 0, 'nativeCostMilli', bill -> 'nativeMilli',
            'nativeUnit', bill -> 'nativeUnit');
    END;
    avail := allot.available(ja.account);
    IF avail < 0 THEN
        reason := 'exhausted: usage overdrew the allocation';
    ELSIF cost > avail THEN
        reason := format('exhausted: the job needs %s GPU-h, %s are available',
                         round(cost / 3600000.0, 2), round(avail / 3600000.0, 2));
    END IF;
    RETURN jsonb_build_object('allowed', reason = '', 'reason', reason,
        'allocationId', ja.allocation, 'occupiedGpus', bill -> 'occupiedGpus',
        'costUnits', cost, 'costGpuHours', round(cost / 3600000.0, 6),
        'availableUnits', avail, 'availableGpuHours', round(avail / 3600000.0, 6),
        'nativeCostMilli', bill -> 'nativeMilli', 'nativeUnit', bill -> 'nativeUnit');
END $$;

-- ---------------------------------------------------------------- reservations

-- reserve_group as in 0003 but for three things: each reservation's account is
-- resolved at its site (one join against site_accounts, then projects by name); a
-- project principal's reservation for another project's account is refused here
-- (42501), since allotd's route cannot resolve it; and the answers and messages
-- name the project, the lien keeping the raw account for heartbeats.
CREATE OR REPLACE FUNCTION allot.reserve_group(reqs jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    consumed bigint := allot.consumed_account();
    r record;
    avail jsonb;
    have bigint;
    give bigint;
    own bigint;
    ok_n integer[] := '{}';
    ok_own bigint[] := '{}';
    ok_old text[] := '{}';
    gone text[] := '{}';
    gone_held bigint[];
    gone_alloc bigint[];
    errs jsonb := '{}';
    answers jsonb;
    lien_ids text[];
    account_ids bigint[];
BEGIN
    PERFORM allot.refresh_statistics('allot.liens');
    -- A new name: a session of an older allotd may hold reserve_stage of the old shape.
    IF to_regclass('pg_temp.reserve_items') IS NULL THEN
        CREATE TEMP TABLE reserve_items (
            n integer, req jsonb, lien_id text, site text, job_id text, account text,
            hash text, principal text, cost bigint, resource_id bigint, project_id bigint,
            allocation_id bigint, account_id bigint, project text, denied boolean
        ) ON COMMIT DELETE ROWS;
    ELSE
        DELETE FROM pg_temp.reserve_items;
    END IF;
    WITH items AS (
        SELECT x.n::integer AS n, x.e, p.id AS project_id, p.name AS project,
               (x.e -> 'bill' ->> 'resourceId')::bigint AS resource_id,
               pc.role = 'project' AND pc.scope IS DISTINCT FROM p.name AS denied
        FROM jsonb_array_elements(reqs) WITH ORDINALITY x(e, n)
        -- The site's name for the account, else the project of that name.
        LEFT JOIN allot.site_accounts sa
            ON sa.site = x.e ->> 'site' AND sa.account = x.e ->> 'account'
        LEFT JOIN allot.projects pn ON pn.name = x.e ->> 'account'
        LEFT JOIN allot.projects p ON p.id = coalesce(sa.project_id, pn.id)
        LEFT JOIN allot.principals pc ON pc.subject = x.e ->> 'principal'),
    cand AS (
        SELECT k.project_id, k.resource_id, c.id
        FROM (SELECT DISTINCT project_id, resource_id FROM items WHERE project_id IS NOT NULL) k
        CROSS JOIN LATERAL (SELECT c.id FROM allot.allocation_candidates(k.project_id, k.resource_id) c
                            WHERE c.starts_at <= now() AND now() < c.ends_at
                            ORDER BY c.rank LIMIT 1) c)
    INSERT INTO pg_temp.reserve_items
    SELECT i.n, i.e, i.e ->> 'lienId', i.e ->> 'site', i.e ->> 'jobId', i.e ->> 'account',
           i.e ->> 'bodyHash', i.e ->> 'principal', (i.e -> 'bill' ->> 'chargeUnits')::bigint,
           i.resource_id, i.project_id, c.id, ac.id, i.project, coalesce(i.denied, false)
    FROM items i
    LEFT JOIN cand c ON c.project_id = i.project_id AND c.resource_id = i.resource_id
    LEFT JOIN allot.accounts ac ON ac.allocation_id = c.id;
    -- Locks, in the schema's order: the liens named or replaced, then the accounts.
    -- Every lookup is by primary key or by the active job's index, one probe per
    -- reservation (LATERAL ... LIMIT 1, so that the planner cannot turn it into a
    -- scan of liens whatever its statistics say): the cost is the group's, never the
    -- number of liens.
    SELECT array_agg(DISTINCT x.id) INTO lien_ids FROM (
        SELECT s.lien_id AS id FROM pg_temp.reserve_items s
        UNION ALL SELECT nullif(s.req ->> 'campaign', '') FROM pg_temp.reserve_items s
        UNION ALL SELECT o.id FROM pg_temp.reserve_items s
            CROSS JOIN LATERAL (SELECT o.id FROM allot.liens o
                                WHERE o.site = s.site AND o.job_id = s.job_id
                                  AND o.status = 'active' AND o.kind = 'job' LIMIT 1) o) x
    WHERE x.id IS NOT NULL;
    PERFORM 1 FROM allot.liens WHERE id = ANY (lien_ids) ORDER BY id FOR UPDATE;
    SELECT array_agg(DISTINCT x.id) INTO account_ids FROM (
        SELECT consumed AS id
        UNION ALL SELECT s.account_id FROM pg_temp.reserve_items s
        UNION ALL SELECT ac.id FROM allot.liens o
            JOIN allot.accounts ac ON ac.allocation_id = o.allocation_id
            WHERE o.id = ANY (lien_ids) AND o.kind = 'job' AND o.status = 'active') x
    WHERE x.id IS NOT NULL;
    SELECT coalesce(jsonb_object_agg(x.id, x.available), '{}') INTO avail FROM (
        SELECT a.id, allot.available_of(a) AS available
        FROM allot.accounts a WHERE a.id = ANY (account_ids) ORDER BY a.id FOR UPDATE) x;

    -- Each reservation in order, against what the earlier ones left.
    FOR r IN
        SELECT s.*, seen.body_hash AS seen_hash,
               camp.id AS camp_id, camp.allocation_id AS camp_alloc, camp.status AS camp_status,
               camp.held AS camp_held, old.id AS old_id, old.held AS old_held,
               oac.id AS old_account
        FROM pg_temp.reserve_items s
        LEFT JOIN LATERAL (SELECT * FROM allot.liens WHERE id = s.lien_id LIMIT 1) seen ON true
        LEFT JOIN LATERAL (SELECT * FROM allot.liens
                           WHERE id = nullif(s.req ->> 'campaign', '') AND kind = 'campaign'
                           LIMIT 1) camp ON true
        LEFT JOIN LATERAL (SELECT * FROM allot.liens
                           WHERE site = s.site AND job_id = s.job_id AND status = 'active'
                             AND kind = 'job' LIMIT 1) old ON true
        LEFT JOIN LATERAL (SELECT id FROM allot.accounts
                           WHERE allocation_id = old.allocation_id LIMIT 1) oac ON true
        ORDER BY s.n
    LOOP
        -- A project principal acts for its own project only, whatever the site calls it.
        IF r.denied THEN
            errs := errs || jsonb_build_object(r.n::text, jsonb_build_object('sqlstate', '42501',
                'message', format('principal "%s" (project of %s) may not act for account "%s"',
                    r.principal, (SELECT scope FROM allot.principals WHERE subject = r.principal),
                    r.account)));
            CONTINUE;
        END IF;
        IF r.seen_hash IS NOT NULL THEN
            IF r.seen_hash <> r.hash THEN
                errs := errs || jsonb_build_object(r.n::text, jsonb_build_object('sqlstate', '23505',
                    'message', format('lien id "%s" was already used with a different body', r.lien_id)));
            END IF;
            CONTINUE; -- a replay: answered from the stored answer
        END IF;
        IF r.project_id IS NULL THEN
            errs := errs || jsonb_build_object(r.n::text, jsonb_build_object('sqlstate', 'P0002',
                'message', format('unknown account "%s"', r.account)));
            CONTINUE;
        END IF;
        IF r.allocation_id IS NULL THEN
            errs := errs || jsonb_build_object(r.n::text, jsonb_build_object('sqlstate', '55000',
                'message', format('no allocation of project "%s" covers %s/%s at %s', r.project,
                    r.site, r.req ->> 'partition', allot.rfc3339(now()))));
            CONTINUE;
        END IF;
        own := r.cost;
        IF nullif(r.req ->> 'campaign', '') IS NOT NULL THEN
            IF r.camp_id IS NULL THEN
                errs := errs || jsonb_build_object(r.n::text, jsonb_build_object('sqlstate', 'P0002',
                    'message', format('campaign "%s" does not exist', r.req ->> 'campaign')));
                CONTINUE;
            ELSIF r.camp_alloc <> r.allocation_id THEN
                errs := errs || jsonb_build_object(r.n::text, jsonb_build_object('sqlstate', '55000',
                    'message', format('campaign "%s" holds on allocation %s, the job is billed to allocation %s',
                        r.camp_id, r.camp_alloc, r.allocation_id)));
                CONTINUE;
            ELSIF r.camp_status <> 'active' THEN
                errs := errs || jsonb_build_object(r.n::text, jsonb_build_object('sqlstate', '55000',
                    'message', format('campaign "%s" is %s', r.camp_id, r.camp_status)));
                CONTINUE;
            END IF;
            own := greatest(r.cost - r.camp_held, 0);
        END IF;
        have := (avail ->> r.account_id::text)::bigint;
        -- The hold being replaced comes back before the new one is weighed.
        give := CASE WHEN r.old_account = r.account_id THEN r.old_held ELSE 0 END;
        IF have + give < 0 OR own > have + give THEN
            errs := errs || jsonb_build_object(r.n::text, jsonb_build_object('sqlstate', '53400',
                'message', format('could not reserve %s GPU-h (%s units) for job %s of project "%s": %s GPU-h (%s units) available on allocation %s',
                    round(own / 3600000.0, 2), own, r.job_id, r.project,
                    round((have + give) / 3600000.0, 2), have + give, r.allocation_id),
                'meta', jsonb_build_object('requested_units', own::text,
                    'requested_gpu_hours', round(own / 3600000.0, 6)::text,
                    'available_units', (have + give)::text,
                    'available_gpu_hours', round((have + give) / 3600000.0, 6)::text,
                    'allocation', r.allocation_id::text)));
            CONTINUE;
        END IF;
        avail := jsonb_set(avail, ARRAY[r.account_id::text], to_jsonb(have + give - own));
        IF r.old_id IS NOT NULL THEN
            gone := gone || r.old_id;
            IF r.old_account <> r.account_id THEN
                avail := jsonb_set(avail, ARRAY[r.old_account::text],
                    to_jsonb((avail ->> r.old_account::text)::bigint + r.old_held));
            END IF;
        END IF;
        ok_n := ok_n || r.n;
        ok_own := ok_own || own;
        ok_old := ok_old || r.old_id;
    END LOOP;

    -- The accepted ones: the replaced liens closed, the new ones stored, then one
    -- journal statement for the group.
    IF cardinality(ok_n) > 0 THEN
        WITH c AS (
            UPDATE allot.liens l SET status = 'replaced', released = l.released + o.held,
                held = 0, closed_at = clock_timestamp()
            FROM (SELECT id, held FROM allot.liens WHERE id = ANY (gone)) o
            WHERE l.id = o.id
            RETURNING l.id, o.held, l.allocation_id)
        SELECT coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.held), '{}'),
               coalesce(array_agg(c.allocation_id), '{}')
        INTO gone, gone_held, gone_alloc FROM c;
        -- Each answer is written with its lien, as a replay will read it: the lien as
        -- made, and what its allocation has available once the group is done.
        INSERT INTO allot.liens (id, kind, site, job_id, project_id, allocation_id, campaign,
            partition, account, user_name, gpus, cpus, mem_mb, nodes, cost_units, amount,
            held, expires_at, replaced, body_hash, principal, answer)
        SELECT x.lien_id, 'job', x.site, x.job_id, x.project_id, x.allocation_id, x.campaign,
            x.req ->> 'partition', x.account, coalesce(x.req ->> 'user', ''),
            coalesce((x.req ->> 'gpus')::int, 0), coalesce((x.req ->> 'cpus')::int, 0),
            coalesce((x.req ->> 'memMb')::bigint, 0), coalesce((x.req ->> 'nodes')::int, 0),
            x.cost, x.own, x.own, x.expires_at, x.old, x.hash, x.principal,
            jsonb_build_object('lienId', x.lien_id, 'kind', 'job', 'site', x.site,
                'jobId', x.job_id, 'project', x.project, 'allocationId', x.allocation_id,
                'status', allot.lien_status('active'), 'amountUnits', x.own,
                'heldUnits', x.own, 'drawnUnits', 0, 'releasedUnits', 0,
                'heldGpuHours', round(x.own / 3600000.0, 6),
                'expiresAt', allot.rfc3339(x.expires_at), 'campaign', coalesce(x.campaign, ''),
                'replaced', coalesce(x.old, ''),
                'availableUnits', (avail ->> x.account_id::text)::bigint)
        FROM (SELECT s.*, k.own, k.old, nullif(s.req ->> 'campaign', '') AS campaign,
                     now() + make_interval(secs => CASE
                         WHEN coalesce((s.req ->> 'expiresInS')::bigint, 0) > 0
                             THEN (s.req ->> 'expiresInS')::bigint
                         ELSE coalesce((s.req ->> 'timeLimitS')::bigint, 0) + 3600 END)
                         AS expires_at
              FROM unnest(ok_n, ok_own, ok_old) k(n, own, old)
              JOIN pg_temp.reserve_items s ON s.n = k.n) x;
        INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id,
            amount, body_hash, principal, reason, lien)
        SELECT 'void:' || g.id, 'void', ac.id, consumed, g.held,
               md5('void:' || g.id || ':' || g.held), 'allotd', 'replaced lien ' || g.id, g.id
        FROM unnest(gone, gone_held, gone_alloc) g(id, held, alloc)
        JOIN allot.accounts ac ON ac.allocation_id = g.alloc
        WHERE g.held > 0
        UNION ALL
        SELECT 'reserve:' || s.lien_id, 'reserve', s.account_id, consumed, k.own, s.hash,
               s.principal, format('job %s at %s', s.job_id, s.site), s.lien_id
        FROM unnest(ok_n, ok_own) k(n, own) JOIN pg_temp.reserve_items s ON s.n = k.n
        WHERE k.own > 0;
    END IF;

    SELECT jsonb_agg(CASE WHEN errs ? s.n::text THEN errs -> s.n::text
                          ELSE jsonb_build_object('ok', l.answer) END ORDER BY s.n)
    INTO answers
    FROM pg_temp.reserve_items s
    LEFT JOIN LATERAL (SELECT answer FROM allot.liens WHERE id = s.lien_id LIMIT 1) l ON true;
    RETURN coalesce(answers, '[]');
END $$;


-- ---------------------------------------------------------------- ingestion

-- ingest_records as in 0003 but for one change: a record's account resolves at the
-- batch's site (site_accounts, else the project of its name), where 0003 joined
-- projects by name. job_usage keeps the raw account. (Merging: this one join is
-- what to carry onto any later version of the function.)
CREATE OR REPLACE FUNCTION allot.ingest_records(site_ text, principal_ text, idx_ integer[], job_ text[],
    step_ text[], start_s bigint[], account_ text[], user_ text[], partition_ text[],
    gpus_ integer[], cpus_ integer[], mem_ bigint[], nodes_ integer[], elapsed_ bigint[],
    state_ text[], resource_ bigint[], occupied_ bigint[], gpu_ms_ bigint[], units_ bigint[],
    native_ bigint[], weight_ integer[], reject_ text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    consumed bigint := allot.consumed_account();
    known_jobs text[];
BEGIN
    PERFORM allot.refresh_statistics('allot.job_usage');
    PERFORM allot.ingest_stage_reset();
    -- The stored jobs of the batch are locked first, in job order, so that
    -- concurrent batches cannot deadlock; the statement after reads them as locked.
    PERFORM 1 FROM allot.job_usage u
    WHERE u.site = site_ AND u.step = '' AND u.job_id = ANY (job_)
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
                PARTITION BY r.rej IS NULL AND pr.id IS NOT NULL, r.j, r.st
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
        -- The site's name for the account, else the project of that name: one join
        -- against the mapping for the whole batch, no call per record.
        LEFT JOIN allot.site_accounts sa ON sa.site = site_ AND sa.account = r.a
        LEFT JOIN allot.projects pn ON pn.name = r.a
        CROSS JOIN LATERAL (SELECT coalesce(sa.project_id, pn.id) AS id) pr
        -- The stored job, read after its lock above. "= ANY (job_)" bounds the scan of
        -- job_usage to the batch's jobs (an index scan for the array), whatever plan
        -- joins it.
        LEFT JOIN allot.job_usage k ON k.site = site_ AND k.step = '' AND k.job_id = r.j
            AND k.job_id = ANY (job_)) x (i, j, st, s, a, u, p, g, c, m, n, e,
            state, res, o, gm, un, nm, w, pid, win, status, reason, known, k_elapsed,
            k_charged, k_native, k_alloc);
    -- Fresh statistics, so that every join below is planned for the batch's real size
    -- (index lookups per record, never a scan of job_usage per record or the reverse).
    ANALYZE pg_temp.ingest_stage;

    -- Steps: kept for reports, never billed.
    WITH up AS (
        INSERT INTO allot.job_usage AS u (site, job_id, step, project_id, start_time, account,
            user_name, partition, gpus, cpus, mem_mb, nodes, elapsed_s, state)
        SELECT site_, s.job_id, s.step, s.project_id, s.start_time, s.account, s.user_name,
            s.partition, s.gpus, s.cpus, s.mem_mb, s.nodes, s.elapsed_s, s.state
        FROM pg_temp.ingest_stage s WHERE s.win AND s.step <> ''
        ORDER BY s.job_id, s.step
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
        ORDER BY s.job_id
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
    ANALYZE pg_temp.ingest_out;

    -- Rare: a new job stored by another allotd meanwhile. Lock it, read it, and
    -- charge the difference as for a stored job.
    IF EXISTS (SELECT 1 FROM pg_temp.ingest_stage s
               WHERE s.win AND s.step = '' AND NOT s.known
                 AND NOT EXISTS (SELECT 1 FROM pg_temp.ingest_out o WHERE o.idx = s.idx)) THEN
        PERFORM 1 FROM allot.job_usage u JOIN pg_temp.ingest_stage s
            ON u.site = site_ AND u.job_id = s.job_id AND u.step = '' AND u.job_id = ANY (job_)
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
          AND u.site = site_ AND u.job_id = s.job_id AND u.step = '' AND u.job_id = ANY (job_);
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
          AND u.job_id = ANY (known_jobs);
    END IF;

    INSERT INTO pg_temp.ingest_charge (idx, job_id, elapsed_s, allocation_id, delta, native_delta)
    SELECT idx, job_id, elapsed_s, allocation_id, delta, native_delta FROM pg_temp.ingest_stage
    WHERE known AND status = 'CHARGED'
    UNION ALL
    SELECT o.idx, s.job_id, s.elapsed_s, o.allocation_id, o.delta, o.native_delta
    FROM pg_temp.ingest_out o JOIN pg_temp.ingest_stage s ON s.idx = o.idx
    WHERE o.status = 'CHARGED';
    ANALYZE pg_temp.ingest_charge;

    -- Liens: a job's charge draws its campaign's hold first, then its own.
    IF EXISTS (SELECT 1 FROM allot.liens l WHERE l.status = 'active' AND l.kind = 'job'
               AND l.site = site_ AND l.job_id = ANY (job_)
               AND l.job_id IN (SELECT job_id FROM pg_temp.ingest_charge WHERE delta > 0)) THEN
        PERFORM 1 FROM allot.liens l
        WHERE l.status = 'active' AND l.id IN (
            SELECT j.id FROM allot.liens j
            WHERE j.status = 'active' AND j.kind = 'job' AND j.site = site_
              AND j.job_id = ANY (job_)
              AND j.job_id IN (SELECT job_id FROM pg_temp.ingest_charge WHERE delta > 0)
            UNION
            SELECT j.campaign FROM allot.liens j
            WHERE j.status = 'active' AND j.kind = 'job' AND j.site = site_
              AND j.job_id = ANY (job_) AND j.campaign IS NOT NULL
              AND j.job_id IN (SELECT job_id FROM pg_temp.ingest_charge WHERE delta > 0))
        ORDER BY l.id FOR UPDATE;
        UPDATE pg_temp.ingest_charge s SET own_lien = l.id, camp_lien = c.id
        FROM allot.liens l LEFT JOIN allot.liens c ON c.id = l.campaign AND c.status = 'active'
        WHERE s.delta > 0 AND l.status = 'active' AND l.kind = 'job' AND l.job_id = ANY (job_)
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
          WINDOW w AS (PARTITION BY s.job_id, s.step)) r;
END $$;

