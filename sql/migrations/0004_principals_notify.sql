-- 0004_principals_notify: allotd keeps allot.principals in memory. A change to the
-- table tells every allotd listening on the channel allot_principals to read it
-- again (daemon/auth.c); and an admin may remove a principal.
--
-- One notification per statement, with an empty payload: PostgreSQL folds equal
-- notifications of one transaction into one, and sends them at commit only, so a
-- rolled-back change wakes nobody. allotd reads the whole table on each.

CREATE FUNCTION allot.principals_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('allot_principals', '');
    RETURN NULL;
END $$;

CREATE TRIGGER principals_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON allot.principals
    FOR EACH STATEMENT EXECUTE FUNCTION allot.principals_notify();

-- Removes the principal of req's subject (its role and scope are not read) and
-- returns it as it was; not_found when there is none.
CREATE FUNCTION allot.rpc_remove_principal(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    p allot.principals;
BEGIN
    IF allot.j_text(req, 'subject') = '' THEN
        RAISE EXCEPTION 'subject is required' USING ERRCODE = '22023';
    END IF;
    DELETE FROM allot.principals WHERE subject = allot.j_text(req, 'subject')
    RETURNING * INTO p;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'principal "%" does not exist', allot.j_text(req, 'subject')
            USING ERRCODE = 'P0002';
    END IF;
    RETURN allot.principal_json(p);
END $$;
