-- 0015_allocation_refs: no foreign key to allot.allocations is checked after the
-- accounts are locked, so that no writer waits for an allocation's row while it
-- holds accounts (the lock order of sql/README.md: allocations before accounts).
--
-- A foreign key check takes FOR KEY SHARE on the referenced row when the row that
-- names it is inserted. Reservations (liens), allocation changes and incident
-- credits are inserted after their accounts are locked, while ingestion locks its
-- allocations FOR UPDATE (which conflicts with KEY SHARE) before the journal's
-- trigger locks the accounts: an ingestion and a reservation, a deposit or an
-- incident on the same allocation deadlocked (found by tests/integration/test_bank).
--
-- The constraints go (as 0003 did for job_usage and transfers); what they kept is
-- kept by triggers that take no row lock: an allocation is never deleted nor
-- renumbered (refused, like accounts), so one that exists when a row names it
-- exists for good, and each statement that inserts rows naming allocations checks
-- that they exist (SQLSTATE 23503, as the foreign key answered). A lien never moves
-- to another allocation. allot.check_allocation_refs() proves it over the tables.

ALTER TABLE allot.liens DROP CONSTRAINT liens_allocation_id_fkey;
ALTER TABLE allot.allocation_changes DROP CONSTRAINT allocation_changes_allocation_id_fkey,
    DROP CONSTRAINT allocation_changes_from_allocation_id_fkey;
ALTER TABLE allot.incident_credits DROP CONSTRAINT incident_credits_allocation_id_fkey;

CREATE TRIGGER allocations_no_delete BEFORE DELETE ON allot.allocations
    FOR EACH ROW EXECUTE FUNCTION allot.refuse_delete();
CREATE TRIGGER allocations_no_truncate BEFORE TRUNCATE ON allot.allocations
    FOR EACH STATEMENT EXECUTE FUNCTION allot.refuse_delete();

-- Refuses changing the column named by TG_ARGV[0] (an allocation id) of a row.
CREATE FUNCTION allot.refuse_allocation_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF to_jsonb(NEW) -> TG_ARGV[0] IS DISTINCT FROM to_jsonb(OLD) -> TG_ARGV[0] THEN
        RAISE EXCEPTION '%.% is never changed: % is refused', TG_TABLE_NAME, TG_ARGV[0], TG_OP
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER allocations_no_renumber BEFORE UPDATE OF id ON allot.allocations
    FOR EACH ROW EXECUTE FUNCTION allot.refuse_allocation_change('id');
CREATE TRIGGER liens_same_allocation BEFORE UPDATE OF allocation_id ON allot.liens
    FOR EACH ROW EXECUTE FUNCTION allot.refuse_allocation_change('allocation_id');

-- After a statement inserted rows (transition table added) naming allocations in
-- allocation_id (and from_allocation_id for allocation_changes): each must exist.
-- One anti-join by the allocations' primary key, no lock.
CREATE FUNCTION allot.allocation_refs_exist() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE missing bigint;
BEGIN
    IF TG_TABLE_NAME = 'allocation_changes' THEN
        SELECT x.id INTO missing
        FROM (SELECT allocation_id AS id FROM added
              UNION SELECT from_allocation_id FROM added WHERE from_allocation_id IS NOT NULL) x
        WHERE NOT EXISTS (SELECT 1 FROM allot.allocations a WHERE a.id = x.id)
        LIMIT 1;
    ELSE
        SELECT x.allocation_id INTO missing FROM added x
        WHERE NOT EXISTS (SELECT 1 FROM allot.allocations a WHERE a.id = x.allocation_id)
        LIMIT 1;
    END IF;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'insert into %: allocation % does not exist', TG_TABLE_NAME, missing
            USING ERRCODE = '23503';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER liens_allocation_exists AFTER INSERT ON allot.liens
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION allot.allocation_refs_exist();
CREATE TRIGGER allocation_changes_allocation_exists AFTER INSERT ON allot.allocation_changes
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION allot.allocation_refs_exist();
CREATE TRIGGER incident_credits_allocation_exists AFTER INSERT ON allot.incident_credits
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION allot.allocation_refs_exist();

-- Raises naming the first row that names an allocation that does not exist; true
-- otherwise. For tests and operators; reads the three tables whole.
CREATE FUNCTION allot.check_allocation_refs() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE bad text;
BEGIN
    SELECT x.what INTO bad
    FROM (SELECT format('lien %s', id) AS what, allocation_id AS ref FROM allot.liens
          UNION ALL
          SELECT format('allocation change %s', transfer_id), allocation_id
          FROM allot.allocation_changes
          UNION ALL
          SELECT format('allocation change %s (from)', transfer_id), from_allocation_id
          FROM allot.allocation_changes WHERE from_allocation_id IS NOT NULL
          UNION ALL
          SELECT format('incident credit %s/%s/%s', incident_id, site, job_id), allocation_id
          FROM allot.incident_credits) x
    WHERE NOT EXISTS (SELECT 1 FROM allot.allocations a WHERE a.id = x.ref)
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION '% names an allocation that does not exist', bad USING ERRCODE = '23503';
    END IF;
    RETURN true;
END $$;
