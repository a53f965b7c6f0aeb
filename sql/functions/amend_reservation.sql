SET ROLE credit_owner;

-- Sets an active order's total to amount (items added, or out of stock). A
-- raise holds the increase in the same transaction as the change, checked as
-- a new reservation is (line_blocked, overdue, then the increase against
-- available; a refusal leaves the hold as it was and is logged, with the
-- increase as its amount); a cut is always granted, on a blocked or overdue
-- line too, but never below what was shipped already (converted_amount). A
-- cut to exactly that leaves nothing to hold: the hold ends 'converted'.
-- Expiry is unchanged.
--
-- amend_ref is an idempotency key of its own, unique per line for ever, and
-- replays come first: the same ref, order and amount replay (with the
-- original previous_amount and today's figures); another amount is
-- exists_with_different_amount; another order exists_with_different_terms.
-- Each amendment is kept in credit.amendment, the one place it is recorded.
CREATE OR REPLACE FUNCTION credit.amend_reservation(
    wholesaler_id text, retailer_id text, order_ref text, amount numeric, amend_ref text)
RETURNS credit.amend_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_amount numeric;
    v_delta numeric;
    v_code text;
    l credit.line;
    h credit.reservation;
    a credit.amendment;
    v_available numeric;
    v_line bigint;
    v_id bigint;
    v_prev numeric;
    v_original numeric;
    v_converted numeric;
    v_ctid tid;
BEGIN
    IF current_setting('credit.lock_timeout', true) <> '' THEN
        PERFORM credit._apply_lock_timeout();
    END IF;

    -- A raise, the common amendment, first takes reserve_credit's fast path:
    -- the UPDATE that locks the line adds the increase under the same room
    -- rule (credit._fast_path_room: active, nothing awaiting a sweep or an
    -- overdue policy, within the limit in force); then the hold is raised
    -- only if it still holds the amount that UPDATE read (another call may
    -- have changed it before the lock was granted), and the amendment is
    -- written only if its key is new. Anything else takes the careful path
    -- below, after undoing what was done: no room, a cut, a replay, a race.
    --
    -- As in reserve_credit, the fast path checks only the arguments it writes
    -- (amend_ref, amount): a wholesaler_id, retailer_id or order_ref that
    -- would be refused matches no line or hold, and the careful path refuses
    -- it. The hold is raised through the version the first UPDATE joined
    -- (its ctid: no second index search), under the same conditions. If
    -- another call changed the hold while this one waited for the line, the
    -- version at that ctid is no longer the one a new snapshot sees (or the
    -- slot is empty, or holds another row), so nothing is raised and the
    -- careful path reads the hold as it is.
    IF credit._id_ok(amend_ref) AND amount > 0 AND amount <= 1e15 AND amount = round(amount, 2) THEN
        v_amount := round(amount, 2);
        UPDATE credit.line x SET reserved = x.reserved + (v_amount - y.amount)
          FROM credit.reservation y
         WHERE x.wholesaler_id = amend_reservation.wholesaler_id AND x.retailer_id = amend_reservation.retailer_id
           AND y.line_id = x.id AND y.order_ref = amend_reservation.order_ref AND y.status = 'active'
           AND v_amount > y.amount AND v_amount - y.amount <= credit._fast_path_room(x)
        RETURNING x.id, y.ctid, y.id, y.amount, y.original_amount, y.converted_amount, credit._fast_path_available(x)
             INTO v_line, v_ctid, v_id, v_prev, v_original, v_converted, v_available;
        IF FOUND THEN
            UPDATE credit.reservation r SET amount = v_amount, original_amount = coalesce(r.original_amount, r.amount)
             WHERE r.ctid = v_ctid AND r.line_id = v_line AND r.order_ref = amend_reservation.order_ref
               AND r.status = 'active' AND r.amount = v_prev;
            IF FOUND THEN
                INSERT INTO credit.amendment (line_id, amend_ref, order_ref, previous_amount, new_amount)
                VALUES (v_line, amend_ref, order_ref, v_prev, v_amount)
                ON CONFLICT ON CONSTRAINT amendment_pkey DO NOTHING;
                IF FOUND THEN
                    -- The event, as credit._event writes it, inline (a call costs more than the
                    -- insert: BENCHMARKS.md). With nothing shipped, its data is NULL: events_after
                    -- reads the figures from this amendment when the event is read, instead of
                    -- the writer building them under the line's lock.
                    INSERT INTO credit.event (wholesaler_id, retailer_id, kind, ref, amount, available, data)
                    VALUES (amend_reservation.wholesaler_id, amend_reservation.retailer_id, 'hold_amended',
                            amend_ref, v_amount, v_available,
                            CASE WHEN v_converted IS NOT NULL THEN
                                jsonb_build_object('order_ref', order_ref, 'previous_amount', v_prev::text,
                                                   'remaining_amount', (v_amount - v_converted)::text,
                                                   'hold_status', 'active') END);
                    RETURN ('ok', v_id, 'active', v_amount, v_prev, v_amount - coalesce(v_converted, 0), v_available,
                            0.00, false)::credit.amend_result;
                END IF;
                UPDATE credit.reservation r SET amount = v_prev, original_amount = v_original
                 WHERE r.line_id = v_line AND r.order_ref = amend_reservation.order_ref;
            END IF;
            UPDATE credit.line x SET reserved = x.reserved - (v_amount - v_prev) WHERE x.id = v_line;
        END IF;
    END IF;

    -- One cheap test passes good input; the checks that name the argument run only when it fails.
    IF NOT coalesce(credit._id_ok(wholesaler_id) AND credit._id_ok(retailer_id) AND credit._id_ok(order_ref)
                    AND credit._id_ok(amend_ref) AND amount > 0 AND amount <= 1e15 AND amount = round(amount, 2),
                    false) THEN
        PERFORM credit._require_id(wholesaler_id, 'wholesaler_id');
        PERFORM credit._require_id(retailer_id, 'retailer_id');
        PERFORM credit._require_id(order_ref, 'order_ref');
        PERFORM credit._require_id(amend_ref, 'amend_ref');
        PERFORM credit._money(amount, 'amount', 'positive');
    END IF;
    v_amount := round(amount, 2);

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN ('line_not_found', NULL, NULL, NULL, NULL, NULL, NULL, NULL, false)::credit.amend_result;
    END IF;
    v_available := credit._available(l);

    SELECT * INTO a FROM credit.amendment x WHERE x.line_id = l.id AND x.amend_ref = amend_reservation.amend_ref;
    SELECT * INTO h FROM credit.reservation r
     WHERE r.line_id = l.id AND r.order_ref = coalesce(a.order_ref, amend_reservation.order_ref);
    IF a.line_id IS NOT NULL THEN
        v_code := CASE WHEN a.order_ref <> order_ref THEN 'exists_with_different_terms'
                       ELSE credit._replay(a.new_amount, v_amount) END;
        RETURN (v_code, h.id, h.status, a.new_amount, a.previous_amount,
                CASE WHEN h.status = 'active' THEN h.amount - coalesce(h.converted_amount, 0) ELSE 0.00 END,
                v_available, CASE WHEN v_code = 'ok' THEN 0.00 END, v_code = 'ok')::credit.amend_result;
    ELSIF h.id IS NULL THEN
        RETURN ('reservation_not_found', NULL, NULL, NULL, NULL, NULL, v_available, NULL, false)::credit.amend_result;
    ELSIF h.status <> 'active' THEN
        -- Codes written out whole: the reference's test reads them from the source.
        RETURN (CASE h.status WHEN 'released' THEN 'reservation_released' WHEN 'converted' THEN 'reservation_converted'
                              ELSE 'reservation_expired' END,
                h.id, h.status, h.amount, NULL, 0.00, v_available, NULL, false)::credit.amend_result;
    END IF;

    v_delta := v_amount - h.amount;
    IF v_delta > 0 THEN
        v_code := credit._refusal(l, v_delta, v_available);  -- as a new reservation of the increase
        IF v_code IS NOT NULL THEN
            PERFORM credit._refuse_reservation(l, wholesaler_id, retailer_id, order_ref, v_delta, v_code);
            RETURN (v_code, h.id, h.status, h.amount, NULL, h.amount - coalesce(h.converted_amount, 0), v_available,
                    greatest(v_delta - v_available, 0), false)::credit.amend_result;
        END IF;
    ELSIF v_amount < h.converted_amount THEN
        RETURN ('below_converted_amount', h.id, h.status, h.amount, NULL, h.amount - h.converted_amount, v_available,
                NULL, false)::credit.amend_result;
    END IF;

    INSERT INTO credit.amendment (line_id, amend_ref, order_ref, previous_amount, new_amount)
    VALUES (l.id, amend_ref, order_ref, h.amount, v_amount);
    IF v_amount = h.converted_amount THEN
        UPDATE credit.reservation r
           SET amount = v_amount, original_amount = coalesce(r.original_amount, r.amount),
               status = 'converted', converted_at = now(), released_amount = 0.00
         WHERE r.line_id = h.line_id AND r.order_ref = h.order_ref;
    ELSE
        UPDATE credit.reservation r
           SET amount = v_amount, original_amount = coalesce(r.original_amount, r.amount)
         WHERE r.line_id = h.line_id AND r.order_ref = h.order_ref;
    END IF;
    UPDATE credit.line x SET reserved = x.reserved + v_delta WHERE x.id = l.id;
    PERFORM credit._event(l.wholesaler_id, l.retailer_id, 'hold_amended', amend_ref, v_amount, v_available - v_delta,
        jsonb_build_object('order_ref', order_ref, 'previous_amount', h.amount::text,
                           'remaining_amount', (v_amount - coalesce(h.converted_amount, 0))::text,
                           'hold_status', CASE WHEN v_amount = h.converted_amount THEN 'converted' ELSE 'active' END));
    RETURN ('ok', h.id, CASE WHEN v_amount = h.converted_amount THEN 'converted' ELSE 'active' END, v_amount,
            h.amount, v_amount - coalesce(h.converted_amount, 0), v_available - v_delta, 0.00,
            false)::credit.amend_result;
END
$$;
REVOKE ALL ON FUNCTION credit.amend_reservation(text, text, text, numeric, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.amend_reservation(text, text, text, numeric, text) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.amend_reservation(text, text, text, numeric, text) IS $doc$Sets an active order's total to amount (lines added, or items out of stock). A raise is granted iff the
line is active, not refusing for overdue, and the increase is at most available; otherwise that code,
shortfall = increase - available, the hold unchanged and the refusal logged (its amount: the increase). A
cut is always granted on an active hold, on a blocked or overdue line too, but not below what was shipped
(below_converted_amount); a cut to exactly that leaves nothing to hold and converts the hold. Expiry is
unchanged. Each amendment is kept as history. Replays come first: the same amend_ref with the same order
and amount replays (the original previous_amount); another amount is exists_with_different_amount;
another order exists_with_different_terms. The reservation's own order_ref still replays with the amount
it was reserved with.
Arguments:
  wholesaler_id, retailer_id: the line.
  order_ref: the order whose hold to amend.
  amount: the order's new total: greater than zero, at most 10^15, at most 2 decimal places.
  amend_ref: the amendment: an idempotency key, unique among the line's amendments for ever.
Codes: ok, line_not_found, reservation_not_found, reservation_released, reservation_converted,
  reservation_expired, line_blocked, overdue, insufficient_credit, below_converted_amount,
  exists_with_different_amount, exists_with_different_terms
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same amend_ref.$doc$;
COMMENT ON TYPE credit.amend_result IS $doc$The outcome of an amendment (amend_reservation).$doc$;
COMMENT ON COLUMN credit.amend_result.code IS $doc$ok, or why the hold was not amended.$doc$;
COMMENT ON COLUMN credit.amend_result.reservation_id IS $doc$The hold's id (on exists_with_different_terms, the order the amend_ref was used for); NULL for
line_not_found and reservation_not_found.$doc$;
COMMENT ON COLUMN credit.amend_result.status IS $doc$The hold's status after the call: active, converted (a cut to what was shipped), or the status that
prevented it.$doc$;
COMMENT ON COLUMN credit.amend_result.amount IS $doc$The order's total after the call (on a replay, the amendment's; on a refusal, the unchanged hold's).$doc$;
COMMENT ON COLUMN credit.amend_result.previous_amount IS $doc$The total before the amendment (the original amendment's on a replay); NULL when nothing was amended.$doc$;
COMMENT ON COLUMN credit.amend_result.remaining_amount IS $doc$What the hold holds after the call: amount less what was shipped; 0.00 once it has ended.$doc$;
COMMENT ON COLUMN credit.amend_result.available IS $doc$The line's available after the call; NULL for line_not_found.$doc$;
COMMENT ON COLUMN credit.amend_result.shortfall IS $doc$On insufficient_credit, the increase less available; 0.00 when granted; NULL when it does not apply.$doc$;
COMMENT ON COLUMN credit.amend_result.replayed IS $doc$true when this amend_ref had amended this order to this amount before: nothing changed.$doc$;
