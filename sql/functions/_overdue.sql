SET ROLE credit_owner;

-- Does the line's overdue policy refuse new reservations now? Unpaid items
-- whose due_date + grace_days lies before today count; the policy refuses when
-- they exceed max_overdue_amount. It reads the line row, and the line's open
-- items only when its oldest unpaid item is already past the grace period
-- (settled items are not open items): never its history. It turns true by the
-- passing of days alone.
--
-- The open items' sum is a function of its own (credit._open_unpaid): a
-- subquery here would keep PostgreSQL from inlining this function into its
-- callers, and a SQL function that is not inlined is parsed and planned again
-- in every transaction that calls it, policy or not. Inlined, the tests on
-- the line row come first and the sum runs only when they pass.
CREATE OR REPLACE FUNCTION credit._overdue(l credit.line) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT l.overdue_grace_days IS NOT NULL
       AND l.oldest_unpaid_due < current_date - l.overdue_grace_days
       AND credit._open_unpaid(l.id, current_date - l.overdue_grace_days) > l.max_overdue_amount
$$;
REVOKE ALL ON FUNCTION credit._overdue(credit.line) FROM PUBLIC;
