-- Schema, tables, result types and roles of pgcredit v1.
--
-- Functions and views live in sql/functions and are re-applied after every
-- migrate; only what a migration itself needs (the append-only trigger
-- function) is defined here.

-- Roles are cluster-wide, so a second database in the same cluster finds them.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'credit_owner') THEN
        CREATE ROLE credit_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'credit_app') THEN
        CREATE ROLE credit_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'credit_auditor') THEN
        CREATE ROLE credit_auditor NOLOGIN;
    END IF;
END
$roles$;

-- Objects are created as credit_owner, so the migrating user must be able to
-- SET ROLE to it. A superuser can; a database owner with CREATEROLE grants
-- itself membership (on PostgreSQL 16+ it may only where it created the role).
-- Otherwise a superuser runs GRANT credit_owner TO <migrating user> once.
DO $member$
BEGIN
    BEGIN
        SET LOCAL ROLE credit_owner;
        RESET ROLE;
    EXCEPTION WHEN insufficient_privilege THEN
        BEGIN
            EXECUTE pg_catalog.format('GRANT credit_owner TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
            RAISE EXCEPTION 'pgcredit: % cannot SET ROLE credit_owner', current_user
                USING ERRCODE = '42501',
                      HINT = pg_catalog.format('As a superuser, run: GRANT credit_owner TO %I;', current_user);
        END;
    END;
END
$member$;

CREATE SCHEMA credit AUTHORIZATION credit_owner;

SET ROLE credit_owner;

REVOKE ALL ON SCHEMA credit FROM PUBLIC;
GRANT USAGE ON SCHEMA credit TO credit_app, credit_auditor;
-- Functions created later start closed: PUBLIC gets EXECUTE by default otherwise.
ALTER DEFAULT PRIVILEGES FOR ROLE credit_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

CREATE TABLE credit.currency (
    code text PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$')
);

-- ISO 4217 active codes. A DBA may add one with an INSERT as credit_owner.
INSERT INTO credit.currency (code)
SELECT unnest(string_to_array(
    'AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB '
    'BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP '
    'DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF '
    'IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK '
    'LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN '
    'NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF '
    'SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND '
    'TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF '
    'YER ZAR ZMW ZWG', ' '));

-- Single-column rules are domains rather than table CHECKs: PostgreSQL parses
-- a table's CHECK constraints again on every INSERT and UPDATE execution,
-- while domain constraints are cached per backend, and the line row is
-- updated by every call (BENCHMARKS.md). NaN sorts above every number,
-- Infinity included, so "< 'Infinity'" refuses both.
CREATE DOMAIN credit.amount_nonneg AS numeric CHECK (VALUE >= 0 AND VALUE < 'Infinity');
CREATE DOMAIN credit.amount_positive AS numeric CHECK (VALUE > 0 AND VALUE < 'Infinity');
CREATE DOMAIN credit.terms_days AS integer CHECK (VALUE BETWEEN 0 AND 365);
CREATE DOMAIN credit.line_status AS text CHECK (VALUE IN ('active', 'blocked'));
CREATE DOMAIN credit.hold_status AS text CHECK (VALUE IN ('active', 'released', 'converted', 'expired'));

-- reserved and outstanding are running totals, changed only under the row lock
-- in the same transaction as the hold or ledger row that moves them; reads are
-- then O(1) in the line's history. reconcile() proves them against the rows.
-- next_expiry is a lower bound on expires_at over the line's active holds: while
-- it lies in the future, reserved needs no correction for expired holds.
CREATE TABLE credit.line (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wholesaler_id      text NOT NULL,
    retailer_id        text NOT NULL,
    credit_limit       credit.amount_nonneg NOT NULL,
    currency           text NOT NULL REFERENCES credit.currency,
    payment_terms_days credit.terms_days NOT NULL,
    status             credit.line_status NOT NULL DEFAULT 'active',
    reserved           credit.amount_nonneg NOT NULL DEFAULT 0,
    outstanding        numeric NOT NULL DEFAULT 0,
    next_expiry        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (wholesaler_id, retailer_id)
);

-- Limit and status history.
CREATE TABLE credit.line_event (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_id      bigint NOT NULL REFERENCES credit.line,
    kind         text NOT NULL CHECK (kind IN ('opened', 'limit_changed', 'blocked', 'unblocked')),
    old_limit    numeric,
    new_limit    numeric,
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX line_event_line_idx ON credit.line_event (line_id, created_at);

-- No foreign key to credit.line: a hold is inserted before its line is locked
-- (reserve_credit's fast path), and the key check's KEY SHARE lock on a hot
-- line would turn every concurrent update of it into a MultiXact. Lines are
-- never deleted (trigger below); reconcile() checks hold_line and hold_state.
CREATE TABLE credit.reservation (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_id          bigint NOT NULL,
    order_ref        text NOT NULL,
    amount           credit.amount_positive NOT NULL,
    status           credit.hold_status NOT NULL DEFAULT 'active',
    expires_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    released_at      timestamptz,
    release_reason   text,
    converted_at     timestamptz,
    converted_amount numeric,
    released_amount  numeric,
    debit_entry_id   bigint,
    expired_at       timestamptz,
    UNIQUE (line_id, order_ref)
);
-- Active holds per line: the per-line sweep, next_expiry, and line_summary's counts.
CREATE INDEX reservation_active_idx ON credit.reservation (line_id, expires_at)
    WHERE status = 'active';
-- The global sweep and the "awaiting sweep" monitor.
CREATE INDEX reservation_due_expiry_idx ON credit.reservation (expires_at)
    WHERE status = 'active' AND expires_at IS NOT NULL;

CREATE TABLE credit.ledger_entry (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_id        bigint NOT NULL REFERENCES credit.line,
    entry_type     text NOT NULL CHECK (entry_type IN ('DEBIT', 'CREDIT', 'REVERSAL', 'ADJUSTMENT')),
    amount         numeric NOT NULL CHECK (amount > '-Infinity' AND amount < 'Infinity'
                       AND (amount > 0 OR (entry_type = 'ADJUSTMENT' AND amount <> 0))),
    ref            text NOT NULL,
    memo           text,
    due_date       date CHECK ((entry_type = 'DEBIT') = (due_date IS NOT NULL)),
    reservation_id bigint REFERENCES credit.reservation,
    debit_id       bigint REFERENCES credit.ledger_entry,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- order_ref, payment_ref, reversal_ref and adjustment_ref: one entry per key per line, for ever.
    UNIQUE (line_id, entry_type, ref),
    CHECK ((entry_type = 'REVERSAL') = (debit_id IS NOT NULL))
);
CREATE INDEX ledger_entry_debit_idx ON credit.ledger_entry (debit_id) WHERE debit_id IS NOT NULL;

ALTER TABLE credit.reservation
    ADD FOREIGN KEY (debit_entry_id) REFERENCES credit.ledger_entry;

-- Refused reservations, for monitoring. line_id is NULL for line_not_found.
CREATE TABLE credit.refusal (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    line_id       bigint,
    wholesaler_id text NOT NULL,
    retailer_id   text NOT NULL,
    order_ref     text NOT NULL,
    amount        numeric NOT NULL,
    code          text NOT NULL,
    available     numeric
);
CREATE INDEX refusal_created_idx ON credit.refusal (created_at);

-- Append-only history, and lines that are never deleted: refused for every
-- role, the owner and superusers included.
-- ENABLE ALWAYS keeps the triggers firing under session_replication_role = replica.
CREATE FUNCTION credit._refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% on credit.% is not allowed: its rows are never changed or removed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = '42501';
END
$$;
REVOKE ALL ON FUNCTION credit._refuse_change() FROM PUBLIC;

CREATE TRIGGER ledger_entry_append_only BEFORE UPDATE OR DELETE ON credit.ledger_entry
    FOR EACH ROW EXECUTE FUNCTION credit._refuse_change();
CREATE TRIGGER ledger_entry_no_truncate BEFORE TRUNCATE ON credit.ledger_entry
    FOR EACH STATEMENT EXECUTE FUNCTION credit._refuse_change();
CREATE TRIGGER line_no_delete BEFORE DELETE ON credit.line
    FOR EACH ROW EXECUTE FUNCTION credit._refuse_change();
CREATE TRIGGER line_no_truncate BEFORE TRUNCATE ON credit.line
    FOR EACH STATEMENT EXECUTE FUNCTION credit._refuse_change();
CREATE TRIGGER line_event_append_only BEFORE UPDATE OR DELETE ON credit.line_event
    FOR EACH ROW EXECUTE FUNCTION credit._refuse_change();
CREATE TRIGGER line_event_no_truncate BEFORE TRUNCATE ON credit.line_event
    FOR EACH STATEMENT EXECUTE FUNCTION credit._refuse_change();
ALTER TABLE credit.ledger_entry ENABLE ALWAYS TRIGGER ledger_entry_append_only;
ALTER TABLE credit.ledger_entry ENABLE ALWAYS TRIGGER ledger_entry_no_truncate;
ALTER TABLE credit.line_event ENABLE ALWAYS TRIGGER line_event_append_only;
ALTER TABLE credit.line ENABLE ALWAYS TRIGGER line_no_delete;
ALTER TABLE credit.line ENABLE ALWAYS TRIGGER line_no_truncate;
ALTER TABLE credit.line_event ENABLE ALWAYS TRIGGER line_event_no_truncate;

-- Result types: a function may return a column named like one of its arguments
-- (amount, credit_limit), which OUT parameters cannot.
CREATE TYPE credit.open_line_result AS (
    code text, line_id bigint, credit_limit numeric, reserved numeric, outstanding numeric,
    available numeric, status text, replayed boolean);
CREATE TYPE credit.limit_result AS (
    code text, credit_limit numeric, reserved numeric, outstanding numeric, available numeric);
CREATE TYPE credit.status_result AS (
    code text, status text);
CREATE TYPE credit.available_result AS (
    code text, credit_limit numeric, reserved numeric, outstanding numeric, available numeric,
    status text, currency text);
CREATE TYPE credit.can_reserve_result AS (
    code text, can_reserve boolean, available numeric, shortfall numeric);
CREATE TYPE credit.reserve_result AS (
    code text, reservation_id bigint, status text, amount numeric, available numeric,
    shortfall numeric, replayed boolean);
CREATE TYPE credit.release_result AS (
    code text, reservation_id bigint, status text, released_amount numeric, available numeric,
    replayed boolean);
CREATE TYPE credit.convert_result AS (
    code text, reservation_id bigint, status text, ledger_entry_id bigint, debited_amount numeric,
    released_amount numeric, due_date date, available numeric, replayed boolean);
CREATE TYPE credit.entry_result AS (
    code text, ledger_entry_id bigint, outstanding numeric, available numeric, replayed boolean);

RESET ROLE;
