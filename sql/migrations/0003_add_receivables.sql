-- Receivables (SPEC v1.1): open items and their settlements, overdue policy,
-- temporary limits, reads by status, and money that reads with scale 2.
--
-- The allocation rule is applied when money moves, under the line's lock
-- (_allocate_item, _allocate_credit): a DEBIT or positive ADJUSTMENT becomes an
-- open item; a payment, negative adjustment or reversal settles open items
-- oldest due date first, and what is left over waits on the line as unapplied
-- credit. Settled items leave credit.open_item, so what the reserve path and
-- the reads look at stays small however long the history; every settlement is
-- kept in credit.settlement, so aging as of any past day reads what was
-- settled by then instead of replaying the rule a second way.

SET ROLE credit_owner;

-- The views read the line's columns; the function files recreate them.
DROP VIEW IF EXISTS credit.line_summary, credit.monitor_totals;

-- unapplied and oldest_unpaid_due start NULL on a v1 line: the function files
-- build its open items from its ledger (_build_open_items.sql) and set them.
--
-- next_expiry widens its meaning: a lower bound on the next moment the line
-- changes by time alone, which is now also the end of a temporary limit and
-- the day an unpaid item may turn overdue under the line's policy
-- (_arrears_from). reserve_credit's fast path runs only before that moment,
-- so it needs no clock or calendar test of its own; the first locked call
-- after it sweeps the line (_sweep_line) and computes the next one.
ALTER TABLE credit.line
    ADD COLUMN temp_limit          numeric,
    ADD COLUMN limit_valid_until   timestamptz,
    ADD COLUMN overdue_grace_days  integer,
    ADD COLUMN max_overdue_amount  numeric,
    ADD COLUMN unapplied           numeric,
    ADD COLUMN oldest_unpaid_due   date,
    ALTER COLUMN reserved SET DEFAULT 0.00,
    ALTER COLUMN outstanding SET DEFAULT 0.00,
    ALTER COLUMN unapplied SET DEFAULT 0.00;
-- Totals that were never moved still hold the scale-0 default.
UPDATE credit.line SET reserved = round(reserved, 2), outstanding = round(outstanding, 2)
 WHERE scale(reserved) < 2 OR scale(outstanding) < 2;

ALTER TABLE credit.line_event
    ADD COLUMN valid_until        timestamptz,
    ADD COLUMN grace_days         integer,
    ADD COLUMN max_overdue_amount numeric,
    DROP CONSTRAINT line_event_kind_check,
    ADD CONSTRAINT line_event_kind_check
        CHECK (kind IN ('opened', 'limit_changed', 'blocked', 'unblocked', 'overdue_policy'));

-- A positive ADJUSTMENT is due on the day it is made, and now says so in its
-- own row (v1 rows do not: their due date is the day of created_at).
ALTER TABLE credit.ledger_entry
    DROP CONSTRAINT ledger_entry_check1,
    ADD CONSTRAINT ledger_entry_due_date_check CHECK (CASE
        WHEN entry_type = 'DEBIT' THEN due_date IS NOT NULL
        WHEN entry_type = 'ADJUSTMENT' AND amount > 0 THEN true
        ELSE due_date IS NULL END);

-- Unpaid items only. The key orders them as the rule settles them.
CREATE TABLE credit.open_item (
    line_id  bigint NOT NULL,
    due_date date NOT NULL,
    entry_id bigint NOT NULL,
    unpaid   numeric NOT NULL,
    PRIMARY KEY (line_id, due_date, entry_id)
);

-- Append-only: which item was settled by how much, and when.
CREATE TABLE credit.settlement (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_id    bigint NOT NULL,
    item_id    bigint NOT NULL REFERENCES credit.ledger_entry,
    amount     numeric NOT NULL CHECK (amount > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX settlement_line_idx ON credit.settlement (line_id, item_id);
CREATE TRIGGER settlement_append_only BEFORE UPDATE OR DELETE ON credit.settlement
    FOR EACH ROW EXECUTE FUNCTION credit._refuse_change();
CREATE TRIGGER settlement_no_truncate BEFORE TRUNCATE ON credit.settlement
    FOR EACH STATEMENT EXECUTE FUNCTION credit._refuse_change();
ALTER TABLE credit.settlement ENABLE ALWAYS TRIGGER settlement_append_only;
ALTER TABLE credit.settlement ENABLE ALWAYS TRIGGER settlement_no_truncate;

-- list_reservations pages through one status of one line by reservation_id:
-- its cost follows the rows it returns, not the line's ended holds.
CREATE INDEX reservation_list_idx ON credit.reservation (line_id, status, id);

-- set_credit_limit gains valid_until (temporary limits); callers passing four
-- arguments reach the new function through its default.
DROP FUNCTION IF EXISTS credit.set_credit_limit(text, text, numeric, text);

-- Results: money with scale 2 whatever the arithmetic gave (0.00, never 0),
-- so a caller in any language prints what it reads.
ALTER TYPE credit.open_line_result
    ALTER ATTRIBUTE credit_limit TYPE numeric(1000, 2), ALTER ATTRIBUTE reserved TYPE numeric(1000, 2),
    ALTER ATTRIBUTE outstanding TYPE numeric(1000, 2), ALTER ATTRIBUTE available TYPE numeric(1000, 2);
ALTER TYPE credit.limit_result
    ALTER ATTRIBUTE credit_limit TYPE numeric(1000, 2), ALTER ATTRIBUTE reserved TYPE numeric(1000, 2),
    ALTER ATTRIBUTE outstanding TYPE numeric(1000, 2), ALTER ATTRIBUTE available TYPE numeric(1000, 2);
ALTER TYPE credit.available_result
    ALTER ATTRIBUTE credit_limit TYPE numeric(1000, 2), ALTER ATTRIBUTE reserved TYPE numeric(1000, 2),
    ALTER ATTRIBUTE outstanding TYPE numeric(1000, 2), ALTER ATTRIBUTE available TYPE numeric(1000, 2),
    ADD ATTRIBUTE past_due numeric(1000, 2), ADD ATTRIBUTE oldest_unpaid_due_date date,
    ADD ATTRIBUTE limit_valid_until timestamptz;
ALTER TYPE credit.can_reserve_result
    ALTER ATTRIBUTE available TYPE numeric(1000, 2), ALTER ATTRIBUTE shortfall TYPE numeric(1000, 2);
ALTER TYPE credit.reserve_result
    ALTER ATTRIBUTE amount TYPE numeric(1000, 2), ALTER ATTRIBUTE available TYPE numeric(1000, 2),
    ALTER ATTRIBUTE shortfall TYPE numeric(1000, 2);
ALTER TYPE credit.release_result
    ALTER ATTRIBUTE released_amount TYPE numeric(1000, 2), ALTER ATTRIBUTE available TYPE numeric(1000, 2);
ALTER TYPE credit.convert_result
    ALTER ATTRIBUTE debited_amount TYPE numeric(1000, 2), ALTER ATTRIBUTE released_amount TYPE numeric(1000, 2),
    ALTER ATTRIBUTE available TYPE numeric(1000, 2);
ALTER TYPE credit.entry_result
    ALTER ATTRIBUTE outstanding TYPE numeric(1000, 2), ALTER ATTRIBUTE available TYPE numeric(1000, 2);

CREATE TYPE credit.reservation_result AS (
    code text, reservation_id bigint, status text, amount numeric(1000, 2), expires_at timestamptz,
    created_at timestamptz, released_at timestamptz, release_reason text, converted_at timestamptz,
    converted_amount numeric(1000, 2), released_amount numeric(1000, 2), ledger_entry_id bigint,
    due_date date);
-- Rows of list_reservations and aging, whose arguments share names with
-- their result columns (status; wholesaler_id, retailer_id).
CREATE TYPE credit.reservation_row AS (
    reservation_id bigint, order_ref text, status text, amount numeric(1000, 2), expires_at timestamptz,
    created_at timestamptz);
CREATE TYPE credit.aging_row AS (
    wholesaler_id text, retailer_id text, currency text, not_due numeric(1000, 2), days_1_30 numeric(1000, 2),
    days_31_60 numeric(1000, 2), days_61_90 numeric(1000, 2), days_over_90 numeric(1000, 2),
    unapplied_credit numeric(1000, 2), outstanding numeric(1000, 2), oldest_unpaid_due_date date);
CREATE TYPE credit.overdue_policy_result AS (
    code text, grace_days integer, max_overdue_amount numeric(1000, 2));

RESET ROLE;
