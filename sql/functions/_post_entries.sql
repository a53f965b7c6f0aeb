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
-- after its allocation (credit._entry_event; a payment's is written here, see
-- below); a DEBIT's is its booking's. Returns the new entries' ids in item
-- order.
--
-- A single payment that names its invoices (record_payment's applies_to)
-- passes them as applies_to, kept on its entry, and their DEBITs as
-- first_items, which it settles first: one entry's, so arrays of one.
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
    v_owing bigint[];     -- payments: the lines that have open items, ascending
    v_policy boolean;     -- payments: a line has an overdue policy (or is refusing for overdue)
    v_order integer[];    -- payments: the items on owing lines, by line, then item
    v_left numeric[];     -- payments: per item, what is left once it has settled what it can
    v_k integer := 1;
    v_i integer;
    v_unpaid numeric;
    v_take numeric;
    v_s_items integer[];  -- payments: the settlements, in settling order: item, open item, amount
    v_s_entries bigint[];
    v_s_takes numeric[];
    v_paid_lines bigint[];  -- payments: the open items settled in full
    v_paid_dues date[];
    v_paid_entries bigint[];
    v_part_lines bigint[];  -- payments: the open items settled in part, and what they still owe
    v_part_dues date[];
    v_part_entries bigint[];
    v_part_unpaid numeric[];
    v_line bigint;
    v_x_ids bigint[];     -- payments: each line after its UPDATE: id, keys, outstanding, available
    v_x_ws text[];
    v_x_rs text[];
    v_x_outs numeric[];
    v_x_avails numeric[];
    v_oldest date;        -- a single payment: its line's oldest unpaid due date, if it paid an item in full
    v_w text;             -- and its line after it
    v_r text;
    v_outstanding numeric;
    v_available numeric;
    v_settled jsonb;
    o credit.open_item;
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

    -- Payments that name no invoices (record_payment without applies_to,
    -- record_payment_batch) are posted set-wise: the allocation rule for every
    -- item at once, then a statement each for the settled open items, the
    -- settlements, the lines and the events. Item by item, the loop below
    -- runs about ten statements per payment (allocation, line UPDATE, the
    -- event and its reads), and their executor start-up and planning cost a
    -- batch more than the payments themselves (BENCHMARKS.md, "Orders as
    -- they happen"). A batch on lines with an overdue policy stays item by
    -- item: each payment's overdue_ended, if any, follows that payment.
    IF entry_type = 'CREDIT' AND (first_items IS NULL OR cardinality(v_ids) = 1) AND v_ids IS NOT NULL THEN
        IF cardinality(v_ids) = 1 THEN
            -- One payment: its line is looked at for open items (none: an empty
            -- read) and for an overdue policy (the UPDATE's RETURNING) anyway.
            v_owing := line_ids;
            v_order := ARRAY[1];
            v_policy := false;
            v_left := amounts;
            -- A remittance settles the invoices it names first, in its order
            -- (credit._allocate_credit's first loop, the same query).
            IF first_items IS NOT NULL THEN
                FOR o IN
                    SELECT x.* FROM unnest(first_items) WITH ORDINALITY AS f(id, i)
                     CROSS JOIN LATERAL (SELECT y.* FROM credit.ledger_entry e
                                           JOIN credit.open_item y
                                             ON y.line_id = line_ids[1] AND y.due_date = e.due_date AND y.entry_id = e.id
                                          WHERE e.id = f.id OFFSET 0) x
                     ORDER BY f.i
                LOOP
                    v_take := least(o.unpaid, v_left[1]);
                    v_s_items := v_s_items || 1;
                    v_s_entries := v_s_entries || o.entry_id;
                    v_s_takes := v_s_takes || v_take;
                    v_left[1] := v_left[1] - v_take;
                    IF v_take = o.unpaid THEN
                        v_paid_lines := v_paid_lines || o.line_id;
                        v_paid_dues := v_paid_dues || o.due_date;
                        v_paid_entries := v_paid_entries || o.entry_id;
                    ELSE
                        v_part_lines := v_part_lines || o.line_id;
                        v_part_dues := v_part_dues || o.due_date;
                        v_part_entries := v_part_entries || o.entry_id;
                        v_part_unpaid := v_part_unpaid || (o.unpaid - v_take);
                    END IF;
                    EXIT WHEN v_left[1] = 0;
                END LOOP;
                IF v_left[1] = 0 THEN
                    v_owing := NULL;
                END IF;
            END IF;
        ELSE
            -- Lines are read by their key, one probe each (OFFSET 0): for the
            -- planner a sequential scan of a small line table looks cheaper,
            -- and it reads every line.
            SELECT array_agg(DISTINCT x.id ORDER BY x.id) FILTER (WHERE x.oldest_unpaid_due IS NOT NULL),
                   coalesce(bool_or(x.overdue_grace_days IS NOT NULL OR x.overdue_since IS NOT NULL), false)
              INTO v_owing, v_policy
              FROM unnest(line_ids) AS t(id)
             CROSS JOIN LATERAL (SELECT * FROM credit.line y WHERE y.id = t.id OFFSET 0) x;
            IF v_owing IS NOT NULL AND NOT v_policy THEN
                SELECT array_agg(t.i::integer ORDER BY t.line_id, t.i) INTO v_order
                  FROM unnest(line_ids) WITH ORDINALITY AS t(line_id, i) WHERE t.line_id = ANY (v_owing);
            END IF;
        END IF;
        IF NOT v_policy THEN
            v_left := coalesce(v_left, amounts);
            -- Oldest due first, ties by the older entry, each line's payments in
            -- item order: a merge of the line's open items (read only as far as
            -- its money goes) with its payments.
            FOREACH v_line IN ARRAY coalesce(v_owing, '{}') LOOP
                FOR o IN SELECT * FROM credit.open_item x
                          WHERE x.line_id = v_line AND x.entry_id <> ALL (coalesce(first_items, '{}'))
                          ORDER BY x.due_date, x.entry_id
                LOOP
                    v_unpaid := o.unpaid;
                    WHILE v_unpaid > 0 AND v_k <= cardinality(v_order) AND line_ids[v_order[v_k]] = v_line LOOP
                        v_i := v_order[v_k];
                        v_take := least(v_unpaid, v_left[v_i]);
                        v_s_items := v_s_items || v_i;
                        v_s_entries := v_s_entries || o.entry_id;
                        v_s_takes := v_s_takes || v_take;
                        v_left[v_i] := v_left[v_i] - v_take;
                        v_unpaid := v_unpaid - v_take;
                        IF v_left[v_i] = 0 THEN
                            v_k := v_k + 1;
                        END IF;
                    END LOOP;
                    IF v_unpaid = 0 THEN
                        v_paid_lines := v_paid_lines || o.line_id;
                        v_paid_dues := v_paid_dues || o.due_date;
                        v_paid_entries := v_paid_entries || o.entry_id;
                    ELSIF v_unpaid < o.unpaid THEN
                        v_part_lines := v_part_lines || o.line_id;
                        v_part_dues := v_part_dues || o.due_date;
                        v_part_entries := v_part_entries || o.entry_id;
                        v_part_unpaid := v_part_unpaid || v_unpaid;
                    END IF;
                    EXIT WHEN v_k > cardinality(v_order) OR line_ids[v_order[v_k]] <> v_line;
                END LOOP;
                -- What this line's payments did not spend waits as unapplied credit.
                WHILE v_k <= cardinality(v_order) AND line_ids[v_order[v_k]] = v_line LOOP
                    v_k := v_k + 1;
                END LOOP;
            END LOOP;
            -- x.line_id = ANY: the paying lines' items, by the key's first column,
            -- rather than a join the planner may make by reading every open item.
            IF v_paid_entries IS NOT NULL THEN
                DELETE FROM credit.open_item x
                 USING unnest(v_paid_lines, v_paid_dues, v_paid_entries) AS p(line_id, due_date, entry_id)
                 WHERE x.line_id = ANY (v_paid_lines)
                   AND x.line_id = p.line_id AND x.due_date = p.due_date AND x.entry_id = p.entry_id;
            END IF;
            IF v_part_entries IS NOT NULL THEN
                UPDATE credit.open_item x SET unpaid = p.unpaid
                  FROM unnest(v_part_lines, v_part_dues, v_part_entries, v_part_unpaid)
                       AS p(line_id, due_date, entry_id, unpaid)
                 WHERE x.line_id = ANY (v_part_lines)
                   AND x.line_id = p.line_id AND x.due_date = p.due_date AND x.entry_id = p.entry_id;
            END IF;
            IF v_s_items IS NOT NULL THEN
                -- In item order, as item by item posting would number them.
                INSERT INTO credit.settlement (line_id, item_id, amount, created_at)
                SELECT line_ids[s.i], s.entry, s.take, now()
                  FROM unnest(v_s_items, v_s_entries, v_s_takes) WITH ORDINALITY AS s(i, entry, take, k)
                 ORDER BY s.i, s.k;
            END IF;

            IF cardinality(v_ids) = 1 THEN
                -- The line by its key, and the event with plain values: the
                -- statements below, planned for many lines, cost a single
                -- payment more to start than to run.
                IF v_paid_entries IS NOT NULL THEN
                    v_oldest := (SELECT min(y.due_date) FROM credit.open_item y WHERE y.line_id = line_ids[1]);
                END IF;
                UPDATE credit.line l
                   SET unapplied = l.unapplied + v_left[1],
                       oldest_unpaid_due = CASE WHEN v_paid_entries IS NULL THEN l.oldest_unpaid_due ELSE v_oldest END,
                       outstanding = l.outstanding + credit._entry_delta('CREDIT', amounts[1])
                 WHERE l.id = line_ids[1]
                RETURNING l.wholesaler_id, l.retailer_id, l.outstanding, credit._available(l),
                          l.overdue_grace_days IS NOT NULL OR l.overdue_since IS NOT NULL
                     INTO v_w, v_r, v_outstanding, v_available, v_policy;
                IF v_s_items IS NOT NULL THEN
                    SELECT jsonb_agg(jsonb_build_object('ledger_entry_id', s.entry, 'entry_type', e.entry_type,
                                                        'ref', e.ref, 'amount', round(s.take, 2)::text) ORDER BY s.k)
                      INTO v_settled
                      FROM unnest(v_s_entries, v_s_takes) WITH ORDINALITY AS s(entry, take, k)
                     CROSS JOIN LATERAL (SELECT * FROM credit.ledger_entry y WHERE y.id = s.entry OFFSET 0) e;
                END IF;
                -- credit._entry_event's event; the data as the statement for many below builds it.
                INSERT INTO credit.event (wholesaler_id, retailer_id, kind, ref, amount, available, data)
                VALUES (v_w, v_r, 'payment_recorded', refs[1], amounts[1], v_available,
                        jsonb_strip_nulls(jsonb_build_object('ledger_entry_id', v_ids[1],
                                                             'outstanding', round(v_outstanding, 2)::text,
                                                             'reason', memos[1], 'applies_to', _post_entries.applies_to))
                        || jsonb_build_object('settlements', coalesce(v_settled, '[]')));
                IF v_policy THEN  -- the line's overdue_ended, if the payment ended its refusals
                    PERFORM credit._overdue_event(line_ids[1]);
                END IF;
                RETURN v_ids;
            END IF;

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
            -- The events (credit._entry_event's, for all the items at once), with
            -- each line's figures as the item left them: the line as the UPDATE
            -- left it, less what the items after it on the line moved.
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
    END IF;

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
