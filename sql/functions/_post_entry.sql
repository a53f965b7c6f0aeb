SET ROLE credit_owner;

-- A single ledger call's posting (credit._post_entries, for one entry) and
-- its result: the entry, and the line's outstanding and available after it.
-- The caller has checked that the key is new (credit._replay_entry).
CREATE OR REPLACE FUNCTION credit._post_entry(
    l credit.line, entry_type text, ref text, amount numeric, memo text, debit_id bigint)
RETURNS credit.entry_result
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[] := credit._post_entries(ARRAY[l.id], entry_type, ARRAY[ref], ARRAY[amount], ARRAY[memo],
                                           ARRAY[debit_id]);
    v_delta numeric := credit._entry_delta(entry_type, amount);
BEGIN
    RETURN ('ok', v_ids[1], l.outstanding + v_delta, credit._available(l) - v_delta, false)::credit.entry_result;
END
$$;
REVOKE ALL ON FUNCTION credit._post_entry(credit.line, text, text, numeric, text, bigint) FROM PUBLIC;
