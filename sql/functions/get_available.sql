SET ROLE credit_owner;

-- Reads the line's totals without locking it: O(1) in its history. The
-- figures come from credit._line_now, which PostgreSQL inlines here; a
-- SECURITY DEFINER helper (such as credit._reserved_now, which the views
-- need) would be planned on every call and cost more than half of this read
-- (BENCHMARKS.md).
CREATE OR REPLACE FUNCTION credit.get_available(wholesaler_id text, retailer_id text)
RETURNS credit.available_result
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r credit.available_result;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    SELECT 'ok', v.credit_limit, v.reserved, l.outstanding, v.credit_limit - v.reserved - l.outstanding,
           l.status::text, l.currency, v.past_due, l.oldest_unpaid_due,
           CASE WHEN l.limit_valid_until > now() THEN l.limit_valid_until END
      INTO r
      FROM credit.line l,
           LATERAL credit._line_now(l) v
     WHERE l.wholesaler_id = get_available.wholesaler_id AND l.retailer_id = get_available.retailer_id;
    IF NOT FOUND THEN
        RETURN ROW('line_not_found', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::credit.available_result;
    END IF;
    RETURN r;
END
$$;
REVOKE ALL ON FUNCTION credit.get_available(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.get_available(text, text) TO credit_app;
