SET ROLE credit_owner;

-- A payment: a CREDIT entry. Overpayment is allowed and makes outstanding negative.
CREATE OR REPLACE FUNCTION credit.record_payment(
    wholesaler_id text, retailer_id text, payment_ref text, amount numeric)
RETURNS credit.entry_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_amount numeric;
    l credit.line;
    r credit.entry_result;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    PERFORM credit._require_id(payment_ref, 'payment_ref');
    v_amount := credit._money(amount, 'amount', 'positive');

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, false)::credit.entry_result;
    END IF;
    SELECT * INTO r FROM credit._replay_entry(l, 'CREDIT', payment_ref, v_amount);
    IF r.code IS NOT NULL THEN
        RETURN r;
    END IF;
    RETURN credit._post_entry(l, 'CREDIT', payment_ref, v_amount, NULL, NULL);
END
$$;
REVOKE ALL ON FUNCTION credit.record_payment(text, text, text, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.record_payment(text, text, text, numeric) TO credit_app;
