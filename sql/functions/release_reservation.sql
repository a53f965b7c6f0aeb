SET ROLE credit_owner;

-- Releases an active hold (order cancelled or failed).
CREATE OR REPLACE FUNCTION credit.release_reservation(
    wholesaler_id text, retailer_id text, order_ref text, reason text DEFAULT NULL)
RETURNS credit.release_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    l credit.line;
    h credit.reservation;
    v_available numeric;
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
        RETURN (CASE h.status WHEN 'released' THEN 'ok' ELSE 'reservation_' || h.status END,
                h.id, h.status, h.released_amount, v_available, h.status = 'released')::credit.release_result;
    END IF;

    UPDATE credit.reservation r
       SET status = 'released', released_at = now(), release_reason = reason, released_amount = h.amount
     WHERE r.line_id = h.line_id AND r.order_ref = h.order_ref;
    UPDATE credit.line x SET reserved = x.reserved - h.amount WHERE x.id = l.id;
    PERFORM credit._event(l.wholesaler_id, l.retailer_id, 'hold_released', order_ref, h.amount, v_available + h.amount,
        CASE WHEN reason IS NOT NULL THEN jsonb_build_object('reason', reason) END);
    RETURN ('ok', h.id, 'released', h.amount, v_available + h.amount, false)::credit.release_result;
END
$$;
REVOKE ALL ON FUNCTION credit.release_reservation(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.release_reservation(text, text, text, text) TO credit_app;
