SET ROLE credit_owner;

-- A signed correction of outstanding: positive raises the debt, negative lowers it.
CREATE OR REPLACE FUNCTION credit.adjust_balance(
    wholesaler_id text, retailer_id text, adjustment_ref text, amount numeric, reason text)
RETURNS credit.entry_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_amount numeric;
    l credit.line;
    r credit.entry_result;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    PERFORM credit._require_id(adjustment_ref, 'adjustment_ref');
    v_amount := credit._money(amount, 'amount', 'non_zero');
    PERFORM credit._require_text(reason, 'reason');

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, false)::credit.entry_result;
    END IF;
    SELECT * INTO r FROM credit._replay_entry(l, 'ADJUSTMENT', adjustment_ref, v_amount);
    IF r.code IS NOT NULL THEN
        RETURN r;
    END IF;
    RETURN credit._post_entry(l, 'ADJUSTMENT', adjustment_ref, v_amount, reason, NULL);
END
$$;
REVOKE ALL ON FUNCTION credit.adjust_balance(text, text, text, numeric, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.adjust_balance(text, text, text, numeric, text) TO credit_app;
