SET ROLE credit_owner;

-- Reads the line's totals without locking it: O(1) in its history. past_due
-- (the unpaid items due before today) reads the line's open items, which
-- settled items leave; it is written out here, not called, because a
-- SECURITY DEFINER helper costs a quarter of this read (BENCHMARKS.md). So is
-- reserved as of now (what credit._reserved_now computes for the views): the
-- call through a definer's SET search_path cost half of this read.
CREATE OR REPLACE FUNCTION credit.get_available(wholesaler_id text, retailer_id text)
RETURNS credit.available_result
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r credit.available_result;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    SELECT 'ok', v.credit_limit, v.reserved, l.outstanding, v.credit_limit - v.reserved - l.outstanding,
           l.status::text, l.currency, p.past_due, l.oldest_unpaid_due,
           CASE WHEN l.limit_valid_until > now() THEN l.limit_valid_until END
      INTO r
      FROM credit.line l,
           LATERAL (SELECT l.reserved - CASE WHEN l.next_expiry <= now() THEN
                               (SELECT coalesce(sum(h.amount), 0) FROM credit.reservation h
                                 WHERE h.line_id = l.id AND h.status = 'active' AND h.expires_at <= now())
                               ELSE 0 END AS reserved,
                           credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until) AS credit_limit) v,
           LATERAL (SELECT coalesce(sum(o.unpaid), 0.00) AS past_due FROM credit.open_item o
                     WHERE o.line_id = l.id AND o.due_date < current_date) p
     WHERE l.wholesaler_id = get_available.wholesaler_id AND l.retailer_id = get_available.retailer_id;
    IF NOT FOUND THEN
        RETURN ROW('line_not_found', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::credit.available_result;
    END IF;
    RETURN r;
END
$$;
REVOKE ALL ON FUNCTION credit.get_available(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.get_available(text, text) TO credit_app;
