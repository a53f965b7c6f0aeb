SET ROLE credit_owner;

-- Many conversions in one call and one commit (SPEC "Bulk calls"): delivery
-- confirmations. A NULL amounts array or element converts all that remains
-- of the hold; a shipment_refs element books that shipment (a NULL array or
-- element: the final conversion); the due date is each line's default
-- (conversion date + payment terms).
--
-- Every item is checked before anything is written, every line is locked
-- once in ascending id order, and then each item runs through
-- convert_to_debit itself, in array order, which finds its line locked by
-- this transaction already: one implementation of the conversion and of the
-- allocation rule (credit._allocate_item), so item i gets exactly what the
-- single call would have given it after items 1..i-1.
-- v1.2 added shipment_refs (migration 0007).
DROP FUNCTION IF EXISTS credit.convert_to_debit_batch(text[], text[], text[], numeric[]);
CREATE OR REPLACE FUNCTION credit.convert_to_debit_batch(
    wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[] DEFAULT NULL,
    shipment_refs text[] DEFAULT NULL)
RETURNS TABLE (item integer, code text, reservation_id bigint, status text, ledger_entry_id bigint,
               debited_amount numeric, released_amount numeric, due_date date, available numeric,
               replayed boolean, remaining_amount numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_i integer;
    v_w text;
    v_r text;
    v_o text;
    v_a numeric;
    v_s text;
BEGIN
    IF current_setting('credit.lock_timeout', true) <> '' THEN
        PERFORM credit._apply_lock_timeout();
    END IF;
    PERFORM credit._convert_to_debit_batch_check(wholesaler_ids, retailer_ids, order_refs, amounts, shipment_refs);
    PERFORM credit._lock_lines(credit._line_ids(wholesaler_ids, retailer_ids));
    FOR v_i, v_w, v_r, v_o, v_a, v_s IN
        SELECT t.i::integer, t.w, t.r, t.o, t.a, t.s
          FROM unnest(wholesaler_ids, retailer_ids, order_refs, amounts, shipment_refs)
               WITH ORDINALITY AS t(w, r, o, a, s, i)
         ORDER BY t.i
    LOOP
        RETURN QUERY SELECT v_i, s.* FROM credit.convert_to_debit(v_w, v_r, v_o, v_a, NULL, v_s) AS s;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION credit.convert_to_debit_batch(text[], text[], text[], numeric[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.convert_to_debit_batch(text[], text[], text[], numeric[], text[]) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.convert_to_debit_batch(text[], text[], text[], numeric[], text[]) IS $doc$Many conversions and shipments in one call and one commit (delivery confirmations). Each item gets
exactly what convert_to_debit would give it after the items before it; due dates are each line's default.
Arrays of one length, 1 to 10,000 items; item i is the i-th element of each. Invalid input anywhere
(arrays of different lengths, a bad element) refuses the whole call naming the element (amounts[7]), and
nothing is written. Lines are locked once each, in ascending id order, so bulk calls never deadlock with
each other over lines. A refused item is a row, not an exception.
Arguments:
  wholesaler_ids, retailer_ids: each item's line.
  order_refs: each item's order.
  amounts: each item's amount to debit; NULL (the array or an element): all that remains of the hold.
  shipment_refs: each item's shipment; NULL (the array or an element): the final conversion.
Columns:
  item: the item's position in the arrays, from 1; rows come in item order.
  code, reservation_id, status, ledger_entry_id, debited_amount, released_amount, due_date, available, replayed, remaining_amount:
    as convert_to_debit returns them (credit.conversion_result).
Codes: ok, line_not_found, reservation_not_found, reservation_released, reservation_expired,
  exceeds_reservation_amount, exists_with_different_amount
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same order_refs.$doc$;
