-- 0003_ledger: balances held on the accounts, liens, and set-based ingestion.
--
-- Each account carries its posted and pending debits and credits (TigerBeetle's
-- model), kept current by one statement-level trigger on the journal, so a
-- balance or a reservation reads one row per account however long the journal
-- grows; allot.check_ledger() proves the columns equal the journal's sums.
-- Liens hold budget for work before it runs as pending transfers. Ingestion
-- takes a whole batch as arrays and merges it with a handful of set-based
-- statements (sql/README.md is the contract).
--
-- Lock order, followed by every function here so that concurrent allotd never
-- deadlock: job_usage rows (by job id), then liens (by id), then allocations (by
-- id), then accounts (by id, which puts 'consumed' first).

-- ---------------------------------------------------------------- accounts

ALTER TABLE allot.accounts
    ADD COLUMN debits_posted bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    ADD COLUMN credits_posted bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    ADD COLUMN debits_pending bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    ADD COLUMN credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0);

-- An account's available units: credits - debits - pending debits. The one
-- formula of the rule of reservations and of every balance.
CREATE FUNCTION allot.available_of(a allot.accounts) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT a.credits_posted - a.debits_posted - a.debits_pending $$;

-- A transfer of kind reserve holds amount as pending; post turns held units
-- into posted ones; void gives them back. Every other kind is posted at once.
-- lien names the lien a reserve, post or void belongs to.
ALTER TABLE allot.transfers ADD COLUMN lien text;
ALTER TABLE allot.transfers ADD CONSTRAINT transfers_lien_kinds
    CHECK ((kind IN ('reserve', 'post', 'void')) = (lien IS NOT NULL));
CREATE INDEX transfers_lien ON allot.transfers (lien) WHERE lien IS NOT NULL;

-- What one journal row does to its two accounts: posted and pending deltas.
CREATE FUNCTION allot.transfer_posted(kind text, amount bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN kind IN ('reserve', 'void') THEN 0 ELSE amount END
$$;
CREATE FUNCTION allot.transfer_pending(kind text, amount bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE kind WHEN 'reserve' THEN amount WHEN 'post' THEN -amount
                     WHEN 'void' THEN -amount ELSE 0 END
$$;

UPDATE allot.accounts a SET
    debits_posted = coalesce((SELECT sum(allot.transfer_posted(kind, amount)) FROM allot.transfers
                              WHERE debit_account_id = a.id), 0),
    credits_posted = coalesce((SELECT sum(allot.transfer_posted(kind, amount)) FROM allot.transfers
                               WHERE credit_account_id = a.id), 0);

-- Applies a statement's new journal rows to their accounts: each account is
-- locked in id order and updated once, however many rows the statement added.
-- Then the rule of reservations: no account that a reserve of this statement
-- debits may end with available (credits - debits - pending debits) below zero.
-- Charges may overdraw (the use already happened); a hold never does.
CREATE FUNCTION allot.transfers_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
    named bigint;
    locked bigint;
BEGIN
    SELECT count(*) INTO named FROM (
        SELECT debit_account_id FROM added UNION SELECT credit_account_id FROM added) x;
    WITH l AS (
        SELECT 1 FROM allot.accounts
        WHERE id IN (SELECT debit_account_id FROM added UNION SELECT credit_account_id FROM added)
        ORDER BY id FOR UPDATE)
    SELECT count(*) INTO locked FROM l;
    -- The journal's foreign keys, checked once for the statement.
    IF locked <> named THEN
        RAISE EXCEPTION 'a transfer names an account that does not exist' USING ERRCODE = '23503';
    END IF;
    UPDATE allot.accounts a SET
        debits_posted = a.debits_posted + d.dp, credits_posted = a.credits_posted + d.cp,
        debits_pending = a.debits_pending + d.dq, credits_pending = a.credits_pending + d.cq
    FROM (SELECT account, sum(dp) AS dp, sum(cp) AS cp, sum(dq) AS dq, sum(cq) AS cq
          FROM (SELECT debit_account_id AS account, allot.transfer_posted(kind, amount) AS dp,
                       0 AS cp, allot.transfer_pending(kind, amount) AS dq, 0 AS cq
                FROM added
                UNION ALL
                SELECT credit_account_id, 0, allot.transfer_posted(kind, amount), 0,
                       allot.transfer_pending(kind, amount)
                FROM added) x
          GROUP BY account) d
    WHERE a.id = d.account;
    SELECT a.id, allot.available_of(a) AS available INTO bad
    FROM allot.accounts a
    WHERE a.id IN (SELECT debit_account_id FROM added WHERE kind = 'reserve')
      AND allot.available_of(a) < 0
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a reservation would leave account % with % units available', bad.id,
            bad.available USING ERRCODE = '53400';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER transfers_apply AFTER INSERT ON allot.transfers
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION allot.transfers_apply();

-- The journal's balance of every account; for check_ledger and auditors, never
-- for a request.
CREATE OR REPLACE VIEW allot.account_balances AS
SELECT a.id, a.kind, a.program_id, a.allocation_id,
       coalesce(c.amount, 0) - coalesce(d.amount, 0) AS balance
FROM allot.accounts a
LEFT JOIN (SELECT credit_account_id AS id, sum(amount) AS amount FROM allot.transfers
           WHERE kind NOT IN ('reserve', 'void') GROUP BY credit_account_id) c ON c.id = a.id
LEFT JOIN (SELECT debit_account_id AS id, sum(amount) AS amount FROM allot.transfers
           WHERE kind NOT IN ('reserve', 'void') GROUP BY debit_account_id) d ON d.id = a.id;

-- What a job's usage has charged its allocation in the site's own unit: kept
-- current by ingestion, so that a balance never sums the jobs.
ALTER TABLE allot.allocations
    ADD COLUMN native_charged_milli bigint NOT NULL DEFAULT 0 CHECK (native_charged_milli >= 0);
UPDATE allot.allocations a SET native_charged_milli = coalesce(
    (SELECT sum(native_milli) FROM allot.job_usage j WHERE j.allocation_id = a.id AND j.step = ''), 0);

-- ---------------------------------------------------------------- liens

-- A lien holds budget on one allocation: a job's (site, job_id), or a campaign's
-- for a run of many jobs. held is what is pending now; it equals the lien's
-- reserve minus post minus void transfers (check_ledger proves it). drawn is what
-- usage charged from it; released what went back to available when it closed.
CREATE TABLE allot.liens (
    id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
    kind text NOT NULL CHECK (kind IN ('job', 'campaign')),
    site text NOT NULL REFERENCES allot.sites,
    job_id text CHECK (length(job_id) BETWEEN 1 AND 128),
    project_id bigint NOT NULL REFERENCES allot.projects,
    allocation_id bigint NOT NULL REFERENCES allot.allocations,
    campaign text REFERENCES allot.liens,
    -- the job's reserved shape, for heartbeats
    partition text NOT NULL DEFAULT '',
    account text NOT NULL DEFAULT '',
    user_name text NOT NULL DEFAULT '',
    gpus integer NOT NULL DEFAULT 0,
    cpus integer NOT NULL DEFAULT 0,
    mem_mb bigint NOT NULL DEFAULT 0,
    nodes integer NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    cost_units bigint NOT NULL CHECK (cost_units >= 0),
    amount bigint NOT NULL CHECK (amount >= 0),
    held bigint NOT NULL CHECK (held >= 0),
    drawn bigint NOT NULL DEFAULT 0 CHECK (drawn >= 0),
    released bigint NOT NULL DEFAULT 0 CHECK (released >= 0),
    status text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'settled', 'released', 'expired', 'replaced')),
    expires_at timestamptz NOT NULL,
    replaced text,
    body_hash text NOT NULL,
    principal text NOT NULL,
    answer jsonb,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    closed_at timestamptz,
    CHECK ((kind = 'job') = (job_id IS NOT NULL)),
    CHECK (kind = 'job' OR campaign IS NULL),
    CHECK (status = 'active' OR held = 0)
);
CREATE UNIQUE INDEX liens_one_active_per_job ON allot.liens (site, job_id)
    WHERE status = 'active' AND kind = 'job';
CREATE INDEX liens_job ON allot.liens (site, job_id, created_at);
CREATE INDEX liens_expiring ON allot.liens (expires_at) WHERE status = 'active';

CREATE FUNCTION allot.lien_status(s text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'LIEN_STATUS_' || upper(s) $$;

CREATE FUNCTION allot.lien_json(l allot.liens) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('lienId', l.id, 'kind', l.kind, 'site', l.site,
        'jobId', coalesce(l.job_id, ''),
        'project', (SELECT name FROM allot.projects WHERE id = l.project_id),
        'allocationId', l.allocation_id, 'status', allot.lien_status(l.status),
        'amountUnits', l.amount, 'heldUnits', l.held, 'drawnUnits', l.drawn,
        'releasedUnits', l.released, 'heldGpuHours', round(l.held / 3600000.0, 6),
        'expiresAt', allot.rfc3339(l.expires_at), 'campaign', coalesce(l.campaign, ''),
        'replaced', coalesce(l.replaced, ''),
        'availableUnits', (SELECT allot.available_of(a) FROM allot.accounts a
                           WHERE a.allocation_id = l.allocation_id))
$$;

CREATE FUNCTION allot.consumed_account() RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT id FROM allot.accounts WHERE kind = 'consumed' $$;

-- The role and scope of a caller, for the checks that a route's fields cannot
-- express (a project principal settling a lien names no project).
CREATE FUNCTION allot.check_lien_caller(principal_ text, l allot.liens) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE p allot.principals;
BEGIN
    SELECT * INTO p FROM allot.principals WHERE subject = principal_;
    IF p.role = 'project' AND p.scope IS DISTINCT FROM
            (SELECT name FROM allot.projects WHERE id = l.project_id) THEN
        RAISE EXCEPTION 'principal "%" (project of %) may not act for lien "%"', principal_,
            p.scope, l.id USING ERRCODE = '42501';
    END IF;
    IF p.role IN ('scheduler', 'collector') AND p.scope IS DISTINCT FROM l.site THEN
        RAISE EXCEPTION 'principal "%" (% of %) may not act for lien "%"', principal_, p.role,
            p.scope, l.id USING ERRCODE = '42501';
    END IF;
END $$;

-- Closes lien l as status: what it still holds goes back to available, by one void
-- transfer. The caller holds l's row lock. Returns the closed lien.
CREATE FUNCTION allot.lien_close(l allot.liens, status_ text, principal_ text) RETURNS allot.liens
LANGUAGE plpgsql AS $$
DECLARE out_ allot.liens;
BEGIN
    IF l.held > 0 THEN
        INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id,
            amount, body_hash, principal, reason, lien)
        SELECT 'void:' || l.id, 'void', ac.id, allot.consumed_account(), l.held,
               md5('void:' || l.id || ':' || l.held), principal_, status_ || ' lien ' || l.id, l.id
        FROM allot.accounts ac WHERE ac.allocation_id = l.allocation_id;
    END IF;
    UPDATE allot.liens SET status = status_, released = released + held, held = 0,
        closed_at = clock_timestamp()
    WHERE id = l.id RETURNING * INTO out_;
    RETURN out_;
END $$;

-- ---------------------------------------------------------------- quotes and reservations

-- The resources of a site with their ids and weights, for allotd's billing.
CREATE OR REPLACE FUNCTION allot.site_billing(site_ text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM allot.check_site(site_);
    RETURN coalesce((
        SELECT jsonb_agg(jsonb_build_object('id', r.id, 'partition', r.partition, 'rule', r.rule,
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

-- The billing of several sites at once: {"site": site_billing(site), ...}.
CREATE FUNCTION allot.sites_billing(sites text[]) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(s, allot.site_billing(s)), '{}')
    FROM (SELECT DISTINCT unnest(sites) AS s) x
$$;

-- The allocation a job on resource_ would be charged to at time at_, and what it
-- has available; raises when the project or an allocation is missing.
CREATE FUNCTION allot.job_allocation(account_ text, site_ text, resource_ bigint, at_ timestamptz,
    OUT project bigint, OUT allocation bigint, OUT account bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT id INTO project FROM allot.projects WHERE name = account_;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown account "%"', account_ USING ERRCODE = 'P0002';
    END IF;
    allocation := allot.choose_allocation(project, resource_, at_);
    IF allocation IS NULL THEN
        RAISE EXCEPTION 'no allocation of project "%" covers %/% at %', account_, site_,
            (SELECT partition FROM allot.resources WHERE id = resource_), allot.rfc3339(at_)
            USING ERRCODE = '55000';
    END IF;
    SELECT id INTO account FROM allot.accounts WHERE allocation_id = allocation;
END $$;

CREATE FUNCTION allot.available(account_ bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT allot.available_of(a) FROM allot.accounts a WHERE a.id = account_
$$;

-- Quote: req is QuoteRequest's JSON with "bill" (resourceId, occupiedGpus,
-- chargeUnits, nativeMilli, nativeUnit) added by allotd. Reads, changes nothing.
CREATE FUNCTION allot.rpc_quote(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    bill jsonb := req -> 'bill';
    cost bigint := (bill ->> 'chargeUnits')::bigint;
    at_ timestamptz := coalesce(allot.try_time(allot.j_text(req, 'startTime')), now());
    ja record;
    avail bigint;
    reason text := '';
BEGIN
    BEGIN
        ja := allot.job_allocation(allot.j_text(req, 'account'), allot.j_text(req, 'site'),
                                   (bill ->> 'resourceId')::bigint, at_);
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

-- The answer a replayed lien id gets: the first answer, or NULL when the id is new;
-- a used id with another body is already_exists.
CREATE FUNCTION allot.lien_replay(lid text, hash text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE seen allot.liens;
BEGIN
    SELECT * INTO seen FROM allot.liens WHERE id = lid;
    IF FOUND AND seen.body_hash <> hash THEN
        RAISE EXCEPTION 'lien id "%" was already used with a different body', lid
            USING ERRCODE = '23505';
    END IF;
    RETURN seen.answer;
END $$;

-- Reserve, coalesced: reqs is a JSON array of ReserveRequest objects, each with
-- "bill", "bodyHash" and "principal" added by allotd; no two of a group share a lien
-- id or a job (allotd leaves such a one for the next group). Set-based: the group's
-- allocations are chosen once per project and resource, every lien and account it
-- touches is locked in the schema's lock order and read once, then each reservation
-- is weighed in order against what the ones before it left (arithmetic only), and
-- the accepted ones are written by one statement per table: one journal statement,
-- so each account is updated once and the journal's trigger checks the rule of
-- reservations for the whole group. Returns an array of answers in the same order:
-- {"ok": Lien} or {"sqlstate", "message", "meta"}. One transaction, one commit.
CREATE FUNCTION allot.reserve_group(reqs jsonb) RETURNS jsonb
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
    IF to_regclass('pg_temp.reserve_stage') IS NULL THEN
        CREATE TEMP TABLE reserve_stage (
            n integer, req jsonb, lien_id text, site text, job_id text, account text,
            hash text, principal text, cost bigint, resource_id bigint, project_id bigint,
            allocation_id bigint, account_id bigint
        ) ON COMMIT DELETE ROWS;
    ELSE
        DELETE FROM pg_temp.reserve_stage;
    END IF;
    WITH items AS (
        SELECT x.n::integer AS n, x.e, p.id AS project_id,
               (x.e -> 'bill' ->> 'resourceId')::bigint AS resource_id
        FROM jsonb_array_elements(reqs) WITH ORDINALITY x(e, n)
        LEFT JOIN allot.projects p ON p.name = x.e ->> 'account'),
    cand AS (
        SELECT k.project_id, k.resource_id, c.id
        FROM (SELECT DISTINCT project_id, resource_id FROM items WHERE project_id IS NOT NULL) k
        CROSS JOIN LATERAL (SELECT c.id FROM allot.allocation_candidates(k.project_id, k.resource_id) c
                            WHERE c.starts_at <= now() AND now() < c.ends_at
                            ORDER BY c.rank LIMIT 1) c)
    INSERT INTO pg_temp.reserve_stage
    SELECT i.n, i.e, i.e ->> 'lienId', i.e ->> 'site', i.e ->> 'jobId', i.e ->> 'account',
           i.e ->> 'bodyHash', i.e ->> 'principal', (i.e -> 'bill' ->> 'chargeUnits')::bigint,
           i.resource_id, i.project_id, c.id, ac.id
    FROM items i
    LEFT JOIN cand c ON c.project_id = i.project_id AND c.resource_id = i.resource_id
    LEFT JOIN allot.accounts ac ON ac.allocation_id = c.id;
    -- Locks, in the schema's order: the liens named or replaced, then the accounts.
    -- Every lookup is by primary key or by the active job's index, one probe per
    -- reservation (LATERAL ... LIMIT 1, so that the planner cannot turn it into a
    -- scan of liens whatever its statistics say): the cost is the group's, never the
    -- number of liens.
    SELECT array_agg(DISTINCT x.id) INTO lien_ids FROM (
        SELECT s.lien_id AS id FROM pg_temp.reserve_stage s
        UNION ALL SELECT nullif(s.req ->> 'campaign', '') FROM pg_temp.reserve_stage s
        UNION ALL SELECT o.id FROM pg_temp.reserve_stage s
            CROSS JOIN LATERAL (SELECT o.id FROM allot.liens o
                                WHERE o.site = s.site AND o.job_id = s.job_id
                                  AND o.status = 'active' AND o.kind = 'job' LIMIT 1) o) x
    WHERE x.id IS NOT NULL;
    PERFORM 1 FROM allot.liens WHERE id = ANY (lien_ids) ORDER BY id FOR UPDATE;
    SELECT array_agg(DISTINCT x.id) INTO account_ids FROM (
        SELECT consumed AS id
        UNION ALL SELECT s.account_id FROM pg_temp.reserve_stage s
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
        FROM pg_temp.reserve_stage s
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
                'message', format('no allocation of project "%s" covers %s/%s at %s', r.account,
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
                    round(own / 3600000.0, 2), own, r.job_id, r.account,
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
                'jobId', x.job_id, 'project', x.account, 'allocationId', x.allocation_id,
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
              JOIN pg_temp.reserve_stage s ON s.n = k.n) x;
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
        FROM unnest(ok_n, ok_own) k(n, own) JOIN pg_temp.reserve_stage s ON s.n = k.n
        WHERE k.own > 0;
    END IF;

    SELECT jsonb_agg(CASE WHEN errs ? s.n::text THEN errs -> s.n::text
                          ELSE jsonb_build_object('ok', l.answer) END ORDER BY s.n)
    INTO answers
    FROM pg_temp.reserve_stage s
    LEFT JOIN LATERAL (SELECT answer FROM allot.liens WHERE id = s.lien_id LIMIT 1) l ON true;
    RETURN coalesce(answers, '[]');
END $$;

-- ReserveCampaign: gpu_hours held for a project's run of many jobs until ends_at.
CREATE FUNCTION allot.rpc_reserve_campaign(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    lid text := allot.j_text(req, 'lienId');
    hours bigint := coalesce((req ->> 'gpuHours')::bigint, 0);
    starts timestamptz := coalesce(allot.try_time(allot.j_text(req, 'startsAt')), now());
    ends timestamptz := allot.to_time('ends_at', allot.j_text(req, 'endsAt'));
    hash text;
    ans jsonb;
    ja record;
    avail bigint;
    res bigint;
    l allot.liens;
BEGIN
    IF lid = '' OR length(lid) > 200 THEN
        RAISE EXCEPTION 'lien_id is required (1 to 200 characters, chosen by the caller)'
            USING ERRCODE = '22023';
    END IF;
    IF hours < 1 OR hours > 1000000000 THEN
        RAISE EXCEPTION 'gpu_hours must be between 1 and 1000000000, not %', hours
            USING ERRCODE = '22023';
    END IF;
    IF ends <= greatest(starts, now()) THEN
        RAISE EXCEPTION 'ends_at (%) must be in the future and after starts_at', allot.rfc3339(ends)
            USING ERRCODE = '22023';
    END IF;
    hash := md5((req - 'startsAt')::text || allot.rfc3339(starts));
    PERFORM pg_advisory_xact_lock(hashtextextended('allot.lien:' || lid, 0));
    ans := allot.lien_replay(lid, hash);
    IF ans IS NOT NULL THEN
        RETURN ans;
    END IF;
    SELECT id INTO res FROM allot.resources
    WHERE site = allot.j_text(req, 'site') AND partition = allot.j_text(req, 'partition');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'resource "%/%" does not exist', allot.j_text(req, 'site'),
            allot.j_text(req, 'partition') USING ERRCODE = 'P0002';
    END IF;
    ja := allot.job_allocation(allot.j_text(req, 'project'), allot.j_text(req, 'site'), res, starts);
    PERFORM 1 FROM allot.accounts WHERE kind = 'consumed' OR id = ja.account ORDER BY id FOR UPDATE;
    avail := allot.available(ja.account);
    IF hours * 3600000 > avail THEN
        RAISE EXCEPTION 'could not reserve % GPU-h for campaign "%": % available on allocation %',
            hours, lid, round(greatest(avail, 0) / 3600000.0, 2), ja.allocation USING ERRCODE = '53400';
    END IF;
    INSERT INTO allot.liens (id, kind, site, partition, project_id, allocation_id, cost_units,
        amount, held, started_at, expires_at, body_hash, principal)
    VALUES (lid, 'campaign', allot.j_text(req, 'site'), allot.j_text(req, 'partition'),
        ja.project, ja.allocation, hours * 3600000, hours * 3600000,
        hours * 3600000, starts, ends, hash, principal)
    RETURNING * INTO l;
    INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id,
        amount, body_hash, principal, reason, lien)
    VALUES ('reserve:' || lid, 'reserve', ja.account, allot.consumed_account(), l.held, hash,
        principal, 'campaign ' || lid, lid);
    UPDATE allot.liens SET answer = allot.lien_json(l) WHERE id = lid RETURNING * INTO l;
    RETURN l.answer;
END $$;

-- A job's lien: its active one, or else its latest; NULL when it never had one.
CREATE FUNCTION allot.job_lien(site_ text, job text) RETURNS allot.liens
LANGUAGE sql STABLE AS $$
    SELECT * FROM allot.liens WHERE site = site_ AND job_id = job
    ORDER BY status = 'active' DESC, created_at DESC LIMIT 1
$$;

-- The lien a Settle or Release names: by lien_id, or the job's (job_lien).
-- Locked, so read again after the lock; raises not_found.
CREATE FUNCTION allot.find_lien(req jsonb, principal_ text) RETURNS allot.liens
LANGUAGE plpgsql AS $$
DECLARE
    lid text := allot.j_text(req, 'lienId');
    l allot.liens;
BEGIN
    IF lid = '' THEN
        lid := (allot.job_lien(allot.j_text(req, 'site'), allot.j_text(req, 'jobId'))).id;
    END IF;
    SELECT * INTO l FROM allot.liens WHERE id = lid FOR UPDATE;
    IF l.id IS NULL THEN
        RAISE EXCEPTION 'no lien for %', CASE WHEN allot.j_text(req, 'lienId') <> ''
            THEN format('id "%s"', allot.j_text(req, 'lienId'))
            ELSE format('job "%s" at site "%s"', allot.j_text(req, 'jobId'), allot.j_text(req, 'site')) END
            USING ERRCODE = 'P0002';
    END IF;
    IF allot.j_text(req, 'site') NOT IN ('', l.site) THEN
        RAISE EXCEPTION 'lien "%" is not of site "%"', l.id, allot.j_text(req, 'site')
            USING ERRCODE = '42501';
    END IF;
    PERFORM allot.check_lien_caller(principal_, l);
    RETURN l;
END $$;

CREATE FUNCTION allot.settle(req jsonb, principal_ text, status_ text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE l allot.liens := allot.find_lien(req, principal_);
BEGIN
    IF l.status = 'active' THEN
        l := allot.lien_close(l, status_, principal_);
    END IF;
    RETURN allot.lien_json(l);
END $$;

CREATE FUNCTION allot.rpc_settle(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT allot.settle(req, principal, 'settled') $$;

CREATE FUNCTION allot.rpc_release(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT allot.settle(req, principal, 'released') $$;

-- Releases every lien past its expiry, each exactly once however many allotd run
-- this at the same time (SKIP LOCKED: a lien being closed elsewhere is skipped,
-- and a closed lien is no longer active). Returns how many it released.
CREATE FUNCTION allot.expire_liens(max_liens integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ids text[];
    l allot.liens;
BEGIN
    -- Every lien is locked before any account, as everywhere else.
    SELECT array_agg(id ORDER BY id) INTO ids FROM (
        SELECT id FROM allot.liens
        WHERE status = 'active' AND expires_at <= now()
        ORDER BY id LIMIT max_liens FOR UPDATE SKIP LOCKED) x;
    FOR l IN SELECT * FROM allot.liens WHERE id = ANY (ids) ORDER BY id LOOP
        PERFORM allot.lien_close(l, 'expired', 'allotd');
    END LOOP;
    RETURN coalesce(cardinality(ids), 0);
END $$;

-- What a heartbeat of a job needs to bill its usage: the job's lien's shape and its
-- site's billing. Raises not_found when the job has no lien.
CREATE FUNCTION allot.heartbeat_shape(req jsonb, principal_ text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE l allot.liens := allot.job_lien(allot.j_text(req, 'site'), allot.j_text(req, 'jobId'));
BEGIN
    IF l.id IS NULL THEN
        RAISE EXCEPTION 'no lien for job "%" at site "%"', allot.j_text(req, 'jobId'),
            allot.j_text(req, 'site') USING ERRCODE = 'P0002';
    END IF;
    PERFORM allot.check_lien_caller(principal_, l);
    RETURN jsonb_build_object('partition', l.partition, 'account', l.account,
        'user', l.user_name, 'gpus', l.gpus, 'cpus', l.cpus, 'memMb', l.mem_mb,
        'nodes', l.nodes, 'startTime', allot.rfc3339(l.started_at),
        'billing', allot.site_billing(l.site));
END $$;

-- ---------------------------------------------------------------- ingestion

-- What allotd says of each record of a batch, as parallel arrays (one element a
-- record): its index in the batch, its fields, and either its bill (resource id,
-- occupied GPUs, gpu_ms, charge units, native thousandths, weight: billing.c's,
-- for its cumulative usage) or the reason allotd refused it. Merged into
-- pg_temp.ingest_stage by allot.ingest_records.
-- Statistics kept up with a table that grows fast (a new site, a new database):
-- when it has changed by more rows than its statistics know of (and by at least a
-- thousand), one allotd analyzes it, so that the plans of the merge and of the
-- reservations stay index probes bounded by the batch. The table doubles between two
-- runs, so their cost per row is constant; autovacuum's own analyze comes a minute
-- or more later, by which time a fresh database may have planned scans of the whole
-- table per batch (measured: from 90 ms to 900 ms a batch of 1,000 as job_usage grew
-- to 8,000 rows).
CREATE FUNCTION allot.refresh_statistics(rel regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    changed bigint;
    known real;
BEGIN
    SELECT s.n_mod_since_analyze, c.reltuples INTO changed, known
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.relid = rel;
    IF changed > greatest(known, 0) + 1000
       AND pg_try_advisory_xact_lock(hashtext('allot.refresh_statistics'), rel::oid::integer) THEN
        EXECUTE format('ANALYZE %s', rel);
    END IF;
END $$;

-- The merge's working tables, private to the session and emptied at commit. Each is
-- written once per batch by INSERT ... SELECT (no row of them is updated but for
-- liens), then ANALYZEd, so that the planner joins them for their real size.
CREATE FUNCTION allot.ingest_stage_reset() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('pg_temp.ingest_stage') IS NULL THEN
        -- The batch's records and what the stored state says of each.
        CREATE TEMP TABLE ingest_stage (
            idx integer, job_id text, step text, start_time timestamptz, account text,
            user_name text, partition text, gpus integer, cpus integer, mem_mb bigint,
            nodes integer, elapsed_s bigint, state text, resource_id bigint, occupied bigint,
            gpu_ms bigint, units bigint, native_milli bigint, weight integer,
            project_id bigint, win boolean, status text, reason text, known boolean,
            allocation_id bigint, delta bigint, native_delta bigint
        ) ON COMMIT DELETE ROWS;
        -- Whatever the statistics of job_usage say, a join with the batch by job has
        -- an index on either side.
        CREATE INDEX ON pg_temp.ingest_stage (job_id, step);
        -- Outcomes decided after staging: steps recorded, new jobs stored or refused.
        CREATE TEMP TABLE ingest_out (
            idx integer, status text, allocation_id bigint, delta bigint, native_delta bigint,
            reason text
        ) ON COMMIT DELETE ROWS;
        -- Every charge of the batch, one per job, and what its liens pay of it.
        CREATE TEMP TABLE ingest_charge (
            idx integer, job_id text, elapsed_s bigint, allocation_id bigint, delta bigint,
            native_delta bigint, own_lien text, camp_lien text, draw_own bigint, draw_camp bigint
        ) ON COMMIT DELETE ROWS;
        -- The answer: one row per record.
        CREATE TEMP TABLE ingest_result (
            idx integer, status text, units bigint, allocation_id bigint, reason text
        ) ON COMMIT DELETE ROWS;
    ELSE
        DELETE FROM pg_temp.ingest_stage;
        DELETE FROM pg_temp.ingest_out;
        DELETE FROM pg_temp.ingest_charge;
        DELETE FROM pg_temp.ingest_result;
    END IF;
END $$;

-- The allocations of a project that may pay for jobs on a resource, best first:
-- listed resources before a whole site before all sites, then the one ending
-- first, then the oldest. The one rule behind choose_allocation and the batches'.
CREATE FUNCTION allot.allocation_candidates(project bigint, resource bigint,
    OUT id bigint, OUT starts_at timestamptz, OUT ends_at timestamptz, OUT rank bigint)
RETURNS SETOF record
LANGUAGE sql STABLE AS $$
    SELECT a.id, a.starts_at, a.ends_at,
           row_number() OVER (ORDER BY CASE WHEN s.listed THEN 0 WHEN a.site IS NOT NULL THEN 1
                                            ELSE 2 END, a.ends_at, a.id)
    FROM allot.allocations a
    CROSS JOIN LATERAL (SELECT
        EXISTS (SELECT 1 FROM allot.allocation_resources ar
                WHERE ar.allocation_id = a.id AND ar.resource_id = resource) AS listed,
        EXISTS (SELECT 1 FROM allot.allocation_resources ar
                WHERE ar.allocation_id = a.id) AS has_list) s
    WHERE a.project_id = project
      AND (s.listed
           OR (NOT s.has_list AND a.site = (SELECT site FROM allot.resources WHERE id = resource))
           OR (NOT s.has_list AND a.site IS NULL))
$$;

-- The allocation a job's charges go to: the best candidate whose window holds the
-- job's start.
CREATE OR REPLACE FUNCTION allot.choose_allocation(project bigint, resource bigint, at timestamptz)
RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT id FROM allot.allocation_candidates(project, resource)
    WHERE starts_at <= at AND at < ends_at
    ORDER BY rank LIMIT 1
$$;

-- Re-reported running jobs are updated in place (HOT: no indexed column changes).
ALTER TABLE allot.job_usage SET (fillfactor = 70);
-- Row-by-row foreign-key triggers cost more than the rest of a record's merge (one
-- index probe through SPI per key per row). The journal's accounts are checked once
-- per statement instead (allot.transfers_apply), and no account is ever deleted;
-- job_usage's keys are set by the merge from rows it has just joined, and sites,
-- projects, resources and allocations are never deleted either.
ALTER TABLE allot.job_usage DROP CONSTRAINT job_usage_site_fkey,
    DROP CONSTRAINT job_usage_project_id_fkey, DROP CONSTRAINT job_usage_resource_id_fkey,
    DROP CONSTRAINT job_usage_allocation_id_fkey;
ALTER TABLE allot.transfers DROP CONSTRAINT transfers_debit_account_id_fkey,
    DROP CONSTRAINT transfers_credit_account_id_fkey;
CREATE FUNCTION allot.refuse_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = '42501';
END $$;
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON allot.accounts
    FOR EACH ROW EXECUTE FUNCTION allot.refuse_delete();
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON allot.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION allot.refuse_delete();
-- Balances read the accounts' columns: nothing looks transfers up by account, nor
-- jobs by allocation, any more (check_ledger reads them whole, grouped).
DROP INDEX allot.transfers_debit;
DROP INDEX allot.transfers_credit;
DROP INDEX allot.job_usage_allocation;

-- The merge: every record of the arrays against the stored cumulative records, in
-- a fixed number of set-based statements. One charge per job per batch: of a
-- job's records, the one with the largest elapsed time (then the first) is the
-- job's; the others are duplicates. Results are left in pg_temp.ingest_stage.
CREATE FUNCTION allot.ingest_records(site_ text, principal_ text, idx_ integer[], job_ text[],
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
        LEFT JOIN allot.projects pr ON pr.name = r.a
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

ALTER TABLE allot.ingest_batches ADD COLUMN rejected jsonb;

-- Before a batch: the site's billing, and whether the batch was seen. A batch seen
-- with the same hash is a replay: "replay" lists the records it refused, and
-- every other record is a duplicate; seen with another hash it is refused.
CREATE FUNCTION allot.ingest_begin(site_ text, batch text, hash text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE b allot.ingest_batches;
BEGIN
    PERFORM allot.check_site(site_);
    SELECT * INTO b FROM allot.ingest_batches WHERE site = site_ AND batch_id = batch;
    IF FOUND AND b.body_hash <> hash THEN
        RAISE EXCEPTION 'batch "%" of site "%" was already sent with different records', batch, site_
            USING ERRCODE = '23505';
    END IF;
    RETURN jsonb_build_object('billing', CASE WHEN b.site IS NULL THEN allot.site_billing(site_) END,
        'replay', CASE WHEN b.site IS NOT NULL THEN coalesce(b.rejected, '[]') END);
END $$;

-- Usage.Ingest: one batch, one transaction. Returns one row per record, in the
-- batch's order: status (CHARGED, DUPLICATE, RECORDED, REJECTED), the units
-- charged, the job's allocation, the reason of a refusal. A batch whose id was
-- used (by a concurrent allotd) answers as a replay.
CREATE FUNCTION allot.ingest_batch(site_ text, batch text, hash text, principal_ text,
    idx_ integer[], job_ text[], step_ text[], start_s bigint[], account_ text[], user_ text[],
    partition_ text[], gpus_ integer[], cpus_ integer[], mem_ bigint[], nodes_ integer[],
    elapsed_ bigint[], state_ text[], resource_ bigint[], occupied_ bigint[], gpu_ms_ bigint[],
    units_ bigint[], native_ bigint[], weight_ integer[], reject_ text[])
RETURNS TABLE (idx integer, status text, units bigint, allocation_id bigint, reason text)
LANGUAGE plpgsql AS $$
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
    UPDATE allot.ingest_batches b SET rejected = (
        SELECT jsonb_agg(jsonb_build_object('index', r.idx, 'status', 'REJECTED', 'reason', r.reason))
        FROM pg_temp.ingest_result r WHERE r.status = 'REJECTED')
    WHERE b.site = site_ AND b.batch_id = batch;
    RETURN QUERY SELECT r.idx, r.status, r.units, r.allocation_id, r.reason
    FROM pg_temp.ingest_result r ORDER BY r.idx;
END $$;

-- The foundation's JSON form of a batch (records with "bill" or "rejectReason"),
-- kept for the SQL tests and for operators: the same merge, reached from JSON.
CREATE OR REPLACE FUNCTION allot.rpc_ingest(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    site_ text := allot.check_site(allot.j_text(req, 'site'));
    results jsonb;
BEGIN
    WITH recs AS (
        SELECT coalesce((e ->> 'index')::int, (n - 1)::int) AS i, e ->> 'jobId' AS j,
            coalesce(e ->> 'step', '') AS st,
            extract(epoch FROM allot.try_time(e ->> 'startTime'))::bigint AS s,
            coalesce(e ->> 'account', '') AS a, coalesce(e ->> 'user', '') AS u,
            coalesce(e ->> 'partition', '') AS p, coalesce((e ->> 'gpus')::int, 0) AS g,
            coalesce((e ->> 'cpus')::int, 0) AS c, coalesce((e ->> 'memMb')::bigint, 0) AS m,
            coalesce((e ->> 'nodes')::int, 0) AS nd, coalesce((e ->> 'elapsedS')::bigint, 0) AS el,
            coalesce(e ->> 'state', '') AS state,
            (SELECT r.id FROM allot.resources r
             WHERE r.site = site_ AND r.partition = split_part(e -> 'bill' ->> 'resource', '/', 2)) AS res,
            (e -> 'bill' ->> 'occupiedGpus')::bigint AS o, (e -> 'bill' ->> 'gpuMs')::bigint AS gm,
            (e -> 'bill' ->> 'chargeUnits')::bigint AS un, (e -> 'bill' ->> 'nativeMilli')::bigint AS nm,
            (e -> 'bill' ->> 'weightPerMille')::int AS w,
            coalesce(e ->> 'rejectReason', CASE WHEN e -> 'bill' IS NULL AND coalesce(e ->> 'step', '') = ''
                     THEN 'the record carries no charge' END) AS rej
        FROM jsonb_array_elements(coalesce(req -> 'records', '[]')) WITH ORDINALITY x(e, n)),
    res AS (
        SELECT b.* FROM allot.ingest_batch(site_, allot.j_text(req, 'batchId'),
            allot.j_text(req, 'bodyHash'), principal,
            (SELECT array_agg(i ORDER BY i) FROM recs), (SELECT array_agg(j ORDER BY i) FROM recs),
            (SELECT array_agg(st ORDER BY i) FROM recs), (SELECT array_agg(s ORDER BY i) FROM recs),
            (SELECT array_agg(a ORDER BY i) FROM recs), (SELECT array_agg(u ORDER BY i) FROM recs),
            (SELECT array_agg(p ORDER BY i) FROM recs), (SELECT array_agg(g ORDER BY i) FROM recs),
            (SELECT array_agg(c ORDER BY i) FROM recs), (SELECT array_agg(m ORDER BY i) FROM recs),
            (SELECT array_agg(nd ORDER BY i) FROM recs), (SELECT array_agg(el ORDER BY i) FROM recs),
            (SELECT array_agg(state ORDER BY i) FROM recs), (SELECT array_agg(res ORDER BY i) FROM recs),
            (SELECT array_agg(o ORDER BY i) FROM recs), (SELECT array_agg(gm ORDER BY i) FROM recs),
            (SELECT array_agg(un ORDER BY i) FROM recs), (SELECT array_agg(nm ORDER BY i) FROM recs),
            (SELECT array_agg(w ORDER BY i) FROM recs), (SELECT array_agg(rej ORDER BY i) FROM recs)) b)
    SELECT jsonb_build_object('batchId', allot.j_text(req, 'batchId'),
        'results', coalesce(jsonb_agg(jsonb_build_object('index', res.idx, 'jobId', recs.j,
            'step', recs.st, 'status', 'INGEST_STATUS_' || res.status, 'chargedUnits', res.units,
            'allocationId', res.allocation_id, 'reason', res.reason) ORDER BY res.idx), '[]'),
        'charged', count(*) FILTER (WHERE res.status = 'CHARGED'),
        'duplicates', count(*) FILTER (WHERE res.status = 'DUPLICATE'),
        'rejected', count(*) FILTER (WHERE res.status = 'REJECTED'),
        'recorded', count(*) FILTER (WHERE res.status = 'RECORDED'))
    INTO results
    FROM res JOIN recs ON recs.i = res.idx;
    RETURN results;
END $$;

DROP FUNCTION allot.ingest_record(text, jsonb, text);
DROP FUNCTION allot.ingest_result(jsonb, text, bigint, bigint, text);

-- ---------------------------------------------------------------- heartbeats

-- Heartbeat: req is HeartbeatRequest's JSON; when allotd billed new usage it adds
-- "bill" (as for a record: resourceId, occupiedGpus, gpuMs, chargeUnits,
-- nativeMilli, weightPerMille) and "shape" (heartbeat_shape's answer). The usage is
-- charged as Usage.Ingest would charge the job's cumulative record; then the
-- answer says whether the job may go on.
CREATE FUNCTION allot.rpc_heartbeat(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    site_ text := allot.j_text(req, 'site');
    job text := allot.j_text(req, 'jobId');
    bill jsonb := req -> 'bill';
    sh jsonb := req -> 'shape';
    l allot.liens;
    camp_held bigint := 0;
    avail bigint;
    charged bigint := 0;
    ends timestamptz;
    action text := 'CONTINUE';
    why text := '';
BEGIN
    IF bill IS NOT NULL THEN
        PERFORM allot.ingest_records(site_, principal, ARRAY[0], ARRAY[job], ARRAY[''],
            ARRAY[extract(epoch FROM (sh ->> 'startTime')::timestamptz)::bigint],
            ARRAY[sh ->> 'account'], ARRAY[sh ->> 'user'], ARRAY[sh ->> 'partition'],
            ARRAY[(sh ->> 'gpus')::int], ARRAY[(sh ->> 'cpus')::int], ARRAY[(sh ->> 'memMb')::bigint],
            ARRAY[(sh ->> 'nodes')::int], ARRAY[(req ->> 'elapsedS')::bigint], ARRAY['RUNNING'],
            ARRAY[(bill ->> 'resourceId')::bigint], ARRAY[(bill ->> 'occupiedGpus')::bigint],
            ARRAY[(bill ->> 'gpuMs')::bigint], ARRAY[(bill ->> 'chargeUnits')::bigint],
            ARRAY[(bill ->> 'nativeMilli')::bigint], ARRAY[(bill ->> 'weightPerMille')::int],
            ARRAY[NULL::text]);
        SELECT coalesce(sum(units), 0) INTO charged FROM pg_temp.ingest_result;
    END IF;
    -- Read, not locked: the usage above locked job, liens and accounts in that order.
    l := allot.job_lien(site_, job);
    IF l.id IS NULL THEN
        RAISE EXCEPTION 'no lien for job "%" at site "%"', job, site_ USING ERRCODE = 'P0002';
    END IF;
    PERFORM allot.check_lien_caller(principal, l);
    SELECT held INTO camp_held FROM allot.liens WHERE id = l.campaign AND status = 'active';
    SELECT ends_at INTO ends FROM allot.allocations WHERE id = l.allocation_id;
    avail := (SELECT allot.available_of(a) FROM allot.accounts a
              WHERE a.allocation_id = l.allocation_id);
    IF l.status = 'expired' THEN
        why := 'lien expired';
    ELSIF l.status <> 'active' THEN
        why := 'lien released';
    ELSIF ends <= now() THEN
        why := 'allocation ended';
    ELSIF avail < 0 OR (l.held = 0 AND coalesce(camp_held, 0) = 0 AND avail <= 0) THEN
        why := 'exhausted';
    END IF;
    IF why <> '' THEN
        action := 'STOP';
    END IF;
    RETURN jsonb_build_object('action', 'HEARTBEAT_ACTION_' || action, 'reason', why,
        'chargedUnits', charged, 'heldUnits', l.held, 'availableUnits', avail,
        'lien', allot.lien_json(l));
END $$;

-- ---------------------------------------------------------------- balances

CREATE OR REPLACE FUNCTION allot.rpc_get_balance(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    project bigint := allot.project_id(allot.j_text(req, 'project'));
    rows_ jsonb;
    total jsonb;
BEGIN
    WITH per AS (
        SELECT a.*, n.unit, n.per_unit, allot.allocation_json(a) -> 'resources' AS listed,
            ac.credits_posted AS granted, ac.debits_posted AS charged,
            ac.debits_pending - ac.credits_pending AS pending,
            a.native_charged_milli / 1000.0 AS native_charged
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
               'balance', allot.balance_json(per.granted, per.charged, per.pending, per.unit,
                                             per.native_charged, per.per_unit))
               ORDER BY per.id), '[]'),
           allot.balance_json(coalesce(sum(per.granted), 0)::bigint,
               coalesce(sum(per.charged), 0)::bigint, coalesce(sum(per.pending), 0)::bigint,
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

-- ---------------------------------------------------------------- invariants

-- Raises when the books do not hold together; returns true otherwise. For tests
-- and for operators (SELECT allot.check_ledger()). Reads the whole journal.
CREATE OR REPLACE FUNCTION allot.check_ledger() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE bad text;
BEGIN
    IF (SELECT sum(credits_posted) - sum(debits_posted) FROM allot.accounts) <> 0
       OR (SELECT sum(credits_pending) - sum(debits_pending) FROM allot.accounts) <> 0 THEN
        RAISE EXCEPTION 'ledger does not balance: posted credits - debits = %, pending = %',
            (SELECT sum(credits_posted) - sum(debits_posted) FROM allot.accounts),
            (SELECT sum(credits_pending) - sum(debits_pending) FROM allot.accounts);
    END IF;
    WITH j AS (
        SELECT account, sum(dp) AS dp, sum(cp) AS cp, sum(dq) AS dq, sum(cq) AS cq
        FROM (SELECT debit_account_id AS account, allot.transfer_posted(kind, amount) AS dp,
                     0 AS cp, allot.transfer_pending(kind, amount) AS dq, 0 AS cq
              FROM allot.transfers
              UNION ALL
              SELECT credit_account_id, 0, allot.transfer_posted(kind, amount), 0,
                     allot.transfer_pending(kind, amount)
              FROM allot.transfers) x
        GROUP BY account)
    SELECT format('account %s: columns say posted %s/%s pending %s/%s, the journal %s/%s %s/%s',
                  a.id, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
                  coalesce(j.dp, 0), coalesce(j.cp, 0), coalesce(j.dq, 0), coalesce(j.cq, 0))
    INTO bad
    FROM allot.accounts a LEFT JOIN j ON j.account = a.id
    WHERE (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)
          <> (coalesce(j.dp, 0), coalesce(j.cp, 0), coalesce(j.dq, 0), coalesce(j.cq, 0))
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'accounts and journal disagree: %', bad;
    END IF;
    WITH t AS (SELECT debit_account_id AS account, sum(amount) AS charged FROM allot.transfers
               WHERE kind IN ('charge', 'post') GROUP BY debit_account_id),
         j AS (SELECT allocation_id, sum(charged_units) AS charged, sum(native_milli) AS native
               FROM allot.job_usage WHERE step = '' GROUP BY allocation_id)
    SELECT format('allocation %s: charged %s, jobs say %s (native %s, jobs %s)', a.id,
                  coalesce(t.charged, 0), coalesce(j.charged, 0), a.native_charged_milli,
                  coalesce(j.native, 0)) INTO bad
    FROM allot.allocations a
    JOIN allot.accounts ac ON ac.allocation_id = a.id
    LEFT JOIN t ON t.account = ac.id
    LEFT JOIN j ON j.allocation_id = a.id
    WHERE coalesce(t.charged, 0) <> coalesce(j.charged, 0)
       OR a.native_charged_milli <> coalesce(j.native, 0)
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'ledger and job usage disagree: %', bad;
    END IF;
    SELECT format('lien %s holds %s, its transfers say %s', l.id, l.held, coalesce(t.held, 0))
    INTO bad
    FROM allot.liens l
    LEFT JOIN (SELECT lien, sum(allot.transfer_pending(kind, amount)) AS held
               FROM allot.transfers WHERE lien IS NOT NULL GROUP BY lien) t ON t.lien = l.id
    WHERE l.held <> coalesce(t.held, 0)
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'liens and journal disagree: %', bad;
    END IF;
    IF EXISTS (SELECT 1 FROM allot.accounts a JOIN allot.liens l ON l.allocation_id = a.allocation_id
               GROUP BY a.id, a.debits_pending HAVING a.debits_pending <> sum(l.held)) THEN
        RAISE EXCEPTION 'liens and pending balances disagree';
    END IF;
    RETURN true;
END $$;
