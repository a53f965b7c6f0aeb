SET ROLE credit_owner;

-- Posting, the one way an entry enters the ledger, for the single calls and
-- the bulk calls alike: appends entries of one type to locked lines, in item
-- order (so their ids follow it), then applies the allocation rule: what
-- adds to outstanding is an open item (credit._allocate_item) due on its due
-- date (a positive adjustment: today), entry by entry; the rest settles open
-- items (credit._allocate_credits; a reversal its own debit first, a
-- remittance the invoices it names). The line's outstanding moves by the
-- entry (credit._entry_delta) in the same UPDATE of the line as the
-- allocation's figures; a DEBIT converted from a hold also takes the hold out
-- of reserved there (unreserved). The caller holds the lines' row locks and
-- has found every key new (credit._replay). Each entry other than a DEBIT
-- writes its event after its allocation; a DEBIT's is its booking's.
-- Returns the new entries' ids in item order.
--
-- A single payment that names its invoices (record_payment's applies_to)
-- passes them as applies_to, kept on its entry, and their DEBITs as
-- first_items: one entry's, so arrays of one.
--
-- Set-wise, so that a bulk call pays for one INSERT rather than one per item
-- (each INSERT compiles the ledger's CHECK constraints anew); a single call
-- passes arrays of one, and takes statements of its own where a set-wise
-- plan costs more to start than the one row costs to write.
-- v1.2 added applies_to and first_items (migration 0007).
DROP FUNCTION IF EXISTS credit._post_entries(bigint[], text, text[], numeric[], text[], bigint[], date[], bigint[], numeric[]);
CREATE OR REPLACE FUNCTION credit._post_entries(
    line_ids bigint[], entry_type text, refs text[], amounts numeric[], memos text[] DEFAULT NULL,
    debit_ids bigint[] DEFAULT NULL, due_dates date[] DEFAULT NULL, reservation_ids bigint[] DEFAULT NULL,
    unreserved numeric[] DEFAULT NULL, applies_to text[] DEFAULT NULL, first_items bigint[] DEFAULT NULL)
RETURNS bigint[]
-- Generic plans, always: a single call passes arrays of one, for which a plan
-- of its own always looks cheaper than the cached one, so PostgreSQL planned
-- the set-wise payment's statements anew on every call (their planning cost
-- more than a payment's posting: BENCHMARKS.md).
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_ids bigint[];
    v_dues date[];
    v_delta numeric;
    v_mark bigint;
    v_owing bigint[];     -- bulk payments: the lines that have open items, ascending
    v_policy boolean;     -- a line has an overdue policy (or is refusing for overdue)
    v_left numeric[];     -- bulk payments: per item, what is left once it has settled what it can
    v_s_items integer[];  -- the settlements, in settling order: item, open item, amount
    v_s_entries bigint[];
    v_s_takes numeric[];
    v_x_ids bigint[];     -- bulk payments: each line after its UPDATE: id, keys, outstanding, available
    v_x_ws text[];
    v_x_rs text[];
    v_x_outs numeric[];
    v_x_avails numeric[];
    v_oldest date;        -- one entry: its line's oldest unpaid due date, if it paid an item in full,
    v_w text;             -- and its line after it
    v_r text;
    v_outstanding numeric;
    v_available numeric;
    v_settled jsonb;
    v_order_ref text;
    a record;             -- what credit._allocate_credits settled
BEGIN
    IF cardinality(line_ids) = 1 THEN  -- a single call: the same row, without the set-wise plan's start-up
        INSERT INTO credit.ledger_entry AS e (line_id, entry_type, amount, ref, memo, debit_id, due_date, reservation_id,
                                              applies_to)
        VALUES (line_ids[1], entry_type, amounts[1], refs[1], memos[1], debit_ids[1],
                CASE WHEN credit._entry_delta(entry_type, amounts[1]) > 0 THEN coalesce(due_dates[1], current_date) END,
                reservation_ids[1], _post_entries.applies_to)
        RETURNING ARRAY[e.id], ARRAY[e.due_date] INTO v_ids, v_dues;
    ELSE
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
    END IF;

    -- Money in favour of the retailer (a CREDIT, a REVERSAL, a negative
    -- ADJUSTMENT) settles open items by the allocation rule
    -- (credit._allocate_credits). A bulk call's payments are settled all at
    -- once, then a statement each for the lines and the events: item by item,
    -- about ten statements per payment, whose executor start-up and planning
    -- cost a batch more than the payments themselves (BENCHMARKS.md, "Orders
    -- as they happen"). A single call, and a bulk call on lines with an
    -- overdue policy (each payment's overdue_ended, if any, follows that
    -- payment), go one entry at a time, with statements for one row: planned
    -- for many, they cost a single entry more to start than to run.
    IF v_ids IS NOT NULL AND credit._entry_delta(entry_type, amounts[1]) < 0 THEN
        IF cardinality(v_ids) > 1 THEN
            -- Only payments come in bulk. Lines are read by their key, one
            -- probe each (OFFSET 0): for the planner a sequential scan of a
            -- small line table looks cheaper, and it reads every line.
            SELECT array_agg(DISTINCT x.id ORDER BY x.id) FILTER (WHERE x.oldest_unpaid_due IS NOT NULL),
                   coalesce(bool_or(x.overdue_grace_days IS NOT NULL OR x.overdue_since IS NOT NULL), false)
              INTO v_owing, v_policy
              FROM unnest(line_ids) AS t(id)
             CROSS JOIN LATERAL (SELECT * FROM credit.line y WHERE y.id = t.id OFFSET 0) x;
        END IF;
        IF cardinality(v_ids) > 1 AND NOT v_policy THEN
            a := credit._allocate_credits(line_ids, amounts, NULL, now(), coalesce(v_owing, '{}'));
            v_left := a.lefts;
            v_s_items := a.items;
            v_s_entries := a.entries;
            v_s_takes := a.takes;
            -- Each line once, whatever number of its payments the call holds.
            WITH d AS (
                SELECT t.line_id, sum(t.rest) AS rest, sum(credit._entry_delta('CREDIT', t.a)) AS delta
                  FROM unnest(line_ids, amounts, v_left) AS t(line_id, a, rest) GROUP BY t.line_id),
            x AS (
                UPDATE credit.line l
                   SET unapplied = l.unapplied + d.rest,
                       oldest_unpaid_due = CASE WHEN l.oldest_unpaid_due IS NOT NULL
                                                THEN (SELECT min(y.due_date) FROM credit.open_item y
                                                       WHERE y.line_id = l.id) END,
                       outstanding = l.outstanding + d.delta
                  FROM d
                 WHERE l.id = d.line_id
                RETURNING l.id, l.wholesaler_id, l.retailer_id, l.outstanding, credit._available(l) AS available)
            SELECT array_agg(x.id), array_agg(x.wholesaler_id), array_agg(x.retailer_id), array_agg(x.outstanding),
                   array_agg(x.available)
              INTO v_x_ids, v_x_ws, v_x_rs, v_x_outs, v_x_avails
              FROM x;
            -- The events (as the single entries' below, for all the items at
            -- once), with each line's figures as the item left them: the line
            -- as the UPDATE left it, less what the items after it on the line moved.
            INSERT INTO credit.event (wholesaler_id, retailer_id, kind, ref, amount, available, data)
            SELECT x.w, x.r, 'payment_recorded', t.ref, t.a, x.available + t.later,
                   jsonb_strip_nulls(jsonb_build_object('ledger_entry_id', t.id,
                                                        'outstanding', round(x.outstanding - t.later, 2)::text,
                                                        'reason', t.memo))
                   || jsonb_build_object('settlements', coalesce(s.list, '[]'))
              FROM (SELECT u.*, coalesce(sum(credit._entry_delta('CREDIT', u.a))
                                             OVER (PARTITION BY u.line_id ORDER BY u.i
                                                   ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0) AS later
                      FROM unnest(line_ids, v_ids, refs, amounts, memos) WITH ORDINALITY AS u(line_id, id, ref, a, memo, i)) t
              JOIN unnest(v_x_ids, v_x_ws, v_x_rs, v_x_outs, v_x_avails) AS x(id, w, r, outstanding, available)
                ON x.id = t.line_id
              LEFT JOIN (SELECT s.i, jsonb_agg(jsonb_build_object('ledger_entry_id', s.entry, 'entry_type', e.entry_type,
                                                                  'ref', e.ref, 'amount', round(s.take, 2)::text)
                                               ORDER BY s.k) AS list
                           FROM unnest(v_s_items, v_s_entries, v_s_takes) WITH ORDINALITY AS s(i, entry, take, k)
                           CROSS JOIN LATERAL (SELECT * FROM credit.ledger_entry y WHERE y.id = s.entry OFFSET 0) e
                          GROUP BY s.i) s ON s.i = t.i
             ORDER BY t.i;
            RETURN v_ids;
        END IF;

        FOR i IN 1 .. cardinality(v_ids) LOOP
            v_delta := credit._entry_delta(entry_type, amounts[i]);
            -- A reversal settles its own debit first, a remittance the invoices it names.
            a := credit._allocate_credits(ARRAY[line_ids[i]], ARRAY[-v_delta],
                                          CASE WHEN debit_ids[i] IS NOT NULL THEN ARRAY[debit_ids[i]]
                                               WHEN cardinality(v_ids) = 1 THEN first_items END, now());
            IF a.paid_in_full THEN
                v_oldest := (SELECT min(y.due_date) FROM credit.open_item y WHERE y.line_id = line_ids[i]);
            END IF;
            UPDATE credit.line l
               SET unapplied = l.unapplied + a.lefts[1],
                   oldest_unpaid_due = CASE WHEN a.paid_in_full THEN v_oldest ELSE l.oldest_unpaid_due END,
                   outstanding = l.outstanding + v_delta
             WHERE l.id = line_ids[i]
            RETURNING l.wholesaler_id, l.retailer_id, l.outstanding, credit._available(l),
                      l.overdue_grace_days IS NOT NULL OR l.overdue_since IS NOT NULL
                 INTO v_w, v_r, v_outstanding, v_available, v_policy;
            v_settled := NULL;
            IF a.entries IS NOT NULL THEN
                SELECT jsonb_agg(jsonb_build_object('ledger_entry_id', s.entry, 'entry_type', e.entry_type,
                                                    'ref', e.ref, 'amount', round(s.take, 2)::text) ORDER BY s.k)
                  INTO v_settled
                  FROM unnest(a.entries, a.takes) WITH ORDINALITY AS s(entry, take, k)
                 CROSS JOIN LATERAL (SELECT * FROM credit.ledger_entry y WHERE y.id = s.entry OFFSET 0) e;
            END IF;
            IF debit_ids[i] IS NOT NULL THEN  -- a reversal names the order of the debit it reverses
                v_order_ref := (SELECT d.ref FROM credit.ledger_entry d WHERE d.id = debit_ids[i]);
            ELSE
                v_order_ref := NULL;
            END IF;
            -- The entry's event (credit._entry_event's, with plain values).
            INSERT INTO credit.event (wholesaler_id, retailer_id, kind, ref, amount, available, data)
            VALUES (v_w, v_r,
                    CASE entry_type WHEN 'CREDIT' THEN 'payment_recorded' WHEN 'REVERSAL' THEN 'debit_reversed'
                                    ELSE 'balance_adjusted' END,
                    refs[i], amounts[i], v_available,
                    jsonb_strip_nulls(jsonb_build_object(
                        'ledger_entry_id', v_ids[i], 'outstanding', round(v_outstanding, 2)::text, 'reason', memos[i],
                        'applies_to', _post_entries.applies_to, 'order_ref', v_order_ref))
                    || jsonb_build_object('settlements', coalesce(v_settled, '[]')));
            IF v_policy THEN  -- the line's overdue_ended, if the entry ended its refusals
                PERFORM credit._overdue_event(line_ids[i]);
            END IF;
        END LOOP;
        RETURN v_ids;
    END IF;

    -- What adds to outstanding (a DEBIT, a positive ADJUSTMENT) is an open item
    -- (credit._allocate_item), item by item.
    FOR i IN 1 .. coalesce(cardinality(v_ids), 0) LOOP
        v_delta := credit._entry_delta(entry_type, amounts[i]);
        IF entry_type <> 'DEBIT' THEN  -- the settlements this entry makes come after this one
            SELECT coalesce(max(s.id), 0) INTO v_mark FROM credit.settlement s;
        END IF;
        PERFORM credit._allocate_item(line_ids[i], v_ids[i], v_dues[i], v_delta, now(), v_delta,
                                      -coalesce(unreserved[i], 0));
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
