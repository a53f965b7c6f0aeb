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
