SET ROLE credit_owner;

-- Turns a hold into a DEBIT due on due_date (default: today + payment terms).
-- An amount below the hold debits that much and releases the rest (partial
-- delivery); NULL means the whole hold. Writes debit_booked (with what
-- unapplied credit settled at once), then the overdue event if a DEBIT due
-- in the past started the line's refusals.
CREATE OR REPLACE FUNCTION credit.convert_to_debit(
    wholesaler_id text, retailer_id text, order_ref text,
    amount numeric DEFAULT NULL, due_date date DEFAULT NULL)
RETURNS credit.convert_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_amount numeric;
    l credit.line;
    h credit.reservation;
    v_available numeric;
    v_due date;
    v_entry bigint;
    v_code text;
    v_mark bigint;
BEGIN
    -- One cheap test passes good ids; the checks that name the argument run only when it fails.
    IF NOT coalesce(credit._id_ok(wholesaler_id) AND credit._id_ok(retailer_id) AND credit._id_ok(order_ref), false) THEN
        PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
        PERFORM credit._require_id(retailer_id, 'retailer_id');
        PERFORM credit._require_id(order_ref, 'order_ref');
    END IF;
    IF amount IS NOT NULL THEN
        v_amount := credit._money(amount, 'amount', 'positive');
    END IF;
    IF NOT isfinite(due_date) THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('due_date must be a finite date, got %s', due_date);
    END IF;

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, NULL, NULL, NULL, NULL, false)::credit.convert_result;
    END IF;
    v_available := credit._available(l);

    SELECT * INTO h FROM credit.reservation r
     WHERE r.line_id = l.id AND r.order_ref = convert_to_debit.order_ref;
    IF h.id IS NULL THEN
        RETURN ('reservation_not_found', NULL, NULL, NULL, NULL, NULL, NULL, v_available, false)::credit.convert_result;
    ELSIF h.status = 'converted' THEN
        SELECT e.due_date INTO v_due FROM credit.ledger_entry e WHERE e.id = h.debit_entry_id;
        v_code := credit._replay(h.converted_amount, coalesce(v_amount, h.amount));
        RETURN (v_code, h.id, h.status, h.debit_entry_id, h.converted_amount, h.released_amount, v_due, v_available,
                v_code = 'ok')::credit.convert_result;
    ELSIF h.status <> 'active' THEN
        -- Codes written out whole: the reference's test reads them from the source.
        RETURN (CASE h.status WHEN 'released' THEN 'reservation_released' ELSE 'reservation_expired' END,
                h.id, h.status, NULL, NULL, NULL, NULL, v_available, false)::credit.convert_result;
    ELSIF v_amount > h.amount THEN
        RETURN ('exceeds_reservation_amount', h.id, h.status, NULL, NULL, NULL, NULL, v_available, false)::credit.convert_result;
    END IF;

    v_amount := coalesce(v_amount, h.amount);
    v_due := coalesce(due_date, current_date + l.payment_terms_days);
    IF l.unapplied > 0 THEN  -- credit waiting on the line settles the new DEBIT at once
        SELECT coalesce(max(s.id), 0) INTO v_mark FROM credit.settlement s;
    END IF;
    -- The DEBIT is posted as every entry is; the whole hold leaves reserved with it.
    v_entry := (credit._post_entries(ARRAY[l.id], 'DEBIT', ARRAY[order_ref], ARRAY[v_amount], NULL, NULL,
                                     ARRAY[v_due], ARRAY[h.id], ARRAY[h.amount]))[1];
    UPDATE credit.reservation r
       SET status = 'converted', converted_at = now(), converted_amount = v_amount,
           released_amount = h.amount - v_amount, debit_entry_id = v_entry
     WHERE r.line_id = h.line_id AND r.order_ref = h.order_ref;
    PERFORM credit._event(l.wholesaler_id, l.retailer_id, 'debit_booked', order_ref, v_amount,
        v_available + h.amount - v_amount, jsonb_build_object(
            'order_ref', order_ref, 'ledger_entry_id', v_entry, 'due_date', v_due, 'final', true,
            'hold_status', 'converted', 'released_amount', (h.amount - v_amount)::text, 'remaining_amount', '0.00',
            'outstanding', round(l.outstanding + v_amount, 2)::text,
            'settlements', coalesce(CASE WHEN v_mark IS NOT NULL THEN credit._settlements(l.id, v_mark) END, '[]')));
    IF l.overdue_grace_days IS NOT NULL OR l.overdue_since IS NOT NULL THEN
        PERFORM credit._overdue_event(l.id);  -- a debit due in the past may start the refusals
    END IF;
    RETURN ('ok', h.id, 'converted', v_entry, v_amount, h.amount - v_amount, v_due,
            v_available + h.amount - v_amount, false)::credit.convert_result;
END
$$;
REVOKE ALL ON FUNCTION credit.convert_to_debit(text, text, text, numeric, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.convert_to_debit(text, text, text, numeric, date) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.convert_to_debit(text, text, text, numeric, date) IS $doc$Turns an active hold into a DEBIT (the order was delivered): amount is debited, due on due_date, and the
rest of the hold is released (a partial delivery). The DEBIT becomes an open item that payments settle,
oldest due date first. Converting a converted hold again with the same effective amount is a replay;
with another, exists_with_different_amount.
Arguments:
  wholesaler_id, retailer_id: the line.
  order_ref: the order whose hold to convert; the DEBIT's ref.
  amount: what to debit, at most the hold: greater than zero, at most 2 decimal places; NULL: the whole hold.
  due_date: the DEBIT's due date; NULL: today + the line's payment_terms_days.
Codes: ok, line_not_found, reservation_not_found, reservation_released, reservation_expired,
  exceeds_reservation_amount, exists_with_different_amount
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same order_ref.$doc$;
COMMENT ON TYPE credit.convert_result IS $doc$The outcome of a conversion (convert_to_debit; convert_to_debit_batch's rows carry the same columns after
item).$doc$;
COMMENT ON COLUMN credit.convert_result.code IS $doc$ok, or why the hold was not converted.$doc$;
COMMENT ON COLUMN credit.convert_result.reservation_id IS $doc$The hold's id; NULL for line_not_found and reservation_not_found.$doc$;
COMMENT ON COLUMN credit.convert_result.status IS $doc$The hold's status after the call: converted, or the status that prevented it.$doc$;
COMMENT ON COLUMN credit.convert_result.ledger_entry_id IS $doc$The DEBIT entry's id (the original's on a replay); NULL when nothing was debited.$doc$;
COMMENT ON COLUMN credit.convert_result.debited_amount IS $doc$The amount debited (the original conversion's on a replay).$doc$;
COMMENT ON COLUMN credit.convert_result.released_amount IS $doc$The part of the hold released by the conversion (0.00 for a whole conversion).$doc$;
COMMENT ON COLUMN credit.convert_result.due_date IS $doc$The DEBIT's due date.$doc$;
COMMENT ON COLUMN credit.convert_result.available IS $doc$The line's available after the call; NULL for line_not_found.$doc$;
COMMENT ON COLUMN credit.convert_result.replayed IS $doc$true when the hold had been converted before with this amount: nothing changed.$doc$;
