SET ROLE credit_owner;

-- The reservation fast path's rule, for reserve_credit and
-- reserve_credit_batch alike: the room a reservation may take from line l
-- without the careful path's checks, or NULL when the line must take the
-- careful path (lock, sweep, then replay, line_blocked, overdue and
-- insufficient_credit in that order).
--
-- The line must be active and before its next_expiry: the next moment it
-- changes by time alone, a hold expiring, a temporary limit ending, or an
-- unpaid item nearing its overdue policy's limit (_arrears_from; migration
-- 0003). Before that moment no item can be overdue, and the limit in force
-- (_active_limit) is the temporary limit when there is one, since
-- set_credit_limit brings next_expiry forward to its end and the sweep after
-- it removes it. So the clock and the overdue policy cost one comparison,
-- and the limit one coalesce (credit._fast_path_available).
--
-- Plain SQL over the line row, so that PostgreSQL inlines it into the
-- caller's statement: the same expression as if written there, with no call.
CREATE OR REPLACE FUNCTION credit._fast_path_room(l credit.line) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN l.status = 'active' AND (l.next_expiry IS NULL OR l.next_expiry > now())
                THEN credit._fast_path_available(l) END
$$;
REVOKE ALL ON FUNCTION credit._fast_path_room(credit.line) FROM PUBLIC;
