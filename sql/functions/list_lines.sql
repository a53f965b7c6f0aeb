SET ROLE credit_owner;

-- A page of a wholesaler's lines, ascending retailer_id after
-- after_retailer_id (keyset paging on the line key). Figures as get_available
-- gives them (credit._line_now): the limit in force, reserved as of now,
-- past_due from open items.
CREATE OR REPLACE FUNCTION credit.list_lines(
    wholesaler_id text, after_retailer_id text DEFAULT NULL, max_rows integer DEFAULT 100)
RETURNS TABLE (retailer_id text, line_id bigint, status text, currency text, credit_limit numeric,
               reserved numeric, outstanding numeric, available numeric, past_due numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    IF after_retailer_id IS NOT NULL THEN
        PERFORM credit._require_id(after_retailer_id, 'after_retailer_id');
    END IF;
    IF max_rows IS NULL OR max_rows NOT BETWEEN 1 AND 1000 THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('max_rows must be between 1 and 1000, got %s', coalesce(max_rows::text, 'NULL'));
    END IF;
    RETURN QUERY
    SELECT l.retailer_id, l.id, l.status::text, l.currency, round(v.credit_limit, 2), round(v.reserved, 2),
           round(l.outstanding, 2), round(v.credit_limit - v.reserved - l.outstanding, 2),
           round(v.past_due, 2)
      FROM credit.line l,
           LATERAL credit._line_now(l) v
     WHERE l.wholesaler_id = list_lines.wholesaler_id AND l.retailer_id > coalesce(after_retailer_id, '')
     ORDER BY l.retailer_id
     LIMIT max_rows;
END
$$;
REVOKE ALL ON FUNCTION credit.list_lines(text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.list_lines(text, text, integer) TO credit_app, credit_auditor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.list_lines(text, text, integer) IS $doc$A page of a wholesaler's lines, ascending retailer_id after after_retailer_id (keyset paging), with the
figures get_available gives. A wholesaler with no lines gets no rows.
Arguments:
  wholesaler_id: the wholesaler.
  after_retailer_id: the last retailer_id of the previous page; NULL: from the first.
  max_rows: the page size, 1 to 1,000.
Columns:
  retailer_id: the retailer: the page order and the paging key.
  line_id: the line's id.
  status: active or blocked.
  currency: the line's ISO 4217 currency.
  credit_limit: the limit in force (a temporary limit until its end).
  reserved: the sum of the line's active holds not past their expiry.
  outstanding: what the retailer owes.
  available: credit_limit - reserved - outstanding.
  past_due: the unpaid amount of items due before today.
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.$doc$;
