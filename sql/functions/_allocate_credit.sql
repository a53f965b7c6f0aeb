SET ROLE credit_owner;

-- The allocation rule, part two: money in favour of the retailer (a CREDIT,
-- a negative ADJUSTMENT, or a REVERSAL, which reduces its own DEBIT first:
-- first_item) settles open items oldest due date first, ties by lower entry
-- id; what is left over waits on the line as unapplied credit. Every
-- settlement is kept (credit.settlement) so that aging can be read as of any
-- past day. The caller holds the line's row lock; at and outstanding_delta
-- as in _allocate_item.
CREATE OR REPLACE FUNCTION credit._allocate_credit(
    line_id bigint, amount numeric, first_item bigint DEFAULT NULL, at timestamptz DEFAULT now(),
    outstanding_delta numeric DEFAULT 0)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_left numeric := amount;
    v_take numeric;
    o credit.open_item;
BEGIN
    FOR o IN
        SELECT * FROM credit.open_item x
         WHERE x.line_id = _allocate_credit.line_id AND x.entry_id = first_item
           AND x.due_date = (SELECT e.due_date FROM credit.ledger_entry e WHERE e.id = first_item)
        UNION ALL
        (SELECT * FROM credit.open_item x
          WHERE x.line_id = _allocate_credit.line_id AND x.entry_id IS DISTINCT FROM first_item
          ORDER BY x.due_date, x.entry_id)
    LOOP
        v_take := least(o.unpaid, v_left);
        IF v_take = o.unpaid THEN
            DELETE FROM credit.open_item x
             WHERE x.line_id = o.line_id AND x.due_date = o.due_date AND x.entry_id = o.entry_id;
        ELSE
            UPDATE credit.open_item x SET unpaid = x.unpaid - v_take
             WHERE x.line_id = o.line_id AND x.due_date = o.due_date AND x.entry_id = o.entry_id;
        END IF;
        INSERT INTO credit.settlement (line_id, item_id, amount, created_at)
        VALUES (o.line_id, o.entry_id, v_take, at);
        v_left := v_left - v_take;
        EXIT WHEN v_left = 0;
    END LOOP;
    UPDATE credit.line l
       SET unapplied = l.unapplied + v_left,
           oldest_unpaid_due = (SELECT min(x.due_date) FROM credit.open_item x
                                 WHERE x.line_id = _allocate_credit.line_id),
           outstanding = l.outstanding + outstanding_delta
     WHERE l.id = _allocate_credit.line_id;
END
$$;
REVOKE ALL ON FUNCTION credit._allocate_credit(bigint, numeric, bigint, timestamptz, numeric) FROM PUBLIC;
