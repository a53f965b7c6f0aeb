SET ROLE credit_owner;

-- Brings a locked line up to date with the clock: marks up to max_count
-- (NULL: all) of its expired holds 'expired' and takes what remained of
-- them (amount less what was shipped) out of its reserved total, as released, ends a temporary limit whose time is up, and sets
-- next_expiry to the next moment the line changes by time alone (see
-- migration 0003). The caller holds the line's row lock.
CREATE OR REPLACE FUNCTION credit._sweep_line(line_id bigint, max_count integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
    v_amount numeric;
BEGIN
    WITH gone AS (
        UPDATE credit.reservation r
           SET status = 'expired', expired_at = now(),
               released_amount = r.amount - coalesce(r.converted_amount, 0)
         WHERE r.line_id = _sweep_line.line_id
           AND r.order_ref IN (SELECT x.order_ref FROM credit.reservation x
                                WHERE x.line_id = _sweep_line.line_id AND x.status = 'active'
                                  AND x.expires_at <= now()
                                ORDER BY x.expires_at LIMIT max_count)
        RETURNING r.released_amount)
    SELECT count(*)::integer, coalesce(sum(gone.released_amount), 0)
      INTO v_count, v_amount FROM gone;

    UPDATE credit.line l
       SET reserved = l.reserved - v_amount,
           temp_limit = CASE WHEN l.limit_valid_until > now() THEN l.temp_limit END,
           limit_valid_until = CASE WHEN l.limit_valid_until > now() THEN l.limit_valid_until END,
           next_expiry = least((SELECT min(x.expires_at) FROM credit.reservation x
                                 WHERE x.line_id = _sweep_line.line_id AND x.status = 'active'
                                   AND x.expires_at IS NOT NULL),
                               CASE WHEN l.limit_valid_until > now() THEN l.limit_valid_until END,
                               credit._arrears_from(l.oldest_unpaid_due, l.overdue_grace_days))
     WHERE l.id = _sweep_line.line_id;
    RETURN v_count;
END
$$;
REVOKE ALL ON FUNCTION credit._sweep_line(bigint, integer) FROM PUBLIC;
