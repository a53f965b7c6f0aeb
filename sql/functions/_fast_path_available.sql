SET ROLE credit_owner;

-- What line l has available while the reservation fast path applies to it
-- (credit._fast_path_room): the limit in force is then the temporary limit
-- when there is one. reserve_credit reads it back after its UPDATE, without
-- testing again what the UPDATE's condition tested. Plain SQL: inlined.
CREATE OR REPLACE FUNCTION credit._fast_path_available(l credit.line) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT coalesce(l.temp_limit, l.credit_limit) - l.reserved - l.outstanding
$$;
REVOKE ALL ON FUNCTION credit._fast_path_available(credit.line) FROM PUBLIC;
