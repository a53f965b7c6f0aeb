SET ROLE credit_owner;

-- Holds past their expiry that no sweep has marked yet. They already stop
-- counting toward reserved; many of them, or an old one, means
-- expire_reservations is not being run (or cannot keep up). Reads the partial
-- index of active expiring holds: O(active holds with an expiry), not history.
CREATE OR REPLACE VIEW credit.monitor_sweep AS
SELECT count(*) AS holds_awaiting_sweep,
       coalesce(extract(epoch FROM now() - min(r.expires_at)), 0) AS oldest_awaiting_sweep_seconds
  FROM credit.reservation r
 WHERE r.status = 'active' AND r.expires_at IS NOT NULL AND r.expires_at <= now();
GRANT SELECT ON credit.monitor_sweep TO credit_auditor, credit_monitor;
