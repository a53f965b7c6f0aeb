SET ROLE credit_owner;

-- Holds past their expiry that no sweep has marked yet. They already stop
-- counting toward reserved; many of them, or an old one, means
-- expire_reservations is not being run (or cannot keep up). Only a line whose
-- next_expiry has passed can have one: O(lines) plus the active holds of
-- those lines (reservation_list_idx), never the holds' history.
CREATE OR REPLACE VIEW credit.monitor_sweep AS
SELECT count(*) AS holds_awaiting_sweep,
       coalesce(extract(epoch FROM now() - min(r.expires_at)), 0) AS oldest_awaiting_sweep_seconds
  FROM credit.line l
  JOIN credit.reservation r ON r.line_id = l.id AND r.status = 'active'
 WHERE l.next_expiry <= now() AND r.expires_at <= now();
GRANT SELECT ON credit.monitor_sweep TO credit_auditor, credit_monitor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON VIEW credit.monitor_sweep IS $doc$Holds past their expiry that no sweep has marked yet. They already stop counting toward reserved; many of
them, or an old one, means expire_reservations is not being run or cannot keep up.$doc$;
COMMENT ON COLUMN credit.monitor_sweep.holds_awaiting_sweep IS $doc$Active holds past their expiry, not yet marked expired.$doc$;
COMMENT ON COLUMN credit.monitor_sweep.oldest_awaiting_sweep_seconds IS $doc$Seconds since the oldest of them expired; 0 when none.$doc$;
