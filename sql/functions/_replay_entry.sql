SET ROLE credit_owner;

-- The outcome of a ledger call whose key was used before on this line: a
-- replay when the amount matches, else a conflict. NULL code: a new key.
CREATE OR REPLACE FUNCTION credit._replay_entry(l credit.line, entry_type text, ref text, amount numeric)
RETURNS credit.entry_result
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN e.amount = _replay_entry.amount THEN 'ok' ELSE 'exists_with_different_amount' END,
           e.id, l.outstanding, credit._available(l), e.amount = _replay_entry.amount
      FROM credit.ledger_entry e
     WHERE e.line_id = l.id AND e.entry_type = _replay_entry.entry_type AND e.ref = _replay_entry.ref
$$;
REVOKE ALL ON FUNCTION credit._replay_entry(credit.line, text, text, numeric) FROM PUBLIC;
