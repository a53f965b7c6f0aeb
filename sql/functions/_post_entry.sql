SET ROLE credit_owner;

-- Appends a ledger entry to a locked line and moves its outstanding total:
-- DEBIT and ADJUSTMENT (signed) add, CREDIT and REVERSAL subtract. An entry
-- already posted under the same key is a replay (same amount) or a conflict.
CREATE OR REPLACE FUNCTION credit._post_entry(
    l credit.line, entry_type text, ref text, amount numeric, memo text, debit_id bigint)
RETURNS credit.entry_result
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_delta numeric := CASE WHEN entry_type IN ('CREDIT', 'REVERSAL') THEN -amount ELSE amount END;
BEGIN
    INSERT INTO credit.ledger_entry (line_id, entry_type, amount, ref, memo, debit_id)
    VALUES (l.id, entry_type, amount, ref, memo, debit_id)
    RETURNING id INTO v_id;
    UPDATE credit.line x SET outstanding = x.outstanding + v_delta WHERE x.id = l.id;
    RETURN ('ok', v_id, l.outstanding + v_delta, l.credit_limit - l.reserved - l.outstanding - v_delta,
            false)::credit.entry_result;
END
$$;
REVOKE ALL ON FUNCTION credit._post_entry(credit.line, text, text, numeric, text, bigint) FROM PUBLIC;
