SET ROLE credit_owner;

-- A single ledger call's posting (credit._post_entries, for one entry) and
-- its result: the entry, and the line's outstanding and available after it.
-- The caller has checked that the key is new (credit._replay_entry). A
-- remittance passes the refs it named (applies_to) and their DEBITs
-- (first_items, settled first).
-- v1.2 added first_items and applies_to (migration 0007).
DROP FUNCTION IF EXISTS credit._post_entry(credit.line, text, text, numeric, text, bigint);
CREATE OR REPLACE FUNCTION credit._post_entry(
    l credit.line, entry_type text, ref text, amount numeric, memo text, debit_id bigint,
    first_items bigint[] DEFAULT NULL, applies_to text[] DEFAULT NULL)
RETURNS credit.entry_result
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[] := credit._post_entries(ARRAY[l.id], entry_type, ARRAY[ref], ARRAY[amount], ARRAY[memo],
                                           ARRAY[debit_id], NULL, NULL, NULL, applies_to, first_items);
    v_delta numeric := credit._entry_delta(entry_type, amount);
BEGIN
    RETURN ('ok', v_ids[1], l.outstanding + v_delta, credit._available(l) - v_delta, false)::credit.entry_result;
END
$$;
REVOKE ALL ON FUNCTION credit._post_entry(credit.line, text, text, numeric, text, bigint, bigint[], text[]) FROM PUBLIC;
