SET ROLE credit_owner;

-- Does the line's overdue policy refuse new reservations now? Unpaid items
-- whose due_date + grace_days lies before today count; the policy refuses when
-- they exceed max_overdue_amount. It reads the line row, and the line's open
-- items only when its oldest unpaid item is already past the grace period
-- (settled items are not open items): never its history. It turns true by the
-- passing of days alone.
CREATE OR REPLACE FUNCTION credit._overdue(l credit.line) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT l.overdue_grace_days IS NOT NULL
       AND l.oldest_unpaid_due < current_date - l.overdue_grace_days
       AND (SELECT sum(o.unpaid) FROM credit.open_item o
             WHERE o.line_id = l.id AND o.due_date < current_date - l.overdue_grace_days) > l.max_overdue_amount
$$;
REVOKE ALL ON FUNCTION credit._overdue(credit.line) FROM PUBLIC;
