SET ROLE credit_owner;

-- The unpaid amount of a line's items due before today (SPEC: past_due), read
-- from its open items only. SECURITY DEFINER because views call it for
-- readers without table privileges.
CREATE OR REPLACE FUNCTION credit._past_due(line_id bigint) RETURNS numeric
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(sum(o.unpaid), 0.00) FROM credit.open_item o
     WHERE o.line_id = _past_due.line_id AND o.due_date < current_date
$$;
REVOKE ALL ON FUNCTION credit._past_due(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit._past_due(bigint) TO credit_auditor;
