SET ROLE credit_owner;

-- Holds amount for an order if the line is active and has that much available.
CREATE OR REPLACE FUNCTION credit.reserve_credit(
    wholesaler_id text, retailer_id text, order_ref text, amount numeric,
    expires_in interval DEFAULT NULL)
RETURNS credit.reserve_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_amount numeric;
    l credit.line;
    h credit.reservation;
    v_available numeric;
    v_expires_at timestamptz;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    PERFORM credit._require_id(order_ref, 'order_ref');
    v_amount := credit._money(amount, 'amount', 'positive');
    IF expires_in IS NOT NULL AND (NOT isfinite(expires_in) OR expires_in <= interval '0') THEN
        RAISE USING ERRCODE = '22023', MESSAGE = format('expires_in must be a positive finite interval, got %s', expires_in);
    END IF;
    v_expires_at := now() + expires_in;

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN credit._refuse_reservation(l, wholesaler_id, retailer_id, order_ref, v_amount, 'line_not_found');
    END IF;
    v_available := l.credit_limit - l.reserved - l.outstanding;

    SELECT * INTO h FROM credit.reservation r
     WHERE r.line_id = l.id AND r.order_ref = reserve_credit.order_ref;
    IF h.id IS NOT NULL THEN
        RETURN (CASE WHEN h.amount = v_amount THEN 'ok' ELSE 'exists_with_different_amount' END,
                h.id, h.status, h.amount, v_available, CASE WHEN h.amount = v_amount THEN 0 END,
                h.amount = v_amount)::credit.reserve_result;
    END IF;

    IF l.status = 'blocked' THEN
        RETURN credit._refuse_reservation(l, wholesaler_id, retailer_id, order_ref, v_amount, 'line_blocked');
    ELSIF v_amount > v_available THEN
        RETURN credit._refuse_reservation(l, wholesaler_id, retailer_id, order_ref, v_amount, 'insufficient_credit');
    END IF;

    INSERT INTO credit.reservation (line_id, order_ref, amount, expires_at)
    VALUES (l.id, order_ref, v_amount, v_expires_at)
    RETURNING id INTO h.id;
    UPDATE credit.line x
       SET reserved = x.reserved + v_amount, next_expiry = least(x.next_expiry, v_expires_at)
     WHERE x.id = l.id;
    RETURN ('ok', h.id, 'active', v_amount, v_available - v_amount, 0, false)::credit.reserve_result;
END
$$;
REVOKE ALL ON FUNCTION credit.reserve_credit(text, text, text, numeric, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.reserve_credit(text, text, text, numeric, interval) TO credit_app;
