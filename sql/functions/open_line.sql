SET ROLE credit_owner;

-- Opens the line of (wholesaler_id, retailer_id). Opening it again with the
-- same terms is a replay; with other terms, exists_with_different_terms (use
-- set_credit_limit to change a limit).
CREATE OR REPLACE FUNCTION credit.open_line(
    wholesaler_id text, retailer_id text, credit_limit numeric,
    currency text DEFAULT 'INR', payment_terms_days integer DEFAULT 30)
RETURNS credit.open_line_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_limit numeric;
    l credit.line;
    v_reserved numeric;
    v_limit_now numeric;
    v_same boolean;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    v_limit := credit._money(credit_limit, 'credit_limit', 'non_negative');
    IF currency IS NULL OR NOT EXISTS (SELECT FROM credit.currency c WHERE c.code = open_line.currency) THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('currency must be an ISO 4217 code such as INR, got %L', currency);
    END IF;
    IF payment_terms_days IS NULL OR payment_terms_days NOT BETWEEN 0 AND 365 THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('payment_terms_days must be between 0 and 365, got %s', coalesce(payment_terms_days::text, 'NULL'));
    END IF;

    -- Opening a line another transaction is opening waits for it: bounded too.
    IF current_setting('credit.lock_timeout', true) <> '' THEN
        PERFORM credit._apply_lock_timeout();
    END IF;
    INSERT INTO credit.line (wholesaler_id, retailer_id, credit_limit, currency, payment_terms_days)
    VALUES (wholesaler_id, retailer_id, v_limit, currency, payment_terms_days)
    ON CONFLICT ON CONSTRAINT line_wholesaler_id_retailer_id_key DO NOTHING
    RETURNING * INTO l;
    IF l.id IS NOT NULL THEN
        INSERT INTO credit.line_event (line_id, kind, new_limit) VALUES (l.id, 'opened', v_limit);
        PERFORM credit._event(l.wholesaler_id, l.retailer_id, 'line_opened', NULL, v_limit, v_limit, jsonb_build_object(
            'currency', l.currency, 'payment_terms_days', l.payment_terms_days));
        RETURN ('ok', l.id, v_limit, 0, 0, v_limit, l.status, false)::credit.open_line_result;
    END IF;

    -- A replay that wrote nothing would commit without waiting for a
    -- synchronous standby: it could answer ok for a line the standby has not
    -- received (the first call's wait was cancelled). A row lock is written to
    -- the WAL, so this commit waits like the first call's did and its answer
    -- proves the line durable; every other replay takes the line's lock, which
    -- does the same. KEY SHARE blocks no call (they take NO KEY UPDATE).
    SELECT * INTO l FROM credit.line x
     WHERE x.wholesaler_id = open_line.wholesaler_id AND x.retailer_id = open_line.retailer_id
       FOR KEY SHARE;
    v_reserved := credit._reserved_now(l);
    -- Terms compare with the permanent limit; figures use the limit in force.
    v_limit_now := credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until);
    v_same := l.credit_limit = v_limit AND l.currency = open_line.currency
              AND l.payment_terms_days = open_line.payment_terms_days;
    RETURN (CASE WHEN v_same THEN 'ok' ELSE 'exists_with_different_terms' END,
            l.id, v_limit_now, v_reserved, l.outstanding, v_limit_now - v_reserved - l.outstanding,
            l.status, v_same)::credit.open_line_result;
END
$$;
REVOKE ALL ON FUNCTION credit.open_line(text, text, numeric, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.open_line(text, text, numeric, text, integer) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.open_line(text, text, numeric, text, integer) IS $doc$Opens the credit line of a wholesaler and a retailer, with a limit, a currency and payment terms. Opening a
line that exists with the same terms is a replay (ok, replayed = true, its current figures); with other
terms it is exists_with_different_terms and nothing changes (set_credit_limit changes a limit).
Arguments:
  wholesaler_id, retailer_id: the line.
  credit_limit: the permanent limit: zero or more, at most 10^15, at most 2 decimal places.
  currency: an ISO 4217 code (credit.currency lists them); the line's amounts are in it.
  payment_terms_days: days from a conversion to the DEBIT's default due date, 0 to 365.
Codes: ok, exists_with_different_terms
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same arguments.$doc$;
COMMENT ON TYPE credit.open_line_result IS $doc$The outcome of open_line: the line and its figures as they stand (for an existing line, with the limit in
force).$doc$;
COMMENT ON COLUMN credit.open_line_result.code IS $doc$ok, or exists_with_different_terms when the line exists with another limit, currency or terms.$doc$;
COMMENT ON COLUMN credit.open_line_result.line_id IS $doc$The line's id.$doc$;
COMMENT ON COLUMN credit.open_line_result.credit_limit IS $doc$The limit in force (a temporary limit until its end).$doc$;
COMMENT ON COLUMN credit.open_line_result.reserved IS $doc$The sum of the line's active holds not past their expiry.$doc$;
COMMENT ON COLUMN credit.open_line_result.outstanding IS $doc$What the retailer owes: DEBIT - CREDIT - REVERSAL + ADJUSTMENT.$doc$;
COMMENT ON COLUMN credit.open_line_result.available IS $doc$credit_limit - reserved - outstanding.$doc$;
COMMENT ON COLUMN credit.open_line_result.status IS $doc$active or blocked.$doc$;
COMMENT ON COLUMN credit.open_line_result.replayed IS $doc$true when the line existed with these terms: nothing was changed.$doc$;
