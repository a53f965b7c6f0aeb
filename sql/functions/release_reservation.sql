SET ROLE credit_owner;

-- Releases an active hold (order cancelled or failed): what remains of it,
-- if part was shipped already (converted_amount is kept).
CREATE OR REPLACE FUNCTION credit.release_reservation(
    wholesaler_id text, retailer_id text, order_ref text, reason text DEFAULT NULL)
RETURNS credit.release_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    l credit.line;
    h credit.reservation;
    v_available numeric;
    v_remaining numeric;
BEGIN
    -- One cheap test passes good ids; the checks that name the argument run only when it fails.
    IF NOT coalesce(credit._id_ok(wholesaler_id) AND credit._id_ok(retailer_id) AND credit._id_ok(order_ref), false) THEN
        PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
        PERFORM credit._require_id(retailer_id, 'retailer_id');
        PERFORM credit._require_id(order_ref, 'order_ref');
    END IF;
    IF reason IS NOT NULL THEN
        PERFORM credit._require_text(reason, 'reason');
    END IF;

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, NULL, false)::credit.release_result;
    END IF;
    v_available := credit._available(l);

    SELECT * INTO h FROM credit.reservation r
     WHERE r.line_id = l.id AND r.order_ref = release_reservation.order_ref;
    IF h.id IS NULL THEN
        RETURN ('reservation_not_found', NULL, NULL, NULL, v_available, false)::credit.release_result;
    ELSIF h.status <> 'active' THEN
        -- Codes written out whole: the reference's test reads them from the source.
        RETURN (CASE h.status WHEN 'released' THEN 'ok' WHEN 'converted' THEN 'reservation_converted'
                              ELSE 'reservation_expired' END,
                h.id, h.status, h.released_amount, v_available, h.status = 'released')::credit.release_result;
    END IF;

    v_remaining := h.amount - coalesce(h.converted_amount, 0);
    UPDATE credit.reservation r
       SET status = 'released', released_at = now(), release_reason = reason, released_amount = v_remaining
     WHERE r.line_id = h.line_id AND r.order_ref = h.order_ref;
    UPDATE credit.line x SET reserved = x.reserved - v_remaining WHERE x.id = l.id;
    PERFORM credit._event(l.wholesaler_id, l.retailer_id, 'hold_released', order_ref, v_remaining,
                          v_available + v_remaining, CASE WHEN reason IS NOT NULL THEN jsonb_build_object('reason', reason) END);
    RETURN ('ok', h.id, 'released', v_remaining, v_available + v_remaining, false)::credit.release_result;
END
$$;
REVOKE ALL ON FUNCTION credit.release_reservation(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.release_reservation(text, text, text, text) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.release_reservation(text, text, text, text) IS $doc$Releases an active hold (the order was cancelled or failed): its amount stops counting toward reserved.
Releasing a released hold again is a replay. A converted hold cannot be released (reservation_converted),
nor an expired one (reservation_expired; it may be marked expired by the call).
Arguments:
  wholesaler_id, retailer_id: the line.
  order_ref: the order whose hold to release.
  reason: why, kept on the hold (at most 1,000 characters); NULL for none.
Codes: ok, line_not_found, reservation_not_found, reservation_converted, reservation_expired
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same order_ref.$doc$;
COMMENT ON TYPE credit.release_result IS $doc$The outcome of release_reservation.$doc$;
COMMENT ON COLUMN credit.release_result.code IS $doc$ok, or why the hold was not released.$doc$;
COMMENT ON COLUMN credit.release_result.reservation_id IS $doc$The hold's id; NULL for line_not_found and reservation_not_found.$doc$;
COMMENT ON COLUMN credit.release_result.status IS $doc$The hold's status after the call: released, or the status that prevented it.$doc$;
COMMENT ON COLUMN credit.release_result.released_amount IS $doc$The amount the hold released: this release's (the original release's on a replay); on reservation_converted, what its conversion released; NULL otherwise.$doc$;
COMMENT ON COLUMN credit.release_result.available IS $doc$The line's available after the call; NULL for line_not_found.$doc$;
COMMENT ON COLUMN credit.release_result.replayed IS $doc$true when the hold had been released before: nothing changed.$doc$;
