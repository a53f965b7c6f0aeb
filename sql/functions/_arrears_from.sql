SET ROLE credit_owner;

-- From when an unpaid item may be in arrears under a line's overdue policy,
-- which is when the line must leave reserve_credit's fast path:
-- a moment no later than the first day, in any time zone, on which an item
-- due on due_date counts as overdue (due_date + grace_days < current_date).
-- That day starts at 10:00 UTC at the earliest (UTC+14); midnight UTC of
-- due_date + grace_days is earlier still. The careful path decides exactly.
CREATE OR REPLACE FUNCTION credit._arrears_from(due_date date, grace_days integer) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT (due_date + grace_days)::timestamp AT TIME ZONE 'UTC'
$$;
REVOKE ALL ON FUNCTION credit._arrears_from(date, integer) FROM PUBLIC;
