SET ROLE credit_owner;

-- The allocation rule, part two: money in favour of the retailer (a CREDIT,
-- a negative ADJUSTMENT, or a REVERSAL) settles open items oldest due date
-- first, ties by lower entry id; what is left over waits on the line as
-- unapplied credit. first_items are settled before that, each up to its
-- unpaid amount, in the order given: a reversal's own DEBIT, or the invoices
-- a remittance names (record_payment's applies_to); those already paid are
-- skipped. Every settlement is kept (credit.settlement) so that aging can be
-- read as of any past day. Payments are settled by credit._post_entries,
-- set-wise, by the same rule; this is for reversals, negative adjustments
-- and a bulk call's payments on lines with an overdue policy. The caller
-- holds the line's row lock; at and outstanding_delta as in _allocate_item.
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
-- Generic plans, always: the open items are skewed across lines (a few lines
-- carry most of them), so a plan made for one line's estimate looked cheaper
-- than the cached generic one on nearly every call, and PostgreSQL planned the
-- loops' queries anew each time (benchmarks/instructions.py measured more
-- planning than settling). The generic plans probe the line's keys either way.
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_left numeric := amount;
    v_take numeric;
    v_paid bigint[];   -- items settled in full, in settling order
    v_dues date[];     -- and their due dates
    v_items bigint[];  -- every item settled, in settling order, and by how much
    v_takes numeric[];
    v_part credit.open_item;  -- the item settled in part (the last one), if any
    o credit.open_item;
BEGIN
    IF first_item IS NOT NULL THEN
        first_items := ARRAY[first_item] || first_items;
    END IF;
    -- The items settled and by how much are found first, then written with
    -- one statement each (delete, settlement rows, a partly settled item):
    -- a statement per item cost more than the settling itself.
    -- Two loops, one after the other, rather than one over a UNION ALL of
    -- both queries: PostgreSQL planned that anew on every call (with no
    -- first_items its first branch folds away, so a plan for the call always
    -- looked cheaper than a cached one), and planning cost more than all the
    -- rest. Their bodies are the same.
    IF first_items IS NOT NULL THEN
        FOR o IN
            SELECT x.* FROM unnest(first_items) WITH ORDINALITY AS f(id, i)
              JOIN credit.ledger_entry e ON e.id = f.id
              JOIN credit.open_item x
                ON x.line_id = _allocate_credit.line_id AND x.due_date = e.due_date AND x.entry_id = f.id
             ORDER BY f.i
        LOOP
            v_take := least(o.unpaid, v_left);
            IF v_take = o.unpaid THEN
                v_paid := v_paid || o.entry_id;
                v_dues := v_dues || o.due_date;
            ELSE
                v_part := o;
            END IF;
            v_items := v_items || o.entry_id;
            v_takes := v_takes || v_take;
            v_left := v_left - v_take;
            EXIT WHEN v_left = 0;
        END LOOP;
    END IF;
    IF v_left > 0 THEN
        FOR o IN
            SELECT * FROM credit.open_item x
             WHERE x.line_id = _allocate_credit.line_id AND x.entry_id <> ALL (coalesce(first_items, '{}'))
             ORDER BY x.due_date, x.entry_id
        LOOP
            v_take := least(o.unpaid, v_left);
            IF v_take = o.unpaid THEN
                v_paid := v_paid || o.entry_id;
                v_dues := v_dues || o.due_date;
            ELSE
                v_part := o;
            END IF;
            v_items := v_items || o.entry_id;
            v_takes := v_takes || v_take;
            v_left := v_left - v_take;
            EXIT WHEN v_left = 0;
        END LOOP;
    END IF;
    IF v_items IS NOT NULL THEN
        IF v_paid IS NOT NULL THEN
            DELETE FROM credit.open_item x
             USING unnest(v_dues, v_paid) AS p(due_date, entry_id)
             WHERE x.line_id = _allocate_credit.line_id AND x.due_date = p.due_date AND x.entry_id = p.entry_id;
        END IF;
        IF v_part.entry_id IS NOT NULL THEN
            UPDATE credit.open_item x SET unpaid = x.unpaid - v_takes[cardinality(v_takes)]
             WHERE x.line_id = v_part.line_id AND x.due_date = v_part.due_date AND x.entry_id = v_part.entry_id;
        END IF;
        INSERT INTO credit.settlement (line_id, item_id, amount, created_at)
        SELECT _allocate_credit.line_id, t.item, t.take, at
          FROM unnest(v_items, v_takes) WITH ORDINALITY AS t(item, take, i)
         ORDER BY t.i;
    END IF;
    UPDATE credit.line l
       SET unapplied = l.unapplied + v_left,
           oldest_unpaid_due = (SELECT min(x.due_date) FROM credit.open_item x
                                 WHERE x.line_id = _allocate_credit.line_id),
           outstanding = l.outstanding + outstanding_delta
     WHERE l.id = _allocate_credit.line_id;
END
$$;
REVOKE ALL ON FUNCTION credit._allocate_credit(bigint, numeric, bigint, timestamptz, numeric, bigint[]) FROM PUBLIC;
