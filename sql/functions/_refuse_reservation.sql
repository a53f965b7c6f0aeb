SET ROLE credit_owner;

-- Logs a refused reservation for monitoring and builds its result.
CREATE OR REPLACE FUNCTION credit._refuse_reservation(
    l credit.line, wholesaler_id text, retailer_id text, order_ref text, amount numeric, code text)
RETURNS credit.reserve_result
LANGUAGE plpgsql AS $$
DECLARE
    v_available numeric := credit._available(l);
BEGIN
    INSERT INTO credit.refusal (line_id, wholesaler_id, retailer_id, order_ref, amount, code, available)
    VALUES (l.id, wholesaler_id, retailer_id, order_ref, amount, code, v_available);
    RETURN (code, NULL, NULL, amount, v_available,
            greatest(amount - v_available, 0), false)::credit.reserve_result;
END
$$;
REVOKE ALL ON FUNCTION credit._refuse_reservation(credit.line, text, text, text, numeric, text) FROM PUBLIC;
