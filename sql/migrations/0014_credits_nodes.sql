-- 0014_credits_nodes: one cap on what an allocation gets back, and the flows of an
-- account by kind (what a balance needs to tell its movements apart). Settable
-- event thresholds and incidents on nodes, which the name announces, are not here
-- yet: they need a later migration.
--
-- What an allocation can get back (a refund, an incident credit) is what usage
-- charged it less what was already refunded or credited: accounts.refundable
-- (0011) is now lowered by incident credits as well as by refunds, and the
-- CHECK (refundable >= 0) of 0011 is the one guard for every writer. Refunds are
-- refused naming the figures; an incident's credits are capped to what is left.
--
-- Lock order (sql/README.md): accounts, then allot.account_flows (kept by the
-- journal's trigger transfers_flows, which runs after transfers_apply), then
-- allot.project_usage (transfers_usage, 0012).

-- ---------------------------------------------------------------- the flows of an account

-- What the journal posted to each allocation account, by kind: debit_units what
-- transfers of the kind took from it, credit_units what they brought. At most one
-- row per transfer kind (eleven), so a balance reads a constant number of rows
-- whatever the journal's length. Pending holds (reserve, void) are not posted and
-- have no row; a post is (usage charged from a hold).
CREATE TABLE allot.account_flows (
    account_id bigint NOT NULL REFERENCES allot.accounts,
    kind text NOT NULL,
    debit_units bigint NOT NULL DEFAULT 0,
    credit_units bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, kind)
);

-- The same figures from the whole journal: for the migration and
-- allot.check_account_flows(), never for a request.
CREATE VIEW allot.account_flows_journal AS
SELECT x.account AS account_id, x.kind, sum(x.d)::bigint AS debit_units,
       sum(x.c)::bigint AS credit_units
FROM (SELECT debit_account_id AS account, kind, allot.transfer_posted(kind, amount) AS d,
             0::bigint AS c
      FROM allot.transfers
      UNION ALL
      SELECT credit_account_id, kind, 0, allot.transfer_posted(kind, amount)
      FROM allot.transfers) x
JOIN allot.accounts a ON a.id = x.account AND a.kind = 'allocation'
WHERE x.d <> 0 OR x.c <> 0
GROUP BY x.account, x.kind;

INSERT INTO allot.account_flows SELECT * FROM allot.account_flows_journal;

-- Applies a journal statement's posted rows to the flows of their allocation
-- accounts, each (account, kind) row once, in that order. Runs after
-- transfers_apply (triggers of one event run in name order), which locked the
-- accounts.
CREATE FUNCTION allot.account_flows_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO allot.account_flows AS f (account_id, kind, debit_units, credit_units)
    SELECT x.account, x.kind, sum(x.d), sum(x.c)
    FROM (SELECT debit_account_id AS account, kind, allot.transfer_posted(kind, amount) AS d,
                 0::bigint AS c
          FROM added
          UNION ALL
          SELECT credit_account_id, kind, 0, allot.transfer_posted(kind, amount)
          FROM added) x
    JOIN allot.accounts a ON a.id = x.account AND a.kind = 'allocation'
    GROUP BY x.account, x.kind
    HAVING sum(x.d) <> 0 OR sum(x.c) <> 0
    ORDER BY x.account, x.kind
    ON CONFLICT (account_id, kind) DO UPDATE
        SET debit_units = f.debit_units + excluded.debit_units,
            credit_units = f.credit_units + excluded.credit_units;
    RETURN NULL;
END $$;

CREATE TRIGGER transfers_flows AFTER INSERT ON allot.transfers
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION allot.account_flows_apply();

-- Raises when allot.account_flows disagrees with the journal; true otherwise.
CREATE FUNCTION allot.check_account_flows() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE bad text;
BEGIN
    SELECT format('account %s, kind %s: flows say debits %s credits %s, the journal %s and %s',
                  coalesce(f.account_id, j.account_id), coalesce(f.kind, j.kind),
                  coalesce(f.debit_units, 0), coalesce(f.credit_units, 0),
                  coalesce(j.debit_units, 0), coalesce(j.credit_units, 0))
    INTO bad
    FROM allot.account_flows f FULL JOIN allot.account_flows_journal j USING (account_id, kind)
    WHERE (coalesce(f.debit_units, 0), coalesce(f.credit_units, 0))
          <> (coalesce(j.debit_units, 0), coalesce(j.credit_units, 0))
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'account flows and journal disagree: %', bad;
    END IF;
    RETURN true;
END $$;

-- An account's movements, from its flows (at most eleven rows): usage is what
-- usage charged (charges and posts), refunded and credited what refunds and
-- incident credits gave back, expired what expiry took, granted the grants,
-- added the net of deposits, moves and adjustments.
CREATE FUNCTION allot.account_movements(account bigint, OUT granted bigint, OUT added bigint,
    OUT usage bigint, OUT refunded bigint, OUT credited bigint, OUT expired bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(credit_units - debit_units) FILTER (WHERE kind = 'grant'), 0)::bigint,
           coalesce(sum(credit_units - debit_units)
                    FILTER (WHERE kind IN ('deposit', 'move', 'adjust')), 0)::bigint,
           coalesce(sum(debit_units - credit_units) FILTER (WHERE kind IN ('charge', 'post')),
                    0)::bigint,
           coalesce(sum(credit_units) FILTER (WHERE kind = 'refund'), 0)::bigint,
           coalesce(sum(credit_units) FILTER (WHERE kind = 'credit'), 0)::bigint,
           coalesce(sum(debit_units) FILTER (WHERE kind = 'expire'), 0)::bigint
    FROM allot.account_flows WHERE account_id = account
$$;

-- ---------------------------------------------------------------- one cap on what comes back

-- Refunds and incident credits both lower what may still come back (0011 counted
-- refunds only). transfers_apply and check_allocation_life read this function.
CREATE OR REPLACE FUNCTION allot.transfer_refundable_credit(kind text, amount bigint)
RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN kind IN ('refund', 'credit') THEN -amount ELSE 0 END
$$;

DO $$
DECLARE bad text;
BEGIN
    SELECT format('allocation %s: usage charged %s units, refunds and incident credits gave back %s',
                  a.allocation_id, a.refundable, coalesce(c.units, 0)) INTO bad
    FROM allot.accounts a
    LEFT JOIN (SELECT credit_account_id AS id, sum(amount) AS units FROM allot.transfers
               WHERE kind = 'credit' GROUP BY 1) c ON c.id = a.id
    WHERE a.kind = 'allocation' AND a.refundable < coalesce(c.units, 0)
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'an allocation got back more than its usage was charged: %', bad
            USING HINT = 'take the excess back with a negative adjustment of the allocation, then migrate';
    END IF;
END $$;
UPDATE allot.accounts a SET refundable = a.refundable - c.units
FROM (SELECT credit_account_id AS id, sum(amount) AS units FROM allot.transfers
      WHERE kind = 'credit' GROUP BY 1) c
WHERE c.id = a.id AND a.kind = 'allocation';

-- Raises, naming the figures, when allocation alloc_id (account acct, locked by the
-- caller) cannot get amount units back: usage charged it less what was refunded or
-- credited already.
CREATE FUNCTION allot.check_refundable(acct allot.accounts, alloc_id bigint, amount bigint)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE m record;
BEGIN
    IF acct.refundable >= amount THEN
        RETURN;
    END IF;
    m := allot.account_movements(acct.id);
    RAISE EXCEPTION 'could not refund % units to allocation %: usage charged it % units, % were refunded and % credited by incidents already, so % can be refunded',
        amount, alloc_id, m.usage, m.refunded, m.credited, acct.refundable
        USING ERRCODE = '55000',
        DETAIL = jsonb_build_object('requested_units', amount::text,
            'refundable_units', acct.refundable::text, 'charged_units', m.usage::text,
            'refunded_units', m.refunded::text, 'credited_units', m.credited::text,
            'allocation', alloc_id::text)::text;
END $$;

-- allocation_change as in 0011, its refund refused by allot.check_refundable, which
-- names what usage charged and what was refunded and credited.
CREATE OR REPLACE FUNCTION allot.allocation_change(req jsonb, principal_ text, kind_ text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    tid text := allot.j_text(req, 'transferId');
    alloc_id bigint := allot.j_int(req, 'allocationId');
    from_id bigint := nullif(allot.j_int(req, 'fromAllocationId'), 0);
    amount_ bigint := allot.j_int(req, 'amountUnits');
    reason_ text := btrim(allot.j_text(req, 'reason'));
    hash text;
    ans jsonb;
    a allot.allocations;
    f allot.allocations;
    acct allot.accounts;
    from_acct allot.accounts;
    debit bigint;
    credit bigint;
    c allot.allocation_changes;
BEGIN
    IF tid = '' OR length(tid) > 200 THEN
        RAISE EXCEPTION 'transfer_id is required (1 to 200 characters, chosen by the caller)'
            USING ERRCODE = '22023';
    END IF;
    IF tid LIKE 'expire:%' THEN
        RAISE EXCEPTION 'transfer ids starting with "expire:" are the service''s'
            USING ERRCODE = '22023';
    END IF;
    IF alloc_id = 0 THEN
        RAISE EXCEPTION '%', CASE kind_ WHEN 'move' THEN 'to_allocation_id is required'
            ELSE 'allocation_id is required' END USING ERRCODE = '22023';
    END IF;
    IF kind_ = 'move' AND from_id IS NULL THEN
        RAISE EXCEPTION 'from_allocation_id is required' USING ERRCODE = '22023';
    END IF;
    IF kind_ <> 'move' AND from_id IS NOT NULL THEN
        RAISE EXCEPTION 'from_allocation_id is only for a move' USING ERRCODE = '22023';
    END IF;
    IF kind_ = 'adjust' AND amount_ = 0 THEN
        RAISE EXCEPTION 'amount_units of an adjustment must not be 0' USING ERRCODE = '22023';
    ELSIF kind_ = 'credit_limit' AND amount_ < 0 THEN
        RAISE EXCEPTION 'a credit limit must be 0 or more units, not %', amount_
            USING ERRCODE = '22023';
    ELSIF kind_ NOT IN ('adjust', 'credit_limit') AND amount_ <= 0 THEN
        RAISE EXCEPTION 'amount_units of a % must be positive, not %', kind_, amount_
            USING ERRCODE = '22023';
    END IF;
    -- A billion GPU-hours, CreateAllocation's bound.
    IF abs(amount_) > 3600000000000000 THEN
        RAISE EXCEPTION 'amount_units % is beyond 3600000000000000 (a billion GPU-hours)', amount_
            USING ERRCODE = '22023';
    END IF;
    IF reason_ = '' OR length(reason_) > 500 THEN
        RAISE EXCEPTION 'reason is required (1 to 500 characters)' USING ERRCODE = '22023';
    END IF;
    IF kind_ = 'move' AND from_id = alloc_id THEN
        RAISE EXCEPTION 'a move needs two allocations, not % twice', alloc_id USING ERRCODE = '22023';
    END IF;
    hash := encode(sha256(convert_to(jsonb_build_object('kind', kind_, 'allocation', alloc_id,
        'from', from_id, 'units', amount_, 'reason', reason_)::text, 'UTF8')), 'hex');
    ans := allot.change_replay(tid, hash);
    IF ans IS NOT NULL THEN
        RETURN ans;
    END IF;

    a := allot.allocation_of(CASE WHEN kind_ = 'move' THEN 'target allocation' ELSE 'allocation' END,
                             alloc_id);
    IF kind_ = 'move' THEN
        f := allot.allocation_of('source allocation', from_id);
        IF (SELECT organization_id FROM allot.projects WHERE id = f.project_id)
           <> (SELECT organization_id FROM allot.projects WHERE id = a.project_id) THEN
            RAISE EXCEPTION 'could not move units from allocation % (project "%") to allocation % (project "%"): a move stays within one organization',
                f.id, (SELECT name FROM allot.projects WHERE id = f.project_id),
                a.id, (SELECT name FROM allot.projects WHERE id = a.project_id)
                USING ERRCODE = '55000';
        END IF;
        IF f.ends_at <= now() THEN
            RAISE EXCEPTION 'allocation % ended at %: its remainder is the expired account''s',
                f.id, allot.rfc3339(f.ends_at) USING ERRCODE = '55000';
        END IF;
    END IF;
    IF kind_ IN ('deposit', 'move') AND a.ends_at <= now() THEN
        RAISE EXCEPTION 'allocation % ended at %: a % would expire at once', a.id,
            allot.rfc3339(a.ends_at), kind_ USING ERRCODE = '55000';
    END IF;

    -- Both accounts locked in id order, then read.
    PERFORM 1 FROM allot.accounts
    WHERE id IN (allot.consumed_account(), allot.program_account_of(a.id))
       OR allocation_id IN (a.id, f.id)
    ORDER BY id FOR UPDATE;
    SELECT * INTO acct FROM allot.accounts WHERE allocation_id = a.id;
    SELECT * INTO from_acct FROM allot.accounts WHERE allocation_id = f.id;

    CASE kind_
    WHEN 'deposit' THEN
        debit := allot.program_account_of(a.id);
        credit := acct.id;
    WHEN 'move' THEN
        -- A move takes only what the source has available: never its credit.
        IF allot.available_of(from_acct) < amount_ THEN
            RAISE EXCEPTION 'could not move % units from allocation %: % available', amount_, f.id,
                allot.available_of(from_acct) USING ERRCODE = '53400',
                DETAIL = jsonb_build_object('requested_units', amount_::text,
                    'available_units', allot.available_of(from_acct)::text,
                    'allocation', f.id::text)::text;
        END IF;
        debit := from_acct.id;
        credit := acct.id;
    WHEN 'refund' THEN
        PERFORM allot.check_refundable(acct, a.id, amount_);
        debit := allot.consumed_account();
        credit := acct.id;
    WHEN 'adjust' THEN
        IF amount_ > 0 THEN
            debit := allot.program_account_of(a.id);
            credit := acct.id;
        ELSE
            IF allot.available_of(acct) < -amount_ THEN
                RAISE EXCEPTION 'could not take % units from allocation %: % available', -amount_,
                    a.id, allot.available_of(acct) USING ERRCODE = '53400',
                    DETAIL = jsonb_build_object('requested_units', (-amount_)::text,
                        'available_units', allot.available_of(acct)::text,
                        'allocation', a.id::text)::text;
            END IF;
            debit := acct.id;
            credit := allot.program_account_of(a.id);
        END IF;
    WHEN 'credit_limit' THEN
        UPDATE allot.accounts SET credit_limit = amount_ WHERE id = acct.id;
    END CASE;
    IF kind_ <> 'credit_limit' THEN
        INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id,
            amount, body_hash, principal, reason)
        VALUES (tid, kind_, debit, credit, abs(amount_), hash, principal_, reason_);
    END IF;
    c.transfer_id := tid;
    c.kind := kind_;
    c.allocation_id := a.id;
    c.from_allocation_id := f.id;
    c.amount := amount_;
    c.reason := reason_;
    c.principal := principal_;
    c.body_hash := hash;
    RETURN allot.change_store(c);
END $$;

-- ---------------------------------------------------------------- incidents

-- What other incidents credited a job, found by site and job.
CREATE INDEX incident_credits_job ON allot.incident_credits (site, job_id);

-- rpc_declare_incident as in 0012, its credits capped: a job never gets back more
-- than it was charged (several incidents may cover it), nor an allocation more
-- than its usage was charged less what was refunded or credited already.
CREATE OR REPLACE FUNCTION allot.rpc_declare_incident(req jsonb, principal text) RETURNS jsonb
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

    -- The jobs' rows locked in job order (the lock order's first), then their
    -- allocations' accounts in id order, so that the refundable units read below
    -- are the ones the credits are weighed against.
    PERFORM 1 FROM allot.job_usage j
    WHERE j.site = site_ AND j.step = '' AND (res IS NULL OR j.resource_id = res)
      AND j.start_time < ends AND j.start_time + j.elapsed_s * interval '1 second' > starts
      AND j.charged_units > 0 AND j.elapsed_s > 0
    ORDER BY j.job_id
    FOR UPDATE;
    PERFORM 1 FROM allot.accounts
    WHERE id = allot.consumed_account() OR allocation_id IN (
        SELECT j.allocation_id FROM allot.job_usage j
        WHERE j.site = site_ AND j.step = '' AND (res IS NULL OR j.resource_id = res)
          AND j.start_time < ends AND j.start_time + j.elapsed_s * interval '1 second' > starts
          AND j.charged_units > 0 AND j.elapsed_s > 0)
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
          AND j.charged_units > 0 AND j.elapsed_s > 0),
    share AS (
        SELECT jobs.*, ac.id AS account_id, ac.refundable,
               floor(jobs.charged_units::numeric * jobs.overlap_us
                     / (jobs.elapsed_s * 1000000::numeric))::bigint AS owed,
               greatest(jobs.charged_units - coalesce((
                   SELECT sum(p.credit_units) FROM allot.incident_credits p
                   WHERE p.site = site_ AND p.job_id = jobs.job_id), 0), 0)::bigint AS job_left
        FROM jobs JOIN allot.accounts ac ON ac.allocation_id = jobs.allocation_id),
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
            format('incident %s: %s (job %s at %s: %s of its %s s in the window)%s', iid, reason_,
                   c.job_id, site_, round(c.overlap_us / 1000000.0, 3), c.elapsed_s,
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
