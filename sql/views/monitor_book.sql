SET ROLE credit_owner;

-- The book by currency and line status, for dashboards and alerts (the
-- exporter's pgcredit_* line metrics). One pass over credit.line: O(lines),
-- each line O(1) (_reserved_now reads holds only of a line with a hold past
-- its expiry awaiting a sweep), plus one pass over the open items that are
-- past due (settled items are not open items: never the ledger). credit_limit
-- is the limit in force; utilization is (reserved + outstanding) / that limit;
-- a line at limit 0 with any exposure counts as over 90%.
CREATE OR REPLACE VIEW credit.monitor_book AS
SELECT l.currency, l.status,
       count(*) AS lines,
       sum(v.credit_limit) AS credit_limit,
       sum(v.reserved) AS reserved,
       sum(l.outstanding) AS outstanding,
       coalesce(sum(p.past_due), 0.00) AS past_due,
       count(*) FILTER (WHERE v.reserved + l.outstanding > 0
                          AND v.reserved + l.outstanding >= 0.9 * v.credit_limit) AS lines_over_90pct,
       max(CASE WHEN v.credit_limit > 0
                THEN round(100 * (v.reserved + l.outstanding) / v.credit_limit, 2) END) AS max_utilization_pct
  FROM credit.line l
 CROSS JOIN LATERAL (SELECT credit._reserved_now(l) AS reserved,
                            credit._active_limit(l.credit_limit, l.temp_limit, l.limit_valid_until) AS credit_limit) v
  LEFT JOIN (SELECT o.line_id, sum(o.unpaid) AS past_due FROM credit.open_item o
              WHERE o.due_date < current_date GROUP BY o.line_id) p ON p.line_id = l.id
 GROUP BY l.currency, l.status;
GRANT SELECT ON credit.monitor_book TO credit_auditor, credit_monitor;
