SET ROLE credit_owner;

-- The line's reserved total as of now (credit._line_now's), for the views:
-- SECURITY DEFINER because a view checks function privileges against its
-- reader, who has no access to the tables. The API's reads (get_available,
-- list_lines) call credit._line_now itself, which is inlined: through the
-- definer's SET search_path this cost more than half of get_available.
CREATE OR REPLACE FUNCTION credit._reserved_now(l credit.line) RETURNS numeric
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT n.reserved FROM credit._line_now(l) n
$$;
REVOKE ALL ON FUNCTION credit._reserved_now(credit.line) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._reserved_now(credit.line) TO credit_auditor, credit_monitor;
