SET ROLE credit_owner;

-- Appends a ledger entry to a locked line, moves its outstanding total (DEBIT
-- and ADJUSTMENT, signed, add; CREDIT and REVERSAL subtract) and applies the
-- allocation rule: a positive adjustment is an open item due today, the rest
-- settle open items, first_items first (a reversal its own debit, a
-- remittance the DEBITs its applies_to names, kept on the entry). The caller
-- has checked that the key is new (_replay_entry).
-- v1.2 added first_items and applies_to (migration 0006).
DROP FUNCTION IF EXISTS credit._post_entry(credit.line, text, text, numeric, text, bigint);
CREATE OR REPLACE FUNCTION credit._post_entry(
    l credit.line, entry_type text, ref text, amount numeric, memo text, debit_id bigint,
    first_items bigint[] DEFAULT NULL, applies_to text[] DEFAULT NULL)
RETURNS credit.entry_result
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_delta numeric := CASE WHEN entry_type IN ('CREDIT', 'REVERSAL') THEN -amount ELSE amount END;
    v_due date := CASE WHEN v_delta > 0 THEN current_date END;
BEGIN
    INSERT INTO credit.ledger_entry (line_id, entry_type, amount, ref, memo, debit_id, due_date, applies_to)
    VALUES (l.id, entry_type, amount, ref, memo, debit_id, v_due, applies_to)
    RETURNING id INTO v_id;
    UPDATE credit.line x SET outstanding = x.outstanding + v_delta WHERE x.id = l.id;
    IF v_delta > 0 THEN
        PERFORM credit._allocate_item(l.id, v_id, v_due, v_delta);
    ELSE
        PERFORM credit._allocate_credit(l.id, -v_delta, first_items);
    END IF;
    RETURN ('ok', v_id, l.outstanding + v_delta, credit._available(l) - v_delta,
            false)::credit.entry_result;
END
$$;
REVOKE ALL ON FUNCTION credit._post_entry(credit.line, text, text, numeric, text, bigint, bigint[], text[]) FROM PUBLIC;
