SET ROLE credit_owner;

-- One row: the book as a whole, and holds past expiry that no sweep has marked
-- yet (they already stop counting; many of them means expire_reservations is
-- not being run; found as monitor_sweep finds them). total_past_due reads open
-- items, not the ledger.
CREATE OR REPLACE VIEW credit.monitor_totals AS
SELECT (SELECT count(*) FROM credit.line) AS lines,
       (SELECT count(*) FROM credit.line WHERE status = 'blocked') AS blocked_lines,
       (SELECT round(coalesce(sum(credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until)), 0), 2)
          FROM credit.line l) AS total_credit_limit,
       (SELECT round(coalesce(sum(credit._reserved_now(l)), 0), 2) FROM credit.line l) AS total_reserved,
       (SELECT round(coalesce(sum(outstanding), 0), 2) FROM credit.line) AS total_outstanding,
       a.holds_awaiting_sweep,
       a.oldest_awaiting_sweep,
       (SELECT round(coalesce(sum(unpaid), 0), 2) FROM credit.open_item
         WHERE due_date < current_date) AS total_past_due
  FROM (SELECT count(*) AS holds_awaiting_sweep, min(r.expires_at) AS oldest_awaiting_sweep
          FROM credit.line l
          JOIN credit.reservation r ON r.line_id = l.id AND r.status = 'active'
         WHERE l.next_expiry <= now() AND r.expires_at <= now()) a;
GRANT SELECT ON credit.monitor_totals TO credit_auditor;
