SET ROLE credit_owner;

-- Many payments in one call and one commit (SPEC "Bulk calls"): a bank
-- statement. Item i gets exactly what record_payment would give it after
-- items 1..i-1.
--
-- Every item is checked before anything is written, and every line is locked
-- once in ascending id order and swept as record_payment's lock would sweep
-- it. Then the batch does what record_payment does, set-wise where the order
-- of items cannot matter and item by item where it can: the new CREDIT
-- entries go in with one INSERT (in item order, so their ids follow it) and
-- each line's outstanding moves by one UPDATE; the allocation rule runs
-- through credit._allocate_credit for each payment in item order, as each
-- single call runs it. A key seen earlier, in the ledger or in this batch,
-- replays (or conflicts) exactly as _replay_entry would answer; outstanding
-- and available are each line's running figures after the items before, in
-- the results and in the payment_recorded events (written in item order,
-- each with the settlements its allocation made); then each line whose
-- overdue refusals the payments ended gets overdue_ended.
CREATE OR REPLACE FUNCTION credit.record_payment_batch(
    wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[])
RETURNS TABLE (item integer, code text, ledger_entry_id bigint, outstanding numeric, available numeric,
               replayed boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_lines bigint[];     -- per item: its line, NULL when there is none
    v_amounts numeric[];  -- per item: the amount with scale 2
    v_first integer[];    -- per item: the first item of the batch with its (line, payment_ref)
    v_earlier bigint[];   -- per item: the id of an entry the ledger held before the call
    v_earlier_amounts numeric[];  -- and its amount
    v_ids bigint[];       -- per item: the entry the item is about, once written
    v_line bigint;
    v_amount numeric;
    v_i integer;
    v_ref text;
    v_later numeric;
    v_mark bigint;
    v_line_row credit.line;
BEGIN
    IF current_setting('credit.lock_timeout', true) <> '' THEN
        PERFORM credit._apply_lock_timeout();
    END IF;
    PERFORM credit._record_payment_batch_check(wholesaler_ids, retailer_ids, payment_refs, amounts);
    v_lines := credit._line_ids(wholesaler_ids, retailer_ids);
    PERFORM credit._lock_lines(v_lines);
    PERFORM credit._sweep_line(x.id, NULL) FROM credit.line x WHERE x.id = ANY (v_lines) AND x.next_expiry <= now();

    -- Per item: its amount, the first item with its key, and the entry the
    -- ledger already holds under that key (one probe of the ledger's key each).
    SELECT array_agg(t.a ORDER BY t.i), array_agg(t.first ORDER BY t.i), array_agg(e.id ORDER BY t.i),
           array_agg(e.amount ORDER BY t.i)
      INTO v_amounts, v_first, v_earlier, v_earlier_amounts
      FROM (SELECT u.i, u.line_id, u.o, round(u.a, 2) AS a,
                   min(u.i) OVER (PARTITION BY u.line_id, u.o)::integer AS first
              FROM unnest(v_lines, payment_refs, amounts) WITH ORDINALITY AS u(line_id, o, a, i)) t
      LEFT JOIN LATERAL (SELECT x.id, x.amount FROM credit.ledger_entry x
                          WHERE x.line_id = t.line_id AND x.entry_type = 'CREDIT' AND x.ref = t.o OFFSET 0) e ON true;

    -- The new payments: the first item of each key the ledger does not hold yet.
    WITH ins AS (
        INSERT INTO credit.ledger_entry AS e (line_id, entry_type, amount, ref)
        SELECT t.line_id, 'CREDIT', t.a, t.o
          FROM unnest(v_lines, payment_refs, v_amounts, v_first, v_earlier) WITH ORDINALITY AS t(line_id, o, a, first, earlier, i)
         WHERE t.line_id IS NOT NULL AND t.earlier IS NULL AND t.first = t.i
         ORDER BY t.i
        RETURNING e.id, e.line_id, e.ref)
    SELECT array_agg(coalesce(t.earlier, ins.id) ORDER BY t.i) INTO v_ids
      FROM unnest(v_lines, payment_refs, v_earlier) WITH ORDINALITY AS t(line_id, o, earlier, i)
      LEFT JOIN ins ON ins.line_id = t.line_id AND ins.ref = t.o;

    UPDATE credit.line x SET outstanding = x.outstanding - s.total
      FROM (SELECT t.line_id, sum(t.a) AS total
              FROM unnest(v_lines, v_amounts, v_first, v_earlier) WITH ORDINALITY AS t(line_id, a, first, earlier, i)
             WHERE t.line_id IS NOT NULL AND t.earlier IS NULL AND t.first = t.i
             GROUP BY t.line_id) s
     WHERE x.id = s.line_id;
    -- v_later: what the new payments after item i on its line take off outstanding.
    FOR v_i, v_line, v_amount, v_ref, v_later IN
        SELECT t.i::integer, t.line_id, t.a, t.o,
               coalesce(sum(t.a) OVER (PARTITION BY t.line_id ORDER BY t.i
                                       ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0)
          FROM unnest(v_lines, v_amounts, payment_refs, v_first, v_earlier) WITH ORDINALITY AS t(line_id, a, o, first, earlier, i)
         WHERE t.line_id IS NOT NULL AND t.earlier IS NULL AND t.first = t.i
         ORDER BY t.i
    LOOP
        SELECT coalesce(max(s.id), 0) INTO v_mark FROM credit.settlement s;
        PERFORM credit._allocate_credit(v_line, v_amount, NULL);
        SELECT * INTO v_line_row FROM credit.line x WHERE x.id = v_line;
        PERFORM credit._event(v_line_row.wholesaler_id, v_line_row.retailer_id, 'payment_recorded', v_ref, v_amount, credit._available(v_line_row) - v_later,
            jsonb_build_object('ledger_entry_id', v_ids[v_i], 'outstanding', (v_line_row.outstanding + v_later)::text,
                               'settlements', coalesce(credit._settlements(v_line, v_mark), '[]')));
    END LOOP;
    PERFORM credit._overdue_event(x.id) FROM credit.line x
     WHERE x.id = ANY (v_lines) AND x.overdue_since IS NOT NULL
     ORDER BY x.id;

    -- Running figures: each line as it stands now, less what the items after i moved.
    RETURN QUERY
        SELECT t.i::integer,
               CASE WHEN t.line_id IS NULL THEN 'line_not_found'
                    WHEN t.is_new OR t.a = t.first_amount THEN 'ok'
                    ELSE 'exists_with_different_amount' END,
               t.id,
               (l.outstanding + t.later)::numeric(1000, 2),
               (credit._available(l) - t.later)::numeric(1000, 2),
               t.line_id IS NOT NULL AND NOT t.is_new AND t.a = t.first_amount
          FROM (SELECT u.*, u.line_id IS NOT NULL AND u.earlier IS NULL AND u.first = u.i AS is_new,
                       coalesce(u.earlier_amount, v_amounts[u.first]) AS first_amount,
                       coalesce(sum(CASE WHEN u.earlier IS NULL AND u.first = u.i THEN u.a END)
                                    OVER (PARTITION BY u.line_id ORDER BY u.i
                                          ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0) AS later
                  FROM unnest(v_lines, v_amounts, v_first, v_earlier, v_earlier_amounts, v_ids)
                       WITH ORDINALITY AS u(line_id, a, first, earlier, earlier_amount, id, i)) t
          LEFT JOIN LATERAL (SELECT x.* FROM credit.line x WHERE x.id = t.line_id OFFSET 0) l ON true
         ORDER BY t.i;
END
$$;
REVOKE ALL ON FUNCTION credit.record_payment_batch(text[], text[], text[], numeric[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.record_payment_batch(text[], text[], text[], numeric[]) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.record_payment_batch(text[], text[], text[], numeric[]) IS $doc$Many payments in one call and one commit (a bank statement). Each item gets exactly what record_payment
would give it after the items before it, settlements included.
Arrays of one length, 1 to 10,000 items; item i is the i-th element of each. Invalid input anywhere
(arrays of different lengths, a bad element) refuses the whole call naming the element (amounts[7]), and
nothing is written. Lines are locked once each, in ascending id order, so bulk calls never deadlock with
each other over lines. A refused item is a row, not an exception.
Arguments:
  wholesaler_ids, retailer_ids: each item's line.
  payment_refs: each item's payment_ref.
  amounts: each item's amount paid.
Columns:
  item: the item's position in the arrays, from 1; rows come in item order.
  code, ledger_entry_id, outstanding, available, replayed: as record_payment returns them
    (credit.entry_result); outstanding and available are the line's after this item.
Codes: ok, line_not_found, exists_with_different_amount
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same payment_refs.$doc$;
