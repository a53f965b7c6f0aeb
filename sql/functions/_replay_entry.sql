SET ROLE credit_owner;

-- The ledger calls' replay (credit._replay): the entry that a key names on a
-- line, by the ledger's unique key (line_id, entry_type, ref), and the
-- answer of a call of amount under it, with the line's figures as they
-- stand; no row when the key is new. The ledger calls read it as a table
-- (SELECT ... FROM), record_payment_batch once per item (LATERAL): a
-- set-returning SQL function, neither SECURITY DEFINER nor with a SET clause,
-- is inlined into that query and planned with it, once per session, where a
-- scalar call would be planned on every call. OFFSET 0 keeps it a probe of
-- the key per item, whatever the planner's statistics say.
CREATE OR REPLACE FUNCTION credit._replay_entry(l credit.line, entry_type text, ref text, amount numeric)
RETURNS SETOF credit.entry_result
LANGUAGE sql STABLE AS $$
    SELECT r.code, e.id, l.outstanding, credit._available(l), r.code = 'ok'
      FROM credit.ledger_entry e
     CROSS JOIN LATERAL (SELECT credit._replay(e.amount, _replay_entry.amount) AS code) r
     WHERE e.line_id = l.id AND e.entry_type = _replay_entry.entry_type AND e.ref = _replay_entry.ref
    OFFSET 0
$$;
REVOKE ALL ON FUNCTION credit._replay_entry(credit.line, text, text, numeric) FROM PUBLIC;
