SET ROLE credit_owner;

-- The allocation rule, part one (SPEC "Receivables"): a DEBIT or positive
-- ADJUSTMENT becomes an open item due on due_date. Unapplied credit waiting on
-- the line settles it first; what remains unpaid joins credit.open_item. The
-- caller holds the line's row lock. at is when the settlement happened: now(),
-- except when _build_open_items replays a v1 ledger. outstanding_delta and
-- reserved_delta are posting's (credit._post_entries): the line's totals move
-- in this same UPDATE, so that posting an entry updates its line once (a
-- second UPDATE of a row in one transaction runs its foreign-key check again).
CREATE OR REPLACE FUNCTION credit._allocate_item(
    line_id bigint, entry_id bigint, due_date date, amount numeric, at timestamptz DEFAULT now(),
    outstanding_delta numeric DEFAULT 0, reserved_delta numeric DEFAULT 0)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_used numeric;
BEGIN
    SELECT least(l.unapplied, amount) INTO v_used FROM credit.line l WHERE l.id = _allocate_item.line_id;
    IF v_used > 0 THEN
        INSERT INTO credit.settlement (line_id, item_id, amount, created_at)
        VALUES (line_id, entry_id, v_used, at);
    END IF;
    IF v_used < amount THEN
        INSERT INTO credit.open_item (line_id, due_date, entry_id, unpaid)
        VALUES (line_id, due_date, entry_id, amount - v_used);
        -- An unpaid item may bring the line's overdue policy closer: see _arrears_from.
        UPDATE credit.line l
           SET unapplied = l.unapplied - v_used,
               oldest_unpaid_due = least(l.oldest_unpaid_due, _allocate_item.due_date),
               next_expiry = least(l.next_expiry, credit._arrears_from(_allocate_item.due_date, l.overdue_grace_days)),
               outstanding = l.outstanding + outstanding_delta, reserved = l.reserved + reserved_delta
         WHERE l.id = _allocate_item.line_id;
    ELSE
        UPDATE credit.line l
           SET unapplied = l.unapplied - v_used,
               outstanding = l.outstanding + outstanding_delta, reserved = l.reserved + reserved_delta
         WHERE l.id = _allocate_item.line_id;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._allocate_item(bigint, bigint, date, numeric, timestamptz, numeric, numeric) FROM PUBLIC;
