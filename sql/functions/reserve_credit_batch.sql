SET ROLE credit_owner;

-- Many reservations in one call and one commit (SPEC "Bulk calls"): item i
-- gets exactly what reserve_credit would give it if the items ran one after
-- another in array order.
--
-- Fast path, the shape of reserve_credit's: every hold is written first, in
-- item order, by one INSERT; then every line of the batch is locked at once,
-- in ascending id order (so batches never deadlock with each other over
-- lines); then one UPDATE per line adds its items. The lines stay locked from
-- then to commit, so little runs in between: on a hot line, other batches
-- write their holds meanwhile. It applies when nothing is unusual: every key
-- is new and used once, every line exists, and each line's room under
-- reserve_credit's own fast-path rule (credit._fast_path_room) holds all of
-- its items. Then each item succeeds as its single call would, with the
-- line's available falling item by item.
--
-- Otherwise the speculative holds are dropped and, with every line already
-- locked in id order, the items run through reserve_credit itself, one after
-- another: replays, refusals (and their log rows), sweeps and overdue checks
-- come from the one implementation of those rules. The single calls find
-- their line locked by this transaction already.
--
-- The one wait that writing first allows: a key that another transaction is
-- inserting at this moment is waited for (its hold decides replay or not).
-- Two batches inserting shared order_refs in opposite orders can deadlock
-- there; PostgreSQL fails one (40P01) and the client retries it with the same
-- keys, which then replay.
CREATE OR REPLACE FUNCTION credit.reserve_credit_batch(
    wholesaler_ids text[], retailer_ids text[], order_refs text[], amounts numeric[],
    expires_in interval DEFAULT NULL)
RETURNS TABLE (item integer, code text, reservation_id bigint, status text, amount numeric,
               available numeric, shortfall numeric, replayed boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_n integer;
    v_expires_at timestamptz;
    v_lines bigint[];     -- per item: its line's id, NULL when there is no such line
    v_ids bigint[];       -- per item: the speculative hold's id, NULL when not inserted
    v_inserted integer;
    v_clean boolean;
    v_line_ids bigint[];  -- per locked line: id, its room before the batch, the batch's total
    v_before numeric[];
    v_totals numeric[];
    v_i integer;
    v_w text;
    v_r text;
    v_o text;
    v_a numeric;
BEGIN
    IF current_setting('credit.lock_timeout', true) <> '' THEN
        PERFORM credit._apply_lock_timeout();
    END IF;
    PERFORM credit._reserve_credit_batch_check(wholesaler_ids, retailer_ids, order_refs, amounts, expires_in);
    v_n := cardinality(wholesaler_ids);
    v_expires_at := now() + expires_in;

    v_lines := credit._line_ids(wholesaler_ids, retailer_ids);
    -- A plain INSERT in a block of its own: a key that exists, or comes twice,
    -- undoes the whole INSERT (unique_violation) and the items go one by one.
    -- One subtransaction per call costs less than ON CONFLICT's speculative
    -- insertion, which probes the key and confirms the row item by item.
    BEGIN
        WITH t AS MATERIALIZED (
            SELECT u.i, u.line_id, u.o, round(u.a, 2) AS a
              FROM unnest(v_lines, order_refs, amounts) WITH ORDINALITY AS u(line_id, o, a, i)),
        ins AS (
            INSERT INTO credit.reservation AS h (line_id, order_ref, amount, expires_at)
            SELECT t.line_id, t.o, t.a, v_expires_at FROM t WHERE t.line_id IS NOT NULL ORDER BY t.i
            RETURNING h.id, h.line_id, h.order_ref)
        SELECT array_agg(ins.id ORDER BY t.i), count(ins.id)::integer
          INTO v_ids, v_inserted
          FROM t LEFT JOIN ins ON ins.line_id = t.line_id AND ins.order_ref = t.o;
    EXCEPTION WHEN unique_violation THEN
        v_ids := NULL;
        v_inserted := 0;
    END;

    -- Every line of the batch, locked in ascending id order (ORDER BY runs
    -- before the row locks are taken), with the room reserve_credit's fast
    -- path would find on it (NULL: the careful path; so coalesce, since
    -- bool_and skips NULLs).
    WITH locked AS MATERIALIZED (
        SELECT x.id, credit._fast_path_room(x) AS room
          FROM credit.line x WHERE x.id = ANY (v_lines)
         ORDER BY x.id
           FOR NO KEY UPDATE),
    wanted AS (
        SELECT u.line_id, sum(u.a) AS total FROM unnest(v_lines, amounts) AS u(line_id, a) GROUP BY u.line_id)
    SELECT bool_and(coalesce(w.total <= l.room, false)), array_agg(l.id), array_agg(l.room), array_agg(w.total)
      INTO v_clean, v_line_ids, v_before, v_totals
      FROM locked l JOIN wanted w ON w.line_id = l.id;

    IF v_inserted = v_n AND v_clean THEN
        UPDATE credit.line x
           SET reserved = x.reserved + u.total, next_expiry = least(x.next_expiry, v_expires_at)
          FROM unnest(v_line_ids, v_totals) AS u(id, total)
         WHERE x.id = u.id;
        -- The items' hold_reserved events, in item order: credit._event's
        -- insert, made for all items at once.
        INSERT INTO credit.event (wholesaler_id, retailer_id, kind, ref, amount, available, data)
        SELECT t.w, t.r, 'hold_reserved', t.o, t.a, t.avail,
               CASE WHEN v_expires_at IS NOT NULL THEN jsonb_build_object('expires_at', v_expires_at) END
          FROM (SELECT u.w, u.r, u.o, u.i, round(u.a, 2) AS a,
                       b.avail - sum(round(u.a, 2)) OVER (PARTITION BY u.line_id ORDER BY u.i) AS avail
                  FROM unnest(wholesaler_ids, retailer_ids, v_lines, order_refs, amounts)
                       WITH ORDINALITY AS u(w, r, line_id, o, a, i)
                  JOIN unnest(v_line_ids, v_before) AS b(line_id, avail) ON b.line_id = u.line_id) t
         ORDER BY t.i;
        RETURN QUERY
            SELECT t.i::integer, 'ok'::text, t.id, 'active'::text, round(t.a, 2),
                   (b.avail - sum(round(t.a, 2)) OVER (PARTITION BY t.line_id ORDER BY t.i))::numeric(1000, 2),
                   0.00, false
              FROM unnest(v_lines, v_ids, amounts) WITH ORDINALITY AS t(line_id, id, a, i)
              JOIN unnest(v_line_ids, v_before) AS b(line_id, avail) ON b.line_id = t.line_id
             ORDER BY t.i;
        RETURN;
    END IF;

    DELETE FROM credit.reservation r
     USING unnest(v_lines, order_refs, v_ids) AS d(line_id, o, id)
     WHERE d.id IS NOT NULL AND r.line_id = d.line_id AND r.order_ref = d.o AND r.id = d.id;
    FOR v_i, v_w, v_r, v_o, v_a IN
        SELECT t.i::integer, t.w, t.r, t.o, t.a
          FROM unnest(wholesaler_ids, retailer_ids, order_refs, amounts) WITH ORDINALITY AS t(w, r, o, a, i)
         ORDER BY t.i
    LOOP
        RETURN QUERY SELECT v_i, s.* FROM credit.reserve_credit(v_w, v_r, v_o, v_a, expires_in) AS s;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION credit.reserve_credit_batch(text[], text[], text[], numeric[], interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.reserve_credit_batch(text[], text[], text[], numeric[], interval) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.reserve_credit_batch(text[], text[], text[], numeric[], interval) IS $doc$Many reservations in one call and one commit (an order import). Each item gets exactly the code and
figures that reserve_credit would give it if the items ran one after another in array order.
Arrays of one length, 1 to 10,000 items; item i is the i-th element of each. Invalid input anywhere
(arrays of different lengths, a bad element) refuses the whole call naming the element (amounts[7]), and
nothing is written. Lines are locked once each, in ascending id order, so bulk calls never deadlock with
each other over lines. A refused item is a row, not an exception.
Arguments:
  wholesaler_ids, retailer_ids: each item's line.
  order_refs: each item's order (reserve_credit's order_ref).
  amounts: each item's amount (reserve_credit's amount).
  expires_in: the expiry of every hold of the call; NULL: none.
Columns:
  item: the item's position in the arrays, from 1; rows come in item order.
  code, reservation_id, status, amount, available, shortfall, replayed: as reserve_credit returns them
    (credit.reserve_result); available is the line's after this item.
Codes: ok, line_not_found, line_blocked, overdue, insufficient_credit, exists_with_different_amount
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same order_refs.
  40P01: a deadlock with another transaction inserting one of the same order_refs at the same moment;
    nothing was written: retry with the same order_refs (those done since replay).$doc$;
