SET ROLE credit_owner;

-- A payment: a CREDIT entry. Overpayment is allowed and makes outstanding negative.
CREATE OR REPLACE FUNCTION credit.record_payment(
    wholesaler_id text, retailer_id text, payment_ref text, amount numeric)
RETURNS credit.entry_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_amount numeric;
    l credit.line;
    r credit.entry_result;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    PERFORM credit._require_id(payment_ref, 'payment_ref');
    v_amount := credit._money(amount, 'amount', 'positive');

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, false)::credit.entry_result;
    END IF;
    SELECT * INTO r FROM credit._replay_entry(l, 'CREDIT', payment_ref, v_amount);
    IF r.code IS NOT NULL THEN
        RETURN r;
    END IF;
    RETURN credit._post_entry(l, 'CREDIT', payment_ref, v_amount, NULL, NULL);
END
$$;
REVOKE ALL ON FUNCTION credit.record_payment(text, text, text, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.record_payment(text, text, text, numeric) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.record_payment(text, text, text, numeric) IS $doc$Records a payment: a CREDIT entry that lowers outstanding and settles the line's open items, oldest due
date first (ties: the older entry); money beyond every open item waits as unapplied credit and settles
later items as they appear. Overpayment is allowed: outstanding goes negative.
Arguments:
  wholesaler_id, retailer_id: the line.
  payment_ref: the payment: an idempotency key, unique among the line's payments for ever.
  amount: the amount paid: greater than zero, at most 10^15, at most 2 decimal places.
Codes: ok, line_not_found, exists_with_different_amount
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same payment_ref.$doc$;
COMMENT ON TYPE credit.entry_result IS $doc$The outcome of a ledger call (record_payment, reverse_debit, adjust_balance; record_payment_batch's rows
carry the same columns after item).$doc$;
COMMENT ON COLUMN credit.entry_result.code IS $doc$ok, or why nothing was written.$doc$;
COMMENT ON COLUMN credit.entry_result.ledger_entry_id IS $doc$The entry written (the original entry on a replay or exists_with_different_amount); NULL when refused.$doc$;
COMMENT ON COLUMN credit.entry_result.outstanding IS $doc$The line's outstanding after the call; NULL for line_not_found.$doc$;
COMMENT ON COLUMN credit.entry_result.available IS $doc$The line's available after the call; NULL for line_not_found.$doc$;
COMMENT ON COLUMN credit.entry_result.replayed IS $doc$true when the key was used before with this amount: nothing changed.$doc$;
