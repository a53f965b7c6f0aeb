SET ROLE credit_owner;

-- One row per line with only the figures that cost O(1) each (line_summary
-- adds hold counts and overdue amounts that read the line's history), so a
-- "top lines by utilization" costs one pass over credit.line: O(lines).
-- For DBAs (credit_auditor); the monitoring role sees aggregates only.
CREATE OR REPLACE VIEW credit.monitor_lines AS
SELECT l.id AS line_id, l.wholesaler_id, l.retailer_id, l.status, l.currency, l.credit_limit,
       v.reserved, l.outstanding,
       l.credit_limit - v.reserved - l.outstanding AS available,
       CASE WHEN l.credit_limit > 0
            THEN round(100 * (v.reserved + l.outstanding) / l.credit_limit, 2) END AS utilization_pct
  FROM credit.line l
 CROSS JOIN LATERAL (SELECT credit._reserved_now(l) AS reserved) v;
GRANT SELECT ON credit.monitor_lines TO credit_auditor;
