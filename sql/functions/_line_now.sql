SET ROLE credit_owner;

-- A line's figures as of now, for readers that hold no lock (get_available,
-- list_lines): the limit in force, reserved without holds already past their
-- expiry (next_expiry says whether any can be; see credit._reserved_now), and
-- past_due from the line's open items. O(1) in the line's history.
-- A set-returning SQL function called in FROM, neither SECURITY DEFINER nor
-- with a SET clause, so PostgreSQL inlines it into the caller's query: a call
-- that went through the function executor would be planned every time.
CREATE OR REPLACE FUNCTION credit._line_now(l credit.line)
RETURNS TABLE (credit_limit numeric, reserved numeric, past_due numeric)
LANGUAGE sql STABLE AS $$
    SELECT credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until),
           l.reserved - CASE WHEN l.next_expiry <= now() THEN
               (SELECT coalesce(sum(h.amount - coalesce(h.converted_amount, 0)), 0) FROM credit.reservation h
                 WHERE h.line_id = l.id AND h.status = 'active' AND h.expires_at <= now())
               ELSE 0 END,
           (SELECT coalesce(sum(o.unpaid), 0.00) FROM credit.open_item o
             WHERE o.line_id = l.id AND o.due_date < current_date)
$$;
REVOKE ALL ON FUNCTION credit._line_now(credit.line) FROM PUBLIC;
