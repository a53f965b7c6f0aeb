SET ROLE credit_owner;

-- The line's reserved total as of now, for readers that hold no lock: an
-- expired hold stops counting at once, before any sweep marks it. While
-- next_expiry is in the future nothing has expired and this costs nothing.
-- SECURITY DEFINER because the views call it, and a view checks function
-- privileges against its reader, who has no access to the tables. The API's
-- reads (get_available, list_lines) use credit._line_now instead, which is
-- inlined: through the definer's SET search_path this cost more than half of
-- get_available.
CREATE OR REPLACE FUNCTION credit._reserved_now(l credit.line) RETURNS numeric
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT l.reserved - CASE WHEN l.next_expiry <= now() THEN
        (SELECT coalesce(sum(r.amount - coalesce(r.converted_amount, 0)), 0) FROM credit.reservation r
          WHERE r.line_id = l.id AND r.status = 'active' AND r.expires_at <= now())
        ELSE 0 END
$$;
REVOKE ALL ON FUNCTION credit._reserved_now(credit.line) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._reserved_now(credit.line) TO credit_auditor, credit_monitor;
