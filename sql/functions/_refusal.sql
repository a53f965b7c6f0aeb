SET ROLE credit_owner;

-- Why a reservation of amount may not be held on line l, or NULL: the
-- refusals in the order reserve_credit checks them (line_blocked, overdue,
-- insufficient_credit), after no such line and a replay. reserve_credit's
-- careful path decides with it under the line's lock, can_reserve without a
-- lock; available is the line's available as the caller reads it. Plain
-- SQL: inlined into the caller.
CREATE OR REPLACE FUNCTION credit._refusal(l credit.line, amount numeric, available numeric) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN l.status = 'blocked' THEN 'line_blocked'
                WHEN credit._overdue(l) THEN 'overdue'
                WHEN amount > available THEN 'insufficient_credit' END
$$;
REVOKE ALL ON FUNCTION credit._refusal(credit.line, numeric, numeric) FROM PUBLIC;
