SET ROLE credit_owner;

-- Reduces a DEBIT (returned goods), named by its ref: the order_ref of a
-- final conversion or the shipment_ref of a shipment (the argument keeps its
-- v1 name). All reversals of one debit together may not exceed it.
CREATE OR REPLACE FUNCTION credit.reverse_debit(
    wholesaler_id text, retailer_id text, order_ref text, reversal_ref text, amount numeric, reason text)
RETURNS credit.entry_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_amount numeric;
    l credit.line;
    r credit.entry_result;
    d credit.ledger_entry;
    v_reversed numeric;
BEGIN
    PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
    PERFORM credit._require_id(retailer_id, 'retailer_id');
    PERFORM credit._require_id(order_ref, 'order_ref');
    PERFORM credit._require_id(reversal_ref, 'reversal_ref');
    v_amount := credit._money(amount, 'amount', 'positive');
    PERFORM credit._require_text(reason, 'reason');

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, false)::credit.entry_result;
    END IF;
    SELECT * INTO r FROM credit._replay_entry(l, 'REVERSAL', reversal_ref, v_amount);
    IF r.code IS NOT NULL THEN
        RETURN r;
    END IF;

    SELECT * INTO d FROM credit.ledger_entry e
     WHERE e.line_id = l.id AND e.entry_type = 'DEBIT' AND e.ref = reverse_debit.order_ref;
    IF d.id IS NULL THEN
        RETURN ('debit_not_found', NULL, l.outstanding, credit._available(l),
                false)::credit.entry_result;
    END IF;
    SELECT coalesce(sum(e.amount), 0) INTO v_reversed FROM credit.ledger_entry e WHERE e.debit_id = d.id;
    IF v_reversed + v_amount > d.amount THEN
        RETURN ('exceeds_debit_amount', NULL, l.outstanding, credit._available(l),
                false)::credit.entry_result;
    END IF;
    RETURN credit._post_entry(l, 'REVERSAL', reversal_ref, v_amount, reason, d.id);
END
$$;
REVOKE ALL ON FUNCTION credit.reverse_debit(text, text, text, text, numeric, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.reverse_debit(text, text, text, text, numeric, text) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.reverse_debit(text, text, text, text, numeric, text) IS $doc$Reduces a DEBIT (goods returned): a REVERSAL entry that lowers outstanding and settles that DEBIT first,
then other open items as a payment would. All reversals of one DEBIT together may not exceed it.
Arguments:
  wholesaler_id, retailer_id: the line.
  order_ref: the DEBIT to reduce, by its ref: the order_ref of a final conversion or a shipment_ref.
  reversal_ref: the reversal: an idempotency key, unique among the line's reversals for ever.
  amount: the amount to reverse: greater than zero, at most 2 decimal places.
  reason: why, kept on the entry.
Codes: ok, line_not_found, exists_with_different_amount, debit_not_found, exceeds_debit_amount
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same reversal_ref.$doc$;
