SET ROLE credit_owner;

-- The event feed's health: events committed but not yet moved into the feed
-- (readable only once a mover, any events_after call or the prune job, takes
-- them). With readers following the feed they wait a fraction of a second;
-- with none, at most until the next prune job (every minute with `pgcredit
-- schedule`). An old one means nothing moves the feed. O(the inbox): a few
-- rows while the feed is moved (what waits, and what was moved since the
-- movers' low-water mark last advanced), a backlog when it is not, which is
-- what this reports.
CREATE OR REPLACE VIEW credit.monitor_events AS
SELECT count(i.seq) AS events_waiting,
       coalesce(extract(epoch FROM now() - min(i.created_at)), 0) AS oldest_waiting_seconds
  FROM credit.event_state s
  LEFT JOIN credit.event_inbox i ON i.seq > s.low_seq;
GRANT SELECT ON credit.monitor_events TO credit_auditor, credit_monitor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON VIEW credit.monitor_events IS $doc$Events committed but not yet moved into the feed, where readers see them. A mover (any events_after
call, or the prune job) moves them: with readers following the feed they wait a fraction of a second, with
none until the next prune job. An old one means nothing moves the feed.$doc$;
COMMENT ON COLUMN credit.monitor_events.events_waiting IS $doc$Committed events not yet in the feed.$doc$;
COMMENT ON COLUMN credit.monitor_events.oldest_waiting_seconds IS $doc$Seconds since the oldest of them was written; 0 when none.$doc$;
