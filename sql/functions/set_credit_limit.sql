SET ROLE credit_owner;

-- Changes a line's limit and keeps the change, with its reason, in line_event.
-- Lowering it below what is already reserved and owed is allowed: nothing
-- already held is taken back, new reservations are refused until there is room.
CREATE OR REPLACE FUNCTION credit.set_credit_limit(
    wholesaler_id text, retailer_id text, credit_limit numeric, reason text)
RETURNS credit.limit_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_limit numeric;
    l credit.line;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    v_limit := credit._money(credit_limit, 'credit_limit', 'non_negative');
    PERFORM credit._require_text(reason, 'reason');

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, NULL)::credit.limit_result;
    END IF;
    UPDATE credit.line x SET credit_limit = v_limit WHERE x.id = l.id;
    INSERT INTO credit.line_event (line_id, kind, old_limit, new_limit, reason)
    VALUES (l.id, 'limit_changed', l.credit_limit, v_limit, reason);
    RETURN ('ok', v_limit, l.reserved, l.outstanding, v_limit - l.reserved - l.outstanding)::credit.limit_result;
END
$$;
REVOKE ALL ON FUNCTION credit.set_credit_limit(text, text, numeric, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.set_credit_limit(text, text, numeric, text) TO credit_app;
