SET ROLE credit_owner;

-- Reads the line's totals without locking it: O(1) in its history. The
-- figures come from credit._line_now, which PostgreSQL inlines here; a
-- SECURITY DEFINER helper (such as credit._reserved_now, which the views
-- need) would be planned on every call and cost more than half of this read
-- (BENCHMARKS.md).
CREATE OR REPLACE FUNCTION credit.get_available(wholesaler_id text, retailer_id text)
RETURNS credit.available_result
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r credit.available_result;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    SELECT 'ok', v.credit_limit, v.reserved, l.outstanding, v.credit_limit - v.reserved - l.outstanding,
           l.status::text, l.currency, v.past_due, l.oldest_unpaid_due,
           CASE WHEN l.limit_valid_until > now() THEN l.limit_valid_until END
      INTO r
      FROM credit.line l,
           LATERAL credit._line_now(l) v
     WHERE l.wholesaler_id = get_available.wholesaler_id AND l.retailer_id = get_available.retailer_id;
    IF NOT FOUND THEN
        RETURN ROW('line_not_found', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::credit.available_result;
    END IF;
    RETURN r;
END
$$;
REVOKE ALL ON FUNCTION credit.get_available(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.get_available(text, text) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.get_available(text, text) IS $doc$A line's figures now: limit in force, reserved, outstanding, available, status, and what is past due. A
read: it takes no lock, writes nothing, and costs O(1) in the line's history. A hold past its expiry no
longer counts, even before a sweep marks it expired.
Arguments:
  wholesaler_id, retailer_id: the line.
Codes: ok, line_not_found
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.$doc$;
COMMENT ON TYPE credit.available_result IS $doc$A line's figures, as get_available reads them. NULL columns on line_not_found.$doc$;
COMMENT ON COLUMN credit.available_result.code IS $doc$ok or line_not_found.$doc$;
COMMENT ON COLUMN credit.available_result.credit_limit IS $doc$The limit in force: a temporary limit until its end (limit_valid_until), else the permanent one.$doc$;
COMMENT ON COLUMN credit.available_result.reserved IS $doc$The sum of the line's active holds not past their expiry.$doc$;
COMMENT ON COLUMN credit.available_result.outstanding IS $doc$What the retailer owes: DEBIT - CREDIT - REVERSAL + ADJUSTMENT; negative after an overpayment.$doc$;
COMMENT ON COLUMN credit.available_result.available IS $doc$credit_limit - reserved - outstanding: what a reservation may take now.$doc$;
COMMENT ON COLUMN credit.available_result.status IS $doc$active or blocked.$doc$;
COMMENT ON COLUMN credit.available_result.currency IS $doc$The line's ISO 4217 currency.$doc$;
COMMENT ON COLUMN credit.available_result.past_due IS $doc$The unpaid amount of items due before today, after the allocation rule (RECEIVABLES.md).$doc$;
COMMENT ON COLUMN credit.available_result.oldest_unpaid_due_date IS $doc$The due date of the oldest unpaid item; NULL when nothing is unpaid.$doc$;
COMMENT ON COLUMN credit.available_result.limit_valid_until IS $doc$When the temporary limit in force ends; NULL when the permanent limit is in force.$doc$;
