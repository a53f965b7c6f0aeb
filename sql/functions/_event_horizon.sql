SET ROLE credit_owner;

-- The feed's horizon: an event_id such that every event_id at or below it is
-- final (committed, or rolled back and never to appear), so that a reader
-- may read up to it and never skip one that commits later. Migration 0010
-- gives the three arguments it advances by, and why each is sound; this
-- applies them.
--
-- - The run: the consecutive event_ids above the stored horizon that this
--   call's snapshot sees, each committed. Any caller, on a primary or a
--   standby, at any isolation level, without a lock.
-- - The sample (C, X): with `advance`, and if it gets the horizon's lock (it
--   only tries: a reader never waits for another), the call uses the stored
--   sample once its snapshot's xmin has passed X, and takes a new one when
--   there are event_ids beyond the horizon: C read first, its own xid X
--   taken by a later statement, which only a transaction that had no xid
--   before reading C may do. Its own sample is usable at once if no older
--   transaction is running. Otherwise the stored sample is kept if not yet
--   used (it becomes usable sooner than a newer one), or replaced.
-- - The probe, when its own sample is not usable at once and the run did
--   not move the horizon (or stopped at its bound): C is a horizon
--   if, after C was read, no other transaction holds a lock on credit.event
--   that conflicts with SHARE. A transaction that drew an event_id did so
--   in an INSERT into credit.event, which took ROW EXCLUSIVE on the table
--   before the id was drawn and holds it until the transaction ends (or
--   the subtransaction that wrote it rolls back, taking the event with it);
--   so if none holds it, every one of them has ended. The lock is taken
--   with NOWAIT in a subtransaction that is rolled back at once, which gives
--   it back: a writer waits at most for that instant. It frees the horizon
--   from transactions that write no events (a long one anywhere in the
--   cluster holds xmin back) while no writer is in flight; under load
--   writers always are, and the samples advance it.
--
-- The lock holder stores the horizon it found and keeps the lock until its
-- transaction ends, so the state row has one writer at a time and a reader
-- that cannot get the lock reads the last stored one. Returns the horizon.
-- The page of a run is bounded (10,000 ids), so a long run is crossed in
-- several calls.
CREATE OR REPLACE FUNCTION credit._event_horizon(advance boolean) RETURNS bigint
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    v_fresh boolean := pg_current_xact_id_if_assigned() IS NULL;
    v_locked boolean := advance AND pg_try_advisory_xact_lock('credit.event'::regclass::oid::integer, 0);
    s credit.event_state;
    v_xmin xid8;
    v_h bigint;
    v_from bigint;        -- where this call's run started
    v_last bigint;
    v_xid xid8;
    v_now boolean;
BEGIN
    SELECT x.horizon, x.sample_id, x.sample_xid, pg_snapshot_xmin(pg_current_snapshot())
      INTO s.horizon, s.sample_id, s.sample_xid, v_xmin
      FROM credit.event_state x;
    v_h := s.horizon;
    IF v_locked AND s.sample_xid <= v_xmin THEN
        v_h := greatest(v_h, s.sample_id);
    END IF;
    v_from := v_h;
    v_h := coalesce((SELECT max(r.event_id)
                       FROM (SELECT e.event_id, row_number() OVER (ORDER BY e.event_id) AS n
                               FROM credit.event e WHERE e.event_id > v_h
                              ORDER BY e.event_id LIMIT 10000) r
                      WHERE r.event_id = v_h + r.n), v_h);
    IF NOT v_locked THEN
        RETURN v_h;
    END IF;

    IF v_fresh THEN
        SELECT CASE WHEN q.is_called THEN q.last_value ELSE q.last_value - 1 END INTO v_last
          FROM credit.event_id_seq q;
        IF v_last > v_h THEN
            v_xid := pg_current_xact_id();
            v_now := pg_snapshot_xmin(pg_current_snapshot()) >= v_xid;
            -- Only when the horizon is stuck (a gap that neither the run nor the
            -- stored sample crossed) or far behind (the run stopped at its
            -- bound): under load the run moves it on every call, and a probe's
            -- SHARE lock, even refused, moves every writer's lock of the feed
            -- off PostgreSQL's fast path for a moment (BENCHMARKS.md, "Events":
            -- hot@8 paid for a probe on every call).
            IF NOT v_now AND (v_h = s.horizon OR v_h - v_from = 10000) THEN
                -- No writer of the feed in flight? Its lock, tried and given back at once.
                BEGIN
                    LOCK TABLE credit.event IN SHARE MODE NOWAIT;
                    RAISE assert_failure;  -- caught below: rolls the subtransaction back, and the lock with it
                EXCEPTION
                    WHEN assert_failure THEN v_now := true;
                    WHEN lock_not_available THEN v_now := false;
                END;
            END IF;
            IF v_now THEN
                v_h := v_last;
            END IF;
            IF v_now OR s.sample_xid <= v_xmin OR s.sample_id <= v_h THEN
                UPDATE credit.event_state x SET horizon = v_h, sample_id = v_last, sample_xid = v_xid;
                RETURN v_h;
            END IF;
        END IF;
    END IF;
    IF v_h <> s.horizon THEN
        UPDATE credit.event_state x SET horizon = v_h;
    END IF;
    RETURN v_h;
END
$$;
REVOKE ALL ON FUNCTION credit._event_horizon(boolean) FROM PUBLIC;
