SET ROLE credit_owner;

-- The allocation rule, part two: money in favour of the retailer (a CREDIT,
-- a negative ADJUSTMENT, or a REVERSAL) settles open items oldest due date
-- first, ties by lower entry id; what is left over waits on the line as
-- unapplied credit. first_items are settled before that, each up to its
-- unpaid amount, in the order given: a reversal's own DEBIT, or the invoices
-- a remittance names (record_payment's applies_to); those already paid are
-- skipped. Every settlement is kept (credit.settlement) so that aging can be
-- read as of any past day. The caller holds the line's row lock; at and
-- outstanding_delta as in _allocate_item.
-- v1.2 added first_items, a list; first_item (one item) is what the release
-- before passes. An argument is only ever added at the end, with a default,
-- internal functions' too: a call of the release before that is running when
-- the function files commit plans its next statements anew, against these
-- functions, and must still find one that takes its arguments.
DROP FUNCTION IF EXISTS credit._allocate_credit(bigint, numeric, bigint, timestamptz, numeric);
CREATE OR REPLACE FUNCTION credit._allocate_credit(
    line_id bigint, amount numeric, first_item bigint DEFAULT NULL, at timestamptz DEFAULT now(),
    outstanding_delta numeric DEFAULT 0, first_items bigint[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_left numeric := amount;
    v_take numeric;
    o credit.open_item;
BEGIN
    IF first_item IS NOT NULL THEN
        first_items := ARRAY[first_item] || first_items;
    END IF;
    FOR o IN
        (SELECT x.* FROM unnest(first_items) WITH ORDINALITY AS f(id, i)
           JOIN credit.ledger_entry e ON e.id = f.id
           JOIN credit.open_item x
             ON x.line_id = _allocate_credit.line_id AND x.due_date = e.due_date AND x.entry_id = f.id
          ORDER BY f.i)
        UNION ALL
        (SELECT * FROM credit.open_item x
          WHERE x.line_id = _allocate_credit.line_id AND x.entry_id <> ALL (coalesce(first_items, '{}'))
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
REVOKE ALL ON FUNCTION credit._allocate_credit(bigint, numeric, bigint, timestamptz, numeric, bigint[]) FROM PUBLIC;
