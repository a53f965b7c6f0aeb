SET ROLE credit_owner;

-- A payment: a CREDIT entry. Overpayment is allowed and makes outstanding negative.
--
-- A remittance names the invoices it pays: applies_to lists DEBIT refs (an
-- order_ref's final conversion or a shipment_ref), and the payment settles
-- each, in the order given, up to its unpaid amount while the money lasts;
-- what is left follows the allocation rule (oldest due first), then waits as
-- unapplied credit. Items already paid are skipped. A ref with no DEBIT on
-- the line is debit_not_found, and nothing is written. The list is kept on
-- the entry: a replay must name the same refs in the same order
-- (exists_with_different_terms otherwise). An empty list is no list.
-- v1.2 added applies_to (migration 0007).
DROP FUNCTION IF EXISTS credit.record_payment(text, text, text, numeric);
CREATE OR REPLACE FUNCTION credit.record_payment(
    wholesaler_id text, retailer_id text, payment_ref text, amount numeric, applies_to text[] DEFAULT NULL)
RETURNS credit.entry_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_amount numeric;
    v_refs text[] := CASE WHEN cardinality(applies_to) > 0 THEN applies_to END;
    v_items bigint[];
    v_ids bigint[];
    l credit.line;
    r credit.entry_result;
BEGIN
    -- One cheap test passes good input; the checks that name the argument run only when it fails.
    IF NOT coalesce(credit._id_ok(wholesaler_id) AND credit._id_ok(retailer_id) AND credit._id_ok(payment_ref)
                    AND credit._money_ok(amount, 'positive'), false) THEN
        PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
        PERFORM credit._require_id(retailer_id, 'retailer_id');
        PERFORM credit._require_id(payment_ref, 'payment_ref');
        PERFORM credit._money(amount, 'amount', 'positive');
    END IF;
    v_amount := round(amount, 2);
    IF v_refs IS NOT NULL THEN
        PERFORM credit._require_refs(v_refs, 'applies_to');
    END IF;

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, false)::credit.entry_result;
    END IF;
    SELECT * INTO r FROM credit._replay_entry(l, 'CREDIT', payment_ref, v_amount);
    -- The refs are compared only on a replay: as one condition with the code,
    -- the subquery would be planned anew on every call (its plan for a new
    -- key, whose entry id is NULL, always looks cheaper than a generic one).
    IF r.code IS NOT NULL THEN
        IF r.code = 'ok' AND (SELECT e.applies_to FROM credit.ledger_entry e WHERE e.id = r.ledger_entry_id)
                             IS DISTINCT FROM v_refs THEN
            RETURN ('exists_with_different_terms', r.ledger_entry_id, r.outstanding, r.available,
                    false)::credit.entry_result;
        END IF;
        RETURN r;
    END IF;

    IF v_refs IS NOT NULL THEN
        -- The DEBIT of each ref, in the order given; one probe of the ledger's key each.
        SELECT array_agg(d.id ORDER BY t.i) FILTER (WHERE d.id IS NOT NULL) INTO v_items
          FROM unnest(v_refs) WITH ORDINALITY AS t(ref, i)
          LEFT JOIN LATERAL (SELECT e.id FROM credit.ledger_entry e
                              WHERE e.line_id = l.id AND e.entry_type = 'DEBIT' AND e.ref = t.ref OFFSET 0) d ON true;
        IF cardinality(v_items) IS DISTINCT FROM cardinality(v_refs) THEN
            RETURN ('debit_not_found', NULL, l.outstanding, credit._available(l), false)::credit.entry_result;
        END IF;
    END IF;
    -- Posting, as credit._post_entry would call it, one PL/pgSQL level less for every payment.
    v_ids := credit._post_entries(ARRAY[l.id], 'CREDIT', ARRAY[payment_ref], ARRAY[v_amount], NULL, NULL, NULL, NULL,
                                  NULL, v_refs, v_items);
    RETURN ('ok', v_ids[1], l.outstanding - v_amount, credit._available(l) + v_amount, false)::credit.entry_result;
END
$$;
REVOKE ALL ON FUNCTION credit.record_payment(text, text, text, numeric, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.record_payment(text, text, text, numeric, text[]) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.record_payment(text, text, text, numeric, text[]) IS $doc$Records a payment: a CREDIT entry that lowers outstanding and settles the line's open items, oldest due
date first (ties: the older entry); money beyond every open item waits as unapplied credit and settles
later items as they appear. Overpayment is allowed: outstanding goes negative. A remittance names the
invoices it pays (applies_to): each is settled, in the order given, up to its unpaid amount while the
money lasts (those already paid are skipped), and only what is left follows the rule above. A ref with
no DEBIT on the line is debit_not_found, and nothing is written. A replay must name the same refs in the
same order: another amount is exists_with_different_amount, other refs exists_with_different_terms.
Arguments:
  wholesaler_id, retailer_id: the line.
  payment_ref: the payment: an idempotency key, unique among the line's payments for ever.
  amount: the amount paid: greater than zero, at most 10^15, at most 2 decimal places.
  applies_to: the DEBIT refs it pays (order_refs of final conversions, shipment_refs), in order: at most
    1,000, no NULLs, no repeats; NULL or empty: none named.
Codes: ok, line_not_found, debit_not_found, exists_with_different_amount, exists_with_different_terms
Raises:
  22023: an argument is invalid; the message names it (applies_to[3]), and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same payment_ref.$doc$;
COMMENT ON TYPE credit.entry_result IS $doc$The outcome of a ledger call (record_payment, reverse_debit, adjust_balance; record_payment_batch's rows
carry the same columns after item).$doc$;
COMMENT ON COLUMN credit.entry_result.code IS $doc$ok, or why nothing was written.$doc$;
COMMENT ON COLUMN credit.entry_result.ledger_entry_id IS $doc$The entry written (the original entry on a replay or exists_with_different_amount); NULL when refused.$doc$;
COMMENT ON COLUMN credit.entry_result.outstanding IS $doc$The line's outstanding after the call; NULL for line_not_found.$doc$;
COMMENT ON COLUMN credit.entry_result.available IS $doc$The line's available after the call; NULL for line_not_found.$doc$;
COMMENT ON COLUMN credit.entry_result.replayed IS $doc$true when the key was used before with this amount: nothing changed.$doc$;
