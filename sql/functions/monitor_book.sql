SET ROLE credit_owner;

-- The book by currency and line status, for dashboards and alerts (the
-- exporter's pgcredit_* line metrics). One pass over credit.line: O(lines),
-- each line O(1) (_reserved_now reads holds only of a line with a hold past
-- its expiry awaiting a sweep). Utilization is (reserved + outstanding) /
-- credit_limit; a line at limit 0 with any exposure counts as over 90%.
-- TODO(receivables, migration 0003): past_due per currency, from the line's
-- past-due figures, once they exist. Not faked here.
CREATE OR REPLACE VIEW credit.monitor_book AS
SELECT l.currency, l.status,
       count(*) AS lines,
       sum(l.credit_limit) AS credit_limit,
       sum(v.reserved) AS reserved,
       sum(l.outstanding) AS outstanding,
       count(*) FILTER (WHERE v.reserved + l.outstanding > 0
                          AND v.reserved + l.outstanding >= 0.9 * l.credit_limit) AS lines_over_90pct,
       max(CASE WHEN l.credit_limit > 0
                THEN round(100 * (v.reserved + l.outstanding) / l.credit_limit, 2) END) AS max_utilization_pct
  FROM credit.line l
 CROSS JOIN LATERAL (SELECT credit._reserved_now(l) AS reserved) v
 GROUP BY l.currency, l.status;
GRANT SELECT ON credit.monitor_book TO credit_auditor, credit_monitor;
