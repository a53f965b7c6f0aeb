SET ROLE credit_owner;

-- Posting, the one way an entry enters the ledger, for the single calls and
-- the bulk calls alike: appends entries of one type to locked lines, in item
-- order (so their ids follow it), moves each line's outstanding by its
-- entries (credit._entry_delta), once per line, and applies the
-- allocation rule entry by entry, in item order: what adds to outstanding is
-- an open item (credit._allocate_item) due on its due date (a positive
-- adjustment: today), the rest settles open items (credit._allocate_credit;
-- a reversal its own debit first). A DEBIT converted from a hold also takes
-- the hold out of the line's reserved total (unreserved), in the same UPDATE.
-- The caller holds the lines' row locks and has found every key new
-- (credit._replay). Returns the new entries' ids in item order.
--
-- Set-wise, so that a bulk call pays for one INSERT rather than one per item
-- (each INSERT compiles the ledger's CHECK constraints anew) and one UPDATE
-- per line; a single call passes arrays of one.
CREATE OR REPLACE FUNCTION credit._post_entries(
    line_ids bigint[], entry_type text, refs text[], amounts numeric[], memos text[] DEFAULT NULL,
    debit_ids bigint[] DEFAULT NULL, due_dates date[] DEFAULT NULL, reservation_ids bigint[] DEFAULT NULL,
    unreserved numeric[] DEFAULT NULL)
RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
    v_dues date[];
    v_line bigint;
    v_delta numeric;
    v_unreserved numeric;
BEGIN
    WITH ins AS (
        INSERT INTO credit.ledger_entry AS e (line_id, entry_type, amount, ref, memo, debit_id, due_date, reservation_id)
        SELECT t.line_id, entry_type, t.a, t.ref, t.memo, t.debit_id,
               CASE WHEN credit._entry_delta(entry_type, t.a) > 0 THEN coalesce(t.due, current_date) END, t.hold
          FROM unnest(line_ids, refs, amounts, memos, debit_ids, due_dates, reservation_ids)
               WITH ORDINALITY AS t(line_id, ref, a, memo, debit_id, due, hold, i)
         ORDER BY t.i
        RETURNING e.id, e.line_id, e.ref, e.due_date)
    SELECT array_agg(ins.id ORDER BY t.i), array_agg(ins.due_date ORDER BY t.i) INTO v_ids, v_dues
      FROM unnest(line_ids, refs) WITH ORDINALITY AS t(line_id, ref, i)
      JOIN ins ON ins.line_id = t.line_id AND ins.ref = t.ref;

    -- One UPDATE per line, each found by its key: an UPDATE ... FROM the
    -- items could be planned as a scan of every line.
    FOR v_line, v_delta, v_unreserved IN
        SELECT t.line_id, sum(credit._entry_delta(entry_type, t.a)), coalesce(sum(t.unreserved), 0)
          FROM unnest(line_ids, amounts, unreserved) AS t(line_id, a, unreserved)
         GROUP BY t.line_id
    LOOP
        UPDATE credit.line x SET outstanding = x.outstanding + v_delta, reserved = x.reserved - v_unreserved
         WHERE x.id = v_line;
    END LOOP;

    FOR i IN 1 .. coalesce(cardinality(v_ids), 0) LOOP
        v_delta := credit._entry_delta(entry_type, amounts[i]);
        IF v_delta > 0 THEN
            PERFORM credit._allocate_item(line_ids[i], v_ids[i], v_dues[i], v_delta);
        ELSE
            PERFORM credit._allocate_credit(line_ids[i], -v_delta, debit_ids[i]);
        END IF;
    END LOOP;
    RETURN v_ids;
END
$$;
REVOKE ALL ON FUNCTION credit._post_entries(bigint[], text, text[], numeric[], text[], bigint[], date[], bigint[], numeric[])
    FROM PUBLIC;
