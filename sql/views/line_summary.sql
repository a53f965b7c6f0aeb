SET ROLE credit_owner;

-- One row per line for DBAs. credit_limit is the limit in force;
-- overdue_amount is get_available's past_due (the allocation rule's unpaid
-- items due before today). active_holds and oldest_active_hold_age read the
-- line's active holds through reservation_list_idx, overdue_amount its open
-- items: neither grows with ended holds or settled debts.
CREATE OR REPLACE VIEW credit.line_summary AS
SELECT l.id AS line_id, l.wholesaler_id, l.retailer_id, l.status, l.currency,
       round(c.credit_limit, 2) AS credit_limit, round(v.reserved, 2) AS reserved,
       round(l.outstanding, 2) AS outstanding,
       round(c.credit_limit - v.reserved - l.outstanding, 2) AS available,
       CASE WHEN c.credit_limit > 0
            THEN round(100 * (v.reserved + l.outstanding) / c.credit_limit, 2) END AS utilization_pct,
       h.active_holds,
       now() - h.oldest AS oldest_active_hold_age,
       round(p.past_due, 2) AS overdue_amount
  FROM credit.line l
 CROSS JOIN LATERAL (SELECT credit._reserved_now(l) AS reserved) v
 CROSS JOIN LATERAL (SELECT credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until) AS credit_limit) c
 CROSS JOIN LATERAL (SELECT coalesce(sum(o.unpaid), 0.00) AS past_due FROM credit.open_item o
                      WHERE o.line_id = l.id AND o.due_date < current_date) p
 CROSS JOIN LATERAL (SELECT count(*) AS active_holds, min(r.created_at) AS oldest
                       FROM credit.reservation r
                      WHERE r.line_id = l.id AND r.status = 'active'
                        AND (r.expires_at IS NULL OR r.expires_at > now())) h;
GRANT SELECT ON credit.line_summary TO credit_auditor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON VIEW credit.line_summary IS $doc$One row per line for DBAs: its figures with the limit in force, its active holds and what is overdue.
Active holds and overdue amounts read the line's active holds and open items: the cost does not grow with
ended holds or settled debts, but the view reads every line.$doc$;
COMMENT ON COLUMN credit.line_summary.line_id IS $doc$The line's id.$doc$;
COMMENT ON COLUMN credit.line_summary.wholesaler_id IS $doc$The wholesaler.$doc$;
COMMENT ON COLUMN credit.line_summary.retailer_id IS $doc$The retailer.$doc$;
COMMENT ON COLUMN credit.line_summary.status IS $doc$active or blocked.$doc$;
COMMENT ON COLUMN credit.line_summary.currency IS $doc$The line's ISO 4217 currency.$doc$;
COMMENT ON COLUMN credit.line_summary.credit_limit IS $doc$The limit in force (a temporary limit until its end).$doc$;
COMMENT ON COLUMN credit.line_summary.reserved IS $doc$The sum of active holds not past their expiry.$doc$;
COMMENT ON COLUMN credit.line_summary.outstanding IS $doc$What the retailer owes.$doc$;
COMMENT ON COLUMN credit.line_summary.available IS $doc$credit_limit - reserved - outstanding.$doc$;
COMMENT ON COLUMN credit.line_summary.utilization_pct IS $doc$(reserved + outstanding) / credit_limit in percent; NULL at limit 0.$doc$;
COMMENT ON COLUMN credit.line_summary.active_holds IS $doc$The number of active holds not past their expiry.$doc$;
COMMENT ON COLUMN credit.line_summary.oldest_active_hold_age IS $doc$How long the oldest of them has been held; NULL when none.$doc$;
COMMENT ON COLUMN credit.line_summary.overdue_amount IS $doc$The unpaid amount of items due before today (get_available's past_due).$doc$;
