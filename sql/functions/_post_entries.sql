SET ROLE credit_owner;

-- Posting, the one way an entry enters the ledger, for the single calls and
-- the bulk calls alike: appends entries of one type to locked lines, in item
-- order (so their ids follow it), then applies the allocation rule entry by
-- entry, in item order: what adds to outstanding is an open item
-- (credit._allocate_item) due on its due date (a positive adjustment:
-- today), the rest settles open items (credit._allocate_credit; a reversal
-- its own debit first). The line's outstanding moves by the entry
-- (credit._entry_delta) in the allocation's own UPDATE of the line; a DEBIT
-- converted from a hold also takes the hold out of reserved there
-- (unreserved). The caller holds the lines' row locks and has found every
-- key new (credit._replay). Each entry other than a DEBIT writes its event
-- after its allocation (credit._entry_event); a DEBIT's is its booking's.
-- Returns the new entries' ids in item order.
--
-- A single payment that names its invoices (record_payment's applies_to)
-- passes them as applies_to, kept on its entry, and their DEBITs as
-- first_items, which it settles first: one entry's, so arrays of one.
--
-- Set-wise, so that a bulk call pays for one INSERT rather than one per item
-- (each INSERT compiles the ledger's CHECK constraints anew); a single call
-- passes arrays of one.
-- v1.2 added applies_to and first_items (migration 0007).
DROP FUNCTION IF EXISTS credit._post_entries(bigint[], text, text[], numeric[], text[], bigint[], date[], bigint[], numeric[]);
CREATE OR REPLACE FUNCTION credit._post_entries(
    line_ids bigint[], entry_type text, refs text[], amounts numeric[], memos text[] DEFAULT NULL,
    debit_ids bigint[] DEFAULT NULL, due_dates date[] DEFAULT NULL, reservation_ids bigint[] DEFAULT NULL,
    unreserved numeric[] DEFAULT NULL, applies_to text[] DEFAULT NULL, first_items bigint[] DEFAULT NULL)
RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
    v_dues date[];
    v_delta numeric;
    v_mark bigint;
BEGIN
    -- Ids are drawn in item order, so ordering by id is ordering by item.
    WITH ins AS (
        INSERT INTO credit.ledger_entry AS e (line_id, entry_type, amount, ref, memo, debit_id, due_date, reservation_id,
                                              applies_to)
        SELECT t.line_id, entry_type, t.a, t.ref, t.memo, t.debit_id,
               CASE WHEN credit._entry_delta(entry_type, t.a) > 0 THEN coalesce(t.due, current_date) END, t.hold,
               _post_entries.applies_to
          FROM unnest(line_ids, refs, amounts, memos, debit_ids, due_dates, reservation_ids)
               WITH ORDINALITY AS t(line_id, ref, a, memo, debit_id, due, hold, i)
         ORDER BY t.i
        RETURNING e.id, e.due_date)
    SELECT array_agg(ins.id ORDER BY ins.id), array_agg(ins.due_date ORDER BY ins.id) INTO v_ids, v_dues FROM ins;

    FOR i IN 1 .. coalesce(cardinality(v_ids), 0) LOOP
        v_delta := credit._entry_delta(entry_type, amounts[i]);
        IF entry_type <> 'DEBIT' THEN  -- the settlements this entry makes come after this one
            SELECT coalesce(max(s.id), 0) INTO v_mark FROM credit.settlement s;
        END IF;
        IF v_delta > 0 THEN
            PERFORM credit._allocate_item(line_ids[i], v_ids[i], v_dues[i], v_delta, now(), v_delta,
                                          -coalesce(unreserved[i], 0));
        ELSE
            PERFORM credit._allocate_credit(line_ids[i], -v_delta, debit_ids[i], now(), v_delta,
                                            CASE WHEN debit_ids[i] IS NULL THEN first_items END);
        END IF;
        IF entry_type <> 'DEBIT' THEN
            PERFORM credit._entry_event(line_ids[i], entry_type, v_ids[i], refs[i], amounts[i], v_dues[i], memos[i],
                                        debit_ids[i], applies_to, v_mark);
        END IF;
    END LOOP;
    RETURN v_ids;
END
$$;
REVOKE ALL ON FUNCTION credit._post_entries(bigint[], text, text[], numeric[], text[], bigint[], date[], bigint[], numeric[],
                                            text[], bigint[]) FROM PUBLIC;
