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

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON VIEW credit.monitor_totals IS $doc$One row: the book as a whole, and holds past their expiry that no sweep has marked yet (they already stop
counting; many of them means expire_reservations is not being run).$doc$;
COMMENT ON COLUMN credit.monitor_totals.lines IS $doc$The number of lines.$doc$;
COMMENT ON COLUMN credit.monitor_totals.blocked_lines IS $doc$The number of blocked lines.$doc$;
COMMENT ON COLUMN credit.monitor_totals.total_credit_limit IS $doc$The sum of the limits in force, all currencies added.$doc$;
COMMENT ON COLUMN credit.monitor_totals.total_reserved IS $doc$The sum of active holds not past their expiry.$doc$;
COMMENT ON COLUMN credit.monitor_totals.total_outstanding IS $doc$The sum of what the retailers owe.$doc$;
COMMENT ON COLUMN credit.monitor_totals.holds_awaiting_sweep IS $doc$Active holds past their expiry, not yet marked expired.$doc$;
COMMENT ON COLUMN credit.monitor_totals.oldest_awaiting_sweep IS $doc$The expiry of the oldest of them; NULL when none.$doc$;
COMMENT ON COLUMN credit.monitor_totals.total_past_due IS $doc$The unpaid amount of items due before today.$doc$;
