SET ROLE credit_owner;

-- One row per line with only the figures that cost O(1) each (line_summary
-- adds hold counts and overdue amounts that read the line's history), so a
-- "top lines by utilization" costs one pass over credit.line: O(lines).
-- credit_limit is the limit in force (a temporary one until its end), as in
-- line_summary and get_available. It keeps the column type the view was
-- created with (CREATE OR REPLACE VIEW cannot change it): both limits are
-- amount_nonneg on the line.
-- For DBAs (credit_auditor); the monitoring role sees aggregates only.
CREATE OR REPLACE VIEW credit.monitor_lines AS
SELECT l.id AS line_id, l.wholesaler_id, l.retailer_id, l.status, l.currency,
       v.credit_limit::credit.amount_nonneg AS credit_limit,
       v.reserved, l.outstanding,
       v.credit_limit - v.reserved - l.outstanding AS available,
       CASE WHEN v.credit_limit > 0
            THEN round(100 * (v.reserved + l.outstanding) / v.credit_limit, 2) END AS utilization_pct
  FROM credit.line l
 CROSS JOIN LATERAL (SELECT credit._reserved_now(l) AS reserved,
                            credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until) AS credit_limit) v;
GRANT SELECT ON credit.monitor_lines TO credit_auditor;

-- The reference (docs/SQL-REFERENCE.md, `pgcredit reference`) is made of these comments.
COMMENT ON VIEW credit.monitor_lines IS $doc$One row per line with only the figures that cost O(1) each, for "top lines by utilization" (`pgcredit
status`): one pass over the lines. For DBAs; the monitoring role sees aggregates only.$doc$;
COMMENT ON COLUMN credit.monitor_lines.line_id IS $doc$The line's id.$doc$;
COMMENT ON COLUMN credit.monitor_lines.wholesaler_id IS $doc$The wholesaler.$doc$;
COMMENT ON COLUMN credit.monitor_lines.retailer_id IS $doc$The retailer.$doc$;
COMMENT ON COLUMN credit.monitor_lines.status IS $doc$active or blocked.$doc$;
COMMENT ON COLUMN credit.monitor_lines.currency IS $doc$The line's ISO 4217 currency.$doc$;
COMMENT ON COLUMN credit.monitor_lines.credit_limit IS $doc$The limit in force (a temporary limit until its end).$doc$;
COMMENT ON COLUMN credit.monitor_lines.reserved IS $doc$The sum of active holds not past their expiry.$doc$;
COMMENT ON COLUMN credit.monitor_lines.outstanding IS $doc$What the retailer owes.$doc$;
COMMENT ON COLUMN credit.monitor_lines.available IS $doc$credit_limit - reserved - outstanding.$doc$;
COMMENT ON COLUMN credit.monitor_lines.utilization_pct IS $doc$(reserved + outstanding) / credit_limit in percent; NULL at limit 0.$doc$;
