-- 0005_site_accounts: a site's own account names. LEONARDO bills AIFAC_P02_548,
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

-- Ingestion resolves a record's account the same way (site_accounts at the batch's
-- site, else the project of its name): that join is in allot.ingest_records as
-- 0007_ingest_speed replaces it. job_usage keeps the raw account.
