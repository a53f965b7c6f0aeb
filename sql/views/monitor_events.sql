SET ROLE credit_owner;

-- The event feed's health: events committed but not yet readable, above the
-- horizon stored by the last call that advanced it (any events_after call,
-- or the prune job: credit._event_horizon). With readers following the feed
-- they wait a fraction of a second; with none, at most until the next prune
-- job (every minute with `pgcredit schedule`). An old one means nothing
-- advances the horizon, or a transaction that wrote an earlier event is
-- still open. O(the events above the horizon), by the feed's primary key.
CREATE OR REPLACE VIEW credit.monitor_events AS
SELECT count(e.event_id) AS events_waiting,
       coalesce(extract(epoch FROM now() - min(e.created_at)), 0) AS oldest_waiting_seconds
  FROM credit.event_state s
  LEFT JOIN credit.event e ON e.event_id > s.horizon;
GRANT SELECT ON credit.monitor_events TO credit_auditor, credit_monitor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON VIEW credit.monitor_events IS $doc$Events committed but not yet readable: above the feed's horizon, below which every event_id is final.
Any events_after call, or the prune job, advances it: with readers following the feed events wait a
fraction of a second, with none until the next prune job. An old one means nothing advances the horizon,
or a transaction that wrote an earlier event is still open.$doc$;
COMMENT ON COLUMN credit.monitor_events.events_waiting IS $doc$Committed events above the horizon.$doc$;
COMMENT ON COLUMN credit.monitor_events.oldest_waiting_seconds IS $doc$Seconds since the oldest of them was written; 0 when none.$doc$;
