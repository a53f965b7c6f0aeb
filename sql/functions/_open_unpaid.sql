SET ROLE credit_owner;

-- What the line's open items due before due_before leave unpaid (NULL: none):
-- the figure the overdue policy compares with max_overdue_amount
-- (credit._overdue). It reads the line's open items, never its history.
CREATE OR REPLACE FUNCTION credit._open_unpaid(line_id bigint, due_before date) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT sum(o.unpaid) FROM credit.open_item o WHERE o.line_id = _open_unpaid.line_id AND o.due_date < due_before
$$;
REVOKE ALL ON FUNCTION credit._open_unpaid(bigint, date) FROM PUBLIC;
