SET ROLE credit_owner;

-- Locks the lines of a bulk call, each once, in ascending id order: any two
-- calls that share lines take them in the same order, so they cannot
-- deadlock over them (ORDER BY runs before the row locks are taken). Ids
-- without a line are skipped (their items get line_not_found). The wait is
-- bounded like _lock_line's, by the caller's lock_timeout clause.
CREATE OR REPLACE FUNCTION credit._lock_lines(wholesaler_ids text[], retailer_ids text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM FROM credit.line x
     WHERE (x.wholesaler_id, x.retailer_id) IN (SELECT * FROM unnest(wholesaler_ids, retailer_ids))
     ORDER BY x.id
       FOR NO KEY UPDATE;
END
$$;
REVOKE ALL ON FUNCTION credit._lock_lines(text[], text[]) FROM PUBLIC;
