-- Helpers whose return type or arguments change, which CREATE OR REPLACE
-- cannot do: each is dropped and created anew here, in one transaction, so
-- that the functions still loaded, which call them, never find one missing
-- (OPERATIONS.md, upgrading). Each as its file creates it; the reload of the
-- function files after the migrations changes nothing here.
-- - credit._replay_entry becomes a set-returning function, read as a table
--   so that PostgreSQL inlines it (sql/functions/_replay_entry.sql); it
--   calls credit._replay, created first.
-- - credit._allocate_item and credit._allocate_credit take posting's moves of
--   the line's totals, so that posting an entry updates its line once
--   (sql/functions/_post_entries.sql). Calls with the old arguments mean the
--   same under the new ones.
-- On a fresh install the functions they call come later, with the function
-- files: their bodies are checked then (check_function_bodies, as pg_dump).

SET ROLE credit_owner;
SET check_function_bodies = off;

DROP FUNCTION IF EXISTS credit._replay_entry(credit.line, text, text, numeric);
DROP FUNCTION IF EXISTS credit._allocate_item(bigint, bigint, date, numeric, timestamptz);
DROP FUNCTION IF EXISTS credit._allocate_credit(bigint, numeric, bigint, timestamptz);

CREATE OR REPLACE FUNCTION credit._replay(earlier_amount numeric, amount numeric) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN earlier_amount = amount THEN 'ok'
                WHEN earlier_amount IS NOT NULL THEN 'exists_with_different_amount' END
$$;
REVOKE ALL ON FUNCTION credit._replay(numeric, numeric) FROM PUBLIC;

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

CREATE OR REPLACE FUNCTION credit._allocate_item(
    line_id bigint, entry_id bigint, due_date date, amount numeric, at timestamptz DEFAULT now(),
    outstanding_delta numeric DEFAULT 0, reserved_delta numeric DEFAULT 0)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_used numeric;
BEGIN
    SELECT least(l.unapplied, amount) INTO v_used FROM credit.line l WHERE l.id = _allocate_item.line_id;
    IF v_used > 0 THEN
        INSERT INTO credit.settlement (line_id, item_id, amount, created_at)
        VALUES (line_id, entry_id, v_used, at);
    END IF;
    IF v_used < amount THEN
        INSERT INTO credit.open_item (line_id, due_date, entry_id, unpaid)
        VALUES (line_id, due_date, entry_id, amount - v_used);
        -- An unpaid item may bring the line's overdue policy closer: see _arrears_from.
        UPDATE credit.line l
           SET unapplied = l.unapplied - v_used,
               oldest_unpaid_due = least(l.oldest_unpaid_due, _allocate_item.due_date),
               next_expiry = least(l.next_expiry, credit._arrears_from(_allocate_item.due_date, l.overdue_grace_days)),
               outstanding = l.outstanding + outstanding_delta, reserved = l.reserved + reserved_delta
         WHERE l.id = _allocate_item.line_id;
    ELSE
        UPDATE credit.line l
           SET unapplied = l.unapplied - v_used,
               outstanding = l.outstanding + outstanding_delta, reserved = l.reserved + reserved_delta
         WHERE l.id = _allocate_item.line_id;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION credit._allocate_item(bigint, bigint, date, numeric, timestamptz, numeric, numeric) FROM PUBLIC;

CREATE OR REPLACE FUNCTION credit._allocate_credit(
    line_id bigint, amount numeric, first_item bigint DEFAULT NULL, at timestamptz DEFAULT now(),
    outstanding_delta numeric DEFAULT 0)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_left numeric := amount;
    v_take numeric;
    o credit.open_item;
BEGIN
    FOR o IN
        SELECT * FROM credit.open_item x
         WHERE x.line_id = _allocate_credit.line_id AND x.entry_id = first_item
           AND x.due_date = (SELECT e.due_date FROM credit.ledger_entry e WHERE e.id = first_item)
        UNION ALL
        (SELECT * FROM credit.open_item x
          WHERE x.line_id = _allocate_credit.line_id AND x.entry_id IS DISTINCT FROM first_item
          ORDER BY x.due_date, x.entry_id)
    LOOP
        v_take := least(o.unpaid, v_left);
        IF v_take = o.unpaid THEN
            DELETE FROM credit.open_item x
             WHERE x.line_id = o.line_id AND x.due_date = o.due_date AND x.entry_id = o.entry_id;
        ELSE
            UPDATE credit.open_item x SET unpaid = x.unpaid - v_take
             WHERE x.line_id = o.line_id AND x.due_date = o.due_date AND x.entry_id = o.entry_id;
        END IF;
        INSERT INTO credit.settlement (line_id, item_id, amount, created_at)
        VALUES (o.line_id, o.entry_id, v_take, at);
        v_left := v_left - v_take;
        EXIT WHEN v_left = 0;
    END LOOP;
    UPDATE credit.line l
       SET unapplied = l.unapplied + v_left,
           oldest_unpaid_due = (SELECT min(x.due_date) FROM credit.open_item x
                                 WHERE x.line_id = _allocate_credit.line_id),
           outstanding = l.outstanding + outstanding_delta
     WHERE l.id = _allocate_credit.line_id;
END
$$;
REVOKE ALL ON FUNCTION credit._allocate_credit(bigint, numeric, bigint, timestamptz, numeric) FROM PUBLIC;

RESET check_function_bodies;
RESET ROLE;
