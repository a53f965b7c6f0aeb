-- Orders as they happen (SPEC v1.2): amendments, shipments in parts,
-- payments that name the invoices they pay.
--
-- A hold keeps three figures: amount (the order's total after amendments),
-- converted_amount (debited so far; NULL while nothing is, as before) and
-- released_amount (what was released when it ended). While active it counts
-- amount - converted_amount toward the line's reserved total; an ended hold
-- has converted + released = amount; its DEBITs (one per shipment, and the
-- final conversion's) sum to converted_amount, and debit_entry_id points to
-- the latest of them. reconcile() proves all three.
--
-- What a v1.1 book keeps: every active hold has nothing converted, so its
-- remaining amount is its amount and line.reserved is unchanged; a v1
-- conversion (whole or partial) is a final conversion whose DEBIT carries
-- the order_ref, with converted + released = amount already. Only expired
-- holds change: v1 left their released_amount NULL, and an expired hold now
-- says what its expiry released (all of it, nothing having been converted).

SET ROLE credit_owner;

-- The amount a hold was reserved with, kept when it is first amended, so that
-- a retry of the original reserve_credit still replays (it is NULL on every
-- hold never amended: reserve_credit does not write it).
ALTER TABLE credit.reservation ADD COLUMN original_amount numeric;

UPDATE credit.reservation SET released_amount = amount - coalesce(converted_amount, 0)
 WHERE status = 'expired' AND released_amount IS NULL;

-- Each amendment of a hold: amend_ref is an idempotency key of its own,
-- unique per line for ever. Append-only, like the ledger.
CREATE TABLE credit.amendment (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    line_id         bigint NOT NULL,
    amend_ref       text NOT NULL,
    order_ref       text NOT NULL,
    previous_amount numeric NOT NULL,
    new_amount      numeric NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (line_id, amend_ref)
);
CREATE TRIGGER amendment_append_only BEFORE UPDATE OR DELETE ON credit.amendment
    FOR EACH ROW EXECUTE FUNCTION credit._refuse_change();
CREATE TRIGGER amendment_no_truncate BEFORE TRUNCATE ON credit.amendment
    FOR EACH STATEMENT EXECUTE FUNCTION credit._refuse_change();
ALTER TABLE credit.amendment ENABLE ALWAYS TRIGGER amendment_append_only;
ALTER TABLE credit.amendment ENABLE ALWAYS TRIGGER amendment_no_truncate;

-- A payment's applies_to, as it was asked: a replay compares it.
ALTER TABLE credit.ledger_entry ADD COLUMN applies_to text[];

-- Results gain a trailing remaining_amount (v1 and v1.1 callers read the
-- columns they know). They are new types: the functions of the release before
-- keep returning the old ones until the function files load, in one
-- transaction, the new functions and drop the old ones, so that a caller
-- finds one or the other at every moment of the upgrade. The
-- same goes for the functions that gain an argument: no migration drops a
-- function that callers may be calling.
CREATE TYPE credit.conversion_result AS (
    code text, reservation_id bigint, status text, ledger_entry_id bigint, debited_amount numeric(1000, 2),
    released_amount numeric(1000, 2), due_date date, available numeric(1000, 2), replayed boolean,
    remaining_amount numeric(1000, 2));
CREATE TYPE credit.reservation_info AS (
    code text, reservation_id bigint, status text, amount numeric(1000, 2), expires_at timestamptz,
    created_at timestamptz, released_at timestamptz, release_reason text, converted_at timestamptz,
    converted_amount numeric(1000, 2), released_amount numeric(1000, 2), ledger_entry_id bigint,
    due_date date, remaining_amount numeric(1000, 2));
CREATE TYPE credit.reservation_listing AS (
    reservation_id bigint, order_ref text, status text, amount numeric(1000, 2), expires_at timestamptz,
    created_at timestamptz, remaining_amount numeric(1000, 2));
CREATE TYPE credit.amend_result AS (
    code text, reservation_id bigint, status text, amount numeric(1000, 2), previous_amount numeric(1000, 2),
    remaining_amount numeric(1000, 2), available numeric(1000, 2), shortfall numeric(1000, 2), replayed boolean);

-- The old result types stay until a later release: a call still running a
-- function of the release before when the function files commit returns one,
-- and fails if it is gone. No function returns them after that; they lose the
-- comments the old function files gave them (the reference documents what
-- functions return), so that an upgraded database and a fresh one are alike.
DO $$
DECLARE
    a record;
BEGIN
    FOR a IN SELECT at.attrelid::regclass AS type, at.attname
               FROM pg_attribute at
              WHERE at.attrelid IN ('credit.convert_result'::regclass, 'credit.reservation_result'::regclass,
                                    'credit.reservation_row'::regclass)
                AND at.attnum > 0 AND NOT at.attisdropped LOOP
        EXECUTE format('COMMENT ON COLUMN %s.%I IS NULL', a.type, a.attname);
    END LOOP;
END
$$;
COMMENT ON TYPE credit.convert_result IS 'Retired in v1.2 (convert_to_debit returns credit.conversion_result).';
COMMENT ON TYPE credit.reservation_result IS 'Retired in v1.2 (get_reservation returns credit.reservation_info).';
COMMENT ON TYPE credit.reservation_row IS 'Retired in v1.2 (list_reservations returns credit.reservation_listing).';

RESET ROLE;
