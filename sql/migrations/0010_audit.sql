-- 0010_audit: the sealed journal. Transfers are sealed into hash-chained blocks,
-- each signed by the service's Ed25519 audit key, so that an auditor holding only
-- the public key can prove an export of the journal complete and unaltered
-- (README "The audit journal" specifies the lines and the hash input).
--
-- What has committed is what gets sealed, in the order it is sealed: a statement
-- trigger on the journal puts each new transfer into allot.seal_queue inside the
-- writer's transaction, so a sealer sees exactly the committed transfers whatever
-- the order of their ids (concurrent writers commit out of id order). allotd seals
-- in two calls (allot.seal_next, then allot.seal_block); the hashing and the
-- signature are its own (lib/auditfmt.c), the second call checks under a lock that
-- the chain has not moved and writes the block and its balances in one statement.
-- Blocks and their balances are append-only, like the journal.

-- A reason or a lien may hold any text, but a lien is never empty: the audit lines
-- write no lien as an empty field.
ALTER TABLE allot.transfers ADD CONSTRAINT transfers_lien_named CHECK (lien <> '');

CREATE TABLE allot.seal_queue (
    entry bigint PRIMARY KEY -- allot.transfers.id, committed and not yet sealed
);
INSERT INTO allot.seal_queue (entry) SELECT id FROM allot.transfers;

CREATE FUNCTION allot.transfers_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO allot.seal_queue (entry) SELECT id FROM added;
    RETURN NULL;
END $$;

CREATE TRIGGER transfers_seal_queue AFTER INSERT ON allot.transfers
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION allot.transfers_enqueue();

-- A block: its entries (transfer ids, in their sealed order), the hash of their
-- lines, the balances of the accounts they touched after them (block_balances),
-- the hash of those lines, the previous block's hash (32 zero bytes for the first),
-- its own hash and the audit key's signature of it.
CREATE TABLE allot.blocks (
    number bigint PRIMARY KEY CHECK (number > 0),
    sealed_at timestamptz NOT NULL,
    prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
    entries bigint[] NOT NULL CHECK (cardinality(entries) > 0),
    entries_hash bytea NOT NULL CHECK (length(entries_hash) = 32),
    accounts integer NOT NULL CHECK (accounts > 0),
    balances_hash bytea NOT NULL CHECK (length(balances_hash) = 32),
    hash bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    signature bytea NOT NULL CHECK (length(signature) = 64)
);
CREATE INDEX blocks_sealed_at ON allot.blocks (sealed_at);

-- Each account a block touched, as it stands after the block.
CREATE TABLE allot.block_balances (
    block bigint NOT NULL REFERENCES allot.blocks,
    account bigint NOT NULL,
    debits_posted bigint NOT NULL CHECK (debits_posted >= 0),
    credits_posted bigint NOT NULL CHECK (credits_posted >= 0),
    debits_pending bigint NOT NULL CHECK (debits_pending >= 0),
    credits_pending bigint NOT NULL CHECK (credits_pending >= 0),
    PRIMARY KEY (block, account)
);
-- An account's latest sealed balance: its last row.
CREATE INDEX block_balances_account ON allot.block_balances (account, block DESC);

CREATE FUNCTION allot.sealed_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'allot.% is append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = '42501';
END $$;
CREATE TRIGGER blocks_no_update_delete BEFORE UPDATE OR DELETE ON allot.blocks
    FOR EACH ROW EXECUTE FUNCTION allot.sealed_append_only();
CREATE TRIGGER blocks_no_truncate BEFORE TRUNCATE ON allot.blocks
    FOR EACH STATEMENT EXECUTE FUNCTION allot.sealed_append_only();
CREATE TRIGGER block_balances_no_update_delete BEFORE UPDATE OR DELETE ON allot.block_balances
    FOR EACH ROW EXECUTE FUNCTION allot.sealed_append_only();
CREATE TRIGGER block_balances_no_truncate BEFORE TRUNCATE ON allot.block_balances
    FOR EACH STATEMENT EXECUTE FUNCTION allot.sealed_append_only();

-- A time as the audit lines write it: UTC, microseconds, always 27 characters.
-- STABLE, as to_char is: so that it is inlined (an IMMUTABLE wrapper of a STABLE
-- call is run as a function call per row).
CREATE FUNCTION allot.audit_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The balances after entries (transfer ids) of the accounts they touch: each
-- account's latest sealed balance (zero before its first block) plus what the
-- entries do to it, by the rule of allot.transfers_apply.
CREATE FUNCTION allot.seal_balances(entries bigint[])
RETURNS TABLE (account bigint, debits_posted bigint, credits_posted bigint,
               debits_pending bigint, credits_pending bigint)
LANGUAGE sql STABLE AS $$
    WITH d AS (
        SELECT x.account, sum(x.dp) AS dp, sum(x.cp) AS cp, sum(x.dq) AS dq, sum(x.cq) AS cq
        FROM allot.transfers t
        CROSS JOIN LATERAL (VALUES
            (t.debit_account_id, allot.transfer_posted(t.kind, t.amount), 0::bigint,
             allot.transfer_pending(t.kind, t.amount), 0::bigint),
            (t.credit_account_id, 0::bigint, allot.transfer_posted(t.kind, t.amount), 0::bigint,
             allot.transfer_pending(t.kind, t.amount))) x(account, dp, cp, dq, cq)
        WHERE t.id = ANY (entries)
        GROUP BY x.account)
    SELECT d.account,
           (coalesce(b.debits_posted, 0) + d.dp)::bigint,
           (coalesce(b.credits_posted, 0) + d.cp)::bigint,
           (coalesce(b.debits_pending, 0) + d.dq)::bigint,
           (coalesce(b.credits_pending, 0) + d.cq)::bigint
    FROM d
    LEFT JOIN LATERAL (SELECT bb.* FROM allot.block_balances bb WHERE bb.account = d.account
                       ORDER BY bb.block DESC LIMIT 1) b ON true
    ORDER BY d.account
$$;

-- What the next block would seal: at most max_entries of the queued (committed)
-- transfers. Rows: one 'H' (n1 the block's number, n2 its entries, t1 its time, t2
-- the previous block's hash in hex), then one 'E' per entry in sealed order (n1 id,
-- n2 debit account, n3 credit account, n4 amount, t1 time, t2 transfer id, t3 kind,
-- t4 lien ('' for none), t5 principal, t6 reason, t7 body hash), then one 'A' per account
-- touched in account order (n1 account, n2..n5 debits and credits posted, debits and
-- credits pending). Nothing when the queue is empty.
CREATE FUNCTION allot.seal_next(max_entries integer)
RETURNS TABLE (part text, n1 bigint, n2 bigint, n3 bigint, n4 bigint, n5 bigint,
               t1 text, t2 text, t3 text, t4 text, t5 text, t6 text, t7 text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    ids bigint[];
    head record;
BEGIN
    IF max_entries IS NULL OR max_entries < 1 THEN
        RAISE EXCEPTION 'a block holds at least one entry, not %', max_entries
            USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(q.entry ORDER BY q.entry) INTO ids
    FROM (SELECT entry FROM allot.seal_queue ORDER BY entry LIMIT max_entries) q;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    SELECT b.number, b.hash INTO head FROM allot.blocks b ORDER BY b.number DESC LIMIT 1;
    RETURN QUERY
    SELECT 'H', coalesce(head.number, 0) + 1, cardinality(ids)::bigint, NULL::bigint,
           NULL::bigint, NULL::bigint, allot.audit_time(clock_timestamp()),
           encode(coalesce(head.hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea), 'hex'),
           NULL, NULL, NULL, NULL, NULL;
    RETURN QUERY
    SELECT 'E', t.id, t.debit_account_id, t.credit_account_id, t.amount, NULL::bigint,
           allot.audit_time(t.created_at), t.transfer_id::text, t.kind, coalesce(t.lien, ''), t.principal,
           t.reason, t.body_hash
    FROM allot.transfers t WHERE t.id = ANY (ids) ORDER BY t.id;
    RETURN QUERY
    SELECT 'A', s.account, s.debits_posted, s.credits_posted, s.debits_pending,
           s.credits_pending, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM allot.seal_balances(ids) s;
END $$;

-- Writes block number (as allot.seal_next proposed it, hashed and signed by allotd)
-- with its balances, and takes its entries off the queue; one sealer at a time (a
-- transaction-level advisory lock). Returns false, writing nothing, when the chain
-- has moved meanwhile (another allotd sealed first): number is not the next or
-- prev_hash not the last block's hash. Hashes and signature in hex.
CREATE FUNCTION allot.seal_block(number bigint, sealed_at text, prev_hash text,
    entries bigint[], entries_hash text, accounts integer, balances_hash text, hash text,
    signature text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    head record;
    taken bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('allot.seal'));
    SELECT b.number, b.hash, b.sealed_at INTO head
    FROM allot.blocks b ORDER BY b.number DESC LIMIT 1;
    IF coalesce(head.number, 0) + 1 <> seal_block.number
       OR coalesce(head.hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
          <> decode(seal_block.prev_hash, 'hex') THEN
        RETURN false;
    END IF;
    IF head.sealed_at > seal_block.sealed_at::timestamptz THEN
        RAISE EXCEPTION 'block % would be sealed at %, before block % (%)', seal_block.number,
            seal_block.sealed_at, head.number, allot.audit_time(head.sealed_at)
            USING ERRCODE = '22023';
    END IF;
    WITH d AS (DELETE FROM allot.seal_queue q WHERE q.entry = ANY (seal_block.entries)
               RETURNING 1)
    SELECT count(*) INTO taken FROM d;
    IF taken <> cardinality(seal_block.entries)
       OR cardinality(seal_block.entries) <> (SELECT count(DISTINCT e) FROM unnest(seal_block.entries) e) THEN
        RAISE EXCEPTION 'block % names % entries of which % are waiting to be sealed',
            seal_block.number, cardinality(seal_block.entries), taken USING ERRCODE = '22023';
    END IF;
    INSERT INTO allot.blocks (number, sealed_at, prev_hash, entries, entries_hash, accounts,
                              balances_hash, hash, signature)
    VALUES (seal_block.number, seal_block.sealed_at::timestamptz,
            decode(seal_block.prev_hash, 'hex'), seal_block.entries,
            decode(seal_block.entries_hash, 'hex'), seal_block.accounts,
            decode(seal_block.balances_hash, 'hex'), decode(seal_block.hash, 'hex'),
            decode(seal_block.signature, 'hex'));
    INSERT INTO allot.block_balances (block, account, debits_posted, credits_posted,
                                      debits_pending, credits_pending)
    SELECT seal_block.number, s.account, s.debits_posted, s.credits_posted, s.debits_pending,
           s.credits_pending
    FROM allot.seal_balances(seal_block.entries) s;
    GET DIAGNOSTICS taken = ROW_COUNT;
    IF taken <> seal_block.accounts THEN
        RAISE EXCEPTION 'block % states % accounts, its entries touch %', seal_block.number,
            seal_block.accounts, taken USING ERRCODE = '22023';
    END IF;
    RETURN true;
END $$;

-- Proves the sealed balances against the accounts: once the queue is empty, every
-- account's latest sealed balance equals its columns (an account never touched is
-- all zeros). Raises naming the first account that differs; returns the number of
-- blocks. With entries still queued it checks nothing and returns NULL.
CREATE FUNCTION allot.check_seal() RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    bad record;
BEGIN
    IF EXISTS (SELECT 1 FROM allot.seal_queue) THEN
        RETURN NULL;
    END IF;
    SELECT a.id, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
           b.debits_posted AS s_dp, b.credits_posted AS s_cp, b.debits_pending AS s_dq,
           b.credits_pending AS s_cq INTO bad
    FROM allot.accounts a
    LEFT JOIN LATERAL (SELECT bb.* FROM allot.block_balances bb WHERE bb.account = a.id
                       ORDER BY bb.block DESC LIMIT 1) b ON true
    WHERE (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)
          IS DISTINCT FROM (coalesce(b.debits_posted, 0), coalesce(b.credits_posted, 0),
                            coalesce(b.debits_pending, 0), coalesce(b.credits_pending, 0))
    ORDER BY a.id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'account % holds % % % %, its sealed balance is % % % %', bad.id,
            bad.debits_posted, bad.credits_posted, bad.debits_pending, bad.credits_pending,
            bad.s_dp, bad.s_cp, bad.s_dq, bad.s_cq USING ERRCODE = '23514';
    END IF;
    RETURN (SELECT count(*) FROM allot.blocks);
END $$;

-- Audit.ListBlocks: whole blocks after block number `after`, sealed in [from, to)
-- (RFC 3339; empty: unbounded), in order, until the page holds maxEntries entries
-- (default and at most 50,000; a block is never cut, so at least one block comes).
-- Hashes and signatures in hex; times as allot.audit_time writes them.
CREATE FUNCTION allot.rpc_list_blocks(req jsonb, subject text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    after_n bigint := coalesce(nullif(req ->> 'after', ''), '0')::bigint;
    from_t timestamptz := nullif(req ->> 'from', '')::timestamptz;
    to_t timestamptz := nullif(req ->> 'to', '')::timestamptz;
    max_n integer := coalesce(nullif(req ->> 'maxEntries', '')::integer, 0);
    picked bigint[];
    last_n bigint;
    result jsonb;
BEGIN
    IF max_n < 0 OR max_n > 50000 THEN
        RAISE EXCEPTION 'maxEntries must be between 1 and 50000, not %', max_n
            USING ERRCODE = '22023';
    END IF;
    IF max_n = 0 THEN
        max_n := 50000;
    END IF;
    IF from_t IS NOT NULL AND to_t IS NOT NULL AND from_t >= to_t THEN
        RAISE EXCEPTION 'from (%) must be before to (%)', req ->> 'from', req ->> 'to'
            USING ERRCODE = '22023';
    END IF;
    -- Blocks in order while the entries before each leave room (the first always
    -- comes: a block is never cut, so a page may hold one block's worth more).
    SELECT array_agg(x.number ORDER BY x.number), max(x.number) INTO picked, last_n
    FROM (SELECT b.number,
                 coalesce(sum(cardinality(b.entries)) OVER (ORDER BY b.number
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
          FROM (SELECT bl.number, bl.entries FROM allot.blocks bl
                WHERE bl.number > after_n
                  AND (from_t IS NULL OR bl.sealed_at >= from_t)
                  AND (to_t IS NULL OR bl.sealed_at < to_t)
                ORDER BY bl.number LIMIT max_n) b) x
    WHERE x.before < max_n;
    IF picked IS NULL THEN
        RETURN jsonb_build_object('blocks', '[]'::jsonb, 'nextAfter', '0');
    END IF;
    SELECT jsonb_agg(jsonb_build_object(
               'number', b.number::text,
               'sealedAt', allot.audit_time(b.sealed_at),
               'prevHash', encode(b.prev_hash, 'hex'),
               'entriesHash', encode(b.entries_hash, 'hex'),
               'balancesHash', encode(b.balances_hash, 'hex'),
               'hash', encode(b.hash, 'hex'),
               'signature', encode(b.signature, 'hex'),
               'entries', (SELECT jsonb_agg(jsonb_build_object(
                                  'id', t.id::text,
                                  'createdAt', allot.audit_time(t.created_at),
                                  'transferId', t.transfer_id,
                                  'kind', t.kind,
                                  'debitAccount', t.debit_account_id::text,
                                  'creditAccount', t.credit_account_id::text,
                                  'amount', t.amount::text,
                                  'lien', coalesce(t.lien, ''),
                                  'principal', t.principal,
                                  'reason', t.reason,
                                  'bodyHash', t.body_hash) ORDER BY e.pos)
                           FROM unnest(b.entries) WITH ORDINALITY e(id, pos)
                           JOIN allot.transfers t ON t.id = e.id),
               'balances', (SELECT jsonb_agg(jsonb_build_object(
                                   'account', bb.account::text,
                                   'debitsPosted', bb.debits_posted::text,
                                   'creditsPosted', bb.credits_posted::text,
                                   'debitsPending', bb.debits_pending::text,
                                   'creditsPending', bb.credits_pending::text)
                                   ORDER BY bb.account)
                            FROM allot.block_balances bb WHERE bb.block = b.number))
               ORDER BY b.number)
    INTO result
    FROM allot.blocks b WHERE b.number = ANY (picked);
    RETURN jsonb_build_object(
        'blocks', result,
        'nextAfter', CASE WHEN EXISTS (
                              SELECT 1 FROM allot.blocks b WHERE b.number > last_n
                                AND (from_t IS NULL OR b.sealed_at >= from_t)
                                AND (to_t IS NULL OR b.sealed_at < to_t))
                          THEN last_n::text ELSE '0' END);
END $$;
