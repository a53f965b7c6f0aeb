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

-- Results gain trailing columns (v1 and v1.1 callers read the ones they know).
ALTER TYPE credit.convert_result ADD ATTRIBUTE remaining_amount numeric(1000, 2);
ALTER TYPE credit.reservation_result ADD ATTRIBUTE remaining_amount numeric(1000, 2);
ALTER TYPE credit.reservation_row ADD ATTRIBUTE remaining_amount numeric(1000, 2);
CREATE TYPE credit.amend_result AS (
    code text, reservation_id bigint, status text, amount numeric(1000, 2), previous_amount numeric(1000, 2),
    remaining_amount numeric(1000, 2), available numeric(1000, 2), shortfall numeric(1000, 2), replayed boolean);

-- Functions that gain an argument: the function files create them anew, and
-- a call with the old arguments reaches the new function through its default.
DROP FUNCTION IF EXISTS credit.convert_to_debit(text, text, text, numeric, date);
DROP FUNCTION IF EXISTS credit.convert_to_debit_batch(text[], text[], text[], numeric[]);
DROP FUNCTION IF EXISTS credit._convert_to_debit_batch_check(text[], text[], text[], numeric[]);
DROP FUNCTION IF EXISTS credit.record_payment(text, text, text, numeric);
-- The allocation rule's "settle these items first" becomes a list (a
-- reversal's own DEBIT, or a remittance's invoices).
DROP FUNCTION IF EXISTS credit._allocate_credit(bigint, numeric, bigint, timestamptz);
DROP FUNCTION IF EXISTS credit._post_entry(credit.line, text, text, numeric, text, bigint);
-- An item's allocation takes the caller's changes to the line's totals, so
-- that a conversion updates the line row once.
DROP FUNCTION IF EXISTS credit._allocate_item(bigint, bigint, date, numeric, timestamptz);

RESET ROLE;
