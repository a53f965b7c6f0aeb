SET ROLE credit_owner;

-- A signed correction of outstanding: positive raises the debt, negative lowers it.
CREATE OR REPLACE FUNCTION credit.adjust_balance(
    wholesaler_id text, retailer_id text, adjustment_ref text, amount numeric, reason text)
RETURNS credit.entry_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_amount numeric;
    l credit.line;
    r credit.entry_result;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    PERFORM credit._require_id(adjustment_ref, 'adjustment_ref');
    v_amount := credit._money(amount, 'amount', 'non_zero');
    PERFORM credit._require_text(reason, 'reason');

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, false)::credit.entry_result;
    END IF;
    SELECT * INTO r FROM credit._replay_entry(l, 'ADJUSTMENT', adjustment_ref, v_amount);
    IF r.code IS NOT NULL THEN
        RETURN r;
    END IF;
    RETURN credit._post_entry(l, 'ADJUSTMENT', adjustment_ref, v_amount, reason, NULL);
END
$$;
REVOKE ALL ON FUNCTION credit.adjust_balance(text, text, text, numeric, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.adjust_balance(text, text, text, numeric, text) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.adjust_balance(text, text, text, numeric, text) IS $doc$A signed correction of what the retailer owes: an ADJUSTMENT entry. A positive amount raises outstanding
and is an open item due today (a fee); a negative one lowers it and settles open items as a payment would.
Arguments:
  wholesaler_id, retailer_id: the line.
  adjustment_ref: the adjustment: an idempotency key, unique among the line's adjustments for ever.
  amount: the correction: not zero, at most 10^15 in size, at most 2 decimal places.
  reason: why, kept on the entry.
Codes: ok, line_not_found, exists_with_different_amount
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same adjustment_ref.$doc$;
