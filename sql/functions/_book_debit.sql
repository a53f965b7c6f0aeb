SET ROLE credit_owner;

-- Books a DEBIT for an active hold on its locked line: the one place where a
-- shipment or a final conversion is recorded. The DEBIT (ref: the
-- shipment_ref, or the order_ref for a final conversion) is due on due_date
-- and becomes an open item; the hold's converted_amount grows by it and
-- debit_entry_id points to it (the latest DEBIT). A shipment takes its
-- amount out of the hold's remaining amount and leaves the hold active until
-- nothing remains; a final conversion releases the rest and ends the hold
-- 'converted'. The line row is updated once (through _allocate_item).
--
-- A DEBIT ref is unique per line for ever: if another hold's shipment or
-- conversion already carries ref, nothing is written and the answer is
-- exists_with_different_amount (the key was used for another order).
CREATE OR REPLACE FUNCTION credit._book_debit(
    l credit.line, h credit.reservation, ref text, amount numeric, due_date date, final boolean)
RETURNS credit.conversion_result
LANGUAGE plpgsql AS $$
DECLARE
    v_entry bigint;
    v_remaining numeric := h.amount - coalesce(h.converted_amount, 0);
    v_ends boolean := final OR amount = v_remaining;
    v_freed numeric := CASE WHEN v_ends THEN v_remaining ELSE amount END;  -- leaves reserved
BEGIN
    INSERT INTO credit.ledger_entry AS e (line_id, entry_type, amount, ref, due_date, reservation_id)
    VALUES (l.id, 'DEBIT', amount, ref, due_date, h.id)
    ON CONFLICT ON CONSTRAINT ledger_entry_line_id_entry_type_ref_key DO NOTHING
    RETURNING e.id INTO v_entry;
    IF v_entry IS NULL THEN
        RETURN ('exists_with_different_amount', h.id, h.status, NULL, NULL, NULL, NULL, credit._available(l),
                false, v_remaining)::credit.conversion_result;
    END IF;
    IF v_ends THEN
        UPDATE credit.reservation r
           SET status = 'converted', converted_at = now(), converted_amount = coalesce(r.converted_amount, 0) + _book_debit.amount,
               released_amount = v_remaining - _book_debit.amount, debit_entry_id = v_entry
         WHERE r.line_id = h.line_id AND r.order_ref = h.order_ref;
    ELSE
        UPDATE credit.reservation r
           SET converted_amount = coalesce(r.converted_amount, 0) + _book_debit.amount, debit_entry_id = v_entry
         WHERE r.line_id = h.line_id AND r.order_ref = h.order_ref;
    END IF;
    PERFORM credit._allocate_item(l.id, v_entry, due_date, amount, now(), l.unapplied, -v_freed, amount);
    RETURN ('ok', h.id, CASE WHEN v_ends THEN 'converted' ELSE 'active' END, v_entry, amount,
            CASE WHEN v_ends THEN v_remaining - amount ELSE 0.00 END, due_date,
            credit._available(l) + v_freed - amount, false,
            CASE WHEN v_ends THEN 0.00 ELSE v_remaining - amount END)::credit.conversion_result;
END
$$;
REVOKE ALL ON FUNCTION credit._book_debit(credit.line, credit.reservation, text, numeric, date, boolean) FROM PUBLIC;
