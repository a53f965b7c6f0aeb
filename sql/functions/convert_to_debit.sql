SET ROLE credit_owner;

-- Turns a hold into DEBITs, each due on its own due_date (default: that day
-- + the line's payment terms).
--
-- With shipment_ref, one shipment: a DEBIT of amount (NULL: all that
-- remains) under the shipment_ref; the rest stays held, and the hold stays
-- active until nothing remains. Without it, the final conversion, as in v1:
-- a DEBIT of amount (NULL: all that remains) under the order_ref, the rest
-- released, the hold 'converted'.
--
-- Replays come first. A shipment_ref already on a DEBIT of the line replays
-- if it is this order's shipment of the same amount (NULL matches), else it
-- is exists_with_different_amount. A final conversion of a converted hold
-- replays when the effective amounts match (NULL: what remained before it,
-- which for a v1 conversion is the whole hold); a hold that was converted by
-- its shipments alone has nothing left: NULL replays, an amount exceeds it.
-- A shipment on a converted hold likewise asks for more than remains.
-- v1.2 replaced the five-argument function and its result type (migration
-- 0007). The old function goes, in this reload's one transaction; its type
-- stays (a later release drops it): a call still running the old function
-- when the reload commits returns the old type, and would fail if it were gone.
DROP FUNCTION IF EXISTS credit.convert_to_debit(text, text, text, numeric, date);
CREATE OR REPLACE FUNCTION credit.convert_to_debit(
    wholesaler_id text, retailer_id text, order_ref text,
    amount numeric DEFAULT NULL, due_date date DEFAULT NULL, shipment_ref text DEFAULT NULL)
RETURNS credit.conversion_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_amount numeric;
    v_remaining numeric;
    l credit.line;
    h credit.reservation;
    d credit.ledger_entry;
    v_available numeric;
    v_code text;
BEGIN
    -- One cheap test passes good ids; the checks that name the argument run only when it fails.
    IF NOT coalesce(credit._id_ok(wholesaler_id) AND credit._id_ok(retailer_id) AND credit._id_ok(order_ref)
                    AND (shipment_ref IS NULL OR credit._id_ok(shipment_ref)), false) THEN
        PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
        PERFORM credit._require_id(retailer_id, 'retailer_id');
        PERFORM credit._require_id(order_ref, 'order_ref');
        IF shipment_ref IS NOT NULL THEN
            PERFORM credit._require_id(shipment_ref, 'shipment_ref');
        END IF;
    END IF;
    IF shipment_ref = order_ref THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = 'shipment_ref must differ from order_ref: the final conversion''s DEBIT carries the order_ref';
    END IF;
    IF amount IS NOT NULL THEN
        IF NOT coalesce(credit._money_ok(amount, 'positive'), false) THEN
            PERFORM credit._money(amount, 'amount', 'positive');
        END IF;
        v_amount := round(amount, 2);
    END IF;
    IF NOT isfinite(due_date) THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('due_date must be a finite date, got %s', due_date);
    END IF;

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL)::credit.conversion_result;
    END IF;
    v_available := credit._available(l);

    SELECT * INTO h FROM credit.reservation r
     WHERE r.line_id = l.id AND r.order_ref = convert_to_debit.order_ref;
    v_remaining := CASE WHEN h.status = 'active' THEN h.amount - coalesce(h.converted_amount, 0) ELSE 0.00 END;
    -- The DEBIT ref this call would write, looked up once: a shipment's
    -- replay, a final conversion's, or a ref another order's DEBIT carries.
    SELECT * INTO d FROM credit.ledger_entry e
     WHERE e.line_id = l.id AND e.entry_type = 'DEBIT' AND e.ref = coalesce(shipment_ref, convert_to_debit.order_ref);
    IF shipment_ref IS NOT NULL AND d.id IS NOT NULL THEN
        v_code := CASE WHEN d.reservation_id = h.id THEN credit._replay(d.amount, coalesce(v_amount, d.amount))
                       ELSE 'exists_with_different_amount' END;
        RETURN (v_code, d.reservation_id, CASE WHEN v_code = 'ok' THEN h.status END, d.id, d.amount,
                CASE WHEN v_code = 'ok' THEN 0.00 END, d.due_date, v_available, v_code = 'ok',
                CASE WHEN v_code = 'ok' THEN v_remaining END)::credit.conversion_result;
    END IF;

    IF h.id IS NULL THEN
        RETURN ('reservation_not_found', NULL, NULL, NULL, NULL, NULL, NULL, v_available, false,
                NULL)::credit.conversion_result;
    ELSIF h.status = 'converted' AND shipment_ref IS NULL THEN
        IF d.reservation_id = h.id THEN  -- its final conversion: NULL meant what remained before it
            v_code := credit._replay(d.amount, coalesce(v_amount, d.amount + h.released_amount));
            RETURN (v_code, h.id, h.status, d.id, d.amount, h.released_amount, d.due_date, v_available,
                    v_code = 'ok', 0.00)::credit.conversion_result;
        ELSIF v_amount IS NULL THEN  -- converted by its shipments (or a cut): nothing is left to debit
            RETURN ('ok', h.id, h.status, h.debit_entry_id, 0.00, h.released_amount,
                    (SELECT e.due_date FROM credit.ledger_entry e WHERE e.id = h.debit_entry_id), v_available,
                    true, 0.00)::credit.conversion_result;
        END IF;
    ELSIF h.status IN ('released', 'expired') THEN
        -- Codes written out whole: the reference's test reads them from the source.
        RETURN (CASE h.status WHEN 'released' THEN 'reservation_released' ELSE 'reservation_expired' END,
                h.id, h.status, NULL, NULL, NULL, NULL, v_available, false, 0.00)::credit.conversion_result;
    END IF;
    IF h.status = 'converted' OR v_amount > v_remaining THEN
        RETURN ('exceeds_reservation_amount', h.id, h.status, NULL, NULL, NULL, NULL, v_available, false,
                v_remaining)::credit.conversion_result;
    ELSIF d.id IS NOT NULL THEN  -- another order's shipment took this order_ref as its DEBIT ref
        RETURN ('exists_with_different_amount', d.reservation_id, NULL, d.id, d.amount, NULL, d.due_date,
                v_available, false, NULL)::credit.conversion_result;
    END IF;

    RETURN credit._book_debit(l, h, coalesce(shipment_ref, order_ref), coalesce(v_amount, v_remaining),
                              coalesce(due_date, current_date + l.payment_terms_days), shipment_ref IS NULL);
END
$$;
REVOKE ALL ON FUNCTION credit.convert_to_debit(text, text, text, numeric, date, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.convert_to_debit(text, text, text, numeric, date, text) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.convert_to_debit(text, text, text, numeric, date, text) IS $doc$Turns an active hold into DEBITs (the order was delivered), each due on its own due date and each an
open item that payments settle. With shipment_ref, one shipment: a DEBIT of amount under the shipment_ref;
the rest stays held, and the hold stays active until nothing remains (then it is converted). Without it,
the final conversion: a DEBIT of amount under the order_ref, the rest of the hold released, the hold
converted. A shipment_ref used before on the line replays if it is this order's shipment of this amount,
else exists_with_different_amount; a final conversion of a converted hold replays when the effective
amounts match (NULL: what remained before it), and of a hold its shipments converted replays with NULL
(nothing is left to debit). A shipment on a converted hold asks for more than remains.
Arguments:
  wholesaler_id, retailer_id: the line.
  order_ref: the order whose hold to convert; the final conversion's DEBIT ref.
  amount: what to debit, at most what remains of the hold: greater than zero, at most 2 decimal places;
    NULL: all that remains.
  due_date: the DEBIT's due date; NULL: today + the line's payment_terms_days.
  shipment_ref: the shipment, the DEBIT's ref: unique among the line's DEBIT refs (order_refs included)
    for ever, and not the order_ref itself; NULL: the final conversion.
Codes: ok, line_not_found, reservation_not_found, reservation_released, reservation_expired,
  exceeds_reservation_amount, exists_with_different_amount
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same order_ref and shipment_ref.$doc$;
COMMENT ON TYPE credit.conversion_result IS $doc$The outcome of a conversion or a shipment (convert_to_debit; convert_to_debit_batch's rows carry the same
columns after item).$doc$;
COMMENT ON COLUMN credit.conversion_result.code IS $doc$ok, or why nothing was debited.$doc$;
COMMENT ON COLUMN credit.conversion_result.reservation_id IS $doc$The hold's id (on exists_with_different_amount, the hold whose DEBIT carries the ref); NULL for
line_not_found and reservation_not_found.$doc$;
COMMENT ON COLUMN credit.conversion_result.status IS $doc$The hold's status after the call: active (a shipment left some of it held), converted, or the status
that prevented it.$doc$;
COMMENT ON COLUMN credit.conversion_result.ledger_entry_id IS $doc$The DEBIT entry's id (the original's on a replay; the hold's latest when its shipments had converted it);
NULL when nothing was debited.$doc$;
COMMENT ON COLUMN credit.conversion_result.debited_amount IS $doc$The amount debited (the original's on a replay; 0.00 when nothing was left to debit).$doc$;
COMMENT ON COLUMN credit.conversion_result.released_amount IS $doc$The part of the hold a final conversion released (0.00 for a whole conversion and for a shipment).$doc$;
COMMENT ON COLUMN credit.conversion_result.due_date IS $doc$The DEBIT's due date.$doc$;
COMMENT ON COLUMN credit.conversion_result.available IS $doc$The line's available after the call; NULL for line_not_found.$doc$;
COMMENT ON COLUMN credit.conversion_result.replayed IS $doc$true when this conversion or shipment had been made before: nothing changed.$doc$;
COMMENT ON COLUMN credit.conversion_result.remaining_amount IS $doc$What the hold still holds after the call (amount less what was debited); 0.00 once it has ended.$doc$;
