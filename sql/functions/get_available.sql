SET ROLE credit_owner;

-- Reads the line's totals without locking it: O(1) in its history (past_due
-- reads the line's open items, which settled items leave).
CREATE OR REPLACE FUNCTION credit.get_available(wholesaler_id text, retailer_id text)
RETURNS credit.available_result
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r credit.available_result;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    SELECT 'ok', v.credit_limit, v.reserved, l.outstanding, v.credit_limit - v.reserved - l.outstanding,
           l.status::text, l.currency, credit._past_due(l.id), l.oldest_unpaid_due,
           CASE WHEN l.limit_valid_until > now() THEN l.limit_valid_until END
      INTO r
      FROM credit.line l,
           LATERAL (SELECT credit._reserved_now(l) AS reserved,
                           credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until) AS credit_limit) v
     WHERE l.wholesaler_id = get_available.wholesaler_id AND l.retailer_id = get_available.retailer_id;
    IF NOT FOUND THEN
        RETURN ROW('line_not_found', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::credit.available_result;
    END IF;
    RETURN r;
END
$$;
REVOKE ALL ON FUNCTION credit.get_available(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.get_available(text, text) TO credit_app;
