SET ROLE credit_owner;

-- Moves committed events from credit.event_inbox into the feed,
-- credit.event, giving them the next event_ids in seq order (migration
-- 0008); at most max_count of them, the lowest seqs first, so that a backlog
-- is moved in calls of bounded length. Returns how many, or NULL when another
-- mover holds the lock: what that one moves is readable once it commits, and
-- the caller reads what is readable now instead of waiting for it.
--
-- The guarantee rests on two things. The DELETE sees only committed rows, so
-- an event still in an open transaction stays in the inbox for a later move.
-- And the lock is held until this transaction ends (an advisory lock of the
-- transaction, keyed by credit.event's oid; only movers take it, never a
-- writer), so movers commit one after another in event_id order: once a
-- reader sees an event_id, every smaller one that will ever exist is
-- committed. The statements that read the state start after the lock is
-- taken, so under READ COMMITTED their snapshots see the previous mover's
-- commit (events_after refuses other isolation levels).
--
-- Where to look: every inbox row with seq <= event_state.low_seq has been
-- moved or rolled back, so a move reads the inbox index from there on and
-- costs what it moves, whatever VACUUM has yet to remove. low_seq advances to
-- a sample taken by an earlier move: the inbox sequence's last value C, and
-- then that move's own xid X, assigned after C was read. A seq <= C was drawn
-- before X existed, by a transaction that already had its xid (every event
-- follows the change it records, which assigned the xid: credit._event), so
-- by one whose xid is below X. Once this move's snapshot has xmin >= X (X
-- has ended, so xmin is the oldest xid still running), all those
-- transactions have ended; what they committed is visible to this move and
-- moved by it (up to max_count: when capped, low_seq stops at the last seq
-- moved). A move that runs in a transaction which had its xid before it read
-- C takes no sample. A transaction that stays open holds low_seq back: the
-- window read then grows with what was moved since, never with what was
-- never moved.
--
-- What the mover adds: data.available, from the row's available; and the
-- data of a hold_amended written without it (amend_reservation's fast path,
-- on a hold with nothing shipped), from its amendment, which never changes:
-- the order, the previous amount, and the new amount as what remains.
--
-- The inbox is a queue: its statistics say little about the dead rows a seq
-- scan would wade through, and a custom plan for each call would cost more
-- than moving a few events. So its plans are generic and read the inbox by
-- its index (and, enable_seqscan being off, are not compiled by JIT for
-- their inflated cost).
CREATE OR REPLACE FUNCTION credit._move_events(max_count integer DEFAULT 10000) RETURNS integer
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET jit = off AS $$
DECLARE
    s credit.event_state;
    v_fresh boolean := pg_current_xact_id_if_assigned() IS NULL;
    v_seq bigint;
    v_xmin xid8;
    v_last bigint;
    v_low bigint;
    v_moved integer;
    v_top bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock('credit.event'::regclass::oid::integer, 0) THEN
        RETURN NULL;
    END IF;
    SELECT CASE WHEN q.is_called THEN q.last_value ELSE q.last_value - 1 END INTO v_seq
      FROM credit.event_inbox_seq q;
    -- One snapshot for the state, the last event_id and the horizon.
    SELECT x.low_seq, x.sample_xid, x.sample_seq, pg_snapshot_xmin(pg_current_snapshot()),
           greatest((SELECT max(e.event_id) FROM credit.event e), x.pruned_through)
      INTO s.low_seq, s.sample_xid, s.sample_seq, v_xmin, v_last
      FROM credit.event_state x;
    v_low := CASE WHEN s.sample_xid <= v_xmin THEN greatest(s.low_seq, s.sample_seq) ELSE s.low_seq END;

    WITH picked AS (
        SELECT i.ctid FROM credit.event_inbox i WHERE i.seq > s.low_seq ORDER BY i.seq LIMIT max_count),
    moved AS (
        DELETE FROM credit.event_inbox i WHERE i.ctid = ANY (ARRAY(SELECT p.ctid FROM picked p))
        RETURNING i.*),
    added AS (
        INSERT INTO credit.event (event_id, kind, wholesaler_id, retailer_id, ref, amount, data, created_at)
        SELECT v_last + row_number() OVER (ORDER BY m.seq), m.kind, m.wholesaler_id, m.retailer_id, m.ref,
               m.amount,
               coalesce(m.data,
                        CASE WHEN m.kind = 'hold_amended' THEN
                            (SELECT jsonb_build_object('order_ref', a.order_ref, 'previous_amount', a.previous_amount::text,
                                                       'remaining_amount', a.new_amount::text, 'hold_status', 'active')
                               FROM credit.line l JOIN credit.amendment a ON a.line_id = l.id AND a.amend_ref = m.ref
                              WHERE l.wholesaler_id = m.wholesaler_id AND l.retailer_id = m.retailer_id) END,
                        '{}') || jsonb_build_object('available', round(m.available, 2)::text),
               m.created_at
          FROM moved m
         ORDER BY m.seq)
    SELECT count(*)::integer, max(m.seq) INTO v_moved, v_top FROM moved m;

    IF v_moved = max_count THEN
        v_low := least(v_low, v_top);
    END IF;
    -- A new sample once the last one is used, if there is anything new to sample.
    IF v_fresh AND s.sample_xid <= v_xmin AND v_seq > s.sample_seq THEN
        UPDATE credit.event_state x SET low_seq = v_low, sample_xid = pg_current_xact_id(), sample_seq = v_seq;
    ELSIF v_low <> s.low_seq THEN
        UPDATE credit.event_state x SET low_seq = v_low;
    END IF;
    RETURN v_moved;
END
$$;
REVOKE ALL ON FUNCTION credit._move_events(integer) FROM PUBLIC;
