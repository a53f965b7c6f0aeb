SET ROLE credit_owner;

-- One row: the book as a whole, and holds past expiry that no sweep has marked
-- yet (they already stop counting; many of them means expire_reservations is
-- not being run).
CREATE OR REPLACE VIEW credit.monitor_totals AS
SELECT (SELECT count(*) FROM credit.line) AS lines,
       (SELECT count(*) FROM credit.line WHERE status = 'blocked') AS blocked_lines,
       (SELECT coalesce(sum(credit_limit), 0) FROM credit.line) AS total_credit_limit,
       (SELECT coalesce(sum(credit._reserved_now(l)), 0) FROM credit.line l) AS total_reserved,
       (SELECT coalesce(sum(outstanding), 0) FROM credit.line) AS total_outstanding,
       (SELECT count(*) FROM credit.reservation
         WHERE status = 'active' AND expires_at <= now()) AS holds_awaiting_sweep,
       (SELECT min(expires_at) FROM credit.reservation
         WHERE status = 'active' AND expires_at <= now()) AS oldest_awaiting_sweep;
GRANT SELECT ON credit.monitor_totals TO credit_auditor;
