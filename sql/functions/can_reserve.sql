SET ROLE credit_owner;

-- Would reserve_credit(amount) succeed now? The same refusals in the same
-- order (credit._refusal), but no lock and no write, so the answer can be
-- stale by the time the caller reserves.
CREATE OR REPLACE FUNCTION credit.can_reserve(wholesaler_id text, retailer_id text, amount numeric)
RETURNS credit.can_reserve_result
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_amount numeric;
    a credit.available_result;
    l credit.line;
    v_code text;
BEGIN
    v_amount := credit._money(amount, 'amount', 'positive');
    a := credit.get_available(wholesaler_id, retailer_id);
    IF a.code = 'ok' THEN
        SELECT * INTO l FROM credit.line x
         WHERE x.wholesaler_id = can_reserve.wholesaler_id AND x.retailer_id = can_reserve.retailer_id;
    END IF;
    v_code := CASE WHEN a.code <> 'ok' THEN a.code
                   ELSE coalesce(credit._refusal(l, v_amount, a.available), 'ok') END;
    RETURN (v_code, v_code = 'ok', a.available, greatest(v_amount - a.available, 0))::credit.can_reserve_result;
END
$$;
REVOKE ALL ON FUNCTION credit.can_reserve(text, text, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.can_reserve(text, text, numeric) TO credit_app;
