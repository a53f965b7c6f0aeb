SET ROLE credit_owner;

-- The allocation rule, part two (SPEC "Receivables"), the one place it is
-- written: money in favour of the retailer (a CREDIT, a REVERSAL, a negative
-- ADJUSTMENT) settles open items, oldest due date first, ties by the older
-- entry; what is left over waits on the line as unapplied credit (the caller
-- adds it: lefts). first_items are settled before that, in the order given,
-- each up to its unpaid amount while the money lasts: a reversal's own DEBIT,
-- or the invoices a remittance names (record_payment's applies_to); those
-- already paid are skipped.
--
-- Several credits at once (record_payment_batch): each line's credits settle
-- in item order, as one after the other would, by a merge of the line's open
-- items (read only as far as its money goes) with its credits. lines are the
-- lines to look at, ascending and distinct (a caller that knows which lines
-- have no open items leaves them out); NULL: a call of one credit, the only
-- kind that passes first_items.
--
-- It writes what it settled, one statement each: the items paid in full
-- leave credit.open_item, the one paid in part owes less, and every
-- settlement is kept (credit.settlement, dated at) so that aging can be read
-- as of any past day. The caller holds the lines' row locks and updates the
-- lines: unapplied by lefts, oldest_unpaid_due when paid_in_full (an item
-- left). The settlements are returned in settling order, for the events:
-- items (the credit's position in line_ids), entries (the open item's
-- entry), takes (the amount).
CREATE OR REPLACE FUNCTION credit._allocate_credits(
    line_ids bigint[], amounts numeric[], first_items bigint[] DEFAULT NULL, at timestamptz DEFAULT now(),
    lines bigint[] DEFAULT NULL,
    OUT lefts numeric[], OUT items integer[], OUT entries bigint[], OUT takes numeric[], OUT paid_in_full boolean)
-- Its callers run it under generic plans (plan_cache_mode is theirs, and a
-- SET clause here would cost every payment a configuration change): a call
-- of one credit passes arrays of one, for which a plan of its own always
-- looks cheaper than the cached one, and the open items are skewed across
-- lines (a few carry most of them), so PostgreSQL planned these queries anew
-- on nearly every call (benchmarks/instructions.py measured more planning
-- than settling). The generic plans probe the line's keys either way.
LANGUAGE plpgsql AS $$
DECLARE
    v_order integer[];    -- the credits on the lines looked at, by line, then item
    v_k integer := 1;     -- the credit settling now: v_order[v_k]
    v_i integer;
    v_line bigint;
    v_unpaid numeric;
    v_take numeric;
    v_paid_lines bigint[];  -- the open items settled in full
    v_paid_dues date[];
    v_paid_entries bigint[];
    v_part_lines bigint[];  -- the open items settled in part, and what they still owe
    v_part_dues date[];
    v_part_entries bigint[];
    v_part_unpaid numeric[];
    c refcursor;
    o credit.open_item;
BEGIN
    lefts := amounts;
    IF lines IS NULL THEN
        v_order := '{1}';
    ELSE
        SELECT array_agg(t.i::integer ORDER BY t.line_id, t.i) INTO v_order
          FROM unnest(line_ids) WITH ORDINALITY AS t(line_id, i) WHERE t.line_id = ANY (lines);
    END IF;

    FOREACH v_line IN ARRAY coalesce(lines, line_ids) LOOP
        -- Two passes of one loop: the items named first, then the rule's order.
        FOR v_pass IN CASE WHEN first_items IS NULL THEN 2 ELSE 1 END .. 2 LOOP
            EXIT WHEN v_k > cardinality(v_order) OR line_ids[v_order[v_k]] <> v_line;
            IF v_pass = 1 THEN
                OPEN c FOR
                    SELECT x.* FROM unnest(first_items) WITH ORDINALITY AS f(id, i)
                     CROSS JOIN LATERAL (SELECT y.* FROM credit.ledger_entry e
                                           JOIN credit.open_item y
                                             ON y.line_id = v_line AND y.due_date = e.due_date AND y.entry_id = e.id
                                          WHERE e.id = f.id OFFSET 0) x
                     ORDER BY f.i;
            ELSE
                OPEN c FOR
                    SELECT * FROM credit.open_item x
                     WHERE x.line_id = v_line AND x.entry_id <> ALL (coalesce(first_items, '{}'))
                     ORDER BY x.due_date, x.entry_id;
            END IF;
            LOOP
                FETCH c INTO o;
                EXIT WHEN NOT FOUND;
                v_unpaid := o.unpaid;
                WHILE v_unpaid > 0 AND v_k <= cardinality(v_order) AND line_ids[v_order[v_k]] = v_line LOOP
                    v_i := v_order[v_k];
                    v_take := least(v_unpaid, lefts[v_i]);
                    items := items || v_i;
                    entries := entries || o.entry_id;
                    takes := takes || v_take;
                    lefts[v_i] := lefts[v_i] - v_take;
                    v_unpaid := v_unpaid - v_take;
                    IF lefts[v_i] = 0 THEN
                        v_k := v_k + 1;
                    END IF;
                END LOOP;
                IF v_unpaid = 0 THEN
                    v_paid_lines := v_paid_lines || o.line_id;
                    v_paid_dues := v_paid_dues || o.due_date;
                    v_paid_entries := v_paid_entries || o.entry_id;
                ELSIF v_unpaid < o.unpaid THEN
                    v_part_lines := v_part_lines || o.line_id;
                    v_part_dues := v_part_dues || o.due_date;
                    v_part_entries := v_part_entries || o.entry_id;
                    v_part_unpaid := v_part_unpaid || v_unpaid;
                END IF;
                EXIT WHEN v_k > cardinality(v_order) OR line_ids[v_order[v_k]] <> v_line;
            END LOOP;
            CLOSE c;
        END LOOP;
        -- What this line's credits did not spend waits as unapplied credit.
        WHILE v_k <= cardinality(v_order) AND line_ids[v_order[v_k]] = v_line LOOP
            v_k := v_k + 1;
        END LOOP;
    END LOOP;

    -- x.line_id = ANY: the paying lines' items, by the key's first column,
    -- rather than a join the planner may make by reading every open item.
    paid_in_full := v_paid_entries IS NOT NULL;
    IF paid_in_full THEN
        DELETE FROM credit.open_item x
         USING unnest(v_paid_lines, v_paid_dues, v_paid_entries) AS p(line_id, due_date, entry_id)
         WHERE x.line_id = ANY (v_paid_lines)
           AND x.line_id = p.line_id AND x.due_date = p.due_date AND x.entry_id = p.entry_id;
    END IF;
    IF v_part_entries IS NOT NULL THEN
        UPDATE credit.open_item x SET unpaid = p.unpaid
          FROM unnest(v_part_lines, v_part_dues, v_part_entries, v_part_unpaid)
               AS p(line_id, due_date, entry_id, unpaid)
         WHERE x.line_id = ANY (v_part_lines)
           AND x.line_id = p.line_id AND x.due_date = p.due_date AND x.entry_id = p.entry_id;
    END IF;
    IF items IS NOT NULL THEN
        -- In item order, as credits posted one after the other would number them.
        INSERT INTO credit.settlement (line_id, item_id, amount, created_at)
        SELECT line_ids[s.i], s.entry, s.take, at
          FROM unnest(items, entries, takes) WITH ORDINALITY AS s(i, entry, take, k)
         ORDER BY s.i, s.k;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._allocate_credits(bigint[], numeric[], bigint[], timestamptz, bigint[]) FROM PUBLIC;
