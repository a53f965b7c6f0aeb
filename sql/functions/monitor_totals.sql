SET ROLE credit_owner;

-- One row: the book as a whole, and holds past expiry that no sweep has marked
-- yet (they already stop counting; many of them means expire_reservations is
-- not being run). total_past_due reads open items, not the ledger.
CREATE OR REPLACE VIEW credit.monitor_totals AS
SELECT (SELECT count(*) FROM credit.line) AS lines,
       (SELECT count(*) FROM credit.line WHERE status = 'blocked') AS blocked_lines,
       (SELECT round(coalesce(sum(credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until)), 0), 2)
          FROM credit.line l) AS total_credit_limit,
       (SELECT round(coalesce(sum(credit._reserved_now(l)), 0), 2) FROM credit.line l) AS total_reserved,
       (SELECT round(coalesce(sum(outstanding), 0), 2) FROM credit.line) AS total_outstanding,
       (SELECT count(*) FROM credit.reservation
         WHERE status = 'active' AND expires_at <= now()) AS holds_awaiting_sweep,
       (SELECT min(expires_at) FROM credit.reservation
         WHERE status = 'active' AND expires_at <= now()) AS oldest_awaiting_sweep,
       (SELECT round(coalesce(sum(unpaid), 0), 2) FROM credit.open_item
         WHERE due_date < current_date) AS total_past_due;
GRANT SELECT ON credit.monitor_totals TO credit_auditor;
