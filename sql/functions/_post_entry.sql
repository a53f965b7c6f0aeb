SET ROLE credit_owner;

-- Appends a ledger entry to a locked line, moves its outstanding total (DEBIT
-- and ADJUSTMENT, signed, add; CREDIT and REVERSAL subtract) and applies the
-- allocation rule: a positive adjustment is an open item due today, the rest
-- settle open items (a reversal its own debit first); then writes the
-- entry's event with the settlements it made, and the overdue event if it
-- ended (or began) the line's refusals. The caller has checked that the key
-- is new (_replay_entry).
CREATE OR REPLACE FUNCTION credit._post_entry(
    l credit.line, entry_type text, ref text, amount numeric, memo text, debit_id bigint)
RETURNS credit.entry_result
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_delta numeric := CASE WHEN entry_type IN ('CREDIT', 'REVERSAL') THEN -amount ELSE amount END;
    v_due date := CASE WHEN v_delta > 0 THEN current_date END;
    v_mark bigint;
BEGIN
    SELECT coalesce(max(s.id), 0) INTO v_mark FROM credit.settlement s;
    INSERT INTO credit.ledger_entry (line_id, entry_type, amount, ref, memo, debit_id, due_date)
    VALUES (l.id, entry_type, amount, ref, memo, debit_id, v_due)
    RETURNING id INTO v_id;
    UPDATE credit.line x SET outstanding = x.outstanding + v_delta WHERE x.id = l.id;
    IF v_delta > 0 THEN
        PERFORM credit._allocate_item(l.id, v_id, v_due, v_delta);
    ELSE
        PERFORM credit._allocate_credit(l.id, -v_delta, debit_id);
    END IF;
    PERFORM credit._event(l.wholesaler_id, l.retailer_id, CASE entry_type WHEN 'CREDIT' THEN 'payment_recorded'
                                                WHEN 'REVERSAL' THEN 'debit_reversed' ELSE 'balance_adjusted' END,
        ref, amount, credit._available(l) - v_delta, jsonb_strip_nulls(jsonb_build_object(
            'ledger_entry_id', v_id, 'outstanding', (l.outstanding + v_delta)::text, 'due_date', v_due,
            'reason', memo, 'order_ref', (SELECT d.ref FROM credit.ledger_entry d WHERE d.id = _post_entry.debit_id)))
        || jsonb_build_object('settlements', coalesce(credit._settlements(l.id, v_mark), '[]')));
    IF l.overdue_grace_days IS NOT NULL OR l.overdue_since IS NOT NULL THEN
        PERFORM credit._overdue_event(l.id);
    END IF;
    RETURN ('ok', v_id, l.outstanding + v_delta, credit._available(l) - v_delta,
            false)::credit.entry_result;
END
$$;
REVOKE ALL ON FUNCTION credit._post_entry(credit.line, text, text, numeric, text, bigint) FROM PUBLIC;
