SET ROLE credit_owner;

-- Marks up to max_count expired holds 'expired'; returns how many. Expired
-- holds already stop counting before this runs; the sweep makes it visible in
-- their status, and writes the time-driven events (hold_expired, and
-- temporary_limit_ended and overdue_began for lines where time alone changed
-- those, which it sweeps too). Lines locked by a running operation are
-- skipped, not waited for: that operation sweeps its own line. Lines are
-- locked in ascending id order. A line can change by time alone only once its
-- next_expiry has passed, so the lines are found by scanning credit.line
-- (O(lines)) and each one's active holds by its range of
-- reservation_list_idx: ended holds are never read.
CREATE OR REPLACE FUNCTION credit.expire_reservations(max_count integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_line bigint;
    v_done integer := 0;
BEGIN
    IF max_count IS NULL OR max_count NOT BETWEEN 1 AND 1000000 THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('max_count must be between 1 and 1000000, got %s', coalesce(max_count::text, 'NULL'));
    END IF;
    FOR v_line IN
        SELECT l.id FROM credit.line l
         WHERE l.next_expiry <= now()
           AND (EXISTS (SELECT FROM credit.reservation r
                         WHERE r.line_id = l.id AND r.status = 'active' AND r.expires_at <= now())
                OR l.limit_valid_until <= now()
                OR l.overdue_since IS NULL AND credit._overdue(l))
         ORDER BY l.id
           FOR NO KEY UPDATE SKIP LOCKED
    LOOP
        v_done := v_done + credit._sweep_line(v_line, max_count - v_done);
        EXIT WHEN v_done >= max_count;
    END LOOP;
    RETURN v_done;
END
$$;
REVOKE ALL ON FUNCTION credit.expire_reservations(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.expire_reservations(integer) TO credit_app;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON FUNCTION credit.expire_reservations(integer) IS $doc$Marks up to max_count holds past their expiry as expired. Expired holds stop counting toward reserved at
once without it; the sweep makes it visible in their status and keeps the lines' totals exact, and writes
the time-driven events (hold_expired; temporary_limit_ended and overdue_began on the lines where time
alone changed those, which it sweeps too). Lines locked by a running call are skipped, not waited for
(that call sweeps its own line). Run it every minute (`pgcredit schedule`), or `pgcredit expire`.
Arguments:
  max_count: the most holds to mark in this call, 1 to 1,000,000.
Returns: the number of holds marked expired; fewer than max_count means none is left.
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: the line stayed locked by another transaction past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry with the same arguments.$doc$;
