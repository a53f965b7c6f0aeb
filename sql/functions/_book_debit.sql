SET ROLE credit_owner;

-- Books a DEBIT for an active hold on its locked line: the one place where a
-- shipment or a final conversion is recorded. The DEBIT (ref: the
-- shipment_ref, or the order_ref for a final conversion) is posted as every
-- entry is (credit._post_entries: due on due_date, an open item, the line's
-- outstanding and reserved moved in one UPDATE of the line); the hold's
-- converted_amount grows by it and debit_entry_id points to it (the latest
-- DEBIT). A shipment takes its amount out of the hold's remaining amount and
-- leaves the hold active until nothing remains; a final conversion releases
-- the rest and ends the hold 'converted'. Writes debit_booked (with what
-- unapplied credit settled at once), then the overdue event if a DEBIT due
-- in the past started the line's refusals. The caller has found ref unused
-- on the line (convert_to_debit).
CREATE OR REPLACE FUNCTION credit._book_debit(
    l credit.line, h credit.reservation, ref text, amount numeric, due_date date, final boolean)
RETURNS credit.conversion_result
LANGUAGE plpgsql AS $$
DECLARE
    v_entry bigint;
    v_remaining numeric := h.amount - coalesce(h.converted_amount, 0);
    v_ends boolean := final OR amount = v_remaining;
    v_freed numeric := CASE WHEN v_ends THEN v_remaining ELSE amount END;  -- leaves reserved
    v_mark bigint;
BEGIN
    IF l.unapplied > 0 THEN  -- credit waiting on the line settles the new DEBIT at once
        SELECT coalesce(max(s.id), 0) INTO v_mark FROM credit.settlement s;
    END IF;
    v_entry := (credit._post_entries(ARRAY[l.id], 'DEBIT', ARRAY[ref], ARRAY[amount], NULL, NULL, ARRAY[due_date],
                                     ARRAY[h.id], ARRAY[v_freed]))[1];
    IF v_ends THEN
        UPDATE credit.reservation r
           SET status = 'converted', converted_at = now(),
               converted_amount = coalesce(r.converted_amount, 0) + _book_debit.amount,
               released_amount = v_remaining - _book_debit.amount, debit_entry_id = v_entry
         WHERE r.line_id = h.line_id AND r.order_ref = h.order_ref;
    ELSE
        UPDATE credit.reservation r
           SET converted_amount = coalesce(r.converted_amount, 0) + _book_debit.amount, debit_entry_id = v_entry
         WHERE r.line_id = h.line_id AND r.order_ref = h.order_ref;
    END IF;
    PERFORM credit._event(l.wholesaler_id, l.retailer_id, 'debit_booked', ref, amount,
        credit._available(l) + v_freed - amount, jsonb_build_object(
            'order_ref', h.order_ref, 'ledger_entry_id', v_entry, 'due_date', due_date, 'final', final,
            'hold_status', CASE WHEN v_ends THEN 'converted' ELSE 'active' END,
            'released_amount', (CASE WHEN v_ends THEN v_remaining - amount ELSE 0.00 END)::text,
            'remaining_amount', (CASE WHEN v_ends THEN 0.00 ELSE v_remaining - amount END)::text,
            'outstanding', round(l.outstanding + amount, 2)::text,
            'settlements', coalesce(CASE WHEN v_mark IS NOT NULL THEN credit._settlements(l.id, v_mark) END, '[]')));
    IF l.overdue_grace_days IS NOT NULL OR l.overdue_since IS NOT NULL THEN
        PERFORM credit._overdue_event(l.id);
    END IF;
    RETURN ('ok', h.id, CASE WHEN v_ends THEN 'converted' ELSE 'active' END, v_entry, amount,
            CASE WHEN v_ends THEN v_remaining - amount ELSE 0.00 END, due_date,
            credit._available(l) + v_freed - amount, false,
            CASE WHEN v_ends THEN 0.00 ELSE v_remaining - amount END)::credit.conversion_result;
END
$$;
REVOKE ALL ON FUNCTION credit._book_debit(credit.line, credit.reservation, text, numeric, date, boolean) FROM PUBLIC;
