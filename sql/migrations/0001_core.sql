-- 0001_core: the hierarchy, sites and resources, principals, the ledger and
-- job usage, and the functions behind the RPC (sql/README.md is the contract).
--
-- Applied by `allotd --migrate` in one transaction. Every rpc_* function takes
-- the request's proto3 JSON and the caller's certificate subject, and returns
-- the response's proto3 JSON; errors carry the SQLSTATEs that allotd maps to
-- Twirp codes: P0002 not_found, 23505 already_exists, 22023/22007/23514
-- invalid_argument.

CREATE SCHEMA IF NOT EXISTS allot;

-- ---------------------------------------------------------------- helpers

CREATE FUNCTION allot.j_text(req jsonb, key text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT coalesce(req ->> key, '') $$;

-- An integer field of proto3 JSON: 64-bit ones come as strings, others as numbers.
CREATE FUNCTION allot.j_int(req jsonb, key text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN coalesce(nullif(req ->> key, ''), '0')::bigint;
EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    RAISE EXCEPTION '% must be an integer, not "%"', key, req ->> key USING ERRCODE = '22023';
END $$;

CREATE FUNCTION allot.check_name(what text, value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF value IS NULL OR value = '' THEN
        RAISE EXCEPTION '% is required', what USING ERRCODE = '22023';
    END IF;
    IF value !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' THEN
        RAISE EXCEPTION '% "%" is not valid: use 1 to 63 lower-case letters, digits, "_", "." or "-", starting with a letter or digit',
            what, value USING ERRCODE = '22023';
    END IF;
    RETURN value;
END $$;

CREATE FUNCTION allot.to_time(what text, value text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF value IS NULL OR value = '' THEN
        RAISE EXCEPTION '% is required', what USING ERRCODE = '22023';
    END IF;
    RETURN value::timestamptz;
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR invalid_text_representation THEN
    RAISE EXCEPTION '% "%" is not a date or an RFC 3339 time', what, value USING ERRCODE = '22007';
END $$;

CREATE FUNCTION allot.try_time(value text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN nullif(value, '')::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

CREATE FUNCTION allot.rfc3339(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- ---------------------------------------------------------------- hierarchy

CREATE TABLE allot.programs (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE allot.organizations (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    program_id bigint NOT NULL REFERENCES allot.programs,
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A project's name is the Slurm account its jobs are reported under.
CREATE TABLE allot.projects (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    organization_id bigint NOT NULL REFERENCES allot.organizations,
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE allot.project_users (
    project_id bigint NOT NULL REFERENCES allot.projects,
    user_name text NOT NULL CHECK (user_name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    PRIMARY KEY (project_id, user_name)
);

-- ---------------------------------------------------------------- sites and resources

CREATE TABLE allot.sites (
    name text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE allot.resources (
    id bigserial PRIMARY KEY,
    site text NOT NULL REFERENCES allot.sites,
    partition text NOT NULL CHECK (partition ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    accelerator text NOT NULL DEFAULT '' CHECK (length(accelerator) <= 64),
    gpus_per_node integer NOT NULL CHECK (gpus_per_node BETWEEN 1 AND 1024),
    rule text NOT NULL CHECK (rule IN ('BILLING_RULE_GPU_SHARE', 'BILLING_RULE_WHOLE_NODE')),
    cores_per_gpu integer NOT NULL CHECK (cores_per_gpu BETWEEN 0 AND 100000),
    threads_per_core integer NOT NULL CHECK (threads_per_core BETWEEN 1 AND 16),
    mem_per_gpu_mb bigint NOT NULL CHECK (mem_per_gpu_mb BETWEEN 0 AND 1000000000),
    native_unit text NOT NULL CHECK (length(native_unit) BETWEEN 1 AND 32),
    native_milli_per_gpu_hour bigint NOT NULL
        CHECK (native_milli_per_gpu_hour BETWEEN 0 AND 1000000000),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site, partition),
    CHECK (rule <> 'BILLING_RULE_GPU_SHARE' OR cores_per_gpu >= 1)
);

-- Effective-dated normalization: a job is billed at the weight in force when it
-- started. A new row applies from its date on; no row is ever rewritten.
CREATE TABLE allot.resource_weights (
    resource_id bigint NOT NULL REFERENCES allot.resources,
    effective_from date NOT NULL,
    weight_per_mille integer NOT NULL CHECK (weight_per_mille BETWEEN 1 AND 100000),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resource_id, effective_from)
);

-- ---------------------------------------------------------------- allocations

-- A grant to a project on listed resources, on one site, or on all sites.
CREATE TABLE allot.allocations (
    id bigserial PRIMARY KEY,
    project_id bigint NOT NULL REFERENCES allot.projects,
    site text REFERENCES allot.sites,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    amount_units bigint NOT NULL CHECK (amount_units > 0),
    transfer_id text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);

CREATE TABLE allot.allocation_resources (
    allocation_id bigint NOT NULL REFERENCES allot.allocations,
    resource_id bigint NOT NULL REFERENCES allot.resources,
    PRIMARY KEY (allocation_id, resource_id)
);

-- ---------------------------------------------------------------- principals

CREATE TABLE allot.principals (
    subject text PRIMARY KEY CHECK (length(subject) BETWEEN 1 AND 500),
    role text NOT NULL CHECK (role IN ('admin', 'collector', 'scheduler', 'project', 'auditor')),
    scope text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((role IN ('admin', 'auditor')) = (scope IS NULL))
);

CREATE FUNCTION allot.principals_check_scope() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.role IN ('collector', 'scheduler')
       AND NOT EXISTS (SELECT 1 FROM allot.sites WHERE name = NEW.scope) THEN
        RAISE EXCEPTION 'site "%" does not exist', NEW.scope USING ERRCODE = 'P0002';
    END IF;
    IF NEW.role = 'project'
       AND NOT EXISTS (SELECT 1 FROM allot.projects WHERE name = NEW.scope) THEN
        RAISE EXCEPTION 'project "%" does not exist', NEW.scope USING ERRCODE = 'P0002';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER principals_check_scope BEFORE INSERT OR UPDATE ON allot.principals
    FOR EACH ROW EXECUTE FUNCTION allot.principals_check_scope();

-- ---------------------------------------------------------------- the ledger

-- One account per program (the source of its grants), one per allocation, and
-- 'consumed' (where charges go). Balance = credits - debits; they sum to zero.
CREATE TABLE allot.accounts (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('program', 'allocation', 'consumed')),
    program_id bigint UNIQUE REFERENCES allot.programs,
    allocation_id bigint UNIQUE REFERENCES allot.allocations,
    CHECK ((kind = 'program') = (program_id IS NOT NULL)),
    CHECK ((kind = 'allocation') = (allocation_id IS NOT NULL))
);
CREATE UNIQUE INDEX accounts_one_consumed ON allot.accounts (kind) WHERE kind = 'consumed';
INSERT INTO allot.accounts (kind) VALUES ('consumed');

-- The journal. Each row moves amount from one account to another, so debits
-- equal credits by construction. transfer_id is the caller's: the same id is
-- done once, and body_hash tells a replay from a different body.
CREATE TABLE allot.transfers (
    id bigserial PRIMARY KEY,
    transfer_id text NOT NULL UNIQUE CHECK (length(transfer_id) BETWEEN 1 AND 200),
    kind text NOT NULL
        CHECK (kind IN ('grant', 'charge', 'reserve', 'post', 'void', 'move', 'expire', 'adjust')),
    debit_account_id bigint NOT NULL REFERENCES allot.accounts,
    credit_account_id bigint NOT NULL REFERENCES allot.accounts,
    amount bigint NOT NULL CHECK (amount > 0),
    body_hash text NOT NULL,
    principal text NOT NULL,
    reason text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (debit_account_id <> credit_account_id)
);
CREATE INDEX transfers_debit ON allot.transfers (debit_account_id);
CREATE INDEX transfers_credit ON allot.transfers (credit_account_id);

CREATE FUNCTION allot.transfers_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'allot.transfers is append-only: % is refused', TG_OP
        USING ERRCODE = '42501', HINT = 'correct a transfer with a new adjusting transfer';
END $$;

CREATE TRIGGER transfers_no_update_delete BEFORE UPDATE OR DELETE ON allot.transfers
    FOR EACH ROW EXECUTE FUNCTION allot.transfers_append_only();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON allot.transfers
    FOR EACH STATEMENT EXECUTE FUNCTION allot.transfers_append_only();

CREATE VIEW allot.account_balances AS
SELECT a.id, a.kind, a.program_id, a.allocation_id,
       coalesce((SELECT sum(amount) FROM allot.transfers WHERE credit_account_id = a.id), 0)
     - coalesce((SELECT sum(amount) FROM allot.transfers WHERE debit_account_id = a.id), 0)
       AS balance
FROM allot.accounts a;

-- ---------------------------------------------------------------- usage

CREATE TABLE allot.ingest_batches (
    site text NOT NULL REFERENCES allot.sites,
    batch_id text NOT NULL CHECK (length(batch_id) BETWEEN 1 AND 200),
    body_hash text NOT NULL,
    principal text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, batch_id)
);

-- The latest cumulative record of each job and step, and what it was charged.
CREATE TABLE allot.job_usage (
    site text NOT NULL REFERENCES allot.sites,
    job_id text NOT NULL CHECK (length(job_id) BETWEEN 1 AND 128),
    step text NOT NULL CHECK (length(step) <= 64),
    project_id bigint NOT NULL REFERENCES allot.projects,
    resource_id bigint REFERENCES allot.resources,
    allocation_id bigint REFERENCES allot.allocations,
    start_time timestamptz,
    account text NOT NULL,
    user_name text NOT NULL DEFAULT '',
    partition text NOT NULL DEFAULT '',
    gpus integer NOT NULL DEFAULT 0,
    cpus integer NOT NULL DEFAULT 0,
    mem_mb bigint NOT NULL DEFAULT 0,
    nodes integer NOT NULL DEFAULT 0,
    elapsed_s bigint NOT NULL CHECK (elapsed_s >= 0),
    state text NOT NULL DEFAULT '',
    occupied_gpus bigint NOT NULL DEFAULT 0 CHECK (occupied_gpus >= 0),
    gpu_ms bigint NOT NULL DEFAULT 0 CHECK (gpu_ms >= 0),
    weight_per_mille integer,
    charged_units bigint NOT NULL DEFAULT 0 CHECK (charged_units >= 0),
    native_milli bigint NOT NULL DEFAULT 0 CHECK (native_milli >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, job_id, step),
    CHECK (step <> '' OR (resource_id IS NOT NULL AND allocation_id IS NOT NULL))
);
CREATE INDEX job_usage_allocation ON allot.job_usage (allocation_id);
