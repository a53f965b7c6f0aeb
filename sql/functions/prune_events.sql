SET ROLE credit_owner;

-- Retention of the feed (SPEC "Events"): removes the events created more than
-- older_than ago, from the oldest up to the first younger one (the feed loses
-- a prefix, never a middle), and returns how many. Readers whose cursor is
-- below the largest event_id removed then get events_pruned from
-- events_after instead of a silent gap. Only final events go: the prefix
-- stops at the feed's horizon (credit._event_horizon), which this advances
-- first, so that the scheduled job (`pgcredit schedule`: every minute,
-- keeping 30 days) also keeps the horizon recent when nobody reads the feed.
-- For the owner only.
-- Deletions are not published (pgcredit_events publishes inserts): a
-- subscriber keeps its own retention.
CREATE OR REPLACE FUNCTION credit.prune_events(older_than interval) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    v_through bigint;
    v_horizon bigint;
    v_count integer;
BEGIN
    IF older_than IS NULL OR NOT isfinite(older_than) OR older_than < interval '0' THEN
        RAISE USING ERRCODE = '22023',
            MESSAGE = format('older_than must be a finite interval of at least 0, got %s',
                             coalesce(older_than::text, 'NULL'));
    END IF;
    IF current_setting('credit.lock_timeout', true) <> '' THEN
        PERFORM credit._apply_lock_timeout();
    END IF;
    -- The horizon's lock, waited for (readers only try it): the horizon this
    -- call advances and prunes up to is then the one stored.
    PERFORM pg_advisory_xact_lock('credit.event'::regclass::oid::integer, 0);
    v_horizon := credit._event_horizon(true);

    -- The oldest events by event_id until the first one that is young enough,
    -- at most up to the horizon: a scan of what is removed, plus one row.
    v_through := coalesce((SELECT e.event_id - 1 FROM credit.event e
                            WHERE e.created_at >= now() - older_than AND e.event_id <= v_horizon
                            ORDER BY e.event_id LIMIT 1),
                          v_horizon);
    DELETE FROM credit.event e WHERE e.event_id <= v_through;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        UPDATE credit.event_state s SET pruned_through = greatest(s.pruned_through, v_through);
    END IF;
    RETURN v_count;
END
$$;
REVOKE ALL ON FUNCTION credit.prune_events(interval) FROM PUBLIC;
COMMENT ON FUNCTION credit.prune_events(interval) IS $doc$Retention of the feed: removes the events created more than older_than ago, oldest first, up to the first
younger one (the feed loses a prefix, never a middle). A reader whose cursor is below the largest
event_id removed gets events_pruned from events_after. Only final events go: it advances the feed's
horizon first, and prunes no further.
Scheduled by `pgcredit schedule` every minute, keeping 30 days. For credit_owner only.
Arguments:
  older_than: how long events are kept, at least 0.
Returns: the number of events removed.
Raises:
  22023: an argument is invalid; the message names it, and nothing is written.
  55P03: a reader's transaction held the feed's horizon lock past the lock-wait bound (credit.lock_timeout,
    2 s by default); nothing was written: retry.$doc$;
