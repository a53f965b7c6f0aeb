SET ROLE credit_owner;

-- Holds amount for an order if the line is active and has that much available.
--
-- Fast path, three statements: the hold is inserted first, then one
-- conditional UPDATE locks the line, checks its room (credit._fast_path_room,
-- the rule reserve_credit_batch shares) and adds the amount, then the event
-- is written. The line stays locked until commit, so whatever runs after the
-- lock is taken delays every other reservation on that line; here that is
-- the UPDATE and the event's INSERT, which must follow it: the line's lock
-- orders the line's events (BENCHMARKS.md, "Events").
-- Anything else (input to be refused, a key used before, a refusal, no such
-- line, a moment passed at which the line changes by time alone) drops the
-- speculative hold and takes the careful path: validate, lock, sweep, then
-- the replay rule (credit._replay) and the refusals (credit._refusal:
-- line_blocked, overdue, insufficient_credit), in that order.
--
-- The fast path checks only the arguments it writes: a wholesaler_id or
-- retailer_id that would be refused matches no line (open_line checked them),
-- so nothing is inserted and the careful path refuses it.
--
-- One wait comes with writing first: the speculative hold is held while
-- waiting for the line. A transaction that already holds this line from an
-- earlier call and now reserves the same order_ref waits on that hold: a
-- deadlock, which PostgreSQL breaks (40P01) by failing one of the two, and the
-- client retries with the same key. It needs a multi-call transaction and a
-- concurrent duplicate of one order (test_interleavings.py).
CREATE OR REPLACE FUNCTION credit.reserve_credit(
    wholesaler_id text, retailer_id text, order_ref text, amount numeric,
    expires_in interval DEFAULT NULL)
RETURNS credit.reserve_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_amount numeric := round(amount, 2);
    v_expires_at timestamptz;
    v_problem text;
    v_code text;
    v_line bigint;
    v_id bigint;
    v_available numeric;
    v_data jsonb;
    l credit.line;
    h credit.reservation;
BEGIN
    IF current_setting('credit.lock_timeout', true) <> '' THEN
        PERFORM credit._apply_lock_timeout();
    END IF;
    IF credit._id_ok(order_ref) AND credit._money_ok(amount, 'positive')
       AND credit._expires_in_problem(expires_in) IS NULL THEN
        v_expires_at := now() + expires_in;
        -- The event's data, built before the line is locked: what runs after the lock delays every
        -- other reservation on the line.
        IF v_expires_at IS NOT NULL THEN
            v_data := jsonb_build_object('expires_at', v_expires_at);
        END IF;
        INSERT INTO credit.reservation AS r (line_id, order_ref, amount, expires_at)
        SELECT x.id, reserve_credit.order_ref, v_amount, v_expires_at FROM credit.line x
         WHERE x.wholesaler_id = reserve_credit.wholesaler_id AND x.retailer_id = reserve_credit.retailer_id
        ON CONFLICT ON CONSTRAINT reservation_pkey DO NOTHING
        RETURNING r.id, r.line_id INTO v_id, v_line;
        IF FOUND THEN
            UPDATE credit.line x
               SET reserved = x.reserved + v_amount, next_expiry = least(x.next_expiry, v_expires_at)
             WHERE x.id = v_line AND v_amount <= credit._fast_path_room(x)
            RETURNING credit._fast_path_available(x) INTO v_available;
            IF FOUND THEN
                -- The event, as credit._event writes it, inline: the call would add a
                -- third to what the insert costs this path (BENCHMARKS.md, "Events").
                INSERT INTO credit.event (wholesaler_id, retailer_id, kind, ref, amount, available, data)
                VALUES (reserve_credit.wholesaler_id, reserve_credit.retailer_id, 'hold_reserved',
                        reserve_credit.order_ref, v_amount, v_available, v_data);
                RETURN ('ok', v_id, 'active', v_amount, v_available, 0.00, false)::credit.reserve_result;
            END IF;
            DELETE FROM credit.reservation r WHERE r.line_id = v_line AND r.order_ref = reserve_credit.order_ref;
        END IF;
    END IF;

    v_problem := coalesce(
        credit._id_problem(wholesaler_id, 'wholesaler_id'), credit._id_problem(retailer_id, 'retailer_id'),
        credit._id_problem(order_ref, 'order_ref'), credit._money_problem(amount, 'amount', 'positive'),
        credit._expires_in_problem(expires_in));
    IF v_problem IS NOT NULL THEN
        RAISE USING ERRCODE = '22023', MESSAGE = v_problem;
    END IF;
    v_expires_at := now() + expires_in;

    l := credit._lock_line(wholesaler_id, retailer_id);
    IF l.id IS NULL THEN
        RETURN credit._refuse_reservation(l, wholesaler_id, retailer_id, order_ref, v_amount, 'line_not_found');
    END IF;
    v_available := credit._available(l);

    SELECT * INTO h FROM credit.reservation r
     WHERE r.line_id = l.id AND r.order_ref = reserve_credit.order_ref;
    -- A retry of the reservation as it was made replays, even after an amendment.
    v_code := coalesce(credit._replay(coalesce(h.original_amount, h.amount), v_amount),
                       credit._refusal(l, v_amount, v_available));
    IF v_code IN ('ok', 'exists_with_different_amount') THEN
        RETURN (v_code, h.id, h.status, h.amount, v_available, CASE WHEN v_code = 'ok' THEN 0 END,
                v_code = 'ok')::credit.reserve_result;
    ELSIF v_code IS NOT NULL THEN
        RETURN credit._refuse_reservation(l, wholesaler_id, retailer_id, order_ref, v_amount, v_code);
    END IF;

    -- Room after all: the line awaited a sweep, or credit was freed between
    -- the fast path's look (which took no lock when it found no room) and this lock.
    INSERT INTO credit.reservation (line_id, order_ref, amount, expires_at)
    VALUES (l.id, order_ref, v_amount, v_expires_at)
    RETURNING id INTO v_id;
    UPDATE credit.line x
       SET reserved = x.reserved + v_amount, next_expiry = least(x.next_expiry, v_expires_at)
     WHERE x.id = l.id;
    PERFORM credit._event(l.wholesaler_id, l.retailer_id, 'hold_reserved', order_ref, v_amount, v_available - v_amount,
        CASE WHEN v_expires_at IS NOT NULL THEN jsonb_build_object('expires_at', v_expires_at) END);
    RETURN ('ok', v_id, 'active', v_amount, v_available - v_amount, 0.00, false)::credit.reserve_result;
END
$$;
REVOKE ALL ON FUNCTION credit.reserve_credit(text, text, text, numeric, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.reserve_credit(text, text, text, numeric, interval) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.reserve_credit(text, text, text, numeric, interval) IS $doc$Holds amount of the line's credit for an order: granted if and only if the line is active, not refused by
its overdue policy, and amount <= available. The checks run in this order: replay, line_blocked, overdue,
insufficient_credit. A refusal writes nothing but a row of the refusal log (monitor_refusals). The hold
counts toward reserved until it is released, converted into a DEBIT, or reaches its expiry.
Arguments:
  wholesaler_id, retailer_id: the line.
  order_ref: the order: an idempotency key, unique among the line's holds for ever.
  amount: the credit to hold: greater than zero, at most 10^15, at most 2 decimal places.
  expires_in: how long the hold lasts unless converted or released: a positive finite interval; NULL:
    until converted or released.
Codes: ok, line_not_found, line_blocked, overdue, insufficient_credit, exists_with_different_amount
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same order_ref.
  40P01: a deadlock: another transaction that already holds this line reserved the same order_ref at the
    same moment; PostgreSQL failed this call and nothing was written: retry with the same order_ref.$doc$;
COMMENT ON TYPE credit.reserve_result IS $doc$The outcome of a reservation (reserve_credit; reserve_credit_batch's rows carry the same columns after
item).$doc$;
COMMENT ON COLUMN credit.reserve_result.code IS $doc$ok, or why the hold was refused.$doc$;
COMMENT ON COLUMN credit.reserve_result.reservation_id IS $doc$The hold's id (the original hold's on a replay or exists_with_different_amount); NULL when refused.$doc$;
COMMENT ON COLUMN credit.reserve_result.status IS $doc$active; on a replay or exists_with_different_amount, the original hold's status now (it may have been released, converted or expired since); NULL when refused.$doc$;
COMMENT ON COLUMN credit.reserve_result.amount IS $doc$The amount asked for (the original hold's on a replay or exists_with_different_amount).$doc$;
COMMENT ON COLUMN credit.reserve_result.available IS $doc$The line's available after the call (unchanged when refused); NULL for line_not_found.$doc$;
COMMENT ON COLUMN credit.reserve_result.shortfall IS $doc$amount - available where that is positive, else 0.00 (on insufficient_credit: what the line lacks); NULL for line_not_found and exists_with_different_amount.$doc$;
COMMENT ON COLUMN credit.reserve_result.replayed IS $doc$true when this call repeated one done before (same order_ref and amount): nothing changed.$doc$;
