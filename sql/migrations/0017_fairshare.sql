-- 0017_fairshare: what allotd's fair-share engine reads (daemon/share.c): the usage of
-- each (project, user) per site and day, kept current at ingestion; explicit shares of
-- any node of the tree; and one statement that reads the whole state at an instant.
--
-- A job counts on the day (UTC) it started, with all its charged units, as in
-- site_days (0008): allot.usage_day. Steps are not counted (they are not billed). The
-- rows are kept by statement-level triggers on job_usage with transition tables: one
-- aggregate of the statement's rows (new minus old) and one write per key that moved,
-- whoever writes job_usage (the ingest merge, heartbeats, plain SQL); the merge itself
-- is not changed. The triggers are named usage_days_*, so they fire after site_days_*
-- (PostgreSQL fires a table's triggers of one event in name order): the lock order is
-- job_usage rows, the site's site_days lock, then the site's usage_days lock.

CREATE TABLE allot.usage_days (
    project_id bigint NOT NULL,
    user_name text NOT NULL,
    site text NOT NULL,
    day date NOT NULL,
    units bigint NOT NULL DEFAULT 0 CHECK (units >= 0),
    PRIMARY KEY (project_id, user_name, site, day)
);

-- Adds each row of d (a key and its difference) to usage_days, under a transaction
-- advisory lock per site taken in order, as site_days_add does and for its reason: an
-- UPDATE of the keys present, then an INSERT of the others, with no ON CONFLICT (a
-- negative difference as a proposed row would fail the CHECK).
CREATE FUNCTION allot.usage_days_add(d allot.usage_days[]) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtext('allot.usage_days'), hashtext(site))
    FROM (SELECT DISTINCT site FROM unnest(d) ORDER BY site) s;
    UPDATE allot.usage_days u SET units = u.units + x.units
    FROM unnest(d) x
    WHERE u.project_id = x.project_id AND u.user_name = x.user_name AND u.site = x.site
      AND u.day = x.day;
    INSERT INTO allot.usage_days
    SELECT x.* FROM unnest(d) x
    WHERE NOT EXISTS (SELECT 1 FROM allot.usage_days u
                      WHERE u.project_id = x.project_id AND u.user_name = x.user_name
                        AND u.site = x.site AND u.day = x.day);
$$;

-- One function for the four triggers, each naming its transition tables new_rows
-- and/or old_rows: the statement's job rows aggregated once, new minus old, the keys
-- whose units did not move left out.
CREATE FUNCTION allot.usage_days_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE allot.usage_days;
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM allot.usage_days_add(array_agg(ROW(project_id, user_name, site, day, u)
                                               ::allot.usage_days))
        FROM (SELECT project_id, user_name, site, allot.usage_day(start_time, updated_at) AS day,
                  sum(charged_units) AS u
              FROM new_rows WHERE step = '' GROUP BY 1, 2, 3, 4
              HAVING sum(charged_units) <> 0) x;
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM allot.usage_days_add(array_agg(ROW(project_id, user_name, site, day, u)
                                               ::allot.usage_days))
        FROM (SELECT project_id, user_name, site, day, sum(u) AS u
              FROM (SELECT project_id, user_name, site,
                        allot.usage_day(start_time, updated_at) AS day, charged_units AS u
                    FROM new_rows WHERE step = ''
                    UNION ALL
                    SELECT project_id, user_name, site, allot.usage_day(start_time, updated_at),
                        -charged_units
                    FROM old_rows WHERE step = '') y
              GROUP BY 1, 2, 3, 4
              HAVING sum(u) <> 0) x;
    ELSE
        PERFORM allot.usage_days_add(array_agg(ROW(project_id, user_name, site, day, -u)
                                               ::allot.usage_days))
        FROM (SELECT project_id, user_name, site, allot.usage_day(start_time, updated_at) AS day,
                  sum(charged_units) AS u
              FROM old_rows WHERE step = '' GROUP BY 1, 2, 3, 4
              HAVING sum(charged_units) <> 0) x;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_days_insert AFTER INSERT ON allot.job_usage
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION allot.usage_days_apply();
CREATE TRIGGER usage_days_update AFTER UPDATE ON allot.job_usage
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION allot.usage_days_apply();
CREATE TRIGGER usage_days_delete AFTER DELETE ON allot.job_usage
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION allot.usage_days_apply();
CREATE TRIGGER usage_days_truncate AFTER TRUNCATE ON allot.job_usage
    FOR EACH STATEMENT EXECUTE FUNCTION allot.usage_days_apply();

-- The jobs stored before this migration, once.
INSERT INTO allot.usage_days (project_id, user_name, site, day, units)
SELECT project_id, user_name, site, allot.usage_day(start_time, updated_at), sum(charged_units)
FROM allot.job_usage WHERE step = ''
GROUP BY 1, 2, 3, 4 HAVING sum(charged_units) <> 0;

-- Proves usage_days equal to job_usage: raises naming the first key that differs.
-- Reads both whole: for tests and operators, not for requests.
CREATE FUNCTION allot.check_usage_days() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE bad record;
BEGIN
    SELECT * INTO bad FROM (
        SELECT project_id, user_name, site, day, units AS stored FROM allot.usage_days
        WHERE units <> 0) d
    FULL JOIN (
        SELECT project_id, user_name, site, allot.usage_day(start_time, updated_at) AS day,
            sum(charged_units) AS counted
        FROM allot.job_usage WHERE step = '' GROUP BY 1, 2, 3, 4
        HAVING sum(charged_units) <> 0) j
        USING (project_id, user_name, site, day)
    WHERE d.stored IS DISTINCT FROM j.counted
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'usage_days of project % user "%" at % on % hold % units, job_usage %',
            bad.project_id, bad.user_name, bad.site, bad.day, bad.stored, bad.counted;
    END IF;
    RETURN true;
END $$;

-- ---------------------------------------------------------------- explicit shares

-- A node's shares set by an operator, winning over the default (a project's granted
-- GPU-hours, the sum of the children's for an organization or a program, 1 for a
-- user). node_id is the program's, organization's or project's id; a user is named
-- by its project's id and its name.
CREATE TABLE allot.fairshare_shares (
    kind text NOT NULL CHECK (kind IN ('program', 'organization', 'project', 'user')),
    node_id bigint NOT NULL,
    user_name text NOT NULL DEFAULT '',
    shares double precision NOT NULL CHECK (shares >= 0 AND shares < 'Infinity'),
    principal text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, node_id, user_name),
    CHECK ((kind = 'user') = (user_name <> ''))
);

-- FairShare.SetShares: sets (or, with clear, removes) the explicit shares of exactly
-- one node: a program, an organization, a project, or a user of a project (project and
-- user). Takes effect at allotd's next recompute (fairshare_period_s).
CREATE FUNCTION allot.rpc_set_shares(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    prog text := allot.j_text(req, 'program');
    org text := allot.j_text(req, 'organization');
    proj text := allot.j_text(req, 'project');
    usr text := allot.j_text(req, 'user');
    clr boolean := coalesce((req ->> 'clear')::boolean, false);
    sh double precision;
    k text;
    id bigint;
    named int := (prog <> '')::int + (org <> '')::int + (proj <> '')::int;
BEGIN
    IF named <> 1 OR (usr <> '' AND proj = '') THEN
        RAISE EXCEPTION 'name one node: a program, an organization, a project, or a project and a user'
            USING ERRCODE = '22023';
    END IF;
    BEGIN
        sh := coalesce(req ->> 'shares', '0')::double precision;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'shares must be a number, not "%"', req ->> 'shares' USING ERRCODE = '22023';
    END;
    IF NOT clr AND (sh < 0 OR sh = 'Infinity' OR sh = 'NaN') THEN
        RAISE EXCEPTION 'shares must be a finite number, 0 or more, not %', sh
            USING ERRCODE = '22023';
    END IF;
    IF prog <> '' THEN
        k := 'program';
        id := allot.program_id(prog);
    ELSIF org <> '' THEN
        k := 'organization';
        id := allot.organization_id(org);
    ELSE
        k := CASE WHEN usr <> '' THEN 'user' ELSE 'project' END;
        id := allot.project_id(proj);
        IF usr <> '' AND usr !~ '^[A-Za-z0-9_.@-]{1,64}$' THEN
            RAISE EXCEPTION 'user "%" is not valid', usr USING ERRCODE = '22023';
        END IF;
    END IF;
    IF clr THEN
        DELETE FROM allot.fairshare_shares
        WHERE kind = k AND node_id = id AND user_name = usr;
    ELSE
        INSERT INTO allot.fairshare_shares (kind, node_id, user_name, shares, principal)
        VALUES (k, id, usr, sh, principal)
        ON CONFLICT (kind, node_id, user_name) DO UPDATE
        SET shares = EXCLUDED.shares, principal = EXCLUDED.principal, updated_at = now();
    END IF;
    RETURN jsonb_build_object('program', prog, 'organization', org, 'project', proj,
        'user', usr, 'shares', CASE WHEN clr THEN 0 ELSE sh END, 'explicit', NOT clr);
END $$;

-- ---------------------------------------------------------------- the state at an instant

-- Everything the engine needs, as of at, in one statement (one snapshot), ordered by
-- kind and project: allotd then builds one project's nodes at a time (at 100,000 users
-- its build took 96 ms of CPU in PostgreSQL's hash order, 35 ms in this one). Kinds:
--   0 project:  project_id; s1 program, s2 organization, s3 project;
--               n1 GPU-hours granted by the allocations active at at (0: none),
--               n2, n3 their window (epoch s: earliest start, latest end; NULL: none),
--               n4, n5, n6 the explicit shares of the program, organization, project
--   1 user:     project_id; s1 user (project_users and whoever was charged; a job
--               reported without a user counts for the user "-"); n1 its explicit shares
--   2 usage:    project_id; s1 user, n1 the day (epoch s of 00:00 UTC), n2 GPU-hours
--               charged on it at all sites
--   3 account:  project_id; s1 site, s2 the site's account name (site_accounts)
CREATE FUNCTION allot.fairshare_state(at timestamptz)
RETURNS TABLE (kind int, project_id bigint, s1 text, s2 text, s3 text,
    n1 double precision, n2 double precision, n3 double precision,
    n4 double precision, n5 double precision, n6 double precision)
LANGUAGE sql STABLE AS $$
    SELECT 0, pr.id, pg.name, o.name, pr.name,
        coalesce(a.units, 0) / 3600000.0, a.starts, a.ends,
        (SELECT shares FROM allot.fairshare_shares s
         WHERE s.kind = 'program' AND s.node_id = pg.id),
        (SELECT shares FROM allot.fairshare_shares s
         WHERE s.kind = 'organization' AND s.node_id = o.id),
        (SELECT shares FROM allot.fairshare_shares s
         WHERE s.kind = 'project' AND s.node_id = pr.id)
    FROM allot.projects pr
    JOIN allot.organizations o ON o.id = pr.organization_id
    JOIN allot.programs pg ON pg.id = o.program_id
    LEFT JOIN (SELECT al.project_id, sum(al.amount_units)::double precision AS units,
                   extract(epoch FROM min(al.starts_at))::double precision AS starts,
                   extract(epoch FROM max(al.ends_at))::double precision AS ends
               FROM allot.allocations al
               WHERE al.starts_at <= at AND at < al.ends_at
               GROUP BY al.project_id) a ON a.project_id = pr.id
    UNION ALL
    SELECT 1, u.project_id, u.user_name, NULL, NULL,
        (SELECT shares FROM allot.fairshare_shares s
         WHERE s.kind = 'user' AND s.node_id = u.project_id AND s.user_name = u.user_name),
        NULL, NULL, NULL, NULL, NULL
    FROM (SELECT pu.project_id, pu.user_name FROM allot.project_users pu
          UNION
          SELECT DISTINCT ud.project_id, CASE ud.user_name WHEN '' THEN '-' ELSE ud.user_name END
          FROM allot.usage_days ud WHERE ud.units > 0) u
    UNION ALL
    SELECT 2, ud.project_id, CASE ud.user_name WHEN '' THEN '-' ELSE ud.user_name END, NULL, NULL,
        extract(epoch FROM ud.day::timestamp)::double precision, sum(ud.units) / 3600000.0,
        NULL, NULL, NULL, NULL
    FROM allot.usage_days ud
    WHERE ud.units > 0
    GROUP BY 2, 3, 6
    UNION ALL
    SELECT 3, sa.project_id, sa.site, sa.account, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM allot.site_accounts sa
    ORDER BY 1, 2
$$;
