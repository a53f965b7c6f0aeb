SET ROLE credit_owner;

-- The feed (SPEC "Events"): events with event_id > after_event_id, ascending,
-- at most max_rows; only wholesaler_id's when it is given. A reader that
-- passes the largest event_id it has received gets every committed event
-- once, in event_id order, however the writers' transactions interleave:
-- event_ids are given when events are moved into the feed, in the order the
-- movers commit (credit._move_events), so none can appear below one already
-- read. This call moves first, then reads.
--
-- - It must run at READ COMMITTED: moving needs a snapshot taken after the
--   movers' lock. In a read-only transaction it cannot move; on a standby it
--   only reads, and sees what movers on the primary have moved (there, every
--   events_after call and the prune job move).
-- - It holds the movers' lock until the caller's transaction ends: call it in
--   a transaction of its own (the client does), or other readers only read
--   until it commits.
-- - A cursor below the largest event_id pruned raises 55000 events_pruned: the
--   events after it are gone. A cursor beyond the feed's last event_id raises
--   22023: it was not read here (another database or partition, or this
--   database restored from a backup older than the cursor), and the events
--   that will get the ids up to it would be skipped.
-- The check and the page are read by one statement, so by one snapshot: a
-- prune that commits meanwhile cannot open a gap between them.
CREATE OR REPLACE FUNCTION credit.events_after(
    after_event_id bigint DEFAULT 0, max_rows integer DEFAULT 100, wholesaler_id text DEFAULT NULL)
RETURNS SETOF credit.event_row
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_problem text;
    v_pruned bigint;
    v_last bigint;
    v_rows credit.event_row[];
BEGIN
    v_problem := CASE
        WHEN after_event_id IS NULL OR after_event_id < 0 THEN
            format('after_event_id must be 0 or a positive event_id, got %s', coalesce(after_event_id::text, 'NULL'))
        WHEN max_rows IS NULL OR max_rows NOT BETWEEN 1 AND 1000 THEN
            format('max_rows must be between 1 and 1000, got %s', coalesce(max_rows::text, 'NULL'))
        WHEN events_after.wholesaler_id IS NOT NULL THEN credit._id_problem(events_after.wholesaler_id, 'wholesaler_id')
    END;
    IF v_problem IS NOT NULL THEN
        RAISE USING ERRCODE = '22023', MESSAGE = v_problem;
    END IF;

    IF NOT pg_is_in_recovery() THEN
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE USING ERRCODE = '25000', MESSAGE = format(
                'events_after must run at READ COMMITTED, not in a %s transaction: it moves newly committed '
                'events into the feed, which needs a snapshot of its own; call it in a transaction of its own',
                current_setting('transaction_isolation'));
        ELSIF current_setting('transaction_read_only') = 'on' THEN
            RAISE USING ERRCODE = '25006', MESSAGE =
                'events_after cannot run in a read-only transaction on the primary: it moves newly committed '
                'events into the feed; call it in a read-write transaction of its own';
        END IF;
        PERFORM credit._move_events();
    END IF;

    IF events_after.wholesaler_id IS NULL THEN
        SELECT s.pruned_through, (SELECT max(x.event_id) FROM credit.event x),
               ARRAY(SELECT (e.event_id, e.kind, e.wholesaler_id, e.retailer_id, e.ref, e.amount, e.data,
                             e.created_at)::credit.event_row
                       FROM credit.event e
                      WHERE e.event_id > after_event_id
                      ORDER BY e.event_id LIMIT max_rows)
          INTO v_pruned, v_last, v_rows
          FROM credit.event_state s;
    ELSE
        SELECT s.pruned_through, (SELECT max(x.event_id) FROM credit.event x),
               ARRAY(SELECT (e.event_id, e.kind, e.wholesaler_id, e.retailer_id, e.ref, e.amount, e.data,
                             e.created_at)::credit.event_row
                       FROM credit.event e
                      WHERE e.wholesaler_id = events_after.wholesaler_id AND e.event_id > after_event_id
                      ORDER BY e.event_id LIMIT max_rows)
          INTO v_pruned, v_last, v_rows
          FROM credit.event_state s;
    END IF;

    IF after_event_id < v_pruned THEN
        RAISE USING ERRCODE = '55000',
            MESSAGE = format('events_pruned: the events after event_id %s up to %s were pruned (prune_events); '
                             'this reader has missed them', after_event_id, v_pruned),
            DETAIL = format('pruned_through=%s', v_pruned),
            HINT = format('Rebuild what this reader keeps from the API''s reads, then resume with after_event_id => %s.',
                          v_pruned);
    ELSIF after_event_id > greatest(v_last, v_pruned) THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('after_event_id %s is beyond the last event_id of this feed (%s): it was not read here '
                             '(another database or partition, or this database was restored from a backup older '
                             'than the cursor)', after_event_id, greatest(v_last, v_pruned));
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_rows);
END
$$;
REVOKE ALL ON FUNCTION credit.events_after(bigint, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit.events_after(bigint, integer, text) TO credit_app, credit_auditor;
