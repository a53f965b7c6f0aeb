SET ROLE credit_owner;

-- Many payments in one call and one commit (SPEC "Bulk calls"): a bank
-- statement. Item i gets exactly what record_payment would give it after
-- items 1..i-1.
--
-- Every item is checked before anything is written, and every line is locked
-- once in ascending id order and swept as record_payment's lock would sweep
-- it. Then the batch does what record_payment does, through the same rules:
-- each key is looked up in the ledger (credit._replay_entry, once per item)
-- and answered by the replay rule (credit._replay), also against an earlier
-- item of this batch with the same key (a batch item names no invoices: a
-- key whose payment named some, applies_to, is exists_with_different_terms,
-- as record_payment without applies_to answers); the new payments are posted
-- together (credit._post_entries: one INSERT in item order, then the
-- allocation rule per payment in item order, which moves its line's
-- outstanding). outstanding and available are each line's running figures
-- after the items before.
CREATE OR REPLACE FUNCTION credit.record_payment_batch(
    wholesaler_ids text[], retailer_ids text[], payment_refs text[], amounts numeric[])
RETURNS TABLE (item integer, code text, ledger_entry_id bigint, outstanding numeric, available numeric,
               replayed boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_lines bigint[];     -- per item: its line, NULL when there is none
    v_amounts numeric[];  -- per item: the amount with scale 2
    v_first integer[];    -- per item: the first item of the batch with its (line, payment_ref)
    v_codes text[];       -- per item: the replay rule's answer, NULL for a new payment
    v_earlier bigint[];   -- per item: the entry the ledger held under its key before the call
    v_new integer[];      -- the new payments' items, in item order, and their lines, keys, amounts, entries
    v_new_lines bigint[];
    v_new_refs text[];
    v_new_amounts numeric[];
    v_new_ids bigint[];
BEGIN
    IF current_setting('credit.lock_timeout', true) <> '' THEN
        PERFORM credit._apply_lock_timeout();
    END IF;
    PERFORM credit._record_payment_batch_check(wholesaler_ids, retailer_ids, payment_refs, amounts);
    v_lines := credit._line_ids(wholesaler_ids, retailer_ids);
    PERFORM credit._lock_lines(v_lines);
    PERFORM credit._sweep_line(x.id, NULL) FROM credit.line x WHERE x.id = ANY (v_lines) AND x.next_expiry <= now();

    SELECT array_agg(t.a ORDER BY t.i), array_agg(t.first ORDER BY t.i),
           array_agg(coalesce(CASE WHEN e.code = 'ok' AND (SELECT x.applies_to IS NOT NULL FROM credit.ledger_entry x
                                                            WHERE x.id = e.ledger_entry_id)
                                   THEN 'exists_with_different_terms' ELSE e.code END,
                              CASE WHEN t.first < t.i THEN credit._replay(t.first_amount, t.a) END)
                     ORDER BY t.i),
           array_agg(e.ledger_entry_id ORDER BY t.i)
      INTO v_amounts, v_first, v_codes, v_earlier
      FROM (SELECT u.i, u.line_id, u.o, round(u.a, 2) AS a,
                   first_value(u.i::integer) OVER k AS first, first_value(round(u.a, 2)) OVER k AS first_amount
              FROM unnest(v_lines, payment_refs, amounts) WITH ORDINALITY AS u(line_id, o, a, i)
            WINDOW k AS (PARTITION BY u.line_id, u.o ORDER BY u.i)) t
      LEFT JOIN LATERAL (SELECT x.* FROM credit.line x WHERE x.id = t.line_id OFFSET 0) l ON true
      LEFT JOIN LATERAL credit._replay_entry(l, 'CREDIT', t.o, t.a) e ON true;

    SELECT array_agg(t.i::integer ORDER BY t.i), array_agg(t.line_id ORDER BY t.i), array_agg(t.o ORDER BY t.i),
           array_agg(t.a ORDER BY t.i)
      INTO v_new, v_new_lines, v_new_refs, v_new_amounts
      FROM unnest(v_lines, payment_refs, v_amounts, v_codes) WITH ORDINALITY AS t(line_id, o, a, code, i)
     WHERE t.line_id IS NOT NULL AND t.code IS NULL;
    IF v_new IS NOT NULL THEN
        v_new_ids := credit._post_entries(v_new_lines, 'CREDIT', v_new_refs, v_new_amounts);
    END IF;

    -- Running figures: each line as it stands now, less what the payments after item i moved.
    RETURN QUERY
        SELECT t.i::integer,
               CASE WHEN t.line_id IS NULL THEN 'line_not_found' ELSE coalesce(t.code, 'ok') END,
               coalesce(t.earlier, n.id),
               (x.outstanding - t.later)::numeric(1000, 2),
               (credit._available(x) + t.later)::numeric(1000, 2),
               coalesce(t.code = 'ok', false)
          FROM (SELECT u.*,
                       coalesce(sum(CASE WHEN u.line_id IS NOT NULL AND u.code IS NULL
                                         THEN credit._entry_delta('CREDIT', u.a) END)
                                    OVER (PARTITION BY u.line_id ORDER BY u.i
                                          ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0) AS later
                  FROM unnest(v_lines, v_amounts, v_first, v_codes, v_earlier)
                       WITH ORDINALITY AS u(line_id, a, first, code, earlier, i)) t
          LEFT JOIN unnest(v_new, v_new_ids) AS n(i, id) ON n.i = t.first
          LEFT JOIN LATERAL (SELECT x.* FROM credit.line x WHERE x.id = t.line_id OFFSET 0) x ON true
         ORDER BY t.i;
END
$$;
REVOKE ALL ON FUNCTION credit.record_payment_batch(text[], text[], text[], numeric[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.record_payment_batch(text[], text[], text[], numeric[]) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.record_payment_batch(text[], text[], text[], numeric[]) IS $doc$Many payments in one call and one commit (a bank statement). Each item gets exactly what record_payment
would give it after the items before it, settlements included. A batch item names no invoices: a
payment_ref whose payment named some (applies_to) is exists_with_different_terms.
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
Codes: ok, line_not_found, exists_with_different_amount, exists_with_different_terms
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same payment_refs.$doc$;
