-- 0002_rpc: the functions behind allot.v1's RPC. Each rpc_* takes (request
-- proto3 JSON, caller's certificate subject) and returns the response's proto3
-- JSON. One call is one statement, so one transaction.

-- ---------------------------------------------------------------- JSON of rows

CREATE FUNCTION allot.program_json(p allot.programs) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('name', p.name, 'description', p.description)
$$;

CREATE FUNCTION allot.organization_json(o allot.organizations) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('name', o.name, 'description', o.description,
        'program', (SELECT name FROM allot.programs WHERE id = o.program_id))
$$;

CREATE FUNCTION allot.project_json(p allot.projects) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('name', p.name, 'description', p.description,
        'organization', (SELECT name FROM allot.organizations WHERE id = p.organization_id),
        'users', coalesce((SELECT jsonb_agg(user_name ORDER BY user_name)
                           FROM allot.project_users WHERE project_id = p.id), '[]'))
$$;

CREATE FUNCTION allot.site_json(s allot.sites) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('name', s.name, 'description', s.description)
$$;

-- The weight shown for a resource: the one in force on the given day, or else
-- the first one to come.
CREATE FUNCTION allot.resource_json(r allot.resources, on_day date) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('site', r.site, 'partition', r.partition,
        'accelerator', r.accelerator, 'gpusPerNode', r.gpus_per_node, 'rule', r.rule,
        'coresPerGpu', r.cores_per_gpu, 'threadsPerCore', r.threads_per_core,
        'memPerGpuMb', r.mem_per_gpu_mb, 'nativeUnit', r.native_unit,
        'nativeMilliPerGpuHour', r.native_milli_per_gpu_hour,
        'weightPerMille', w.weight_per_mille,
        'weightEffectiveFrom', to_char(w.effective_from, 'YYYY-MM-DD'))
    FROM (SELECT weight_per_mille, effective_from FROM allot.resource_weights
          WHERE resource_id = r.id
          ORDER BY effective_from <= on_day DESC,
                   CASE WHEN effective_from <= on_day THEN effective_from END DESC,
                   effective_from
          LIMIT 1) w
$$;

CREATE FUNCTION allot.allocation_json(a allot.allocations) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', a.id,
        'project', (SELECT name FROM allot.projects WHERE id = a.project_id),
        'site', coalesce(a.site, ''),
        'resources', coalesce((SELECT jsonb_agg(r.site || '/' || r.partition
                                                ORDER BY r.site, r.partition)
                               FROM allot.allocation_resources ar
                               JOIN allot.resources r ON r.id = ar.resource_id
                               WHERE ar.allocation_id = a.id), '[]'),
        'gpuHours', a.amount_units / 3600000,
        'startsAt', allot.rfc3339(a.starts_at), 'endsAt', allot.rfc3339(a.ends_at),
        'transferId', a.transfer_id, 'amountUnits', a.amount_units)
$$;

CREATE FUNCTION allot.principal_json(p allot.principals) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('subject', p.subject, 'role', 'ROLE_' || upper(p.role),
        'scope', coalesce(p.scope, ''))
$$;

-- ---------------------------------------------------------------- lookups

-- Returns id, or raises not_found naming what was looked for when it is NULL.
CREATE FUNCTION allot.found(what text, name_ text, id bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION '% "%" does not exist', what, name_ USING ERRCODE = 'P0002';
    END IF;
    RETURN id;
END $$;

CREATE FUNCTION allot.program_id(name_ text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT allot.found('program', name_, (SELECT id FROM allot.programs WHERE name = name_))
$$;

CREATE FUNCTION allot.organization_id(name_ text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT allot.found('organization', name_,
                       (SELECT id FROM allot.organizations WHERE name = name_))
$$;

CREATE FUNCTION allot.project_id(name_ text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT allot.found('project', name_, (SELECT id FROM allot.projects WHERE name = name_))
$$;

-- Returns the site's name once it is known to exist.
CREATE FUNCTION allot.check_site(name_ text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT name_ WHERE allot.found('site', name_,
                                   (SELECT 1 FROM allot.sites WHERE name = name_)) IS NOT NULL
$$;

-- "site/partition" to a resource's id.
CREATE FUNCTION allot.resource_id(site_partition text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT allot.found('resource', site_partition,
                       (SELECT id FROM allot.resources
                        WHERE site || '/' || partition = site_partition))
$$;

-- ---------------------------------------------------------------- Admin

CREATE FUNCTION allot.rpc_create_program(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE p allot.programs;
BEGIN
    INSERT INTO allot.programs (name, description)
    VALUES (allot.check_name('program name', allot.j_text(req, 'name')),
            allot.j_text(req, 'description'))
    RETURNING * INTO p;
    INSERT INTO allot.accounts (kind, program_id) VALUES ('program', p.id);
    RETURN allot.program_json(p);
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'program "%" already exists', req ->> 'name' USING ERRCODE = '23505';
END $$;

CREATE FUNCTION allot.rpc_list_programs(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('programs',
        coalesce(jsonb_agg(allot.program_json(p) ORDER BY p.name), '[]'))
    FROM allot.programs p
    WHERE allot.j_text(req, 'program') IN ('', p.name)
$$;

CREATE FUNCTION allot.rpc_create_organization(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE o allot.organizations;
BEGIN
    INSERT INTO allot.organizations (name, program_id, description)
    VALUES (allot.check_name('organization name', allot.j_text(req, 'name')),
            allot.program_id(allot.j_text(req, 'program')), allot.j_text(req, 'description'))
    RETURNING * INTO o;
    RETURN allot.organization_json(o);
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'organization "%" already exists', req ->> 'name' USING ERRCODE = '23505';
END $$;

CREATE FUNCTION allot.rpc_list_organizations(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('organizations',
        coalesce(jsonb_agg(allot.organization_json(o) ORDER BY o.name), '[]'))
    FROM allot.organizations o JOIN allot.programs p ON p.id = o.program_id
    WHERE allot.j_text(req, 'program') IN ('', p.name)
      AND allot.j_text(req, 'organization') IN ('', o.name)
$$;

CREATE FUNCTION allot.add_user(project bigint, user_name_ text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF user_name_ !~ '^[A-Za-z0-9_.@-]{1,64}$' THEN
        RAISE EXCEPTION 'user name "%" is not valid', user_name_ USING ERRCODE = '22023';
    END IF;
    INSERT INTO allot.project_users (project_id, user_name) VALUES (project, user_name_)
    ON CONFLICT DO NOTHING;
END $$;

CREATE FUNCTION allot.rpc_create_project(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE p allot.projects;
BEGIN
    BEGIN
        INSERT INTO allot.projects (name, organization_id, description)
        VALUES (allot.check_name('project name', allot.j_text(req, 'name')),
                allot.organization_id(allot.j_text(req, 'organization')),
                allot.j_text(req, 'description'))
        RETURNING * INTO p;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'project "%" already exists', req ->> 'name' USING ERRCODE = '23505';
    END;
    PERFORM allot.add_user(p.id, u)
    FROM jsonb_array_elements_text(coalesce(req -> 'users', '[]')) u;
    RETURN allot.project_json(p);
END $$;

CREATE FUNCTION allot.rpc_add_project_user(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE p allot.projects;
BEGIN
    SELECT * INTO p FROM allot.projects WHERE id = allot.project_id(allot.j_text(req, 'project'));
    PERFORM allot.add_user(p.id, allot.j_text(req, 'user'));
    RETURN allot.project_json(p);
END $$;

CREATE FUNCTION allot.rpc_list_projects(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('projects',
        coalesce(jsonb_agg(allot.project_json(pr) ORDER BY pr.name), '[]'))
    FROM allot.projects pr
    JOIN allot.organizations o ON o.id = pr.organization_id
    JOIN allot.programs p ON p.id = o.program_id
    WHERE allot.j_text(req, 'program') IN ('', p.name)
      AND allot.j_text(req, 'organization') IN ('', o.name)
      AND allot.j_text(req, 'project') IN ('', pr.name)
$$;

CREATE FUNCTION allot.rpc_create_site(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE s allot.sites;
BEGIN
    INSERT INTO allot.sites (name, description)
    VALUES (allot.check_name('site name', allot.j_text(req, 'name')),
            allot.j_text(req, 'description'))
    RETURNING * INTO s;
    RETURN allot.site_json(s);
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'site "%" already exists', req ->> 'name' USING ERRCODE = '23505';
END $$;

CREATE FUNCTION allot.rpc_list_sites(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('sites', coalesce(jsonb_agg(allot.site_json(s) ORDER BY s.name), '[]'))
    FROM allot.sites s
    WHERE allot.j_text(req, 'site') IN ('', s.name)
$$;

CREATE FUNCTION allot.check_weight(w bigint) RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF w < 1 OR w > 100000 THEN
        RAISE EXCEPTION 'weight_per_mille must be between 1 and 100000, not %', w
            USING ERRCODE = '22023';
    END IF;
    RETURN w;
END $$;

CREATE FUNCTION allot.to_day(what text, value text) RETURNS date
LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- A day, or the midnight (UTC) that starts it.
    IF value !~ '^\d{4}-\d{2}-\d{2}(T00:00:00(Z|\+00:00)?)?$' THEN
        RAISE EXCEPTION '% "%" is not a date (YYYY-MM-DD)', what, value USING ERRCODE = '22007';
    END IF;
    RETURN substr(value, 1, 10)::date;
EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
    RAISE EXCEPTION '% "%" is not a date (YYYY-MM-DD)', what, value USING ERRCODE = '22007';
END $$;

CREATE FUNCTION allot.rpc_create_resource(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r allot.resources;
    rule_ text := allot.j_text(req, 'rule');
    cores bigint := allot.j_int(req, 'coresPerGpu');
    threads bigint := allot.j_int(req, 'threadsPerCore');
    gpn bigint := allot.j_int(req, 'gpusPerNode');
    mem bigint := allot.j_int(req, 'memPerGpuMb');
    native bigint := allot.j_int(req, 'nativeMilliPerGpuHour');
BEGIN
    IF rule_ NOT IN ('BILLING_RULE_GPU_SHARE', 'BILLING_RULE_WHOLE_NODE') THEN
        RAISE EXCEPTION 'rule must be BILLING_RULE_GPU_SHARE or BILLING_RULE_WHOLE_NODE, not "%"',
            rule_ USING ERRCODE = '22023';
    END IF;
    IF gpn < 1 OR gpn > 1024 THEN
        RAISE EXCEPTION 'gpus_per_node must be between 1 and 1024, not %', gpn USING ERRCODE = '22023';
    END IF;
    IF rule_ = 'BILLING_RULE_GPU_SHARE' AND (cores < 1 OR cores > 100000) THEN
        RAISE EXCEPTION 'cores_per_gpu must be between 1 and 100000 for BILLING_RULE_GPU_SHARE, not %',
            cores USING ERRCODE = '22023';
    END IF;
    IF threads < 0 OR threads > 16 OR cores < 0 OR cores > 100000 THEN
        RAISE EXCEPTION 'threads_per_core must be 0 (meaning 1) to 16 and cores_per_gpu 0 to 100000'
            USING ERRCODE = '22023';
    END IF;
    IF mem < 0 OR mem > 1000000000 THEN
        RAISE EXCEPTION 'mem_per_gpu_mb must be between 0 and 1000000000, not %', mem
            USING ERRCODE = '22023';
    END IF;
    IF native < 0 OR native > 1000000000 THEN
        RAISE EXCEPTION 'native_milli_per_gpu_hour must be between 0 and 1000000000, not %', native
            USING ERRCODE = '22023';
    END IF;
    IF allot.j_text(req, 'nativeUnit') = '' THEN
        RAISE EXCEPTION 'native_unit is required (the site''s own unit, such as "core-h")'
            USING ERRCODE = '22023';
    END IF;
    BEGIN
        INSERT INTO allot.resources (site, partition, accelerator, gpus_per_node, rule,
            cores_per_gpu, threads_per_core, mem_per_gpu_mb, native_unit,
            native_milli_per_gpu_hour)
        VALUES (allot.check_site(allot.j_text(req, 'site')), allot.j_text(req, 'partition'),
            allot.j_text(req, 'accelerator'), gpn, rule_, cores, greatest(threads, 1), mem,
            allot.j_text(req, 'nativeUnit'), native)
        RETURNING * INTO r;
    EXCEPTION
    WHEN unique_violation THEN
        RAISE EXCEPTION 'resource "%/%" already exists', req ->> 'site', req ->> 'partition'
            USING ERRCODE = '23505';
    WHEN check_violation THEN
        RAISE EXCEPTION 'partition "%" or accelerator "%" is not valid', req ->> 'partition',
            req ->> 'accelerator' USING ERRCODE = '22023';
    END;
    INSERT INTO allot.resource_weights (resource_id, effective_from, weight_per_mille)
    VALUES (r.id, allot.to_day('weight_effective_from', allot.j_text(req, 'weightEffectiveFrom')),
            allot.check_weight(allot.j_int(req, 'weightPerMille')));
    RETURN allot.resource_json(r, allot.to_day('weight_effective_from',
                                                allot.j_text(req, 'weightEffectiveFrom')));
END $$;

CREATE FUNCTION allot.rpc_set_resource_weight(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r allot.resources;
    day date := allot.to_day('effective_from', allot.j_text(req, 'effectiveFrom'));
    w integer := allot.check_weight(allot.j_int(req, 'weightPerMille'));
    old integer;
BEGIN
    SELECT * INTO r FROM allot.resources
    WHERE id = allot.resource_id(allot.j_text(req, 'site') || '/' || allot.j_text(req, 'partition'));
    INSERT INTO allot.resource_weights (resource_id, effective_from, weight_per_mille)
    VALUES (r.id, day, w)
    ON CONFLICT (resource_id, effective_from) DO NOTHING;
    SELECT weight_per_mille INTO old FROM allot.resource_weights
    WHERE resource_id = r.id AND effective_from = day;
    IF old <> w THEN
        RAISE EXCEPTION 'resource "%/%" already has weight % from %', r.site, r.partition, old, day
            USING ERRCODE = '23505';
    END IF;
    RETURN allot.resource_json(r, day);
END $$;

CREATE FUNCTION allot.rpc_list_resources(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('resources',
        coalesce(jsonb_agg(allot.resource_json(r, current_date) ORDER BY r.site, r.partition), '[]'))
    FROM allot.resources r
    WHERE allot.j_text(req, 'site') IN ('', r.site)
$$;

CREATE FUNCTION allot.rpc_create_allocation(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    tid text := allot.j_text(req, 'transferId');
    hours bigint := allot.j_int(req, 'gpuHours');
    project bigint;
    site_ text := nullif(allot.j_text(req, 'site'), '');
    starts timestamptz := allot.to_time('starts_at', allot.j_text(req, 'startsAt'));
    ends timestamptz := allot.to_time('ends_at', allot.j_text(req, 'endsAt'));
    res bigint[];
    hash text;
    existing allot.transfers;
    a allot.allocations;
    program_account bigint;
    alloc_account bigint;
BEGIN
    IF tid = '' OR length(tid) > 200 THEN
        RAISE EXCEPTION 'transfer_id is required (1 to 200 characters, chosen by the caller)'
            USING ERRCODE = '22023';
    END IF;
    IF hours < 1 OR hours > 1000000000 THEN
        RAISE EXCEPTION 'gpu_hours must be between 1 and 1000000000, not %', hours
            USING ERRCODE = '22023';
    END IF;
    IF ends <= starts THEN
        RAISE EXCEPTION 'ends_at (%) must be after starts_at (%)', allot.rfc3339(ends),
            allot.rfc3339(starts) USING ERRCODE = '22023';
    END IF;
    project := allot.project_id(allot.j_text(req, 'project'));
    IF site_ IS NOT NULL THEN
        PERFORM allot.check_site(site_);
    END IF;
    SELECT coalesce(array_agg(DISTINCT allot.resource_id(x) ORDER BY allot.resource_id(x)), '{}')
    INTO res FROM jsonb_array_elements_text(coalesce(req -> 'resources', '[]')) x;
    IF site_ IS NOT NULL AND cardinality(res) > 0 THEN
        RAISE EXCEPTION 'give a site or resources, not both' USING ERRCODE = '22023';
    END IF;
    hash := encode(sha256(convert_to(jsonb_build_object('project', project, 'site', site_,
        'resources', to_jsonb(res), 'units', hours * 3600000,
        'starts', allot.rfc3339(starts), 'ends', allot.rfc3339(ends))::text, 'UTF8')), 'hex');

    -- The same transfer id from several callers at once: one creates, the others replay.
    PERFORM pg_advisory_xact_lock(hashtextextended('allot.transfer:' || tid, 0));
    SELECT * INTO existing FROM allot.transfers WHERE transfer_id = tid;
    IF FOUND THEN
        IF existing.body_hash <> hash OR existing.kind <> 'grant' THEN
            RAISE EXCEPTION 'transfer id "%" was already used with a different body', tid
                USING ERRCODE = '23505';
        END IF;
        SELECT al.* INTO a FROM allot.allocations al WHERE al.transfer_id = tid;
        RETURN allot.allocation_json(a);
    END IF;

    INSERT INTO allot.allocations (project_id, site, starts_at, ends_at, amount_units, transfer_id)
    VALUES (project, site_, starts, ends, hours * 3600000, tid)
    RETURNING * INTO a;
    INSERT INTO allot.allocation_resources (allocation_id, resource_id)
    SELECT a.id, unnest(res);
    INSERT INTO allot.accounts (kind, allocation_id) VALUES ('allocation', a.id)
    RETURNING id INTO alloc_account;
    SELECT ac.id INTO program_account
    FROM allot.projects p
    JOIN allot.organizations o ON o.id = p.organization_id
    JOIN allot.accounts ac ON ac.program_id = o.program_id
    WHERE p.id = project;
    INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id, amount,
        body_hash, principal, reason)
    VALUES (tid, 'grant', program_account, alloc_account, a.amount_units, hash, principal,
        'allocation ' || a.id);
    RETURN allot.allocation_json(a);
END $$;

CREATE FUNCTION allot.rpc_list_allocations(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('allocations',
        coalesce(jsonb_agg(allot.allocation_json(a) ORDER BY a.id), '[]'))
    FROM allot.allocations a JOIN allot.projects p ON p.id = a.project_id
    WHERE allot.j_text(req, 'project') IN ('', p.name)
      AND allot.j_text(req, 'site') IN ('', coalesce(a.site, ''))
$$;

CREATE FUNCTION allot.rpc_create_principal(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    role_ text := lower(regexp_replace(allot.j_text(req, 'role'), '^ROLE_', ''));
    p allot.principals;
BEGIN
    IF role_ NOT IN ('admin', 'collector', 'scheduler', 'project', 'auditor') THEN
        RAISE EXCEPTION 'role must be one of ROLE_ADMIN, ROLE_COLLECTOR, ROLE_SCHEDULER, ROLE_PROJECT, ROLE_AUDITOR, not "%"',
            req ->> 'role' USING ERRCODE = '22023';
    END IF;
    IF allot.j_text(req, 'subject') = '' THEN
        RAISE EXCEPTION 'subject is required' USING ERRCODE = '22023';
    END IF;
    IF (role_ IN ('admin', 'auditor')) <> (allot.j_text(req, 'scope') = '') THEN
        RAISE EXCEPTION 'role % %', role_, CASE WHEN role_ IN ('admin', 'auditor')
            THEN 'takes no scope' ELSE 'needs a scope (a site, or a project)' END
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO allot.principals (subject, role, scope)
    VALUES (allot.j_text(req, 'subject'), role_, nullif(allot.j_text(req, 'scope'), ''))
    RETURNING * INTO p;
    RETURN allot.principal_json(p);
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'principal "%" already exists', req ->> 'subject' USING ERRCODE = '23505';
END $$;

CREATE FUNCTION allot.rpc_list_principals(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('principals',
        coalesce(jsonb_agg(allot.principal_json(p) ORDER BY p.subject), '[]'))
    FROM allot.principals p
$$;

-- ---------------------------------------------------------------- balances

-- Site-native units per normalized unit for an allocation's scope, when every
-- resource in it counts in the same unit at the same ratio (weights in force
-- today); NULL otherwise.
CREATE FUNCTION allot.allocation_native(a allot.allocations, OUT unit text, OUT per_unit numeric)
LANGUAGE sql STABLE AS $$
    WITH scope AS (
        SELECT r.* FROM allot.resources r
        WHERE CASE
            WHEN EXISTS (SELECT 1 FROM allot.allocation_resources WHERE allocation_id = a.id)
                THEN r.id IN (SELECT resource_id FROM allot.allocation_resources
                              WHERE allocation_id = a.id)
            WHEN a.site IS NOT NULL THEN r.site = a.site
            ELSE true END
    ), ratios AS (
        SELECT s.native_unit,
               s.native_milli_per_gpu_hour::numeric / ((allot.resource_json(s, current_date)
                   ->> 'weightPerMille')::numeric * 3600000) AS ratio
        FROM scope s
    )
    SELECT min(native_unit), min(ratio) FROM ratios
    HAVING count(DISTINCT native_unit) = 1 AND count(DISTINCT ratio) = 1
$$;

CREATE FUNCTION allot.balance_json(granted bigint, charged bigint, pending bigint,
    unit text, native_charged numeric, per_unit numeric) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'grantedUnits', granted, 'chargedUnits', charged, 'pendingUnits', pending,
        'availableUnits', granted - charged - pending,
        'grantedGpuHours', round(granted / 3600000.0, 6),
        'chargedGpuHours', round(charged / 3600000.0, 6),
        'pendingGpuHours', round(pending / 3600000.0, 6),
        'availableGpuHours', round((granted - charged - pending) / 3600000.0, 6),
        'nativeUnit', coalesce(unit, ''),
        'nativeGranted', coalesce(round(granted * per_unit, 3), 0),
        'nativeCharged', coalesce(CASE WHEN unit IS NOT NULL THEN round(native_charged, 3) END, 0),
        'nativePending', coalesce(round(pending * per_unit, 3), 0),
        'nativeAvailable', coalesce(round(granted * per_unit - native_charged - pending * per_unit, 3), 0))
$$;

CREATE FUNCTION allot.rpc_get_balance(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    project bigint := allot.project_id(allot.j_text(req, 'project'));
    rows_ jsonb;
    total jsonb;
BEGIN
    WITH per AS (
        SELECT a.*, n.unit, n.per_unit, allot.allocation_json(a) -> 'resources' AS listed,
            coalesce((SELECT sum(t.amount) FROM allot.transfers t
                      WHERE t.credit_account_id = ac.id AND t.kind = 'grant'), 0)::bigint AS granted,
            coalesce((SELECT sum(t.amount) FROM allot.transfers t
                      WHERE t.debit_account_id = ac.id AND t.kind = 'charge'), 0)::bigint AS charged,
            coalesce((SELECT sum(j.native_milli) FROM allot.job_usage j
                      WHERE j.allocation_id = a.id AND j.step = ''), 0) / 1000.0 AS native_charged
        FROM allot.allocations a
        JOIN allot.accounts ac ON ac.allocation_id = a.id
        LEFT JOIN LATERAL allot.allocation_native(a) n ON true
        WHERE a.project_id = project
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'allocationId', per.id,
               'scope', CASE
                   WHEN jsonb_array_length(per.listed) > 0
                       THEN (SELECT string_agg(x, ', ') FROM jsonb_array_elements_text(per.listed) x)
                   WHEN per.site IS NOT NULL THEN 'site ' || per.site
                   ELSE 'all sites' END,
               'startsAt', allot.rfc3339(per.starts_at), 'endsAt', allot.rfc3339(per.ends_at),
               'balance', allot.balance_json(per.granted, per.charged, 0, per.unit,
                                             per.native_charged, per.per_unit))
               ORDER BY per.id), '[]'),
           allot.balance_json(coalesce(sum(per.granted), 0)::bigint,
               coalesce(sum(per.charged), 0)::bigint, 0,
               CASE WHEN count(DISTINCT per.unit) = 1 AND bool_and(per.unit IS NOT NULL)
                    THEN min(per.unit) END,
               coalesce(sum(per.native_charged), 0),
               NULL)
    INTO rows_, total
    FROM per;
    -- The total's native figures are sums of the allocations' (ratios may differ).
    IF total ->> 'nativeUnit' <> '' THEN
        SELECT total || jsonb_build_object(
            'nativeGranted', sum((e -> 'balance' ->> 'nativeGranted')::numeric),
            'nativePending', sum((e -> 'balance' ->> 'nativePending')::numeric),
            'nativeAvailable', sum((e -> 'balance' ->> 'nativeAvailable')::numeric))
        INTO total FROM jsonb_array_elements(rows_) e;
    END IF;
    RETURN jsonb_build_object('project', allot.j_text(req, 'project'), 'total', total,
                              'allocations', rows_);
END $$;

-- ---------------------------------------------------------------- ingestion

-- The resources of a site and their weights, for allotd's billing (ingest.c).
CREATE FUNCTION allot.site_billing(site_ text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM allot.check_site(site_);
    RETURN coalesce((
        SELECT jsonb_agg(jsonb_build_object('partition', r.partition, 'rule', r.rule,
            'gpusPerNode', r.gpus_per_node, 'coresPerGpu', r.cores_per_gpu,
            'threadsPerCore', r.threads_per_core, 'memPerGpuMb', r.mem_per_gpu_mb,
            'nativeUnit', r.native_unit, 'nativeMilliPerGpuHour', r.native_milli_per_gpu_hour,
            'weights', (SELECT jsonb_agg(jsonb_build_object(
                            'from', extract(epoch FROM w.effective_from)::bigint,
                            'perMille', w.weight_per_mille) ORDER BY w.effective_from)
                        FROM allot.resource_weights w WHERE w.resource_id = r.id))
            ORDER BY r.partition)
        FROM allot.resources r WHERE r.site = site_), '[]');
END $$;

-- The allocation a job's charges go to: the project's allocation whose window
-- holds the job's start and whose scope covers the resource; listed resources
-- before a whole site before all sites, then the one ending first, then the oldest.
CREATE FUNCTION allot.choose_allocation(project bigint, resource bigint, at timestamptz)
RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT a.id
    FROM allot.allocations a
    CROSS JOIN LATERAL (SELECT
        EXISTS (SELECT 1 FROM allot.allocation_resources ar
                WHERE ar.allocation_id = a.id AND ar.resource_id = resource) AS listed,
        EXISTS (SELECT 1 FROM allot.allocation_resources ar
                WHERE ar.allocation_id = a.id) AS has_list) s
    WHERE a.project_id = project AND a.starts_at <= at AND at < a.ends_at
      AND (s.listed
           OR (NOT s.has_list AND a.site = (SELECT site FROM allot.resources WHERE id = resource))
           OR (NOT s.has_list AND a.site IS NULL))
    ORDER BY CASE WHEN s.listed THEN 0 WHEN a.site IS NOT NULL THEN 1 ELSE 2 END,
             a.ends_at, a.id
    LIMIT 1
$$;

CREATE FUNCTION allot.ingest_result(rec jsonb, status text, units bigint, alloc bigint,
    reason text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('index', coalesce((rec ->> 'index')::int, 0),
        'jobId', allot.j_text(rec, 'jobId'), 'step', allot.j_text(rec, 'step'),
        'status', 'INGEST_STATUS_' || status, 'chargedUnits', units,
        'allocationId', coalesce(alloc, 0), 'reason', reason)
$$;

-- One record: returns its result. Runs inside rpc_ingest's transaction.
CREATE FUNCTION allot.ingest_record(site_ text, rec jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    job text := allot.j_text(rec, 'jobId');
    step_ text := allot.j_text(rec, 'step');
    elapsed bigint;
    project bigint;
    started timestamptz := allot.try_time(allot.j_text(rec, 'startTime'));
    bill jsonb := rec -> 'bill';
    resource bigint;
    cur allot.job_usage;
    alloc bigint;
    total bigint;
    delta bigint;
BEGIN
    IF rec ? 'rejectReason' THEN
        RETURN allot.ingest_result(rec, 'REJECTED', 0, NULL, rec ->> 'rejectReason');
    END IF;
    IF job = '' OR length(job) > 128 OR length(step_) > 64 THEN
        RETURN allot.ingest_result(rec, 'REJECTED', 0, NULL, 'job_id must be 1 to 128 characters and step at most 64');
    END IF;
    BEGIN
        elapsed := allot.j_int(rec, 'elapsedS');
    EXCEPTION WHEN invalid_parameter_value THEN
        RETURN allot.ingest_result(rec, 'REJECTED', 0, NULL, 'elapsed_s is not an integer');
    END;
    IF elapsed < 0 THEN
        RETURN allot.ingest_result(rec, 'REJECTED', 0, NULL, 'elapsed_s must not be negative');
    END IF;
    SELECT id INTO project FROM allot.projects WHERE name = allot.j_text(rec, 'account');
    IF NOT FOUND THEN
        RETURN allot.ingest_result(rec, 'REJECTED', 0, NULL,
            format('unknown account "%s"', allot.j_text(rec, 'account')));
    END IF;

    IF step_ <> '' THEN
        -- Steps repeat their job's allocation: kept for reports, never billed.
        INSERT INTO allot.job_usage AS u (site, job_id, step, project_id, start_time, account,
            user_name, partition, gpus, cpus, mem_mb, nodes, elapsed_s, state)
        VALUES (site_, job, step_, project, started, allot.j_text(rec, 'account'),
            allot.j_text(rec, 'user'), allot.j_text(rec, 'partition'), allot.j_int(rec, 'gpus'),
            allot.j_int(rec, 'cpus'), allot.j_int(rec, 'memMb'), allot.j_int(rec, 'nodes'),
            elapsed, allot.j_text(rec, 'state'))
        ON CONFLICT (site, job_id, step) DO UPDATE
            SET elapsed_s = excluded.elapsed_s, state = excluded.state, updated_at = now()
            WHERE u.elapsed_s < excluded.elapsed_s
        RETURNING * INTO cur;
        IF FOUND THEN
            RETURN allot.ingest_result(rec, 'RECORDED', 0, NULL, '');
        END IF;
        RETURN allot.ingest_result(rec, 'DUPLICATE', 0, NULL, '');
    END IF;

    IF bill IS NULL OR started IS NULL THEN
        RETURN allot.ingest_result(rec, 'REJECTED', 0, NULL, 'the record carries no charge');
    END IF;
    resource := allot.resource_id(bill ->> 'resource');
    total := (bill ->> 'chargeUnits')::bigint;

    SELECT * INTO cur FROM allot.job_usage WHERE site = site_ AND job_id = job AND step = ''
    FOR UPDATE;
    IF NOT FOUND THEN
        alloc := allot.choose_allocation(project, resource, started);
        IF alloc IS NULL THEN
            RETURN allot.ingest_result(rec, 'REJECTED', 0, NULL,
                format('no allocation of project "%s" covers %s at %s',
                       allot.j_text(rec, 'account'), bill ->> 'resource', allot.rfc3339(started)));
        END IF;
        -- Another allotd may insert the same job at the same time: then take its row.
        INSERT INTO allot.job_usage (site, job_id, step, project_id, resource_id, allocation_id,
            start_time, account, elapsed_s)
        VALUES (site_, job, '', project, resource, alloc, started, allot.j_text(rec, 'account'), 0)
        ON CONFLICT (site, job_id, step) DO NOTHING
        RETURNING * INTO cur;
        IF FOUND THEN
            cur.elapsed_s := -1; -- inserted by this call: nothing was reported before
        ELSE
            SELECT * INTO cur FROM allot.job_usage
            WHERE site = site_ AND job_id = job AND step = '' FOR UPDATE;
        END IF;
    END IF;
    IF elapsed <= cur.elapsed_s THEN
        RETURN allot.ingest_result(rec, 'DUPLICATE', 0, cur.allocation_id, '');
    END IF;
    delta := greatest(total - cur.charged_units, 0);
    UPDATE allot.job_usage SET
        elapsed_s = elapsed, state = allot.j_text(rec, 'state'),
        user_name = allot.j_text(rec, 'user'), partition = allot.j_text(rec, 'partition'),
        gpus = allot.j_int(rec, 'gpus'), cpus = allot.j_int(rec, 'cpus'),
        mem_mb = allot.j_int(rec, 'memMb'), nodes = allot.j_int(rec, 'nodes'),
        occupied_gpus = (bill ->> 'occupiedGpus')::bigint, gpu_ms = (bill ->> 'gpuMs')::bigint,
        weight_per_mille = (bill ->> 'weightPerMille')::int,
        charged_units = cur.charged_units + delta,
        native_milli = greatest(native_milli, (bill ->> 'nativeMilli')::bigint),
        updated_at = now()
    WHERE site = site_ AND job_id = job AND step = '';
    IF delta > 0 THEN
        INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id,
            amount, body_hash, principal, reason)
        SELECT format('charge:%s:%s:%s', site_, job, elapsed), 'charge', ac.id,
               (SELECT id FROM allot.accounts WHERE kind = 'consumed'), delta,
               encode(sha256(convert_to(format('%s|%s|%s|%s', site_, job, elapsed, delta), 'UTF8')), 'hex'),
               principal, format('job %s at %s, %s s', job, site_, elapsed)
        FROM allot.accounts ac WHERE ac.allocation_id = cur.allocation_id;
    END IF;
    RETURN allot.ingest_result(rec, 'CHARGED', delta, cur.allocation_id, '');
END $$;

CREATE FUNCTION allot.rpc_ingest(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    site_ text := allot.check_site(allot.j_text(req, 'site'));
    batch text := allot.j_text(req, 'batchId');
    hash text := allot.j_text(req, 'bodyHash');
    seen text;
    results jsonb := '[]';
    r jsonb;
    rec jsonb;
BEGIN
    IF batch = '' OR length(batch) > 200 THEN
        RAISE EXCEPTION 'batch_id is required (1 to 200 characters)' USING ERRCODE = '22023';
    END IF;
    INSERT INTO allot.ingest_batches (site, batch_id, body_hash, principal)
    VALUES (site_, batch, hash, principal)
    ON CONFLICT (site, batch_id) DO NOTHING;
    SELECT body_hash INTO seen FROM allot.ingest_batches WHERE site = site_ AND batch_id = batch;
    IF seen <> hash THEN
        RAISE EXCEPTION 'batch "%" of site "%" was already sent with different records', batch, site_
            USING ERRCODE = '23505';
    END IF;
    -- Jobs in one order whatever the batch's, so that concurrent batches lock their
    -- rows in the same order and cannot deadlock; answers go back in the batch's order.
    FOR rec IN SELECT value FROM jsonb_array_elements(coalesce(req -> 'records', '[]'))
               ORDER BY value ->> 'jobId', value ->> 'step' LOOP
        r := allot.ingest_record(site_, rec, principal);
        results := results || jsonb_build_array(r);
    END LOOP;
    SELECT coalesce(jsonb_agg(e ORDER BY (e ->> 'index')::int), '[]') INTO results
    FROM jsonb_array_elements(results) e;
    RETURN jsonb_build_object('batchId', batch, 'results', results,
        'charged', (SELECT count(*) FROM jsonb_array_elements(results) e
                    WHERE e ->> 'status' = 'INGEST_STATUS_CHARGED'),
        'duplicates', (SELECT count(*) FROM jsonb_array_elements(results) e
                       WHERE e ->> 'status' = 'INGEST_STATUS_DUPLICATE'),
        'rejected', (SELECT count(*) FROM jsonb_array_elements(results) e
                     WHERE e ->> 'status' = 'INGEST_STATUS_REJECTED'),
        'recorded', (SELECT count(*) FROM jsonb_array_elements(results) e
                     WHERE e ->> 'status' = 'INGEST_STATUS_RECORDED'));
END $$;

-- ---------------------------------------------------------------- invariants

-- Raises when the books do not hold together; returns true otherwise. For tests
-- and for operators (SELECT allot.check_ledger()).
CREATE FUNCTION allot.check_ledger() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE bad text;
BEGIN
    IF (SELECT coalesce(sum(balance), 0) FROM allot.account_balances) <> 0 THEN
        RAISE EXCEPTION 'ledger does not balance: accounts sum to %',
            (SELECT sum(balance) FROM allot.account_balances);
    END IF;
    SELECT format('allocation %s: charged %s, jobs say %s', a.id, t.charged, j.charged) INTO bad
    FROM allot.allocations a
    JOIN allot.accounts ac ON ac.allocation_id = a.id
    CROSS JOIN LATERAL (SELECT coalesce(sum(amount), 0) AS charged FROM allot.transfers
                        WHERE debit_account_id = ac.id AND kind = 'charge') t
    CROSS JOIN LATERAL (SELECT coalesce(sum(charged_units), 0) AS charged FROM allot.job_usage
                        WHERE allocation_id = a.id AND step = '') j
    WHERE t.charged <> j.charged
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'ledger and job usage disagree: %', bad;
    END IF;
    RETURN true;
END $$;
