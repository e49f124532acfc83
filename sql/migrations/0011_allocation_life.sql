-- 0011_allocation_life: an allocation's life after its grant (sql/README.md,
-- "An allocation's life"): its window enforced for every reservation, its end
-- (the remainder moves to the `expired` account, once, by allotd), deposits,
-- moves between allocations of one organization, refunds, adjustments and a
-- credit limit per allocation.
--
-- Every operation but a credit limit is one transfer; each is recorded in
-- allocation_changes with its first answer, so that a replay of the same id and
-- body answers it again and another body under the id is already_exists.
-- Lock order as everywhere (0003): liens by id, then allocations, then accounts
-- by id.

-- ---------------------------------------------------------------- accounts and kinds

ALTER TABLE allot.accounts DROP CONSTRAINT IF EXISTS accounts_kind_check;
ALTER TABLE allot.accounts ADD CONSTRAINT accounts_kind_check
    CHECK (kind IN ('program', 'allocation', 'consumed', 'expired'));
CREATE UNIQUE INDEX accounts_one_expired ON allot.accounts (kind) WHERE kind = 'expired';
INSERT INTO allot.accounts (kind) VALUES ('expired');

CREATE FUNCTION allot.expired_account() RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT id FROM allot.accounts WHERE kind = 'expired' $$;

ALTER TABLE allot.transfers DROP CONSTRAINT IF EXISTS transfers_kind_check;
ALTER TABLE allot.transfers ADD CONSTRAINT transfers_kind_check
    CHECK (kind IN ('grant', 'charge', 'reserve', 'post', 'void', 'move', 'expire', 'adjust',
                    'deposit', 'refund', 'credit'));
-- Expiry's ids are the service's: no caller can take one ahead of it (rows stored
-- before this migration are not checked).
ALTER TABLE allot.transfers ADD CONSTRAINT transfers_expire_ids
    CHECK ((kind = 'expire') = (transfer_id LIKE 'expire:%')) NOT VALID;

-- credit_limit: the overdraft a funder allows an allocation's reservations
-- (available + credit_limit >= 0). refundable: what usage charged the account
-- (charge and post debits) minus what was refunded to it; the database refuses a
-- refund beyond it. Both kept in the journal's trigger, below.
ALTER TABLE allot.accounts
    ADD COLUMN credit_limit bigint NOT NULL DEFAULT 0
        CHECK (credit_limit BETWEEN 0 AND 3600000000000000),
    ADD COLUMN refundable bigint NOT NULL DEFAULT 0 CONSTRAINT accounts_refundable_check
        CHECK (refundable >= 0);

-- What one journal row does to the refundable units of its accounts.
CREATE FUNCTION allot.transfer_refundable_debit(kind text, amount bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN kind IN ('charge', 'post') THEN amount ELSE 0 END $$;
CREATE FUNCTION allot.transfer_refundable_credit(kind text, amount bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN kind = 'refund' THEN -amount ELSE 0 END $$;

UPDATE allot.accounts a SET refundable = coalesce((
    SELECT sum(allot.transfer_refundable_debit(kind, amount)) FROM allot.transfers
    WHERE debit_account_id = a.id), 0)
WHERE a.kind = 'allocation';

-- What may still be reserved on an account: available plus the credit limit.
CREATE FUNCTION allot.reservable_of(a allot.accounts) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT allot.available_of(a) + a.credit_limit $$;

-- The journal's trigger as in 0003, with two changes: the rule of reservations is
-- available + credit_limit >= 0 for every account a reserve of the statement
-- debits, and each account's refundable units are kept with its other columns.
CREATE OR REPLACE FUNCTION allot.transfers_apply() RETURNS trigger
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
    IF locked <> named THEN
        RAISE EXCEPTION 'a transfer names an account that does not exist' USING ERRCODE = '23503';
    END IF;
    UPDATE allot.accounts a SET
        debits_posted = a.debits_posted + d.dp, credits_posted = a.credits_posted + d.cp,
        debits_pending = a.debits_pending + d.dq, credits_pending = a.credits_pending + d.cq,
        refundable = a.refundable + d.rf
    FROM (SELECT account, sum(dp) AS dp, sum(cp) AS cp, sum(dq) AS dq, sum(cq) AS cq,
                 sum(rf) AS rf
          FROM (SELECT debit_account_id AS account, allot.transfer_posted(kind, amount) AS dp,
                       0 AS cp, allot.transfer_pending(kind, amount) AS dq, 0 AS cq,
                       allot.transfer_refundable_debit(kind, amount) AS rf
                FROM added
                UNION ALL
                SELECT credit_account_id, 0, allot.transfer_posted(kind, amount), 0,
                       allot.transfer_pending(kind, amount),
                       allot.transfer_refundable_credit(kind, amount)
                FROM added) x
          GROUP BY account) d
    WHERE a.id = d.account;
    SELECT a.id, allot.available_of(a) AS available, a.credit_limit INTO bad
    FROM allot.accounts a
    WHERE a.id IN (SELECT debit_account_id FROM added WHERE kind = 'reserve')
      AND allot.reservable_of(a) < 0
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a reservation would leave account % with % units available (credit limit %)',
            bad.id, bad.available, bad.credit_limit USING ERRCODE = '53400';
    END IF;
    RETURN NULL;
END $$;

-- Proves what this migration keeps beside check_ledger: each account's refundable
-- units against the journal. Raises naming the first account that disagrees.
CREATE FUNCTION allot.check_allocation_life() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE bad text;
BEGIN
    WITH j AS (
        SELECT account, sum(rf) AS rf
        FROM (SELECT debit_account_id AS account, allot.transfer_refundable_debit(kind, amount) AS rf
              FROM allot.transfers
              UNION ALL
              SELECT credit_account_id, allot.transfer_refundable_credit(kind, amount)
              FROM allot.transfers) x
        GROUP BY account)
    SELECT format('account %s: refundable %s, the journal says %s', a.id, a.refundable,
                  coalesce(j.rf, 0)) INTO bad
    FROM allot.accounts a LEFT JOIN j ON j.account = a.id
    WHERE a.kind = 'allocation' AND a.refundable <> coalesce(j.rf, 0)
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'refundable units and journal disagree: %', bad;
    END IF;
    RETURN true;
END $$;

-- ---------------------------------------------------------------- the record of changes

CREATE TABLE allot.allocation_changes (
    transfer_id text COLLATE "C" PRIMARY KEY CHECK (length(transfer_id) BETWEEN 1 AND 200),
    kind text NOT NULL
        CHECK (kind IN ('deposit', 'move', 'refund', 'adjust', 'credit_limit', 'expire')),
    allocation_id bigint NOT NULL REFERENCES allot.allocations,
    from_allocation_id bigint REFERENCES allot.allocations,
    amount bigint NOT NULL,
    reason text NOT NULL,
    principal text NOT NULL,
    body_hash text NOT NULL,
    answer jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((kind = 'move') = (from_allocation_id IS NOT NULL))
);
CREATE INDEX allocation_changes_allocation ON allot.allocation_changes (allocation_id, created_at);
CREATE TRIGGER allocation_changes_no_update_delete BEFORE UPDATE OR DELETE
    ON allot.allocation_changes FOR EACH ROW EXECUTE FUNCTION allot.refuse_delete();
CREATE TRIGGER allocation_changes_no_truncate BEFORE TRUNCATE ON allot.allocation_changes
    FOR EACH STATEMENT EXECUTE FUNCTION allot.refuse_delete();

-- Expiry finds an allocation's active liens by this index.
CREATE INDEX liens_active_allocation ON allot.liens (allocation_id) WHERE status = 'active';

-- The program account an allocation's grant came from.
CREATE FUNCTION allot.program_account_of(allocation bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT ac.id FROM allot.allocations a
    JOIN allot.projects p ON p.id = a.project_id
    JOIN allot.organizations o ON o.id = p.organization_id
    JOIN allot.accounts ac ON ac.program_id = o.program_id
    WHERE a.id = allocation
$$;

-- An AllocationChange's JSON: the change and the allocations' figures now.
CREATE FUNCTION allot.change_json(c allot.allocation_changes) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('transferId', c.transfer_id, 'kind', c.kind,
        'allocationId', c.allocation_id, 'fromAllocationId', coalesce(c.from_allocation_id, 0),
        'amountUnits', c.amount, 'amountGpuHours', round(c.amount / 3600000.0, 6),
        'reason', c.reason, 'principal', c.principal, 'createdAt', allot.rfc3339(c.created_at),
        'availableUnits', allot.available_of(t), 'creditLimitUnits', t.credit_limit,
        'fromAvailableUnits', coalesce(allot.available_of(f), 0))
    FROM allot.accounts t
    LEFT JOIN allot.accounts f ON f.allocation_id = c.from_allocation_id
    WHERE t.allocation_id = c.allocation_id
$$;

-- The stored answer of change id tid when hash is its body's, NULL when tid is new.
-- Takes the id's lock (the same as CreateAllocation's), so that one of several
-- callers sending one id does it and the others replay. 23505 when the id was used
-- with another body, or by a transfer that is no allocation change (a grant).
CREATE FUNCTION allot.change_replay(tid text, hash text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE seen allot.allocation_changes;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('allot.transfer:' || tid, 0));
    SELECT * INTO seen FROM allot.allocation_changes WHERE transfer_id = tid;
    IF FOUND THEN
        IF seen.body_hash <> hash THEN
            RAISE EXCEPTION 'transfer id "%" was already used with a different body', tid
                USING ERRCODE = '23505';
        END IF;
        RETURN seen.answer;
    END IF;
    IF EXISTS (SELECT 1 FROM allot.transfers WHERE transfer_id = tid) THEN
        RAISE EXCEPTION 'transfer id "%" was already used by another transfer', tid
            USING ERRCODE = '23505';
    END IF;
    RETURN NULL;
END $$;

-- The allocation of id, or not_found.
CREATE FUNCTION allot.allocation_of(what text, id bigint) RETURNS allot.allocations
LANGUAGE plpgsql STABLE AS $$
DECLARE a allot.allocations;
BEGIN
    SELECT * INTO a FROM allot.allocations WHERE allocations.id = allocation_of.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% % does not exist', what, id USING ERRCODE = 'P0002';
    END IF;
    RETURN a;
END $$;

-- Stores change c (its answer worked out now) and returns the answer.
CREATE FUNCTION allot.change_store(c allot.allocation_changes) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    c.created_at := clock_timestamp();
    c.answer := allot.change_json(c);
    INSERT INTO allot.allocation_changes VALUES (c.*);
    RETURN c.answer;
END $$;

-- ---------------------------------------------------------------- deposits, moves, refunds, adjustments

-- One operation of an allocation's life: kind is deposit, move, refund, adjust or
-- credit_limit; req is AllocationChangeRequest's JSON (transferId, allocationId,
-- fromAllocationId for a move, amountUnits, reason). See sql/README.md for each
-- kind's rule. Returns the AllocationChange's JSON, the first answer on a replay.
CREATE FUNCTION allot.allocation_change(req jsonb, principal_ text, kind_ text) RETURNS jsonb
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
        IF acct.refundable < amount_ THEN
            RAISE EXCEPTION 'could not refund % units to allocation %: its usage was charged % units not yet refunded',
                amount_, a.id, acct.refundable USING ERRCODE = '55000';
        END IF;
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

CREATE FUNCTION allot.rpc_deposit(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT allot.allocation_change(req, principal, 'deposit') $$;
CREATE FUNCTION allot.rpc_move(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT allot.allocation_change(req, principal, 'move') $$;
CREATE FUNCTION allot.rpc_refund(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT allot.allocation_change(req, principal, 'refund') $$;
CREATE FUNCTION allot.rpc_adjust(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT allot.allocation_change(req, principal, 'adjust') $$;
CREATE FUNCTION allot.rpc_set_credit_limit(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT allot.allocation_change(req, principal, 'credit_limit') $$;

-- ListChanges: an allocation's changes, oldest first (the answers as stored).
CREATE FUNCTION allot.rpc_list_changes(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE a allot.allocations := allot.allocation_of('allocation', allot.j_int(req, 'allocationId'));
BEGIN
    RETURN jsonb_build_object('changes', coalesce((
        SELECT jsonb_agg(c.answer ORDER BY c.created_at, c.transfer_id)
        FROM allot.allocation_changes c
        WHERE c.allocation_id = a.id OR c.from_allocation_id = a.id), '[]'));
END $$;

-- ---------------------------------------------------------------- expiry

-- Expires the allocations whose window ended at or before at_ (allotd passes now();
-- tests pass any time): each one's active liens are closed as expired (their holds
-- voided: a job still running at the end has been told to stop by its heartbeat),
-- then what it has available moves to the expired account by one transfer of kind
-- expire, 'expire:<allocation id>' (a later one, when an ended allocation got units
-- back by a refund or an adjustment, 'expire:<id>:<n>'). One expirer at a time
-- (a transaction advisory lock: another allotd finding it taken returns 0 at once),
-- and each amount is read under the account's lock, so several allotd expire each
-- remainder once. At most max_ allocations per call. Returns how many it expired.
CREATE FUNCTION allot.expire_allocations(at_ timestamptz DEFAULT now(), max_ integer DEFAULT 100)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    due bigint[];
    l allot.liens;
    r record;
    n integer := 0;
    c allot.allocation_changes;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('allot.expire_allocations')) THEN
        RETURN 0;
    END IF;
    SELECT array_agg(a.id ORDER BY a.id) INTO due FROM (
        SELECT a.id FROM allot.allocations a
        JOIN allot.accounts ac ON ac.allocation_id = a.id
        WHERE a.ends_at <= at_ AND (allot.available_of(ac) > 0 OR ac.debits_pending > 0)
        ORDER BY a.id LIMIT max_) a;
    IF due IS NULL THEN
        RETURN 0;
    END IF;
    -- Locks in the schema's order: the liens, then the accounts.
    PERFORM 1 FROM allot.liens
    WHERE allocation_id = ANY (due) AND status = 'active' ORDER BY id FOR UPDATE;
    PERFORM 1 FROM allot.accounts
    WHERE kind IN ('consumed', 'expired') OR allocation_id = ANY (due) ORDER BY id FOR UPDATE;
    FOR l IN SELECT * FROM allot.liens
             WHERE allocation_id = ANY (due) AND status = 'active' ORDER BY id LOOP
        PERFORM allot.lien_close(l, 'expired', 'allotd');
    END LOOP;
    FOR r IN
        SELECT a.id, allot.available_of(ac) AS remainder, ac.id AS account,
               (SELECT count(*) FROM allot.allocation_changes x
                WHERE x.allocation_id = a.id AND x.kind = 'expire') AS done
        FROM allot.allocations a JOIN allot.accounts ac ON ac.allocation_id = a.id
        WHERE a.id = ANY (due) ORDER BY a.id
    LOOP
        CONTINUE WHEN r.remainder <= 0;
        c.transfer_id := 'expire:' || r.id || CASE WHEN r.done > 0 THEN ':' || (r.done + 1) ELSE '' END;
        c.kind := 'expire';
        c.allocation_id := r.id;
        c.amount := r.remainder;
        c.reason := format('allocation %s ended; %s units expired', r.id, r.remainder);
        c.principal := 'allotd';
        c.body_hash := md5(c.transfer_id || ':' || r.remainder);
        INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, credit_account_id,
            amount, body_hash, principal, reason)
        VALUES (c.transfer_id, 'expire', r.account, allot.expired_account(), r.remainder,
            c.body_hash, 'allotd', c.reason);
        PERFORM allot.change_store(c);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- ---------------------------------------------------------------- the window and the credit limit

-- Why no allocation of project covers resource at at_: '' when none exists for the
-- resource at all, else the windows of those that do, for the refusal's message.
CREATE FUNCTION allot.window_hint(project bigint, resource bigint, at_ timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(': ' || string_agg(format('allocation %s is open from %s to %s', c.id,
                        allot.rfc3339(c.starts_at), allot.rfc3339(c.ends_at)), ', '
                        ORDER BY c.rank), '')
    FROM (SELECT * FROM allot.allocation_candidates(project, resource) ORDER BY rank LIMIT 5) c
$$;

-- job_allocation as in 0003, its refusal naming the windows that exist.
CREATE OR REPLACE FUNCTION allot.job_allocation(account_ text, site_ text, resource_ bigint,
    at_ timestamptz, OUT project bigint, OUT allocation bigint, OUT account bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT id INTO project FROM allot.projects WHERE name = account_;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown account "%"', account_ USING ERRCODE = 'P0002';
    END IF;
    allocation := allot.choose_allocation(project, resource_, at_);
    IF allocation IS NULL THEN
        RAISE EXCEPTION '%', format('no allocation of project "%s" covers %s/%s at %s%s', account_,
            site_, (SELECT partition FROM allot.resources WHERE id = resource_), allot.rfc3339(at_),
            allot.window_hint(project, resource_, at_)) USING ERRCODE = '55000';
    END IF;
    SELECT id INTO account FROM allot.accounts WHERE allocation_id = allocation;
END $$;

-- Quote, as in 0005, with the credit limit: a job fits when its cost is at most
-- available + credit_limit.
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
    credit bigint;
    reason text := '';
BEGIN
    PERFORM allot.check_account_caller(principal, account_, project_);
    BEGIN
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
    SELECT allot.available_of(a), a.credit_limit INTO avail, credit
    FROM allot.accounts a WHERE a.id = ja.account;
    IF avail + credit < 0 THEN
        reason := 'exhausted: usage overdrew the allocation';
    ELSIF cost > avail + credit THEN
        reason := format('exhausted: the job needs %s GPU-h, %s are available%s',
                         round(cost / 3600000.0, 2), round(avail / 3600000.0, 2),
                         CASE WHEN credit > 0 THEN format(' with a credit limit of %s',
                             round(credit / 3600000.0, 2)) ELSE '' END);
    END IF;
    RETURN jsonb_build_object('allowed', reason = '', 'reason', reason,
        'allocationId', ja.allocation, 'occupiedGpus', bill -> 'occupiedGpus',
        'costUnits', cost, 'costGpuHours', round(cost / 3600000.0, 6),
        'availableUnits', avail, 'availableGpuHours', round(avail / 3600000.0, 6),
        'nativeCostMilli', bill -> 'nativeMilli', 'nativeUnit', bill -> 'nativeUnit');
END $$;

-- ReserveCampaign as in 0003, with the window and the credit limit: the campaign is
-- held until its end or its allocation's, whichever comes first, and it fits when
-- its hours are at most available + credit_limit.
CREATE OR REPLACE FUNCTION allot.rpc_reserve_campaign(req jsonb, principal text) RETURNS jsonb
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
    credit bigint;
    alloc_ends timestamptz;
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
    SELECT ends_at INTO alloc_ends FROM allot.allocations WHERE id = ja.allocation;
    -- A hold never outlives its allocation: expiry would release it at the end.
    ends := least(ends, alloc_ends);
    SELECT allot.available_of(a), a.credit_limit INTO avail, credit
    FROM allot.accounts a WHERE a.id = ja.account;
    IF hours * 3600000 > avail + credit THEN
        RAISE EXCEPTION '%', format('could not reserve %s GPU-h for campaign "%s": %s available on allocation %s%s',
            hours, lid, round(greatest(avail, 0) / 3600000.0, 2), ja.allocation,
            CASE WHEN credit > 0 THEN format(' with a credit limit of %s GPU-h',
                round(credit / 3600000.0, 2)) ELSE '' END) USING ERRCODE = '53400';
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

-- reserve_group as in 0005, with the credit limit: a reservation fits when it is at
-- most available + credit_limit (the allocation's available may then go below zero,
-- down to -credit_limit), and a refusal for want of an open allocation names the
-- windows of the allocations that exist.
CREATE OR REPLACE FUNCTION allot.reserve_group(reqs jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    consumed bigint := allot.consumed_account();
    r record;
    avail jsonb;
    credit jsonb;
    cr bigint;
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
    SELECT coalesce(jsonb_object_agg(x.id, x.available), '{}'),
           coalesce(jsonb_object_agg(x.id, x.credit_limit), '{}') INTO avail, credit FROM (
        SELECT a.id, allot.available_of(a) AS available, a.credit_limit
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
                'message', format('no allocation of project "%s" covers %s/%s at %s%s', r.project,
                    r.site, r.req ->> 'partition', allot.rfc3339(now()),
                    allot.window_hint(r.project_id, r.resource_id, now()))));
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
        cr := (credit ->> r.account_id::text)::bigint;
        IF have + give + cr < 0 OR own > have + give + cr THEN
            errs := errs || jsonb_build_object(r.n::text, jsonb_build_object('sqlstate', '53400',
                'message', format('could not reserve %s GPU-h (%s units) for job %s of project "%s": %s GPU-h (%s units) available on allocation %s%s',
                    round(own / 3600000.0, 2), own, r.job_id, r.project,
                    round((have + give) / 3600000.0, 2), have + give, r.allocation_id,
                    CASE WHEN cr > 0 THEN format(', with a credit limit of %s units', cr) ELSE '' END),
                'meta', jsonb_build_object('requested_units', own::text,
                    'requested_gpu_hours', round(own / 3600000.0, 6)::text,
                    'available_units', (have + give)::text,
                    'available_gpu_hours', round((have + give) / 3600000.0, 6)::text,
                    'credit_limit_units', cr::text,
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

-- Heartbeat as in 0003, with the credit limit: a job is exhausted when its
-- allocation's available + credit_limit is below zero (or, holding nothing, not above).
CREATE OR REPLACE FUNCTION allot.rpc_heartbeat(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    site_ text := allot.j_text(req, 'site');
    job text := allot.j_text(req, 'jobId');
    bill jsonb := req -> 'bill';
    sh jsonb := req -> 'shape';
    l allot.liens;
    camp_held bigint := 0;
    avail bigint;
    credit bigint;
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
    SELECT allot.available_of(a), a.credit_limit INTO avail, credit
    FROM allot.accounts a WHERE a.allocation_id = l.allocation_id;
    IF l.status = 'expired' THEN
        why := 'lien expired';
    ELSIF l.status <> 'active' THEN
        why := 'lien released';
    ELSIF ends <= now() THEN
        why := 'allocation ended';
    ELSIF avail + credit < 0
          OR (l.held = 0 AND coalesce(camp_held, 0) = 0 AND avail + credit <= 0) THEN
        why := 'exhausted';
    END IF;
    IF why <> '' THEN
        action := 'STOP';
    END IF;
    RETURN jsonb_build_object('action', 'HEARTBEAT_ACTION_' || action, 'reason', why,
        'chargedUnits', charged, 'heldUnits', l.held, 'availableUnits', avail,
        'lien', allot.lien_json(l));
END $$;
