SET ROLE credit_owner;

-- The allocation rule, part one (SPEC "Receivables"): a DEBIT or positive
-- ADJUSTMENT becomes an open item due on due_date. Unapplied credit waiting on
-- the line settles it first; what remains unpaid joins credit.open_item. The
-- caller holds the line's row lock. at is when the settlement happened: now(),
-- except when _build_open_items replays a v1 ledger.
--
-- The line row is updated once here, with the caller's own changes to its
-- totals (reserved_change, outstanding_change) folded in: a second UPDATE of
-- the row in one transaction costs a new row version and the foreign-key
-- check on currency again (BENCHMARKS.md). unapplied: the line's, when the
-- caller has just read it under the lock (NULL: read it here).
-- v1.2 added the caller's changes to the line (migration 0006).
DROP FUNCTION IF EXISTS credit._allocate_item(bigint, bigint, date, numeric, timestamptz);
CREATE OR REPLACE FUNCTION credit._allocate_item(
    line_id bigint, entry_id bigint, due_date date, amount numeric, at timestamptz DEFAULT now(),
    unapplied numeric DEFAULT NULL, reserved_change numeric DEFAULT 0, outstanding_change numeric DEFAULT 0)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_used numeric := least(unapplied, amount);
BEGIN
    IF unapplied IS NULL THEN
        SELECT least(l.unapplied, amount) INTO v_used FROM credit.line l WHERE l.id = _allocate_item.line_id;
    END IF;
    IF v_used > 0 THEN
        INSERT INTO credit.settlement (line_id, item_id, amount, created_at)
        VALUES (line_id, entry_id, v_used, at);
    END IF;
    IF v_used < amount THEN
        INSERT INTO credit.open_item (line_id, due_date, entry_id, unpaid)
        VALUES (line_id, due_date, entry_id, amount - v_used);
        -- An unpaid item may bring the line's overdue policy closer: see _arrears_from.
        UPDATE credit.line l
           SET reserved = l.reserved + reserved_change, outstanding = l.outstanding + outstanding_change,
               unapplied = l.unapplied - v_used,
               oldest_unpaid_due = least(l.oldest_unpaid_due, _allocate_item.due_date),
               next_expiry = least(l.next_expiry, credit._arrears_from(_allocate_item.due_date, l.overdue_grace_days))
         WHERE l.id = _allocate_item.line_id;
    ELSE
        UPDATE credit.line l
           SET reserved = l.reserved + reserved_change, outstanding = l.outstanding + outstanding_change,
               unapplied = l.unapplied - v_used
         WHERE l.id = _allocate_item.line_id;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._allocate_item(bigint, bigint, date, numeric, timestamptz, numeric, numeric, numeric)
    FROM PUBLIC;
