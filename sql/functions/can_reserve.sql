SET ROLE credit_owner;

-- Would reserve_credit(amount) succeed now? The same refusals in the same
-- order (credit._refusal), but no lock and no write, so the answer can be
-- stale by the time the caller reserves.
CREATE OR REPLACE FUNCTION credit.can_reserve(wholesaler_id text, retailer_id text, amount numeric)
RETURNS credit.can_reserve_result
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_amount numeric;
    a credit.available_result;
    l credit.line;
    v_code text;
BEGIN
    v_amount := credit._money(amount, 'amount', 'positive');
    a := credit.get_available(wholesaler_id, retailer_id);
    IF a.code = 'ok' THEN
        SELECT * INTO l FROM credit.line x
         WHERE x.wholesaler_id = can_reserve.wholesaler_id AND x.retailer_id = can_reserve.retailer_id;
    END IF;
    v_code := CASE WHEN a.code <> 'ok' THEN a.code
                   ELSE coalesce(credit._refusal(l, v_amount, a.available), 'ok') END;
    RETURN (v_code, v_code = 'ok', a.available, greatest(v_amount - a.available, 0))::credit.can_reserve_result;
END
$$;
REVOKE ALL ON FUNCTION credit.can_reserve(text, text, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.can_reserve(text, text, numeric) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.can_reserve(text, text, numeric) IS $doc$Would reserve_credit of this amount succeed now? The same checks in the same order (line_blocked, overdue,
insufficient_credit), with no lock and no write, so the answer may be stale by the time the caller
reserves. A refusal here is not logged.
Arguments:
  wholesaler_id, retailer_id: the line.
  amount: the amount to test: greater than zero, at most 10^15, at most 2 decimal places.
Codes: ok, line_not_found, line_blocked, overdue, insufficient_credit
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.$doc$;
COMMENT ON TYPE credit.can_reserve_result IS $doc$The answer of can_reserve.$doc$;
COMMENT ON COLUMN credit.can_reserve_result.code IS $doc$ok, or the code reserve_credit would refuse with.$doc$;
COMMENT ON COLUMN credit.can_reserve_result.can_reserve IS $doc$true exactly when code is ok.$doc$;
COMMENT ON COLUMN credit.can_reserve_result.available IS $doc$The line's available now; NULL for line_not_found.$doc$;
COMMENT ON COLUMN credit.can_reserve_result.shortfall IS $doc$amount - available where that is positive, else 0.00; NULL for line_not_found.$doc$;
